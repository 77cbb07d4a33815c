/*
 * test_sandbox.c - a confined session process cannot reach files by path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

/* Exit codes of the confined child, one per check. */
enum { CHILD_OK = 0, CHILD_ENTER, CHILD_READ, CHILD_CREATE, CHILD_FD, CHILD_PRIVS, CHILD_LISTDIR };

/* confined_child - enter the sandbox and try what a compromised session would. */
static int confined_child(const char *dir, int spool_file, int ruleset)
{
	char path[512], buf[8];

	if (sandbox_enter(ruleset) != 1)
		return CHILD_ENTER;
	snprintf(path, sizeof(path), "%s/message", dir);
	if (open(path, O_RDONLY) >= 0 || errno != EACCES)
		return CHILD_READ;
	snprintf(path, sizeof(path), "%s/new", dir);
	if (open(path, O_WRONLY | O_CREAT, 0600) >= 0 || errno != EACCES)
		return CHILD_CREATE;
	if (open(dir, O_RDONLY | O_DIRECTORY) >= 0 || errno != EACCES)
		return CHILD_LISTDIR;
	/* What it was handed still works: that is how it writes its message. */
	if (pread(spool_file, buf, 5, 0) != 5 || memcmp(buf, "hello", 5) != 0)
		return CHILD_FD;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return CHILD_PRIVS;
	return CHILD_OK;
}

static void test_confined_session_cannot_open_spool_files(void **state)
{
	char tmpl[] = "/tmp/vsmtpd-sandbox-XXXXXX", path[512];
	char *dir = mkdtemp(tmpl);
	int fd, status, ruleset;
	pid_t pid;

	assert_non_null(dir);
	ruleset = sandbox_prepare(NULL, 0);
	assert_true(ruleset >= 0);
	snprintf(path, sizeof(path), "%s/message", dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(confined_child(dir, fd, ruleset));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), CHILD_OK);

	close(fd);
	close(ruleset);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_confined_session_cannot_open_spool_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
