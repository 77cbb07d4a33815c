/*
 * rules_milter_run.c - the milters of a listener ([listener:NAME] milters),
 * run by the session before each stage's rules: each one called as a rule
 * calling ctx:milter(name) would, through the same code, its status the
 * stage's unless it says next.
 *
 * The calls run in the rules' Lua state with a ctx object of their own
 * for the stage; a failure the service's on_failure turns into a status
 * (raised by rules_service_failed) is that status, any other error is a
 * rule error (451 4.3.0), logged with the milter's name.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "rules_internal.h"
#include "rules_milter.h"

/* milter_run_one - ctx:milter(name) with the ctx object at ctx_idx, into v;
 * whether it decided. */
static int milter_run_one(lua_State *L, int ctx_idx, const char *name, enum rule_stage stage,
			  struct rule_verdict *v)
{
	const struct rules_status *st = NULL;
	int rc, decided;

	lua_pushcfunction(L, ctx_milter_methods[0].func);
	lua_pushvalue(L, ctx_idx);
	lua_pushstring(L, name);
	rc = lua_pcall(L, 2, 1, 0);
	if (rc == LUA_OK && lua_istable(L, -1)) {
		lua_getfield(L, -1, "status");
		st = luaL_testudata(L, -1, RULES_STATUS_MT);
		lua_remove(L, -2);
	} else if (rc != LUA_OK) {
		st = luaL_testudata(L, -1, RULES_STATUS_MT);
	}
	if (st != NULL) {
		rules_verdict_from(st, v);
	} else {
		log_err("rules: milter \"%s\" of the listener at %s failed: %s", name,
			rules_stage_name(stage),
			lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no message)");
		v->status = RULE_ERROR;
		rules_default_reply(v);
	}
	lua_pop(L, 1);
	decided = v->status != RULE_NEXT;
	if (decided)
		snprintf(v->rule, sizeof(v->rule), "milter %s", name);
	return decided;
}

/* rules_run_milters - the listener's milters at stage, in order. */
enum rule_status rules_run_milters(struct rules *r, enum rule_stage stage, struct rule_ctx *ctx,
				   const char *names, struct rule_verdict *v)
{
	lua_State *L = r->L;
	char name[64];
	const char *p, *end;
	size_t len;
	int top, ctx_idx;

	memset(v, 0, sizeof(*v));
	v->status = RULE_NEXT;
	if (ctx->skip_all || names == NULL || stage > RULE_STAGE_PREQ)
		return v->status;
	top = lua_gettop(L);
	rules_ctx_push(L, ctx, stage);
	ctx_idx = lua_gettop(L);
	r->current = ctx;
	for (p = names; *p != '\0'; p = *end ? end + 1 : end) {
		end = strchr(p, ' ');
		end = end ? end : p + strlen(p);
		len = (size_t)(end - p) < sizeof(name) ? (size_t)(end - p) : sizeof(name) - 1;
		memcpy(name, p, len);
		name[len] = '\0';
		if (milter_run_one(L, ctx_idx, name, stage, v))
			break;
	}
	rules_ctx_invalidate(L, ctx_idx);
	r->current = NULL;
	lua_settop(L, top);
	if (v->status == RULE_QUARANTINE) {
		ctx->skip_all = 1;
		snprintf(ctx->quarantine, sizeof(ctx->quarantine), "%s", v->quarantine);
	}
	return v->status;
}
