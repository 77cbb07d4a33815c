/*
 * main.c - the vsmtpd command: check the configuration or run the daemon.
 *
 * The command line is read with getopt_long: the short options of the
 * daemon (-c, -o, -t) and the --help and --version every Unix daemon has.
 * A usage error is one line on stderr, then the synopsis, and exit status
 * 2. What the daemon needs is then loaded in its order: the configuration
 * (the -o overrides after the file), the rules, the certificates and keys
 * (read now, while we may still be root) and the SASL setup; the first
 * failure is one line on stderr and exit status 1. With -t that is all;
 * otherwise master_main() runs the daemon in the foreground until SIGTERM
 * or SIGINT, and its status (0 after a clean stop) is ours. man/vsmtpd.8
 * documents the same options, signals and exit statuses.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "master.h"
#include "rules.h"
#include "smtpd_auth.h"
#include "tls_server.h"

#define MAX_OVERRIDES 64
#define SHORT_OPTIONS ":c:o:tVh"

enum { EXIT_USAGE = 2 };

/* What the command line asks for. */
struct args {
	const char *path;               /* -c */
	char *overrides[MAX_OVERRIDES]; /* -o, in order */
	size_t noverrides;
	int check;                      /* -t */
};

/* What the daemon runs with, once loaded. */
struct loaded {
	struct config *cfg;
	struct rules *rules;
	struct tls_server *tls;
};

/* The synopsis, on its own after a usage error, and at the top of the help. */
static const char synopsis[] = "usage: vsmtpd [-t] [-c FILE] [-o SECTION.KEY=VALUE]...\n"
			       "       vsmtpd -h | --help\n"
			       "       vsmtpd -V | --version\n";

/* usage - print the help on stdout. */
static void usage(void)
{
	printf("%s"
	       "The vsmtpd mail transfer agent: runs in the foreground until SIGTERM or\n"
	       "SIGINT; SIGHUP reloads the configuration, rules and certificates.\n"
	       "  -c FILE                 the configuration file (default %s)\n"
	       "  -o SECTION.KEY=VALUE    override a key of the file (repeatable, at most %d)\n"
	       "  -t                      check the configuration, the rules, the certificates\n"
	       "                          and the SASL setup, then exit\n"
	       "  -h, --help              print this help and exit\n"
	       "  -V, --version           print the version and exit\n"
	       "Exit status: 0 valid or stopped cleanly, 1 configuration or start-up error,\n"
	       "2 usage error. See vsmtpd(8).\n",
	       synopsis, CONFIG_DEFAULT_PATH, MAX_OVERRIDES);
}

/* usage_error - after a message: the synopsis on stderr; the usage exit status. */
static int usage_error(void)
{
	fprintf(stderr, "%sTry 'vsmtpd --help' for more information.\n", synopsis);
	return EXIT_USAGE;
}

/* parse_args - fill a from argv; -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, SHORT_OPTIONS, longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			a->path = optarg;
			break;
		case 'o':
			if (a->noverrides == MAX_OVERRIDES) {
				fprintf(stderr, "vsmtpd: at most %d -o options\n", MAX_OVERRIDES);
				return EXIT_USAGE;
			}
			a->overrides[a->noverrides++] = optarg;
			break;
		case 't':
			a->check = 1;
			break;
		case 'V':
			printf("vsmtpd %s\n", VSMTPD_VERSION);
			return 0;
		case 'h':
			usage();
			return 0;
		default:
			cli_option_error("vsmtpd", opt, argv, SHORT_OPTIONS);
			return usage_error();
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vsmtpd: unexpected argument: %s\n", argv[optind]);
		return usage_error();
	}
	return -1;
}

/* loaded_free - release whatever was loaded. */
static void loaded_free(struct loaded *l)
{
	tls_server_free(l->tls);
	rules_free(l->rules);
	config_free(l->cfg);
}

/* load - the configuration, rules, certificates and SASL setup; 0, or -1
 * after a message on stderr (and nothing left loaded). */
static int load(const struct args *a, struct loaded *l)
{
	char err[1024] = "";

	l->cfg = config_load(a->path, a->overrides, a->noverrides, err, sizeof(err));
	if (l->cfg == NULL || (l->rules = rules_load_config(l->cfg, err, sizeof(err))) == NULL)
		goto fail;
	/* No certificate configured is no error: err stays empty. */
	if ((l->tls = tls_server_load(l->cfg, err, sizeof(err))) == NULL && err[0] != '\0')
		goto fail;
	if (smtpd_auth_configure(l->cfg, err, sizeof(err)) < 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "vsmtpd: %s\n", err);
	loaded_free(l);
	return -1;
}

/* main - check the configuration, or run the daemon with it. */
int main(int argc, char **argv)
{
	struct args a = {.path = CONFIG_DEFAULT_PATH};
	struct loaded l = {NULL, NULL, NULL};
	int rc;

	if ((rc = parse_args(argc, argv, &a)) >= 0)
		return rc;
	if (load(&a, &l) < 0)
		return 1;
	if (a.check) {
		printf("vsmtpd: %s: configuration is valid\n", a.path);
		printf("vsmtpd: %s: rules are valid\n", l.cfg->rules_file);
		loaded_free(&l);
		return 0;
	}
	return master_main(l.cfg, l.rules, l.tls, a.overrides, a.noverrides);
}
