/*
 * delivery.c - the delivery worker (see delivery.h).
 *
 * The queue tells the worker which messages sit in queue/ and when each is
 * due; each message has a timer. When it fires the worker asks the queue
 * for the file and its delivery state and makes an attempt:
 *
 *  1. the postq rules, once per message (their changes are kept by writing
 *     a new copy of the message, and the old one goes);
 *  2. the delivery rules, at every attempt: they choose a transport per
 *     recipient;
 *  3. the recipients still to deliver are grouped by destination into jobs
 *     for delivery_transport.c;
 *  4. once every job is back, the state goes to the queue; deferred
 *     recipients are retried with backoff until the queue lifetime is over;
 *     when every recipient is final, failures are bounced (RFC 3464) and the
 *     message leaves the spool.
 *
 * The worker never writes the spool: the queue does, on its requests.
 * This file holds the channel to the queue, the schedule and the attempts'
 * beginning and end; delivery_state.c, delivery_rules.c, delivery_route.c
 * and delivery_reports.c hold the steps (see delivery_internal.h).
 *
 * Whatever the worker does with one message alone (reading it, its rules,
 * the end of its attempt) it notes first on the scoreboard it shares with
 * the queue, and a rule that runs past [rules] time_limit adds itself there
 * from the signal handler: if that work ends the worker, the queue knows
 * the message and the rule, counts the failure and, after a few, holds the
 * message (see queue_suspect.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "io.h"
#include "delivery.h"
#include "delivery_internal.h"
#include "dsn.h"
#include "evloop.h"
#include "ipc.h"
#include "log.h"
#include "message.h"
#include "sigevent.h"
#include "smtp_parse.h"
#include "spool.h"
#include "send_mail.h"
#include "queue_client.h"

#define DLV_OPEN_FACTOR 4 /* attempts open at once: this many times max_deliveries */

static void dlv_msg_due(struct dlv_msg *m);

/* The scoreboard, for the overrun handler (one worker per process). */
static struct scoreboard *dlv_board;

/* dlv_rules_overrun - a rule ran past [rules] time_limit: name it on the
 * scoreboard before the process exits (async-signal-safe: memory copies). */
static void dlv_rules_overrun(void)
{
	const volatile struct rules_running *r = rules_running();

	scoreboard_overrun(dlv_board, r->rule, r->where);
}

/* ---- messages ---- */

/* dlv_hash - the bucket of an id. */
static size_t dlv_hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % DLV_BUCKETS;
}

/* dlv_msg_find - the message of id, or NULL. */
static struct dlv_msg *dlv_msg_find(struct dlv_worker *w, const char *id)
{
	struct dlv_msg *m;

	for (m = w->buckets[dlv_hash(id)]; m != NULL; m = m->hnext)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

/* dlv_timer_cb - a message is due. */
static void dlv_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	dlv_msg_due(arg);
}

/* dlv_msg_schedule - due at when (0: now). */
static void dlv_msg_schedule(struct dlv_msg *m, int64_t when)
{
	int64_t now = time(NULL);
	struct timeval tv = {.tv_sec = when > now ? when - now : 0};

	evtimer_add(m->timer, &tv);
}

/* dlv_msg_add - a message the queue announced. */
static struct dlv_msg *dlv_msg_add(struct dlv_worker *w, const char *id)
{
	struct dlv_msg *m = calloc(1, sizeof(*m));
	size_t b = dlv_hash(id);

	if (m == NULL || (m->timer = evtimer_new(w->base, dlv_timer_cb, m)) == NULL) {
		free(m);
		return NULL;
	}
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->w = w;
	m->hnext = w->buckets[b];
	w->buckets[b] = m;
	w->nmsgs++;
	return m;
}

