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

#define DLV_BUCKETS 4096
#define DLV_OPEN_FACTOR 4      /* attempts open at once: this many times max_deliveries */
#define DLV_STATE_REPLY_MAX 400 /* bytes of a reply kept in the state */
#define DLV_REMOTE_MAX 300      /* "host[address]" of the peer that answered */

/* A recipient's status, as in the state file. */
enum dlv_status { RCPT_PENDING, RCPT_DEFERRED, RCPT_SENT, RCPT_FAILED, RCPT_NONE };

static const char *const status_names[] = {"pending", "deferred", "sent", "failed", "none"};

/*
 * A sent recipient's success notice (NOTIFY=SUCCESS), as in the state file
 * ("success_notice"): owed with the action it reports, or queued already.
 */
enum dlv_notice { NOTICE_NONE, NOTICE_DELIVERED, NOTICE_RELAYED, NOTICE_SENT };

static const char *const notice_names[] = {"", "delivered", "relayed", "sent"};

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
};

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
	int stopping;
	unsigned long delivered, deferred, failed;
};

static void dlv_msg_due(struct dlv_msg *m);
static void dlv_attempt_end(struct dlv_attempt *a);
static int dlv_notify_success(struct dlv_attempt *a);

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
static void dlv_send(struct dlv_worker *w, const char *op, const char *id, const char *key,
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

/* dlv_status_parse - a status name from the state file. */
static enum dlv_status dlv_status_parse(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(status_names) / sizeof(status_names[0]); i++)
		if (strcmp(name, status_names[i]) == 0)
			return (enum dlv_status)i;
	return RCPT_PENDING;
}

/* dlv_json_int - a number member, def when absent. */
static int64_t dlv_json_int(const cJSON *obj, const char *key, int64_t def)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(n) ? (int64_t)n->valuedouble : def;
}

/* dlv_json_copy - a string member into buf. */
static void dlv_json_copy(const cJSON *obj, const char *key, char *buf, size_t len)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));

	snprintf(buf, len, "%s", s ? s : "");
}

/* dlv_notice_parse - a success notice's state from the state file ("": none). */
static enum dlv_notice dlv_notice_parse(const char *name)
{
	size_t i;

	for (i = 1; name != NULL && i < sizeof(notice_names) / sizeof(notice_names[0]); i++)
		if (strcmp(name, notice_names[i]) == 0)
			return (enum dlv_notice)i;
	return NOTICE_NONE;
}

/* dlv_state_load - the recipients' statuses and the counters from a state file. */
static void dlv_state_load(struct dlv_attempt *a, int fd)
{
	struct stat st;
	const cJSON *rcpts, *r;
	cJSON *state = NULL;
	char *text;
	size_t i = 0;

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (4 << 20) ||
	    (text = malloc((size_t)st.st_size)) == NULL)
		return;
	if (pread(fd, text, (size_t)st.st_size, 0) == st.st_size)
		state = cJSON_ParseWithLength(text, (size_t)st.st_size);
	free(text);
	if (!cJSON_IsObject(state)) {
		log_warn("%s: delivery state unreadable: every recipient is tried", a->m->id);
		cJSON_Delete(state);
		return;
	}
	a->attempts = (int)dlv_json_int(state, "attempts", 0);
	a->first_attempt = dlv_json_int(state, "first_attempt", 0);
	a->postq = dlv_json_int(state, "postq", 0) != 0;
	a->released = dlv_json_int(state, "released", 0) != 0;
	a->warned = dlv_json_int(state, "warned", 0) != 0;
	a->faccept = dlv_json_int(state, "faccept", 0) != 0;
	rcpts = cJSON_GetObjectItemCaseSensitive(state, "rcpts");
	cJSON_ArrayForEach(r, rcpts)
	{
		const char *addr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "address"));
		struct dlv_rcpt *dr;

		if (i >= a->env.nrcpts)
			break;
		/* Statuses belong to recipients by position; a state that does
		 * not match the envelope is ignored from there on. */
		if (addr == NULL || strcmp(addr, a->env.rcpts[i].address) != 0)
			break;
		dr = &a->rcpts[i++];
		dr->status = dlv_status_parse(
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "status")));
		dlv_json_copy(r, "reply", dr->reply, sizeof(dr->reply));
		dlv_json_copy(r, "remote", dr->remote, sizeof(dr->remote));
		dlv_json_copy(r, "enhanced", dr->enhanced, sizeof(dr->enhanced));
		dr->at = dlv_json_int(r, "at", 0);
		dr->remote_said = dlv_json_int(r, "remote_said", 0) != 0;
		if (dr->status == RCPT_SENT)
			dr->notice = dlv_notice_parse(cJSON_GetStringValue(
			    cJSON_GetObjectItemCaseSensitive(r, "success_notice")));
	}
	cJSON_Delete(state);
}

