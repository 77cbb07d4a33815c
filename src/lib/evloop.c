/*
 * evloop.c - event loop construction shared by the processes.
 */
#include "evloop.h"

/* evloop_new - a lock-free, environment-blind event base. */
struct event_base *evloop_new(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	if (ec == NULL)
		return NULL;
	/* No epoll changelist: the queue may close a channel and get its fd
	 * number back for a new one within one loop pass, which the
	 * changelist would merge into "no change". */
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_IGNORE_ENV);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}
