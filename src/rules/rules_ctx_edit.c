/*
 * rules_ctx_edit.c - the ctx methods on the envelope and the message:
 * rewriting the sender, adding, removing and rewriting recipients,
 * reading and editing the header fields (To included), and holding the
 * message (ctx:hold).
 *
 * Envelope methods need a transaction, message methods the message (from
 * the preq stage on); both raise otherwise, naming the method. An edit the
 * message library refuses raises too: a rule never half-edits silently.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "rule_objects.h"
#include "rules_internal.h"

/* ctx_addr_equal - same mailbox: the local part exactly, the domain in any case. */
static int ctx_addr_equal(const char *a, const char *b)
{
	const char *at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');

	if (at_a == NULL || at_b == NULL)
		return at_a == at_b && strcasecmp(a, b) == 0; /* "postmaster" */
	return at_a - a == at_b - b && strncmp(a, b, (size_t)(at_a - a)) == 0 &&
	       strcasecmp(at_a, at_b) == 0;
}

/* ---- the envelope ---------------------------------------------------- */

/* ctx_check_address - the address at idx (string or address object) into buf. */
void ctx_check_address(lua_State *L, int idx, char *buf, size_t len)
{
	rule_address_check(L, idx, buf, len);
}

/* lua_ctx_rewrite_mail_from - ctx:rewrite_mail_from(addr); "" is the null sender. */
static int lua_ctx_rewrite_mail_from(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct envelope *env = ctx_need_env(L, ctx, "rewrite_mail_from");
	char addr[RULE_ADDRESS_TEXT_MAX];

	rule_sender_check(L, 2, addr, sizeof(addr));
	if (envelope_set(&env->mail_from, addr) < 0)
		return luaL_error(L, "out of memory");
	return 0;
}

/* ctx_find_rcpt - the index of addr among the recipients, or -1. */
long ctx_find_rcpt(const struct envelope *env, const char *addr)
{
	size_t i;

	for (i = 0; i < env->nrcpts; i++)
		if (ctx_addr_equal(env->rcpts[i].address, addr))
			return (long)i;
	return -1;
}

/* ctx_add_rcpt - add addr unless it is there already; pushes whether added. */
static int ctx_add_rcpt(lua_State *L, const char *what)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct envelope *env = ctx_need_env(L, ctx, what);
	char addr[RULE_ADDRESS_TEXT_MAX];

	ctx_check_address(L, 2, addr, sizeof(addr));
	if (ctx_find_rcpt(env, addr) >= 0) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (envelope_add_rcpt(env, addr, 0, NULL, NULL) < 0)
		return luaL_error(L, "out of memory");
	lua_pushboolean(L, 1);
	return 1;
}

/* lua_ctx_add_rcpt - ctx:add_rcpt(addr): one more envelope recipient. */
static int lua_ctx_add_rcpt(lua_State *L)
{
	return ctx_add_rcpt(L, "add_rcpt");
}

/* lua_ctx_bcc - ctx:bcc(addr): a blind copy, an envelope recipient the
 * headers never show. */
static int lua_ctx_bcc(lua_State *L)
{
	return ctx_add_rcpt(L, "bcc");
}

/* lua_ctx_remove_rcpt - ctx:remove_rcpt(addr): returns whether it was there. */
static int lua_ctx_remove_rcpt(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct envelope *env = ctx_need_env(L, ctx, "remove_rcpt");
	char addr[RULE_ADDRESS_TEXT_MAX];
	long i;
	int removed = 0;

	ctx_check_address(L, 2, addr, sizeof(addr));
	while ((i = ctx_find_rcpt(env, addr)) >= 0) {
		envelope_remove_rcpt(env, (size_t)i);
		removed = 1;
	}
	lua_pushboolean(L, removed);
	return 1;
}

/* lua_ctx_rewrite_rcpt - ctx:rewrite_rcpt(old, new): returns whether old was there. */
static int lua_ctx_rewrite_rcpt(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct envelope *env = ctx_need_env(L, ctx, "rewrite_rcpt");
	char old[RULE_ADDRESS_TEXT_MAX], new[RULE_ADDRESS_TEXT_MAX];
	long i, dup;

	ctx_check_address(L, 2, old, sizeof(old));
	ctx_check_address(L, 3, new, sizeof(new));
	if ((i = ctx_find_rcpt(env, old)) < 0) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if ((dup = ctx_find_rcpt(env, new)) >= 0 && dup != i) {
		envelope_remove_rcpt(env, (size_t)i); /* new is a recipient already */
	} else if (envelope_set(&env->rcpts[i].address, new) < 0) {
		return luaL_error(L, "out of memory");
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- the message ----------------------------------------------------- */

/* ctx_header_name - argument idx as a header name (checked by the library too). */
static const char *ctx_header_name(lua_State *L, int idx)
{
	size_t len;
	const char *name = luaL_checklstring(L, idx, &len);

	if (len == 0 || strlen(name) != len)
		luaL_argerror(L, idx, "not a header name");
	return name;
}

/* ctx_edit_failed - raise for a failed edit. */
static int ctx_edit_failed(lua_State *L, const char *what)
{
	if (errno == ENOMEM)
		return luaL_error(L, "%s: out of memory", what);
	return luaL_error(L, "%s: invalid name, value or address (header names are printable "
			     "ASCII without ':', values hold no CR or LF)",
			  what);
}

/* lua_ctx_has_header - ctx:has_header(name). */
static int lua_ctx_has_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "has_header");

	lua_pushboolean(L, message_header_count(msg, ctx_header_name(L, 2)) > 0);
	return 1;
}

