/*
 * rules_sandbox.c - the sandbox the rules run in: the restricted
 * environment, the memory budget of the allocator, the instruction budget
 * of the count hook, the CPU-time limit of a rule call (one timer per
 * process, see rules_cpu_timer) and of the load.
 *
 * The Lua state of a ruleset is a sandbox in the manner of Redis's
 * scripting: an allow-list of libraries (base without file access or
 * bytecode, string, table, math, utf8, a safe os), reads of undefined
 * globals raise, and once the file is loaded the globals are locked so a
 * rule cannot leave state behind by mistake. Every rule call is protected:
 * an instruction budget enforced by a count hook that, once spent, fires on
 * every instruction so no pcall can swallow it, and a memory budget enforced
 * by the allocator. Lua runs some code with hooks off, where no budget
 * reaches: a message handler called for an error raised in the hook (the
 * budget's own), and finalizers. So xpcall() calls no handler of the rule's
 * once the budget is spent, the engine's own handler then runs no
 * metamethod, and no __gc can be set (setmetatable() refuses it, the
 * engine's metatables are hidden). A rule that fails in any way yields RULE_ERROR, which
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
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "log.h"
#include "rule_objects.h"
#include "rules_internal.h"

#define RULES_HOOK_STEP 1000       /* instructions between two budget checks */
#define RULES_LOAD_MS_DEFAULT 250u /* limits.load_ms when 0 */
#define RULES_MODULES_KEY "vsmtpd.modules"

/* rules_alloc - the Lua allocator: counts bytes and refuses past the limit. */
void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
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

/* rules_push_spent - push what a spent budget says: the load's or the call's. */
static void rules_push_spent(lua_State *L, const struct rules *r)
{
	if (r->load.cpu_deadline_ns != 0)
		lua_pushliteral(L, "loading took too long");
	else
		lua_pushfstring(L, "instruction budget exceeded (%I instructions)",
				(lua_Integer)r->limits.instructions);
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
	luaL_where(L, 1);
	rules_push_spent(L, r);
	lua_concat(L, 2);
	lua_error(L);
}

/*
 * rules_guarded_handler - the message handler xpcall() passes on: the
 * rule's own (the upvalue), unless the budget is spent. Lua calls a message
 * handler where the error is raised, and the budget's error is raised
 * inside the count hook, where Lua runs no hook: a handler run then would
 * be out of every budget, an endless loop there out of reach of all but
 * the CPU time limit. So once the budget is spent no handler of the rule's
 * runs; the error passes as it is.
 */
static int rules_guarded_handler(lua_State *L)
{
	if (rules_from_state(L)->killed)
		return 1;
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* lua_xpcall_guarded - xpcall(f, msgh, ...) with msgh guarded, and once the
 * budget is spent the error raised again rather than returned. */
static int lua_xpcall_guarded(lua_State *L)
{
	struct rules *r = rules_from_state(L);
	int n = lua_gettop(L), status;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, rules_guarded_handler, 1);
	lua_replace(L, 2);
	lua_pushboolean(L, 1); /* the first result */
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2); /* f, handler, true, f, args... */
	status = lua_pcall(L, n - 2, LUA_MULTRET, 2);
	if (r->killed) {
		luaL_where(L, 1);
		rules_push_spent(L, r);
		lua_concat(L, 2);
		return lua_error(L);
	}
	if (status != LUA_OK) {
		lua_pushboolean(L, 0);
		lua_insert(L, -2);
		return 2;
	}
	return lua_gettop(L) - 2;
}

/* The process's overrun handler (one Lua state runs at a time per process). */
static volatile rules_overrun_fn rules_overrun;

/* The rule call under way, for the overrun handler (see rules.h). */
static volatile struct rules_running rules_now;

/* rules_set_overrun - what to do, signal-safely, before exiting on overrun. */
void rules_set_overrun(rules_overrun_fn fn)
{
	rules_overrun = fn;
}

/* rules_running - the rule call under way, NULL names between calls. */
const volatile struct rules_running *rules_running(void)
{
	return &rules_now;
}

/* rules_running_set - note the rule call about to start (rule NULL: none). */
void rules_running_set(enum rule_stage stage, const char *rule, const char *where)
{
	rules_now.stage = stage;
	rules_now.rule = rule;
	rules_now.where = where;
}

/*
 * The CPU limit of a rule call runs on one timer per process, armed at the
 * first call and left running: ITIMER_VIRTUAL with a period of a quarter
 * of [rules] time_limit, in user CPU time. Its signal only counts periods
 * while a call runs; a call that sees more than RULES_TIMER_TICKS of them
 * has used at least time_limit, and at most a quarter more. So a call
 * costs two memory writes instead of two setitimer() calls (which, for
 * the ten rules of a message, were a good part of what the rules cost the
 * session). The signal comes while the process runs its own code, never
 * inside a system call.
 */
#define RULES_TIMER_TICKS 4

