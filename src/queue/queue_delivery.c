/*
 * queue_delivery.c - the queue process's side of the delivery channel.
 *
 * The delivery worker keeps the schedule; the queue keeps the files. The
 * queue tells the worker which messages are in queue/ ("queued", on commit
 * and whenever a worker connects), hands it a message and its state when it
 * asks ("open"), stores the state it sends back after each attempt
 * ("state"), and removes or moves a message once the worker is done with it
 * ("done", "move"). Messages the worker creates (bounces) go through an
 * ordinary session channel and the group commit, like received mail. Each
 * worker also gets a scoreboard, which tells the queue what a worker that
 * died was working on (queue_suspect.c).
 *
 * State files are written with a rename but not fsynced: losing the latest
 * one in a crash means some recipients are tried again (at least once),
 * never that one is lost, and it spares a flush per delivery.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ipc.h"
#include "log.h"
#include "queue_internal.h"

#define QUEUE_STATE_MAX (4u << 20) /* bytes of a state file, at most */

/* queue_dlv_send - send one operation to the worker, if there is one. */
static void queue_dlv_send(struct queue *q, cJSON *msg, const int *fds, size_t nfds)
{
	if (msg == NULL) {
		log_err("out of memory talking to the delivery worker");
		return;
	}
	if (q->dlv_out != NULL && ipc_outq_json(q->dlv_out, msg, fds, nfds) < 0 && errno != EPIPE &&
	    errno != ECONNRESET)
		log_err("cannot talk to the delivery worker: %s", strerror(errno));
	cJSON_Delete(msg);
}

/* queue_dlv_op - a new operation object {"op": op, "id": id}. */
static cJSON *queue_dlv_op(const char *op, const char *id)
{
	cJSON *msg = cJSON_CreateObject();

	if (msg == NULL || cJSON_AddStringToObject(msg, "op", op) == NULL ||
	    (id != NULL && cJSON_AddStringToObject(msg, "id", id) == NULL)) {
		cJSON_Delete(msg);
		return NULL;
	}
	return msg;
}

/* queue_dlv_announce - "queued": queue/<id> waits for delivery. */
void queue_dlv_announce(struct queue *q, const char *id, int64_t next)
{
	cJSON *msg;

	if (q->dlv_fd < 0)
		return;
	msg = queue_dlv_op("queued", id);
	if (msg != NULL && next > 0 && cJSON_AddNumberToObject(msg, "next", (double)next) == NULL) {
		cJSON_Delete(msg);
		msg = NULL;
	}
	queue_dlv_send(q, msg, NULL, 0);
}

/* queue_dlv_withdraw - "withdraw": forget id. */
void queue_dlv_withdraw(struct queue *q, const char *id)
{
	if (q->dlv_fd >= 0)
		queue_dlv_send(q, queue_dlv_op("withdraw", id), NULL, 0);
}

/* queue_dlv_flush - "flush": try id, or everything, now. */
void queue_dlv_flush(struct queue *q, const char *id)
{
	if (q->dlv_fd >= 0)
		queue_dlv_send(q, queue_dlv_op("flush", id), NULL, 0);
}

/* queue_state_next - next_attempt of a state, 0 when absent. */
int64_t queue_state_next(const cJSON *state)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(state, "next_attempt");

	return cJSON_IsNumber(n) && n->valuedouble > 0 ? (int64_t)n->valuedouble : 0;
}

