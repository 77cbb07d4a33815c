/*
 * vsmtpctl.c - the administrator's tool: check, try and test rules.
 *
 *   vsmtpctl [-c conf] rules check FILE
 *   vsmtpctl [-c conf] rules run FILE [--ip IP] [--helo NAME] [--from ADDR]
 *                      [--rcpt ADDR]... [--listener NAME] [--tls] [--auth USER]
 *                      [MESSAGE-FILE]
 *   vsmtpctl [-c conf] rules test TEST-FILE...
 *
 * The rules are compiled exactly as the daemon compiles them, with the
 * hostname, local domains, trusted networks and limits of the configuration
 * (-c, else /etc/vsmtpd/vsmtpd.conf when it exists, else the defaults).
 * Exit status: 0 accepted / valid / all tests passed, 1 refused / invalid /
 * a test failed, 2 usage or environment error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "config.h"
#include "log.h"
#include "rules.h"
#include "rules_offline.h"
#include "vsmtpctl_queue.h"

#define CTL_MAX_RCPTS 1000
#define CTL_MESSAGE_MAX (64u << 20)

/* What the rules are compiled with. */
struct ctl_settings {
	char hostname[256];
	char *local_domains;
	char *trusted_networks;
	char *dns_servers;
	unsigned dns_timeout_ms;
	struct rules_limits limits;
};

/* usage - the synopsis, then exit. */
static void usage(int status) __attribute__((noreturn));
static void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: vsmtpctl [-c conf] rules check FILE\n"
		"       vsmtpctl [-c conf] rules run FILE [--ip IP] [--helo NAME] [--from ADDR]\n"
		"                          [--rcpt ADDR]... [--listener NAME] [--tls] [--auth USER]\n"
		"                          [MESSAGE-FILE]\n"
		"       vsmtpctl [-c conf] rules test TEST-FILE...\n"
		"       vsmtpctl [-c conf] queue list [--sender S] [--recipient R] [--queue Q]\n"
		"                          [--min-age AGE] [--max-age AGE] [--json]\n"
		"       vsmtpctl [-c conf] queue show ID [--json]\n"
		"       vsmtpctl [-c conf] queue remove|hold|release|requeue ID...\n"
		"       vsmtpctl [-c conf] queue flush [ID...]\n"
		"       vsmtpctl [-c conf] quarantine list [NAME] [--json]\n"
		"       vsmtpctl [-c conf] quarantine release|remove NAME ID...\n"
		"  (queue and quarantine commands: -s PATH for another control socket)\n");
	exit(status);
}