static volatile sig_atomic_t rules_ticks = -1; /* periods of the call running; -1: none */
static unsigned rules_timer_ms;                 /* the limit armed in this process; 0: none */

/* rules_overrun_signal - SIGVTALRM: a period of CPU time went by; past the
 * limit, the rule call running is over. */
static void rules_overrun_signal(int signo)
{
	static const char msg[] = "a rule ran past its CPU time limit ([rules] time_limit): stopped\n";
	rules_overrun_fn fn = rules_overrun;

	(void)signo;
	if (rules_ticks < 0 || ++rules_ticks <= RULES_TIMER_TICKS)
		return;
	if (fn != NULL)
		fn();
	else if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		(void)0;
	_exit(RULES_EXIT_OVERRUN);
}

/* rules_timer_forked - in a new child: it has no timer running (timers
 * do not survive fork), whatever its parent had. */
static void rules_timer_forked(void)
{
	rules_timer_ms = 0;
	rules_ticks = -1;
}

/* rules_cpu_timer - make sure the process's CPU timer runs for a limit of ms. */
static void rules_cpu_timer(unsigned ms)
{
	static int installed;
	uint64_t period_us = (uint64_t)ms * (1000u / RULES_TIMER_TICKS);
	struct itimerval it = {{(time_t)(period_us / 1000000), (suseconds_t)(period_us % 1000000)},
			       {(time_t)(period_us / 1000000), (suseconds_t)(period_us % 1000000)}};
	struct sigaction sa;

	if (ms == rules_timer_ms)
		return;
	if (!installed) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = rules_overrun_signal;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGVTALRM, &sa, NULL);
		pthread_atfork(NULL, NULL, rules_timer_forked);
		installed = 1;
	}
	if (setitimer(ITIMER_VIRTUAL, &it, NULL) == 0)
		rules_timer_ms = ms;
}

/* rules_call - run the rule at rule_idx with a fresh budget. Leaves its
 * result, or the error message, on the stack; returns the pcall status. */
int rules_call(struct rules *r, int rule_idx, int ctx_idx)
{
	lua_State *L = r->L;
	int rc;

	r->steps = 0;
	r->killed = 0;
	r->ran = 1;
	r->mem.exceeded = 0;
	r->mem.limit = r->mem.used + (size_t)r->limits.memory;
	lua_pushcfunction(L, rules_msgh);
	lua_getfield(L, rule_idx, "fn");
	lua_pushvalue(L, ctx_idx);
	lua_sethook(L, rules_budget_hook, LUA_MASKCOUNT, RULES_HOOK_STEP);
	if (r->limits.cpu_ms > 0) {
		rules_cpu_timer(r->limits.cpu_ms);
		rules_ticks = 0;
	}
	rc = lua_pcall(L, 1, 1, -3);
	rules_ticks = -1;
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

/* ---- the environment ------------------------------------------------- */

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
void rules_open_sandbox(lua_State *L, const struct rules_settings *settings)
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
	lua_pushcfunction(L, lua_xpcall_guarded);
	lua_setglobal(L, "xpcall");
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
	lua_pushcfunction(L, lua_delegate);
	lua_setglobal(L, "delegate");
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
 * config.local_domains (a domain list), config.trusted_networks (a netset)
 * and config.allow_routing_local_parts (a boolean). */
int rules_open_config(lua_State *L)
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
	lua_pushboolean(L, settings->allow_routing_local_parts);
	lua_setfield(L, -2, "allow_routing_local_parts");
	lua_setglobal(L, "config");
	return 0;
}

/* rules_msgh - the message handler: keep the error, add nothing (Lua
 * already prefixes errors raised in rules with file:line); a status raised
 * as the error (a failed service call) is kept as it is. Another error object
 * that is no string is described by its __tostring, which runs under the
 * budget like the rule; once the budget is spent, the budget's error
 * replaces it and no metamethod runs. */
int rules_msgh(lua_State *L)
{
	struct rules *r = rules_from_state(L);

	if (r->killed && lua_type(L, 1) != LUA_TSTRING) {
		rules_push_spent(L, r);
		return 1;
	}
	if (lua_type(L, 1) == LUA_TSTRING || luaL_testudata(L, 1, RULES_STATUS_MT) != NULL)
		return 1; /* a raised status stays one: rules_run_one uses it */
	if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
		return 1;
	lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	return 1;
}

/* rules_lock_globals - from now on, undefined reads and any new global raise. */
void rules_set_global_guard(lua_State *L, int locked)
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

/* rules_load_ms - the CPU time loading may take. */
unsigned rules_load_ms(const struct rules *r)
{
	return r->limits.load_ms ? r->limits.load_ms : RULES_LOAD_MS_DEFAULT;
}

/* rules_run_top_level - compile and run the file's top level under the load
 * deadline, the message handler at -1; leaves the result, returns the status. */
int rules_run_top_level(struct rules *r)
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
