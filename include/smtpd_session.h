/*
 * smtpd_session.h - the session processes: one SMTP connection at a time,
 * many in a process's life.
 */
#ifndef VSMTPD_SMTPD_SESSION_H
#define VSMTPD_SMTPD_SESSION_H

#include "config.h"
#include "rules.h"
#include "tls_server.h"

/*
 * smtpd_session_serve - serve the client on fd until it leaves, then free
 * everything of the connection (fd and queue_fd included). queue_fd is the
 * connection's channel to the queue process; term_fd the process's
 * signalfd for SIGTERM. rules is the ruleset compiled by the master, NULL
 * for none. The summary line ("disconnect from ...") is left in summary
 * for the caller to log. Returns 1 when SIGTERM came during the
 * connection: the process must serve no other.
 */
int smtpd_session_serve(const struct config *cfg, const struct listener_config *listener,
			struct rules *rules, struct tls_server *tls, int fd, int queue_fd,
			int term_fd, char *summary, size_t summary_len);

/*
 * smtpd_worker_main - a session process of the master's pool: serve the
 * connections the master hands over channel, one at a time, each with the
 * listener listeners[i] the master names, until the master closes the
 * channel or SIGTERM comes; then exit. The process is confined already.
 */
void smtpd_worker_main(const struct config *cfg, const struct listener_config *const *listeners,
		       size_t nlisteners, struct rules *rules, struct tls_server *tls, int channel)
	__attribute__((noreturn));

#endif