/* dlv_wait_remove - take m out of the waiting list. */
static void dlv_wait_remove(struct dlv_worker *w, struct dlv_msg *m)
{
	struct dlv_msg **p;

	if (!m->waiting)
		return;
	for (p = &w->wait; *p != NULL; p = &(*p)->wnext)
		if (*p == m) {
			*p = m->wnext;
			break;
		}
	w->wait_tail = &w->wait;
	while (*w->wait_tail != NULL)
		w->wait_tail = &(*w->wait_tail)->wnext;
	m->waiting = 0;
	m->wnext = NULL;
}

/* dlv_msg_forget - drop a message the worker is done with. */
static void dlv_msg_forget(struct dlv_msg *m)
{
	struct dlv_worker *w = m->w;
	struct dlv_msg **p;

	dlv_wait_remove(w, m);
	for (p = &w->buckets[dlv_hash(m->id)]; *p != NULL; p = &(*p)->hnext)
		if (*p == m) {
			*p = m->hnext;
			break;
		}
	event_free(m->timer);
	free(m);
	w->nmsgs--;
}

/* ---- the channel to the queue ---- */

/* dlv_send - one operation to the queue. */
void dlv_send(struct dlv_worker *w, const char *op, const char *id, const char *key,
		     const char *value, const char *key2, const char *value2, int fd)
{
	cJSON *msg = cJSON_CreateObject();

	if (msg == NULL || cJSON_AddStringToObject(msg, "op", op) == NULL ||
	    cJSON_AddStringToObject(msg, "id", id) == NULL ||
	    (key != NULL && cJSON_AddStringToObject(msg, key, value) == NULL) ||
	    (key2 != NULL && cJSON_AddStringToObject(msg, key2, value2) == NULL)) {
		log_err("%s: out of memory talking to the queue", id);
	} else if (ipc_outq_json(w->out, msg, &fd, fd >= 0 ? 1 : 0) < 0) {
		log_err("%s: cannot talk to the queue: %s", id, strerror(errno));
	}
	cJSON_Delete(msg);
}

/* ---- starting an attempt ---- */

/* dlv_attempt_slots - how many attempts may be open at once. */
static unsigned dlv_attempt_slots(const struct dlv_worker *w)
{
	return w->cfg->delivery_max_concurrency * DLV_OPEN_FACTOR;
}

/* dlv_msg_open - ask the queue for the message and its state. */
static void dlv_msg_open(struct dlv_msg *m)
{
	m->opening = 1;
	m->w->open++;
	dlv_send(m->w, "open", m->id, NULL, NULL, NULL, NULL, -1);
}

/* dlv_msg_due - the timer fired, or a flush: attempt it when a slot is free. */
static void dlv_msg_due(struct dlv_msg *m)
{
	struct dlv_worker *w = m->w;

	if (m->opening || m->att != NULL || m->waiting || w->stopping)
		return;
	if (w->open < dlv_attempt_slots(w)) {
		dlv_msg_open(m);
		return;
	}
	m->waiting = 1;
	*w->wait_tail = m;
	w->wait_tail = &m->wnext;
}

/* dlv_next_waiting - a slot freed up: open the next waiting message. */
static void dlv_next_waiting(struct dlv_worker *w)
{
	struct dlv_msg *m;

	while (!w->stopping && w->open < dlv_attempt_slots(w) && (m = w->wait) != NULL) {
		w->wait = m->wnext;
		if (w->wait == NULL)
			w->wait_tail = &w->wait;
		m->wnext = NULL;
		m->waiting = 0;
		dlv_msg_open(m);
	}
}

/* ---- the end of an attempt ---- */

/* dlv_expire - past the queue lifetime, deferred recipients fail. */
static void dlv_expire(struct dlv_attempt *a, int64_t now)
{
	const struct config *cfg = a->m->w->cfg;
	int64_t life = a->env.mail_from && a->env.mail_from[0] ? cfg->max_queue_lifetime
							      : cfg->bounce_queue_lifetime;
	size_t i;

	if (now - a->env.received_at < life)
		return;
	for (i = 0; i < a->env.nrcpts; i++) {
		struct dlv_rcpt *dr = &a->rcpts[i];
		char reason[MTA_REPLY_MAX];

		if (dr->status != RCPT_DEFERRED)
			continue;
		dr->status = RCPT_FAILED;
		snprintf(reason, sizeof(reason), "delivery time expired; last error: %.470s",
			 dr->reply);
		snprintf(dr->reply, sizeof(dr->reply), "%s", reason);
		snprintf(dr->enhanced, sizeof(dr->enhanced), "5.4.7");
		dr->remote_said = 0; /* the text is ours now, not the remote's reply */
		log_info("%s: to=<%s>, status=expired, returned to sender", a->m->id,
			 a->env.rcpts[i].address);
	}
}