/* queue_read_fd - all of fd (at most max bytes) into a NUL-terminated buffer. */
static char *queue_read_fd(int fd, size_t max, size_t *len)
{
	struct stat st;
	char *buf;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return NULL;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		errno = EFBIG;
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		return NULL;
	n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n != (ssize_t)st.st_size) {
		free(buf);
		errno = n < 0 ? errno : EIO;
		return NULL;
	}
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* queue_state_read - parse state/<id>. */
cJSON *queue_state_read(struct queue *q, const char *id)
{
	int fd = openat(q->state_fd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	cJSON *state = NULL;
	char *text;
	size_t len;

	if (fd < 0)
		return NULL;
	if ((text = queue_read_fd(fd, QUEUE_STATE_MAX, &len)) != NULL) {
		state = cJSON_ParseWithLength(text, len);
		if (state != NULL && !cJSON_IsObject(state)) {
			cJSON_Delete(state);
			state = NULL;
		}
		if (state == NULL)
			log_warn("%s: delivery state does not parse: ignored", id);
		free(text);
	}
	close(fd);
	return state;
}

/* queue_state_write - state/<id>.tmp, then renamed over state/<id>. */
int queue_state_write(struct queue *q, const char *id, const char *text, size_t len)
{
	char tmp[SPOOL_ID_LEN + 8];
	int fd, err = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", id);
	fd = openat(q->state_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errno;
	if (write(fd, text, len) != (ssize_t)len)
		err = errno ? errno : EIO;
	if (close(fd) < 0 && err == 0)
		err = errno;
	if (err == 0 && renameat(q->state_fd, tmp, q->state_fd, id) < 0)
		err = errno;
	if (err != 0)
		unlinkat(q->state_fd, tmp, 0);
	return err;
}

/* queue_state_sync - fsync state/<id> and state/. */
int queue_state_sync(struct queue *q, const char *id)
{
	int fd = openat(q->state_fd, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), err = 0;

	if (fd < 0)
		return errno;
	if (fsync(fd) < 0 || fsync(q->state_fd) < 0)
		err = errno;
	close(fd);
	return err;
}

/* queue_state_remove - drop state/<id>. */
void queue_state_remove(struct queue *q, const char *id)
{
	if (unlinkat(q->state_fd, id, 0) < 0 && errno != ENOENT)
		log_warn("%s: cannot remove its delivery state: %s", id, strerror(errno));
}

/* queue_dlv_queued - whether queue/<id> exists: the worker may speak of a
 * message an administrator has just held or removed. */
static int queue_dlv_queued(struct queue *q, const char *id)
{
	return faccessat(q->queue_fd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* queue_dlv_open - "open": send the worker the message file and its state. */
static void queue_dlv_open(struct queue *q, const char *id)
{
	int fds[2] = {-1, -1};
	size_t nfds = 0;
	cJSON *msg = queue_dlv_op("opened", id);

	fds[0] = openat(q->queue_fd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fds[0] < 0) {
		if (msg != NULL)
			cJSON_AddNumberToObject(msg, "error", errno);
	} else {
		nfds = 1;
		fds[1] = openat(q->state_fd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fds[1] >= 0)
			nfds = 2;
	}
	queue_dlv_send(q, msg, fds, nfds);
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
}

/* queue_dlv_state - "state": store the state the worker wrote into fd. */
static void queue_dlv_state(struct queue *q, const char *id, int fd)
{
	char *text;
	size_t len;
	cJSON *check;
	int err;

	if (fd < 0) {
		log_err("%s: delivery state without its file", id);
		return;
	}
	if (!queue_dlv_queued(q, id))
		return;
	if ((text = queue_read_fd(fd, QUEUE_STATE_MAX, &len)) == NULL) {
		log_err("%s: cannot read the delivery state: %s", id, strerror(errno));
		return;
	}
	/* The worker is trusted, but a state that does not parse would only
	 * be ignored later: better say so now. */
	if ((check = cJSON_ParseWithLength(text, len)) == NULL || !cJSON_IsObject(check))
		log_err("%s: the delivery worker sent a state that is no JSON object", id);
	else if ((err = queue_state_write(q, id, text, len)) != 0)
		log_err("%s: cannot write its delivery state: %s", id, strerror(err));
	cJSON_Delete(check);
	free(text);
}

/* queue_dlv_done - "done": every recipient has its outcome; remove the message. */
static void queue_dlv_done(struct queue *q, const char *id)
{
	if (unlinkat(q->queue_fd, id, 0) < 0) {
		if (errno != ENOENT)
			log_err("%s: cannot remove from %s/: %s", id, SPOOL_QUEUE, strerror(errno));
		return;
	}
	queue_state_remove(q, id);
}

/* queue_dlv_move - "move": to dead/, or to quarantine/<name>/. */
static void queue_dlv_move(struct queue *q, const char *id, const char *to, const char *name)
{
	int dir, own = 0;

	if (strcmp(to, "dead") == 0) {
		dir = q->dead_fd;
	} else if (strcmp(to, "quarantine") == 0 && name != NULL) {
		if ((dir = queue_quarantine_dir(q, name)) < 0) {
			log_err("%s: cannot open quarantine %s: %s", id, name, strerror(errno));
			return;
		}
		own = 1;
	} else {
		log_err("%s: the delivery worker asked for an unknown move to %s", id, to);
		return;
	}
	if (queue_file_move(q->queue_fd, dir, id) == 0)
		queue_state_remove(q, id);
	else if (errno != ENOENT)
		log_err("%s: cannot move to %s/: %s", id, to, strerror(errno));
	if (own)
		close(dir);
}

/* queue_dlv_hold - "move" to hold: the postq rules held it; its state came just before. */
static void queue_dlv_hold(struct queue *q, const char *id, const char *reason)
{
	cJSON *state;

	if (reason == NULL || !queue_hold_reason_ok(reason)) {
		log_err("%s: the delivery worker asked to hold it without a valid reason", id);
		return;
	}
	if ((state = queue_state_read(q, id)) == NULL)
		state = cJSON_CreateObject();
	if (state == NULL) {
		log_err("%s: out of memory holding it", id);
		return;
	}
	/* Held after the postq rules ran: a release does not run them again. */
	cJSON_DeleteItemFromObjectCaseSensitive(state, "postq");
	cJSON_AddNumberToObject(state, "postq", 1);
	queue_set_aside(q, id, state, reason);
	cJSON_Delete(state);
}

/* queue_dlv_op_open - "open" from the worker. */
static void queue_dlv_op_open(void *arg, const cJSON *msg, const char *id, int fds[IPC_FDS_MAX])
{
	queue_dlv_open(arg, id);
}

/* queue_dlv_op_state - "state" from the worker, with its file. */
static void queue_dlv_op_state(void *arg, const cJSON *msg, const char *id, int fds[IPC_FDS_MAX])
{
	queue_dlv_state(arg, id, fds[0]);
}

/* queue_dlv_op_done - "done" from the worker. */
static void queue_dlv_op_done(void *arg, const cJSON *msg, const char *id, int fds[IPC_FDS_MAX])
{
	queue_dlv_done(arg, id);
}

/* queue_dlv_op_move - "move" from the worker: "to", and "name" or (hold) "reason". */
static void queue_dlv_op_move(void *arg, const cJSON *msg, const char *id, int fds[IPC_FDS_MAX])
{
	const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "to")) ?: "";

	if (strcmp(to, "hold") == 0)
		queue_dlv_hold(arg, id,
			       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "reason")));
	else
		queue_dlv_move(arg, id, to,
			       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "name")));
}

