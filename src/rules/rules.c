/*
 * rules.c - compile the administrator's Lua rules and run them per stage.
 *
 * Each ruleset owns one Lua 5.4 state, built in the master and inherited by
 * the sessions it forks. The state is a sandbox in the manner of Redis's
 * scripting: an allow-list of libraries (base without file access or
 * bytecode, string, table, math, utf8, a safe os), reads of undefined
 * globals raise, and once the file is loaded the globals are locked so a
 * rule cannot leave state behind by mistake. Every rule call is protected:
 * an instruction budget enforced by a count hook that, once spent, fires on
 * every instruction so no pcall can swallow it, and a memory budget enforced
 * by the allocator. A rule that fails in any way yields RULE_ERROR, which
 * the caller answers with 451 4.3.0: never a crash, never an accept.
 *
 * Loading runs the file's top level in the master (at start, and on SIGHUP
 * inside its event loop: no connection is accepted meanwhile), in vsmtpd -t
 * and in vsmtpctl, with no instruction or memory budget, since it may read
 * big lists. It is bounded by time instead: the same count hook stops the
 * load once the thread used [rules] load_time_limit of CPU time (250 ms by
 * default). An instruction budget could not bound it, as one instruction
 * may call a library function that runs for long; CPU time rather than wall
 * time, so that a busy host or a slow disk does not refuse good rules.
 * Reading the CPU clock is a system call, so the hook (every
 * RULES_HOOK_STEP instructions) reads the cheap wall clock first and the
 * CPU clock only once the limit has passed on the wall clock, since the
 * thread cannot have used more CPU than that. The clocks are read between
 * instructions and once at the end, so one library call (a list of
 * millions of entries) may overrun the limit by its own length, but a load
 * over the limit always fails: an administrator with big lists raises it.
 * Loading new rules in another process or thread would keep the master
 * serving, but the sessions must be forked from the state it built.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>

#include "config.h"
#include "log.h"
#include "rule_objects.h"
#include "rules_dns.h"
#include "rules_internal.h"
#include "spool.h"

#define RULES_HOOK_STEP 1000       /* instructions between two budget checks */
#define RULES_LOAD_MS_DEFAULT 250u /* limits.load_ms when 0 */
#define RULES_FILE_MAX (16u << 20)
#define RULES_STATUS_MT "vsmtpd.status"
#define RULES_CODE_MT "vsmtpd.code"
#define RULES_RULE_MT "vsmtpd.rule"
#define RULES_MODULES_KEY "vsmtpd.modules"

static const char *const stage_names[RULE_STAGE_COUNT] = {
	"connect", "authenticate", "helo", "mail", "rcpt", "preq", "postq", "delivery",
};

static const char *const hook_names[RULE_STAGE_COUNT] = {
	"on_connect",     "on_auth",        "on_helo",       "on_mail_from",
	"on_rcpt_to",     "on_pre_queue",   "on_post_queue", "on_delivery",
};

static const char *const status_names[] = {
	[RULE_NEXT] = "next",     [RULE_ACCEPT] = "accept", [RULE_FACCEPT] = "faccept",
	[RULE_DENY] = "deny",     [RULE_REJECT] = "reject", [RULE_INFO] = "info",
	[RULE_QUARANTINE] = "quarantine", [RULE_ERROR] = "error",
};

/* What status.*() returns: a status userdata. */
struct rules_status {
	enum rule_status status;
	int has_reply;
	struct rule_reply reply;
	char quarantine[RULE_QUARANTINE_MAX];
};

/* rules_stage_name - the stage's name. */
const char *rules_stage_name(enum rule_stage stage)
{
	return stage < RULE_STAGE_COUNT ? stage_names[stage] : "?";
}

/* rules_hook_name - the stage's hook function name. */
const char *rules_hook_name(enum rule_stage stage)
{
	return stage < RULE_STAGE_COUNT ? hook_names[stage] : "?";
}

/* rules_status_name - the status's name. */
const char *rules_status_name(enum rule_status status)
{
	return status <= RULE_ERROR ? status_names[status] : "?";
}

/* rules_stage_from_name - look a stage up by name. */
int rules_stage_from_name(const char *name)
{
	int i;

	for (i = 0; i < RULE_STAGE_COUNT; i++)
		if (strcmp(name, stage_names[i]) == 0)
			return i;
	return -1;
}

/* rules_stage_from_hook - look a stage up by hook name. */
int rules_stage_from_hook(const char *name)
{
	int i;

	for (i = 0; i < RULE_STAGE_COUNT; i++)
		if (strcmp(name, hook_names[i]) == 0)
			return i;
	return -1;
}

/* rules_from_state - the ruleset is kept in the state's extra space. */
struct rules *rules_from_state(lua_State *L)
{
	return *(struct rules **)lua_getextraspace(L);
}

/* rules_alloc - the Lua allocator: counts bytes and refuses past the limit. */
static void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct rules_mem *mem = ud;
	void *p;

	if (ptr == NULL)
		osize = 0;
	if (nsize == 0) {
		free(ptr);
		mem->used -= osize;
		return NULL;
	}
	if (nsize > osize && mem->used + (nsize - osize) > mem->limit) {
		mem->exceeded = 1;
		return NULL;
	}
	if ((p = realloc(ptr, nsize)) == NULL)
		return NULL;
	mem->used = mem->used - osize + nsize;
	return p;
}

