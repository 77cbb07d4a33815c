/*
 * test_scoreboard.c - the page the delivery worker and the queue share:
 * what one side notes the other reads, a rule that ran over is kept, the
 * file cannot be resized under the reader, and nonsense on the page names
 * no message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scoreboard.h"

#define ID "000660CD977706E6"

/* test_worker_note_is_read_by_the_queue - two mappings, as in two processes. */
static void test_worker_note_is_read_by_the_queue(void **state)
{
	int fd = scoreboard_create();
	struct scoreboard *queue, *worker;
	struct scoreboard_entry e;

	(void)state;
	assert_true(fd >= 0);
	queue = scoreboard_map(fd);
	worker = scoreboard_map(fd);
	close(fd);
	assert_non_null(queue);
	assert_non_null(worker);

	assert_int_equal(scoreboard_read(queue, &e), 0); /* idle from the start */
	scoreboard_enter(worker, ID, SCOREBOARD_PREPARE);
	assert_int_equal(scoreboard_read(queue, &e), 1);
	assert_string_equal(e.id, ID);
	assert_int_equal(e.step, SCOREBOARD_PREPARE);
	assert_int_equal(e.overrun, 0);
	assert_string_equal(e.rule, "");

	scoreboard_enter(worker, ID, SCOREBOARD_POSTQ);
	scoreboard_overrun(worker, "slow \"one\"", "/etc/vsmtpd/rules.lua:12");
	assert_int_equal(scoreboard_read(queue, &e), 1);
	assert_int_equal(e.step, SCOREBOARD_POSTQ);
	assert_int_equal(e.overrun, 1);
	assert_string_equal(e.rule, "slow \"one\"");
	assert_string_equal(e.where, "/etc/vsmtpd/rules.lua:12");

	/* a new note forgets the overrun of the one before */
	scoreboard_enter(worker, ID, SCOREBOARD_DELIVERY);
	assert_int_equal(scoreboard_read(queue, &e), 1);
	assert_int_equal(e.overrun, 0);
	assert_string_equal(e.rule, "");

	scoreboard_leave(worker);
	assert_int_equal(scoreboard_read(queue, &e), 0);
	scoreboard_enter(worker, ID, SCOREBOARD_END);
	scoreboard_clear(queue);
	assert_int_equal(scoreboard_read(queue, &e), 0);
	scoreboard_unmap(worker);
	scoreboard_unmap(queue);
}

/* test_note_survives_the_worker - a child notes and dies; the parent reads. */
static void test_note_survives_the_worker(void **state)
{
	int fd = scoreboard_create(), status;
	struct scoreboard *queue = scoreboard_map(fd);
	struct scoreboard_entry e;
	pid_t pid;

	(void)state;
	assert_non_null(queue);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct scoreboard *worker = scoreboard_map(fd);

		scoreboard_enter(worker, ID, SCOREBOARD_DELIVERY);
		scoreboard_overrun(worker, "loop", NULL);
		_exit(3);
	}
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	assert_int_equal(scoreboard_read(queue, &e), 1);
	assert_string_equal(e.id, ID);
	assert_int_equal(e.step, SCOREBOARD_DELIVERY);
	assert_int_equal(e.overrun, 1);
	assert_string_equal(e.rule, "loop");
	assert_string_equal(e.where, "");
	scoreboard_unmap(queue);
}

/* test_the_file_cannot_be_resized - a worker cannot make the queue's reads fault. */
static void test_the_file_cannot_be_resized(void **state)
{
	int fd = scoreboard_create();
	off_t size;

	(void)state;
	assert_true(fd >= 0);
	size = lseek(fd, 0, SEEK_END);
	assert_true(size > 0);
	assert_int_equal(ftruncate(fd, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd, size * 2), -1);
	assert_int_equal(errno, EPERM);
	close(fd);
}

/* test_nonsense_names_no_message - bad ids and steps; long and control-laden names. */
static void test_nonsense_names_no_message(void **state)
{
	int fd = scoreboard_create(), other = memfd_create("not-a-scoreboard", MFD_CLOEXEC);
	struct scoreboard *sb = scoreboard_map(fd);
	struct scoreboard_entry e;
	char long_name[600];

	(void)state;
	assert_non_null(sb);
	scoreboard_enter(sb, "../../etc/passwd", SCOREBOARD_POSTQ);
	assert_int_equal(scoreboard_read(sb, &e), 0);
	scoreboard_enter(sb, "", SCOREBOARD_POSTQ);
	assert_int_equal(scoreboard_read(sb, &e), 0);
	scoreboard_enter(sb, ID, SCOREBOARD_STEPS);
	assert_int_equal(scoreboard_read(sb, &e), 0);

	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	scoreboard_enter(sb, ID, SCOREBOARD_POSTQ);
	scoreboard_overrun(sb, long_name, "a\nforged: line\r\x7f:3");
	assert_int_equal(scoreboard_read(sb, &e), 1);
	assert_int_equal(strlen(e.rule), SCOREBOARD_RULE_MAX - 1);
	assert_string_equal(e.where, "a?forged: line??:3");
	scoreboard_unmap(sb);
	close(fd);

	/* a file of another size is no scoreboard */
	assert_true(other >= 0);
	assert_null(scoreboard_map(other));
	assert_int_equal(errno, EINVAL);
	close(other);
	scoreboard_enter(NULL, ID, SCOREBOARD_POSTQ); /* without a board: nothing */
	scoreboard_overrun(NULL, "x", "y");
	assert_int_equal(scoreboard_read(NULL, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_worker_note_is_read_by_the_queue),
	    cmocka_unit_test(test_note_survives_the_worker),
	    cmocka_unit_test(test_the_file_cannot_be_resized),
	    cmocka_unit_test(test_nonsense_names_no_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
