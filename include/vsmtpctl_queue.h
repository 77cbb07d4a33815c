/*
 * vsmtpctl_queue.h - vsmtpctl's queue and quarantine commands, which talk to
 * the running daemon over its control socket.
 */
#ifndef VSMTPD_VSMTPCTL_QUEUE_H
#define VSMTPD_VSMTPCTL_QUEUE_H

/*
 * ctl_queue_main - run "queue ..." or "quarantine ..." (argv[0] is that
 * word, argc counts it) with the configuration conf (NULL: the default
 * file). Returns the exit status: 0 done, 1 refused or failed for some
 * id, 2 usage or configuration error, 3 the daemon cannot be reached.
 */
int ctl_queue_main(const char *conf, int argc, char **argv);

#endif
