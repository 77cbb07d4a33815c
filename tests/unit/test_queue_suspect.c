/*
 * test_queue_suspect.c - the queue's side of a delivery worker that died
 * on a message: the failure is counted in the message's delivery state,
 * the message waits its backoff when handed to the next worker, is held
 * with its reason at the limit, and the count can be forgotten.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "queue_internal.h"
#include "scoreboard.h"
#include "spool.h"

#define ID "000660CD977706E6"

/* A spool with its directories open, as the queue process has them. */
struct fixture {
	char dir[64];
	struct queue q;
};

/* setup - a fresh spool with queue/<ID> in it; at most 2 failures. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int spool, fd;

	snprintf(f->dir, sizeof(f->dir), "/tmp/vsmtpd-suspect-XXXXXX");
	if (mkdtemp(f->dir) == NULL || spool_prepare(f->dir, -1, -1) < 0)
		return -1;
	spool = open(f->dir, O_RDONLY | O_DIRECTORY);
	f->q.spool_fd = spool;
	f->q.queue_fd = openat(spool, SPOOL_QUEUE, O_RDONLY | O_DIRECTORY);
	f->q.state_fd = openat(spool, SPOOL_STATE, O_RDONLY | O_DIRECTORY);
	f->q.hold_fd = openat(spool, SPOOL_HOLD, O_RDONLY | O_DIRECTORY);
	f->q.dlv_fd = -1;
	f->q.max_worker_failures = 2;
	f->q.retry_min = 60;
	f->q.retry_max = 100;
	fd = openat(f->q.queue_fd, ID, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1)
		return -1;
	close(fd);
	*state = f;
	return 0;
}

/* teardown - remove the spool. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	close(f->q.queue_fd);
	close(f->q.state_fd);
	close(f->q.hold_fd);
	close(f->q.spool_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* worker_dies - a worker gets a board, notes step on ID (with an overrun), and dies. */
static void worker_dies(struct queue *q, enum scoreboard_step step, const char *rule)
{
	int fd = queue_suspect_board(q);
	struct scoreboard *worker;

	assert_true(fd >= 0);
	assert_non_null(q->dlv_board);
	worker = scoreboard_map(fd);
	close(fd);
	assert_non_null(worker);
	scoreboard_enter(worker, ID, step);
	if (rule != NULL)
		scoreboard_overrun(worker, rule, "/etc/vsmtpd/rules.lua:7");
	scoreboard_unmap(worker);
	queue_suspect_check(q);
	assert_null(q->dlv_board);
}

/* number - state[key] as a number, -1 when absent. */
static double number(const cJSON *state, const char *key)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(state, key);

	return cJSON_IsNumber(n) ? n->valuedouble : -1;
}

/* text - state[key] as a string, "" when absent. */
static const char *text(const cJSON *state, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(state, key));

	return s ? s : "";
}

/* test_an_idle_worker_blames_nobody - a worker that died between messages. */
static void test_an_idle_worker_blames_nobody(void **state)
{
	struct fixture *f = *state;
	int fd = queue_suspect_board(&f->q);

	assert_true(fd >= 0);
	close(fd);
	queue_suspect_check(&f->q);
	assert_null(queue_state_read(&f->q, ID));
	queue_suspect_check(&f->q); /* without a board: nothing */
}

/* test_failures_are_counted_then_held - the count, the backoff, the hold. */
static void test_failures_are_counted_then_held(void **state)
{
	struct fixture *f = *state;
	int64_t before = time(NULL), next = 0;
	cJSON *st;

	worker_dies(&f->q, SCOREBOARD_POSTQ, "poison");
	st = queue_state_read(&f->q, ID);
	assert_non_null(st);
	assert_true(number(st, "worker_failures") == 1);
	assert_string_equal(text(st, "worker_failure"),
			    "running the postq rules on it: rule \"poison\" "
			    "(/etc/vsmtpd/rules.lua:7) ran past [rules] time_limit");
	assert_true(number(st, "next_attempt") >= before + 60);
	assert_null(cJSON_GetObjectItemCaseSensitive(st, "hold_reason"));

	/* handed to the next worker: not before its backoff from now */
	assert_int_equal(queue_suspect_due(&f->q, ID, st, &next), 1);
	assert_true(next >= before + 60);
	cJSON_Delete(st);

	worker_dies(&f->q, SCOREBOARD_PREPARE, NULL);
	assert_int_equal(faccessat(f->q.queue_fd, ID, F_OK, 0), -1);
	assert_int_equal(faccessat(f->q.hold_fd, ID, F_OK, 0), 0);
	st = queue_state_read(&f->q, ID);
	assert_non_null(st);
	assert_true(number(st, "worker_failures") == 2);
	assert_string_equal(text(st, "worker_failure"), "reading or routing it");
	assert_string_equal(text(st, "hold_reason"),
			    "the delivery worker died 2 times working on it, the last time while "
			    "reading or routing it");

	/* release: forgotten */
	assert_int_equal(queue_suspect_forget(st), 1);
	assert_null(cJSON_GetObjectItemCaseSensitive(st, "worker_failures"));
	assert_null(cJSON_GetObjectItemCaseSensitive(st, "worker_failure"));
	assert_null(cJSON_GetObjectItemCaseSensitive(st, "hold_reason"));
	assert_int_equal(queue_suspect_forget(st), 0);
	cJSON_Delete(st);
}

/* test_a_lowered_limit_holds_at_hand_over - after a reload, at the next worker. */
static void test_a_lowered_limit_holds_at_hand_over(void **state)
{
	struct fixture *f = *state;
	cJSON *st;
	int64_t next = 0;

	f->q.max_worker_failures = 5;
	worker_dies(&f->q, SCOREBOARD_DELIVERY, "slow");
	assert_int_equal(faccessat(f->q.queue_fd, ID, F_OK, 0), 0);
	f->q.max_worker_failures = 1;
	st = queue_state_read(&f->q, ID);
	assert_int_equal(queue_suspect_due(&f->q, ID, st, &next), 0);
	cJSON_Delete(st);
	assert_int_equal(faccessat(f->q.hold_fd, ID, F_OK, 0), 0);
	st = queue_state_read(&f->q, ID);
	assert_string_equal(text(st, "hold_reason"),
			    "the delivery worker died 1 time working on it, the last time while "
			    "running the delivery rules on it: rule \"slow\" "
			    "(/etc/vsmtpd/rules.lua:7) ran past [rules] time_limit");
	cJSON_Delete(st);
}

/* test_a_message_gone_is_not_counted - removed or held before the worker died. */
static void test_a_message_gone_is_not_counted(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(unlinkat(f->q.queue_fd, ID, 0), 0);
	worker_dies(&f->q, SCOREBOARD_END, NULL);
	assert_null(queue_state_read(&f->q, ID));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_an_idle_worker_blames_nobody, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failures_are_counted_then_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_lowered_limit_holds_at_hand_over, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_message_gone_is_not_counted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
