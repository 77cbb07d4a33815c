/*
 * rules_status.c - what a rule answers with: the status table
 * (status.next(), status.deny(code), ...), code() and the common codes,
 * the checks of the replies a rule gives, and the verdict a status makes.
 *
 * A status and a code are userdata with metatables of their own, so that
 * a rule can only hand back what these constructors checked. A refusal
 * without a code gets the default one of its status.
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "rules_internal.h"
#include "spool.h"

#define RULES_CODE_MT "vsmtpd.code"

static const char *const status_names[] = {
	[RULE_NEXT] = "next",     [RULE_ACCEPT] = "accept", [RULE_FACCEPT] = "faccept",
	[RULE_DENY] = "deny",     [RULE_REJECT] = "reject", [RULE_INFO] = "info",
	[RULE_QUARANTINE] = "quarantine", [RULE_ERROR] = "error", [RULE_DELEGATE] = "delegate",
};

/* rules_status_name - the status's name. */
const char *rules_status_name(enum rule_status status)
{
	return status <= RULE_DELEGATE ? status_names[status] : "?";
}

/* ---- codes and statuses ---------------------------------------------- */

/* rules_reply_check - validate a reply; NULL or why it is wrong. */
static const char *rules_reply_check(const struct rule_reply *reply)
{
	const char *e = reply->enhanced, *p;
	int dots = 0, digits = 0;

	if (reply->code < 200 || reply->code > 599)
		return "the code must be a number from 200 to 599";
	if (e[0] != '\0') {
		if (e[0] - '0' != reply->code / 100 || e[1] != '.')
			return "the enhanced code must be class.subject.detail with the class of the code";
		for (p = e + 2; *p; p++) {
			if (*p == '.') {
				if (digits == 0 || digits > 3)
					return "the enhanced code must be class.subject.detail";
				dots++;
				digits = 0;
			} else if (*p >= '0' && *p <= '9') {
				digits++;
			} else {
				return "the enhanced code must be class.subject.detail";
			}
		}
		if (dots != 1 || digits == 0 || digits > 3)
			return "the enhanced code must be class.subject.detail";
	}
	for (p = reply->text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return "the text must be printable ASCII on one line";
	return NULL;
}

/* rules_reply_from_args - code, enhanced, text at idx..idx+2 into reply. */
static void rules_reply_from_values(lua_State *L, int code_idx, int enh_idx, int text_idx,
				    struct rule_reply *reply)
{
	const char *enh, *text, *why;
	size_t len;
	int isnum;
	lua_Integer code = lua_tointegerx(L, code_idx, &isnum);

	if (!isnum)
		luaL_error(L, "a code needs a number, as in code(550, \"5.7.1\", \"text\")");
	memset(reply, 0, sizeof(*reply));
	reply->code = code < 0 || code > 999 ? 0 : (int)code;
	enh = lua_isnoneornil(L, enh_idx) ? "" : luaL_checklstring(L, enh_idx, &len);
	if (strlen(enh) >= sizeof(reply->enhanced))
		luaL_error(L, "enhanced code \"%s\" is too long", enh);
	strcpy(reply->enhanced, enh);
	text = lua_isnoneornil(L, text_idx) ? "" : luaL_checklstring(L, text_idx, &len);
	if (len >= sizeof(reply->text))
		luaL_error(L, "a reply text is at most %d bytes", RULE_TEXT_MAX - 1);
	memcpy(reply->text, text, len + 1);
	if (strlen(reply->text) != len)
		luaL_error(L, "the text must be printable ASCII on one line");
	if ((why = rules_reply_check(reply)) != NULL)
		luaL_error(L, "bad code %d %s: %s", (int)code, reply->enhanced, why);
}

/* rules_code_get - a code object or a {code=, enhanced=, text=} table at idx. */
static void rules_code_get(lua_State *L, int idx, struct rule_reply *reply)
{
	struct rule_reply *ud = luaL_testudata(L, idx, RULES_CODE_MT);

	idx = lua_absindex(L, idx);
	if (ud != NULL) {
		*reply = *ud;
		return;
	}
	if (!lua_istable(L, idx))
		luaL_error(L, "expected a code: code(550, \"5.7.1\", \"text\") or "
			      "{code = 550, enhanced = \"5.7.1\", text = \"text\"}, got %s",
			   luaL_typename(L, idx));
	lua_getfield(L, idx, "code");
	lua_getfield(L, idx, "enhanced");
	lua_getfield(L, idx, "text");
	rules_reply_from_values(L, -3, -2, -1, reply);
	lua_pop(L, 3);
}

/* lua_code_new - code(550, "5.7.1", "text"). */
static int lua_code_new(lua_State *L)
{
	struct rule_reply reply;
	struct rule_reply *ud;

	rules_reply_from_values(L, 1, 2, 3, &reply);
	ud = lua_newuserdatauv(L, sizeof(*ud), 0);
	*ud = reply;
	luaL_setmetatable(L, RULES_CODE_MT);
	return 1;
}

/* lua_code_tostring - "550 5.7.1 text". */
static int lua_code_tostring(lua_State *L)
{
	struct rule_reply *c = luaL_checkudata(L, 1, RULES_CODE_MT);

	lua_pushfstring(L, "%d%s%s%s%s", c->code, c->enhanced[0] ? " " : "", c->enhanced,
			c->text[0] ? " " : "", c->text);
	return 1;
}

/* lua_code_index - code.code, code.enhanced, code.text. */
static int lua_code_index(lua_State *L)
{
	struct rule_reply *c = luaL_checkudata(L, 1, RULES_CODE_MT);
	const char *key = luaL_checkstring(L, 2);

	if (strcmp(key, "code") == 0)
		lua_pushinteger(L, c->code);
	else if (strcmp(key, "enhanced") == 0)
		lua_pushstring(L, c->enhanced);
	else if (strcmp(key, "text") == 0)
		lua_pushstring(L, c->text);
	else
		lua_pushnil(L);
	return 1;
}

/* rules_status_new - push a new status userdata. */
static struct rules_status *rules_status_new(lua_State *L, enum rule_status status)
{
	struct rules_status *st = lua_newuserdatauv(L, sizeof(*st), 0);

	memset(st, 0, sizeof(*st));
	st->status = status;
	luaL_setmetatable(L, RULES_STATUS_MT);
	return st;
}

/* rules_status_push_reply - see rules_internal.h. */
void rules_status_push_reply(lua_State *L, enum rule_status status, int code,
			     const char *enhanced, const char *text)
{
	struct rules_status *st = rules_status_new(L, status);

	if (code == 0)
		return;
	st->has_reply = 1;
	st->reply.code = code;
	snprintf(st->reply.enhanced, sizeof(st->reply.enhanced), "%s", enhanced ? enhanced : "");
	snprintf(st->reply.text, sizeof(st->reply.text), "%s", text ? text : "");
}

/* rules_status_with_code - a status whose code is optional (or required). */
static int rules_status_with_code(lua_State *L, enum rule_status status, int required)
{
	struct rule_reply reply;
	struct rules_status *st;
	int has = !lua_isnoneornil(L, 1);

	if (has)
		rules_code_get(L, 1, &reply);
	else if (required)
		return luaL_error(L, "status.%s needs a code", status_names[status]);
	if (has && (status == RULE_ACCEPT || status == RULE_FACCEPT) && reply.code / 100 != 2)
		return luaL_error(L, "status.%s takes a positive (2xx) code, not %d",
				  status_names[status], reply.code);
	if (has && status != RULE_ACCEPT && status != RULE_FACCEPT && reply.code < 400)
		return luaL_error(L, "status.%s takes a 4xx or 5xx code, not %d",
				  status_names[status], reply.code);
	st = rules_status_new(L, status);
	st->has_reply = has;
	if (has)
		st->reply = reply;
	return 1;
}

/* lua_status_next - go on to the next rule. */
static int lua_status_next(lua_State *L)
{
	/* The most common answer by far: one shared object, no allocation. */
	lua_pushvalue(L, lua_upvalueindex(1));
	return 1;
}

/* lua_status_accept - accept at this stage. */
static int lua_status_accept(lua_State *L)
{
	return rules_status_with_code(L, RULE_ACCEPT, 0);
}

/* lua_status_faccept - accept, skipping every later rule. */
static int lua_status_faccept(lua_State *L)
{
	return rules_status_with_code(L, RULE_FACCEPT, 0);
}

/* lua_status_deny - refuse and end the connection. */
static int lua_status_deny(lua_State *L)
{
	return rules_status_with_code(L, RULE_DENY, 0);
}

/* lua_status_reject - refuse this command; the session goes on. */
static int lua_status_reject(lua_State *L)
{
	return rules_status_with_code(L, RULE_REJECT, 0);
}

/* lua_status_info - answer with the given code and change nothing. */
static int lua_status_info(lua_State *L)
{
	return rules_status_with_code(L, RULE_INFO, 1);
}

/* rules_status_push_quarantine - a quarantine status; the name becomes a
 * folder of the spool's quarantine/, so it is held to a safe shape. */
int rules_status_push_quarantine(lua_State *L, const char *name)
{
	struct rules_status *st;

	if (!spool_folder_name_ok(name))
		return luaL_error(L, "quarantine name \"%s\": 1 to %d letters, digits, '.', '_' "
				     "or '-', not starting with '.'",
				  name, SPOOL_FOLDER_NAME_MAX);
	st = rules_status_new(L, RULE_QUARANTINE);
	snprintf(st->quarantine, sizeof(st->quarantine), "%s", name);
	return 1;
}

/* lua_status_quarantine - accept into a quarantine folder. */
static int lua_status_quarantine(lua_State *L)
{
	return rules_status_push_quarantine(L, luaL_checkstring(L, 1));
}

/* lua_status_tostring - "deny(554 5.7.1 ...)". */
static int lua_status_tostring(lua_State *L)
{
	struct rules_status *st = luaL_checkudata(L, 1, RULES_STATUS_MT);

	if (st->status == RULE_QUARANTINE)
		lua_pushfstring(L, "quarantine(%s)", st->quarantine);
	else if (st->has_reply)
		lua_pushfstring(L, "%s(%d %s %s)", status_names[st->status], st->reply.code,
				st->reply.enhanced, st->reply.text);
	else
		lua_pushstring(L, status_names[st->status]);
	return 1;
}

/* lua_status_index - status.name: "next", "deny", ... for rules that look. */
static int lua_status_index(lua_State *L)
{
	struct rules_status *st = luaL_checkudata(L, 1, RULES_STATUS_MT);
	const char *key = luaL_checkstring(L, 2);

	if (strcmp(key, "name") == 0)
		lua_pushstring(L, status_names[st->status]);
	else if (strcmp(key, "code") == 0 && st->has_reply)
		lua_pushinteger(L, st->reply.code);
	else
		lua_pushnil(L);
	return 1;
}

/* rules_open_status - the status table, code() and the common codes. */
void rules_open_status(lua_State *L)
{
	static const luaL_Reg status_fns[] = {
		{"accept", lua_status_accept}, {"faccept", lua_status_faccept},
		{"deny", lua_status_deny},     {"reject", lua_status_reject},
		{"info", lua_status_info},     {"quarantine", lua_status_quarantine},
		{NULL, NULL},
	};
	static const struct {
		const char *name;
		int code;
		const char *enhanced, *text;
	} common[] = {
		{"relay_denied", 554, "5.7.1", "Relay access denied"},
		{"unknown_user", 550, "5.1.1", "Recipient address rejected: user unknown"},
		{"unknown_sender_domain", 550, "5.1.8", "Sender address rejected: domain not found"},
		{"mailbox_full", 452, "4.2.2", "Mailbox full"},
		{"auth_required", 530, "5.7.0", "Authentication required"},
		{"tls_required", 530, "5.7.0", "Must issue a STARTTLS command first"},
		{"greylisted", 451, "4.7.1", "Greylisted, please try again later"},
		{"try_later", 451, "4.3.0", "Temporary local problem, please try again later"},
		{"spam", 550, "5.7.1", "Message rejected as spam"},
		{"virus", 554, "5.7.1", "Message rejected: virus found"},
		{"policy", 550, "5.7.1", "Rejected by local policy"},
		{"too_many_recipients", 452, "4.5.3", "Too many recipients"},
		{"message_too_big", 552, "5.3.4", "Message size exceeds fixed maximum message size"},
		{"bad_helo", 501, "5.5.2", "Helo command rejected: invalid name"},
	};
	size_t i;

	luaL_newmetatable(L, RULES_CODE_MT);
	lua_pushcfunction(L, lua_code_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushcfunction(L, lua_code_index);
	lua_setfield(L, -2, "__index");
	lua_pushliteral(L, "code");
	lua_setfield(L, -2, "__name");
	/* Hidden from getmetatable(): a rule could otherwise change every code
	 * to come, or give them a __gc, which Lua runs out of every budget. */
	lua_pushliteral(L, "code");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	luaL_newmetatable(L, RULES_STATUS_MT);
	lua_pushcfunction(L, lua_status_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushcfunction(L, lua_status_index);
	lua_setfield(L, -2, "__index");
	lua_pushliteral(L, "status");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	lua_newtable(L);
	luaL_setfuncs(L, status_fns, 0);
	rules_status_new(L, RULE_NEXT);
	lua_pushcclosure(L, lua_status_next, 1);
	lua_setfield(L, -2, "next");
	lua_setglobal(L, "status");

	lua_pushcfunction(L, lua_code_new);
	lua_setglobal(L, "code");
	lua_newtable(L);
	for (i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
		struct rule_reply *c = lua_newuserdatauv(L, sizeof(*c), 0);

		memset(c, 0, sizeof(*c));
		c->code = common[i].code;
		strcpy(c->enhanced, common[i].enhanced);
		strcpy(c->text, common[i].text);
		luaL_setmetatable(L, RULES_CODE_MT);
		lua_setfield(L, -2, common[i].name);
	}
	lua_setglobal(L, "codes");
}

/* rules_default_reply - the code a refusal sends when the rule gave none. */
void rules_default_reply(struct rule_verdict *v)
{
	struct rule_reply *reply = &v->reply;

	memset(reply, 0, sizeof(*reply));
	switch (v->status) {
	case RULE_DENY:
		*reply = (struct rule_reply){554, "5.7.1", "Rejected by local policy"};
		break;
	case RULE_REJECT:
		*reply = (struct rule_reply){451, "4.7.1", "Rejected by local policy, try again later"};
		break;
	case RULE_ERROR:
		*reply = (struct rule_reply){451, "4.3.0", "Local policy error, try again later"};
		break;
	default:
		return;
	}
	v->has_reply = 1;
}

/* rules_verdict_from - the verdict of a status userdata at -1. */
void rules_verdict_from(const struct rules_status *st, struct rule_verdict *v)
{
	v->status = st->status;
	v->has_reply = st->has_reply;
	if (st->has_reply)
		v->reply = st->reply;
	else
		rules_default_reply(v);
	if (st->status == RULE_QUARANTINE)
		snprintf(v->quarantine, sizeof(v->quarantine), "%s", st->quarantine);
}
