/*
 * queue_admin_list.c - the vsmtpctl commands that read the spool: list
 * (every message of the queue, hold and dead, or of one named queue, that
 * passes the filters), show (one message's envelope, delivery state and
 * text) and quarantine-list. A listing opens each message file, checks its
 * trailer and reads its envelope; the delivery state tells whether a queued
 * message is active or deferred, what its last reply was, and, for one the
 * delivery worker died on, how often and why the queue held it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "utf8.h"
#include "envelope.h"
#include "log.h"
#include "queue_admin_internal.h"
#include "queue_internal.h"
#include "spool.h"

#define ADMIN_CONTENT_MAX (1u << 20) /* bytes of message text in a "show" answer */
#define ADMIN_LIST_MAX 100000        /* messages in a list answer (count covers all) */

/* What a list keeps. */
struct admin_filter {
	const char *sender, *recipient; /* substrings, case-insensitive; NULL: any */
	const char *queue;              /* "active", "deferred", ...; NULL: queue, hold and dead */
	double min_age, max_age;        /* seconds; -1: no bound */
	int64_t now;
};

/* ---- delivery state ---- */

/* admin_status_final - whether a recipient status is an end: sent, failed, none. */
int admin_status_final(const char *status)
{
	return status != NULL && (strcmp(status, "sent") == 0 || strcmp(status, "failed") == 0 ||
	                          strcmp(status, "none") == 0);
}

/* admin_state_rcpt - the state's entry for address (NULL: never tried). */
static const cJSON *admin_state_rcpt(const cJSON *state, const char *address)
{
	const cJSON *r;
	const char *a;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(
	                          state, "rcpts")) if ((a = admin_str(r, "address")) != NULL &&
	                                               strcmp(a, address) == 0) return r;
	return NULL;
}

/* admin_last_reply - the latest reply of a deferred recipient, else the latest reply at all. */
static const char *admin_last_reply(const cJSON *state)
{
	const char *best = NULL, *reply;
	double best_at = -1;
	int best_deferred = 0, deferred;
	const cJSON *r;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(state, "rcpts"))
	{
		if ((reply = admin_str(r, "reply")) == NULL)
			continue;
		deferred =
		    admin_str(r, "status") && strcmp(admin_str(r, "status"), "deferred") == 0;
		if (deferred < best_deferred ||
		    (deferred == best_deferred && admin_num(r, "at", 0) < best_at))
			continue;
		best = reply;
		best_at = admin_num(r, "at", 0);
		best_deferred = deferred;
	}
	return best;
}

/* ---- list and show ---- */

/* admin_queue_name - the queue a message is in, as list and show name it. */
static const char *admin_queue_name(const struct admin_msg *m, const cJSON *state, int64_t now)
{
	switch (m->loc) {
	case LOC_QUEUE:
		return state == NULL || queue_state_next(state) <= now ? "active" : "deferred";
	case LOC_HOLD:
		return "hold";
	case LOC_DEAD:
		return "dead";
	case LOC_QUARANTINE:
		return "quarantine";
	default:
		return "corrupt";
	}
}

/* admin_match_rcpt - whether a recipient of env contains needle. */
static int admin_match_rcpt(const struct envelope *env, const char *needle)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		if (strcasestr(env->rcpts[i].address, needle) != NULL)
			return 1;
	return 0;
}

/* admin_keep - whether a message passes the filter. */
static int admin_keep(const struct admin_filter *flt, const struct admin_file *f, const char *queue,
                      int64_t arrival)
{
	double age = (double)(flt->now - arrival);

	if (flt->queue != NULL && strcmp(flt->queue, queue) != 0)
		return 0;
	if ((flt->sender || flt->recipient) && !f->valid)
		return 0;
	if (flt->sender && strcasestr(f->env.mail_from, flt->sender) == NULL)
		return 0;
	if (flt->recipient && !admin_match_rcpt(&f->env, flt->recipient))
		return 0;
	return (flt->min_age < 0 || age >= flt->min_age) &&
	       (flt->max_age < 0 || age <= flt->max_age);
}

/* admin_entry_rcpts - the recipients of a list entry with their delivery status. */
static void admin_entry_rcpts(cJSON *e, const struct envelope *env, const cJSON *state)
{
	cJSON *rs = cJSON_AddArrayToObject(e, "recipients"), *o;
	const cJSON *sr;
	const char *s;

	for (size_t i = 0; i < env->nrcpts; i++) {
		sr = admin_state_rcpt(state, env->rcpts[i].address);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "address", env->rcpts[i].address);
		s = admin_str(sr, "status");
		cJSON_AddStringToObject(o, "status", s ? s : "pending");
		if ((s = admin_str(sr, "reply")) != NULL)
			cJSON_AddStringToObject(o, "reply", s);
		else
			cJSON_AddNullToObject(o, "reply");
		cJSON_AddItemToArray(rs, o);
	}
}

