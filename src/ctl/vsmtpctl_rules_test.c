/*
 * vsmtpctl_rules_test.c - the cases of `vsmtpctl rules test`: each case of
 * a test file (a Lua table) is one transaction run offline through the
 * rules (rules_offline_run), and what came of it is compared with what the
 * case expects: the outcome, the last reply, a hold's reason, each stage's
 * status, the transports chosen and the mail authentication results. One
 * TAP line per case says which expectation failed first.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "rules.h"
#include "rules_offline.h"
#include "vsmtpctl_rules_internal.h"

/* What one test case expects, and what it got. */
struct ctl_case {
	const char *stage_expect[RULE_STAGE_COUNT]; /* a status name per stage, or NULL */
	const char *stage_got[RULE_STAGE_COUNT];
	lua_State *L;        /* the test file's state, */
	int routes_idx;      /* the index of the case's routes table there, 0 for none */
	int routes_seen;     /* the delivery stage reported its routes */
	char routes_why[768]; /* the first route that differs */
	char stopped[RULE_TEXT_MAX + 64]; /* "postq: quarantined ...": what stopped delivery */
	char hold[RULE_HOLD_MAX];         /* the reason preq or postq held the message for */
	struct offline_auth auth;         /* the transaction's last authentication results */
};

/* The methods a case's results = { ... } names, and where each result is. */
static const struct {
	const char *name;
	size_t offset;
} ctl_auth_fields[] = {
    {"spf", offsetof(struct offline_auth, spf)},     {"spf_helo", offsetof(struct offline_auth, spf_helo)},
    {"dkim", offsetof(struct offline_auth, dkim)},   {"dmarc", offsetof(struct offline_auth, dmarc)},
    {"arc", offsetof(struct offline_auth, arc)},
};

/* ctl_auth_matches - whether a result got matches the one expected: equal,
 * or for DKIM's list one of its signatures' results. */
