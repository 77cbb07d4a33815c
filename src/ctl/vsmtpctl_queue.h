/*
 * vsmtpctl_queue.h - vsmtpctl's queue and quarantine commands, which talk to
 * the running daemon over its control socket, and the help they share with
 * the rules commands of vsmtpctl_rules.c.
 */
#ifndef VSMTPD_VSMTPCTL_QUEUE_H
#define VSMTPD_VSMTPCTL_QUEUE_H

#include <stdio.h>

/*
 * ctl_usage - print vsmtpctl's help on fp: that of one command group
 * ("rules", "queue", "quarantine"), or all of it when group is NULL.
 */
void ctl_usage(FILE *fp, const char *group);

/*
 * ctl_usage_error - after the message saying what was wrong: the synopsis
 * of group (NULL: of every group) on stderr. Returns the exit status of a
 * usage error, 2.
 */
int ctl_usage_error(const char *group);

/*
 * ctl_queue_main - run "queue ..." or "quarantine ..." (argv[0] is that
 * word, argc counts it) with the configuration conf (NULL: the default
 * file). Returns the exit status: 0 done, 1 refused or failed for some
 * id, 2 usage or configuration error, 3 the daemon cannot be reached.
 */
int ctl_queue_main(const char *conf, int argc, char **argv);

#endif