/* dlv_state_text - the state of an attempt as JSON text (malloc'ed). */
static char *dlv_state_text(const struct dlv_attempt *a, int64_t next)
{
	cJSON *s = cJSON_CreateObject(), *rcpts, *r;
	char *text = NULL;
	size_t i;

	if (s == NULL || cJSON_AddNumberToObject(s, "attempts", a->attempts) == NULL ||
	    cJSON_AddNumberToObject(s, "first_attempt", (double)a->first_attempt) == NULL ||
	    cJSON_AddNumberToObject(s, "last_attempt", (double)a->started) == NULL ||
	    cJSON_AddNumberToObject(s, "next_attempt", (double)next) == NULL ||
	    (a->postq && cJSON_AddNumberToObject(s, "postq", 1) == NULL) ||
	    (a->released && cJSON_AddNumberToObject(s, "released", 1) == NULL) ||
	    (a->warned && cJSON_AddNumberToObject(s, "warned", 1) == NULL) ||
	    (a->faccept && cJSON_AddNumberToObject(s, "faccept", 1) == NULL) ||
	    (rcpts = cJSON_AddArrayToObject(s, "rcpts")) == NULL)
		goto out;
	for (i = 0; i < a->env.nrcpts; i++) {
		const struct dlv_rcpt *dr = &a->rcpts[i];
		char reply[DLV_STATE_REPLY_MAX];

		snprintf(reply, sizeof(reply), "%.399s", dr->reply);
		if ((r = cJSON_CreateObject()) == NULL)
			goto out;
		cJSON_AddItemToArray(rcpts, r);
		if (cJSON_AddStringToObject(r, "address", a->env.rcpts[i].address) == NULL ||
		    cJSON_AddStringToObject(r, "status", status_names[dr->status]) == NULL ||
		    (dr->reply[0] && cJSON_AddStringToObject(r, "reply", reply) == NULL) ||
		    (dr->enhanced[0] && cJSON_AddStringToObject(r, "enhanced", dr->enhanced) == NULL) ||
		    (dr->remote[0] && cJSON_AddStringToObject(r, "remote", dr->remote) == NULL) ||
		    (dr->remote_said && cJSON_AddNumberToObject(r, "remote_said", 1) == NULL) ||
		    (dr->at && cJSON_AddNumberToObject(r, "at", (double)dr->at) == NULL) ||
		    (dr->notice != NOTICE_NONE &&
		     cJSON_AddStringToObject(r, "success_notice", notice_names[dr->notice]) == NULL))
			goto out;
	}
	text = cJSON_PrintUnformatted(s);
out:
	cJSON_Delete(s);
	return text;
}

/* dlv_state_save - hand the state to the queue (through a memfd). */
static void dlv_state_save(struct dlv_attempt *a, int64_t next)
{
	char *text = dlv_state_text(a, next);
	size_t len;
	int fd, err;

	if (text == NULL) {
		log_err("%s: out of memory saving its delivery state", a->m->id);
		return;
	}
	len = strlen(text);
	if ((fd = memfd_create("vsmtpd-state", MFD_CLOEXEC)) < 0) {
		log_err("%s: cannot save its delivery state: %s", a->m->id, strerror(errno));
		free(text);
		return;
	}
	if ((err = io_write_all(fd, text, len, -1, NULL)) == 0)
		dlv_send(a->m->w, "state", a->m->id, NULL, NULL, NULL, NULL, fd);
	else
		log_err("%s: cannot save its delivery state: %s", a->m->id, strerror(err));
	close(fd);
	free(text);
}

/* ---- rules ---- */

/* dlv_rules_service - a rule's request: answered by the queue, as for a session. */
static int dlv_rules_service(void *arg, enum rule_service kind, const char *name,
			     const char *file, const char *data, size_t len)
{
	struct dlv_attempt *a = arg;

	return queue_client_service(a->m->w->sess_fd, kind, name, file[0] ? file : a->m->id, data,
				    len);
}

/* dlv_rules_send_mail - send_mail() from a rule: queued through the queue. */
static int dlv_rules_send_mail(void *arg, const struct rule_mail *mail, char *id)
{
	struct dlv_attempt *a = arg;
	const struct config *cfg = a->m->w->cfg;
	int err = send_mail_queue(a->m->w->sess_fd, mail, cfg->hostname, cfg->max_message_size, id);

	if (err == 0)
		log_info("%s: rules: send_mail %s: %s", a->m->id, mail->path, id);
	return err;
}

/* dlv_rules_route - ctx:deliver() and friends: note the choice. */
static int dlv_rules_route(void *arg, const char *rcpt, enum rule_route kind, const char *target)
{
	struct dlv_attempt *a = arg;
	char host[256];
	unsigned port;
	const char *path;
	int bracketed, found = 0;
	size_t i;

	if (target != NULL && target[0] != '\0' &&
	    config_target_split(target, host, sizeof(host), &port, &path, &bracketed) < 0)
		return EINVAL;
	/* Recipients a rule added in this stage are not delivered (their
	 * statuses have no room): only the envelope as queued is routed. */
	for (i = 0; i < a->env.nrcpts && i < a->nrcpts; i++) {
		if (rcpt != NULL && strcasecmp(rcpt, a->env.rcpts[i].address) != 0)
			continue;
		a->rcpts[i].route = kind;
		snprintf(a->rcpts[i].target, sizeof(a->rcpts[i].target), "%s", target ? target : "");
		found = 1;
	}
	return found || rcpt == NULL ? 0 : ENOENT;
}

