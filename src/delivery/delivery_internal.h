/*
 * delivery_internal.h - the parts of the delivery worker and what they
 * share: delivery.c (messages, schedule, rules, outcomes, bounces) hands
 * jobs to delivery_transport.c (destinations, concurrency, connection
 * reuse, DNS, the local delivery threads), which reports each job's
 * per-recipient results back.
 */
#ifndef VSMTPD_DELIVERY_INTERNAL_H
#define VSMTPD_DELIVERY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mta.h"

struct event_base;
struct dlv_transport;

/* How a job travels. */
enum dlv_kind {
	DLV_MX,      /* target: the recipients' domain */
	DLV_RELAY,   /* target: host[:port] or [address]:port, SMTP */
	DLV_LMTP,    /* target: unix:/path or host:port */
	DLV_MAILDIR, /* target: "" */
	DLV_MBOX,    /* target: "" */
};

/* One message's recipients that go the same way, in one attempt. */
struct dlv_job {
	enum dlv_kind kind;
	char target[300];
	struct mta_job msg;         /* sender, recipients, content, options */
	struct mta_result *results; /* msg.nrcpts, filled by the transport */
	char remote[300];                   /* who answered: "host[address]", "" for none */
	void (*done)(struct dlv_job *job);  /* called once when results are in */
	void *owner;                        /* the attempt, for done */
	struct dlv_job *next;               /* in its destination's waiting list */
};

/*
 * dlv_transport_new - the transports on base with cfg's [delivery]
 * settings. NULL with the reason in err.
 */
struct dlv_transport *dlv_transport_new(struct event_base *base, const struct config *cfg,
					char *err, size_t errlen);

/*
 * dlv_transport_submit - deliver job when its destination and the total
 * allow; job->done is called once, never from inside this call.
 */
void dlv_transport_submit(struct dlv_transport *t, struct dlv_job *job);

/* dlv_transport_busy - jobs waiting or under way. */
size_t dlv_transport_busy(const struct dlv_transport *t);

/* dlv_transport_free - close idle connections; only when nothing is busy. */
void dlv_transport_free(struct dlv_transport *t);

#endif