/* lua_ctx_count_header - ctx:count_header(name). */
static int lua_ctx_count_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "count_header");

	lua_pushinteger(L, (lua_Integer)message_header_count(msg, ctx_header_name(L, 2)));
	return 1;
}

/* lua_ctx_get_header - ctx:get_header(name [, n]): the nth (1-based, first
 * by default) value, unfolded, or nil. */
static int lua_ctx_get_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "get_header");
	const char *name = ctx_header_name(L, 2);
	lua_Integer nth = luaL_optinteger(L, 3, 1);
	size_t len;
	char *value;

	if (nth < 1 || (value = message_header_get(msg, name, (size_t)nth - 1, &len)) == NULL) {
		if (nth >= 1 && errno == ENOMEM)
			return luaL_error(L, "out of memory");
		lua_pushnil(L);
		return 1;
	}
	lua_pushlstring(L, value, len);
	free(value);
	return 1;
}

/* lua_ctx_get_all_headers - ctx:get_all_headers([name]): with a name, every
 * value of that header; without, every field as {name = ..., value = ...}. */
static int lua_ctx_get_all_headers(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "get_all_headers");
	const char *name = lua_isnoneornil(L, 2) ? NULL : ctx_header_name(L, 2);
	size_t i, n = message_field_count(msg), nlen, vlen;
	lua_Integer out = 0;
	const char *fname;
	char *value;

	lua_newtable(L);
	for (i = 0; i < n; i++) {
		fname = message_field_name(msg, i, &nlen);
		if (name != NULL && (strlen(name) != nlen || strncasecmp(fname, name, nlen) != 0))
			continue;
		if ((value = message_field_value(msg, i, &vlen)) == NULL)
			return luaL_error(L, "out of memory");
		if (name != NULL) {
			lua_pushlstring(L, value, vlen);
		} else {
			lua_createtable(L, 0, 2);
			lua_pushlstring(L, fname, nlen);
			lua_setfield(L, -2, "name");
			lua_pushlstring(L, value, vlen);
			lua_setfield(L, -2, "value");
		}
		free(value);
		lua_rawseti(L, -2, ++out);
	}
	return 1;
}

/* ctx_header_edit - the shared body of append, prepend and set. */
static int ctx_header_edit(lua_State *L, const char *what,
			   int (*edit)(struct message *, const char *, const char *))
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), what);
	const char *name = ctx_header_name(L, 2);
	size_t len;
	const char *value = luaL_checklstring(L, 3, &len);

	if (strlen(value) != len) /* a NUL would silently cut the value */
		return luaL_argerror(L, 3, "a header value holds no NUL, CR or LF");
	if (edit(msg, name, value) < 0)
		return ctx_edit_failed(L, what);
	return 0;
}

/* lua_ctx_append_header - add a field after the others. */
static int lua_ctx_append_header(lua_State *L)
{
	return ctx_header_edit(L, "append_header", message_header_append);
}

/* lua_ctx_prepend_header - add a field before the others. */
static int lua_ctx_prepend_header(lua_State *L)
{
	return ctx_header_edit(L, "prepend_header", message_header_prepend);
}

/* lua_ctx_set_header - replace the first such field, or append one. */
static int lua_ctx_set_header(lua_State *L)
{
	return ctx_header_edit(L, "set_header", message_header_set);
}

/* lua_ctx_rename_header - ctx:rename_header(old, new): how many were renamed. */
static int lua_ctx_rename_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "rename_header");
	ssize_t n = message_header_rename(msg, ctx_header_name(L, 2), ctx_header_name(L, 3));

	if (n < 0)
		return ctx_edit_failed(L, "rename_header");
	lua_pushinteger(L, n);
	return 1;
}

/* lua_ctx_remove_header - ctx:remove_header(name): how many were removed. */
static int lua_ctx_remove_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "remove_header");
	ssize_t n = message_header_remove(msg, ctx_header_name(L, 2));

	if (n < 0)
		return ctx_edit_failed(L, "remove_header");
	lua_pushinteger(L, n);
	return 1;
}

