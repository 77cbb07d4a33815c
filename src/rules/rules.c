/*
 * rules.c - compile the administrator's Lua rules and run them per stage.
 *
 * Each ruleset owns one Lua 5.4 state, built in the master and inherited by
 * the sessions it forks. The state is a sandbox (rules_sandbox.c): an
 * allow-list of libraries, locked globals, and a budget of instructions,
 * memory and CPU time for every rule call and of CPU time for the load. A
 * rule answers with a status (rules_status.c). A rule that fails in any way
 * yields RULE_ERROR, which the caller answers with 451 4.3.0: never a
 * crash, never an accept. The one error that is no failure is a status
 * raised as the error value (a service call that failed, under its
 * on_failure: rules_service.c): that status is the rule's.
 *
 * Loading runs the file's top level in the master (at start, and on SIGHUP
 * inside its event loop: no connection is accepted meanwhile), in vsmtpd -t
 * and in vsmtpctl. Loading new rules in another process or thread would
 * keep the master serving, but the sessions must be forked from the state
 * it built.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>

#include "config.h"
#include "log.h"
#include "rules_dkim.h"
#include "rules_dmarc.h"
#include "rules_dns.h"
#include "rules_internal.h"

#define RULES_FILE_MAX (16u << 20)

static const char *const stage_names[RULE_STAGE_COUNT] = {
	"connect", "authenticate", "helo", "mail", "rcpt", "preq", "postq", "delivery",
};

static const char *const hook_names[RULE_STAGE_COUNT] = {
	"on_connect",     "on_auth",        "on_helo",       "on_mail_from",
	"on_rcpt_to",     "on_pre_queue",   "on_post_queue", "on_delivery",
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

/* ---- rule "name" (fn) and action "name" (fn) ------------------------- */

/* rules_source_name - a chunk's name without Lua's '@' or '=' mark: the
 * whole path, where Lua's own short_src cuts long ones. */
static const char *rules_source_name(const char *source)
{
	return source[0] == '@' || source[0] == '=' ? source + 1 : source;
}

/* rules_where - "file:line" of the Lua code level levels up the stack. */
void rules_where(lua_State *L, int level, char *buf, size_t len)
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

/* lua_rule - rule "name" (fn): a rule, which returns a status. */
int lua_rule(lua_State *L)
{
	return rules_rule_head(L, "rule");
}

/* lua_action - action "name" (fn): a rule whose result is ignored. */
int lua_action(lua_State *L)
{
	return rules_rule_head(L, "action");
}

/* ---- loading --------------------------------------------------------- */

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
		if (rules_delegate_check(L, -1, (enum rule_stage)stage, err, errlen) < 0) {
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
	if (settings->dns_zone != NULL && rules_dns_zone(L, settings->dns_zone, err, errlen) < 0)
		return -1;
	if ((r->dkim = rules_dkim_open(err, errlen)) == NULL ||
	    rules_dkim_keys_load(settings->dkim, settings->ndkim, &r->dkim_keys, err, errlen) < 0)
		return -1;
	rules_dmarc_open();
	r->services = settings->services;
	r->nservices = settings->nservices;
	lua_pushcfunction(L, rules_open_config);
	lua_pushlightuserdata(L, (void *)settings);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		rules_fail(r, lua_tostring(L, -1), err, errlen);
		return -1;
	}
	rules_set_global_guard(L, 0);
	rules_shared_open(L);
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
	if (rules_shared_keep(L) < 0) {
		snprintf(err, errlen, "%s: out of memory recording the loaded rules", r->path);
		return -1;
	}
	lua_gc(L, LUA_GCCOLLECT);
	r->mem_collected = r->mem.used;
	return 0;
}