/* dlv_ctx_init - the context the offline stages see, from the envelope. */
static void dlv_ctx_init(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg)
{
	const struct envelope *env = &a->env;

	memset(ctx, 0, sizeof(*ctx));
	ctx->client_ip = env->client_ip ? env->client_ip : "";
	ctx->client_port = env->client_port;
	ctx->server_ip = "";
	ctx->server_name = a->m->w->cfg->hostname;
	ctx->listener = env->listener ? env->listener : "";
	ctx->listener_kind = "";
	ctx->connection_timestamp = env->received_at;
	ctx->is_secured = env->tls_version != NULL;
	ctx->tls_version = env->tls_version;
	ctx->tls_cipher = env->tls_cipher;
	ctx->tls_sni = "";
	ctx->is_authenticated = env->authid != NULL;
	ctx->auth_mechanism = env->auth_mechanism;
	ctx->auth_authid = env->authid;
	ctx->helo = env->helo ? env->helo : "";
	ctx->env = &a->env;
	ctx->mail_timestamp = env->received_at;
	ctx->msg = msg;
	ctx->service = dlv_rules_service;
	ctx->send_mail = dlv_rules_send_mail;
	ctx->service_arg = a;
	if (env->vars != NULL)
		ctx->tx_vars = cJSON_Parse(env->vars);
}

/* dlv_verdict_reply - the reply a refusing verdict carries, as text. */
static void dlv_verdict_reply(const struct rule_verdict *v, int def_code, const char *def_enh,
			      char *buf, size_t len, char *enh, size_t enhlen, int *code)
{
	*code = v->has_reply ? v->reply.code : def_code;
	snprintf(enh, enhlen, "%s", v->has_reply && v->reply.enhanced[0] ? v->reply.enhanced : def_enh);
	snprintf(buf, len, "%d %.15s %.480s", *code, enh,
		 v->has_reply && v->reply.text[0] ? v->reply.text : "Delivery refused by policy");
}

/* dlv_refuse_pending - every recipient still to deliver gets the verdict's outcome. */
static void dlv_refuse_pending(struct dlv_attempt *a, const struct rule_verdict *v,
			       const char *stage)
{
	char reply[MTA_REPLY_MAX], enh[16];
	int code;
	size_t i;

	dlv_verdict_reply(v, 554, "5.7.1", reply, sizeof(reply), enh, sizeof(enh), &code);
	log_info("%s: %s rules (%s) refused delivery: %s", a->m->id, stage,
		 v->rule[0] ? v->rule : "no rule", reply);
	for (i = 0; i < a->env.nrcpts; i++) {
		struct dlv_rcpt *dr = &a->rcpts[i];

		if (dr->status != RCPT_PENDING && dr->status != RCPT_DEFERRED)
			continue;
		dr->status = code >= 500 ? RCPT_FAILED : RCPT_DEFERRED;
		snprintf(dr->reply, sizeof(dr->reply), "%s", reply);
		snprintf(dr->enhanced, sizeof(dr->enhanced), "%s", enh);
		dr->remote[0] = '\0';
		dr->at = a->started;
	}
}

/* dlv_rule_error - a rule failed: defer, never deliver by accident. */
static void dlv_rule_error(struct dlv_attempt *a, const char *stage)
{
	struct rule_verdict v = {.status = RULE_DENY, .has_reply = 1};

	v.reply.code = 451;
	snprintf(v.reply.enhanced, sizeof(v.reply.enhanced), "4.3.0");
	snprintf(v.reply.text, sizeof(v.reply.text), "error in the %s rules", stage);
	dlv_refuse_pending(a, &v, stage);
}

/* dlv_quarantine - the rules kept the message: move it, forget it. */
static void dlv_quarantine(struct dlv_attempt *a, const char *name, const char *stage)
{
	/* The move takes the state along: a success notice still owed from an
	 * earlier attempt goes now or never. */
	if (dlv_notify_success(a) != 0)
		log_warn("%s: a success notice owed is lost with the quarantine", a->m->id);
	log_info("%s: quarantined by the %s rules in %s", a->m->id, stage, name);
	dlv_send(a->m->w, "move", a->m->id, "to", "quarantine", "name", name, -1);
}

/*
 * dlv_rewrite - the postq rules changed the message or its envelope: queue
 * the changed copy (marked postq done) and drop this one. 0 when done.
 */
