/*
 * queue_admin.c - vsmtpctl's requests, served by the queue process.
 *
 * The master accepts a connection on the control socket, checks the peer's
 * credentials and hands the descriptor over. Here the connection carries one
 * request, a JSON object on one line, and one answer, a JSON object and a
 * newline; then it is closed. The queue is the spool's only writer, so
 * whatever lists, moves or removes a message is done here, and the delivery
 * worker hears of it (withdraw, announce, flush) through queue_delivery.c.
 * docs/architecture.md describes the requests and the answers.
 *
 * A request runs to completion on the event loop: listing a large queue
 * reads every envelope at once, which delays commits for that moment.
 * Strings in an answer are valid UTF-8: invalid bytes in envelopes, states
 * or replies become '?', and a message whose text is not UTF-8 is sent in
 * base64.
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
#include "queue_internal.h"
#include "spool.h"

#define ADMIN_REQUEST_MAX (64u * 1024) /* bytes of a request line */
#define ADMIN_TIMEOUT_SEC 10           /* for the request, and for each write of the answer */
#define ADMIN_CONTENT_MAX (1u << 20)   /* bytes of message text in a "show" answer */
#define ADMIN_LIST_MAX 100000          /* messages in a list answer (count covers all) */

/* Where a message file is. */
enum admin_loc { LOC_QUEUE, LOC_HOLD, LOC_DEAD, LOC_QUARANTINE, LOC_CORRUPT, LOC_COUNT };

static const char *const admin_loc_dir[LOC_COUNT] = {SPOOL_QUEUE, SPOOL_HOLD, SPOOL_DEAD,
                                                       SPOOL_QUARANTINE, SPOOL_CORRUPT};

/* One vsmtpctl connection. */
struct admin_conn {
	struct queue *q;
	struct bufferevent *bev;
	long uid; /* the peer's, -1 when unknown */
	int answered;
};

/* A message file found in the spool. */
struct admin_msg {
	char id[SPOOL_ID_LEN + 1];
	enum admin_loc loc;
	char qname[SPOOL_FOLDER_NAME_MAX + 1]; /* the quarantine, for LOC_QUARANTINE */
};

/* A growing set of them. */
struct admin_set {
	struct admin_msg *v;
	size_t n, cap;
};

/* What a list keeps. */
struct admin_filter {
	const char *sender, *recipient; /* substrings, case-insensitive; NULL: any */
	const char *queue;              /* "active", "deferred", ...; NULL: queue, hold and dead */
	double min_age, max_age;        /* seconds; -1: no bound */
	int64_t now;
};

/* A message file, opened and checked. */
struct admin_file {
	int fd;
	struct stat st;
	int valid; /* trailer and envelope good: env and clen are set */
	struct envelope env;
	uint64_t clen;
};

/* A command that takes ids: its request name, what the log says, the work. */
struct admin_op {
	const char *cmd;
	const char *done;
	int (*fn)(struct queue *q, const char *id, const char *qname, char *err, size_t errlen);
};

/* ---- spool access ---- */