/* rules_clock_ns - a clock in nanoseconds. */
static uint64_t rules_clock_ns(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* rules_budget_spent - past the load's CPU time while loading (the cheap wall
 * clock first: the thread cannot have used more CPU than time passed), else
 * past the rule call's instruction budget. */
static int rules_budget_spent(const struct rules *r)
{
	if (r->load.cpu_deadline_ns != 0)
		return rules_clock_ns(CLOCK_MONOTONIC) > r->load.wall_deadline_ns &&
		       rules_clock_ns(CLOCK_THREAD_CPUTIME_ID) > r->load.cpu_deadline_ns;
	return r->steps > r->limits.instructions;
}

/* rules_budget_hook - the count hook: stop a rule, or a load, that ran out of budget. */
static void rules_budget_hook(lua_State *L, lua_Debug *ar)
{
	struct rules *r = rules_from_state(L);

	(void)ar;
	r->steps += RULES_HOOK_STEP;
	if (!r->killed && !rules_budget_spent(r))
		return;
	/* From now on every instruction raises, so a pcall in the rule only
	 * delays the end by one instruction. */
	r->killed = 1;
	lua_sethook(L, rules_budget_hook, LUA_MASKCOUNT, 1);
	if (r->load.cpu_deadline_ns != 0)
		luaL_error(L, "loading took too long");
	luaL_error(L, "instruction budget exceeded (%I instructions)",
		   (lua_Integer)r->limits.instructions);
}

/* The process's overrun handler (one Lua state runs at a time per process). */
static volatile rules_overrun_fn rules_overrun;

/* rules_set_overrun - what to do, signal-safely, before exiting on overrun. */
void rules_set_overrun(rules_overrun_fn fn)
{
	rules_overrun = fn;
}

/* rules_overrun_signal - SIGVTALRM: a rule call used up its CPU time. */
static void rules_overrun_signal(int signo)
{
	static const char msg[] = "a rule ran past its CPU time limit ([rules] time_limit): stopped\n";
	rules_overrun_fn fn = rules_overrun;

	(void)signo;
	if (fn != NULL)
		fn();
	else if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		(void)0;
	_exit(RULES_EXIT_OVERRUN);
}

/* rules_cpu_timer - arm (ms > 0) or disarm the CPU timer of a rule call. */
static void rules_cpu_timer(unsigned ms)
{
	static int installed;
	struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
	struct sigaction sa;

	if (ms > 0 && !installed) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = rules_overrun_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGVTALRM, &sa, NULL);
		installed = 1;
	}
	setitimer(ITIMER_VIRTUAL, &it, NULL);
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

static int lua_status_next(lua_State *L)
{
	/* The most common answer by far: one shared object, no allocation. */
	lua_pushvalue(L, lua_upvalueindex(1));
	return 1;
}

static int lua_status_accept(lua_State *L)
{
	return rules_status_with_code(L, RULE_ACCEPT, 0);
}

static int lua_status_faccept(lua_State *L)
{
	return rules_status_with_code(L, RULE_FACCEPT, 0);
}

static int lua_status_deny(lua_State *L)
{
	return rules_status_with_code(L, RULE_DENY, 0);
}

static int lua_status_reject(lua_State *L)
{
	return rules_status_with_code(L, RULE_REJECT, 0);
}

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
static void rules_open_status(lua_State *L)
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
	lua_pop(L, 1);
	luaL_newmetatable(L, RULES_STATUS_MT);
	lua_pushcfunction(L, lua_status_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushcfunction(L, lua_status_index);
	lua_setfield(L, -2, "__index");
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

/* ---- rule "name" (fn) and action "name" (fn) ------------------------- */

/* rules_source_name - a chunk's name without Lua's '@' or '=' mark: the
 * whole path, where Lua's own short_src cuts long ones. */
static const char *rules_source_name(const char *source)
{
	return source[0] == '@' || source[0] == '=' ? source + 1 : source;
}

/* rules_where - "file:line" of the Lua code level levels up the stack. */
static void rules_where(lua_State *L, int level, char *buf, size_t len)
{
	lua_Debug ar;

	if (lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
		snprintf(buf, len, "%s:%d", rules_source_name(ar.source), ar.currentline);
	else
		snprintf(buf, len, "?");
}

/* lua_rule_body - the second call of rule "name" (fn): build the rule. */
static int lua_rule_body(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_createtable(L, 0, 4);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_setfield(L, -2, "kind");
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_setfield(L, -2, "name");
	lua_pushvalue(L, lua_upvalueindex(3));
	lua_setfield(L, -2, "where");
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "fn");
	luaL_setmetatable(L, RULES_RULE_MT);
	return 1;
}

/* rules_is_rule - whether the value at idx is what rule or action built. */
static int rules_is_rule(lua_State *L, int idx)
{
	int is;

	if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
		return 0;
	luaL_getmetatable(L, RULES_RULE_MT);
	is = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return is;
}

/* rules_rule_head - rule "name" / action "name": wait for the function. */
static int rules_rule_head(lua_State *L, const char *kind)
{
	char where[256];
	size_t len;

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "%s without a name: write %s \"name\" (function(ctx) ... end)",
				  kind, kind);
	luaL_checklstring(L, 1, &len);
	if (len == 0 || len >= RULE_NAME_MAX)
		return luaL_error(L, "%s name must be 1 to %d bytes", kind, RULE_NAME_MAX - 1);
	rules_where(L, 1, where, sizeof(where));
	lua_pushstring(L, kind);
	lua_pushvalue(L, 1);
	lua_pushstring(L, where);
	lua_pushcclosure(L, lua_rule_body, 3);
	return 1;
}