static int dlv_rewrite(struct dlv_attempt *a, struct message *msg, struct rule_ctx *ctx)
{
	struct envelope copy = a->env;
	char old[SPOOL_ID_LEN + 1], *text = NULL, *vars;
	size_t len = 0;
	int err;

	if (msg != NULL && message_modified(msg) && (text = message_serialize(msg, &len)) == NULL)
		return ENOMEM;
	vars = rules_tx_vars(ctx);
	copy.vars = vars;
	copy.postq_done = 1;
	copy.faccept = a->faccept;
	snprintf(old, sizeof(old), "%s", a->m->id);
	err = queue_client_submit(a->m->w->sess_fd, &copy,
				  text ? text : a->map, text ? len : a->content_len);
	free(text);
	free(vars);
	if (err != 0) {
		log_err("%s: cannot queue the copy the postq rules changed: %s", old, strerror(err));
		return err;
	}
	log_info("%s: changed by the postq rules: queued again as %s", old, copy.id);
	dlv_send(a->m->w, "done", old, NULL, NULL, NULL, NULL, -1);
	return 0;
}

/* dlv_rcpts_snapshot - the envelope's sender and recipients, to see changes. */
static char *dlv_rcpts_snapshot(const struct envelope *env)
{
	size_t i, len = strlen(env->mail_from ? env->mail_from : "") + 2;
	char *s, *p;

	for (i = 0; i < env->nrcpts; i++)
		len += strlen(env->rcpts[i].address) + 1;
	if ((s = malloc(len)) == NULL)
		return NULL;
	p = s + sprintf(s, "%s\n", env->mail_from ? env->mail_from : "");
	for (i = 0; i < env->nrcpts; i++)
		p += sprintf(p, "%s\n", env->rcpts[i].address);
	return s;
}

/* dlv_vars_changed - whether the rules' variables differ from the envelope's. */
static int dlv_vars_changed(const struct envelope *env, const struct rule_ctx *ctx)
{
	char *now = rules_tx_vars(ctx);
	int changed;

	if (now == NULL)
		return env->vars != NULL;
	changed = env->vars == NULL || strcmp(now, env->vars) != 0;
	free(now);
	return changed;
}

/*
 * dlv_run_postq - the postq stage, once per message. Returns 1 when the
 * attempt goes on, 0 when the recipients got their outcome from the rules
 * (refused, or deferred by a failing rule), -1 when the message is no longer
 * this worker's (quarantined, or queued again changed).
 */
static int dlv_run_postq(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg)
{
	struct envelope snap = {0};
	struct rule_verdict v;
	char *before, *after;
	int changed;

	if (a->postq || a->released || a->env.postq_done || a->env.faccept ||
	    !rules_stage_used(a->m->w->rules, RULE_STAGE_POSTQ)) {
		a->postq = 1;
		return 1;
	}
	before = dlv_rcpts_snapshot(&a->env);
	if (before == NULL || envelope_copy_rcpts(&snap, &a->env) < 0) {
		free(before);
		envelope_clear(&snap);
		dlv_rule_error(a, "postq");
		return 0;
	}
	rules_run(a->m->w->rules, RULE_STAGE_POSTQ, ctx, &v);
	a->faccept = v.status == RULE_FACCEPT;
	if (v.status == RULE_QUARANTINE) {
		free(before);
		envelope_clear(&snap);
		dlv_quarantine(a, v.quarantine, "postq");
		return -1;
	}
	if (v.status == RULE_ERROR || v.status == RULE_DENY || v.status == RULE_REJECT) {
		/* The recipients the statuses are about are the envelope's as queued. */
		envelope_swap_rcpts(&a->env, &snap);
		envelope_clear(&snap);
		free(before);
		if (v.status == RULE_ERROR)
			dlv_rule_error(a, "postq");
		else
			dlv_refuse_pending(a, &v, "postq");
		return 0;
	}
	after = dlv_rcpts_snapshot(&a->env);
	changed = after == NULL || strcmp(before, after) != 0;
	free(after);
	free(before);
	if (a->env.nrcpts == 0) {
		log_info("%s: the postq rules removed every recipient: discarded", a->m->id);
		envelope_clear(&snap);
		dlv_send(a->m->w, "done", a->m->id, NULL, NULL, NULL, NULL, -1);
		return -1;
	}
	if (changed || message_modified(msg) || dlv_vars_changed(&a->env, ctx)) {
		if (dlv_rewrite(a, msg, ctx) == 0) {
			envelope_clear(&snap);
			return -1;
		}
		envelope_swap_rcpts(&a->env, &snap);
		envelope_clear(&snap);
		dlv_rule_error(a, "postq");
		return 0;
	}
	envelope_clear(&snap);
	a->postq = 1;
	return 1;
}

/*
 * dlv_run_delivery - the delivery stage, at every attempt: the transports.
 * Same return values as dlv_run_postq. Changes to the message are delivered
 * (this attempt's copy); recipients cannot change here.
 */