/* admin_dir_open - the directory of a location, or -1 with errno. */
static int admin_dir_open(struct queue *q, enum admin_loc loc, const char *qname)
{
	char path[sizeof(SPOOL_QUARANTINE) + SPOOL_FOLDER_NAME_MAX + 2];

	if (loc == LOC_QUARANTINE) {
		/* qname passed spool_folder_name_ok: one safe path component. */
		if (qname == NULL || !spool_folder_name_ok(qname)) {
			errno = EINVAL;
			return -1;
		}
		snprintf(path, sizeof(path), "%s/%s", SPOOL_QUARANTINE, qname);
	} else {
		snprintf(path, sizeof(path), "%s", admin_loc_dir[loc]);
	}
	return openat(q->spool_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* admin_exists - whether loc holds a regular file id. */
static int admin_exists(struct queue *q, enum admin_loc loc, const char *qname, const char *id)
{
	struct stat st;
	int dir = admin_dir_open(q, loc, qname), found;

	if (dir < 0)
		return 0;
	found = fstatat(dir, id, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	close(dir);
	return found;
}

/* admin_set_add - append a message to a set; 0 or -1. */
static int admin_set_add(struct admin_set *set, const char *id, enum admin_loc loc,
                           const char *qname)
{
	struct admin_msg *m;

	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 64;

		if ((m = realloc(set->v, cap * sizeof(*m))) == NULL)
			return -1;
		set->v = m;
		set->cap = cap;
	}
	m = &set->v[set->n++];
	memcpy(m->id, id, sizeof(m->id));
	m->loc = loc;
	snprintf(m->qname, sizeof(m->qname), "%s", qname ? qname : "");
	return 0;
}

/* admin_scan_dir - add every message file of one location; a missing directory is empty. */
static int admin_scan_dir(struct queue *q, enum admin_loc loc, const char *qname,
                            struct admin_set *set)
{
	struct dirent *de;
	DIR *d;
	int fd = admin_dir_open(q, loc, qname), rc = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL)
		if (spool_id_valid(de->d_name))
			rc = admin_set_add(set, de->d_name, loc, qname);
	closedir(d);
	return rc;
}

/* admin_scan_quarantine - add the messages of quarantine name, or of every one (NULL). */
static int admin_scan_quarantine(struct queue *q, const char *name, struct admin_set *set)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if (name != NULL)
		return admin_scan_dir(q, LOC_QUARANTINE, name, set);
	if ((fd = openat(q->spool_fd, SPOOL_QUARANTINE,
	                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL)
		if (spool_folder_name_ok(de->d_name))
			rc = admin_scan_dir(q, LOC_QUARANTINE, de->d_name, set);
	closedir(d);
	return rc;
}

/* admin_locate - where id is: queue, hold, dead, a quarantine, corrupt. 0, or -1 if nowhere. */
static int admin_locate(struct queue *q, const char *id, struct admin_msg *m)
{
	struct admin_set set = {0};
	enum admin_loc loc;
	int rc = -1;

	memcpy(m->id, id, sizeof(m->id));
	m->qname[0] = '\0';
	for (loc = LOC_QUEUE; loc < LOC_COUNT; loc++) {
		if (loc == LOC_QUARANTINE)
			continue;
		if (admin_exists(q, loc, NULL, id)) {
			m->loc = loc;
			return 0;
		}
	}
	if (admin_scan_quarantine(q, NULL, &set) == 0)
		for (size_t i = 0; i < set.n; i++)
			if (strcmp(set.v[i].id, id) == 0) {
				*m = set.v[i];
				rc = 0;
				break;
			}
	free(set.v);
	return rc;
}

/* admin_file_open - open a message file and check it; 0, or -1 with errno. */
static int admin_file_open(struct queue *q, const struct admin_msg *m, struct admin_file *f)
{
	int dir = admin_dir_open(q, m->loc, m->qname);

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	if (dir < 0)
		return -1;
	f->fd = openat(dir, m->id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	close(dir);
	if (f->fd < 0 || fstat(f->fd, &f->st) < 0)
		return -1;
	f->valid = spool_message_read(f->fd, &f->env, &f->clen) == 0;
	return 0;
}

/* admin_file_close - release what admin_file_open took. */
static void admin_file_close(struct admin_file *f)
{
	envelope_clear(&f->env);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* admin_move - rename id between locations without replacing anything, durably. */
static int admin_move(struct queue *q, const struct admin_msg *from, enum admin_loc to,
                        const char *to_name)
{
	int src = admin_dir_open(q, from->loc, from->qname), dst = -1, err = 0;

	if (src < 0 || (dst = admin_dir_open(q, to, to_name)) < 0 ||
	    queue_file_move(src, dst, from->id) < 0)
		err = errno;
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
	errno = err;
	return err ? -1 : 0;
}

/* admin_unlink - remove id from its location, durably. */
static int admin_unlink(struct queue *q, const struct admin_msg *m)
{
	int dir = admin_dir_open(q, m->loc, m->qname), err = 0;

	if (dir < 0)
		return -1;
	if (unlinkat(dir, m->id, 0) < 0 || fsync(dir) < 0)
		err = errno;
	close(dir);
	errno = err;
	return err ? -1 : 0;
}

/* ---- JSON helpers ---- */

/* admin_utf8_valid - the length of the longest valid UTF-8 prefix of s without NUL. */
static size_t admin_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k;
	uint32_t cp;

	while (i < n && s[i] != 0 && (k = utf8_char(s + i, n - i, &cp)) > 0)
		i += k;
	return i;
}

/* admin_utf8_fix - replace each byte that is not part of valid UTF-8 with '?', in place. */
static void admin_utf8_fix(char *s)
{
	size_t n = strlen(s), i = 0, k;
	uint32_t cp;

	while (i < n) {
		if ((k = utf8_char((const unsigned char *)s + i, n - i, &cp)) == 0) {
			s[i++] = '?';
			continue;
		}
		i += k;
	}
}

/* admin_json_fix - make every string and key of a tree valid UTF-8. */
static void admin_json_fix(cJSON *item)
{
	for (; item != NULL; item = item->next) {
		if (item->string != NULL)
			admin_utf8_fix(item->string);
		if (cJSON_IsString(item) && item->valuestring != NULL)
			admin_utf8_fix(item->valuestring);
		admin_json_fix(item->child);
	}
}

/* admin_base64 - RFC 4648 base64 of n bytes; malloc'ed, NULL without memory. */
static char *admin_base64(const unsigned char *in, size_t n)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *p = out;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		*p++ = abc[v >> 18];
		*p++ = abc[(v >> 12) & 63];
		*p++ = abc[(v >> 6) & 63];
		*p++ = abc[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);

		*p++ = abc[v >> 18];
		*p++ = abc[(v >> 12) & 63];
		*p++ = i + 1 < n ? abc[(v >> 6) & 63] : '=';
		*p++ = '=';
	}
	*p = '\0';
	return out;
}

/* admin_str - a string member of obj, NULL when absent or not a string. */
static const char *admin_str(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* admin_num - a number member of obj, dflt when absent or not a number. */
static double admin_num(const cJSON *obj, const char *key, double dflt)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(it) ? it->valuedouble : dflt;
}

/* admin_set_num - obj[key] = v, replacing whatever was there. */
static void admin_set_num(cJSON *obj, const char *key, double v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	cJSON_AddNumberToObject(obj, key, v);
}

/* admin_error - a failed answer {"ok":false,"error":text}. */
static cJSON *admin_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static cJSON *admin_error(const char *fmt, ...)
{
	cJSON *a = cJSON_CreateObject();
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	cJSON_AddBoolToObject(a, "ok", 0);
	cJSON_AddStringToObject(a, "error", text);
	return a;
}

/* ---- delivery state ---- */

/* admin_status_final - whether a recipient status is an end: sent, failed, none. */
static int admin_status_final(const char *status)
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

/* admin_state_sync - make state/<id> durable: queue_state_write does not sync. */
static int admin_state_sync(struct queue *q, const char *id)
{
	int fd = openat(q->state_fd, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), err = 0;

	if (fd < 0)
		return errno;
	if (fsync(fd) < 0 || fsync(q->state_fd) < 0)
		err = errno;
	close(fd);
	return err;
}

/* admin_state_reset - requeue: non-final recipients pending, no attempts, postq again. */
static int admin_state_reset(struct queue *q, const char *id)
{
	cJSON *st = queue_state_read(q, id), *r;
	char *text;
	int err;

	if (st == NULL)
		return 0; /* never tried: everything is pending already */
	cJSON_DeleteItemFromObjectCaseSensitive(st, "postq");
	admin_set_num(st, "attempts", 0);
	admin_set_num(st, "next_attempt", 0);
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(st, "rcpts"))
	{
		if (!cJSON_IsObject(r) || admin_status_final(admin_str(r, "status")))
			continue;
		cJSON_DeleteItemFromObjectCaseSensitive(r, "status");
		cJSON_DeleteItemFromObjectCaseSensitive(r, "reply");
		cJSON_DeleteItemFromObjectCaseSensitive(r, "remote");
		cJSON_DeleteItemFromObjectCaseSensitive(r, "at");
		cJSON_AddStringToObject(r, "status", "pending");
	}
	text = cJSON_PrintUnformatted(st);
	cJSON_Delete(st);
	if (text == NULL)
		return ENOMEM;
	err = queue_state_write(q, id, text, strlen(text));
	free(text);
	return err ? err : admin_state_sync(q, id);
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
static int admin_keep(const struct admin_filter *flt, const struct admin_file *f,
                        const char *queue, int64_t arrival)
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

/* admin_entry - the list entry of an opened message. */
static cJSON *admin_entry(const struct admin_msg *m, const struct admin_file *f,
                            const char *queue, int64_t arrival, const cJSON *state)
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
static cJSON *admin_list_set(struct queue *q, struct admin_set *set,
                               const struct admin_filter *flt)
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
static cJSON *admin_list(struct queue *q, const cJSON *req)
{
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
static cJSON *admin_quarantine_list(struct queue *q, const cJSON *req)
{
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
static cJSON *admin_show(struct queue *q, const cJSON *req)
{
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

/* ---- commands on ids ---- */

/* admin_fail - a per-id error text; returns -1. */
static int admin_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int admin_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* admin_where - "in hold/" etc. for an error about a message found elsewhere. */
static const char *admin_where(const struct admin_msg *m, char *buf, size_t len)
{
	if (m->loc == LOC_QUARANTINE)
		snprintf(buf, len, "it is in %s/%s/", SPOOL_QUARANTINE, m->qname);
	else
		snprintf(buf, len, "it is in %s/", admin_loc_dir[m->loc]);
	return buf;
}

/* admin_remove_one - remove a message wherever it is, and its state. */
static int admin_remove_one(struct queue *q, const char *id, const char *qname, char *err,
                              size_t errlen)
{
	struct admin_msg m;

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc == LOC_QUEUE)
		queue_dlv_withdraw(q, id);
	if (admin_unlink(q, &m) < 0) {
		int e = errno;

		if (m.loc == LOC_QUEUE)
			queue_dlv_announce(q, id, 0);
		return admin_fail(err, errlen, "cannot remove: %s", strerror(e));
	}
	/* The message first: a crash in between leaves a state without a
	 * message, never a message that would be delivered again as new. */
	if (m.loc == LOC_QUEUE || m.loc == LOC_HOLD || m.loc == LOC_DEAD)
		queue_state_remove(q, id);
	return 0;
}

/* admin_hold_one - queue/ID -> hold/ID: not delivered until released. */
static int admin_hold_one(struct queue *q, const char *id, const char *qname, char *err,
                            size_t errlen)
{
	struct admin_msg m;
	char where[200];

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc == LOC_HOLD)
		return admin_fail(err, errlen, "already held");
	if (m.loc != LOC_QUEUE)
		return admin_fail(err, errlen, "not in the queue: %s",
		                    admin_where(&m, where, sizeof(where)));
	queue_dlv_withdraw(q, id);
	if (admin_move(q, &m, LOC_HOLD, NULL) < 0) {
		int e = errno;
		cJSON *st = queue_state_read(q, id);

		queue_dlv_announce(q, id, st ? queue_state_next(st) : 0);
		cJSON_Delete(st);
		return admin_fail(err, errlen, "cannot move to %s/: %s", SPOOL_HOLD, strerror(e));
	}
	return 0;
}

/* admin_release_one - hold/ID -> queue/ID, due now. */
static int admin_release_one(struct queue *q, const char *id, const char *qname, char *err,
                               size_t errlen)
{
	struct admin_msg m;
	char where[200];

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc != LOC_HOLD)
		return admin_fail(err, errlen, "not held: %s",
		                    admin_where(&m, where, sizeof(where)));
	if (admin_move(q, &m, LOC_QUEUE, NULL) < 0)
		return admin_fail(err, errlen, "cannot move to %s/: %s", SPOOL_QUEUE,
		                    strerror(errno));
	queue_dlv_announce(q, id, 0);
	return 0;
}

/* admin_flush_one - ask the worker to try a queued message now. */
static int admin_flush_one(struct queue *q, const char *id, const char *qname, char *err,
                             size_t errlen)
{
	struct admin_msg m;
	char where[200];

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc == LOC_HOLD)
		return admin_fail(err, errlen, "held: release it first");
	if (m.loc != LOC_QUEUE)
		return admin_fail(err, errlen, "not in the queue: %s",
		                    admin_where(&m, where, sizeof(where)));
	queue_dlv_flush(q, id);
	return 0;
}