/* The operations the worker sends; every one names a message. */
static const struct ipc_json_op queue_dlv_ops[] = {
	{"open", queue_dlv_op_open, 1},
	{"state", queue_dlv_op_state, 1},
	{"done", queue_dlv_op_done, 1},
	{"move", queue_dlv_op_move, 1},
};

static const struct ipc_json_reader queue_dlv_reader = {
	.ops = queue_dlv_ops,
	.nops = sizeof(queue_dlv_ops) / sizeof(queue_dlv_ops[0]),
	.ids_required = 1,
	.malformed = "malformed message from the delivery worker: ignored",
	.peer = "the delivery worker",
	.bad_record = "malformed record from the delivery worker: ignored",
};

/* queue_dlv_cb - read what the worker sent. */
static void queue_dlv_cb(evutil_socket_t fd, short what, void *arg)
{
	if (!ipc_json_drain(fd, &queue_dlv_reader, arg))
		queue_dlv_close(arg);
}

/* queue_dlv_close - the worker has gone: what did it die on? */
void queue_dlv_close(struct queue *q)
{
	queue_suspect_check(q);
	if (q->dlv_ev != NULL) {
		event_free(q->dlv_ev);
		q->dlv_ev = NULL;
	}
	ipc_outq_free(q->dlv_out);
	q->dlv_out = NULL;
	if (q->dlv_fd >= 0) {
		close(q->dlv_fd);
		q->dlv_fd = -1;
	}
}

/* queue_dlv_announce_all - "queued" for every message in queue/. */
static void queue_dlv_announce_all(struct queue *q)
{
	int fd = dup(q->queue_fd);
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		log_err("cannot list %s/: %s", SPOOL_QUEUE, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		cJSON *state;
		int64_t next;

		if (!spool_id_valid(de->d_name))
			continue;
		state = queue_state_read(q, de->d_name);
		next = queue_state_next(state);
		if (queue_suspect_due(q, de->d_name, state, &next)) {
			queue_dlv_announce(q, de->d_name, next);
			n++;
		}
		cJSON_Delete(state);
	}
	closedir(d);
	log_info("delivery worker connected: %u queued messages handed over", n);
}

/* queue_dlv_attach - serve a new worker. */
void queue_dlv_attach(struct queue *q, int fd)
{
	int board;

	queue_dlv_close(q);
	q->dlv_ev = event_new(q->base, fd, EV_READ | EV_PERSIST, queue_dlv_cb, q);
	q->dlv_out = ipc_outq_new(q->base, fd);
	if (q->dlv_ev == NULL || q->dlv_out == NULL || event_add(q->dlv_ev, NULL) < 0) {
		log_err("cannot serve the delivery channel");
		if (q->dlv_ev != NULL)
			event_free(q->dlv_ev);
		q->dlv_ev = NULL;
		ipc_outq_free(q->dlv_out);
		q->dlv_out = NULL;
		close(fd);
		return;
	}
	q->dlv_fd = fd;
	/* The scoreboard first: the worker has it before its first message. */
	if ((board = queue_suspect_board(q)) >= 0) {
		queue_dlv_send(q, queue_dlv_op("scoreboard", NULL), &board, 1);
		close(board);
	}
	queue_dlv_announce_all(q);
}