static int dlv_run_delivery(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg)
{
	struct envelope snap = {0};
	struct rule_verdict v;
	char *before, *after;
	int changed;

	if (!rules_stage_used(a->m->w->rules, RULE_STAGE_DELIVERY) || a->faccept ||
	    a->env.faccept)
		return 1;
	before = dlv_rcpts_snapshot(&a->env);
	if (before == NULL || envelope_copy_rcpts(&snap, &a->env) < 0) {
		free(before);
		envelope_clear(&snap);
		dlv_rule_error(a, "delivery");
		return 0;
	}
	ctx->route = dlv_rules_route;
	ctx->route_arg = a;
	rules_run(a->m->w->rules, RULE_STAGE_DELIVERY, ctx, &v);
	ctx->route = NULL;
	after = dlv_rcpts_snapshot(&a->env);
	changed = after == NULL || strcmp(before, after) != 0;
	free(after);
	free(before);
	if (changed) {
		log_warn("%s: the delivery rules changed the sender or the recipients: ignored "
			 "(make such changes at postq)",
			 a->m->id);
		envelope_swap_rcpts(&a->env, &snap);
	}
	envelope_clear(&snap);
	switch (v.status) {
	case RULE_QUARANTINE:
		dlv_quarantine(a, v.quarantine, "delivery");
		return -1;
	case RULE_ERROR:
		dlv_rule_error(a, "delivery");
		return 0;
	case RULE_DENY:
	case RULE_REJECT:
		dlv_refuse_pending(a, &v, "delivery");
		return 0;
	default:
		break;
	}
	if (message_modified(msg)) {
		if ((a->edited = message_serialize(msg, &a->content_len)) == NULL) {
			dlv_rule_error(a, "delivery");
			return 0;
		}
		a->content = a->edited;
	}
	return 1;
}

/* ---- routing and jobs ---- */

/*
 * dlv_domain_local - whether domain is ours: one of [rules] local_domains,
 * the host name or localhost (which the shipped rules accept as well).
 */
static int dlv_domain_local(const struct config *cfg, const char *domain)
{
	size_t len = strlen(domain);
	const char *p = cfg->local_domains;

	if (strcasecmp(domain, cfg->hostname) == 0 || strcasecmp(domain, "localhost") == 0)
		return 1;
	while (*p != '\0') {
		const char *end = strchr(p, ' ');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n == len && strncasecmp(p, domain, n) == 0)
			return 1;
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
}

/* dlv_route_local - the configured local transport. */
static void dlv_route_local(const struct config *cfg, enum dlv_kind *kind, char *target,
			    size_t len)
{
	target[0] = '\0';
	switch (cfg->local_transport) {
	case LOCAL_MBOX:
		*kind = DLV_MBOX;
		break;
	case LOCAL_LMTP:
		*kind = DLV_LMTP;
		snprintf(target, len, "%s", cfg->lmtp_target);
		break;
	default:
		*kind = DLV_MAILDIR;
		break;
	}
}

/*
 * dlv_route - how recipient i travels: kind and target (a domain, a host,
 * an LMTP server). Returns 0, or -1 when it goes nowhere (disable_delivery).
 */
static int dlv_route(const struct dlv_attempt *a, size_t i, enum dlv_kind *kind, char *target,
		     size_t len)
{
	const struct config *cfg = a->m->w->cfg;
	const struct dlv_rcpt *dr = &a->rcpts[i];
	const char *addr = a->env.rcpts[i].address;
	const char *at = strrchr(addr, '@');
	const char *domain = at ? at + 1 : cfg->hostname; /* "postmaster" alone is ours */

	target[0] = '\0';
	switch (dr->route) {
	case ROUTE_NONE:
		return -1;
	case ROUTE_FORWARD:
		*kind = DLV_RELAY;
		snprintf(target, len, "%s", dr->target);
		return 0;
	case ROUTE_MAILDIR:
		*kind = DLV_MAILDIR;
		return 0;
	case ROUTE_MBOX:
		*kind = DLV_MBOX;
		return 0;
	case ROUTE_LMTP:
		*kind = DLV_LMTP;
		snprintf(target, len, "%s", dr->target[0] ? dr->target : cfg->lmtp_target);
		return 0;
	default:
		break;
	}
	if (a->env.relay != NULL) { /* send_mail()'s relay */
		*kind = DLV_RELAY;
		snprintf(target, len, "%s", a->env.relay);
		return 0;
	}
	if (at == NULL || dlv_domain_local(cfg, domain)) {
		dlv_route_local(cfg, kind, target, len);
		return 0;
	}
	if (cfg->relay_host[0] != '\0') {
		*kind = DLV_RELAY;
		snprintf(target, len, "%s", cfg->relay_host);
		return 0;
	}
	*kind = DLV_MX;
	snprintf(target, len, "%s", domain);
	for (; *target; target++)
		if (*target >= 'A' && *target <= 'Z')
			*target = (char)(*target - 'A' + 'a');
	return 0;
}

/* dlv_log_rcpt - one line per recipient and attempt, as administrators grep for. */
static void dlv_log_rcpt(const struct dlv_attempt *a, size_t i, const char *via)
{
	const struct dlv_rcpt *dr = &a->rcpts[i];

	log_info("%s: to=<%s>, relay=%s, delay=%lds, status=%s (%s)", a->m->id,
		 a->env.rcpts[i].address, dr->remote[0] ? dr->remote : via,
		 (long)(time(NULL) - a->env.received_at), status_names[dr->status], dr->reply);
}