/* admin_requeue_one - forget the attempts: the postq and delivery rules run again. */
static int admin_requeue_one(struct queue *q, const char *id, const char *qname, char *err,
                               size_t errlen)
{
	struct admin_msg m;
	char where[200];
	int e;

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc != LOC_QUEUE && m.loc != LOC_HOLD)
		return admin_fail(err, errlen, "not in the queue: %s",
		                    admin_where(&m, where, sizeof(where)));
	if ((e = admin_state_reset(q, id)) != 0)
		return admin_fail(err, errlen, "cannot rewrite its state: %s", strerror(e));
	/* A held message keeps waiting for its release. */
	if (m.loc == LOC_QUEUE) {
		queue_dlv_withdraw(q, id);
		queue_dlv_announce(q, id, 0);
	}
	return 0;
}

/* admin_qrelease_one - quarantine/N/ID -> queue/ID, marked released, due now. */
static int admin_qrelease_one(struct queue *q, const char *id, const char *qname, char *err,
                                size_t errlen)
{
	static const char released[] = "{\"released\":1}";
	struct admin_msg m = {.loc = LOC_QUARANTINE};
	int e;

	memcpy(m.id, id, sizeof(m.id));
	snprintf(m.qname, sizeof(m.qname), "%s", qname);
	if (!admin_exists(q, LOC_QUARANTINE, qname, id))
		return admin_fail(err, errlen, "no such message in quarantine %s", qname);
	if (admin_exists(q, LOC_QUEUE, NULL, id))
		return admin_fail(err, errlen, "a message with this id is in the queue already");
	/* The state first: the worker must never see the message without
	 * "released", or its rules would quarantine it again. */
	if ((e = queue_state_write(q, id, released, sizeof(released) - 1)) != 0 ||
	    (e = admin_state_sync(q, id)) != 0) {
		queue_state_remove(q, id);
		return admin_fail(err, errlen, "cannot write its state: %s", strerror(e));
	}
	if (admin_move(q, &m, LOC_QUEUE, NULL) < 0) {
		e = errno;
		queue_state_remove(q, id);
		return admin_fail(err, errlen, "cannot move to %s/: %s", SPOOL_QUEUE,
		                    strerror(e));
	}
	queue_dlv_announce(q, id, 0);
	return 0;
}