/*
 * dlv_attempt_close - the attempt is over: forget the message when it is
 * done, else keep its timer; open the next waiting one.
 */
static void dlv_attempt_close(struct dlv_attempt *a, int gone, int64_t next)
{
	struct dlv_msg *m = a->m;
	struct dlv_worker *w = m->w;

	dlv_attempt_free(a);
	m->att = NULL;
	w->open--;
	if (gone || (m->withdrawn && !m->again)) {
		dlv_msg_forget(m);
	} else if (m->again) {
		m->again = 0;
		m->withdrawn = 0;
		dlv_msg_schedule(m, 0);
	} else {
		dlv_msg_schedule(m, next);
	}
	dlv_next_waiting(w);
	if (w->stopping && w->open == 0)
		event_base_loopexit(w->base, NULL);
}

/* dlv_attempt_wait - over with nothing to record (a delegate rule's filter has it). */
void dlv_attempt_wait(struct dlv_attempt *a, int64_t next)
{
	dlv_attempt_close(a, 0, next);
}

/* dlv_attempt_conclude - the outcomes of an attempt: state, notices, removal. */
static void dlv_attempt_conclude(struct dlv_attempt *a)
{
	const struct config *cfg = a->m->w->cfg;
	int64_t now = time(NULL), next = 0;
	size_t i, deferred = 0, failed = 0;
	int err, owed;

	if (a->m->withdrawn) {
		/* An administrator removed, held or requeued it meanwhile: the
		 * queue no longer wants to hear about this attempt. */
		dlv_attempt_close(a, 0, 0);
		return;
	}
	a->attempts++;
	if (a->first_attempt == 0)
		a->first_attempt = a->started;
	dlv_expire(a, now);
	for (i = 0; i < a->env.nrcpts; i++) {
		deferred += a->rcpts[i].status == RCPT_DEFERRED || a->rcpts[i].status == RCPT_PENDING;
		failed += a->rcpts[i].status == RCPT_FAILED;
	}
	/* Success notices go at the end of the attempt that delivered, or at
	 * the first one after a failure to queue them or a restart. */
	owed = dlv_notify_success(a) != 0;
	if (deferred > 0) {
		if (cfg->delay_warning > 0 && !a->warned &&
		    now - a->env.received_at >= (int64_t)cfg->delay_warning &&
		    a->env.mail_from && a->env.mail_from[0] &&
		    dlv_notify(a, DSN_DELAYED, RCPT_DEFERRED,
			       a->env.received_at + cfg->max_queue_lifetime) == 0)
			a->warned = 1;
		next = now + (int64_t)config_backoff(cfg->retry_min, cfg->retry_max,
						     (unsigned)a->attempts);
		dlv_state_save(a, next);
		a->m->w->deferred++;
		dlv_attempt_close(a, 0, next);
		return;
	}
	if (owed) {
		/* The outcomes are known; a success notice is missing, and the
		 * bounce waits for it, as it can be sent only once: just before
		 * the message leaves. */
		next = now + cfg->retry_min;
		dlv_state_save(a, next);
		dlv_attempt_close(a, 0, next);
		return;
	}
	if (failed > 0) {
		if (a->env.mail_from == NULL || a->env.mail_from[0] == '\0') {
			/* Nobody to tell: keep it for the administrator. */
			log_warn("%s: undeliverable and from the null sender: moved to %s/", a->m->id,
				 SPOOL_DEAD);
			dlv_send(a->m->w, "move", a->m->id, "to", "dead", NULL, NULL, -1);
			a->m->w->failed++;
			dlv_attempt_close(a, 1, 0);
			return;
		}
		if ((err = dlv_notify(a, DSN_FAILED, RCPT_FAILED, 0)) != 0) {
			/* The outcomes are known; only the notice is missing. */
			next = now + cfg->retry_min;
			dlv_state_save(a, next);
			dlv_attempt_close(a, 0, next);
			return;
		}
		a->m->w->failed++;
	} else {
		a->m->w->delivered++;
	}
	log_info("%s: removed", a->m->id);
	dlv_send(a->m->w, "done", a->m->id, NULL, NULL, NULL, NULL, -1);
	dlv_attempt_close(a, 1, 0);
}

