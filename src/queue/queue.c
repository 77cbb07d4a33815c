/*
 * queue.c - the queue process: creates, commits and recovers message files.
 *
 * Sessions never see the spool: they ask for a message file and get an open
 * descriptor for incoming/<id>, write the content and the envelope into it,
 * and ask for the commit. The queue checks what they wrote, appends the
 * trailer and passes the file to the flusher thread.
 *
 * Group commit: the flusher takes every commit request pending when it
 * starts, fdatasyncs each file, renames them into queue/ and fsyncs queue/
 * once; requests that arrive meanwhile wait for the next pass. Only then does
 * the main thread tell each session, which sends its 250. The event loop never
 * blocks on the disk, so file creation goes on while a flush runs.
 *
 * A message the rules held (ctx:hold(), "hold" in its envelope) takes the
 * same path into hold/ instead of queue/: the same fdatasync, one fsync of
 * hold/ per batch, and it is never announced to the delivery worker; a
 * quarantined one goes into quarantine/<name>/ on its own.
 *
 * Recovery at start is in queue_recover.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "evloop.h"
#include "ipc.h"
#include "log.h"
#include "sigevent.h"
#include "queue.h"
#include "send_mail.h"
#include "spool.h"
#include "queue_internal.h"

/* queue_reply - answer a session (see queue_internal.h). */
void queue_reply(struct queue_client *c, uint32_t type, int status, const char *id,
			int passfd)
{
	struct ipc_msg m = {.type = type, .status = status};

	if (c == NULL)
		return;
	memcpy(m.id, id, sizeof(m.id));
	if (ipc_send(c->fd, &m, passfd) < 0 && errno != EPIPE && errno != ECONNRESET)
		log_warn("%s: cannot answer session: %s", id, strerror(errno));
}

/* queue_msg_free - close what a message holds and free it. */
static void queue_msg_free(struct queue_msg *m)
{
	close(m->fd);
	if (m->dest_fd >= 0)
		close(m->dest_fd);
	free(m->dmarc);
	queue_delegation_forget(m);
	free(m);
}

/* queue_msg_discard - close and unlink a file that will not be committed. */
static void queue_msg_discard(struct queue *q, struct queue_msg *m)
{
	if (unlinkat(q->incoming_fd, m->id, 0) < 0 && errno != ENOENT)
		log_warn("%s: cannot remove incoming file: %s", m->id, strerror(errno));
	queue_msg_free(m);
}

