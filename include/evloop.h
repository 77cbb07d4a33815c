/*
 * evloop.h - event loops for vsmtpd's processes.
 */
#ifndef VSMTPD_EVLOOP_H
#define VSMTPD_EVLOOP_H

#include <event2/event.h>

/*
 * evloop_new - a libevent base for a single-threaded loop that ignores
 * libevent's environment variables (reading them costs four uid/gid system
 * calls in every new session). NULL on error.
 */
struct event_base *evloop_new(void);

#endif
