/*
 * mx_lookup_internal.h - what the lookups and their resolver share.
 * mx_resolver.c runs the c-ares channel on the event loop and owns the
 * resolver's lifetime; mx_lookup.c sends a lookup's queries on that
 * channel and makes its result from the answers.
 */
#ifndef VSMTPD_MX_LOOKUP_INTERNAL_H
#define VSMTPD_MX_LOOKUP_INTERNAL_H

#include <stddef.h>

#include <ares.h>

#include "mx_lookup.h"
#include "resolver.h"

struct event;
struct event_base;

#define MX_HOSTS_MAX 16             /* MX hosts of a domain that are looked up */
#define MX_HOST_FAMILY_ADDRS_MAX 16 /* of one family of a relay host (mx_lookup_host) */

struct mx_sock;
struct mx_lookup;

struct mx_resolver {
	struct event_base *base;
	ares_channel channel;
	struct event *timer; /* c-ares's next timeout */
	struct mx_sock *socks;
	struct mx_lookup *lookups; /* every lookup not freed yet */
	unsigned timeout_ms;       /* bound of one lookup */
	unsigned short xsubi[3];   /* nrand48() state: shuffles MX hosts of equal preference */
	int freeing;               /* in mx_resolver_free: callbacks do nothing */
};

/* Where a query's answer goes. */
struct mx_query {
	struct mx_lookup *l;
	int host;   /* index in hosts, -1 for the MX query */
	int family; /* MX_V4 or MX_V6 */
};

enum { MX_V4, MX_V6 };

/* What the A or the AAAA query of a host gave. */
enum mx_family_state {
	MX_FAM_PENDING,
	MX_FAM_OK,   /* addresses */
	MX_FAM_NONE, /* NXDOMAIN or NODATA */
	MX_FAM_TEMP, /* timeout, server failure */
};

struct mx_family {
	enum mx_family_state state;
	int status; /* the ARES_* status, for the reason */
	size_t n;
	unsigned char addr[MX_HOST_FAMILY_ADDRS_MAX][16];
};

struct mx_host {
	char name[RESOLVER_NAME_MAX + 1];
	unsigned preference;
	long tiebreak; /* random: the order among hosts of equal preference */
	struct mx_family fam[2];
};

/* One lookup, from mx_lookup() to its callback. */
struct mx_lookup {
	struct mx_resolver *r;
	struct mx_lookup *prev, *next;
	char name[RESOLVER_NAME_MAX + 1]; /* the domain (or host), no trailing dot */
	unsigned port;
	int host_only;  /* mx_lookup_host: no MX query */
	int implicit;   /* no MX record: the domain is its own host */
	int mx_done;    /* the MX query is over (or there is none) */
	int issuing;    /* queries are being sent: do not conclude yet */
	size_t fam_max; /* addresses kept per family of a host */
	mx_done_fn fn;
	void *arg;
	struct event *deadline; /* bounds the whole lookup */
	struct event *done_ev;  /* delivers the result */
	unsigned pending;       /* queries c-ares has not called back yet */
	int finished;           /* the result is decided; later answers are dropped */
	int delivered;          /* fn has been called */
	size_t nhosts;
	struct mx_host hosts[MX_HOSTS_MAX];
	struct mx_query q[1 + 2 * MX_HOSTS_MAX];
	struct mx_result res;
};

/* mx_timer_update - arm the timer for c-ares's next timeout, if any (mx_resolver.c). */
void mx_timer_update(struct mx_resolver *r);

/* mx_lookup_unlink - take l off its resolver's list (mx_lookup.c). */
void mx_lookup_unlink(struct mx_lookup *l);

/* mx_lookup_free - free l, unlisted or its resolver being freed (mx_lookup.c). */
void mx_lookup_free(struct mx_lookup *l);

#endif
