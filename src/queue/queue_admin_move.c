/*
 * queue_admin_move.c - the vsmtpctl commands on ids, one id at a time:
 * remove, hold, release, flush, requeue, and release or remove from a
 * quarantine. Each finds the message wherever it is, moves or removes it
 * durably, and keeps the delivery worker and the delivery state in step;
 * a failure is a text for that id's result.
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

/* admin_state_reset - requeue: non-final recipients pending, no attempts, postq again,
 * no worker failures. */
static int admin_state_reset(struct queue *q, const char *id)
{
	cJSON *st = queue_state_read(q, id), *r;
	char *text;
	int err;

	if (st == NULL)
		return 0; /* never tried: everything is pending already */
	cJSON_DeleteItemFromObjectCaseSensitive(st, "postq");
	queue_suspect_forget(st);
	admin_set_num(st, "attempts", 0);
	admin_set_num(st, "next_attempt", 0);
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(st, "rcpts"))
	{
		if (!cJSON_IsObject(r) || admin_status_final(admin_str(r, "status")))
			continue;
		cJSON_DeleteItemFromObjectCaseSensitive(r, "status");
		cJSON_DeleteItemFromObjectCaseSensitive(r, "reply");
		cJSON_DeleteItemFromObjectCaseSensitive(r, "remote");
		cJSON_DeleteItemFromObjectCaseSensitive(r, "at");
		cJSON_AddStringToObject(r, "status", "pending");
	}
	text = cJSON_PrintUnformatted(st);
	cJSON_Delete(st);
	if (text == NULL)
		return ENOMEM;
	err = queue_state_write(q, id, text, strlen(text));
	free(text);
	return err ? err : queue_state_sync(q, id);
}

/* ---- commands on ids ---- */

/* admin_fail - a per-id error text; returns -1. */
int admin_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* admin_where - "in hold/" etc. for an error about a message found elsewhere. */
static const char *admin_where(const struct admin_msg *m, char *buf, size_t len)
{
	if (m->loc == LOC_QUARANTINE)
		snprintf(buf, len, "it is in %s/%s/", SPOOL_QUARANTINE, m->qname);
	else
		snprintf(buf, len, "it is in %s/", admin_loc_dir[m->loc]);
	return buf;
}

/* admin_remove_one - remove a message wherever it is, and its state. */
int admin_remove_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen)
{
	struct admin_msg m;

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc == LOC_QUEUE)
		queue_dlv_withdraw(q, id);
	if (admin_unlink(q, &m) < 0) {
		int e = errno;

		if (m.loc == LOC_QUEUE)
			queue_dlv_announce(q, id, 0);
		return admin_fail(err, errlen, "cannot remove: %s", strerror(e));
	}
	/* The message first: a crash in between leaves a state without a
	 * message, never a message that would be delivered again as new. */
	if (m.loc == LOC_QUEUE || m.loc == LOC_HOLD || m.loc == LOC_DEAD)
		queue_state_remove(q, id);
	return 0;
}

/* admin_hold_one - queue/ID -> hold/ID: not delivered until released. */
int admin_hold_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen)
{
	struct admin_msg m;
	char where[200];

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc == LOC_HOLD)
		return admin_fail(err, errlen, "already held");
	if (m.loc != LOC_QUEUE)
		return admin_fail(err, errlen, "not in the queue: %s",
		                  admin_where(&m, where, sizeof(where)));
	queue_dlv_withdraw(q, id);
	if (admin_move(q, &m, LOC_HOLD, NULL) < 0) {
		int e = errno;
		cJSON *st = queue_state_read(q, id);

		queue_dlv_announce(q, id, st ? queue_state_next(st) : 0);
		cJSON_Delete(st);
		return admin_fail(err, errlen, "cannot move to %s/: %s", SPOOL_HOLD, strerror(e));
	}
	return 0;
}

/* admin_held_on_accept - whether the rules held m on accept (its envelope says so). */
static int admin_held_on_accept(struct queue *q, const struct admin_msg *m)
{
	struct admin_file f;
	int held;

	held = admin_file_open(q, m, &f) == 0 && f.valid && f.env.hold != NULL;
	admin_file_close(&f);
	return held;
}

/*
 * admin_state_release - release: the worker failures counted so far are
 * forgotten; a message the rules held on accept is marked released, so
 * that they do not hold it again (the postq rules do not run for it, as
 * for a message released from quarantine).
 */