static int lua_rule(lua_State *L)
{
	return rules_rule_head(L, "rule");
}

static int lua_action(lua_State *L)
{
	return rules_rule_head(L, "action");
}

/* ---- the sandbox ----------------------------------------------------- */

/* lua_log - log(level, message) into the daemon's log. */
static int lua_log(lua_State *L)
{
	static const struct {
		const char *name;
		int prio;
	} levels[] = {
		{"trace", LOG_DEBUG}, {"debug", LOG_DEBUG},    {"info", LOG_INFO},
		{"notice", LOG_NOTICE}, {"warn", LOG_WARNING}, {"warning", LOG_WARNING},
		{"error", LOG_ERR},   {"err", LOG_ERR},
	};
	const char *level = luaL_checkstring(L, 1);
	const char *msg = luaL_tolstring(L, 2, NULL);
	char where[256];
	size_t i;

	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(level, levels[i].name) == 0)
			break;
	if (i == sizeof(levels) / sizeof(levels[0]))
		return luaL_error(L, "log level \"%s\": use debug, info, notice, warn or error",
				  level);
	rules_where(L, 1, where, sizeof(where));
	log_msg(levels[i].prio, "rules: %s: %s", where, msg);
	return 0;
}

/* lua_print - print(...) goes to the log at debug level, not to stdout. */
static int lua_print(lua_State *L)
{
	luaL_Buffer b;
	int i, n = lua_gettop(L);
	char where[256];

	luaL_buffinit(L, &b);
	for (i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	rules_where(L, 1, where, sizeof(where));
	log_debug("rules: %s: %s", where, lua_tostring(L, -1));
	return 0;
}

/* lua_load_text - load(chunk [, name [, mode [, env]]]) for source text only. */
static int lua_load_text(lua_State *L)
{
	size_t len;
	const char *chunk = luaL_checklstring(L, 1, &len);
	const char *name = luaL_optstring(L, 2, "=(load)");
	int env = !lua_isnone(L, 4);

	if (luaL_loadbufferx(L, chunk, len, name, "t") != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	if (env) {
		lua_pushvalue(L, 4);
		if (!lua_setupvalue(L, -2, 1))
			lua_pop(L, 1);
	}
	return 1;
}

/* lua_setmetatable_safe - setmetatable() that refuses __gc: Lua runs
 * finalizers with hooks off, where no budget could stop an endless loop. */
static int lua_setmetatable_safe(lua_State *L)
{
	lua_pushliteral(L, "__gc");
	if (lua_istable(L, 2) && lua_rawget(L, 2) != LUA_TNIL)
		return luaL_error(L, "__gc metamethods are not available to rules");
	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 2, 1);
	return 1;
}

/* lua_collectgarbage - only "count": a rule may look, not steer the collector. */
static int lua_collectgarbage_count(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "count");

	if (strcmp(opt, "count") != 0)
		return luaL_error(L, "collectgarbage(\"%s\") is not available to rules", opt);
	lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) + lua_gc(L, LUA_GCCOUNTB) / 1024.0);
	return 1;
}

/* rules_push_lower - push s lowercased (ASCII): domain names compare so. */
static void rules_push_lower(lua_State *L, const char *s)
{
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	for (; *s; s++)
		luaL_addchar(&b, *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s);
	luaL_pushresult(&b);
}

/* lua_hostname - hostname(): the server's name from the configuration. */
static int lua_hostname(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	return 1;
}

/* rules_module_path - "a.b" to "<dir>/a/b.lua"; raises on a name that could
 * leave the folder. */
static void rules_module_path(lua_State *L, const char *dir, const char *name, luaL_Buffer *b)
{
	const char *p;

	if (*name == '\0' || *name == '.')
		luaL_error(L, "module name \"%s\": letters, digits, '_' and '.' only", name);
	for (p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || (*p == '.' && p[1] != '.' && p[1])))
			luaL_error(L, "module name \"%s\": letters, digits, '_' and '.' only", name);
	luaL_buffinit(L, b);
	luaL_addstring(b, dir);
	luaL_addchar(b, '/');
	for (p = name; *p; p++)
		luaL_addchar(b, *p == '.' ? '/' : *p);
	luaL_addstring(b, ".lua");
	luaL_pushresult(b);
}

/* lua_require - require(name): a module from the rules folder, loaded once. */
static int lua_require(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	luaL_Buffer b;

	lua_getfield(L, LUA_REGISTRYINDEX, RULES_MODULES_KEY);
	if (lua_getfield(L, -1, name) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	if (lua_getfield(L, LUA_REGISTRYINDEX, RULES_DIR_KEY) != LUA_TSTRING)
		return luaL_error(L, "require(\"%s\"): modules are loaded with the rules, at the "
				     "top level of a rules file",
				  name);
	rules_module_path(L, lua_tostring(L, -1), name, &b);
	if (luaL_loadfilex(L, lua_tostring(L, -1), "t") != LUA_OK)
		return lua_error(L);
	lua_pushstring(L, name);
	lua_call(L, 1, 1);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, -5, name); /* the modules table */
	return 1;
}

