/*
 * queue_suspect.c - the messages the delivery worker died on.
 *
 * A message can take the worker down: a postq or delivery rule that makes
 * one long library call on it ends the worker at [rules] time_limit, and a
 * bug in the code that reads it would end it the same way every time. The
 * master restarts the worker, the queue hands it everything again, and
 * without care the same message would end each new worker before anything
 * else is tried.
 *
 * So the queue hands every worker a scoreboard (scoreboard.h): memory both
 * share, where the worker notes the message it is working on alone and, if
 * a rule runs over, the rule. Shared memory rather than a record on the
 * delivery channel: a note costs no system call per message, cannot be
 * stuck behind a full socket when the worker dies, and is there whatever
 * ends the worker (the CPU limit, a crash, SIGKILL), as the kernel keeps
 * the page for the queue. When the worker's channel closes, a note still on
 * the board names the message it died on. The queue then
 *
 *  - counts the failure in the message's delivery state (worker_failures,
 *    with worker_failure saying what it was doing), so that a restart of
 *    the daemon does not forget it, and logs the id, the step and the rule;
 *  - once the count reaches [delivery] max_worker_failures, sets the
 *    message aside in hold/ with hold_reason in its state: vsmtpctl queue
 *    list and show show it, vsmtpctl queue release (which resets the
 *    count) or requeue tries it again;
 *  - until then hands it to each new worker only after the retry backoff
 *    for its count (retry_min, doubled per failure, at most retry_max),
 *    counted from when that worker connects: the worker starts on the rest
 *    of the queue, which is never blocked behind it.
 *
 * The settings come from the master at start and after each reload. The
 * move into hold/ with a reason serves the postq rules' ctx:hold() too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "queue_internal.h"
#include "scoreboard.h"
#include "spool.h"

#define SUSPECT_TEXT_MAX 1024

/* What the worker was doing, by step, as the log says it. */
static const char *const suspect_steps[SCOREBOARD_STEPS] = {
    [SCOREBOARD_IDLE] = "idle",
    [SCOREBOARD_PREPARE] = "reading or routing it",
    [SCOREBOARD_POSTQ] = "running the postq rules on it",
    [SCOREBOARD_DELIVERY] = "running the delivery rules on it",
    [SCOREBOARD_END] = "ending its attempt (outcomes, notices)",
};

/* queue_suspect_board - a scoreboard for the worker about to be served. */
int queue_suspect_board(struct queue *q)
{
	int fd = scoreboard_create();

	scoreboard_unmap(q->dlv_board);
	q->dlv_board = NULL;
	if (fd >= 0 && (q->dlv_board = scoreboard_map(fd)) != NULL)
		return fd;
	log_err("cannot make the delivery worker's scoreboard: %s: a message that ends the "
		"worker cannot be told apart",
		strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* queue_suspect_failures - the worker failures a state counts. */
static unsigned queue_suspect_failures(const cJSON *state)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(state, "worker_failures");

	return cJSON_IsNumber(n) && n->valuedouble >= 1 && n->valuedouble < 1e6
		   ? (unsigned)n->valuedouble
		   : 0;
}

/* queue_suspect_set - state[key] = item, replacing what was there; 0 or -1. */
static int queue_suspect_set(cJSON *state, const char *key, cJSON *item)
{
	if (item == NULL)
		return -1;
	cJSON_DeleteItemFromObjectCaseSensitive(state, key);
	cJSON_AddItemToObject(state, key, item);
	return 0;
}

/* queue_suspect_store - write the state of id durably. 0 or an errno value. */
static int queue_suspect_store(struct queue *q, const char *id, const cJSON *state)
{
	char *text = cJSON_PrintUnformatted(state);
	int err;

	if (text == NULL)
		return ENOMEM;
	err = queue_state_write(q, id, text, strlen(text));
	free(text);
	return err ? err : queue_state_sync(q, id);
}

/*
 * queue_set_aside - queue/<id> to hold/ with reason in its state (written
 * first and durably, so a held message always has it). 0, or -1 (logged).
 */
int queue_set_aside(struct queue *q, const char *id, cJSON *state, const char *reason)
{
	int err = queue_suspect_set(state, "hold_reason", cJSON_CreateString(reason)) < 0
			  ? ENOMEM
			  : queue_suspect_store(q, id, state);

	if (err != 0) {
		log_err("%s: cannot record why it is set aside: %s: left in %s/", id, strerror(err),
			SPOOL_QUEUE);
		return -1;
	}
	if (queue_file_move(q->queue_fd, q->hold_fd, id) < 0) {
		if (errno != ENOENT)
			log_err("%s: cannot move to %s/: %s", id, SPOOL_HOLD, strerror(errno));
		return -1;
	}
	return 0;
}

/* queue_suspect_hold - the count reached the limit: set it aside in hold/. */
static void queue_suspect_hold(struct queue *q, const char *id, cJSON *state, unsigned n)
{
	const char *last = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(state, "worker_failure"));
	char reason[SUSPECT_TEXT_MAX + 100];

	snprintf(reason, sizeof(reason), "the delivery worker died %u time%s working on it, the "
		 "last time while %s", n, n == 1 ? "" : "s", last ? last : "working on it");
	if (queue_set_aside(q, id, state, reason) < 0)
		return;
	log_warn("%s: set aside in %s/ after %u delivery worker failures; \"vsmtpctl queue "
		 "release %s\" tries it again",
		 id, SPOOL_HOLD, n, id);
}

