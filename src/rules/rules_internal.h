/*
 * rules_internal.h - what the pieces of the rule engine share: the ruleset
 * itself (src/rules.c), its sandbox (src/rules_sandbox.c), the statuses
 * rules return (src/rules_status.c), the ctx object (src/rules_ctx.c,
 * src/rules_ctx_edit.c and src/rules_ctx_route.c), the source scanner
 * (src/rules_scan.c) and the snapshot of the loaded state
 * (src/rules_snapshot.c, src/rules_shared.c). Not for use outside the
 * engine.
 */
#ifndef VSMTPD_RULES_INTERNAL_H
#define VSMTPD_RULES_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>

#include "rules.h"

/* The Lua state's allocator counts what it holds and refuses past limit. */
struct rules_mem {
	size_t used;
	size_t limit;
	int exceeded; /* an allocation was refused during the current call */
};

struct rules {
	lua_State *L;
	struct rules_mem mem;
	struct rules_limits limits;
	uint64_t steps; /* VM instructions of the current rule call, roughly */
	int killed;     /* the current call ran out of budget: stop it for good */
	int reseed;     /* the stage running called math.randomseed() */
	int ran;        /* a rule ran since the load or the last rules_restore() */
	size_t mem_collected; /* mem.used after the last full collection */
	struct {
		uint64_t cpu_deadline_ns;  /* thread CPU time to end by; 0 when not loading */
		uint64_t wall_deadline_ns; /* CLOCK_MONOTONIC, the same limit from the start */
	} load;
	int stage_ref[RULE_STAGE_COUNT]; /* registry refs to the stages' rule arrays */
	size_t stage_count[RULE_STAGE_COUNT];
	char *path;     /* the rules file, absolute */
	char *hostname; /* [server] hostname lowercased, as hostname() gives it */
	rules_trace_fn trace;
	void *trace_arg;
	struct rule_ctx *current; /* the context of the stage running, NULL between */
	unsigned mails_sent;      /* send_mail() calls in the stage running */
	void *dkim;               /* OpenDKIM's library handle (rules_dkim.c) */
	struct rules_dkim_keys *dkim_keys; /* [dkim:NAME] signing keys (rules_dkim_sign.c) */
	const struct service_config *services; /* [service:NAME], the configuration's */
	size_t nservices;
};

#define RULES_STATUS_MT "vsmtpd.status"
#define RULES_RULE_MT "vsmtpd.rule"

/* What status.*() returns: a status userdata. */
struct rules_status {
	enum rule_status status;
	int has_reply;
	struct rule_reply reply;
	char quarantine[RULE_QUARANTINE_MAX];
};

/* rules_alloc - the Lua allocator: counts bytes and refuses past the limit. */
void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* rules_open_sandbox - the libraries and globals rules may use. */
void rules_open_sandbox(lua_State *L, const struct rules_settings *settings);

/* rules_open_config - lua_CFunction setting the `config` table from the
 * rules_settings light userdata argument. */
int rules_open_config(lua_State *L);

/* rules_set_global_guard - undefined reads raise; with locked, new globals too. */
void rules_set_global_guard(lua_State *L, int locked);

/* rules_shared_open - wrap math.randomseed and record the tables every
 * rule shares; once the sandbox is set up, before the file runs. */
void rules_shared_open(lua_State *L);

/* rules_shared_keep - record everything the rules can reach, the shared
 * tables first, as the loaded file left it. 0, or -1 when out of memory. */
int rules_shared_keep(lua_State *L);

/* rules_shared_restore - after a stage: put back the shared tables it
 * changed, seed math.random afresh if it seeded it. */
void rules_shared_restore(struct rules *r);

/* What rules_snapshot_put_back() puts back. */
enum rules_snapshot_scope {
	RULES_SNAPSHOT_SHARED, /* the tables the sandbox sets up: after each stage */
	RULES_SNAPSHOT_ALL,    /* everything the rules can reach: between connections */
};

/* rules_snapshot_take - record everything the rules can reach, walking from
 * the tables of the array at idx first, then from the registry. 0, or -1
 * when out of memory. */
int rules_snapshot_take(lua_State *L, int idx);

/* rules_snapshot_put_back - bring what scope covers back to the records;
 * how many objects had changed, or -1 when out of memory (logged). */
long rules_snapshot_put_back(lua_State *L, enum rules_snapshot_scope scope);

/* rules_msgh - the message handler of every protected call into the rules. */
int rules_msgh(lua_State *L);

/* rules_load_ms - the CPU time loading may take. */
unsigned rules_load_ms(const struct rules *r);

/* rules_run_top_level - run the file's top level under the load deadline,
 * the message handler at -1; leaves the result, returns the status. */
int rules_run_top_level(struct rules *r);

/* rules_running_set - note the rule call about to start for rules_running()
 * (rule and where NULL once it is over). */
void rules_running_set(enum rule_stage stage, const char *rule, const char *where);

/* rules_call - run the rule at rule_idx with a fresh budget; the pcall status. */
int rules_call(struct rules *r, int rule_idx, int ctx_idx);

/* rules_where - "file:line" of the Lua code level levels up the stack. */
void rules_where(lua_State *L, int level, char *buf, size_t len);

/* lua_rule - the rule "name" (fn) global. */
int lua_rule(lua_State *L);

/* lua_action - the action "name" (fn) global. */
int lua_action(lua_State *L);