/* lua_global_undefined - __index of _G: reading an undefined global raises. */
static int lua_global_undefined(lua_State *L)
{
	return luaL_error(L, "undefined global \"%s\"", luaL_tolstring(L, 2, NULL));
}

/* lua_global_locked - __newindex of _G once loaded: rules keep no globals. */
static int lua_global_locked(lua_State *L)
{
	return luaL_error(L, "assignment to undeclared global \"%s\" (use local)",
			  luaL_tolstring(L, 2, NULL));
}

/* rules_open_os - os.time, os.date, os.clock and nothing else. */
static void rules_open_os(lua_State *L)
{
	static const char *const keep[] = {"time", "date", "clock", "difftime"};
	size_t i;

	luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
	lua_newtable(L);
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		lua_getfield(L, -2, keep[i]);
		lua_setfield(L, -2, keep[i]);
	}
	lua_setglobal(L, LUA_OSLIBNAME);
	lua_pop(L, 1);
}

/* rules_open_sandbox - the libraries and globals rules may use. */
static void rules_open_sandbox(lua_State *L, const struct rules_settings *settings)
{
	static const char *const drop[] = {"dofile", "loadfile", "rawset", "warn", "require"};
	static const luaL_Reg libs[] = {
		{LUA_GNAME, luaopen_base},         {LUA_STRLIBNAME, luaopen_string},
		{LUA_TABLIBNAME, luaopen_table},   {LUA_MATHLIBNAME, luaopen_math},
		{LUA_UTF8LIBNAME, luaopen_utf8},   {NULL, NULL},
	};
	const luaL_Reg *lib;
	size_t i;

	for (lib = libs; lib->func; lib++) {
		luaL_requiref(L, lib->name, lib->func, 1);
		lua_pop(L, 1);
	}
	rules_open_os(L);
	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
		lua_pushnil(L);
		lua_setglobal(L, drop[i]);
	}
	lua_getglobal(L, LUA_STRLIBNAME);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump"); /* bytecode out is bytecode in elsewhere */
	lua_pop(L, 1);
	lua_pushcfunction(L, lua_load_text);
	lua_setglobal(L, "load");
	lua_getglobal(L, "setmetatable");
	lua_pushcclosure(L, lua_setmetatable_safe, 1);
	lua_setglobal(L, "setmetatable");
	lua_pushcfunction(L, lua_collectgarbage_count);
	lua_setglobal(L, "collectgarbage");
	lua_pushcfunction(L, lua_print);
	lua_setglobal(L, "print");
	lua_pushcfunction(L, lua_log);
	lua_setglobal(L, "log");
	lua_pushcfunction(L, lua_require);
	lua_setglobal(L, "require");
	lua_pushcfunction(L, lua_user_exist);
	lua_setglobal(L, "user_exist");
	lua_pushcfunction(L, lua_send_mail);
	lua_setglobal(L, "send_mail");
	lua_pushcfunction(L, lua_rule);
	lua_setglobal(L, "rule");
	lua_pushcfunction(L, lua_action);
	lua_setglobal(L, "action");
	rules_push_lower(L, settings->hostname ? settings->hostname : "localhost");
	lua_pushcclosure(L, lua_hostname, 1);
	lua_setglobal(L, "hostname");
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, RULES_MODULES_KEY);
	luaL_newmetatable(L, RULES_RULE_MT);
	lua_pushliteral(L, "rule");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	rules_open_status(L);
	rule_objects_open(L);
	rules_ctx_open(L);
}

/* rules_push_words - push the words of a space-separated list as an array. */
static void rules_push_words(lua_State *L, const char *list)
{
	const char *p, *sp;

	lua_newtable(L);
	for (p = list ? list : ""; *p; p = sp) {
		while (*p == ' ')
			p++;
		if ((sp = strchr(p, ' ')) == NULL)
			sp = p + strlen(p);
		if (sp > p) {
			lua_pushlstring(L, p, (size_t)(sp - p));
			lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
		}
	}
}

/* rules_open_config - the `config` table: settings the policy builds on,
 * config.local_domains (a domain list) and config.trusted_networks (a netset). */
static int rules_open_config(lua_State *L)
{
	const struct rules_settings *settings = lua_touserdata(L, 1);

	lua_newtable(L);
	rules_push_lower(L, settings->hostname ? settings->hostname : "localhost");
	lua_setfield(L, -2, "hostname");
	lua_getglobal(L, "domain_list");
	rules_push_words(L, settings->local_domains);
	lua_call(L, 1, 1);
	lua_setfield(L, -2, "local_domains");
	lua_getglobal(L, "netset");
	rules_push_words(L, settings->trusted_networks);
	lua_call(L, 1, 1);
	lua_setfield(L, -2, "trusted_networks");
	lua_setglobal(L, "config");
	return 0;
}

/* ---- loading --------------------------------------------------------- */

