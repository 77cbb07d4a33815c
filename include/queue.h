/*
 * queue.h - the queue process: sole owner of the spool.
 *
 * It creates message files and hands sessions an open descriptor, commits
 * messages in groups (a flush makes every commit request that arrived before
 * it durable with one pass of fsyncs and one directory sync), and on start
 * removes incomplete files and checks committed ones.
 */
#ifndef VSMTPD_QUEUE_H
#define VSMTPD_QUEUE_H

#include "config.h"

/* Master -> queue control messages beyond ipc.h's session channel. */
#define IPC_QUEUE_SETTINGS 100   /* a = min_free_space, b = max_message_size */
#define IPC_DELIVERY_CHANNEL 101 /* the delivery worker's JSON channel (fd) */
#define IPC_CONTROL_CLIENT 102   /* a vsmtpctl connection (fd), its peer's uid in a */
/* [delivery] settings: a = max_worker_failures, b = retry_min | retry_max << 32 */
#define IPC_QUEUE_DELIVERY_SETTINGS 103

struct queue_recovery {
	unsigned queued;     /* committed messages found */
	unsigned incomplete; /* uncommitted files removed */
	unsigned corrupt;    /* files moved to corrupt/ */
	uint64_t last_id;    /* the largest id seen, for spool_id_next */
};

/*
 * queue_recover - the start-up pass over the spool (spool_dir is the
 * directory, already prepared). Returns 0 or -1 with errno.
 */
int queue_recover(int spool_fd, struct queue_recovery *rec);

/* queue_main - run the queue process on the master channel ctl; never returns. */
void queue_main(const struct config *cfg, int ctl) __attribute__((noreturn));

#endif