/* dlv_attempt_end - every job is back (or there were none): conclude, on the scoreboard. */
void dlv_attempt_end(struct dlv_attempt *a)
{
	struct scoreboard *board = a->m->w->board;

	scoreboard_enter(board, a->m->id, SCOREBOARD_END);
	dlv_attempt_conclude(a); /* frees a */
	scoreboard_leave(board);
}

/* ---- beginning an attempt ---- */

/* dlv_attempt_start - the queue sent the file: run the rules and start the jobs. */
static void dlv_attempt_start(struct dlv_msg *m, int fd, int state_fd)
{
	struct dlv_attempt *a = calloc(1, sizeof(*a));
	struct rule_ctx ctx;
	struct message *msg = NULL;
	int go;

	if (a == NULL) {
		log_err("%s: out of memory", m->id);
		m->att = NULL;
		m->w->open--;
		dlv_msg_schedule(m, time(NULL) + m->w->cfg->retry_min);
		return;
	}
	a->m = m;
	a->started = time(NULL);
	m->att = a;
	if (dlv_attempt_load(a, fd, state_fd) < 0) {
		dlv_attempt_close(a, 0, time(NULL) + m->w->cfg->retry_min);
		return;
	}
	if (a->env.quarantine != NULL && !a->released) {
		dlv_quarantine(a, a->env.quarantine, "preq");
		dlv_attempt_close(a, 1, 0);
		return;
	}
	go = 1;
	if (rules_stage_used(m->w->rules, RULE_STAGE_POSTQ) ||
	    rules_stage_used(m->w->rules, RULE_STAGE_DELIVERY)) {
		if ((msg = message_parse(a->content, a->content_len)) == NULL) {
			dlv_attempt_close(a, 0, time(NULL) + m->w->cfg->retry_min);
			return;
		}
		dlv_ctx_init(a, &ctx, msg);
		go = dlv_run_postq(a, &ctx, msg);
		if (go == 1)
			go = dlv_run_delivery(a, &ctx, msg);
		rules_ctx_release(&ctx);
		message_free(msg);
	}
	if (go == 2)
		return; /* a delegate rule's filter has it: dlv_delegate_done goes on */
	if (go < 0) {
		dlv_attempt_close(a, 1, 0);
		return;
	}
	if (go == 0 || dlv_jobs_make(a) < 0 || a->njobs == 0) {
		/* Everything is known now (or memory ran out: the same next time). */
		dlv_attempt_end(a);
	}
}

/* dlv_attempt_begin - dlv_attempt_start, noted on the scoreboard while it runs. */
static void dlv_attempt_begin(struct dlv_msg *m, int fd, int state_fd)
{
	struct scoreboard *board = m->w->board;

	scoreboard_enter(board, m->id, SCOREBOARD_PREPARE);
	dlv_attempt_start(m, fd, state_fd); /* may free m */
	scoreboard_leave(board);
}

/* ---- the channel ---- */