static int ctl_auth_matches(const char *name, const char *got, const char *want)
{
	size_t n = strlen(want);
	const char *p;

	if (strcmp(got, want) == 0)
		return 1;
	if (strcmp(name, "dkim") != 0 || n == 0)
		return 0;
	for (p = got; (p = strstr(p, want)) != NULL; p += n)
		if ((p == got || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return 1;
	return 0;
}

/* ctl_case_results - compare the case's results table (at the top of L's
 * stack) with what the rules obtained; why gets the first difference. */
static void ctl_case_results(lua_State *L, const struct offline_auth *got, char *why, size_t len)
{
	const char *name, *want, *have;
	size_t i, n = sizeof(ctl_auth_fields) / sizeof(ctl_auth_fields[0]);

	lua_pushnil(L);
	while (why[0] == '\0' && lua_next(L, -2) != 0) {
		name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
		want = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		for (i = 0; i < n && strcmp(ctl_auth_fields[i].name, name) != 0; i++)
			;
		if (i == n || want == NULL) {
			snprintf(why, len, "results: keys are spf, spf_helo, dkim, dmarc and arc, "
					   "each a result such as \"pass\"");
		} else {
			have = (const char *)got + ctl_auth_fields[i].offset;
			if (!ctl_auth_matches(name, have, want))
				snprintf(why, len, "results: %s expected %s, got %s", name, want,
					 have[0] ? have : "(not checked)");
		}
		lua_pop(L, 1);
	}
	if (why[0] != '\0')
		lua_pop(L, 1); /* the key lua_next left */
}

/* ctl_case_routes - compare the delivery stage's routes with the case's
 * routes = { ["address"] = "route", ... }. */
static void ctl_case_routes(struct ctl_case *c, const struct offline_step *step)
{
	lua_State *L = c->L;
	const struct offline_route *got;
	char route[RULE_ROUTE_TARGET_MAX + 16];
	const char *rcpt, *want;

	c->routes_seen = 1;
	lua_pushnil(L);
	while (c->routes_why[0] == '\0' && lua_next(L, c->routes_idx) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
			snprintf(c->routes_why, sizeof(c->routes_why),
				 "routes: entries are [\"address\"] = \"route\"");
			lua_pop(L, 2);
			return;
		}
		rcpt = lua_tostring(L, -2);
		want = lua_tostring(L, -1);
		if ((got = rules_offline_route_find(step, rcpt)) == NULL) {
			snprintf(c->routes_why, sizeof(c->routes_why),
				 "routes: %s is not a recipient at delivery", rcpt);
		} else {
			rules_offline_route_format(got->kind, got->target, route, sizeof(route));
			if (strcmp(route, want) != 0)
				snprintf(c->routes_why, sizeof(c->routes_why),
					 "routes: %s: expected %s, got %s", rcpt, want, route);
		}
		lua_pop(L, 1);
	}
	if (c->routes_why[0] != '\0')
		lua_pop(L, 1); /* the key lua_next left */
}

/* ctl_case_step - remember each stage's last status for the comparison,
 * and check the routes the delivery stage chose. */
static void ctl_case_step(void *arg, const struct offline_step *step)
{
	struct ctl_case *c = arg;

	c->stage_got[step->stage] = rules_status_name(step->v.status);
	if (step->stage >= RULE_STAGE_MAIL && step->stage <= RULE_STAGE_PREQ)
		c->auth = step->auth;
	if (step->hold[0] != '\0')
		snprintf(c->hold, sizeof(c->hold), "%s", step->hold);
	if (step->stage == RULE_STAGE_DELIVERY && c->routes_idx != 0 &&
	    step->after == OFFLINE_AFTER_DELIVERED)
		ctl_case_routes(c, step);
	else if (step->after != OFFLINE_AFTER_NONE && step->after != OFFLINE_AFTER_DELIVERED)
		snprintf(c->stopped, sizeof(c->stopped), "%s: %s, %s", rules_stage_name(step->stage),
			 rules_offline_after_name(step->after), step->reply);
}

/* ctl_field - a string field of the case at idx, or NULL. */
static const char *ctl_field(lua_State *L, int idx, const char *key)
{
	const char *s;

	lua_getfield(L, idx, key);
	s = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 1); /* the case table keeps the string alive */
	return s;
}

