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
	IPC_RULE_DONE,           /* queue -> session: status of a rule request (with the
				  * descriptor an IPC_RULE_FILE asked for) */
	IPC_RULE_FILE,           /* session -> queue: open, for reading, the file of the
				  * rules folder whose path the attached file holds */
	IPC_MSG_SPACE,           /* session -> queue: may the content of id come (a = its
				  * SIZE hint)? Asked at DATA and at the first BDAT */
	IPC_MSG_SPACE_ANSWER,    /* queue -> session: status for id (ENOSPC: below the
				  * free space reserve) */
	IPC_POOL_CONNECTION,     /* master -> session process: serve the client (first
				  * fd) with this channel to the queue (second fd); a =
				  * the listener's index */
	IPC_POOL_DONE,           /* session process -> master: the connection is over,
				  * the process is ready for the next */
	IPC_DMARC_RECORD,        /* session -> queue: the DMARC report record (a JSON
				  * object in the attached memfd) of id, refused at preq;
				  * no answer */
};

#define IPC_TEXT_MAX 63
#define IPC_FDS_MAX 2
#define IPC_JSON_MAX 16384 /* bytes of a JSON record: bulk data travels in files */

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

/* ipc_send_fds - send msg with nfds (at most IPC_FDS_MAX) descriptors. 0 or -1. */
int ipc_send_fds(int fd, const struct ipc_msg *msg, const int *fds, size_t nfds);
/*
 * ipc_recv_fds - receive one message and its descriptors into fds (-1 in
 * unused slots); returns as ipc_recv does.
 */
int ipc_recv_fds(int fd, struct ipc_msg *msg, int fds[IPC_FDS_MAX]);
/*
 * ipc_recv - receive one message; *passfd gets an attached descriptor or -1.
 * Returns 1, 0 at end of file, -1 on error (errno EAGAIN when nothing is
 * waiting on a non-blocking socket, EBADMSG on a malformed record).
 */
int ipc_recv(int fd, struct ipc_msg *msg, int *passfd);

/*
 * The delivery channel (queue <-> delivery worker) carries JSON objects,
 * one per record, with an "op" member and up to IPC_FDS_MAX descriptors.
 * docs/architecture.md lists the operations.
 */
struct cJSON;

/* ipc_send_json - send obj (at most IPC_JSON_MAX bytes of text) with nfds descriptors. 0 or -1. */
int ipc_send_json(int fd, const struct cJSON *obj, const int *fds, size_t nfds);

/*
 * ipc_recv_json - receive one object into *obj (the caller frees it with
 * cJSON_Delete) and its descriptors into fds (-1 in unused slots). Returns
 * 1, 0 at end of file, -1 on error (EAGAIN, EBADMSG for a record that is
 * not a JSON object).
 */
int ipc_recv_json(int fd, struct cJSON **obj, int fds[IPC_FDS_MAX]);

/*
 * One operation of a JSON channel: a record whose "op" is name goes to
 * handler with its "id" (NULL when it has none) and its descriptors. A
 * handler keeps a descriptor by setting its slot to -1; the others are
 * closed after it returns.
 */
struct ipc_json_op {
	const char *name;
	void (*handler)(void *arg, const struct cJSON *msg, const char *id, int fds[IPC_FDS_MAX]);
	int needs_id; /* only a record with an id is this operation (else it is unknown) */
};

/* A JSON channel's reader: its operations and the lines it logs. */
struct ipc_json_reader {
	const struct ipc_json_op *ops;
	size_t nops;
	int ids_required;       /* a record without an id is malformed */
	const char *malformed;  /* no "op", or an "id" that is no spool id */
	const char *peer;       /* who writes: "unknown operation <op> from <peer>: ignored" */
	const char *bad_record; /* a record that is no JSON object; NULL: nothing is logged */
};

/*
 * ipc_json_drain - receive every record waiting on fd and dispatch each by
 * its "op" through r->ops (arg goes to the handlers). Returns 1 while the
 * channel is open, 0 when the peer has gone or the socket failed.
 */
int ipc_json_drain(int fd, const struct ipc_json_reader *r, void *arg);

/*
 * An output queue on a non-blocking channel: records that do not fit in
 * the socket now wait, in order, and go out as room frees up, from the
 * event loop. Neither end ever blocks on the other.
 */
struct event_base;
struct ipc_outq;

struct ipc_outq *ipc_outq_new(struct event_base *base, int fd);
void ipc_outq_free(struct ipc_outq *q);

/* ipc_outq_json - send obj with its descriptors (duplicated when it has to wait). 0 or -1. */
int ipc_outq_json(struct ipc_outq *q, const struct cJSON *obj, const int *fds, size_t nfds);

/* ipc_outq_length - records waiting for room. */
size_t ipc_outq_length(const struct ipc_outq *q);

#endif