/* admin_qremove_one - remove quarantine/N/ID. */
static int admin_qremove_one(struct queue *q, const char *id, const char *qname, char *err,
                               size_t errlen)
{
	struct admin_msg m = {.loc = LOC_QUARANTINE};

	memcpy(m.id, id, sizeof(m.id));
	snprintf(m.qname, sizeof(m.qname), "%s", qname);
	if (!admin_exists(q, LOC_QUARANTINE, qname, id))
		return admin_fail(err, errlen, "no such message in quarantine %s", qname);
	if (admin_unlink(q, &m) < 0)
		return admin_fail(err, errlen, "cannot remove: %s", strerror(errno));
	return 0;
}

static const struct admin_op admin_ops[] = {
    {"remove", "removed", admin_remove_one},
    {"hold", "held", admin_hold_one},
    {"release", "released", admin_release_one},
    {"flush", "flushed", admin_flush_one},
    {"requeue", "requeued", admin_requeue_one},
    {"quarantine-release", "released", admin_qrelease_one},
    {"quarantine-remove", "removed", admin_qremove_one},
};

/* admin_each_id - run op on every id of the request; one result per id. */
static cJSON *admin_each_id(struct admin_conn *c, const struct admin_op *op, const cJSON *req)
{
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(req, "ids"), *it;
	const char *qname = NULL;
	char err[512], from[SPOOL_FOLDER_NAME_MAX + 32] = "";
	unsigned failed = 0, total = 0;
	cJSON *a, *results, *r;

	if (strncmp(op->cmd, "quarantine-", 11) == 0) {
		qname = admin_str(req, "name");
		if (qname == NULL || !spool_folder_name_ok(qname))
			return admin_error("invalid quarantine name");
		snprintf(from, sizeof(from), " from quarantine %s", qname);
	}
	if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) == 0)
		return admin_error("%s needs \"ids\": an array of queue ids", op->cmd);
	a = cJSON_CreateObject();
	cJSON_AddBoolToObject(a, "ok", 1);
	results = cJSON_AddArrayToObject(a, "results");
	cJSON_ArrayForEach(it, ids)
	{
		const char *id = cJSON_IsString(it) ? it->valuestring : "";

		total++;
		r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "id", id);
		/* Only a valid id is ever used in a path. */
		if (!spool_id_valid(id))
			admin_fail(err, sizeof(err), "invalid queue id");
		if (!spool_id_valid(id) || op->fn(c->q, id, qname, err, sizeof(err)) < 0) {
			failed++;
			cJSON_AddBoolToObject(r, "ok", 0);
			cJSON_AddStringToObject(r, "error", err);
			if (spool_id_valid(id))
				log_notice("control: uid %ld cannot %s %s%s: %s", c->uid, op->cmd,
				           id, from, err);
		} else {
			cJSON_AddBoolToObject(r, "ok", 1);
			log_info("control: uid %ld %s %s%s", c->uid, op->done, id, from);
		}
		cJSON_AddItemToArray(results, r);
	}
	if (failed > 0) {
		char text[128];

		snprintf(text, sizeof(text), "%s failed for %u of %u messages", op->cmd, failed,
		         total);
		cJSON_ReplaceItemInObjectCaseSensitive(a, "ok", cJSON_CreateBool(0));
		cJSON_AddStringToObject(a, "error", text);
	}
	return a;
}