static int admin_state_release(struct queue *q, const char *id, int by_rules)
{
	cJSON *st = queue_state_read(q, id);
	char *text;
	int err;

	if (st == NULL && by_rules && (st = cJSON_CreateObject()) == NULL)
		return ENOMEM;
	if (st == NULL || (!queue_suspect_forget(st) && !by_rules)) {
		cJSON_Delete(st);
		return 0;
	}
	if (by_rules)
		admin_set_num(st, "released", 1);
	admin_set_num(st, "next_attempt", 0);
	text = cJSON_PrintUnformatted(st);
	cJSON_Delete(st);
	if (text == NULL)
		return ENOMEM;
	err = queue_state_write(q, id, text, strlen(text));
	free(text);
	return err ? err : queue_state_sync(q, id);
}

/* admin_release_one - hold/ID -> queue/ID, due now, its worker failures forgotten. */
int admin_release_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen)
{
	struct admin_msg m;
	char where[200];
	int e;

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc != LOC_HOLD)
		return admin_fail(err, errlen, "not held: %s",
		                  admin_where(&m, where, sizeof(where)));
	/* The state first: the worker must never see it without "released". */
	if ((e = admin_state_release(q, id, admin_held_on_accept(q, &m))) != 0)
		return admin_fail(err, errlen, "cannot rewrite its state: %s", strerror(e));
	if (admin_move(q, &m, LOC_QUEUE, NULL) < 0)
		return admin_fail(err, errlen, "cannot move to %s/: %s", SPOOL_QUEUE,
		                  strerror(errno));
	queue_dlv_announce(q, id, 0);
	return 0;
}

/* admin_flush_one - ask the worker to try a queued message now. */
int admin_flush_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen)
{
	struct admin_msg m;
	char where[200];

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc == LOC_HOLD)
		return admin_fail(err, errlen, "held: release it first");
	if (m.loc != LOC_QUEUE)
		return admin_fail(err, errlen, "not in the queue: %s",
		                  admin_where(&m, where, sizeof(where)));
	queue_dlv_flush(q, id);
	return 0;
}

/* admin_requeue_one - forget the attempts: the postq and delivery rules run again. */
int admin_requeue_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen)
{
	struct admin_msg m;
	char where[200];
	int e;

	if (admin_locate(q, id, &m) < 0)
		return admin_fail(err, errlen, "no such message");
	if (m.loc != LOC_QUEUE && m.loc != LOC_HOLD)
		return admin_fail(err, errlen, "not in the queue: %s",
		                  admin_where(&m, where, sizeof(where)));
	if ((e = admin_state_reset(q, id)) != 0)
		return admin_fail(err, errlen, "cannot rewrite its state: %s", strerror(e));
	/* A held message keeps waiting for its release. */
	if (m.loc == LOC_QUEUE) {
		queue_dlv_withdraw(q, id);
		queue_dlv_announce(q, id, 0);
	}
	return 0;
}

/* admin_qrelease_one - quarantine/N/ID -> queue/ID, marked released, due now. */
int admin_qrelease_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen)
{
	static const char released[] = "{\"released\":1}";
	struct admin_msg m = {.loc = LOC_QUARANTINE};
	int e;

	memcpy(m.id, id, sizeof(m.id));
	snprintf(m.qname, sizeof(m.qname), "%s", qname);
	if (!admin_exists(q, LOC_QUARANTINE, qname, id))
		return admin_fail(err, errlen, "no such message in quarantine %s", qname);
	if (admin_exists(q, LOC_QUEUE, NULL, id))
		return admin_fail(err, errlen, "a message with this id is in the queue already");
	/* The state first: the worker must never see the message without
	 * "released", or its rules would quarantine it again. */
	if ((e = queue_state_write(q, id, released, sizeof(released) - 1)) != 0 ||
	    (e = queue_state_sync(q, id)) != 0) {
		queue_state_remove(q, id);
		return admin_fail(err, errlen, "cannot write its state: %s", strerror(e));
	}
	if (admin_move(q, &m, LOC_QUEUE, NULL) < 0) {
		e = errno;
		queue_state_remove(q, id);
		return admin_fail(err, errlen, "cannot move to %s/: %s", SPOOL_QUEUE, strerror(e));
	}
	queue_dlv_announce(q, id, 0);
	return 0;
}

/* admin_qremove_one - remove quarantine/N/ID. */
int admin_qremove_one(struct queue *q, const char *id, const char *qname, char *err, size_t errlen)
{
	struct admin_msg m = {.loc = LOC_QUARANTINE};

	memcpy(m.id, id, sizeof(m.id));
	snprintf(m.qname, sizeof(m.qname), "%s", qname);
	if (!admin_exists(q, LOC_QUARANTINE, qname, id))
		return admin_fail(err, errlen, "no such message in quarantine %s", qname);
	if (admin_unlink(q, &m) < 0)
		return admin_fail(err, errlen, "cannot remove: %s", strerror(errno));
	return 0;
}
