/*
 * queue_internal.h - the queue process's state, shared by its parts:
 * queue.c (sessions, group commit, recovery), queue_delivery.c (the channel
 * to the delivery worker and the delivery state files), queue_suspect.c
 * (the messages the worker died on), queue_admin.c (vsmtpctl's requests),
 * queue_rules.c (the rules' requests) and queue_space.c (the free space
 * reserve).
 */
#ifndef VSMTPD_QUEUE_INTERNAL_H
#define VSMTPD_QUEUE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "ipc.h"
#include "spool.h"

struct cJSON;
struct queue_client;
struct scoreboard;

/* Room for the headers a session adds in front of the client's content. */
#define QUEUE_HEADER_SLACK (64u * 1024)

/* A message file between IPC_MSG_CREATE and the end of its commit. */
struct queue_msg {
	char id[SPOOL_ID_LEN + 1];
	int fd;
	int status;                  /* commit result, set by the flusher */
	int committing;              /* handed to the flush pipeline */
	int dest_fd;                 /* quarantine/<name> when the rules said so, else -1 */
	int held;                    /* ctx:hold(): committed into hold/, not announced */
	char *dmarc;                 /* the DMARC report line to append once committed, or NULL */
	char *delegated_from;        /* a filter's returned copy: the original it replaces */
	int duplicate;               /* a second return of one delegation: dropped, answered 0 */
	struct queue_client *client; /* NULL once the session has gone */
	struct queue_msg *next;      /* in the client's list or a batch */
};

/* One session's channel. */
struct queue_client {
	struct queue *q;
	int fd;
	struct event *ev;
	struct queue_msg *open; /* created, not yet committing */
	struct queue_client *prev, *next;
};

/* The process state; one instance, in queue_main's frame. */
struct queue {
	const struct config *cfg;
	struct event_base *base;
	int ctl;
	int spool_fd, incoming_fd, queue_fd;
	int state_fd, hold_fd, dead_fd;   /* state/, hold/, dead/ */
	uint64_t last_id;
	uint64_t min_free_space;
	uint64_t max_message_size;
	struct queue_client *clients;
	int stopping;

	/* group commit: pending is the main thread's; batch and done are
	 * exchanged with the flusher under lock */
	struct queue_msg *pending, **pending_tail;
	int flushing;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct queue_msg *batch, *done;
	int done_fd; /* eventfd: the flusher finished a batch */
	unsigned long flushes, committed;

	/* the delivery worker's channel, -1 while there is no worker */
	int dlv_fd;
	struct event *dlv_ev;
	struct ipc_outq *dlv_out;
	struct scoreboard *dlv_board; /* shared with that worker, NULL without */

	/* [delivery] settings, from the master at start and after a reload */
	unsigned max_worker_failures, retry_min, retry_max;
};

/* queue_subdir - open dir under parent, creating it (durably) when missing; -1 with errno. */
int queue_subdir(int parent, const char *dir);

/* queue_file_move - id from one spool directory to another (no overwrite), both synced. 0 or -1. */
int queue_file_move(int from_dir, int to_dir, const char *id);

/* queue_quarantine_dir - quarantine/<name>, created on first use; -1 with errno. */
int queue_quarantine_dir(struct queue *q, const char *name);

/* ---- queue_delivery.c: the delivery worker's channel and the state files ---- */

/* queue_dlv_attach - serve a new delivery channel (the old one, if any, is closed)
 * and announce every message of queue/ on it. */
void queue_dlv_attach(struct queue *q, int fd);

/* queue_dlv_close - forget the delivery channel (the worker has gone). */
void queue_dlv_close(struct queue *q);

/* queue_dlv_announce - tell the worker that queue/<id> is there, due at next (0: now). */
void queue_dlv_announce(struct queue *q, const char *id, int64_t next);

/* queue_dlv_withdraw - tell the worker to forget id (removed, held, requeued). */
void queue_dlv_withdraw(struct queue *q, const char *id);

/* queue_dlv_flush - tell the worker to try id (NULL: every deferred message) now. */
void queue_dlv_flush(struct queue *q, const char *id);

/*
 * queue_state_read - the delivery state of id (state/<id>) as parsed JSON,
 * NULL when there is none or it does not parse (then the message is
 * delivered as new: at least once). The caller frees it with cJSON_Delete.
 */
struct cJSON *queue_state_read(struct queue *q, const char *id);

/* queue_state_write - replace state/<id> with text (write, then rename). 0 or an errno value. */
int queue_state_write(struct queue *q, const char *id, const char *text, size_t len);

/* queue_state_sync - make state/<id> durable (queue_state_write does not sync). 0 or an errno value. */
int queue_state_sync(struct queue *q, const char *id);

/* queue_state_remove - remove state/<id> if there is one. */
void queue_state_remove(struct queue *q, const char *id);

