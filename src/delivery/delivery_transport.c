/*
 * delivery_transport.c - the delivery worker's destinations.
 *
 * Every job belongs to a destination: the MX hosts of one domain, one
 * relay, one LMTP server, or the local mailboxes. A destination runs at
 * most [delivery] max_per_destination jobs at once and all of them
 * together at most max_deliveries; the others wait in their destination's
 * list, and free slots go round the destinations in turn, so a slow or
 * dead destination holds up nothing but its own mail. A connection that
 * ends a job in good shape stays open for connection_cache_time and
 * carries the next job for the same destination.
 *
 * Local mailboxes are written by a few threads, since a maildir delivery
 * waits for two fsyncs and an mbox delivery may wait for a lock: the event
 * loop never does.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "delivery_internal.h"
#include "local_delivery.h"
#include "log.h"
#include "mx_lookup.h"

#define DLV_LOCAL_THREADS 4
#define DLV_MBOX_LOCK_TIMEOUT 60 /* seconds an mbox delivery waits for the lock */
#define DLV_LMTP_PORT 24
#define DLV_SMTP_PORT 25

struct dlv_dest;

/* A connection kept open between two jobs. */
struct dlv_idle {
	struct mta_conn *conn;
	struct event *timer;
	struct dlv_dest *dest;
	struct dlv_idle *next;
};

/* Where jobs go; made on first use and kept (there are few). */
struct dlv_dest {
	enum dlv_kind kind;
	char target[300];
	unsigned active;
	struct dlv_job *wait, **wait_tail;
	struct dlv_idle *idle;
	struct dlv_transport *t;
	struct dlv_dest *next;
};

/* One job under way. */
struct dlv_run {
	struct dlv_transport *t;
	struct dlv_dest *dest;
	struct dlv_job *job;
	struct mta_dest cd;
	char unix_path[108];
	struct dlv_run *next; /* in the local threads' lists */
};

struct dlv_transport {
	struct event_base *base;
	const struct config *cfg;
	struct mx_resolver *resolver;
	struct dlv_dest *dests, *rr; /* rr: where the next free slot starts looking */
	unsigned active;
	size_t waiting;
	struct event *finish_ev;     /* finishes runs outside of their callers */
	struct dlv_run *finished;

	pthread_t threads[DLV_LOCAL_THREADS];
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct dlv_run *local_todo, *local_done;
	int local_fd; /* eventfd: a thread finished a run */
	struct event *local_ev;
};

static void dlv_transport_pump(struct dlv_transport *t);

/* dlv_result_set - the same outcome for every recipient of a job. */
static void dlv_result_set(struct dlv_job *job, enum mta_outcome outcome,
			   const char *enhanced, const char *reason)
{
	size_t i;

	for (i = 0; i < job->msg.nrcpts; i++) {
		struct mta_result *r = &job->results[i];

		memset(r, 0, sizeof(*r));
		r->outcome = outcome;
		snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
		snprintf(r->reply, sizeof(r->reply), "%s", reason);
	}
}

/* dlv_run_finish - the job has its results: free the slot, report, go on. */
static void dlv_run_finish(struct dlv_run *run)
{
	struct dlv_transport *t = run->t;
	struct dlv_job *job = run->job;

	run->dest->active--;
	t->active--;
	free(run);
	job->done(job);
	dlv_transport_pump(t);
}

/* dlv_finish_cb - finish the runs that ended inside a call (never re-entering it). */
static void dlv_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dlv_transport *t = arg;
	struct dlv_run *run;

	while ((run = t->finished) != NULL) {
		t->finished = run->next;
		dlv_run_finish(run);
	}
}

/* dlv_run_finish_later - finish run from the event loop. */
static void dlv_run_finish_later(struct dlv_run *run)
{
	struct dlv_transport *t = run->t;
	struct timeval now = {0, 0};

	run->next = t->finished;
	t->finished = run;
	event_add(t->finish_ev, &now);
}

/* ---- local mailboxes, in threads ---- */

/* dlv_local_one - deliver to one recipient's mailbox (in a thread). */
static void dlv_local_one(struct dlv_transport *t, struct dlv_job *job, size_t i)
{
	const struct config *cfg = t->cfg;
	struct mta_result *r = &job->results[i];
	const char *rcpt = job->msg.rcpts[i].address;
	char full[600];
	struct local_result lr;

	/* A bare "postmaster" (RFC 5321 4.5.1) is the host's own. */
	if (strchr(rcpt, '@') == NULL) {
		snprintf(full, sizeof(full), "%.300s@%.255s", rcpt, cfg->hostname);
		rcpt = full;
	}
	if (job->kind == DLV_MAILDIR)
		maildir_deliver(cfg->maildir_path, rcpt, cfg->hostname, job->msg.mail_from,
				job->msg.content, job->msg.content_len, &lr);
	else
		mbox_deliver(cfg->mbox_path, rcpt, job->msg.mail_from, job->msg.content,
			     job->msg.content_len, DLV_MBOX_LOCK_TIMEOUT, &lr);
	memset(r, 0, sizeof(*r));
	r->outcome = lr.outcome == LOCAL_DELIVERED  ? MTA_SENT
		     : lr.outcome == LOCAL_DEFERRED ? MTA_DEFERRED
						    : MTA_FAILED;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", lr.enhanced);
	snprintf(r->reply, sizeof(r->reply), "%s", lr.reason);
}