/* ctl_settings_load - the configuration's settings, or the defaults. */
static int ctl_settings_load(const char *conf, struct ctl_settings *st)
{
	struct config *cfg;
	char err[1024];

	memset(st, 0, sizeof(*st));
	if (conf == NULL && access(CONFIG_DEFAULT_PATH, R_OK) == 0)
		conf = CONFIG_DEFAULT_PATH;
	if (conf == NULL) {
		if (gethostname(st->hostname, sizeof(st->hostname) - 1) < 0)
			strcpy(st->hostname, "localhost");
		st->local_domains = strdup("");
		st->trusted_networks = strdup("127.0.0.0/8 ::1");
		st->dns_servers = NULL; /* the system's resolvers */
		st->dns_timeout_ms = 5000;
		st->limits = (struct rules_limits){
			.instructions = 10000000, .memory = 64 << 20, .cpu_ms = 2000};
		return st->local_domains && st->trusted_networks ? 0 : -1;
	}
	if ((cfg = config_load(conf, NULL, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "vsmtpctl: %s\n", err);
		return -1;
	}
	snprintf(st->hostname, sizeof(st->hostname), "%s", cfg->hostname);
	st->local_domains = strdup(cfg->local_domains);
	st->trusted_networks = strdup(cfg->trusted_networks);
	st->dns_servers = cfg->rules_dns_servers[0] ? strdup(cfg->rules_dns_servers) : NULL;
	st->dns_timeout_ms = cfg->rules_dns_timeout_ms;
	st->limits = (struct rules_limits){.instructions = cfg->rules_instruction_limit,
					   .memory = cfg->rules_memory_limit,
					   .cpu_ms = cfg->rules_time_limit_ms};
	config_free(cfg);
	return st->local_domains && st->trusted_networks ? 0 : -1;
}

/* ctl_rules_load - compile a rules file; prints why not. */
static struct rules *ctl_rules_load(const char *path, const struct ctl_settings *st)
{
	struct rules_settings settings = {.hostname = st->hostname,
					  .local_domains = st->local_domains,
					  .trusted_networks = st->trusted_networks,
					  .dns_servers = st->dns_servers,
					  .dns_timeout_ms = st->dns_timeout_ms};
	char *abs = realpath(path, NULL), err[1024];
	struct rules *r;

	if (abs == NULL) {
		fprintf(stderr, "vsmtpctl: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	r = rules_load(abs, &st->limits, &settings, err, sizeof(err));
	free(abs);
	if (r == NULL)
		fprintf(stderr, "vsmtpctl: %s\n", err);
	return r;
}

/* ctl_check - rules check FILE. */
static int ctl_check(int argc, char **argv, const struct ctl_settings *st)
{
	struct rules *r;
	int i;

	if (argc != 1)
		usage(2);
	if ((r = ctl_rules_load(argv[0], st)) == NULL)
		return 1;
	printf("%s: rules are valid\n", argv[0]);
	for (i = 0; i < RULE_STAGE_COUNT; i++)
		if (rules_count(r, i) > 0)
			printf("  %-12s %zu rule%s\n", rules_stage_name(i), rules_count(r, i),
			       rules_count(r, i) == 1 ? "" : "s");
	rules_free(r);
	return 0;
}

/* ctl_read_file - a whole file into memory; NULL with a message. */
static char *ctl_read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	size_t n;

	if (fp == NULL) {
		fprintf(stderr, "vsmtpctl: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(CTL_MESSAGE_MAX + 1)) == NULL) {
		fclose(fp);
		return NULL;
	}
	n = fread(buf, 1, CTL_MESSAGE_MAX + 1, fp);
	fclose(fp);
	if (n > CTL_MESSAGE_MAX) {
		fprintf(stderr, "vsmtpctl: %s: larger than %u MB\n", path, CTL_MESSAGE_MAX >> 20);
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* ctl_trace_print - one rule's outcome, for rules run. */
static void ctl_trace_print(void *arg, enum rule_stage stage, const char *rule, const char *where,
			    const char *result)
{
	printf("    %-8s %-30s %s\n", result, rule, where);
}

/* What rules run remembers of the stages after queueing. */
struct ctl_run_state {
	enum offline_after after; /* what postq or delivery decided */
	char reply[RULE_TEXT_MAX + 32];
};

/* ctl_step_print - one stage's outcome, for rules run; after the delivery
 * stage, each recipient's transport. */
static void ctl_step_print(void *arg, const struct offline_step *step)
{
	struct ctl_run_state *rs = arg;
	char stage[300], route[RULE_ROUTE_TARGET_MAX + 16];
	size_t i;

	if (step->rcpt != NULL)
		snprintf(stage, sizeof(stage), "%s <%s>", rules_stage_name(step->stage), step->rcpt);
	else
		snprintf(stage, sizeof(stage), "%s", rules_stage_name(step->stage));
	if (step->reply[0] != '\0')
		printf("%-28s %-10s %s", stage, rules_status_name(step->v.status), step->reply);
	else /* postq and delivery have nothing to answer when they go on */
		printf("%-28s %s", stage, rules_status_name(step->v.status));
	if (step->v.rule[0])
		printf("   (rule \"%s\")", step->v.rule);
	printf("\n");
	for (i = 0; i < step->nroutes; i++) {
		rules_offline_route_format(step->routes[i].kind, step->routes[i].target, route,
					   sizeof(route));
		printf("delivery: %s -> %s\n", step->routes[i].rcpt, route);
	}
	if (step->after != OFFLINE_AFTER_NONE) {
		rs->after = step->after;
		snprintf(rs->reply, sizeof(rs->reply), "%s", step->reply);
	}
}

/* ctl_run - rules run FILE [options] [MESSAGE-FILE]. */
static int ctl_run(int argc, char **argv, const struct ctl_settings *st)
{
	static const struct option opts[] = {
		{"ip", required_argument, NULL, 'i'},   {"helo", required_argument, NULL, 'h'},
		{"from", required_argument, NULL, 'f'}, {"rcpt", required_argument, NULL, 'r'},
		{"listener", required_argument, NULL, 'l'}, {"auth", required_argument, NULL, 'a'},
		{"tls", no_argument, NULL, 't'},            {NULL, 0, NULL, 0},
	};
	const char *rcpts[CTL_MAX_RCPTS];
	struct offline_tx tx = {.server_name = st->hostname, .rcpts = rcpts};
	struct ctl_run_state rs = {.after = OFFLINE_AFTER_NONE};
	enum offline_outcome out;
	struct rules *r;
	char *message = NULL;
	int opt;

	optind = 0; /* glibc: a full restart, the first scan stopped at "rules" */
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			tx.client_ip = optarg;
			break;
		case 'h':
			tx.helo = optarg;
			break;
		case 'f':
			tx.mail_from = optarg;
			break;
		case 'r':
			if (tx.nrcpts == CTL_MAX_RCPTS)
				usage(2);
			rcpts[tx.nrcpts++] = optarg;
			break;
		case 'l':
			tx.listener = optarg;
			break;
		case 'a':
			tx.authid = optarg;
			break;
		case 't':
			tx.tls = 1;
			break;
		default:
			usage(2);
		}
	}
	if (optind >= argc || argc - optind > 2 || tx.nrcpts == 0) {
		fprintf(stderr, "vsmtpctl: rules run needs a rules file and at least one --rcpt\n");
		usage(2);
	}
	if (argc - optind == 2 && (message = ctl_read_file(argv[optind + 1], &tx.message_len)) == NULL)
		return 2;
	tx.message = message;
	if ((r = ctl_rules_load(argv[optind], st)) == NULL) {
		free(message);
		return 1;
	}
	rules_set_trace(r, ctl_trace_print, NULL);
	out = rules_offline_run(r, &tx, ctl_step_print, &rs, NULL);
	/* The outcome is the client's; what postq or delivery then did with a
	 * queued message follows it when they stopped its delivery. */
	if (rs.after != OFFLINE_AFTER_NONE && rs.after != OFFLINE_AFTER_DELIVERED)
		printf("result: %s, then %s (%s)\n", rules_offline_outcome_name(out),
		       rules_offline_after_name(rs.after), rs.reply);
	else
		printf("result: %s\n", rules_offline_outcome_name(out));
	rules_free(r);
	free(message);
	return out == OFFLINE_QUEUED || out == OFFLINE_QUARANTINED || out == OFFLINE_DISCARDED ? 0
												: 1;
}

/* ---- rules test ------------------------------------------------------ */

/* What one test case expects, and what it got. */
struct ctl_case {
	const char *stage_expect[RULE_STAGE_COUNT]; /* a status name per stage, or NULL */
	const char *stage_got[RULE_STAGE_COUNT];
	lua_State *L;        /* the test file's state, */
	int routes_idx;      /* the index of the case's routes table there, 0 for none */
	int routes_seen;     /* the delivery stage reported its routes */
	char routes_why[768]; /* the first route that differs */
	char stopped[RULE_TEXT_MAX + 64]; /* "postq: quarantined ...": what stopped delivery */
};

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
	const char *rcpts[CTL_MAX_RCPTS], *name, *expect, *reply;
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
	lua_pop(L, 1);
	tx.nrcpts = ctl_case_rcpts(L, idx, rcpts);
	lua_getfield(L, idx, "message");
	if (lua_isstring(L, -1)) {
		tx.message = lua_tolstring(L, -1, &len);
		tx.message_len = len;
	}
	lua_pop(L, 1);
	expect = ctl_field(L, idx, "expect");
	reply = ctl_field(L, idx, "reply");
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
	lua_pop(L, 1);
}

/* ctl_test_file - run one test file; the number of failures, -1 when it
 * cannot run at all. */
static int ctl_test_file(const char *path, const struct ctl_settings *base, int *number)
{
	struct ctl_settings st = *base;
	lua_State *L = luaL_newstate();
	const char *rules_name, *slash = strrchr(path, '/');
	char rules_path[4096];
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
		fprintf(stderr, "vsmtpctl: %s\n", lua_tostring(L, -1));
		goto out;
	}
	if (!lua_istable(L, -1) || (rules_name = ctl_field(L, -1, "rules")) == NULL) {
		fprintf(stderr, "vsmtpctl: %s: must return a table with rules = \"FILE\" and the "
				"cases\n",
			path);
		goto out;
	}
	ctl_test_settings(L, &st);
	if (rules_name[0] == '/' || slash == NULL)
		snprintf(rules_path, sizeof(rules_path), "%s", rules_name);
	else
		snprintf(rules_path, sizeof(rules_path), "%.*s/%s", (int)(slash - path), path,
			 rules_name);
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

/* ctl_test - rules test FILE...: TAP output, exit 1 on any failure. */
static int ctl_test(int argc, char **argv, const struct ctl_settings *st)
{
	int i, number = 0, failed = 0, rc;

	if (argc < 1)
		usage(2);
	for (i = 0; i < argc; i++) {
		if ((rc = ctl_test_file(argv[i], st, &number)) < 0)
			return 2;
		failed += rc;
	}
	printf("1..%d\n", number);
	if (failed > 0)
		printf("# %d of %d failed\n", failed, number);
	return failed > 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct ctl_settings st;
	const char *conf = NULL;
	int opt, rc;

	/* Line by line, also into a pipe: the report interleaves with the log
	 * lines on stderr, and a rule that overruns its CPU time ends the
	 * process without flushing stdio. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "+c:hV")) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'V':
			printf("vsmtpctl %s\n", VSMTPD_VERSION);
			return 0;
		case 'h':
			usage(0);
			break;
		default:
			usage(2);
		}
	}
	/* The queue commands talk to the running daemon: no rules to load. */
	if (argc - optind >= 2 &&
	    (strcmp(argv[optind], "queue") == 0 || strcmp(argv[optind], "quarantine") == 0))
		return ctl_queue_main(conf, argc - optind, argv + optind);
	if (argc - optind < 2 || strcmp(argv[optind], "rules") != 0)
		usage(2);
	/* Rule log lines (log(), failures) go to stderr, as for any tool. */
	log_open(LOG_TARGET_STDERR, LOG_DEBUG, LOG_MAIL);
	log_set_role("vsmtpctl");
	if (ctl_settings_load(conf, &st) < 0)
		return 2;
	argv += optind + 1;
	argc -= optind + 1;
	if (strcmp(argv[0], "check") == 0)
		rc = ctl_check(argc - 1, argv + 1, &st);
	else if (strcmp(argv[0], "run") == 0)
		rc = ctl_run(argc, argv, &st);
	else if (strcmp(argv[0], "test") == 0)
		rc = ctl_test(argc - 1, argv + 1, &st);
	else
		usage(2);
	free(st.local_domains);
	free(st.trusted_networks);
	free(st.dns_servers);
	return rc;
}