/* queue_msg_create - IPC_MSG_CREATE: a new incoming file for a session. */
static void queue_msg_create(struct queue *q, struct queue_client *c, uint64_t size_hint)
{
	struct queue_msg *m;
	char id[SPOOL_ID_LEN + 1];

	memset(id, 0, sizeof(id));
	if (q->stopping) {
		queue_reply(c, IPC_MSG_CREATED, EAGAIN, id, -1);
		return;
	}
	if (!queue_space_ok(q, size_hint)) {
		log_warn("spool file system below its free space reserve: refusing new mail");
		queue_reply(c, IPC_MSG_CREATED, ENOSPC, id, -1);
		return;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		queue_reply(c, IPC_MSG_CREATED, ENOMEM, id, -1);
		return;
	}
	m->dest_fd = -1;
	spool_id_next(&q->last_id, m->id);
	m->fd = openat(q->incoming_fd, m->id, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (m->fd < 0) {
		int err = errno;

		log_err("cannot create %s/%s: %s", SPOOL_INCOMING, m->id, strerror(err));
		free(m);
		queue_reply(c, IPC_MSG_CREATED, err, id, -1);
		return;
	}
	m->client = c;
	m->next = c->open;
	c->open = m;
	queue_reply(c, IPC_MSG_CREATED, 0, m->id, m->fd);
}

/* queue_client_take - unlink the open message id from the client's list. */
static struct queue_msg *queue_client_take(struct queue_client *c, const char *id)
{
	struct queue_msg **p, *m;

	for (p = &c->open; (m = *p) != NULL; p = &m->next)
		if (strcmp(m->id, id) == 0) {
			*p = m->next;
			m->next = NULL;
			return m;
		}
	return NULL;
}

/* queue_subdir - open dir under parent, creating it (durably) when missing. */
int queue_subdir(int parent, const char *dir)
{
	if (mkdirat(parent, dir, 0700) == 0) {
		if (fsync(parent) < 0)
			return -1;
	} else if (errno != EEXIST) {
		return -1;
	}
	return openat(parent, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * queue_file_move - move id from one spool directory to another, never over
 * a file of the same name, and make both directories durable. 0, or -1 with
 * errno (the file is where it was unless the sync failed).
 */
int queue_file_move(int from_dir, int to_dir, const char *id)
{
	if (renameat2(from_dir, id, to_dir, id, RENAME_NOREPLACE) < 0)
		return -1;
	return fsync(to_dir) < 0 || fsync(from_dir) < 0 ? -1 : 0;
}

/* queue_quarantine_dir - quarantine/<name>, created on first use; -1 with errno. */
int queue_quarantine_dir(struct queue *q, const char *name)
{
	int top, fd;

	if (!spool_folder_name_ok(name)) {
		errno = EINVAL;
		return -1;
	}
	if ((top = queue_subdir(q->spool_fd, SPOOL_QUARANTINE)) < 0)
		return -1;
	fd = queue_subdir(top, name);
	close(top);
	return fd;
}

/* queue_hold_reason_ok - a hold reason as ctx:hold() makes them: 1 to 255 printable bytes. */
int queue_hold_reason_ok(const char *reason)
{
	size_t i;

	for (i = 0; reason[i] != '\0'; i++)
		if ((unsigned char)reason[i] < 0x20 || (unsigned char)reason[i] > 0x7e || i >= 255)
			return 0;
	return i > 0;
}

/*
 * queue_msg_check - validate what the session wrote and append the trailer.
 * Returns 0 or an errno value for the session.
 */
static int queue_msg_check(struct queue *q, struct queue_msg *m, uint64_t clen, uint64_t elen)
{
	struct envelope env = {0};
	char trailer[SPOOL_TRAILER_LEN];
	struct stat st;
	char *text;
	int ok, merge;

	if (fstat(m->fd, &st) < 0)
		return errno;
	/* The session is not trusted with the format: sizes must add up and the
	 * envelope must parse and name this file. */
	if (elen == 0 || elen > SPOOL_ENVELOPE_MAX || clen + elen != (uint64_t)st.st_size)
		return EINVAL;
	if (clen > q->max_message_size + QUEUE_HEADER_SLACK)
		return EFBIG;
	if ((text = malloc(elen)) == NULL)
		return ENOMEM;
	ok = pread(m->fd, text, elen, (off_t)clen) == (ssize_t)elen &&
	     envelope_from_json(&env, text, elen) == 0 && strcmp(env.id, m->id) == 0 &&
	     env.nrcpts > 0;
	free(text);
	/* The reason is shown to administrators as it is: printable, bounded. */
	if (ok && env.hold != NULL && env.quarantine == NULL &&
	    !(m->held = queue_hold_reason_ok(env.hold)))
		ok = 0;
	if (ok && env.quarantine != NULL &&
	    (m->dest_fd = queue_quarantine_dir(q, env.quarantine)) < 0) {
		int err = errno;

		log_err("%s: cannot open quarantine %s: %s", m->id, env.quarantine, strerror(err));
		envelope_clear(&env);
		return err == EINVAL ? EINVAL : EIO;
	}
	/* what a report needs, written once the message is committed */
	if (ok && env.dmarc != NULL &&
	    (m->dmarc = queue_dmarc_line(env.dmarc, strlen(env.dmarc), m->id, env.received_at,
					 env.quarantine != NULL ? "quarantined"
					 : m->held	       ? "held"
								: "queued")) == NULL)
		log_warn("%s: dmarc: the envelope's record is not a JSON object", m->id);
	/* only the queue marks a returned copy, once its token verified */
	if (ok && (env.delegated_from != NULL || env.delegated_rule != 0))
		ok = 0;
	/* a filter's returned copy takes its original's envelope */
	if (ok && env.delegation_token != NULL &&
	    (merge = queue_delegation_merge(q, m, &env, clen, &elen)) != 0) {
		envelope_clear(&env);
		if (merge != ENOENT)
			return merge;
		m->duplicate = 1;
		return 0;
	}
	envelope_clear(&env);
	if (!ok)
		return EINVAL;
	spool_trailer_format(trailer, clen, (uint32_t)elen);
	if (pwrite(m->fd, trailer, sizeof(trailer), (off_t)(clen + elen)) != sizeof(trailer))
		return errno ? errno : EIO;
	return 0;
}

/* queue_flush_start - hand every pending commit to the flusher if it is idle. */
static void queue_flush_start(struct queue *q)
{
	if (q->flushing || q->pending == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	q->batch = q->pending;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	q->pending = NULL;
	q->pending_tail = &q->pending;
	q->flushing = 1;
}

/* queue_msg_commit - IPC_MSG_COMMIT: check the file and queue it for a flush. */
static void queue_msg_commit(struct queue *q, struct queue_client *c, const struct ipc_msg *req)
{
	struct queue_msg *m = queue_client_take(c, req->id);
	int err;

	if (m == NULL) {
		log_warn("commit for unknown message %s", req->id);
		queue_reply(c, IPC_MSG_COMMITTED, EINVAL, req->id, -1);
		return;
	}
	if ((err = queue_msg_check(q, m, req->a, req->b)) != 0) {
		log_err("%s: refusing commit: %s", m->id, strerror(err));
		queue_reply(c, IPC_MSG_COMMITTED, err, m->id, -1);
		queue_msg_discard(q, m);
		return;
	}
	if (m->duplicate) {
		log_notice("%s: a second return of a delegation whose message came back "
			   "already: dropped",
			   m->id);
		queue_reply(c, IPC_MSG_COMMITTED, 0, m->id, -1);
		queue_msg_discard(q, m);
		return;
	}
	m->committing = 1;
	*q->pending_tail = m;
	q->pending_tail = &m->next;
	queue_flush_start(q);
}

/* queue_msg_abort - IPC_MSG_ABORT: the session dropped its transaction. */
static void queue_msg_abort(struct queue *q, struct queue_client *c, const char *id)
{
	struct queue_msg *m = queue_client_take(c, id);

	if (m != NULL)
		queue_msg_discard(q, m);
}

/* queue_client_close - a session has gone: drop its uncommitted files. */
static void queue_client_close(struct queue *q, struct queue_client *c)
{
	struct queue_msg *m, *next;

	for (m = c->open; m != NULL; m = next) {
		next = m->next;
		queue_msg_discard(q, m);
	}
	/* Messages in the flush pipeline are complete: they stay committed,
	 * they just have nobody to tell. */
	for (m = q->pending; m != NULL; m = m->next)
		if (m->client == c)
			m->client = NULL;
	pthread_mutex_lock(&q->lock);
	for (m = q->batch; m != NULL; m = m->next)
		if (m->client == c)
			m->client = NULL;
	for (m = q->done; m != NULL; m = m->next)
		if (m->client == c)
			m->client = NULL;
	pthread_mutex_unlock(&q->lock);
	event_free(c->ev);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		q->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* queue_serve_create - IPC_MSG_CREATE: a new message file. */
static void queue_serve_create(struct queue_client *c, struct ipc_msg *m, int passfd)
{
	queue_msg_create(c->q, c, m->a);
}

/* queue_serve_commit - IPC_MSG_COMMIT: commit a message. */
static void queue_serve_commit(struct queue_client *c, struct ipc_msg *m, int passfd)
{
	queue_msg_commit(c->q, c, m);
}

/* queue_serve_abort - IPC_MSG_ABORT: drop a message file. */
static void queue_serve_abort(struct queue_client *c, struct ipc_msg *m, int passfd)
{
	queue_msg_abort(c->q, c, m->id);
}

/*
 * Every request a session channel carries (the fixed records of ipc.h),
 * with its handler. Only the requests marked with_fd come with a
 * descriptor; any other one is closed unread. The descriptor is closed
 * after the handler returns.
 */
static const struct queue_session_op {
	unsigned type;
	int with_fd;
	void (*serve)(struct queue_client *c, struct ipc_msg *m, int passfd);
} queue_session_ops[] = {
    {IPC_MSG_CREATE, 0, queue_serve_create}, {IPC_MSG_COMMIT, 0, queue_serve_commit},
    {IPC_MSG_ABORT, 0, queue_serve_abort},   {IPC_RULE_USER, 0, queue_serve_user},
    {IPC_RULE_SAVE, 1, queue_serve_save},    {IPC_RULE_FILE, 1, queue_serve_file},
    {IPC_MSG_SPACE, 0, queue_serve_space},   {IPC_DMARC_RECORD, 1, queue_serve_dmarc},
};

/* queue_session_op_of - the table entry of a request type, or NULL. */
static const struct queue_session_op *queue_session_op_of(unsigned type)
{
	size_t i;

	for (i = 0; i < sizeof(queue_session_ops) / sizeof(queue_session_ops[0]); i++)
		if (queue_session_ops[i].type == type)
			return &queue_session_ops[i];
	return NULL;
}

/* queue_client_cb - requests from a session. */
static void queue_client_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue_client *c = arg;
	struct queue *q = c->q;
	const struct queue_session_op *op;
	struct ipc_msg m;
	int passfd, n;

	while ((n = ipc_recv(fd, &m, &passfd)) > 0) {
		m.text[IPC_TEXT_MAX] = '\0';
		m.id[SPOOL_ID_LEN] = '\0';
		op = queue_session_op_of(m.type);
		if (passfd != -1 && (op == NULL || !op->with_fd)) {
			close(passfd);
			passfd = -1;
		}
		if (op == NULL) {
			log_err("unexpected message type %u from a session: closing it", m.type);
			queue_client_close(q, c);
			return;
		}
		op->serve(c, &m, passfd);
		if (passfd != -1)
			close(passfd);
	}
	if (n == 0 || errno != EAGAIN)
		queue_client_close(q, c);
}

/* queue_client_add - start serving a session channel from the master. */
static void queue_client_add(struct queue *q, int fd)
{
	struct queue_client *c = calloc(1, sizeof(*c));

	if (c == NULL || (c->ev = event_new(q->base, fd, EV_READ | EV_PERSIST, queue_client_cb, c)) == NULL ||
	    event_add(c->ev, NULL) < 0) {
		log_err("cannot serve a new session channel");
		if (c != NULL && c->ev != NULL)
			event_free(c->ev);
		free(c);
		close(fd);
		return;
	}
	c->q = q;
	c->fd = fd;
	c->next = q->clients;
	if (q->clients)
		q->clients->prev = c;
	q->clients = c;
}

/* queue_take_settings - IPC_QUEUE_SETTINGS: limits of the configuration. */
static void queue_take_settings(struct queue *q, struct ipc_msg *m, int passfd)
{
	q->min_free_space = m->a;
	/* Sessions started before a reload keep the limit they announced:
	 * the bound only ever grows. */
	if (m->b > q->max_message_size)
		q->max_message_size = m->b;
	queue_space_warn(q, m->b);
}

/* queue_take_delivery_settings - IPC_QUEUE_DELIVERY_SETTINGS: for the messages the worker dies on. */
static void queue_take_delivery_settings(struct queue *q, struct ipc_msg *m, int passfd)
{
	q->max_worker_failures = m->a > 0 && m->a <= 100 ? (unsigned)m->a : 3;
	q->retry_min = (uint32_t)m->b > 0 ? (uint32_t)m->b : 1;
	q->retry_max = (uint32_t)(m->b >> 32) > 0 ? (uint32_t)(m->b >> 32) : 1;
}

/* queue_take_session - IPC_SESSION_CHANNEL: serve a new session. */
static void queue_take_session(struct queue *q, struct ipc_msg *m, int passfd)
{
	queue_client_add(q, passfd);
}

/* queue_take_admin - IPC_CONTROL_CLIENT: serve a vsmtpctl connection. */
static void queue_take_admin(struct queue *q, struct ipc_msg *m, int passfd)
{
	queue_admin_client(q, passfd);
}

/* queue_take_delivery - IPC_DELIVERY_CHANNEL: the delivery worker's channel. */
static void queue_take_delivery(struct queue *q, struct ipc_msg *m, int passfd)
{
	queue_dlv_attach(q, passfd);
}

/*
 * Every record the master sends the queue, with its handler; those with a
 * name hand over a descriptor (the handler keeps it), and one missing is
 * a broken invariant.
 */
static const struct queue_master_op {
	unsigned type;
	const char *fd_name; /* NULL: no descriptor */
	void (*take)(struct queue *q, struct ipc_msg *m, int passfd);
} queue_master_ops[] = {
    {IPC_SESSION_CHANNEL, "session channel", queue_take_session},
    {IPC_DELIVERY_CHANNEL, "delivery channel", queue_take_delivery},
    {IPC_CONTROL_CLIENT, "control client", queue_take_admin},
    {IPC_QUEUE_SETTINGS, NULL, queue_take_settings},
    {IPC_QUEUE_DELIVERY_SETTINGS, NULL, queue_take_delivery_settings},
};

/* queue_ctl_cb - messages from the master. */
static void queue_ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	const struct queue_master_op *op = NULL;
	struct ipc_msg m;
	int passfd, n;
	size_t i;

	while ((n = ipc_recv(fd, &m, &passfd)) > 0) {
		for (i = 0, op = NULL; i < sizeof(queue_master_ops) / sizeof(queue_master_ops[0]); i++)
			if (queue_master_ops[i].type == m.type)
				op = &queue_master_ops[i];
		if (op == NULL)
			fatal("unexpected message type %u from the master", m.type);
		if (op->fd_name != NULL && passfd == -1)
			fatal("%s message without a descriptor", op->fd_name);
		op->take(q, &m, passfd);
	}
	if (n == 0 || errno != EAGAIN) {
		/* The master has gone: nobody supervises us any more. */
		log_notice("master channel closed: stopping");
		q->stopping = 1;
		event_del(event_base_get_running_event(q->base));
		if (!q->flushing)
			event_base_loopexit(q->base, NULL);
	}
}

/* queue_flush_batch - the flusher's work for one batch; sets each status. */
static void queue_flush_batch(struct queue *q, struct queue_msg *batch)
{
	struct queue_msg *m;
	int renamed = 0, held = 0, err = 0, held_err = 0;

	for (m = batch; m != NULL; m = m->next)
		m->status = fdatasync(m->fd) < 0 ? errno : 0;
	for (m = batch; m != NULL; m = m->next) {
		if (m->status != 0)
			continue;
		if (m->dest_fd >= 0) {
			/* Quarantine is rare: its own rename and directory sync. */
			if (renameat(q->incoming_fd, m->id, m->dest_fd, m->id) < 0 ||
			    fsync(m->dest_fd) < 0)
				m->status = errno;
			continue;
		}
		if (m->held) {
			/* Never over a message held before with the same id. */
			if (renameat2(q->incoming_fd, m->id, q->hold_fd, m->id, RENAME_NOREPLACE) < 0)
				m->status = errno;
			else
				held++;
			continue;
		}
		if (renameat(q->incoming_fd, m->id, q->queue_fd, m->id) < 0)
			m->status = errno;
		else
			renamed++;
	}
	if (renamed > 0 && fsync(q->queue_fd) < 0)
		err = errno;
	if (held > 0 && fsync(q->hold_fd) < 0)
		held_err = errno;
	for (m = batch; m != NULL; m = m->next)
		if (m->status == 0 && m->dest_fd < 0)
			m->status = m->held ? held_err : err;
}

/* queue_flusher - thread: flush batches as the main thread hands them over. */
static void *queue_flusher(void *arg)
{
	struct queue *q = arg;
	struct queue_msg *batch;
	uint64_t one = 1;

	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (q->batch == NULL)
			pthread_cond_wait(&q->wake, &q->lock);
		batch = q->batch;
		q->batch = NULL;
		pthread_mutex_unlock(&q->lock);

		queue_flush_batch(q, batch);

		pthread_mutex_lock(&q->lock);
		q->done = batch;
		pthread_mutex_unlock(&q->lock);
		if (write(q->done_fd, &one, sizeof(one)) != sizeof(one))
			fatal("cannot wake the queue main thread: %s", strerror(errno));
	}
	return NULL;
}

/* queue_done_cb - a flush finished: tell the sessions, start the next one. */
static void queue_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct queue_msg *m, *next;
	uint64_t count;
	unsigned n = 0;

	if (read(fd, &count, sizeof(count)) != sizeof(count))
		return;
	pthread_mutex_lock(&q->lock);
	m = q->done;
	q->done = NULL;
	pthread_mutex_unlock(&q->lock);
	q->flushing = 0;
	queue_flush_start(q);
	for (; m != NULL; m = next) {
		next = m->next;
		queue_reply(m->client, IPC_MSG_COMMITTED, m->status, m->id, -1);
		if (m->status != 0) {
			log_err("%s: commit failed: %s", m->id, strerror(m->status));
			queue_msg_discard(q, m);
			continue;
		}
		if (m->delegated_from != NULL)
			queue_delegation_committed(q, m);
		/* A quarantined or held message is not the worker's business. */
		if (m->dest_fd < 0 && !m->held)
			queue_dlv_announce(q, m->id, 0);
		if (m->dmarc != NULL)
			queue_dmarc_append(q, m->dmarc);
		queue_msg_free(m);
		n++;
	}
	q->flushes++;
	q->committed += n;
	if (q->stopping && !q->flushing)
		event_base_loopexit(q->base, NULL);
}

/* queue_signal_cb - SIGTERM: finish the flushes under way, then exit. */
static void queue_signal_cb(int signo, void *arg)
{
	struct queue *q = arg;

	log_info("stopping");
	q->stopping = 1;
	if (!q->flushing)
		event_base_loopexit(q->base, NULL);
}

/* queue_open_dirs - open the spool and its working directories. */
static void queue_open_dirs(struct queue *q)
{
	q->spool_fd = open(q->cfg->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->spool_fd < 0)
		fatal("cannot open spool %s: %s", q->cfg->spool_dir, strerror(errno));
	q->incoming_fd = openat(q->spool_fd, SPOOL_INCOMING, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	q->queue_fd = openat(q->spool_fd, SPOOL_QUEUE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	q->state_fd = openat(q->spool_fd, SPOOL_STATE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	q->hold_fd = openat(q->spool_fd, SPOOL_HOLD, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	q->dead_fd = openat(q->spool_fd, SPOOL_DEAD, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->incoming_fd < 0 || q->queue_fd < 0 || q->state_fd < 0 || q->hold_fd < 0 ||
	    q->dead_fd < 0)
		fatal("cannot open spool directories in %s: %s", q->cfg->spool_dir,
		      strerror(errno));
}

/* queue_main - the queue process. */
void queue_main(const struct config *cfg, int ctl)
{
	struct queue q = {.cfg = cfg, .ctl = ctl, .dlv_fd = -1};
	struct queue_recovery rec;
	static const int sigs[] = {SIGTERM, SIGINT};
	struct event *ctl_ev, *done_ev, *sig_ev;
	pthread_t flusher;
	sigset_t all, old;

	q.min_free_space = cfg->min_free_space;
	q.max_message_size = cfg->max_message_size;
	q.max_worker_failures = cfg->max_worker_failures;
	q.retry_min = cfg->retry_min;
	q.retry_max = cfg->retry_max;
	q.pending_tail = &q.pending;
	pthread_mutex_init(&q.lock, NULL);
	pthread_cond_init(&q.wake, NULL);
	queue_open_dirs(&q);
	if (queue_recover(q.spool_fd, &rec) < 0)
		fatal("spool recovery in %s failed: %s", cfg->spool_dir, strerror(errno));
	q.last_id = rec.last_id;
	log_info("spool %s: %u queued, %u incomplete removed, %u corrupt", cfg->spool_dir,
		 rec.queued, rec.incomplete, rec.corrupt);

	if ((q.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		fatal("eventfd: %s", strerror(errno));
	/* Signals belong to the main thread's signalfd, never to the flusher. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&flusher, NULL, queue_flusher, &q) != 0)
		fatal("cannot start the flusher thread");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if ((q.base = evloop_new()) == NULL)
		fatal("cannot create the event loop");
	ctl_ev = event_new(q.base, ctl, EV_READ | EV_PERSIST, queue_ctl_cb, &q);
	done_ev = event_new(q.base, q.done_fd, EV_READ | EV_PERSIST, queue_done_cb, &q);
	sig_ev = sigevent_new(q.base, sigs, 2, queue_signal_cb, &q);
	if (!ctl_ev || !done_ev || !sig_ev || event_add(ctl_ev, NULL) < 0 ||
	    event_add(done_ev, NULL) < 0)
		fatal("cannot set up the queue event loop");

	event_base_dispatch(q.base);
	while (q.clients != NULL)
		queue_client_close(&q, q.clients);
	log_info("stopped: %lu messages committed in %lu flushes", q.committed, q.flushes);
	exit(0);
}
