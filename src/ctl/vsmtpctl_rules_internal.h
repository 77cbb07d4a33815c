/*
 * vsmtpctl_rules_internal.h - what the rules commands of vsmtpctl share:
 * the settings rules are compiled with and their loading
 * (vsmtpctl_rules.c), and the test cases of `rules test`
 * (vsmtpctl_rules_test.c).
 */
#ifndef VSMTPD_VSMTPCTL_RULES_INTERNAL_H
#define VSMTPD_VSMTPCTL_RULES_INTERNAL_H

#include "config.h"
#include "rules.h"

#define CTL_MAX_RCPTS 1000

/* What the rules are compiled with. */
struct ctl_settings {
	char hostname[256];
	char *local_domains;
	char *trusted_networks;
	int allow_routing_local_parts;
	char *dns_servers;
	unsigned dns_timeout_ms;
	const char *dns_zone; /* NULL, or the zone file that answers DNS (not owned) */
	struct rules_limits limits;
	struct config *cfg; /* the configuration read, kept for its [service:NAME]; NULL */
};

/* ctl_rules_load - compile a rules file with st; prints why not. */
struct rules *ctl_rules_load(const char *path, const struct ctl_settings *st);

/* ctl_test_file - run the cases of one test file, numbering them from
 * *number + 1 (updated); the number of failures, -1 when it cannot run. */
int ctl_test_file(const char *path, const struct ctl_settings *base, int *number);

#endif
