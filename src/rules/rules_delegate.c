/*
 * rules_delegate.c - delegate "name" ("service", fn): a content filter
 * round trip at postq or delivery.
 *
 * A delegate rule is declared like a rule, with the name of a
 * [service:NAME] of kind delegate before its function. When a postq or
 * delivery run reaches one for a message that has not been through that
 * rule's filter, the stage stops with the verdict RULE_DELEGATE (the
 * rule's index and service): the delivery worker sends the message to the
 * filter and keeps the original queued.
 *
 * At postq, the copy the filter sends back carries the index in its
 * envelope (postq_start, delegated_rule); its postq run starts at that
 * rule and calls its function, which sees the message as it came back.
 * The rules before it already ran on the original, and are not run twice.
 * A message the rules before it changed is queued again first, with
 * postq_start alone: its run starts at the rule, which sends it.
 *
 * At delivery, which runs from the start at every attempt, the copy that
 * came back (delegated_delivery, delegated_rule) runs the whole stage at
 * each of its attempts, and the rule runs its function there instead of
 * stopping it.
 *
 * The earlier stages run while the client waits, with nothing queued to
 * hold on to while the filter works: a delegate rule there is refused
 * when the rules load.
 */
#include <string.h>

#include <lauxlib.h>

#include "config.h"
#include "log.h"
#include "rules_internal.h"

/* lua_delegate_body - the second call of delegate "name" ("service", fn). */
static int lua_delegate_body(lua_State *L)
{
	size_t len;

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L,
		                  "delegate \"%s\": write delegate \"name\" (\"service\", "
		                  "function(ctx) ... end)",
		                  lua_tostring(L, lua_upvalueindex(1)));
	lua_tolstring(L, 1, &len);
	if (len == 0 || len >= RULE_SERVICE_NAME_MAX)
		return luaL_error(L, "delegate \"%s\": the service name must be 1 to %d bytes",
		                  lua_tostring(L, lua_upvalueindex(1)), RULE_SERVICE_NAME_MAX - 1);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_createtable(L, 0, 5);
	lua_pushliteral(L, "delegate");
	lua_setfield(L, -2, "kind");
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_setfield(L, -2, "name");
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_setfield(L, -2, "where");
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "service");
	lua_pushvalue(L, 2);
	lua_setfield(L, -2, "fn");
	luaL_setmetatable(L, RULES_RULE_MT);
	return 1;
}

/* lua_delegate - delegate "name": wait for the service and the function. */
int lua_delegate(lua_State *L)
{
	char where[256];
	size_t len;

	if (lua_type(L, 1) != LUA_TSTRING || lua_gettop(L) != 1)
		return luaL_error(L,
		                  "delegate without a name: write delegate \"name\" (\"service\", "
		                  "function(ctx) ... end)");
	lua_tolstring(L, 1, &len);
	if (len == 0 || len >= RULE_NAME_MAX)
		return luaL_error(L, "delegate name must be 1 to %d bytes", RULE_NAME_MAX - 1);
	rules_where(L, 1, where, sizeof(where));
	lua_pushvalue(L, 1);
	lua_pushstring(L, where);
	lua_pushcclosure(L, lua_delegate_body, 2);
	return 1;
}

/*
 * rules_delegate_check - the rule at idx, item i of stage: a delegate rule
 * outside postq is an error (0 or -1 with err naming its file:line).
 */
int rules_delegate_check(lua_State *L, int idx, enum rule_stage stage, char *err, size_t errlen)
{
	const struct rules *r = rules_from_state(L);
	const char *service;
	size_t i;
	int is;

	idx = lua_absindex(L, idx);
	lua_getfield(L, idx, "kind");
	is = strcmp(lua_tostring(L, -1), "delegate") == 0;
	lua_pop(L, 1);
	if (!is)
		return 0;
	if (stage == RULE_STAGE_POSTQ || stage == RULE_STAGE_DELIVERY) {
		lua_getfield(L, idx, "service");
		service = lua_tostring(L, -1);
		for (i = 0; i < r->nservices; i++)
			if (strcmp(r->services[i].name, service) == 0)
				break;
		lua_getfield(L, idx, "name");
		lua_getfield(L, idx, "where");
		if (i == r->nservices || r->services[i].kind != SERVICE_DELEGATE)
			snprintf(err, errlen,
			         "%s: delegate \"%s\": %s \"%s\" (declare [service:%s] "
			         "with kind = delegate)",
			         lua_tostring(L, -1), lua_tostring(L, -2),
			         i == r->nservices ? "no such service" : "not a delegate service",
			         service, service);
		lua_pop(L, 3);
		return i == r->nservices || r->services[i].kind != SERVICE_DELEGATE ? -1 : 0;
	}
	lua_getfield(L, idx, "name");
	lua_getfield(L, idx, "where");
	snprintf(err, errlen,
	         "%s: delegate \"%s\" at stage \"%s\": delegate works at postq and "
	         "delivery only (the message must be queued while the filter has it)",
	         lua_tostring(L, -1), lua_tostring(L, -2), rules_stage_name(stage));
	lua_pop(L, 2);
	return -1;
}

/*
 * rules_delegate_start - where a postq run starts for ctx: at its
 * postq_start, a delegate rule (whose function runs when the message came
 * back from it), else at 1. stage is the stage's array at idx, n rules
 * long. A message whose rule is no longer a delegate rule (the rules were
 * reloaded) starts over at 1.
 */
lua_Integer rules_delegate_start(lua_State *L, int idx, lua_Integer n, struct rule_ctx *ctx)
{
	lua_Integer i = (lua_Integer)ctx->postq_start;
	int is = 0;

	if (i == 0 || ctx->delegated_delivery)
		return 1;
	if (i <= n) {
		lua_rawgeti(L, idx, i);
		lua_getfield(L, -1, "kind");
		is = strcmp(lua_tostring(L, -1), "delegate") == 0;
		lua_pop(L, 2);
	}
	if (is)
		return i;
	log_warn("rules: the message was queued again at postq rule %lld, which is no longer a "
	         "delegate rule: postq runs from the start",
	         (long long)i);
	ctx->postq_start = 0;
	ctx->delegated_rule = 0;
	return 1;
}

/*
 * rules_delegate_verdict - the delegate rule at -1 (item i) was reached by
 * a message that has not been through its filter: stop the stage with
 * RULE_DELEGATE.
 */
void rules_delegate_verdict(lua_State *L, lua_Integer i, struct rule_verdict *v)
{
	v->status = RULE_DELEGATE;
	v->delegate_rule = (unsigned)i;
	lua_getfield(L, -1, "service");
	snprintf(v->delegate_service, sizeof(v->delegate_service), "%s", lua_tostring(L, -1));
	lua_pop(L, 1);
}