/* lua_delegate - the delegate "name" ("service", fn) global (rules_delegate.c). */
int lua_delegate(lua_State *L);

/* rules_delegate_check - a delegate rule (at idx) outside postq: -1 with err. */
int rules_delegate_check(lua_State *L, int idx, enum rule_stage stage, char *err, size_t errlen);

/* rules_delegate_start - the first rule a postq run for ctx runs (see rules_delegate.c). */
lua_Integer rules_delegate_start(lua_State *L, int idx, lua_Integer n, struct rule_ctx *ctx);

/* rules_delegate_verdict - stop the stage at the delegate rule at -1, item i. */
void rules_delegate_verdict(lua_State *L, lua_Integer i, struct rule_verdict *v);

/* rules_open_status - the status table, code() and the common codes. */
void rules_open_status(lua_State *L);

/* rules_default_reply - the code a refusal sends when the rule gave none. */
void rules_default_reply(struct rule_verdict *v);

/* rules_verdict_from - the verdict of a status userdata. */
void rules_verdict_from(const struct rules_status *st, struct rule_verdict *v);

/* send_mail() calls one stage may make: a rule in a loop must not flood the queue. */
#define RULES_SEND_MAIL_MAX 10

/* The registry key of the rules folder, present only while loading. */
#define RULES_DIR_KEY "vsmtpd.rules_dir"

/* rules_from_state - the ruleset a Lua state belongs to. */
struct rules *rules_from_state(lua_State *L);

/* lua_user_exist - the user_exist(name) global. */
int lua_user_exist(lua_State *L);

/* lua_send_mail - the send_mail(from, to, path [, relay]) global. */
int lua_send_mail(lua_State *L);

/* rules_ctx_open - register the ctx class in L. */
void rules_ctx_open(lua_State *L);

/* rules_ctx_push - push a ctx object for this call; rules_ctx_invalidate
 * makes the object at idx refuse every further use. */
void rules_ctx_push(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage);
void rules_ctx_invalidate(lua_State *L, int idx);

/* A ctx object: valid for one stage. */
struct ctx_ud {
	struct rule_ctx *ctx; /* NULL once the stage is over */
	enum rule_stage stage;
};

/* ctx_check - the live context of the ctx object at 1; raises when stale. */
struct rule_ctx *ctx_check(lua_State *L, struct ctx_ud **udp);

/* ctx_need_env - the envelope; raises before MAIL. */
struct envelope *ctx_need_env(lua_State *L, struct rule_ctx *ctx, const char *what);

/* ctx_need_msg - the message; raises before preq. */
struct message *ctx_need_msg(lua_State *L, struct rule_ctx *ctx, const char *what);

/* ctx_check_address - the address at idx (string or address object) into buf. */
void ctx_check_address(lua_State *L, int idx, char *buf, size_t len);

/* ctx_find_rcpt - the index of addr among the recipients, or -1. */
long ctx_find_rcpt(const struct envelope *env, const char *addr);

/* The ctx methods on the envelope and the message (rules_ctx_edit.c). */
extern const luaL_Reg ctx_edit_methods[];

/* The ctx methods choosing each recipient's transport (rules_ctx_route.c). */
extern const luaL_Reg ctx_route_methods[];

/* The ctx methods of DKIM (rules_dkim.c, rules_dkim_sign.c). */
extern const luaL_Reg ctx_dkim_methods[];
extern const luaL_Reg ctx_dkim_sign_methods[];

/* rules_status_push_reply - push a status userdata from C, with the reply
 * code, enhanced code and text (code 0: none, the status's default). The
 * caller passes a reply its status may carry, as status.*() would check. */
void rules_status_push_reply(lua_State *L, enum rule_status status, int code,
			     const char *enhanced, const char *text);

/* rules_status_push_quarantine - push status.quarantine(name); raises on a
 * bad name. Shared by status.quarantine and ctx:quarantine. */
int rules_status_push_quarantine(lua_State *L, const char *name);

/* Where the scanner saw each stage key and hook function of the main file. */
struct rules_scan {
	int stage_line[RULE_STAGE_COUNT]; /* 0 when not seen as a table key */
	int hook_line[RULE_STAGE_COUNT];  /* 0 when no "function on_..." */
	const char *text;                 /* the source, while the rules load */
	size_t len;
};

/*
 * rules_scan_source - read the rules file's source text for what Lua itself
 * lets pass silently: a stage key given twice in one table constructor (the
 * second would quietly replace the first) and a hook function defined twice.
 * Returns 0, or -1 with "file:line: reason" in err.
 */
int rules_scan_source(const char *path, const char *text, size_t len, struct rules_scan *scan,
		      char *err, size_t errlen);

/*
 * rules_scan_line_of - the line where name is first a table key ("name =",
 * ["name"] =) or, with hook set, where "function name(" is; 0 when nowhere.
 * For messages about names the scanner did not know to look for.
 */
int rules_scan_line_of(const struct rules_scan *scan, const char *name, int hook);

/* rules_stage_from_name - the stage called name, or -1. */
int rules_stage_from_name(const char *name);

/* rules_stage_from_hook - the stage of a hook name ("on_connect"), or -1. */
int rules_stage_from_hook(const char *name);

/* rules_hook_name - "on_connect" ... "on_delivery". */
const char *rules_hook_name(enum rule_stage stage);

#endif
