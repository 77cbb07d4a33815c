/*
 * queue_admin.c - vsmtpctl's requests, served by the queue process: the
 * connection, the request, the table of commands and their dispatch, with
 * the spool access and JSON helpers the commands share. The commands that
 * read are in queue_admin_list.c, those that move or remove messages in
 * queue_admin_move.c.
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
#include "queue_admin_internal.h"
#include "queue_internal.h"
#include "spool.h"

#define ADMIN_REQUEST_MAX (64u * 1024) /* bytes of a request line */
#define ADMIN_TIMEOUT_SEC 10           /* for the request, and for each write of the answer */

const char *const admin_loc_dir[LOC_COUNT] = {SPOOL_QUEUE, SPOOL_HOLD, SPOOL_DEAD, SPOOL_QUARANTINE,
                                              SPOOL_CORRUPT};

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
int admin_exists(struct queue *q, enum admin_loc loc, const char *qname, const char *id)
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
int admin_scan_dir(struct queue *q, enum admin_loc loc, const char *qname, struct admin_set *set)
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
int admin_scan_quarantine(struct queue *q, const char *name, struct admin_set *set)
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
int admin_locate(struct queue *q, const char *id, struct admin_msg *m)
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
int admin_file_open(struct queue *q, const struct admin_msg *m, struct admin_file *f)
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
void admin_file_close(struct admin_file *f)
{
	envelope_clear(&f->env);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* admin_move - rename id between locations without replacing anything, durably. */
int admin_move(struct queue *q, const struct admin_msg *from, enum admin_loc to,
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
int admin_unlink(struct queue *q, const struct admin_msg *m)
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
size_t admin_utf8_valid(const unsigned char *s, size_t n)
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
char *admin_base64(const unsigned char *in, size_t n)
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
const char *admin_str(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* admin_num - a number member of obj, dflt when absent or not a number. */
double admin_num(const cJSON *obj, const char *key, double dflt)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(it) ? it->valuedouble : dflt;
}

/* admin_set_num - obj[key] = v, replacing whatever was there. */
void admin_set_num(cJSON *obj, const char *key, double v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	cJSON_AddNumberToObject(obj, key, v);
}

/* admin_error - a failed answer {"ok":false,"error":text}. */
cJSON *admin_error(const char *fmt, ...)
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

/* admin_each_id - run op on every id of the request; one result per id. */
static cJSON *admin_each_id(struct admin_conn *c, const struct admin_cmd *op, const cJSON *req)
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

/* admin_flush - {"cmd":"flush"}: the ids given, or without ids every deferred message. */
static cJSON *admin_flush(struct admin_conn *c, const struct admin_cmd *op, const cJSON *req)
{
	if (cJSON_GetObjectItemCaseSensitive(req, "ids") == NULL)
		return admin_flush_all(c);
	return admin_each_id(c, op, req);
}

/* Every command of a request, with its handler. */
static const struct admin_cmd admin_cmds[] = {
    {"list", admin_list, NULL, NULL},
    {"show", admin_show, NULL, NULL},
    {"quarantine-list", admin_quarantine_list, NULL, NULL},
    {"flush", admin_flush, "flushed", admin_flush_one},
    {"remove", admin_each_id, "removed", admin_remove_one},
    {"hold", admin_each_id, "held", admin_hold_one},
    {"release", admin_each_id, "released", admin_release_one},
    {"requeue", admin_each_id, "requeued", admin_requeue_one},
    {"quarantine-release", admin_each_id, "released", admin_qrelease_one},
    {"quarantine-remove", admin_each_id, "removed", admin_qremove_one},
};

/* admin_dispatch - the answer to one request. */
static cJSON *admin_dispatch(struct admin_conn *c, const cJSON *req)
{
	const char *cmd = admin_str(req, "cmd");
	size_t i;

	if (!cJSON_IsObject(req))
		return admin_error("the request is not a JSON object");
	if (cmd == NULL)
		return admin_error("the request has no \"cmd\" string");
	for (i = 0; i < sizeof(admin_cmds) / sizeof(admin_cmds[0]); i++)
		if (strcmp(cmd, admin_cmds[i].cmd) == 0)
			return admin_cmds[i].run(c, &admin_cmds[i], req);
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
		admin_answer(c, admin_error("request longer than %u bytes", ADMIN_REQUEST_MAX));
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
		admin_answer(c, admin_error("no complete request within %d s", ADMIN_TIMEOUT_SEC));
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