/* queue_suspect_describe - what the worker was doing, for the log and the state. */
static void queue_suspect_describe(const struct scoreboard_entry *e, char *buf, size_t len)
{
	if (!e->overrun)
		snprintf(buf, len, "%s", suspect_steps[e->step]);
	else if (e->rule[0] != '\0')
		snprintf(buf, len, "%s: rule \"%s\" (%s) ran past [rules] time_limit",
			 suspect_steps[e->step], e->rule, e->where[0] ? e->where : "?");
	else
		snprintf(buf, len, "%s: a rule ran past [rules] time_limit", suspect_steps[e->step]);
}

/* queue_suspect_record - the worker died on e->id: count it, maybe set it aside. */
static void queue_suspect_record(struct queue *q, const struct scoreboard_entry *e)
{
	char what[SUSPECT_TEXT_MAX];
	cJSON *state;
	unsigned n;
	int err;

	queue_suspect_describe(e, what, sizeof(what));
	if (faccessat(q->queue_fd, e->id, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		log_err("%s: the delivery worker died while %s (the message has left %s/ since)",
			e->id, what, SPOOL_QUEUE);
		return;
	}
	if ((state = queue_state_read(q, e->id)) == NULL)
		state = cJSON_CreateObject();
	if (state == NULL) {
		log_err("%s: the delivery worker died while %s; out of memory counting it", e->id,
			what);
		return;
	}
	n = queue_suspect_failures(state) + 1;
	log_err("%s: the delivery worker died while %s (failure %u of %u)", e->id, what, n,
		q->max_worker_failures);
	if (queue_suspect_set(state, "worker_failures", cJSON_CreateNumber(n)) < 0 ||
	    queue_suspect_set(state, "worker_failure", cJSON_CreateString(what)) < 0) {
		log_err("%s: out of memory counting a delivery worker failure", e->id);
	} else if (n >= q->max_worker_failures) {
		queue_suspect_hold(q, e->id, state, n);
	} else {
		queue_suspect_set(state, "next_attempt",
				  cJSON_CreateNumber((double)(time(NULL) +
							      (int64_t)config_backoff(q->retry_min,
										      q->retry_max, n))));
		if ((err = queue_suspect_store(q, e->id, state)) != 0)
			log_err("%s: cannot write its delivery state: %s", e->id, strerror(err));
	}
	cJSON_Delete(state);
}

/* queue_suspect_check - the worker's channel closed: did it die on a message? */
void queue_suspect_check(struct queue *q)
{
	struct scoreboard_entry e;

	if (q->dlv_board == NULL)
		return;
	if (scoreboard_read(q->dlv_board, &e))
		queue_suspect_record(q, &e);
	scoreboard_unmap(q->dlv_board);
	q->dlv_board = NULL;
}

/*
 * queue_suspect_due - whether queue/<id>, with state, goes to a worker that
 * has just connected: 0 when it was set aside now (its count reached the
 * limit, which a reload may have lowered), else 1 with *next delayed past
 * the backoff of a message the worker died on.
 */
int queue_suspect_due(struct queue *q, const char *id, cJSON *state, int64_t *next)
{
	unsigned n = queue_suspect_failures(state);
	int64_t after;

	if (n == 0)
		return 1;
	if (n >= q->max_worker_failures) {
		queue_suspect_hold(q, id, state, n);
		if (faccessat(q->hold_fd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			return 0;
	}
	after = (int64_t)time(NULL) + (int64_t)config_backoff(q->retry_min, q->retry_max, n);
	if (*next < after)
		*next = after;
	return 1;
}

/* queue_suspect_forget - drop the failure count and the hold reason from state. */
int queue_suspect_forget(cJSON *state)
{
	static const char *const keys[] = {"worker_failures", "worker_failure", "hold_reason"};
	int found = 0;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (cJSON_GetObjectItemCaseSensitive(state, keys[i]) == NULL)
			continue;
		cJSON_DeleteItemFromObjectCaseSensitive(state, keys[i]);
		found = 1;
	}
	return found;
}
