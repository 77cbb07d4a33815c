/*
 * delivery_internal.h - the parts of the delivery worker and what they
 * share: delivery.c (the channel to the queue, the schedule, attempts and
 * their outcomes) with delivery_state.c (the message file and its state),
 * delivery_rules.c (the postq and delivery rules), delivery_route.c
 * (transports per recipient, jobs) and delivery_reports.c (bounces, delay
 * and success notices), hands jobs to delivery_transport.c (destinations,
 * concurrency, connection reuse, DNS, the local delivery threads), which
 * reports each job's per-recipient results back.
 */
#ifndef VSMTPD_DELIVERY_INTERNAL_H
#define VSMTPD_DELIVERY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dsn.h"
#include "envelope.h"
#include "mta.h"
#include "rules.h"
#include "scoreboard.h"
#include "spool.h"

struct cJSON;
struct event;
struct event_base;
struct ipc_outq;
struct message;
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

/* ---- the worker's messages and attempts ---- */

#define DLV_BUCKETS 4096
#define DLV_REMOTE_MAX 300 /* "host[address]" of the peer that answered */

/* A recipient's status, as in the state file. */
enum dlv_status { RCPT_PENDING, RCPT_DEFERRED, RCPT_SENT, RCPT_FAILED, RCPT_NONE };

extern const char *const dlv_status_names[]; /* by enum dlv_status */

/*
 * A sent recipient's success notice (NOTIFY=SUCCESS), as in the state file
 * ("success_notice"): owed with the action it reports, or queued already.
 */
enum dlv_notice { NOTICE_NONE, NOTICE_DELIVERED, NOTICE_RELAYED, NOTICE_SENT };

/* A recipient as the worker tracks it across attempts. */
struct dlv_rcpt {
	enum dlv_status status;
	enum dlv_notice notice;
	char reply[MTA_REPLY_MAX];
	char enhanced[16];
	char remote[DLV_REMOTE_MAX];
	int remote_said;
	int64_t at;
	enum rule_route route;
	char target[RULE_ROUTE_TARGET_MAX];
};

struct dlv_attempt;

/* A message the queue told us about. */
struct dlv_msg {
	char id[SPOOL_ID_LEN + 1];
	struct event *timer;
	int waiting;    /* due, waiting for a free attempt slot */
	int opening;    /* "open" sent, waiting for "opened" */
	struct dlv_attempt *att; /* the attempt under way */
	int withdrawn;  /* forget it once the attempt is over */
	int again;      /* announced again during the attempt: start afresh after it */
	struct dlv_msg *hnext;   /* in its hash bucket */
	struct dlv_msg *wnext;   /* in the waiting list */
	struct dlv_worker *w;
};

/* One attempt at one message. */
struct dlv_attempt {
	struct dlv_msg *m;
	char *map;            /* the file, mapped */
	size_t map_len;
	struct envelope env;
	const char *content;  /* what is delivered: map, or edited below */
	size_t content_len;
	char *edited;         /* the delivery rules' edited message, malloc'ed */
	struct dlv_rcpt *rcpts;
	size_t nrcpts;        /* of rcpts: the envelope's recipients as queued */
	int attempts, postq, released, warned, faccept;
	int64_t first_attempt;
	struct dlv_job *jobs;
	size_t njobs, jobs_left;
	struct mta_rcpt *crcpts;    /* grouped by job */
	size_t *index;                      /* crcpts[k] is recipient index[k] */
	struct mta_result *results; /* parallel to crcpts */
	int64_t started;
	struct cJSON *kept;   /* the state's members the queue owns, carried over */
	/* a delegate rule's filter has it (delivery_delegate.c) */
	const struct service_config *delegate_svc;
	unsigned delegate_rule;
	enum rule_stage delegate_stage;
	int64_t delegate_start_ms, delegate_sent_at;
};

