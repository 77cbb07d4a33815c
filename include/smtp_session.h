/*
 * smtp_session.h - one SMTP connection, in its own process.
 */
#ifndef VSMTPD_SMTP_SESSION_H
#define VSMTPD_SMTP_SESSION_H

#include "config.h"

/*
 * smtp_session_main - serve the client on fd until it leaves, then exit.
 * queue_fd is this session's channel to the queue process (-1 when the
 * queue is down: the client is told to come back later).
 */
void smtp_session_main(const struct config *cfg, const struct listener_config *listener, int fd,
		       int queue_fd) __attribute__((noreturn));

#endif