/* dlv_opened - the queue's answer to "open". */
static void dlv_opened(struct dlv_worker *w, const cJSON *msg, const char *id, int fds[])
{
	struct dlv_msg *m = dlv_msg_find(w, id);
	int err = (int)dlv_json_int(msg, "error", 0);

	if (m == NULL || !m->opening) {
		log_err("%s: unexpected file from the queue", id);
		return;
	}
	m->opening = 0;
	if (m->withdrawn || err != 0 || fds[0] < 0) {
		if (!m->withdrawn)
			log_warn("%s: the queue cannot open it: %s", id, strerror(err ? err : EBADF));
		w->open--;
		if (m->again) {
			m->again = m->withdrawn = 0;
			dlv_msg_schedule(m, 0);
		} else {
			/* Gone from queue/ (held, removed): nothing to do until it is back. */
			dlv_msg_forget(m);
		}
		dlv_next_waiting(w);
		return;
	}
	dlv_attempt_begin(m, fds[0], fds[1]);
}

/* dlv_queued - "queued": a message to deliver, due at next. */
static void dlv_queued(struct dlv_worker *w, const char *id, int64_t next)
{
	struct dlv_msg *m = dlv_msg_find(w, id);

	if (m == NULL) {
		if ((m = dlv_msg_add(w, id)) == NULL) {
			log_err("%s: out of memory: delivery waits for a restart", id);
			return;
		}
		dlv_msg_schedule(m, next);
		return;
	}
	if (m->att != NULL || m->opening) {
		m->again = 1; /* after the attempt under way */
		return;
	}
	m->withdrawn = 0;
	dlv_msg_schedule(m, next);
}

/* dlv_withdraw - "withdraw": the queue took the message away. */
static void dlv_withdraw(struct dlv_worker *w, const char *id)
{
	struct dlv_msg *m = dlv_msg_find(w, id);

	if (m == NULL)
		return;
	if (m->att != NULL || m->opening) {
		m->withdrawn = 1;
		m->again = 0;
		return;
	}
	dlv_msg_forget(m);
}

/* dlv_flush - "flush": try now what is not under way. */
static void dlv_flush(struct dlv_worker *w, const char *id)
{
	struct dlv_msg *m;
	size_t b;

	if (id != NULL) {
		if ((m = dlv_msg_find(w, id)) != NULL && m->att == NULL && !m->opening)
			dlv_msg_schedule(m, 0);
		return;
	}
	for (b = 0; b < DLV_BUCKETS; b++)
		for (m = w->buckets[b]; m != NULL; m = m->hnext)
			if (m->att == NULL && !m->opening && !m->waiting)
				dlv_msg_schedule(m, 0);
}

/*
 * dlv_sess_cb - the session channel is readable between requests: the
 * queue has gone, or queue_client shut the channel after an answer went
 * astray. Either way it cannot be used again: start afresh (the master
 * restarts the worker; attempts under way are tried again).
 */
static void dlv_sess_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_notice("queue session channel closed: stopping"); /* the master starts another */
	exit(0);
}

/* dlv_op_opened - "opened" from the queue, with the file and its state. */
static void dlv_op_opened(void *arg, const cJSON *msg, const char *id, int fds[IPC_FDS_MAX])
{
	dlv_opened(arg, msg, id, fds);
}

/* dlv_op_queued - "queued" from the queue, maybe with "next". */
static void dlv_op_queued(void *arg, const cJSON *msg, const char *id, int fds[IPC_FDS_MAX])
{
	dlv_queued(arg, id, dlv_json_int(msg, "next", 0));
}

/* dlv_op_withdraw - "withdraw" from the queue. */
static void dlv_op_withdraw(void *arg, const cJSON *msg, const char *id, int fds[IPC_FDS_MAX])
{
	dlv_withdraw(arg, id);
}

/* dlv_op_flush - "flush" from the queue, for one message or (no id) all. */
static void dlv_op_flush(void *arg, const cJSON *msg, const char *id, int fds[IPC_FDS_MAX])
{
	dlv_flush(arg, id);
}

