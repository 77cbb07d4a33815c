/*
 * main.c - the vsmtpd command: check the configuration or run the daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "master.h"
#include "rules.h"
#include "smtp_auth.h"
#include "tls_server.h"

#define MAX_OVERRIDES 64

/* usage - print the synopsis and exit with status. */
static void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: vsmtpd [-t] [-c file] [-o section.key=value ...]\n"
		"  -c file   configuration file (default %s)\n"
		"  -o s.k=v  override a configuration key (repeatable)\n"
		"  -t        check the configuration and the rules, then exit\n"
		"  -V        print the version and exit\n",
		CONFIG_DEFAULT_PATH);
	exit(status);
}

int main(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_PATH;
	char *overrides[MAX_OVERRIDES];
	size_t noverrides = 0;
	int opt, check = 0;
	struct config *cfg;
	struct rules *rules;
	struct tls_server *tls;
	char err[1024];

	while ((opt = getopt(argc, argv, "c:o:tVh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'o':
			if (noverrides == MAX_OVERRIDES) {
				fprintf(stderr, "vsmtpd: at most %d -o options\n", MAX_OVERRIDES);
				return 2;
			}
			overrides[noverrides++] = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'V':
			printf("vsmtpd %s\n", VSMTPD_VERSION);
			return 0;
		case 'h':
			usage(0);
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);

	if ((cfg = config_load(path, overrides, noverrides, err, sizeof(err))) == NULL) {
		fprintf(stderr, "vsmtpd: %s\n", err);
		return 1;
	}
	if ((rules = rules_load_config(cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "vsmtpd: %s\n", err);
		config_free(cfg);
		return 1;
	}
	/* Keys are read now, while we may still be root. */
	if ((tls = tls_server_load(cfg, err, sizeof(err))) == NULL && err[0] != '\0') {
		fprintf(stderr, "vsmtpd: %s\n", err);
		rules_free(rules);
		config_free(cfg);
		return 1;
	}
	if (smtp_auth_configure(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "vsmtpd: %s\n", err);
		tls_server_free(tls);
		rules_free(rules);
		config_free(cfg);
		return 1;
	}
	if (check) {
		printf("vsmtpd: %s: configuration is valid\n", path);
		printf("vsmtpd: %s: rules are valid\n", cfg->rules_file);
		tls_server_free(tls);
		rules_free(rules);
		config_free(cfg);
		return 0;
	}
	return master_main(cfg, rules, tls, overrides, noverrides);
}