/* The worker process; one instance, in delivery_main's frame. */
struct dlv_worker {
	const struct config *cfg;
	struct rules *rules;
	struct event_base *base;
	int dlv_fd, sess_fd;
	struct event *dlv_ev, *sess_ev;
	struct ipc_outq *out;
	struct dlv_transport *t;
	struct dlv_msg *buckets[DLV_BUCKETS];
	size_t nmsgs;
	unsigned open;               /* attempts under way */
	struct dlv_msg *wait, **wait_tail;
	struct scoreboard *board; /* shared with the queue: what we work on (NULL until it comes) */
	int stopping;
	unsigned long delivered, deferred, failed;
};

/* ---- delivery.c: the worker core ---- */

/* dlv_send - one operation to the queue: op and id, up to two string members, maybe fd. */
void dlv_send(struct dlv_worker *w, const char *op, const char *id, const char *key,
	      const char *value, const char *key2, const char *value2, int fd);

/* dlv_attempt_end - every job of a is back (or there were none): conclude the attempt. */
void dlv_attempt_end(struct dlv_attempt *a);

/* dlv_attempt_wait - the attempt is over with nothing to record: next attempt at next. */
void dlv_attempt_wait(struct dlv_attempt *a, int64_t next);

/* ---- delivery_state.c: the message file and its delivery state ---- */

/* dlv_json_int - the number member key of obj, def when absent. */
int64_t dlv_json_int(const struct cJSON *obj, const char *key, int64_t def);

/* dlv_attempt_load - map the message file fd, read its envelope and state_fd's state. 0 or -1. */
int dlv_attempt_load(struct dlv_attempt *a, int fd, int state_fd);

/* dlv_state_save - hand a's state, next attempt at next, to the queue. */
void dlv_state_save(struct dlv_attempt *a, int64_t next);

/* dlv_attempt_free - release what an attempt holds. */
void dlv_attempt_free(struct dlv_attempt *a);

/* ---- delivery_rules.c: the postq and delivery rules ---- */

/* dlv_ctx_init - the rule context the offline stages see, from a's envelope and msg. */
void dlv_ctx_init(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg);

/*
 * dlv_run_postq - the postq stage, once per message. 1 when the attempt
 * goes on, 0 when the recipients got their outcome from the rules, -1 when
 * the message is no longer this worker's (quarantined, held, or queued again),
 * 2 when a delegate rule's filter has it (the job's end concludes the attempt).
 */
int dlv_run_postq(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg);

/* dlv_run_delivery - the delivery stage, at every attempt; as dlv_run_postq. */
int dlv_run_delivery(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg);

/* dlv_quarantine - the rules of stage kept the message in quarantine name: move it. */
void dlv_quarantine(struct dlv_attempt *a, const char *name, const char *stage);

/* ---- delivery_delegate.c: a delegate rule's filter ---- */

/*
 * dlv_delegate_send - the rules of stage stopped at a delegate rule (v):
 * send msg to its filter. 1 when the job is under way (its end concludes
 * the attempt), 0 when the recipients have their outcome (deferred past
 * the queue lifetime), -1 on failure (no such service, out of memory).
 */
int dlv_delegate_send(struct dlv_attempt *a, struct message *msg, const struct rule_verdict *v,
		      enum rule_stage stage);

/* dlv_delegate_delivery - the delivery rules stopped at a delegate rule: as dlv_delegate_send. */
int dlv_delegate_delivery(struct dlv_attempt *a, const struct rule_verdict *v);

/* ---- delivery_route.c: transports per recipient, jobs ---- */

/* dlv_jobs_make - group the recipients still to deliver into jobs and submit them. 0 or -1. */
int dlv_jobs_make(struct dlv_attempt *a);

/* ---- delivery_reports.c: notifications to the sender ---- */

/*
 * dlv_notify - tell the sender about the recipients whose status is which
 * and who want to hear of it (failures or delays). 0 when sent or not
 * wanted, else an errno value.
 */
int dlv_notify(struct dlv_attempt *a, enum dsn_action action, enum dlv_status which,
	       int64_t retry_until);

/* dlv_notify_success - one success notice for every recipient owed one. 0 or an errno value. */
int dlv_notify_success(struct dlv_attempt *a);

#endif
