/*
 * vsmtpctl_rules.c - vsmtpctl's rules commands: check a rules file, run one
 * transaction through it, and run the cases of test files.
 *
 *   vsmtpctl [-c FILE] rules check RULES-FILE
 *   vsmtpctl [-c FILE] rules run RULES-FILE --rcpt ADDR... [--ip IP] [--helo NAME]
 *                      [--from ADDR] [--listener NAME] [--tls] [--auth USER]
 *                      [--dns-zone ZONE-FILE] [MESSAGE-FILE]
 *   vsmtpctl [-c FILE] rules test TEST-FILE...
 *
 * Each command is an entry of ctl_rules_commands: its options, how many
 * operands it takes and what runs it. A rules command's options are read
 * before the configuration, so that its help (vsmtpctl.c's ctl_usage())
 * never depends on it. The rules are compiled exactly as the daemon
 * compiles them, with the hostname, local domains, trusted networks and
 * limits of the configuration (-c, else /etc/vsmtpd/vsmtpd.conf when it
 * exists, else the defaults). A DNS zone file (--dns-zone, or dns_zone in a
 * test file) answers the rules' DNS instead of the configured servers.
 * Exit status: 0 accepted / valid / all tests
 * passed, 1 refused / invalid / a test failed, 2 usage or environment
 * error, 3 a rule overran its CPU time.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "rules.h"
#include "rules_offline.h"
#include "vsmtpctl_queue.h"
#include "vsmtpctl_rules.h"
#include "vsmtpctl_rules_internal.h"

#define CTL_MESSAGE_MAX (64u << 20)
#define CTL_GROUP_OPTIONS "+:h" /* between a group's name and its command */
#define CTL_RULES_OPTIONS ":h"  /* of a rules command: --help and the long ones */

/* The options of rules run that have no short letter. */
enum {
	OPT_IP = CLI_LONG_ONLY,
	OPT_HELO,
	OPT_FROM,
	OPT_RCPT,
	OPT_LISTENER,
	OPT_AUTH,
	OPT_TLS,
	OPT_DNS_ZONE
};


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
	st->allow_routing_local_parts = cfg->allow_routing_local_parts;
	st->dns_servers = cfg->rules_dns_servers[0] ? strdup(cfg->rules_dns_servers) : NULL;
	st->dns_timeout_ms = cfg->rules_dns_timeout_ms;
	st->limits = rules_limits_of(cfg);
	st->cfg = cfg; /* its services: calls go to the real services */
	return st->local_domains && st->trusted_networks ? 0 : -1;
}