/* dlv_kind_name - how a job travels, for the log. */
static const char *dlv_kind_name(enum dlv_kind kind)
{
	static const char *const names[] = {"smtp", "smtp", "lmtp", "maildir", "mbox"};

	return names[kind];
}

/*
 * dlv_notice_owed - the success notice recipient i is owed by the result r
 * of a job of kind (RFC 3461 5.2.2, 6.2): none unless it was sent and asked
 * for one; none when a peer offering DSN took its NOTIFY, as that peer
 * reports then; "delivered" for our own mailboxes and for an LMTP server,
 * the final delivery; "relayed" to an SMTP peer without DSN.
 */
static enum dlv_notice dlv_notice_owed(const struct dlv_attempt *a, size_t i, enum dlv_kind kind,
				       const struct mta_result *r)
{
	if (r->outcome != MTA_SENT || r->dsn_passed ||
	    !dsn_wanted(&a->env, &a->env.rcpts[i], DSN_DELIVERED))
		return NOTICE_NONE;
	return kind == DLV_MX || kind == DLV_RELAY ? NOTICE_RELAYED : NOTICE_DELIVERED;
}

/* dlv_job_done - a job's results are in. */
static void dlv_job_done(struct dlv_job *job)
{
	struct dlv_attempt *a = job->owner;
	size_t k;

	for (k = 0; k < job->msg.nrcpts; k++) {
		const struct mta_result *r = &job->results[k];
		size_t i = a->index[&job->msg.rcpts[k] - a->crcpts];
		struct dlv_rcpt *dr = &a->rcpts[i];
		dr->status = r->outcome == MTA_SENT	    ? RCPT_SENT
			     : r->outcome == MTA_DEFERRED ? RCPT_DEFERRED
								  : RCPT_FAILED;
		snprintf(dr->reply, sizeof(dr->reply), "%s", r->reply);
		snprintf(dr->enhanced, sizeof(dr->enhanced), "%s", r->enhanced);
		snprintf(dr->remote, sizeof(dr->remote), "%s", job->remote);
		dr->remote_said = r->remote_said;
		dr->at = time(NULL);
		dr->notice = dlv_notice_owed(a, i, job->kind, r);
		dlv_log_rcpt(a, i, dlv_kind_name(job->kind));
	}
	if (--a->jobs_left == 0)
		dlv_attempt_end(a);
}

/* dlv_jobs_make - group the recipients still to deliver into jobs; submit them. */
static int dlv_jobs_make(struct dlv_attempt *a)
{
	struct dlv_worker *w = a->m->w;
	size_t n = a->env.nrcpts, i, j, k;
	enum dlv_kind *kinds;
	char (*targets)[300];
	int *job_of;

	a->crcpts = calloc(n, sizeof(*a->crcpts));
	a->results = calloc(n, sizeof(*a->results));
	a->jobs = calloc(n, sizeof(*a->jobs));
	kinds = calloc(n, sizeof(*kinds));
	targets = calloc(n, sizeof(*targets));
	job_of = calloc(n, sizeof(*job_of));
	if (!a->crcpts || !a->results || !a->jobs || !kinds || !targets || !job_of) {
		free(kinds);
		free(targets);
		free(job_of);
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct dlv_rcpt *dr = &a->rcpts[i];

		job_of[i] = -1;
		a->crcpts[i].address = a->env.rcpts[i].address;
		a->crcpts[i].notify = a->env.rcpts[i].notify;
		a->crcpts[i].orcpt_type = a->env.rcpts[i].orcpt_type;
		a->crcpts[i].orcpt = a->env.rcpts[i].orcpt;
		if (dr->status != RCPT_PENDING && dr->status != RCPT_DEFERRED)
			continue;
		if (dlv_route(a, i, &kinds[i], targets[i], sizeof(targets[i])) < 0) {
			dr->status = RCPT_NONE;
			snprintf(dr->reply, sizeof(dr->reply), "delivery disabled by the rules");
			dr->at = a->started;
			dlv_log_rcpt(a, i, "none");
			continue;
		}
		for (j = 0; j < a->njobs; j++)
			if (a->jobs[j].kind == kinds[i] && strcmp(a->jobs[j].target, targets[i]) == 0)
				break;
		if (j == a->njobs) {
			a->jobs[j].kind = kinds[i];
			snprintf(a->jobs[j].target, sizeof(a->jobs[j].target), "%s", targets[i]);
			a->njobs++;
		}
		job_of[i] = (int)j;
	}
	/* Each job's recipients are a contiguous run of crcpts: reorder by job. */
	{
		struct mta_rcpt *sorted = calloc(n ? n : 1, sizeof(*sorted));
		size_t *index = calloc(n ? n : 1, sizeof(*index));

		if (sorted == NULL || index == NULL) {
			free(sorted);
			free(index);
			free(kinds);
			free(targets);
			free(job_of);
			return -1;
		}
		for (j = 0, k = 0; j < a->njobs; j++) {
			struct dlv_job *job = &a->jobs[j];

			job->msg.rcpts = &sorted[k];
			job->results = &a->results[k];
			for (i = 0; i < n; i++)
				if (job_of[i] == (int)j) {
					index[k] = i;
					sorted[k++] = a->crcpts[i];
				}
			job->msg.nrcpts = (size_t)(&sorted[k] - job->msg.rcpts);
		}
		/* crcpts now holds the jobs' order; index maps back. */
		free(a->crcpts);
		a->crcpts = sorted;
		a->index = index;
	}
	free(kinds);
	free(targets);
	free(job_of);
	a->jobs_left = a->njobs;
	for (j = 0; j < a->njobs; j++) {
		struct dlv_job *job = &a->jobs[j];

		job->msg.mail_from = a->env.mail_from ? a->env.mail_from : "";
		job->msg.content = a->content;
		job->msg.content_len = a->content_len;
		job->msg.body = a->env.body;
		job->msg.smtputf8 = a->env.smtputf8;
		job->msg.ret = a->env.ret;
		job->msg.envid = a->env.envid;
		job->done = dlv_job_done;
		job->owner = a;
	}
	for (j = 0; j < a->njobs; j++)
		dlv_transport_submit(w->t, &a->jobs[j]);
	return 0;
}