/* dlv_op_scoreboard - "scoreboard" from the queue: the page to note our work on. */
static void dlv_op_scoreboard(void *arg, const cJSON *msg, const char *id, int fds[IPC_FDS_MAX])
{
	struct dlv_worker *w = arg;
	struct scoreboard *board;

	if (fds[0] < 0 || (board = scoreboard_map(fds[0])) == NULL) {
		log_err("cannot map the scoreboard from the queue: %s",
			strerror(fds[0] < 0 ? EBADF : errno));
		return;
	}
	dlv_board = NULL;
	scoreboard_unmap(w->board);
	w->board = dlv_board = board;
}

/* The operations the queue sends. */
static const struct ipc_json_op dlv_ops[] = {
	{"scoreboard", dlv_op_scoreboard, 0},
	{"opened", dlv_op_opened, 1},
	{"queued", dlv_op_queued, 1},
	{"withdraw", dlv_op_withdraw, 1},
	{"flush", dlv_op_flush, 0},
};

static const struct ipc_json_reader dlv_reader = {
	.ops = dlv_ops,
	.nops = sizeof(dlv_ops) / sizeof(dlv_ops[0]),
	.ids_required = 0,
	.malformed = "malformed operation from the queue: ignored",
	.peer = "the queue",
	.bad_record = NULL,
};

/* dlv_channel_cb - operations from the queue. */
static void dlv_channel_cb(evutil_socket_t fd, short what, void *arg)
{
	if (!ipc_json_drain(fd, &dlv_reader, arg)) {
		/* The queue has gone: whatever we would report has nowhere to go. */
		log_notice("queue channel closed: stopping");
		exit(0);
	}
}

/* dlv_signal_cb - SIGTERM: start nothing new, finish the attempts under way. */
static void dlv_signal_cb(int signo, void *arg)
{
	struct dlv_worker *w = arg;

	if (w->stopping)
		return;
	w->stopping = 1;
	log_info("stopping: %u attempts under way", w->open);
	if (w->open == 0)
		event_base_loopexit(w->base, NULL);
}

/* delivery_main - the worker process. */
void delivery_main(const struct config *cfg, struct rules *rules, int dlv_fd, int sess_fd)
{
	static const int sigs[] = {SIGTERM, SIGINT};
	struct dlv_worker w = {.cfg = cfg, .rules = rules, .dlv_fd = dlv_fd, .sess_fd = sess_fd};
	struct event *sig_ev;
	char err[512];

	w.wait_tail = &w.wait;
	rules_reseed(rules);
	rules_set_overrun(dlv_rules_overrun);
	if ((w.base = evloop_new()) == NULL)
		fatal("cannot create the event loop");
	sig_ev = sigevent_new(w.base, sigs, 2, dlv_signal_cb, &w);
	if (delivery_sandbox_enter(cfg) < 0)
		fatal("cannot confine the delivery worker");
	if ((w.t = dlv_transport_new(w.base, cfg, err, sizeof(err))) == NULL)
		fatal("cannot start the transports: %s", err);
	w.out = ipc_outq_new(w.base, dlv_fd);
	w.dlv_ev = event_new(w.base, dlv_fd, EV_READ | EV_PERSIST, dlv_channel_cb, &w);
	w.sess_ev = event_new(w.base, sess_fd, EV_READ | EV_PERSIST, dlv_sess_cb, &w);
	if (w.out == NULL || w.dlv_ev == NULL || w.sess_ev == NULL || sig_ev == NULL ||
	    event_add(w.dlv_ev, NULL) < 0 || event_add(w.sess_ev, NULL) < 0)
		fatal("cannot set up the delivery event loop");
	log_info("delivery worker started: at most %u deliveries, %u per destination",
		 cfg->delivery_max_concurrency, cfg->delivery_max_per_destination);
	event_base_dispatch(w.base);
	/* What is still waiting to go to the queue goes before we leave. */
	while (ipc_outq_length(w.out) > 0 && event_base_loop(w.base, EVLOOP_ONCE) == 0)
		;
	log_info("stopped: %lu delivered, %lu deferred, %lu failed or bounced", w.delivered,
		 w.deferred, w.failed);
	exit(0);
}
