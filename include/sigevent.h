/*
 * sigevent.h - signal events for forked children, through a signalfd.
 *
 * A child inherits the master's libevent signal plumbing, which writes into
 * the master's loop; children therefore block their signals and read them
 * from a signalfd registered as an ordinary event instead.
 */
#ifndef VSMTPD_SIGEVENT_H
#define VSMTPD_SIGEVENT_H

#include <stddef.h>

#include <event2/event.h>

typedef void (*sigevent_cb)(int signo, void *arg);

/*
 * sigevent_new - block sigs and call cb(signo, arg) from base's loop when one
 * arrives. Returns NULL on error (errno set). The event lives as long as the
 * process.
 */
struct event *sigevent_new(struct event_base *base, const int *sigs, size_t nsigs, sigevent_cb cb,
			   void *arg);

#endif
