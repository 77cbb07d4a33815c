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
#include <sys/stat.h>
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

/* Exit codes of the confined worker child. */
enum {
	WORKER_OK = 0, WORKER_ENTER, WORKER_MKDIR, WORKER_WRITE, WORKER_RENAME, WORKER_READ_SYS,
	WORKER_WRITE_SYS, WORKER_SPOOL, WORKER_OUTSIDE
};

/* worker_child - confined as the delivery worker is, deliver into a
 * maildir, read a system file, and fail to reach the spool. */
static int worker_child(const char *dir)
{
	char mail[512], sys[512], p[600], q[600];
	struct sandbox_path paths[2] = {{mail, SANDBOX_WRITE}, {sys, SANDBOX_READ}};
	int fd, ruleset;

	snprintf(mail, sizeof(mail), "%s/mail", dir);
	snprintf(sys, sizeof(sys), "%s/sys", dir);
	if ((ruleset = sandbox_prepare_paths(paths, 2)) < 0 || sandbox_enter(ruleset) != 1)
		return WORKER_ENTER;
	snprintf(p, sizeof(p), "%s/bob", mail);
	if (mkdir(p, 0700) < 0)
		return WORKER_MKDIR;
	snprintf(p, sizeof(p), "%s/bob/tmp", mail);
	snprintf(q, sizeof(q), "%s/bob/new", mail);
	if (mkdir(p, 0700) < 0 || mkdir(q, 0700) < 0)
		return WORKER_MKDIR;
	snprintf(p, sizeof(p), "%s/bob/tmp/1", mail);
	if ((fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0 || write(fd, "hi", 2) != 2 ||
	    fsync(fd) < 0 || close(fd) < 0)
		return WORKER_WRITE;
	snprintf(q, sizeof(q), "%s/bob/new/1", mail);
	if (rename(p, q) < 0) /* across folders: Landlock's "refer" right */
		return WORKER_RENAME;
	snprintf(p, sizeof(p), "%s/ca.pem", sys);
	if ((fd = open(p, O_RDONLY)) < 0)
		return WORKER_READ_SYS;
	close(fd);
	snprintf(p, sizeof(p), "%s/new.pem", sys);
	if (open(p, O_WRONLY | O_CREAT, 0600) >= 0 || errno != EACCES)
		return WORKER_WRITE_SYS;
	snprintf(p, sizeof(p), "%s/spool/message", dir);
	if (open(p, O_RDONLY) >= 0 || errno != EACCES)
		return WORKER_SPOOL;
	if (open("/tmp", O_RDONLY | O_DIRECTORY) >= 0 || errno != EACCES)
		return WORKER_OUTSIDE;
	return WORKER_OK;
}

/* make_file - path (dir/name) with a few bytes in it. */
static void make_file(const char *dir, const char *name)
{
	char path[600];
	int n, fd;

	n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_true(n > 0 && (size_t)n < sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "data\n", 5), 5);
	close(fd);
}

static void test_confined_worker_writes_only_its_mailboxes(void **state)
{
	char tmpl[] = "/tmp/vsmtpd-sandbox-XXXXXX", path[600], cmd[700];
	char *dir = mkdtemp(tmpl);
	static const char *const subs[] = {"mail", "sys", "spool"};
	int status;
	size_t i;
	pid_t pid;

	(void)state;
	assert_non_null(dir);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		assert_int_equal(mkdir(path, 0700), 0);
	}
	snprintf(path, sizeof(path), "%s/sys", dir);
	make_file(path, "ca.pem");
	snprintf(path, sizeof(path), "%s/spool", dir);
	make_file(path, "message");

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(worker_child(dir));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), WORKER_OK);
	snprintf(path, sizeof(path), "%s/mail/bob/new/1", dir);
	assert_int_equal(access(path, R_OK), 0);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_confined_session_cannot_open_spool_files),
		cmocka_unit_test(test_confined_worker_writes_only_its_mailboxes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