/* admin_flush_all - {"cmd":"flush"} without ids: every deferred message, now. */
static cJSON *admin_flush_all(struct admin_conn *c)
{
	cJSON *a = cJSON_CreateObject();

	queue_dlv_flush(c->q, NULL);
	log_info("control: uid %ld flushed the queue", c->uid);
	cJSON_AddBoolToObject(a, "ok", 1);
	cJSON_AddArrayToObject(a, "results");
	return a;
}

/* admin_dispatch - the answer to one request. */
static cJSON *admin_dispatch(struct admin_conn *c, const cJSON *req)
{
	const char *cmd = admin_str(req, "cmd");
	size_t i;

	if (!cJSON_IsObject(req))
		return admin_error("the request is not a JSON object");
	if (cmd == NULL)
		return admin_error("the request has no \"cmd\" string");
	if (strcmp(cmd, "list") == 0)
		return admin_list(c->q, req);
	if (strcmp(cmd, "show") == 0)
		return admin_show(c->q, req);
	if (strcmp(cmd, "quarantine-list") == 0)
		return admin_quarantine_list(c->q, req);
	if (strcmp(cmd, "flush") == 0 && cJSON_GetObjectItemCaseSensitive(req, "ids") == NULL)
		return admin_flush_all(c);
	for (i = 0; i < sizeof(admin_ops) / sizeof(admin_ops[0]); i++)
		if (strcmp(cmd, admin_ops[i].cmd) == 0)
			return admin_each_id(c, &admin_ops[i], req);
	return admin_error("unknown command \"%.64s\"", cmd);
}