/* rules_traceback - the message handler: keep the error, add nothing. Lua
 * already prefixes errors raised in rules with file:line. */
static int rules_msgh(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TSTRING)
		return 1;
	if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
		return 1;
	lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	return 1;
}

/* rules_read_file - the whole file, for the scanner; NULL with err. */
static char *rules_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	ssize_t n;
	size_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > RULES_FILE_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most %u MB", path,
			 RULES_FILE_MAX >> 20);
		close(fd);
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		close(fd);
		return NULL;
	}
	while (off < (size_t)st.st_size && (n = read(fd, buf + off, (size_t)st.st_size - off)) > 0)
		off += (size_t)n;
	close(fd);
	buf[off] = '\0';
	*len = off;
	return buf;
}

/* rules_fail - the error at msg into err, naming the file in full: Lua
 * shortens long chunk names to "...tail", and some messages name none. */
static void rules_fail(struct rules *r, const char *msg, char *err, size_t errlen)
{
	size_t plen = strlen(r->path), tail;
	const char *colon;

	if (msg == NULL)
		msg = "unknown error";
	colon = strchr(msg, ':');
	if (strncmp(msg, "...", 3) == 0 && colon != NULL && (tail = (size_t)(colon - msg - 3)) > 0 &&
	    tail <= plen && strncmp(r->path + plen - tail, msg + 3, tail) == 0)
		snprintf(err, errlen, "%s%s", r->path, colon);
	else if (strncmp(msg, r->path, plen) == 0 || (msg[0] == '/' && colon != NULL))
		snprintf(err, errlen, "%s", msg);
	else
		snprintf(err, errlen, "%s: %s", r->path, msg);
}

/* rules_add_stage - append the rules of list (at idx) to the stage's array. */
static int rules_add_stage(struct rules *r, int stage, int idx, int line, char *err,
			   size_t errlen)
{
	lua_State *L = r->L;
	lua_Integer i, n;

	idx = lua_absindex(L, idx);
	if (!lua_istable(L, idx) || rules_is_rule(L, idx)) {
		snprintf(err, errlen, "%s:%d: stage \"%s\" must be a list of rules: { rule \"name\" "
				      "(function(ctx) ... end), ... }",
			 r->path, line, stage_names[stage]);
		return -1;
	}
	if (r->stage_ref[stage] != LUA_NOREF) {
		snprintf(err, errlen, "%s:%d: stage \"%s\" declared twice (as a table key and as "
				      "function %s)",
			 r->path, line, stage_names[stage], hook_names[stage]);
		return -1;
	}
	n = (lua_Integer)lua_rawlen(L, idx);
	lua_createtable(L, (int)n, 0);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		if (!rules_is_rule(L, -1)) {
			snprintf(err, errlen, "%s:%d: stage \"%s\", item %lld is not a rule or action "
					      "(write rule \"name\" (function(ctx) ... end))",
				 r->path, line, stage_names[stage], (long long)i);
			lua_pop(L, 2);
			return -1;
		}
		lua_rawseti(L, -2, i);
	}
	lua_pushnil(L);
	if (lua_next(L, idx) != 0) {
		/* only 1..n allowed: a key elsewhere is a rule that would never run */
		do {
			lua_pop(L, 1);
			if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
			    lua_tointeger(L, -1) > n) {
				snprintf(err, errlen, "%s:%d: stage \"%s\" holds a named entry; a stage "
						      "is a plain list of rules",
					 r->path, line, stage_names[stage]);
				lua_pop(L, 2);
				return -1;
			}
		} while (lua_next(L, idx) != 0);
	}
	r->stage_count[stage] = (size_t)n;
	r->stage_ref[stage] = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* rules_collect_table - the stages of the table the file returned (at -1). */
static int rules_collect_table(struct rules *r, const struct rules_scan *scan, char *err,
			       size_t errlen)
{
	lua_State *L = r->L;
	int stage, t = lua_gettop(L);

	lua_pushnil(L);
	while (lua_next(L, t) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING ||
		    (stage = rules_stage_from_name(lua_tostring(L, -2))) < 0) {
			const char *name = luaL_tolstring(L, -2, NULL);

			snprintf(err, errlen, "%s:%d: unknown stage \"%s\" (stages: connect, "
					      "authenticate, helo, mail, rcpt, preq, postq, delivery)",
				 r->path, rules_scan_line_of(scan, name, 0), name);
			return -1;
		}
		if (rules_add_stage(r, stage, -1, scan->stage_line[stage], err, errlen) < 0)
			return -1;
		lua_pop(L, 1);
	}
	return 0;
}

/* rules_collect_hooks - on_<stage> functions become one-rule stages; any
 * other global on_* function is a typo that would never run. */
