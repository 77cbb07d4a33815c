/*
 * mx_resolver.c - the resolver of MX lookups: a c-ares channel on the
 * delivery worker's libevent loop.
 *
 * The c-ares channel says which of its sockets it wants watched through its
 * socket state callback (ARES_OPT_SOCK_STATE_CB): each gets a persistent
 * libevent event, dropped when c-ares closes the socket. One timer follows
 * ares_timeout(), so that retries and timeouts happen even when no socket
 * becomes readable.
 *
 * The resolver lists its lookups (mx_lookup.c); freeing it destroys the
 * channel, whose queries then call back with ARES_EDESTRUCTION and are
 * ignored, and frees every lookup without calling its callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <event2/event.h>

#include "log.h"
#include "mx_lookup_internal.h"

#define MX_TIMEOUT_DEFAULT 10000    /* ms, for a timeout of 0 */

/* A socket c-ares wants watched. */
struct mx_sock {
	struct mx_sock *next;
	ares_socket_t fd;
	short what; /* EV_READ, EV_WRITE */
	struct event *ev;
};

/* ---- the channel on the event loop ------------------------------------- */

/* mx_timer_update - arm the timer for c-ares's next timeout, if any. */
void mx_timer_update(struct mx_resolver *r)
{
	struct timeval tv, *tvp;

	tvp = ares_timeout(r->channel, NULL, &tv);
	if (tvp == NULL)
		evtimer_del(r->timer);
	else
		evtimer_add(r->timer, tvp);
}

/* mx_on_timer - c-ares's timeout: let it retry or give up queries. */
static void mx_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct mx_resolver *r = arg;

	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	mx_timer_update(r);
}

/* mx_on_socket - a socket of c-ares is ready. c-ares may close it (and so
 * free its mx_sock) in ares_process_fd: nothing here touches it after. */
static void mx_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct mx_resolver *r = arg;

	ares_process_fd(r->channel, what & EV_READ ? fd : ARES_SOCKET_BAD,
			what & EV_WRITE ? fd : ARES_SOCKET_BAD);
	mx_timer_update(r);
}

/* mx_sock_drop - stop watching s and free it. */
static void mx_sock_drop(struct mx_sock *s)
{
	event_free(s->ev);
	free(s);
}

/* mx_sock_state - c-ares opened, closed or changed its interest in a
 * socket. Without memory for the event its queries end by timeout. */
static void mx_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct mx_resolver *r = data;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	struct mx_sock **pp, *s;

	for (pp = &r->socks; *pp != NULL && (*pp)->fd != fd; pp = &(*pp)->next)
		;
	if ((s = *pp) != NULL) {
		if (s->what == what)
			return;
		*pp = s->next;
		mx_sock_drop(s);
	}
	if (what == 0)
		return;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->ev = event_new(r->base, fd, (short)(what | EV_PERSIST), mx_on_socket, r)) == NULL ||
	    event_add(s->ev, NULL) < 0) {
		log_err("mx: cannot watch a DNS socket: out of memory");
		if (s != NULL && s->ev != NULL)
			event_free(s->ev);
		free(s);
		return;
	}
	s->fd = fd;
	s->what = what;
	s->next = r->socks;
	r->socks = s;
}

/* mx_channel_open - the channel, reading no file, driven by the loop. */
static int mx_channel_open(struct mx_resolver *r, const struct resolver_server *servers,
			   size_t nservers)
{
	int rc = resolver_channel_open(&r->channel, servers, nservers, r->timeout_ms,
				       mx_sock_state, r);

	if (rc != ARES_SUCCESS)
		r->channel = NULL;
	return rc;
}

/* mx_seed_shuffle - the resolver's own random state for shuffling. */
static void mx_seed_shuffle(struct mx_resolver *r)
{
	struct timespec ts;

	if (getrandom(r->xsubi, sizeof(r->xsubi), GRND_NONBLOCK) != (ssize_t)sizeof(r->xsubi)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r->xsubi[0] = (unsigned short)ts.tv_nsec;
		r->xsubi[1] = (unsigned short)(ts.tv_nsec >> 16);
		r->xsubi[2] = (unsigned short)getpid();
	}
}

/* mx_resolver_new - a resolver on base. */
struct mx_resolver *mx_resolver_new(struct event_base *base, const char *servers,
				    unsigned timeout_ms, char *err, size_t errlen)
{
	struct resolver_server list[RESOLVER_SERVERS_MAX];
	struct mx_resolver *r;
	int n, rc;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: cannot initialize c-ares: %s", ares_strerror(rc));
		return NULL;
	}
	if ((n = resolver_servers_read(servers, list, err, errlen)) < 0) {
		ares_library_cleanup();
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->timer = evtimer_new(base, mx_on_timer, r)) == NULL) {
		snprintf(err, errlen, "dns: out of memory");
		free(r);
		ares_library_cleanup();
		return NULL;
	}
	r->base = base;
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : MX_TIMEOUT_DEFAULT;
	mx_seed_shuffle(r);
	if ((rc = mx_channel_open(r, list, (size_t)n)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: cannot start the resolver: %s", ares_strerror(rc));
		mx_resolver_free(r);
		return NULL;
	}
	return r;
}

/* mx_resolver_free - destroy the channel (its queries call back with
 * ARES_EDESTRUCTION and are ignored), then free every lookup. */
void mx_resolver_free(struct mx_resolver *r)
{
	struct mx_lookup *l, *next;
	struct mx_sock *s;

	if (r == NULL)
		return;
	r->freeing = 1;
	for (l = r->lookups; l != NULL; l = l->next) {
		evtimer_del(l->deadline);
		event_del(l->done_ev);
	}
	if (r->channel != NULL)
		ares_destroy(r->channel); /* closes its sockets through mx_sock_state */
	for (l = r->lookups; l != NULL; l = next) {
		next = l->next;
		mx_lookup_free(l);
	}
	while ((s = r->socks) != NULL) {
		r->socks = s->next;
		mx_sock_drop(s);
	}
	event_free(r->timer);
	free(r);
	ares_library_cleanup();
}