/*
 * admin_hold_reason - why a message is held: the reason in its state (the
 * delivery worker died on it, the postq rules held it), else, in hold/, the
 * one its envelope got from the rules at accept unless it was released
 * since; NULL when none.
 */
const char *admin_hold_reason(const struct admin_msg *m, const struct admin_file *f,
                              const cJSON *state)
{
	if (admin_str(state, "hold_reason") != NULL)
		return admin_str(state, "hold_reason");
	if (m->loc == LOC_HOLD && f->valid && f->env.hold != NULL &&
	    admin_num(state, "released", 0) == 0)
		return f->env.hold;
	return NULL;
}

/* admin_entry - the list entry of an opened message. */
static cJSON *admin_entry(const struct admin_msg *m, const struct admin_file *f, const char *queue,
                          int64_t arrival, const cJSON *state)
{
	cJSON *e = cJSON_CreateObject();
	const char *reply = admin_last_reply(state);

	cJSON_AddStringToObject(e, "id", m->id);
	cJSON_AddStringToObject(e, "queue", queue);
	if (m->loc == LOC_QUARANTINE)
		cJSON_AddStringToObject(e, "quarantine", m->qname);
	cJSON_AddNumberToObject(e, "size", f->valid ? (double)f->clen : (double)f->st.st_size);
	cJSON_AddNumberToObject(e, "arrival", (double)arrival);
	if (f->valid) {
		cJSON_AddStringToObject(e, "sender", f->env.mail_from);
		admin_entry_rcpts(e, &f->env, state);
	} else {
		cJSON_AddNullToObject(e, "sender");
		cJSON_AddArrayToObject(e, "recipients");
	}
	cJSON_AddNumberToObject(e, "attempts", admin_num(state, "attempts", 0));
	cJSON_AddNumberToObject(e, "next_attempt", state ? (double)queue_state_next(state) : 0);
	if (reply != NULL)
		cJSON_AddStringToObject(e, "last_reply", reply);
	else
		cJSON_AddNullToObject(e, "last_reply");
	/* A message the delivery worker died on, and why it is held. */
	if (admin_num(state, "worker_failures", 0) > 0)
		cJSON_AddNumberToObject(e, "worker_failures", admin_num(state, "worker_failures", 0));
	if (admin_hold_reason(m, f, state) != NULL)
		cJSON_AddStringToObject(e, "hold_reason", admin_hold_reason(m, f, state));
	return e;
}

/* admin_msg_cmp - order of a listing: by id (arrival), then location. */
static int admin_msg_cmp(const void *a, const void *b)
{
	const struct admin_msg *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c ? c : (int)x->loc - (int)y->loc;
}

/* admin_list_set - the list answer for the messages of set that pass the filter. */
static cJSON *admin_list_set(struct queue *q, struct admin_set *set, const struct admin_filter *flt)
{
	cJSON *a = cJSON_CreateObject(), *msgs, *state;
	struct admin_file f;
	double total = 0, count = 0;
	const char *queue;
	int64_t arrival;

	cJSON_AddBoolToObject(a, "ok", 1);
	msgs = cJSON_AddArrayToObject(a, "messages");
	if (set->n > 0)
		qsort(set->v, set->n, sizeof(set->v[0]), admin_msg_cmp);
	for (size_t i = 0; i < set->n; i++) {
		const struct admin_msg *m = &set->v[i];

		if (admin_file_open(q, m, &f) < 0) {
			admin_file_close(&f); /* gone since the scan: not listed */
			continue;
		}
		state = m->loc == LOC_QUEUE || m->loc == LOC_HOLD || m->loc == LOC_DEAD
		            ? queue_state_read(q, m->id)
		            : NULL;
		queue = admin_queue_name(m, state, flt->now);
		arrival = f.valid ? f.env.received_at : (int64_t)f.st.st_mtime;
		if (admin_keep(flt, &f, queue, arrival)) {
			count++;
			total += f.valid ? (double)f.clen : (double)f.st.st_size;
			if (count <= ADMIN_LIST_MAX)
				cJSON_AddItemToArray(msgs,
				                     admin_entry(m, &f, queue, arrival, state));
		}
		cJSON_Delete(state);
		admin_file_close(&f);
	}
	cJSON_AddNumberToObject(a, "total_size", total);
	cJSON_AddNumberToObject(a, "count", count);
	cJSON_AddBoolToObject(a, "truncated", count > ADMIN_LIST_MAX);
	return a;
}