static int rules_collect_hooks(struct rules *r, const struct rules_scan *scan, char *err,
			       size_t errlen)
{
	lua_State *L = r->L;
	lua_Debug ar;
	int stage;

	lua_pushglobaltable(L);
	lua_pushnil(L);
	while (lua_next(L, -2) != 0) {
		if (lua_type(L, -2) == LUA_TSTRING && strncmp(lua_tostring(L, -2), "on_", 3) == 0 &&
		    lua_isfunction(L, -1)) {
			const char *name = lua_tostring(L, -2);

			if ((stage = rules_stage_from_hook(name)) < 0) {
				lua_pushvalue(L, -1);
				lua_getinfo(L, ">S", &ar);
				snprintf(err, errlen, "%s:%d: unknown hook function %s (hooks: "
						      "on_connect, on_auth, on_helo, on_mail_from, "
						      "on_rcpt_to, on_pre_queue, on_post_queue, "
						      "on_delivery)",
					 r->path, ar.linedefined, name);
				return -1;
			}
			lua_pushvalue(L, -1);
			lua_getinfo(L, ">S", &ar);
			lua_createtable(L, 1, 0);
			lua_createtable(L, 0, 4);
			lua_pushliteral(L, "rule");
			lua_setfield(L, -2, "kind");
			lua_pushstring(L, name);
			lua_setfield(L, -2, "name");
			lua_pushfstring(L, "%s:%d", rules_source_name(ar.source), ar.linedefined);
			lua_setfield(L, -2, "where");
			lua_pushvalue(L, -3);
			lua_setfield(L, -2, "fn");
			luaL_setmetatable(L, RULES_RULE_MT);
			lua_rawseti(L, -2, 1);
			if (rules_add_stage(r, stage, -1, scan->hook_line[stage] ? scan->hook_line[stage]
										  : ar.linedefined,
					    err, errlen) < 0)
				return -1;
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return 0;
}

/* rules_lock_globals - from now on, undefined reads and any new global raise. */
static void rules_set_global_guard(lua_State *L, int locked)
{
	lua_pushglobaltable(L);
	lua_newtable(L);
	lua_pushcfunction(L, lua_global_undefined);
	lua_setfield(L, -2, "__index");
	if (locked) {
		lua_pushcfunction(L, lua_global_locked);
		lua_setfield(L, -2, "__newindex");
	}
	lua_pushliteral(L, "the global table is protected");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_pop(L, 1);
}

static int rules_run_file(struct rules *r, const struct rules_settings *settings,
			  const struct rules_scan *scan, char *err, size_t errlen);

/* rules_compile - read, scan and compile the file; 0 or -1 with err. */
static int rules_compile(struct rules *r, const struct rules_settings *settings, char *err,
			 size_t errlen)
{
	struct rules_scan scan;
	char *text;
	size_t len;
	int rc;

	if ((text = rules_read_file(r->path, &len, err, errlen)) == NULL)
		return -1;
	rc = rules_scan_source(r->path, text, len, &scan, err, errlen);
	scan.text = text;
	scan.len = len;
	if (rc == 0)
		rc = rules_run_file(r, settings, &scan, err, errlen);
	free(text);
	return rc;
}

/* rules_load_ms - the CPU time loading may take. */
static unsigned rules_load_ms(const struct rules *r)
{
	return r->limits.load_ms ? r->limits.load_ms : RULES_LOAD_MS_DEFAULT;
}

/* rules_run_top_level - compile and run the file's top level under the load
 * deadline, the message handler at -1; leaves the result, returns the status. */
static int rules_run_top_level(struct rules *r)
{
	lua_State *L = r->L;
	uint64_t limit_ns;
	int rc;

	r->steps = 0;
	r->killed = 0;
	limit_ns = (uint64_t)rules_load_ms(r) * 1000000u;
	r->load.wall_deadline_ns = rules_clock_ns(CLOCK_MONOTONIC) + limit_ns;
	r->load.cpu_deadline_ns = rules_clock_ns(CLOCK_THREAD_CPUTIME_ID) + limit_ns;
	lua_sethook(L, rules_budget_hook, LUA_MASKCOUNT, RULES_HOOK_STEP);
	rc = luaL_loadfilex(L, r->path, "t");
	if (rc == LUA_OK)
		rc = lua_pcall(L, 0, 1, -2);
	lua_sethook(L, NULL, 0, 0);
	/* A pcall in the file may have caught the last raise and returned, and
	 * a last long library call (a big list) saw no hook after it. */
	if (rc == LUA_OK && (r->killed || rules_budget_spent(r)))
		r->killed = 1;
	r->load.cpu_deadline_ns = 0;
	return rc == LUA_OK && r->killed ? LUA_ERRRUN : rc;
}

/* rules_run_file - run the file in the sandbox and collect its stages. */
static int rules_run_file(struct rules *r, const struct rules_settings *settings,
			  const struct rules_scan *scan, char *err, size_t errlen)
{
	lua_State *L = r->L;
	char *slash;
	int rc;

	rules_open_sandbox(L, settings);
	if (rules_dns_open(L, settings->dns_servers, settings->dns_timeout_ms, err, errlen) < 0)
		return -1;
	lua_pushcfunction(L, rules_open_config);
	lua_pushlightuserdata(L, (void *)settings);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		rules_fail(r, lua_tostring(L, -1), err, errlen);
		return -1;
	}
	rules_set_global_guard(L, 0);
	slash = strrchr(r->path, '/');
	lua_pushlstring(L, r->path, slash > r->path ? (size_t)(slash - r->path) : 1);
	lua_setfield(L, LUA_REGISTRYINDEX, RULES_DIR_KEY);
	lua_pushcfunction(L, rules_msgh);
	rc = rules_run_top_level(r);
	if (rc != LUA_OK) {
		if (r->killed)
			snprintf(err, errlen, "%s: loading took longer than %u ms of CPU time (an endless "
					      "loop outside the rules? big lists need a higher [rules] "
					      "load_time_limit)",
				 r->path, rules_load_ms(r));
		else
			rules_fail(r, lua_tostring(L, -1), err, errlen);
		return -1;
	}
	lua_pushnil(L);
	lua_setfield(L, LUA_REGISTRYINDEX, RULES_DIR_KEY);
	if (!lua_isnil(L, -1) && !lua_istable(L, -1)) {
		snprintf(err, errlen, "%s: the file must return a table of stages (or nothing, with "
				      "on_<stage> functions), not a %s",
			 r->path, luaL_typename(L, -1));
		return -1;
	}
	if (lua_istable(L, -1) && rules_collect_table(r, scan, err, errlen) < 0)
		return -1;
	lua_settop(L, 0);
	if (rules_collect_hooks(r, scan, err, errlen) < 0)
		return -1;
	rules_set_global_guard(L, 1);
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT);
	return 0;
}