/* ---- the connection ---- */

/* admin_conn_free - close the connection. */
static void admin_conn_free(struct admin_conn *c)
{
	bufferevent_free(c->bev);
	free(c);
}

/* admin_answer - send the answer (takes it), then close once it is written. */
static void admin_answer(struct admin_conn *c, cJSON *a)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char *text;

	c->answered = 1;
	bufferevent_disable(c->bev, EV_READ);
	if (a == NULL) {
		admin_conn_free(c);
		return;
	}
	admin_json_fix(a);
	text = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	if (text == NULL || evbuffer_add(out, text, strlen(text)) < 0 ||
	    evbuffer_add(out, "\n", 1) < 0) {
		log_err("control: uid %ld: cannot build the answer", c->uid);
		free(text);
		admin_conn_free(c);
		return;
	}
	free(text);
	/* The write callback runs once the output buffer is empty. */
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_enable(c->bev, EV_WRITE);
}

/* admin_request - parse and run one request line. */
static void admin_request(struct admin_conn *c, const char *line, size_t len)
{
	cJSON *req = cJSON_ParseWithLength(line, len);

	if (req == NULL) {
		admin_answer(c, admin_error("the request is not valid JSON"));
		return;
	}
	admin_answer(c, admin_dispatch(c, req));
	cJSON_Delete(req);
}

