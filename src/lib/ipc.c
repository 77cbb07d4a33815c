/*
 * ipc.c - records with optional descriptor passing: the fixed-size ones of
 * the session channels and the JSON ones of the delivery channel.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "ipc.h"
#include "log.h"


/* ipc_fds_close - close the descriptors a record passed and mark them gone. */
static void ipc_fds_close(int fds[IPC_FDS_MAX])
{
	size_t i;

	for (i = 0; i < IPC_FDS_MAX; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}
/* ipc_socketpair - make a message-preserving, non-blocking channel. */
int ipc_socketpair(int fds[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds);
}

/* ipc_sendmsg - send len bytes as one record with nfds descriptors attached. */
static int ipc_sendmsg(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPC_FDS_MAX)];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	ssize_t n;

	if (nfds > IPC_FDS_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (nfds > 0) {
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

/*
 * ipc_recvmsg - receive one record of at most len bytes and up to
 * IPC_FDS_MAX descriptors (-1 in the unused slots). Returns the record's
 * length, 0 at end of file, -1 on error (EBADMSG when it was cut short).
 */
static ssize_t ipc_recvmsg(int fd, void *buf, size_t len, int fds[IPC_FDS_MAX])
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPC_FDS_MAX)];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *cm;
	size_t i, got = 0;
	ssize_t n;

	for (i = 0; i < IPC_FDS_MAX; i++)
		fds[i] = -1;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t count;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < count; i++) {
			int passed;

			memcpy(&passed, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (got < IPC_FDS_MAX)
				fds[got++] = passed;
			else
				close(passed);
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		ipc_fds_close(fds);
		errno = EBADMSG;
		return -1;
	}
	return n;
}

/* ipc_send - send one record and maybe a descriptor. */
int ipc_send(int fd, const struct ipc_msg *msg, int passfd)
{
	return ipc_sendmsg(fd, msg, sizeof(*msg), &passfd, passfd != -1 ? 1 : 0);
}

/* ipc_send_fds - send one record with nfds descriptors. */
int ipc_send_fds(int fd, const struct ipc_msg *msg, const int *fds, size_t nfds)
{
	return ipc_sendmsg(fd, msg, sizeof(*msg), fds, nfds);
}

/* ipc_recv_fds - receive one record and up to IPC_FDS_MAX descriptors. */
int ipc_recv_fds(int fd, struct ipc_msg *msg, int fds[IPC_FDS_MAX])
{
	ssize_t n = ipc_recvmsg(fd, msg, sizeof(*msg), fds);

	if (n <= 0)
		return (int)n;
	if ((size_t)n != sizeof(*msg)) {
		ipc_fds_close(fds);
		errno = EBADMSG;
		return -1;
	}
	msg->id[SPOOL_ID_LEN] = '\0';
	return 1;
}

/* ipc_recv - receive one record and maybe a descriptor. */
int ipc_recv(int fd, struct ipc_msg *msg, int *passfd)
{
	int fds[IPC_FDS_MAX];
	int rc = ipc_recv_fds(fd, msg, fds);
	size_t i;

	*passfd = rc > 0 ? fds[0] : -1;
	for (i = 1; rc > 0 && i < IPC_FDS_MAX; i++)
		if (fds[i] != -1)
			close(fds[i]);
	return rc;
}

/* ipc_send_json - send obj as one record of JSON text, with descriptors. */
int ipc_send_json(int fd, const cJSON *obj, const int *fds, size_t nfds)
{
	char *text = cJSON_PrintUnformatted(obj);
	size_t len;
	int rc;

	if (text == NULL) {
		errno = ENOMEM;
		return -1;
	}
	len = strlen(text);
	if (len > IPC_JSON_MAX) {
		free(text);
		errno = EMSGSIZE;
		return -1;
	}
	rc = ipc_sendmsg(fd, text, len, fds, nfds);
	free(text);
	return rc;
}

/* ipc_recv_json - receive one JSON record; a record that is no object is EBADMSG. */
int ipc_recv_json(int fd, cJSON **obj, int fds[IPC_FDS_MAX])
{
	char buf[IPC_JSON_MAX + 1];
	ssize_t n = ipc_recvmsg(fd, buf, sizeof(buf) - 1, fds);

	*obj = NULL;
	if (n <= 0)
		return (int)n;
	buf[n] = '\0';
	*obj = cJSON_ParseWithLength(buf, (size_t)n);
	if (*obj == NULL || !cJSON_IsObject(*obj)) {
		cJSON_Delete(*obj);
		*obj = NULL;
		ipc_fds_close(fds);
		errno = EBADMSG;
		return -1;
	}
	return 1;
}