/* rules_load - compile a rules file into a new ruleset. */
struct rules *rules_load(const char *path, const struct rules_limits *limits,
			 const struct rules_settings *settings, char *err, size_t errlen)
{
	struct rules *r = calloc(1, sizeof(*r));
	int i;

	if (r == NULL || (r->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(r);
		return NULL;
	}
	r->limits = *limits;
	/* Loading is the administrator's own code and lists: no budget then. */
	r->mem.limit = SIZE_MAX;
	for (i = 0; i < RULE_STAGE_COUNT; i++)
		r->stage_ref[i] = LUA_NOREF;
	if ((r->L = lua_newstate(rules_alloc, &r->mem)) == NULL) {
		snprintf(err, errlen, "%s: cannot create a Lua state", path);
		rules_free(r);
		return NULL;
	}
	*(struct rules **)lua_getextraspace(r->L) = r;
	if (rules_compile(r, settings, err, errlen) < 0) {
		rules_free(r);
		return NULL;
	}
	return r;
}

/* rules_limits_of - the limits a configuration sets for its rules. */
struct rules_limits rules_limits_of(const struct config *cfg)
{
	return (struct rules_limits){.instructions = cfg->rules_instruction_limit,
				     .memory = cfg->rules_memory_limit,
				     .cpu_ms = cfg->rules_time_limit_ms,
				     .load_ms = cfg->rules_load_time_limit_ms};
}

/* rules_load_config - compile the rules a configuration names. */
struct rules *rules_load_config(const struct config *cfg, char *err, size_t errlen)
{
	struct rules_limits limits = rules_limits_of(cfg);
	struct rules_settings settings = {.hostname = cfg->hostname,
					  .local_domains = cfg->local_domains,
					  .trusted_networks = cfg->trusted_networks,
					  .dns_servers = cfg->rules_dns_servers,
					  .dns_timeout_ms = cfg->rules_dns_timeout_ms};

	return rules_load(cfg->rules_file, &limits, &settings, err, errlen);
}

/* rules_free - close the state. */
void rules_free(struct rules *r)
{
	if (r == NULL)
		return;
	if (r->L != NULL)
		lua_close(r->L);
	free(r->path);
	free(r);
}

/* rules_path - r->path. */
const char *rules_path(const struct rules *r)
{
	return r->path;
}

/* rules_stage_used - any rule in the stage? */
int rules_stage_used(const struct rules *r, enum rule_stage stage)
{
	return r != NULL && stage < RULE_STAGE_COUNT && r->stage_count[stage] > 0;
}

/* rules_count - the stage's number of rules and actions. */
size_t rules_count(const struct rules *r, enum rule_stage stage)
{
	return r != NULL && stage < RULE_STAGE_COUNT ? r->stage_count[stage] : 0;
}

/* rules_reseed - new seeds for math.random: every session is forked from
 * the same state and would otherwise draw the same numbers. */
void rules_reseed(struct rules *r)
{
	uint64_t seed[2] = {0, 0};
	lua_State *L;
	int top;

	if (r == NULL || getrandom(seed, sizeof(seed), 0) != sizeof(seed))
		return;
	L = r->L;
	top = lua_gettop(L);
	lua_getglobal(L, LUA_MATHLIBNAME);
	if (lua_istable(L, -1) && lua_getfield(L, -1, "randomseed") == LUA_TFUNCTION) {
		lua_pushinteger(L, (lua_Integer)seed[0]);
		lua_pushinteger(L, (lua_Integer)seed[1]);
		if (lua_pcall(L, 2, 0, 0) != LUA_OK)
			log_warn("rules: cannot seed math.random: %s", lua_tostring(L, -1));
	}
	lua_settop(L, top);
}

/* rules_set_trace - report every rule's outcome to fn. */
void rules_set_trace(struct rules *r, rules_trace_fn fn, void *arg)
{
	r->trace = fn;
	r->trace_arg = arg;
}

/* ---- running --------------------------------------------------------- */

/* rules_default_reply - the code a refusal sends when the rule gave none. */
static void rules_default_reply(struct rule_verdict *v)
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

/* rules_call - run the rule at rule_idx with a fresh budget. Leaves its
 * result, or the error message, on the stack; returns the pcall status. */
static int rules_call(struct rules *r, int rule_idx, int ctx_idx)
{
	lua_State *L = r->L;
	int rc;

	r->steps = 0;
	r->killed = 0;
	r->mem.exceeded = 0;
	r->mem.limit = r->mem.used + (size_t)r->limits.memory;
	lua_pushcfunction(L, rules_msgh);
	lua_getfield(L, rule_idx, "fn");
	lua_pushvalue(L, ctx_idx);
	lua_sethook(L, rules_budget_hook, LUA_MASKCOUNT, RULES_HOOK_STEP);
	if (r->limits.cpu_ms > 0)
		rules_cpu_timer(r->limits.cpu_ms);
	rc = lua_pcall(L, 1, 1, -3);
	if (r->limits.cpu_ms > 0)
		rules_cpu_timer(0);
	lua_sethook(L, NULL, 0, 0);
	r->mem.limit = SIZE_MAX;
	lua_remove(L, -2); /* the message handler */
	if (rc == LUA_OK && (r->killed || r->mem.exceeded)) {
		/* The rule caught the error itself and went on: it still failed. */
		lua_pop(L, 1);
		lua_pushstring(L, r->killed ? "instruction budget exceeded"
					    : "memory budget exceeded (not enough memory)");
		rc = LUA_ERRRUN;
	}
	return rc;
}

/* rules_trace_call - report one rule's outcome to the tracer. */
static void rules_trace_call(struct rules *r, enum rule_stage stage, const char *name,
			     const char *where, const char *result)
{
	if (r->trace != NULL)
		r->trace(r->trace_arg, stage, name, where, result);
}

/* rules_verdict_from - the verdict of a status userdata at -1. */
static void rules_verdict_from(const struct rules_status *st, struct rule_verdict *v)
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

/* rules_run_one - run the rule at -1; 1 when the stage is decided. */
static int rules_run_one(struct rules *r, enum rule_stage stage, int ctx_idx,
			 struct rule_verdict *v)
{
	lua_State *L = r->L;
	const char *name, *where, *kind;
	const struct rules_status *st;
	int decided = 0, rule_idx = lua_gettop(L);

	lua_getfield(L, -1, "name");
	lua_getfield(L, -2, "where");
	lua_getfield(L, -3, "kind");
	name = lua_tostring(L, -3);
	where = lua_tostring(L, -2);
	kind = lua_tostring(L, -1);
	if (rules_call(r, rule_idx, ctx_idx) != LUA_OK) {
		char msg[1024];

		rules_fail(r, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no message)",
			   msg, sizeof(msg));
		log_err("rules: %s \"%s\" (%s) at %s failed: %s", kind, name, where,
			stage_names[stage], msg);
		rules_trace_call(r, stage, name, where, "error");
		v->status = RULE_ERROR;
		rules_default_reply(v);
		decided = 1;
	} else if (strcmp(kind, "action") == 0) {
		rules_trace_call(r, stage, name, where, "action");
	} else if ((st = luaL_testudata(L, -1, RULES_STATUS_MT)) == NULL) {
		log_err("rules: rule \"%s\" (%s) at %s returned %s, not a status (return "
			"status.next(), status.deny(), ...)",
			name, where, stage_names[stage], luaL_typename(L, -1));
		rules_trace_call(r, stage, name, where, "error: no status");
		v->status = RULE_ERROR;
		rules_default_reply(v);
		decided = 1;
	} else {
		rules_verdict_from(st, v);
		rules_trace_call(r, stage, name, where, status_names[st->status]);
		decided = st->status != RULE_NEXT;
	}
	if (decided)
		snprintf(v->rule, sizeof(v->rule), "%s", name);
	lua_pop(L, 4);
	return decided;
}