/* admin_age - an optional age bound of a list request into *out (-1 when absent); 0 or -1. */
static int admin_age(const cJSON *req, const char *key, double *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(req, key);

	*out = -1;
	if (it == NULL)
		return 0;
	if (!cJSON_IsNumber(it) || it->valuedouble < 0)
		return -1;
	*out = it->valuedouble;
	return 0;
}

/* admin_filter_parse - the filter of a list request; NULL, or an error answer. */
static cJSON *admin_filter_parse(const cJSON *req, struct admin_filter *flt)
{
	static const char *const queues[] = {"active",     "deferred", "hold",
	                                     "quarantine", "dead",     "corrupt"};
	static const char *const keys[] = {"sender", "recipient", "queue"};
	const char **vals[] = {&flt->sender, &flt->recipient, &flt->queue};
	size_t i;

	memset(flt, 0, sizeof(*flt));
	flt->now = (int64_t)time(NULL);
	for (i = 0; i < 3; i++) {
		const cJSON *it = cJSON_GetObjectItemCaseSensitive(req, keys[i]);

		if (it != NULL && !cJSON_IsString(it))
			return admin_error("\"%s\" must be a string", keys[i]);
		*vals[i] = it ? it->valuestring : NULL;
	}
	if (admin_age(req, "min_age", &flt->min_age) < 0 ||
	    admin_age(req, "max_age", &flt->max_age) < 0)
		return admin_error("\"min_age\" and \"max_age\" must be numbers of seconds");
	if (flt->queue == NULL)
		return NULL;
	for (i = 0; i < sizeof(queues) / sizeof(queues[0]); i++)
		if (strcmp(flt->queue, queues[i]) == 0)
			return NULL;
	return admin_error("unknown queue \"%.64s\" (active, deferred, hold, quarantine, dead, "
	                   "corrupt)",
	                   flt->queue);
}

/* admin_list - {"cmd":"list", filters...}. */
cJSON *admin_list(struct admin_conn *c, const struct admin_cmd *op, const cJSON *req)
{
	struct queue *q = c->q;
	struct admin_filter flt;
	struct admin_set set = {0};
	cJSON *a;
	int rc = 0;

	if ((a = admin_filter_parse(req, &flt)) != NULL)
		return a;
	if (flt.queue == NULL) {
		rc = admin_scan_dir(q, LOC_QUEUE, NULL, &set) < 0 ||
		     admin_scan_dir(q, LOC_HOLD, NULL, &set) < 0 ||
		     admin_scan_dir(q, LOC_DEAD, NULL, &set) < 0;
	} else if (strcmp(flt.queue, "active") == 0 || strcmp(flt.queue, "deferred") == 0) {
		rc = admin_scan_dir(q, LOC_QUEUE, NULL, &set);
	} else if (strcmp(flt.queue, "quarantine") == 0) {
		rc = admin_scan_quarantine(q, NULL, &set);
	} else {
		rc = admin_scan_dir(q,
		                    strcmp(flt.queue, "hold") == 0   ? LOC_HOLD
		                    : strcmp(flt.queue, "dead") == 0 ? LOC_DEAD
		                                                     : LOC_CORRUPT,
		                    NULL, &set);
	}
	a = rc != 0 ? admin_error("cannot read the spool: %s", strerror(errno))
	            : admin_list_set(q, &set, &flt);
	free(set.v);
	return a;
}

/* admin_quarantine_list - {"cmd":"quarantine-list","name":N?}. */
cJSON *admin_quarantine_list(struct admin_conn *c, const struct admin_cmd *op, const cJSON *req)
{
	struct queue *q = c->q;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
	struct admin_filter flt = {.min_age = -1, .max_age = -1, .now = (int64_t)time(NULL)};
	struct admin_set set = {0};
	cJSON *a;

	if (name != NULL && (!cJSON_IsString(name) || !spool_folder_name_ok(name->valuestring)))
		return admin_error("invalid quarantine name");
	if (admin_scan_quarantine(q, name ? name->valuestring : NULL, &set) < 0)
		a = admin_error("cannot read the quarantine: %s", strerror(errno));
	else
		a = admin_list_set(q, &set, &flt);
	free(set.v);
	return a;
}

