/*
 * delivery.h - the delivery worker: the offline stages and the transports.
 *
 * Started and supervised by the master, it keeps the schedule of every
 * message in queue/ (the queue tells it what is there), runs the postq and
 * delivery rules, delivers through maildir, mbox, LMTP, SMTP relays and MX
 * hosts with many deliveries in flight, retries deferred recipients with
 * backoff, and sends bounces. docs/architecture.md describes it.
 */
#ifndef VSMTPD_DELIVERY_H
#define VSMTPD_DELIVERY_H

#include "config.h"
#include "rules.h"

/*
 * delivery_main - run the worker on the queue's delivery channel dlv_fd
 * (JSON operations, see queue_delivery.c) and session channel sess_fd
 * (to create bounces); never returns.
 */
void delivery_main(const struct config *cfg, struct rules *rules, int dlv_fd, int sess_fd)
	__attribute__((noreturn));

/*
 * delivery_sandbox_enter - confine the calling process (before it starts
 * threads) to writing under the mailbox folders and reading system files:
 * no path into the spool. 0, or -1 (logged) when it failed; a kernel
 * without Landlock is logged and not an error.
 */
int delivery_sandbox_enter(const struct config *cfg);

#endif
