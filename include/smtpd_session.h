/*
 * smtpd_session.h - one SMTP connection, in its own process.
 */
#ifndef VSMTPD_SMTPD_SESSION_H
#define VSMTPD_SMTPD_SESSION_H

#include "config.h"
#include "rules.h"
#include "tls_server.h"

/*
 * smtpd_session_main - serve the client on fd until it leaves, then exit.
 * queue_fd is this session's channel to the queue process; the master
 * forks no session while the queue is down (it answers 421 itself). rules
 * is the ruleset compiled by the master, NULL for none.
 */
void smtpd_session_main(const struct config *cfg, const struct listener_config *listener,
		       struct rules *rules, struct tls_server *tls, int fd, int queue_fd)
	__attribute__((noreturn));

#endif