/* ctl_rules_load - see vsmtpctl_rules_internal.h. */
struct rules *ctl_rules_load(const char *path, const struct ctl_settings *st)
{
	struct rules_settings settings = {.hostname = st->hostname,
					  .local_domains = st->local_domains,
					  .trusted_networks = st->trusted_networks,
					  .allow_routing_local_parts = st->allow_routing_local_parts,
					  .dns_servers = st->dns_servers,
					  .dns_timeout_ms = st->dns_timeout_ms,
					  .dns_zone = st->dns_zone,
					  .services = st->cfg ? st->cfg->service : NULL,
					  .nservices = st->cfg ? st->cfg->nservice : 0,
					  /* the signing keys, read now (run as a user who may) */
					  .dkim = st->cfg ? st->cfg->dkim : NULL,
					  .ndkim = st->cfg ? st->cfg->ndkim : 0};
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

/* What a rules command got on its command line. */
struct ctl_rules_args {
	struct offline_tx tx; /* rules run's transaction, from its options */
	const char *rcpts[CTL_MAX_RCPTS];
	const char *dns_zone; /* rules run --dns-zone */
	int nargs;            /* the operands: files */
	char **args;
};

/* ctl_check - rules check FILE. */
static int ctl_check(struct ctl_rules_args *a, const struct ctl_settings *st)
{
	struct rules *r;
	int i;

	if ((r = ctl_rules_load(a->args[0], st)) == NULL)
		return 1;
	printf("%s: rules are valid\n", a->args[0]);
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
	char hold[RULE_HOLD_MAX]; /* preq: the reason the message is held for */
	char auth[OFFLINE_AUTH_TEXT_MAX]; /* the transaction's authentication results */
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
	if (step->stage == RULE_STAGE_PREQ && step->hold[0] != '\0')
		snprintf(rs->hold, sizeof(rs->hold), "%s", step->hold);
	if (step->auth.text[0] != '\0')
		snprintf(rs->auth, sizeof(rs->auth), "%s", step->auth.text);
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

/* ctl_run - rules run FILE [MESSAGE-FILE], with the transaction of the options. */
static int ctl_run(struct ctl_rules_args *a, const struct ctl_settings *st)
{
	struct offline_tx *tx = &a->tx;
	struct ctl_run_state rs = {.after = OFFLINE_AFTER_NONE};
	struct ctl_settings with_zone = *st;
	enum offline_outcome out;
	struct rules *r;
	char *message = NULL;

	tx->server_name = st->hostname;
	if (a->nargs == 2 && (message = ctl_read_file(a->args[1], &tx->message_len)) == NULL)
		return 2;
	tx->message = message;
	with_zone.dns_zone = a->dns_zone;
	if ((r = ctl_rules_load(a->args[0], &with_zone)) == NULL) {
		free(message);
		return 1;
	}
	rules_set_trace(r, ctl_trace_print, NULL);
	out = rules_offline_run(r, tx, ctl_step_print, &rs, NULL);
	if (rs.auth[0] != '\0')
		printf("authentication: %s\n", rs.auth);
	/* The outcome is the client's; what postq or delivery then did with a
	 * queued message follows it when they stopped its delivery. */
	if (rs.after != OFFLINE_AFTER_NONE && rs.after != OFFLINE_AFTER_DELIVERED)
		printf("result: %s, then %s (%s)\n", rules_offline_outcome_name(out),
		       rules_offline_after_name(rs.after), rs.reply);
	else if (out == OFFLINE_HELD)
		printf("result: held (%s)\n", rs.hold);
	else
		printf("result: %s\n", rules_offline_outcome_name(out));
	rules_free(r);
	free(message);
	return out == OFFLINE_QUEUED || out == OFFLINE_QUARANTINED || out == OFFLINE_DISCARDED ||
		       out == OFFLINE_HELD
		   ? 0
		   : 1;
}

/* ---- rules test ------------------------------------------------------ */

/* ctl_test - rules test FILE...: TAP output, exit 1 on any failure. */
static int ctl_test(struct ctl_rules_args *a, const struct ctl_settings *st)
{
	int i, number = 0, failed = 0, rc;

	for (i = 0; i < a->nargs; i++) {
		if ((rc = ctl_test_file(a->args[i], st, &number)) < 0)
			return 2;
		failed += rc;
	}
	printf("1..%d\n", number);
	if (failed > 0)
		printf("# %d of %d failed\n", failed, number);
	return failed > 0 ? 1 : 0;
}

/* ---- the command line ------------------------------------------------- */

/* The options of rules check and rules test: --help alone. */
static const struct option ctl_help_options[] = {
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* The options of rules run: the transaction, and --help. */
static const struct option ctl_run_options[] = {
	{"ip", required_argument, NULL, OPT_IP},
	{"helo", required_argument, NULL, OPT_HELO},
	{"from", required_argument, NULL, OPT_FROM},
	{"rcpt", required_argument, NULL, OPT_RCPT},
	{"listener", required_argument, NULL, OPT_LISTENER},
	{"auth", required_argument, NULL, OPT_AUTH},
	{"tls", no_argument, NULL, OPT_TLS},
	{"dns-zone", required_argument, NULL, OPT_DNS_ZONE},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* One rules command: its options, its operands, what runs it. */
struct ctl_rules_command {
	const char *name;
	const struct option *options;
	int min_args, max_args;
	const char *operands; /* for the message when their number is wrong */
	int transaction;      /* takes rules run's options, and needs a --rcpt */
	int (*run)(struct ctl_rules_args *a, const struct ctl_settings *st);
};

static const struct ctl_rules_command ctl_rules_commands[] = {
	{"check", ctl_help_options, 1, 1, "one rules file", 0, ctl_check},
	{"run", ctl_run_options, 1, 2, "a rules file and at most one message file", 1, ctl_run},
	{"test", ctl_help_options, 1, INT_MAX, "one or more test files", 0, ctl_test},
};

/* ctl_run_option - one option of rules run into the transaction; 0, or -1 when too many. */
static int ctl_run_option(int opt, struct ctl_rules_args *a)
{
	struct offline_tx *tx = &a->tx;

	switch (opt) {
	case OPT_IP:
		tx->client_ip = optarg;
		break;
	case OPT_HELO:
		tx->helo = optarg;
		break;
	case OPT_FROM:
		tx->mail_from = optarg;
		break;
	case OPT_RCPT:
		if (tx->nrcpts == CTL_MAX_RCPTS) {
			fprintf(stderr, "vsmtpctl: at most %d --rcpt\n", CTL_MAX_RCPTS);
			return -1;
		}
		a->rcpts[tx->nrcpts++] = optarg;
		break;
	case OPT_LISTENER:
		tx->listener = optarg;
		break;
	case OPT_AUTH:
		tx->authid = optarg;
		break;
	case OPT_TLS:
		tx->tls = 1;
		break;
	case OPT_DNS_ZONE:
		a->dns_zone = optarg;
		break;
	}
	return 0;
}

/* ctl_rules_parse - the options and operands of command c (argv[0] is its
 * name); -1 to go on, else the exit status (help printed, or a usage error). */
static int ctl_rules_parse(const struct ctl_rules_command *c, int argc, char **argv,
			   struct ctl_rules_args *a)
{
	int opt;

	a->tx.rcpts = a->rcpts;
	optind = 0; /* glibc: a full restart, the earlier scans stopped at the command */
	while ((opt = getopt_long(argc, argv, CTL_RULES_OPTIONS, c->options, NULL)) != -1) {
		if (opt == 'h') {
			ctl_usage(stdout, "rules");
			return 0;
		}
		if (opt == '?' || opt == ':') {
			cli_option_error("vsmtpctl", opt, argv, CTL_RULES_OPTIONS);
			return ctl_usage_error("rules");
		}
		if (ctl_run_option(opt, a) < 0)
			return ctl_usage_error("rules");
	}
	a->args = argv + optind;
	a->nargs = argc - optind;
	if (a->nargs < c->min_args || a->nargs > c->max_args) {
		fprintf(stderr, "vsmtpctl: rules %s takes %s\n", c->name, c->operands);
		return ctl_usage_error("rules");
	}
	if (c->transaction && a->tx.nrcpts == 0) {
		fprintf(stderr, "vsmtpctl: rules run needs at least one --rcpt\n");
		return ctl_usage_error("rules");
	}
	return -1;
}

/* ctl_rules_command - the rules command called name, NULL after a message. */
static const struct ctl_rules_command *ctl_rules_command(const char *name)
{
	size_t n = sizeof(ctl_rules_commands) / sizeof(ctl_rules_commands[0]);

	for (size_t i = 0; name != NULL && i < n; i++)
		if (strcmp(name, ctl_rules_commands[i].name) == 0)
			return &ctl_rules_commands[i];
	if (name == NULL)
		fprintf(stderr, "vsmtpctl: rules needs a command: check, run or test\n");
	else
		fprintf(stderr, "vsmtpctl: unknown command: rules %s\n", name);
	return NULL;
}

/* ctl_group_options - --help between a group's name and its command (argv[0]
 * is the group); -1 to go on with argv[optind], else the exit status. */
static int ctl_group_options(const char *group, int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	optind = 0; /* glibc: a full restart */
	while ((opt = getopt_long(argc, argv, CTL_GROUP_OPTIONS, opts, NULL)) != -1) {
		if (opt == 'h') {
			ctl_usage(stdout, group);
			return 0;
		}
		cli_option_error("vsmtpctl", opt, argv, CTL_GROUP_OPTIONS);
		return ctl_usage_error(group);
	}
	return -1;
}

/* ctl_rules_main - rules check|run|test (argv[0] is "rules"). */
int ctl_rules_main(const char *conf, int argc, char **argv)
{
	const struct ctl_rules_command *c;
	struct ctl_rules_args a;
	struct ctl_settings st;
	int rc;

	memset(&a, 0, sizeof(a));
	if ((rc = ctl_group_options("rules", argc, argv)) >= 0)
		return rc;
	if ((c = ctl_rules_command(optind < argc ? argv[optind] : NULL)) == NULL)
		return ctl_usage_error("rules");
	if ((rc = ctl_rules_parse(c, argc - optind, argv + optind, &a)) >= 0)
		return rc;
	/* Rule log lines (log(), failures) go to stderr, as for any tool. */
	log_open(LOG_TARGET_STDERR, LOG_DEBUG, LOG_MAIL);
	log_set_role("vsmtpctl");
	if (ctl_settings_load(conf, &st) < 0)
		return 2;
	rc = c->run(&a, &st);
	free(st.local_domains);
	free(st.trusted_networks);
	free(st.dns_servers);
	config_free(st.cfg);
	return rc;
}