/* dlv_local_thread - take local runs and deliver them. */
static void *dlv_local_thread(void *arg)
{
	struct dlv_transport *t = arg;
	struct dlv_run *run;
	uint64_t one = 1;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&t->lock);
		while (t->local_todo == NULL)
			pthread_cond_wait(&t->wake, &t->lock);
		run = t->local_todo;
		t->local_todo = run->next;
		pthread_mutex_unlock(&t->lock);

		for (i = 0; i < run->job->msg.nrcpts; i++)
			dlv_local_one(t, run->job, i);

		pthread_mutex_lock(&t->lock);
		run->next = t->local_done;
		t->local_done = run;
		pthread_mutex_unlock(&t->lock);
		if (write(t->local_fd, &one, sizeof(one)) != sizeof(one))
			abort(); /* an eventfd write cannot fail short of a broken invariant */
	}
	return NULL;
}

/* dlv_local_done_cb - the threads finished some runs. */
static void dlv_local_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dlv_transport *t = arg;
	struct dlv_run *run, *next;
	uint64_t count;

	if (read(fd, &count, sizeof(count)) != sizeof(count))
		return;
	pthread_mutex_lock(&t->lock);
	run = t->local_done;
	t->local_done = NULL;
	pthread_mutex_unlock(&t->lock);
	for (; run != NULL; run = next) {
		next = run->next;
		dlv_run_finish(run);
	}
}

/* dlv_local_start - queue a local run for the threads (FIFO is not needed). */
static void dlv_local_start(struct dlv_run *run)
{
	struct dlv_transport *t = run->t;

	pthread_mutex_lock(&t->lock);
	run->next = t->local_todo;
	t->local_todo = run;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
}

/* ---- connections ---- */

/* dlv_idle_drop - forget an idle connection and close it. */
static void dlv_idle_drop(struct dlv_idle *idle)
{
	struct dlv_idle **p;

	for (p = &idle->dest->idle; *p != NULL; p = &(*p)->next)
		if (*p == idle) {
			*p = idle->next;
			break;
		}
	event_free(idle->timer);
	mta_conn_set_idle_fn(idle->conn, NULL, NULL);
	mta_conn_close(idle->conn);
	free(idle);
}

/* dlv_idle_timeout_cb - kept long enough. */
static void dlv_idle_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	dlv_idle_drop(arg);
}

/* dlv_idle_broken - the peer closed an idle connection. */
static void dlv_idle_broken(void *arg, struct mta_conn *conn)
{
	dlv_idle_drop(arg);
}

/* dlv_idle_keep - keep conn for the next job of dest, or close it. */
static void dlv_idle_keep(struct dlv_dest *dest, struct mta_conn *conn)
{
	struct timeval tv = {.tv_sec = dest->t->cfg->connection_cache_time};
	struct dlv_idle *idle;

	if (!mta_conn_reusable(conn) ||
	    (dest->t->cfg->connection_cache_time == 0 && dest->wait == NULL) ||
	    (idle = calloc(1, sizeof(*idle))) == NULL) {
		mta_conn_close(conn);
		return;
	}
	idle->conn = conn;
	idle->dest = dest;
	if ((idle->timer = evtimer_new(dest->t->base, dlv_idle_timeout_cb, idle)) == NULL) {
		mta_conn_close(conn);
		free(idle);
		return;
	}
	evtimer_add(idle->timer, &tv);
	mta_conn_set_idle_fn(conn, dlv_idle_broken, idle);
	idle->next = dest->idle;
	dest->idle = idle;
}

/* dlv_idle_take - an idle connection of dest, or NULL. */
static struct mta_conn *dlv_idle_take(struct dlv_dest *dest)
{
	struct dlv_idle *idle = dest->idle;
	struct mta_conn *conn;

	if (idle == NULL)
		return NULL;
	dest->idle = idle->next;
	conn = idle->conn;
	mta_conn_set_idle_fn(conn, NULL, NULL);
	event_free(idle->timer);
	free(idle);
	return conn;
}