/* queue_state_next - the next_attempt time a state holds (0: due now). */
int64_t queue_state_next(const struct cJSON *state);

/* ---- queue_suspect.c: the messages the delivery worker died on ---- */

/*
 * queue_suspect_board - a new scoreboard for the worker about to be
 * served, mapped as q->dlv_board: the descriptor to hand it, or -1 (logged).
 */
int queue_suspect_board(struct queue *q);

/*
 * queue_suspect_check - the worker's channel has closed: count a failure
 * for the message its scoreboard names, if any (logged with the step and
 * the rule), set that message aside in hold/ at the limit; drop the board.
 */
void queue_suspect_check(struct queue *q);

/*
 * queue_suspect_due - whether queue/<id> with state goes to a worker that
 * has just connected: 0 when it has just been set aside, else 1, with
 * *next put past the backoff of a message the worker died on.
 */
int queue_suspect_due(struct queue *q, const char *id, struct cJSON *state, int64_t *next);

/*
 * queue_set_aside - move queue/<id> to hold/ with reason as hold_reason in
 * state (written durably first). 0, or -1 (logged).
 */
int queue_set_aside(struct queue *q, const char *id, struct cJSON *state, const char *reason);

/* ---- queue_delegation.c: the copies delegate rules' filters send back ---- */

/*
 * queue_delegation_merge - m came back from a filter (env, the session's
 * envelope, has its token): write the original's envelope, marked, over
 * env at clen and set *elen. 0; EACCES when the token does not verify;
 * ENOENT when the original is gone or being replaced already (a second
 * return: drop m); another errno value.
 */
int queue_delegation_merge(struct queue *q, struct queue_msg *m, const struct envelope *env,
			   uint64_t clen, uint64_t *elen);

/* queue_delegation_committed - m is durable in queue/: remove its original and state. */
void queue_delegation_committed(struct queue *q, struct queue_msg *m);

/* queue_delegation_forget - m will not replace its original after all (or did). */
void queue_delegation_forget(struct queue_msg *m);

/* queue_delegation_recover - at start: the original of the returned copy env goes. */
void queue_delegation_recover(int queue_fd, const struct envelope *env);

/* queue_hold_reason_ok - whether reason is one ctx:hold() makes: 1 to 255 printable bytes. */
int queue_hold_reason_ok(const char *reason);

/* queue_suspect_forget - drop the failure count and hold reason from state; 1 if there were any. */
int queue_suspect_forget(struct cJSON *state);

/* ---- queue_admin.c: requests from vsmtpctl ---- */

/* queue_admin_client - serve one vsmtpctl connection handed over by the master. */
void queue_admin_client(struct queue *q, int fd);

/* ---- queue.c and queue_rules.c: the session channels ---- */

/* queue_reply - answer a session; a session that has gone is not an error. */
void queue_reply(struct queue_client *c, uint32_t type, int status, const char *id, int fd);

/* ---- queue_space.c: the free space reserve ---- */

/* queue_space_ok - whether the spool keeps min_free_space free after need bytes. */
int queue_space_ok(const struct queue *q, uint64_t need);

/* queue_space_warn - log a warning when the reserve is more than is free. */
void queue_space_warn(const struct queue *q, uint64_t max_message_size);

/* queue_serve_space - IPC_MSG_SPACE: may a transaction's content come? */
void queue_serve_space(struct queue_client *c, struct ipc_msg *m, int passfd);

/* queue_serve_user - IPC_RULE_USER: does an account exist? */
void queue_serve_user(struct queue_client *c, struct ipc_msg *m, int passfd);

/*
 * queue_dmarc_line - the DMARC report line of a message (queue_dmarc.c):
 * the session's record (a JSON object text of len bytes) with id, time
 * (Unix) and action ("queued", "quarantined", "held", "rejected") set;
 * malloc'ed, NULL when the record is no JSON object.
 */
char *queue_dmarc_line(const char *record, size_t len, const char *id, int64_t when,
		       const char *action);

/* queue_dmarc_append - append a line to <spool>/dmarc/YYYY-MM-DD.jsonl (today,
 * UTC), unsynced; a failure is logged, never the session's concern. */
void queue_dmarc_append(struct queue *q, const char *line);

/* queue_serve_dmarc - IPC_DMARC_RECORD: the record of a message refused at preq. */
void queue_serve_dmarc(struct queue_client *c, struct ipc_msg *m, int passfd);

/* queue_serve_save - IPC_RULE_SAVE: write() or dump() from a rule. */
void queue_serve_save(struct queue_client *c, struct ipc_msg *m, int passfd);

/* queue_serve_file - IPC_RULE_FILE: a file of the rules folder, opened. */
void queue_serve_file(struct queue_client *c, struct ipc_msg *m, int passfd);

#endif