/* lua_ctx_add_to - ctx:add_to(addr): add a mailbox to the To header. */
static int lua_ctx_add_to(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "add_to");
	char addr[RULE_ADDRESS_TEXT_MAX];

	ctx_check_address(L, 2, addr, sizeof(addr));
	if (message_to_add(msg, addr) < 0) {
		if (errno == EBADMSG)
			return luaL_error(L, "add_to: the To header is malformed; left unchanged");
		return ctx_edit_failed(L, "add_to");
	}
	return 0;
}

/* lua_ctx_remove_to - ctx:remove_to(addr): how many mailboxes went. */
static int lua_ctx_remove_to(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "remove_to");
	char addr[RULE_ADDRESS_TEXT_MAX];
	ssize_t n;

	ctx_check_address(L, 2, addr, sizeof(addr));
	if ((n = message_to_remove(msg, addr)) < 0)
		return ctx_edit_failed(L, "remove_to");
	lua_pushinteger(L, n);
	return 1;
}

/* lua_ctx_rewrite_to - ctx:rewrite_to(old, new): how many were rewritten. */
static int lua_ctx_rewrite_to(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "rewrite_to");
	char old[RULE_ADDRESS_TEXT_MAX], new[RULE_ADDRESS_TEXT_MAX];
	ssize_t n;

	ctx_check_address(L, 2, old, sizeof(old));
	ctx_check_address(L, 3, new, sizeof(new));
	if ((n = message_to_rewrite(msg, old, new)) < 0)
		return ctx_edit_failed(L, "rewrite_to");
	lua_pushinteger(L, n);
	return 1;
}

/* ---- holding -------------------------------------------------------- */

/*
 * ctx_hold_reason - the reason at idx (nil: one naming the rule) into
 * hold. Raises on a reason the log, the envelope and vsmtpctl could not
 * show as it is.
 */
static void ctx_hold_reason(lua_State *L, int idx, struct rule_hold *hold)
{
	size_t len, i;
	const char *reason;

	if (lua_isnoneornil(L, idx)) {
		snprintf(hold->reason, sizeof(hold->reason), "held by rule \"%s\" at %s",
			 hold->rule, rules_stage_name(hold->stage));
		return;
	}
	reason = luaL_checklstring(L, idx, &len);
	for (i = 0; i < len; i++)
		if ((unsigned char)reason[i] < 0x20 || (unsigned char)reason[i] > 0x7e)
			break;
	if (len == 0 || len >= sizeof(hold->reason) || i < len)
		luaL_argerror(L, idx, "a hold reason is 1 to 255 bytes of printable ASCII");
	memcpy(hold->reason, reason, len + 1);
}

/*
 * lua_ctx_hold - ctx:hold([reason]): commit the message into hold/ instead
 * of queue/. Before MAIL every message of the connection; from MAIL on, this
 * message; at postq, the queued message moves there. The rules go on.
 */
static int lua_ctx_hold(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	const volatile struct rules_running *running = rules_running();
	struct rule_hold hold = {.set = 1, .stage = ud->stage};

	if (ud->stage == RULE_STAGE_DELIVERY)
		return luaL_error(L, "hold() works from the connect to the postq stage, not at "
				     "delivery");
	if (running->rule != NULL)
		snprintf(hold.rule, sizeof(hold.rule), "%s", (const char *)running->rule);
	ctx_hold_reason(L, 2, &hold);
	if (ctx->env != NULL)
		ctx->tx_hold = hold;
	else
		ctx->hold = hold;
	return 0;
}

/* rules_hold - the transaction's hold, else the connection's, else NULL. */
const struct rule_hold *rules_hold(const struct rule_ctx *ctx)
{
	if (ctx->tx_hold.set)
		return &ctx->tx_hold;
	return ctx->hold.set ? &ctx->hold : NULL;
}

const luaL_Reg ctx_edit_methods[] = {
    {"rewrite_mail_from", lua_ctx_rewrite_mail_from},
    {"add_rcpt", lua_ctx_add_rcpt},
    {"remove_rcpt", lua_ctx_remove_rcpt},
    {"rewrite_rcpt", lua_ctx_rewrite_rcpt},
    {"bcc", lua_ctx_bcc},
    {"has_header", lua_ctx_has_header},
    {"get_header", lua_ctx_get_header},
    {"get_all_headers", lua_ctx_get_all_headers},
    {"count_header", lua_ctx_count_header},
    {"append_header", lua_ctx_append_header},
    {"prepend_header", lua_ctx_prepend_header},
    {"set_header", lua_ctx_set_header},
    {"rename_header", lua_ctx_rename_header},
    {"remove_header", lua_ctx_remove_header},
    {"add_to", lua_ctx_add_to},
    {"remove_to", lua_ctx_remove_to},
    {"rewrite_to", lua_ctx_rewrite_to},
    {"hold", lua_ctx_hold},
    {NULL, NULL},
};