/* ---- the end of an attempt ---- */

/* dlv_backoff - seconds before attempt number n + 1 (n >= 1): doubling, capped. */
static int64_t dlv_backoff(const struct config *cfg, int n)
{
	int64_t wait = cfg->retry_min;

	while (--n > 0 && wait < cfg->retry_max)
		wait *= 2;
	return wait < cfg->retry_max ? wait : cfg->retry_max;
}

/* The recipients one notification reports, with their Remote-MTA names. */
struct dlv_report {
	struct dsn_rcpt *list;
	char (*mta)[DLV_REMOTE_MAX];
	size_t n;
};

/* dlv_report_free - release a report's room. */
static void dlv_report_free(struct dlv_report *rep)
{
	free(rep->list);
	free(rep->mta);
	rep->list = NULL;
	rep->mta = NULL;
	rep->n = 0;
}

/* dlv_report_init - room for a report about at most max recipients; 0 or ENOMEM. */
static int dlv_report_init(struct dlv_report *rep, size_t max)
{
	rep->n = 0;
	rep->list = calloc(max ? max : 1, sizeof(*rep->list));
	rep->mta = calloc(max ? max : 1, sizeof(*rep->mta));
	if (rep->list == NULL || rep->mta == NULL) {
		dlv_report_free(rep);
		return ENOMEM;
	}
	return 0;
}

/* dlv_report_add - recipient i's block, reporting action. */
static void dlv_report_add(struct dlv_report *rep, const struct dlv_attempt *a, size_t i,
			   enum dsn_action action, int64_t retry_until)
{
	const struct dlv_rcpt *dr = &a->rcpts[i];
	struct dsn_rcpt *d = &rep->list[rep->n];
	char *mta = rep->mta[rep->n++];
	int success = action == DSN_DELIVERED || action == DSN_RELAYED;

	d->rcpt = &a->env.rcpts[i];
	d->action = action;
	d->status = dr->enhanced; /* dsn_build puts x.0.0 of the action's class for "" */
	/* Remote-MTA is a host name: "mx.example.org[192.0.2.1]" without the address. */
	snprintf(mta, DLV_REMOTE_MAX, "%.*s", (int)strcspn(dr->remote, "["), dr->remote);
	d->remote_mta = mta[0] ? mta : NULL;
	/* Our own "delivered to <file>" would show the sender where mailboxes live. */
	d->diagnostic = success && !dr->remote_said ? "delivered to the mailbox" : dr->reply;
	d->diagnostic_smtp = dr->remote_said;
	d->last_attempt = dr->at;
	d->will_retry_until = retry_until;
}

/*
 * dlv_report_send - build the notification about rep's recipients and
 * queue it for the sender; what names it in the log ("non-delivery
 * notification"). 0 when queued, else an errno value (nothing was queued).
 */
static int dlv_report_send(struct dlv_attempt *a, const struct dlv_report *rep, const char *what)
{
	const struct config *cfg = a->m->w->cfg;
	struct envelope notice = {0};
	size_t len;
	char *text;
	int err;

	text = dsn_build(cfg->hostname, &a->env, a->map, a->content_len, rep->list, rep->n,
			 cfg->dsn_attach_limit, time(NULL), &len);
	if (text == NULL)
		return ENOMEM;
	err = envelope_init_local(&notice, cfg->hostname, "") < 0 ||
		      envelope_add_rcpt(&notice, a->env.mail_from, 0, NULL, NULL) < 0
		  ? ENOMEM
		  : 0;
	notice.smtputf8 = a->env.smtputf8;
	notice.body = SMTP_BODY_8BITMIME;
	if (err == 0)
		err = queue_client_submit(a->m->w->sess_fd, &notice, text, len);
	if (err == 0)
		log_info("%s: sender %s: %s", a->m->id, what, notice.id);
	else
		log_err("%s: cannot queue the %s: %s", a->m->id, what, strerror(err));
	envelope_clear(&notice);
	free(text);
	return err;
}

