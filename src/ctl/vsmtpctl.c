/*
 * vsmtpctl.c - the administrator's tool: its command line and help. The
 * rules commands (check, try and test rules) are vsmtpctl_rules.c's, the
 * queue and quarantine commands vsmtpctl_queue.c's, the DMARC reports
 * vsmtpctl_dmarc.c's.
 *
 *   vsmtpctl [-c FILE] rules check RULES-FILE
 *   vsmtpctl [-c FILE] rules run RULES-FILE --rcpt ADDR... [--ip IP] [--helo NAME]
 *                      [--from ADDR] [--listener NAME] [--tls] [--auth USER]
 *                      [--dns-zone ZONE-FILE] [MESSAGE-FILE]
 *   vsmtpctl [-c FILE] rules test TEST-FILE...
 *   vsmtpctl [-c FILE] queue|quarantine ...
 *   vsmtpctl [-c FILE] dmarc report ...
 *
 * Every level of the command line is read with getopt_long, and each takes
 * -h / --help: the whole help before a command, that command group's after
 * one; help goes to stdout with status 0, a usage error to stderr (a line
 * saying what was wrong, then the group's synopsis) with status 2. The
 * help text is one table of command groups (ctl_help_table), which
 * man/vsmtpctl.8 follows option for option. The configuration is -c,
 * else /etc/vsmtpd/vsmtpd.conf when it exists, else the defaults.
 * Exit status: 0 accepted / valid / all tests passed, 1 refused / invalid /
 * a test failed, 2 usage or environment error, 3 a rule overran its CPU
 * time (and, for the queue commands, the daemon cannot be reached).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "vsmtpctl_dmarc.h"
#include "vsmtpctl_queue.h"
#include "vsmtpctl_rules.h"

#define CTL_SHORT_OPTIONS "+:c:hV"

enum { CTL_EXIT_USAGE = 2 };

/* One command group's part of the help. */
struct ctl_help {
	const char *group;             /* "rules", "queue", "quarantine" */
	const char *const synopsis[5]; /* after "vsmtpctl [-c FILE] ", NULL-terminated */
	const char *options;           /* what the commands and their options do */
	int control;                   /* takes -s and --json: talks to the daemon */
};

/* The help, one entry per command group, in the order of man/vsmtpctl.8. */
static const struct ctl_help ctl_help_table[] = {
	{"rules",
	 {"rules check RULES-FILE",
	  "rules run RULES-FILE --rcpt ADDR [--rcpt ADDR]...\n"
	  "                          [--ip IP] [--helo NAME] [--from ADDR] [--listener NAME]\n"
	  "                          [--tls] [--auth USER] [--dns-zone ZONE-FILE]\n"
	  "                          [MESSAGE-FILE]",
	  "rules test TEST-FILE...", NULL},
	 "rules: compile a rules file as the daemon does (check), run one transaction\n"
	 "through it (run), or run the cases of test files, in TAP (test).\n"
	 "  --rcpt ADDR         a recipient (repeatable; at least one)\n"
	 "  --ip IP             the client's address (default 127.0.0.1)\n"
	 "  --helo NAME         the client's HELO name (default client.example)\n"
	 "  --from ADDR         the sender (default the null sender)\n"
	 "  --listener NAME     the listener the client came in on (default smtp)\n"
	 "  --tls               the session is encrypted\n"
	 "  --auth USER         the client authenticated as USER\n"
	 "  --dns-zone ZONE-FILE\n"
	 "                      answer the rules' DNS from the zone file, not the\n"
	 "                      servers (in a test file: dns_zone = \"ZONE-FILE\")\n"
	 "  MESSAGE-FILE        the message for the preq stage (default a minimal one)\n",
	 0},
	{"queue",
	 {"queue list [--sender S] [--recipient R] [--queue Q]\n"
	  "                          [--min-age AGE] [--max-age AGE]",
	  "queue show ID", "queue hold|release|requeue|remove ID...", "queue flush [ID...]",
	  NULL},
	 "queue: the running daemon's queue, over its control socket: list it, show a\n"
	 "message, keep messages from delivery (hold) and let them go (release), start\n"
	 "them over (requeue), delete them (remove), try deferred mail now (flush).\n"
	 "  --sender S          only messages whose sender contains S, in any case\n"
	 "  --recipient R       only messages with a recipient that contains R\n"
	 "  --queue Q           only queue Q: active, deferred, hold, quarantine, dead\n"
	 "                      or corrupt (default active, deferred, hold and dead)\n"
	 "  --min-age AGE       only messages that arrived at least AGE ago (30s, 5m, 1h, 2d)\n"
	 "  --max-age AGE       only messages that arrived at most AGE ago\n",
	 1},
	{"quarantine",
	 {"quarantine list [NAME]", "quarantine release|remove NAME ID...", NULL},
	 "quarantine: what the rules quarantined: list it (all, or quarantine NAME),\n"
	 "deliver messages after all (release) or delete them (remove).\n",
	 1},
	{"dmarc",
	 {"dmarc report --org-name NAME --email ADDR [--from DATE] [--to DATE]\n"
	  "                          [--domain D] [--output DIR]",
	  NULL},
	 "dmarc: RFC 7489 aggregate reports, one per policy domain, from the DMARC\n"
	 "records the daemon keeps in the spool (report).\n"
	 "  --org-name NAME     who reports (the report's org_name)\n"
	 "  --email ADDR        the reporter's address; its domain names the report files\n"
	 "  --from DATE         the first UTC day reported, YYYY-MM-DD (default yesterday)\n"
	 "  --to DATE           the last UTC day reported (default the --from day)\n"
	 "  --domain D          only the report for policy domain D\n"
	 "  --output DIR        write each report to a file in DIR and print its path\n"
	 "                      (default: the one report to stdout)\n",
	 0},
};

