/*
 * queue_admin_internal.h - what the parts of the vsmtpctl request handler
 * share: queue_admin.c (the connection, the request, the command table and
 * dispatch, spool access and JSON helpers), queue_admin_list.c (list, show
 * and quarantine-list, reading envelopes and delivery states) and
 * queue_admin_move.c (remove, hold, release, flush, requeue and the
 * quarantine moves, one id at a time).
 */
#ifndef VSMTPD_QUEUE_ADMIN_INTERNAL_H
#define VSMTPD_QUEUE_ADMIN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "envelope.h"
#include "queue_internal.h"
#include "spool.h"

/* Where a message file is. */
enum admin_loc { LOC_QUEUE, LOC_HOLD, LOC_DEAD, LOC_QUARANTINE, LOC_CORRUPT, LOC_COUNT };

/* The spool directory of each location, in queue_admin.c. */
extern const char *const admin_loc_dir[LOC_COUNT];

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

/* A message file, opened and checked. */
struct admin_file {
	int fd;
	struct stat st;
	int valid; /* trailer and envelope good: env and clen are set */
	struct envelope env;
	uint64_t clen;
};

/* A command of the request's "cmd": its name and handler; a command on ids
 * also has what the log says of it and the work for one id. */
struct admin_cmd {
	const char *cmd;
	cJSON *(*run)(struct admin_conn *c, const struct admin_cmd *op, const cJSON *req);
	const char *done;
	int (*fn)(struct queue *q, const char *id, const char *qname, char *err, size_t errlen);
};

/* queue_admin.c: spool access and JSON helpers. */

/* admin_exists - whether loc holds a regular file id. */
int admin_exists(struct queue *q, enum admin_loc loc, const char *qname, const char *id);

/* admin_scan_dir - add every message file of one location; a missing directory is empty. */
int admin_scan_dir(struct queue *q, enum admin_loc loc, const char *qname, struct admin_set *set);

/* admin_scan_quarantine - add the messages of quarantine name, or of every one (NULL). */
int admin_scan_quarantine(struct queue *q, const char *name, struct admin_set *set);

/* admin_locate - where id is: queue, hold, dead, a quarantine, corrupt. 0, or -1 if nowhere. */
int admin_locate(struct queue *q, const char *id, struct admin_msg *m);

/* admin_file_open - open a message file and check it; 0, or -1 with errno. */
int admin_file_open(struct queue *q, const struct admin_msg *m, struct admin_file *f);

/* admin_file_close - release what admin_file_open took. */
void admin_file_close(struct admin_file *f);

/* admin_move - rename id between locations without replacing anything, durably. */
int admin_move(struct queue *q, const struct admin_msg *from, enum admin_loc to,
               const char *to_name);

/* admin_unlink - remove id from its location, durably. */
int admin_unlink(struct queue *q, const struct admin_msg *m);

/* admin_utf8_valid - the length of the longest valid UTF-8 prefix of s without NUL. */
size_t admin_utf8_valid(const unsigned char *s, size_t n);

/* admin_base64 - RFC 4648 base64 of n bytes; malloc'ed, NULL without memory. */
char *admin_base64(const unsigned char *in, size_t n);

/* admin_str - a string member of obj, NULL when absent or not a string. */
const char *admin_str(const cJSON *obj, const char *key);

/* admin_num - a number member of obj, dflt when absent or not a number. */
double admin_num(const cJSON *obj, const char *key, double dflt);

/* admin_set_num - obj[key] = v, replacing whatever was there. */
void admin_set_num(cJSON *obj, const char *key, double v);

/* admin_error - a failed answer {"ok":false,"error":text}. */
cJSON *admin_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* queue_admin_list.c: the commands that read. */

/* admin_status_final - whether a recipient status is an end: sent, failed, none. */
int admin_status_final(const char *status);

/* admin_hold_reason - why a message is held (its state's reason, else its envelope's
 * from the rules while in hold/ and not released); NULL when none. */
const char *admin_hold_reason(const struct admin_msg *m, const struct admin_file *f,
                              const cJSON *state);

/* admin_list - {"cmd":"list", filters...}. */
cJSON *admin_list(struct admin_conn *c, const struct admin_cmd *op, const cJSON *req);

/* admin_quarantine_list - {"cmd":"quarantine-list","name":N?}. */
cJSON *admin_quarantine_list(struct admin_conn *c, const struct admin_cmd *op, const cJSON *req);

/* admin_show - {"cmd":"show","id":ID}. */
cJSON *admin_show(struct admin_conn *c, const struct admin_cmd *op, const cJSON *req);

/* queue_admin_move.c: the commands on ids. */

/* admin_fail - a per-id error text; returns -1. */
int admin_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* admin_remove_one - remove a message wherever it is, and its state. */
int admin_remove_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen);

/* admin_hold_one - queue/ID -> hold/ID: not delivered until released. */
int admin_hold_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen);

/* admin_release_one - hold/ID -> queue/ID, due now. */
int admin_release_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen);

/* admin_flush_one - ask the worker to try a queued message now. */
int admin_flush_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen);

/* admin_requeue_one - forget the attempts: the postq and delivery rules run again. */
int admin_requeue_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen);

/* admin_qrelease_one - quarantine/N/ID -> queue/ID, marked released, due now. */
int admin_qrelease_one(struct queue *q, const char *id, const char *qname, char *err,
                       size_t errlen);

/* admin_qremove_one - remove quarantine/N/ID. */
int admin_qremove_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen);

#endif