/* rules_run - run a stage. */
enum rule_status rules_run(struct rules *r, enum rule_stage stage, struct rule_ctx *ctx,
			   struct rule_verdict *v)
{
	lua_State *L;
	lua_Integer i, n;
	int top, ctx_idx;

	memset(v, 0, sizeof(*v));
	v->status = RULE_NEXT;
	if (ctx->skip_all) {
		if (ctx->quarantine[0] != '\0') {
			v->status = RULE_QUARANTINE;
			snprintf(v->quarantine, sizeof(v->quarantine), "%s", ctx->quarantine);
		}
		return v->status;
	}
	if (!rules_stage_used(r, stage))
		return v->status;
	L = r->L;
	top = lua_gettop(L);
	rules_ctx_push(L, ctx, stage);
	ctx_idx = lua_gettop(L);
	r->current = ctx;
	r->mails_sent = 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->stage_ref[stage]);
	n = (lua_Integer)lua_rawlen(L, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		if (rules_run_one(r, stage, ctx_idx, v)) {
			lua_pop(L, 1);
			break;
		}
		lua_pop(L, 1);
	}
	if (v->status == RULE_NEXT)
		v->rule[0] = '\0';
	rules_ctx_invalidate(L, ctx_idx);
	r->current = NULL;
	lua_settop(L, top);
	if (v->status == RULE_FACCEPT)
		ctx->skip_all = 1;
	if (v->status == RULE_QUARANTINE) {
		ctx->skip_all = 1;
		snprintf(ctx->quarantine, sizeof(ctx->quarantine), "%s", v->quarantine);
	}
	return v->status;
}