#define CTL_NGROUPS (sizeof(ctl_help_table) / sizeof(ctl_help_table[0]))

/* The options every queue and quarantine command takes. */
static const char ctl_control_help[] =
    "queue and quarantine commands, anywhere after the group's name:\n"
    "  -s, --socket PATH   the control socket (default: [server] control_socket of\n"
    "                      the configuration, else /run/vsmtpd/control)\n"
    "  --json              print the daemon's answer as it came, one JSON object\n";

/* ctl_help_group - the help table's entry for group, NULL when none. */
static const struct ctl_help *ctl_help_group(const char *group)
{
	for (size_t i = 0; group != NULL && i < CTL_NGROUPS; i++)
		if (strcmp(group, ctl_help_table[i].group) == 0)
			return &ctl_help_table[i];
	return NULL;
}

/* ctl_synopsis - the synopsis lines of one group (only), or of all of them. */
static void ctl_synopsis(FILE *fp, const struct ctl_help *only)
{
	const char *lead = "usage:";

	for (size_t i = 0; i < CTL_NGROUPS; i++) {
		if (only != NULL && only != &ctl_help_table[i])
			continue;
		for (const char *const *line = ctl_help_table[i].synopsis; *line != NULL; line++) {
			fprintf(fp, "%s vsmtpctl [-c FILE] %s\n", lead, *line);
			lead = "      ";
		}
	}
	if (only == NULL)
		fprintf(fp, "       vsmtpctl -h | --help | -V | --version\n");
}

/* ctl_usage - the help of one command group, or of everything when group is NULL. */
void ctl_usage(FILE *fp, const char *group)
{
	const struct ctl_help *only = ctl_help_group(group);

	ctl_synopsis(fp, only);
	if (only == NULL)
		fprintf(fp,
			"  -c FILE             the configuration (default %s,\n"
			"                      else the built-in defaults)\n"
			"  -h, --help          print this help and exit; after a command group,\n"
			"                      that group's help\n"
			"  -V, --version       print the version and exit\n",
			CONFIG_DEFAULT_PATH);
	for (size_t i = 0; i < CTL_NGROUPS; i++)
		if (only == NULL || only == &ctl_help_table[i])
			fprintf(fp, "%s", ctl_help_table[i].options);
	if (only == NULL || only->control)
		fprintf(fp, "%s", ctl_control_help);
	fprintf(fp, "Exit status: 0 done (valid, accepted, passed), 1 refused, invalid or failed,\n"
		    "2 usage or configuration error, 3 vsmtpd cannot be reached or a rule overran\n"
		    "its CPU time. See vsmtpctl(8).\n");
}

/* ctl_usage_error - after a message: the synopsis on stderr; the usage exit status. */
int ctl_usage_error(const char *group)
{
	const struct ctl_help *only = ctl_help_group(group);

	ctl_synopsis(stderr, only);
	fprintf(stderr, "Try 'vsmtpctl%s%s --help' for more information.\n", only ? " " : "",
		only ? only->group : "");
	return CTL_EXIT_USAGE;
}

/* The command groups: rules in vsmtpctl_rules.c, the daemon's queue in vsmtpctl_queue.c. */
static const struct {
	const char *name;
	int (*main)(const char *conf, int argc, char **argv);
} ctl_groups[] = {
	{"rules", ctl_rules_main},
	{"queue", ctl_queue_main},
	{"quarantine", ctl_queue_main},
	{"dmarc", ctl_dmarc_main},
};

/* ctl_group_run - the command group argv[0]; the exit status. */
static int ctl_group_run(const char *conf, int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(ctl_groups) / sizeof(ctl_groups[0]); i++)
		if (strcmp(argv[0], ctl_groups[i].name) == 0)
			return ctl_groups[i].main(conf, argc, argv);
	fprintf(stderr, "vsmtpctl: unknown command: %s\n", argv[0]);
	return ctl_usage_error(NULL);
}

/* main - the options before the command, then the command group. */
int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *conf = NULL;
	int opt;

	/* Line by line, also into a pipe: the report interleaves with the log
	 * lines on stderr, and a rule that overruns its CPU time ends the
	 * process without flushing stdio. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt_long(argc, argv, CTL_SHORT_OPTIONS, opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'V':
			printf("vsmtpctl %s\n", VSMTPD_VERSION);
			return 0;
		case 'h':
			ctl_usage(stdout, NULL);
			return 0;
		default:
			cli_option_error("vsmtpctl", opt, argv, CTL_SHORT_OPTIONS);
			return ctl_usage_error(NULL);
		}
	}
	if (optind == argc) {
		fprintf(stderr, "vsmtpctl: no command given\n");
		return ctl_usage_error(NULL);
	}
	return ctl_group_run(conf, argc - optind, argv + optind);
}
