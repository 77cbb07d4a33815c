/*
 * queue_client.c - blocking requests to the queue process (see queue_client.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "ipc.h"
#include "log.h"
#include "queue_client.h"

/*
 * queue_client_wait - the next record, which must be of type; *passfd
 * gets a descriptor sent with it. 0, or an errno value (EPIPE when the
 * queue has gone, ETIMEDOUT, EPROTO for another record).
 */
static int queue_client_wait_one(int fd, uint32_t type, struct ipc_msg *m, int *passfd,
				 int timeout_ms);

static int queue_client_wait(int fd, uint32_t type, struct ipc_msg *m, int *passfd,
			     int timeout_ms)
{
	int err = queue_client_wait_one(fd, type, m, passfd, timeout_ms);

	/* Records carry no request number: after a lost or strange answer the
	 * next one could be taken for the answer to a later request. The
	 * channel is out of step, so it is closed for good; its owner sees
	 * the end of file and goes on without it (a session) or starts again
	 * (the delivery worker). */
	if (err == ETIMEDOUT || err == EPROTO) {
		log_err("the queue's answer %s: closing the channel",
			err == ETIMEDOUT ? "did not come in time" : "was not the one expected");
		shutdown(fd, SHUT_RDWR);
	}
	return err;
}

/* queue_client_wait_one - queue_client_wait without the clean-up. */
static int queue_client_wait_one(int fd, uint32_t type, struct ipc_msg *m, int *passfd,
				 int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int n;

	for (;;) {
		n = ipc_recv(fd, m, passfd);
		if (n > 0 && m->type == type)
			return 0;
		if (n > 0) {
			log_err("unexpected message type %u from the queue (expected %u)", m->type,
				type);
			if (*passfd >= 0)
				close(*passfd);
			return EPROTO;
		}
		if (n == 0 || errno != EAGAIN)
			return EPIPE;
		if ((n = poll(&pfd, 1, timeout_ms)) == 0)
			return ETIMEDOUT;
		if (n < 0 && errno != EINTR)
			return errno;
	}
}

/* queue_client_write - all of len bytes at off. 0 or an errno value. */
static int queue_client_write(int fd, const char *data, size_t len, off_t off)
{
	return io_write_all(fd, data, len, off, NULL);
}

/*
 * queue_client_request - send m with data (len bytes, in a memfd) unless
 * data is NULL, and wait for the answer; *passfd (when not NULL) gets the
 * descriptor that comes with it. 0 or an errno value.
 */
static int queue_client_request(int queue_fd, struct ipc_msg *m, const char *data, size_t len,
				int *passfd)
{
	int fd = -1, got = -1, err = 0;

	if (queue_fd < 0)
		return EPIPE;
	if (data != NULL) {
		if ((fd = memfd_create("vsmtpd-rule-request", MFD_CLOEXEC)) < 0)
			return errno;
		err = queue_client_write(fd, data, len, 0);
	}
	if (err == 0 && ipc_send(queue_fd, m, fd) < 0)
		err = errno;
	if (fd >= 0)
		close(fd);
	if (err != 0)
		return err;
	if ((err = queue_client_wait(queue_fd, IPC_RULE_DONE, m, &got,
				     QUEUE_CLIENT_SERVICE_TIMEOUT_MS)) != 0)
		return err;
	if (passfd != NULL && m->status == 0)
		*passfd = got;
	else if (got >= 0)
		close(got);
	return m->status;
}

/* queue_client_service - a rule's request, with the data in a memfd. */
int queue_client_service(int queue_fd, enum queue_service kind, const char *name,
			 const char *file, const char *data, size_t len)
{
	struct ipc_msg m = {.type = kind == QUEUE_SERVICE_USER_EXIST ? IPC_RULE_USER : IPC_RULE_SAVE,
			    .a = kind == QUEUE_SERVICE_DUMP};
	static uint64_t last_id;

	snprintf(m.text, sizeof(m.text), "%s", name);
	if (file[0] != '\0' && strlen(file) == SPOOL_ID_LEN)
		memcpy(m.id, file, SPOOL_ID_LEN + 1);
	else
		spool_id_next(&last_id, m.id); /* before the queue named the message */
	return queue_client_request(queue_fd, &m, data, len, NULL);
}

/* queue_client_open_rules_file - the path travels in a memfd: it may be
 * longer than a record's text. */
int queue_client_open_rules_file(int queue_fd, const char *path, int *fd)
{
	struct ipc_msg m = {.type = IPC_RULE_FILE};
	int err;

	*fd = -1;
	err = queue_client_request(queue_fd, &m, path, strlen(path), fd);
	if (err == 0 && *fd < 0)
		err = EPROTO;
	return err;
}

/* queue_client_submit - create, write and commit one message. */
int queue_client_submit(int queue_fd, struct envelope *env, const char *content, size_t len)
{
	struct ipc_msg m = {.type = IPC_MSG_CREATE, .a = len};
	char *json = NULL;
	int fd = -1, err;
	size_t elen;

	if (ipc_send(queue_fd, &m, -1) < 0)
		return errno;
	if ((err = queue_client_wait(queue_fd, IPC_MSG_CREATED, &m, &fd, QUEUE_CLIENT_TIMEOUT_MS)) != 0)
		return err;
	if (m.status != 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		return m.status ? m.status : EPROTO;
	}
	snprintf(env->id, sizeof(env->id), "%s", m.id);
	if ((json = envelope_to_json(env)) == NULL) {
		err = ENOMEM;
		goto abort;
	}
	elen = strlen(json);
	if ((err = queue_client_write(fd, content, len, 0)) != 0 ||
	    (err = queue_client_write(fd, json, elen, (off_t)len)) != 0)
		goto abort;
	free(json);
	close(fd);
	m = (struct ipc_msg){.type = IPC_MSG_COMMIT, .a = len, .b = elen};
	memcpy(m.id, env->id, SPOOL_ID_LEN + 1);
	if (ipc_send(queue_fd, &m, -1) < 0)
		return errno;
	if ((err = queue_client_wait(queue_fd, IPC_MSG_COMMITTED, &m, &fd, QUEUE_CLIENT_TIMEOUT_MS)) != 0)
		return err;
	if (fd >= 0)
		close(fd);
	return m.status;
abort:
	free(json);
	close(fd);
	m = (struct ipc_msg){.type = IPC_MSG_ABORT};
	memcpy(m.id, env->id, SPOOL_ID_LEN + 1);
	ipc_send(queue_fd, &m, -1);
	return err;
}