/*
 * dlv_notify - send the sender a notification about the recipients whose
 * status is `which` and who want to hear of it (failures or delays). 0 when
 * sent or not wanted, else an errno value (nothing was queued: try again
 * later).
 */
static int dlv_notify(struct dlv_attempt *a, enum dsn_action action, enum dlv_status which,
		      int64_t retry_until)
{
	struct dlv_report rep;
	size_t i;
	int err;

	if (dlv_report_init(&rep, a->env.nrcpts) != 0)
		return ENOMEM;
	for (i = 0; i < a->env.nrcpts; i++)
		if (a->rcpts[i].status == which && dsn_wanted(&a->env, &a->env.rcpts[i], action))
			dlv_report_add(&rep, a, i, action, retry_until);
	err = rep.n == 0 ? 0
			 : dlv_report_send(a, &rep,
					   action == DSN_DELAYED ? "delay notification"
								 : "non-delivery notification");
	dlv_report_free(&rep);
	return err;
}

/*
 * dlv_notify_success - one success notice about every recipient owed one
 * (NOTIFY=SUCCESS), apart from any bounce; they are marked sent once it is
 * queued. 0 when queued or none is owed, else an errno value: they stay
 * owed, for the next attempt.
 */
static int dlv_notify_success(struct dlv_attempt *a)
{
	struct dlv_report rep;
	size_t i;
	int err;

	if (dlv_report_init(&rep, a->env.nrcpts) != 0)
		return ENOMEM;
	for (i = 0; i < a->env.nrcpts; i++) {
		enum dlv_notice owed = a->rcpts[i].notice;

		if (owed == NOTICE_DELIVERED || owed == NOTICE_RELAYED)
			dlv_report_add(&rep, a, i,
				       owed == NOTICE_DELIVERED ? DSN_DELIVERED : DSN_RELAYED, 0);
	}
	err = rep.n == 0 ? 0 : dlv_report_send(a, &rep, "delivery status notification");
	dlv_report_free(&rep);
	for (i = 0; err == 0 && i < a->env.nrcpts; i++)
		if (a->rcpts[i].notice == NOTICE_DELIVERED || a->rcpts[i].notice == NOTICE_RELAYED)
			a->rcpts[i].notice = NOTICE_SENT;
	return err;
}

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

/* dlv_attempt_free - release what an attempt holds. */
static void dlv_attempt_free(struct dlv_attempt *a)
{
	if (a->map != NULL)
		munmap(a->map, a->map_len);
	envelope_clear(&a->env);
	free(a->edited);
	free(a->rcpts);
	free(a->jobs);
	free(a->crcpts);
	free(a->index);
	free(a->results);
	free(a);
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

/* dlv_attempt_end - every job is back (or there were none): conclude. */
static void dlv_attempt_end(struct dlv_attempt *a)
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
		next = now + dlv_backoff(cfg, a->attempts);
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

/* ---- beginning an attempt ---- */

/* dlv_attempt_load - map the file, read its envelope and state. 0 or -1. */
static int dlv_attempt_load(struct dlv_attempt *a, int fd, int state_fd)
{
	uint64_t clen;
	struct stat st;

	if (fstat(fd, &st) < 0 || spool_message_read(fd, &a->env, &clen) < 0) {
		log_err("%s: cannot read the message file: %s", a->m->id, strerror(errno));
		return -1;
	}
	a->map_len = (size_t)st.st_size;
	a->map = mmap(NULL, a->map_len ? a->map_len : 1, PROT_READ, MAP_PRIVATE, fd, 0);
	if (a->map == MAP_FAILED) {
		a->map = NULL;
		log_err("%s: cannot map the message file: %s", a->m->id, strerror(errno));
		return -1;
	}
	a->content = a->map;
	a->content_len = (size_t)clen;
	if ((a->rcpts = calloc(a->env.nrcpts, sizeof(*a->rcpts))) == NULL)
		return -1;
	a->nrcpts = a->env.nrcpts;
	dlv_state_load(a, state_fd);
	return 0;
}

/* dlv_attempt_begin - the queue sent the file: run the rules and start the jobs. */
static void dlv_attempt_begin(struct dlv_msg *m, int fd, int state_fd)
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
	if (go < 0) {
		dlv_attempt_close(a, 1, 0);
		return;
	}
	if (go == 0 || dlv_jobs_make(a) < 0 || a->njobs == 0) {
		/* Everything is known now (or memory ran out: the same next time). */
		dlv_attempt_end(a);
	}
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

/* The operations the queue sends. */
static const struct ipc_json_op dlv_ops[] = {
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