/* admin_take_line - the request line from the input, at end of file the rest; 1 when run. */
static int admin_take_line(struct admin_conn *c, int at_eof)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t eol_len = 0, len;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	char *line;

	len = p.pos >= 0 ? (size_t)p.pos : evbuffer_get_length(in);
	if (len > ADMIN_REQUEST_MAX) {
		admin_answer(c,
		               admin_error("request longer than %u bytes", ADMIN_REQUEST_MAX));
		return 1;
	}
	if (p.pos < 0 && (!at_eof || len == 0))
		return 0;
	if ((line = malloc(len + 1)) == NULL) {
		admin_answer(c, admin_error("out of memory"));
		return 1;
	}
	evbuffer_remove(in, line, len);
	line[len] = '\0';
	admin_request(c, line, len);
	free(line);
	return 1;
}

/* admin_read_cb - request bytes arrived. */
static void admin_read_cb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;

	if (!c->answered)
		admin_take_line(c, 0);
}

/* admin_write_cb - the answer is out: done. */
static void admin_write_cb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;

	if (c->answered)
		admin_conn_free(c);
}

/* admin_event_cb - end of file, an error or a timeout. */
static void admin_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct admin_conn *c = arg;

	if (!c->answered && (what & BEV_EVENT_EOF) && admin_take_line(c, 1))
		return; /* a request without its newline: answered all the same */
	if ((what & BEV_EVENT_TIMEOUT) && !c->answered) {
		log_notice("control: uid %ld: no complete request within %d s", c->uid,
		           ADMIN_TIMEOUT_SEC);
		admin_answer(
		    c, admin_error("no complete request within %d s", ADMIN_TIMEOUT_SEC));
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_notice("control: uid %ld: the answer was not read within %d s: dropped", c->uid,
		           ADMIN_TIMEOUT_SEC);
	admin_conn_free(c);
}

/* admin_peer_uid - the uid of the process at the other end of a Unix socket, -1 if unknown. */
static long admin_peer_uid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
		return -1;
	return (long)cred.uid;
}

/* queue_admin_client - serve one vsmtpctl connection handed over by the master. */
void queue_admin_client(struct queue *q, int fd)
{
	struct timeval tv = {ADMIN_TIMEOUT_SEC, 0};
	struct admin_conn *c = calloc(1, sizeof(*c));

	if (c == NULL || evutil_make_socket_nonblocking(fd) < 0 ||
	    (c->bev = bufferevent_socket_new(q->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_err("control: cannot serve a vsmtpctl connection");
		free(c);
		close(fd);
		return;
	}
	c->q = q;
	c->uid = admin_peer_uid(fd);
	/* One byte past the limit is enough to tell a request is too long. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_REQUEST_MAX + 1);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_setcb(c->bev, admin_read_cb, admin_write_cb, admin_event_cb, c);
	bufferevent_enable(c->bev, EV_READ);
}