/* admin_pread_all - read n bytes at off; 0 or -1. */
static int admin_pread_all(int fd, void *buf, size_t n, off_t off)
{
	size_t got = 0;
	ssize_t k;

	while (got < n) {
		k = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = EIO;
			return -1;
		}
		got += (size_t)k;
	}
	return 0;
}

/* admin_show_content - the first ADMIN_CONTENT_MAX bytes of the message, as text or base64. */
static int admin_show_content(cJSON *a, int fd, uint64_t len)
{
	size_t n = len > ADMIN_CONTENT_MAX ? ADMIN_CONTENT_MAX : (size_t)len, valid;
	unsigned char *buf = malloc(n + 1);
	char *b64;

	if (buf == NULL || admin_pread_all(fd, buf, n, 0) < 0) {
		free(buf);
		return -1;
	}
	valid = admin_utf8_valid(buf, n);
	/* The cut at the size limit may split a character: that is still text. */
	if (valid < n && len > n && n - valid < 4 && buf[valid] >= 0xC2 &&
	    admin_utf8_valid(buf + valid, n - valid) == 0)
		n = valid;
	if (valid == n) {
		buf[n] = '\0';
		cJSON_AddStringToObject(a, "content", (char *)buf);
		cJSON_AddStringToObject(a, "content_encoding", "text");
	} else {
		if ((b64 = admin_base64(buf, n)) == NULL) {
			free(buf);
			return -1;
		}
		cJSON_AddStringToObject(a, "content", b64);
		cJSON_AddStringToObject(a, "content_encoding", "base64");
		free(b64);
	}
	cJSON_AddBoolToObject(a, "truncated", len > n);
	free(buf);
	return 0;
}

/* admin_show_envelope - the envelope as stored: the JSON between content and trailer. */
static cJSON *admin_show_envelope(const struct admin_file *f)
{
	size_t elen = (size_t)((uint64_t)f->st.st_size - f->clen - SPOOL_TRAILER_LEN);
	char *text = malloc(elen);
	cJSON *env = NULL;

	if (text != NULL && admin_pread_all(f->fd, text, elen, (off_t)f->clen) == 0)
		env = cJSON_ParseWithLength(text, elen);
	free(text);
	return env;
}

/* admin_show - {"cmd":"show","id":ID}. */
cJSON *admin_show(struct admin_conn *c, const struct admin_cmd *op, const cJSON *req)
{
	struct queue *q = c->q;
	const char *id = admin_str(req, "id");
	struct admin_file f;
	struct admin_msg m;
	cJSON *a, *state = NULL, *env = NULL;
	int64_t arrival;

	if (id == NULL || !spool_id_valid(id))
		return admin_error("invalid queue id");
	if (admin_locate(q, id, &m) < 0)
		return admin_error("%s: no such message", id);
	if (admin_file_open(q, &m, &f) < 0) {
		a = admin_error("%s: %s", id, strerror(errno));
		admin_file_close(&f);
		return a;
	}
	if (m.loc == LOC_QUEUE || m.loc == LOC_HOLD || m.loc == LOC_DEAD)
		state = queue_state_read(q, id);
	if (f.valid)
		env = admin_show_envelope(&f);
	arrival = f.valid ? f.env.received_at : (int64_t)f.st.st_mtime;
	a = cJSON_CreateObject();
	cJSON_AddBoolToObject(a, "ok", 1);
	cJSON_AddStringToObject(a, "id", id);
	cJSON_AddStringToObject(a, "queue", admin_queue_name(&m, state, (int64_t)time(NULL)));
	if (m.loc == LOC_QUARANTINE)
		cJSON_AddStringToObject(a, "quarantine", m.qname);
	cJSON_AddNumberToObject(a, "size", f.valid ? (double)f.clen : (double)f.st.st_size);
	cJSON_AddNumberToObject(a, "arrival", (double)arrival);
	if (admin_hold_reason(&m, &f, state) != NULL)
		cJSON_AddStringToObject(a, "hold_reason", admin_hold_reason(&m, &f, state));
	cJSON_AddItemToObject(a, "envelope", env ? env : cJSON_CreateNull());
	cJSON_AddItemToObject(a, "state", state ? state : cJSON_CreateNull());
	/* A corrupt file has no trusted boundary: show its first bytes as they are.
	 */
	if (admin_show_content(a, f.fd, f.valid ? f.clen : (uint64_t)f.st.st_size) < 0) {
		cJSON_Delete(a);
		a = admin_error("%s: cannot read the message: %s", id, strerror(errno));
	}
	admin_file_close(&f);
	return a;
}
