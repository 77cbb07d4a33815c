/*
 * ipc.h - messages between the master, the sessions and the queue.
 *
 * Fixed-size records over SOCK_SEQPACKET socketpairs, so one read is one
 * message and a descriptor can travel with it (SCM_RIGHTS). Bulk data never
 * crosses these channels: a session writes the message and its envelope into
 * the file the queue handed it and only says how long each part is.
 */
#ifndef VSMTPD_IPC_H
#define VSMTPD_IPC_H

#include <stdint.h>
#include <sys/types.h>

#include "spool.h"

enum ipc_type {
	IPC_SESSION_CHANNEL = 1, /* master -> queue: a new session's channel (fd) */
	IPC_MSG_CREATE,          /* session -> queue: a new message file; a = SIZE hint */
	IPC_MSG_CREATED,         /* queue -> session: status; id and fd when 0 */
	IPC_MSG_COMMIT,          /* session -> queue: id; a = content, b = envelope length */
	IPC_MSG_COMMITTED,       /* queue -> session: status for id */
	IPC_MSG_ABORT,           /* session -> queue: drop the file of id */
	IPC_RULE_USER,           /* session -> queue: does the account named text exist? */
	IPC_RULE_SAVE,           /* session -> queue: copy the attached file to app_dir/text/id
				  * (a = 1: a JSON dump, 0: the raw message) */
	IPC_RULE_DONE,           /* queue -> session: status of a rule request */
};

#define IPC_TEXT_MAX 63

struct ipc_msg {
	uint32_t type;
	int32_t status; /* 0, or an errno value */
	uint64_t a;
	uint64_t b;
	char id[SPOOL_ID_LEN + 1];
	char text[IPC_TEXT_MAX + 1]; /* a rule request's name */
};

/* ipc_socketpair - a SOCK_SEQPACKET pair, close-on-exec and non-blocking. 0 or -1. */
int ipc_socketpair(int fds[2]);

/* ipc_send - send msg, with passfd attached when it is not -1. 0 or -1. */
int ipc_send(int fd, const struct ipc_msg *msg, int passfd);

/*
 * ipc_recv - receive one message; *passfd gets an attached descriptor or -1.
 * Returns 1, 0 at end of file, -1 on error (errno EAGAIN when nothing is
 * waiting on a non-blocking socket, EBADMSG on a malformed record).
 */
int ipc_recv(int fd, struct ipc_msg *msg, int *passfd);

#endif
