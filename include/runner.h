/*
 * runner.h - the command runner process (src/runner/): it starts the
 * programs of kind = command services for ctx:command(), which sessions and
 * the delivery worker cannot start themselves. See runner_proto.h for what
 * they send it and src/runner/runner.c for what it does.
 */
#ifndef VSMTPD_RUNNER_H
#define VSMTPD_RUNNER_H

#include "config.h"

/* runner_main - run the runner on fd, its end of the socket pair the master
 * made (runner_proto.h), with cfg's command services; never returns. */
void runner_main(const struct config *cfg, int fd) __attribute__((noreturn));

/* runner_needed - whether cfg has a command service, for which the master
 * starts the runner. */
int runner_needed(const struct config *cfg);

#endif
