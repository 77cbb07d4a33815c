/*
 * master.h - the master process: listeners, limits, supervision, signals.
 */
#ifndef VSMTPD_MASTER_H
#define VSMTPD_MASTER_H

#include <stddef.h>

#include "config.h"
#include "rules.h"
#include "tls_server.h"

/*
 * master_main - run the daemon in the foreground with cfg, read from
 * cfg->path with the given overrides, which SIGHUP applies again when it
 * re-reads the file, and the rules compiled from cfg. Takes ownership of
 * cfg and rules. Returns the process exit status.
 */
int master_main(struct config *cfg, struct rules *rules, struct tls_server *tls,
                char *const *overrides, size_t noverrides);

#endif