/* dlv_smtp_done - a connection finished the run's job. */
static void dlv_smtp_done(void *arg, struct mta_conn *conn,
			  const struct mta_result *results, const char *remote)
{
	struct dlv_run *run = arg;
	struct dlv_job *job = run->job;

	memcpy(job->results, results, sizeof(*results) * job->msg.nrcpts);
	snprintf(job->remote, sizeof(job->remote), "%s", remote ? remote : "");
	dlv_idle_keep(run->dest, conn);
	dlv_run_finish(run);
}

/* dlv_smtp_start - the addresses are known: send on a kept or new connection. */
static void dlv_smtp_start(struct dlv_run *run)
{
	struct mta_conn *conn = dlv_idle_take(run->dest);

	if (conn == NULL && (conn = mta_conn_new(run->t->base, &run->cd)) == NULL) {
		dlv_result_set(run->job, MTA_DEFERRED, "4.3.0", "out of memory");
		dlv_run_finish_later(run);
		return;
	}
	mta_conn_send(conn, &run->job->msg, dlv_smtp_done, run);
}

/* dlv_resolved - the lookup for a run is over. */
static void dlv_resolved(void *arg, const struct mx_result *res)
{
	struct dlv_run *run = arg;

	switch (res->status) {
	case MX_OK:
		memcpy(run->cd.addrs, res->addrs, sizeof(res->addrs[0]) * res->naddrs);
		run->cd.naddrs = res->naddrs;
		dlv_smtp_start(run);
		return;
	case MX_NULL:
		dlv_result_set(run->job, MTA_FAILED, "5.1.10", res->reason);
		break;
	case MX_NOTFOUND:
		dlv_result_set(run->job, MTA_FAILED, "5.1.2", res->reason);
		break;
	default:
		dlv_result_set(run->job, MTA_DEFERRED, "4.4.3", res->reason);
		break;
	}
	dlv_run_finish(run);
}

/* dlv_client_dest - the connection settings of a run's destination. */
static int dlv_client_dest(struct dlv_run *run, char *host, size_t hostlen, unsigned *port)
{
	const struct config *cfg = run->t->cfg;
	struct mta_dest *cd = &run->cd;
	const char *path;
	int bracketed;

	memset(cd, 0, sizeof(*cd));
	cd->helo_name = cfg->helo_name[0] ? cfg->helo_name : cfg->hostname;
	cd->ca_file = cfg->tls_ca_file;
	cd->connect_timeout = cfg->connect_timeout;
	cd->command_timeout = cfg->command_timeout;
	cd->data_timeout = cfg->data_timeout;
	cd->tls = CLIENT_TLS_NONE;
	*port = DLV_SMTP_PORT;
	switch (run->dest->kind) {
	case DLV_MX:
		snprintf(host, hostlen, "%.255s", run->dest->target);
		cd->tls = cfg->mx_tls;
		*port = cfg->mx_port;
		return 0;
	case DLV_LMTP:
		cd->lmtp = 1;
		*port = DLV_LMTP_PORT;
		break;
	case DLV_RELAY:
		/* The relay's credentials and TLS policy belong to the configured
		 * relay alone: a rule's forward() elsewhere gets neither. */
		if (strcmp(run->dest->target, cfg->relay_host) == 0) {
			cd->tls = cfg->relay_tls;
			cd->tls_verify = cfg->relay_tls_verify;
			cd->auth_user = cfg->relay_auth_user;
			cd->auth_password = cfg->relay_auth_password;
		} else {
			cd->tls = CLIENT_TLS_MAY;
		}
		break;
	default:
		return -1;
	}
	if (config_target_split(run->dest->target, host, hostlen, port, &path, &bracketed) < 0)
		return -1;
	if (*port == 0)
		*port = run->dest->kind == DLV_LMTP ? DLV_LMTP_PORT : DLV_SMTP_PORT;
	if (path != NULL) {
		snprintf(run->unix_path, sizeof(run->unix_path), "%s", path);
		cd->unix_path = run->unix_path;
	}
	return 0;
}

/* dlv_run_start - begin a job: local threads, or a lookup then a connection. */
static void dlv_run_start(struct dlv_run *run)
{
	char host[256];
	unsigned port;

	if (run->dest->kind == DLV_MAILDIR || run->dest->kind == DLV_MBOX) {
		dlv_local_start(run);
		return;
	}
	if (dlv_client_dest(run, host, sizeof(host), &port) < 0) {
		dlv_result_set(run->job, MTA_FAILED, "5.3.5", "not a valid destination");
		dlv_run_finish_later(run);
		return;
	}
	if (run->cd.unix_path != NULL) {
		dlv_smtp_start(run);
		return;
	}
	/* A kept connection needs no lookup. */
	if (run->dest->idle != NULL) {
		dlv_smtp_start(run);
		return;
	}
	if (run->dest->kind == DLV_MX)
		mx_lookup(run->t->resolver, host, port, dlv_resolved, run);
	else
		mx_lookup_host(run->t->resolver, host, port, dlv_resolved, run);
}