/* ipc_json_find - the operation of r named op that fits a record with or without an id. */
static const struct ipc_json_op *ipc_json_find(const struct ipc_json_reader *r, const char *op,
					       const char *id)
{
	size_t i;

	for (i = 0; i < r->nops; i++)
		if (strcmp(r->ops[i].name, op) == 0 && (!r->ops[i].needs_id || id != NULL))
			return &r->ops[i];
	return NULL;
}

/* ipc_json_dispatch - hand one record to its operation's handler, or log why not. */
static void ipc_json_dispatch(const struct ipc_json_reader *r, void *arg, const cJSON *msg,
			      int fds[IPC_FDS_MAX])
{
	const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "op"));
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "id"));
	const struct ipc_json_op *o;

	if (op == NULL || (id == NULL && r->ids_required) || (id != NULL && !spool_id_valid(id)))
		log_err("%s", r->malformed);
	else if ((o = ipc_json_find(r, op, id)) != NULL)
		o->handler(arg, msg, id, fds);
	else
		log_err("unknown operation %s from %s: ignored", op, r->peer);
}

/* ipc_json_drain - dispatch what waits; say whether the channel is still open. */
int ipc_json_drain(int fd, const struct ipc_json_reader *r, void *arg)
{
	int fds[IPC_FDS_MAX];
	cJSON *msg;
	int n;

	while ((n = ipc_recv_json(fd, &msg, fds)) > 0) {
		ipc_json_dispatch(r, arg, msg, fds);
		cJSON_Delete(msg);
		ipc_fds_close(fds);
	}
	if (n < 0 && errno == EBADMSG) {
		if (r->bad_record != NULL)
			log_err("%s", r->bad_record);
		return 1;
	}
	return n != 0 && errno == EAGAIN;
}

/* One record waiting for room in the socket. */
struct ipc_pending {
	char *text;
	size_t len;
	int fds[IPC_FDS_MAX];
	size_t nfds;
	struct ipc_pending *next;
};

struct ipc_outq {
	int fd;
	struct event *ev;
	struct ipc_pending *head, **tail;
	size_t count;
};

/* ipc_pending_free - close the descriptors a pending record holds and free it. */
static void ipc_pending_free(struct ipc_pending *p)
{
	size_t i;

	for (i = 0; i < p->nfds; i++)
		close(p->fds[i]);
	free(p->text);
	free(p);
}

/* ipc_outq_drain - send what waits, in order, until the socket is full again. */
static void ipc_outq_drain(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_outq *q = arg;
	struct ipc_pending *p;

	while ((p = q->head) != NULL) {
		if (ipc_sendmsg(q->fd, p->text, p->len, p->fds, p->nfds) < 0) {
			if (errno == EAGAIN || errno == ENOBUFS)
				break;
			/* The peer has gone: its reader sees the end of file. */
		}
		q->head = p->next;
		if (q->head == NULL)
			q->tail = &q->head;
		q->count--;
		ipc_pending_free(p);
	}
	if (q->head != NULL)
		event_add(q->ev, NULL);
}

/* ipc_outq_new - an output queue for the channel fd on base. */
struct ipc_outq *ipc_outq_new(struct event_base *base, int fd)
{
	struct ipc_outq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->fd = fd;
	q->tail = &q->head;
	if ((q->ev = event_new(base, fd, EV_WRITE, ipc_outq_drain, q)) == NULL) {
		free(q);
		return NULL;
	}
	return q;
}

/* ipc_outq_free - drop what still waits (NULL is fine). */
void ipc_outq_free(struct ipc_outq *q)
{
	struct ipc_pending *p, *next;

	if (q == NULL)
		return;
	for (p = q->head; p != NULL; p = next) {
		next = p->next;
		ipc_pending_free(p);
	}
	event_free(q->ev);
	free(q);
}

/* ipc_outq_json - send obj now, or keep it (and copies of fds) for later. */
int ipc_outq_json(struct ipc_outq *q, const cJSON *obj, const int *fds, size_t nfds)
{
	struct ipc_pending *p;
	size_t i;

	if (nfds > IPC_FDS_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (q->head == NULL) {
		if (ipc_send_json(q->fd, obj, fds, nfds) == 0)
			return 0;
		if (errno != EAGAIN && errno != ENOBUFS)
			return -1;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL || (p->text = cJSON_PrintUnformatted(obj)) == NULL) {
		free(p);
		errno = ENOMEM;
		return -1;
	}
	p->len = strlen(p->text);
	for (i = 0; i < nfds; i++) {
		if ((p->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0)) < 0) {
			ipc_pending_free(p);
			return -1;
		}
		p->nfds++;
	}
	*q->tail = p;
	q->tail = &p->next;
	q->count++;
	event_add(q->ev, NULL);
	return 0;
}

/* ipc_outq_length - how many records wait. */
size_t ipc_outq_length(const struct ipc_outq *q)
{
	return q->count;
}