/* rules_load - compile a rules file into a new ruleset. */
struct rules *rules_load(const char *path, const struct rules_limits *limits,
			 const struct rules_settings *settings, char *err, size_t errlen)
{
	struct rules *r = calloc(1, sizeof(*r));
	int i;

	if (r == NULL || (r->path = strdup(path)) == NULL ||
	    (r->hostname = strdup(settings->hostname ? settings->hostname : "localhost")) == NULL) {
		if (r != NULL)
			free(r->path);
		snprintf(err, errlen, "%s: out of memory", path);
		free(r);
		return NULL;
	}
	for (i = 0; r->hostname[i] != '\0'; i++)
		if (r->hostname[i] >= 'A' && r->hostname[i] <= 'Z')
			r->hostname[i] = (char)(r->hostname[i] - 'A' + 'a');
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
					  .allow_routing_local_parts = cfg->allow_routing_local_parts,
					  .dns_servers = cfg->rules_dns_servers,
					  .dns_timeout_ms = cfg->rules_dns_timeout_ms,
					  .dkim = cfg->dkim,
					  .ndkim = cfg->ndkim,
					  .services = cfg->service,
					  .nservices = cfg->nservice};

	return rules_load(cfg->rules_file, &limits, &settings, err, errlen);
}

/* rules_free - close the state. */
void rules_free(struct rules *r)
{
	if (r == NULL)
		return;
	if (r->L != NULL)
		lua_close(r->L);
	rules_dkim_close(r->dkim);
	rules_dkim_keys_free(r->dkim_keys);
	free(r->path);
	free(r->hostname);
	free(r);
}

/* rules_forked - in a new child: drop the parent's DNS channel. */
void rules_forked(struct rules *r)
{
	if (r != NULL && r->L != NULL)
		rules_dns_forked(r->L);
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

/* rules_set_trace - report every rule's outcome to fn. */
void rules_set_trace(struct rules *r, rules_trace_fn fn, void *arg)
{
	r->trace = fn;
	r->trace_arg = arg;
}

/* ---- running --------------------------------------------------------- */

/* rules_trace_call - report one rule's outcome to the tracer. */
static void rules_trace_call(struct rules *r, enum rule_stage stage, const char *name,
			     const char *where, const char *result)
{
	if (r->trace != NULL)
		r->trace(r->trace_arg, stage, name, where, result);
}

/* rules_run_one - run the rule at -1, item i; 1 when the stage is decided. */
static int rules_run_one(struct rules *r, enum rule_stage stage, int ctx_idx, lua_Integer i,
			 struct rule_verdict *v)
{
	lua_State *L = r->L;
	const char *name, *where, *kind;
	const struct rules_status *st;
	int decided = 0, rc, rule_idx = lua_gettop(L);

	lua_getfield(L, -1, "name");
	lua_getfield(L, -2, "where");
	lua_getfield(L, -3, "kind");
	name = lua_tostring(L, -3);
	where = lua_tostring(L, -2);
	kind = lua_tostring(L, -1);
	if (strcmp(kind, "delegate") == 0 &&
	    ((lua_Integer)r->current->delegated_rule != i ||
	     r->current->delegated_delivery != (stage == RULE_STAGE_DELIVERY))) {
		/* not through this filter yet: the worker sends it there */
		lua_pop(L, 3);
		rules_delegate_verdict(L, i, v);
		rules_trace_call(r, stage, name, where, "delegate");
		snprintf(v->rule, sizeof(v->rule), "%s", name);
		return 1;
	}
	rules_running_set(stage, name, where);
	rc = rules_call(r, rule_idx, ctx_idx);
	rules_running_set(stage, NULL, NULL);
	if (rc != LUA_OK && (st = luaL_testudata(L, -1, RULES_STATUS_MT)) != NULL) {
		/* A raised status (a service call that failed): the rule's status. */
		rules_verdict_from(st, v);
		rules_trace_call(r, stage, name, where, rules_status_name(st->status));
		decided = st->status != RULE_NEXT;
	} else if (rc != LUA_OK) {
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
		rules_trace_call(r, stage, name, where, rules_status_name(st->status));
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
	i = stage == RULE_STAGE_POSTQ ? rules_delegate_start(L, lua_gettop(L), n, ctx) : 1;
	for (; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		if (rules_run_one(r, stage, ctx_idx, i, v)) {
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
	rules_shared_restore(r);
	if (v->status == RULE_FACCEPT)
		ctx->skip_all = 1;
	if (v->status == RULE_QUARANTINE) {
		ctx->skip_all = 1;
		snprintf(ctx->quarantine, sizeof(ctx->quarantine), "%s", v->quarantine);
	}
	return v->status;
}