/* dlv_dest_find - the destination of a job, made on first use. */
static struct dlv_dest *dlv_dest_find(struct dlv_transport *t, enum dlv_kind kind,
				      const char *target)
{
	struct dlv_dest *d;

	for (d = t->dests; d != NULL; d = d->next)
		if (d->kind == kind && strcmp(d->target, target) == 0)
			return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->kind = kind;
	snprintf(d->target, sizeof(d->target), "%s", target);
	d->wait_tail = &d->wait;
	d->t = t;
	d->next = t->dests;
	t->dests = d;
	return d;
}

/* dlv_dest_start_one - start dest's next waiting job. */
static void dlv_dest_start_one(struct dlv_transport *t, struct dlv_dest *d)
{
	struct dlv_job *job = d->wait;
	struct dlv_run *run;

	d->wait = job->next;
	if (d->wait == NULL)
		d->wait_tail = &d->wait;
	job->next = NULL;
	t->waiting--;
	d->active++;
	t->active++;
	if ((run = calloc(1, sizeof(*run))) == NULL) {
		d->active--;
		t->active--;
		dlv_result_set(job, MTA_DEFERRED, "4.3.0", "out of memory");
		job->done(job);
		return;
	}
	run->t = t;
	run->dest = d;
	run->job = job;
	dlv_run_start(run);
}

/* dlv_transport_pump - give free slots to waiting jobs, destinations in turn. */
static void dlv_transport_pump(struct dlv_transport *t)
{
	const struct config *cfg = t->cfg;
	struct dlv_dest *d;
	int started;

	do {
		started = 0;
		for (d = t->dests; d != NULL && t->active < cfg->delivery_max_concurrency;
		     d = d->next) {
			if (d->wait == NULL || d->active >= cfg->delivery_max_per_destination)
				continue;
			dlv_dest_start_one(t, d);
			started = 1;
		}
	} while (started && t->active < cfg->delivery_max_concurrency);
}

/* dlv_transport_submit - queue a job on its destination. */
void dlv_transport_submit(struct dlv_transport *t, struct dlv_job *job)
{
	struct dlv_dest *d = dlv_dest_find(t, job->kind, job->target);

	job->next = NULL;
	if (d == NULL) {
		struct dlv_run *run = calloc(1, sizeof(*run));

		dlv_result_set(job, MTA_DEFERRED, "4.3.0", "out of memory");
		if (run == NULL)
			abort(); /* nothing left to report with */
		run->t = t;
		run->job = job;
		run->dest = dlv_dest_find(t, DLV_MAILDIR, "");
		if (run->dest == NULL)
			abort();
		run->dest->active++;
		t->active++;
		dlv_run_finish_later(run);
		return;
	}
	*d->wait_tail = job;
	d->wait_tail = &job->next;
	t->waiting++;
	dlv_transport_pump(t);
}

/* dlv_transport_busy - jobs waiting or under way. */
size_t dlv_transport_busy(const struct dlv_transport *t)
{
	return t->waiting + t->active;
}

/* dlv_transport_new - set up the transports. */
struct dlv_transport *dlv_transport_new(struct event_base *base, const struct config *cfg,
					char *err, size_t errlen)
{
	struct dlv_transport *t = calloc(1, sizeof(*t));
	sigset_t all, old;
	size_t i;

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->base = base;
	t->cfg = cfg;
	if (mta_tls_init(cfg->tls_ca_file, err, errlen) < 0)
		return NULL;
	t->resolver = mx_resolver_new(base, cfg->delivery_dns_servers, cfg->delivery_dns_timeout_ms,
				      err, errlen);
	if (t->resolver == NULL)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->wake, NULL);
	if ((t->local_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    (t->local_ev = event_new(base, t->local_fd, EV_READ | EV_PERSIST, dlv_local_done_cb,
				     t)) == NULL ||
	    event_add(t->local_ev, NULL) < 0 ||
	    (t->finish_ev = evtimer_new(base, dlv_finish_cb, t)) == NULL) {
		snprintf(err, errlen, "cannot set up the delivery events: %s", strerror(errno));
		return NULL;
	}
	/* Signals belong to the main thread's signalfd, never to these. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < DLV_LOCAL_THREADS; i++)
		if (pthread_create(&t->threads[i], NULL, dlv_local_thread, t) != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			snprintf(err, errlen, "cannot start the local delivery threads");
			return NULL;
		}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return t;
}

/* dlv_transport_free - close what is kept; the threads end with the process. */
void dlv_transport_free(struct dlv_transport *t)
{
	struct dlv_dest *d, *next;

	if (t == NULL)
		return;
	for (d = t->dests; d != NULL; d = next) {
		next = d->next;
		while (d->idle != NULL)
			dlv_idle_drop(d->idle);
		free(d);
	}
	mx_resolver_free(t->resolver);
}