/* ctl_case_rcpts - the case's rcpt: a string or a list. */
static size_t ctl_case_rcpts(lua_State *L, int idx, const char **rcpts)
{
	size_t n = 0;
	lua_Integer i;

	lua_getfield(L, idx, "rcpt");
	if (lua_isstring(L, -1)) {
		rcpts[n++] = lua_tostring(L, -1);
	} else if (lua_istable(L, -1)) {
		for (i = 1; n < CTL_MAX_RCPTS && lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
			rcpts[n++] = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return n;
}

/* ctl_case_run - run the case at idx; 1 when it passed. Prints a TAP line. */
static int ctl_case_run(lua_State *L, int idx, int number, struct rules *r,
			const struct ctl_settings *st)
{
	const char *rcpts[CTL_MAX_RCPTS], *name, *expect, *reply, *hold;
	struct offline_tx tx = {.server_name = st->hostname, .rcpts = rcpts};
	struct ctl_case c = {.L = L};
	struct offline_step final;
	enum offline_outcome out;
	char why[1024] = "";
	size_t len;
	int i;

	name = ctl_field(L, idx, "name");
	tx.client_ip = ctl_field(L, idx, "ip");
	tx.helo = ctl_field(L, idx, "helo");
	tx.mail_from = ctl_field(L, idx, "from");
	tx.listener = ctl_field(L, idx, "listener");
	tx.authid = ctl_field(L, idx, "auth");
	lua_getfield(L, idx, "tls");
	tx.tls = lua_toboolean(L, -1);
	lua_getfield(L, idx, "returned");
	tx.returned = lua_toboolean(L, -1);
	lua_pop(L, 2);
	tx.nrcpts = ctl_case_rcpts(L, idx, rcpts);
	lua_getfield(L, idx, "message");
	if (lua_isstring(L, -1)) {
		tx.message = lua_tolstring(L, -1, &len);
		tx.message_len = len;
	}
	lua_pop(L, 1);
	expect = ctl_field(L, idx, "expect");
	reply = ctl_field(L, idx, "reply");
	hold = ctl_field(L, idx, "hold_reason");
	lua_getfield(L, idx, "stages");
	if (lua_istable(L, -1))
		for (i = 0; i < RULE_STAGE_COUNT; i++)
			c.stage_expect[i] = ctl_field(L, lua_gettop(L), rules_stage_name(i));
	lua_pop(L, 1);
	/* Left on the stack for the delivery stage's report; popped below. */
	lua_getfield(L, idx, "routes");
	if (lua_istable(L, -1))
		c.routes_idx = lua_gettop(L);
	else if (!lua_isnil(L, -1))
		snprintf(why, sizeof(why), "routes must be a table of [\"address\"] = \"route\"");
	if (name == NULL)
		name = "(unnamed)";
	if (tx.nrcpts == 0 || expect == NULL || why[0] != '\0') {
		printf("not ok %d - %s: %s\n", number, name,
		       why[0] ? why : "a case needs rcpt and expect");
		lua_pop(L, 1);
		return 0;
	}
	out = rules_offline_run(r, &tx, ctl_case_step, &c, &final);
	lua_pop(L, 1);
	if (strcmp(expect, rules_offline_outcome_name(out)) != 0)
		snprintf(why, sizeof(why), "expected %s, got %s (%s)", expect,
			 rules_offline_outcome_name(out), final.reply);
	else if (reply != NULL && strncmp(final.reply, reply, strlen(reply)) != 0)
		snprintf(why, sizeof(why), "expected a reply starting with \"%s\", got \"%s\"", reply,
			 final.reply);
	else if (hold != NULL && c.hold[0] == '\0')
		snprintf(why, sizeof(why), "expected a hold for \"%s\", the message was not held",
			 hold);
	else if (hold != NULL && strncmp(c.hold, hold, strlen(hold)) != 0)
		snprintf(why, sizeof(why), "expected a hold reason starting with \"%s\", got \"%s\"",
			 hold, c.hold);
	lua_getfield(L, idx, "results");
	if (why[0] == '\0' && lua_istable(L, -1))
		ctl_case_results(L, &c.auth, why, sizeof(why));
	else if (why[0] == '\0' && !lua_isnil(L, -1))
		snprintf(why, sizeof(why), "results must be a table: { spf = \"pass\", ... }");
	lua_pop(L, 1);
	for (i = 0; i < RULE_STAGE_COUNT && why[0] == '\0'; i++)
		if (c.stage_expect[i] != NULL &&
		    (c.stage_got[i] == NULL || strcmp(c.stage_expect[i], c.stage_got[i]) != 0))
			snprintf(why, sizeof(why), "stage %s: expected %s, got %s",
				 rules_stage_name(i), c.stage_expect[i],
				 c.stage_got[i] ? c.stage_got[i] : "(not reached)");
	if (why[0] == '\0' && c.routes_idx != 0 && !c.routes_seen)
		snprintf(why, sizeof(why), "routes: the message was not delivered (%s)",
			 out != OFFLINE_QUEUED ? rules_offline_outcome_name(out) : c.stopped);
	else if (why[0] == '\0' && c.routes_why[0] != '\0')
		snprintf(why, sizeof(why), "%s", c.routes_why);
	if (why[0] != '\0') {
		printf("not ok %d - %s: %s\n", number, name, why);
		return 0;
	}
	printf("ok %d - %s\n", number, name);
	return 1;
}

/* ctl_test_settings - the test file's config table over st. */
static void ctl_test_settings(lua_State *L, struct ctl_settings *st)
{
	const char *s;

	lua_getfield(L, -1, "config");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if ((s = ctl_field(L, -1, "hostname")) != NULL)
		snprintf(st->hostname, sizeof(st->hostname), "%s", s);
	if ((s = ctl_field(L, -1, "local_domains")) != NULL) {
		free(st->local_domains);
		st->local_domains = strdup(s);
	}
	if ((s = ctl_field(L, -1, "trusted_networks")) != NULL) {
		free(st->trusted_networks);
		st->trusted_networks = strdup(s);
	}
	if (lua_getfield(L, -1, "allow_routing_local_parts") != LUA_TNIL)
		st->allow_routing_local_parts = lua_toboolean(L, -1);
	lua_pop(L, 2);
}

/* ctl_beside - name (a file a test file names) relative to the test file
 * at path, unless it is absolute. */
static void ctl_beside(const char *path, const char *name, char *out, size_t outlen)
{
	const char *slash = strrchr(path, '/');

	if (name[0] == '/' || slash == NULL)
		snprintf(out, outlen, "%s", name);
	else
		snprintf(out, outlen, "%.*s/%s", (int)(slash - path), path, name);
}

/* ctl_test_file - see vsmtpctl_rules_internal.h. */
int ctl_test_file(const char *path, const struct ctl_settings *base, int *number)
{
	struct ctl_settings st = *base;
	lua_State *L = luaL_newstate();
	const char *rules_name, *zone_name;
	char rules_path[4096], zone_path[4096];
	struct rules *r = NULL;
	lua_Integer i, n;
	int failed = -1;

	st.local_domains = strdup(base->local_domains);
	st.trusted_networks = strdup(base->trusted_networks);
	if (L == NULL || st.local_domains == NULL || st.trusted_networks == NULL)
		goto out;
	luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
	luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
	luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
	lua_settop(L, 0);
	if (luaL_loadfilex(L, path, "t") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
		if (lua_type(L, -1) == LUA_TSTRING)
			fprintf(stderr, "vsmtpctl: %s\n", lua_tostring(L, -1));
		else /* described without running its metamethods */
			fprintf(stderr, "vsmtpctl: %s: error object is a %s value\n", path,
				luaL_typename(L, -1));
		goto out;
	}
	if (!lua_istable(L, -1) || (rules_name = ctl_field(L, -1, "rules")) == NULL) {
		fprintf(stderr, "vsmtpctl: %s: must return a table with rules = \"FILE\" and the "
				"cases\n",
			path);
		goto out;
	}
	ctl_test_settings(L, &st);
	ctl_beside(path, rules_name, rules_path, sizeof(rules_path));
	lua_getfield(L, -1, "dns_zone");
	zone_name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	if (zone_name == NULL && !lua_isnil(L, -1)) {
		fprintf(stderr, "vsmtpctl: %s: dns_zone must be the name of a zone file\n", path);
		goto out;
	}
	lua_pop(L, 1); /* the test file's table keeps the string */
	if (zone_name != NULL) {
		ctl_beside(path, zone_name, zone_path, sizeof(zone_path));
		st.dns_zone = zone_path;
	}
	if ((r = ctl_rules_load(rules_path, &st)) == NULL)
		goto out;
	printf("# %s (rules %s)\n", path, rules_path);
	failed = 0;
	n = (lua_Integer)lua_rawlen(L, 1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		if (!lua_istable(L, -1)) {
			printf("not ok %d - case %lld is not a table\n", ++*number, (long long)i);
			failed++;
		} else if (!ctl_case_run(L, lua_gettop(L), ++*number, r, &st)) {
			failed++;
		}
		lua_pop(L, 1);
	}
	if (n == 0) {
		fprintf(stderr, "vsmtpctl: %s: no test cases\n", path);
		failed = -1;
	}
out:
	rules_free(r);
	if (L != NULL)
		lua_close(L);
	free(st.local_domains);
	free(st.trusted_networks);
	return failed;
}
