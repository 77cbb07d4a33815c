/*
 * vsmtpctl_rules.h - vsmtpctl's rules commands (check, run, test), which
 * compile and run a rules file offline, as the daemon would.
 */
#ifndef VSMTPD_VSMTPCTL_RULES_H
#define VSMTPD_VSMTPCTL_RULES_H

/*
 * ctl_rules_main - run "rules check|run|test ..." (argv[0] is "rules", argc
 * counts it) with the configuration conf (NULL: the default file). Returns
 * the exit status: 0 accepted, valid or all tests passed, 1 refused,
 * invalid or a test failed, 2 usage or configuration error (3, a rule
 * that overran its CPU time, ends the process).
 */
int ctl_rules_main(const char *conf, int argc, char **argv);

#endif
