/*
 * test_syscall_filter.c - what the seccomp filters leave a session and the
 * delivery worker: each check runs in a child that installs the filter
 * and exits with the number of the first check that failed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "syscall_filter.h"

/* In AddressSanitizer builds the filter leaves ptrace and fork to LeakSanitizer. */
#define SANITIZED SANDBOX_ASAN

/* refused - whether a call's result is the filter's EPERM. */
static int refused(long rc)
{
	return rc == -1 && errno == EPERM;
}

/* socket_works - make a socket of family and close it; 1 when it worked. */
static int socket_works(int family, int type)
{
	int fd = socket(family, type, 0);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* thread_main - a thread that only returns. */
static void *thread_main(void *arg)
{
	return arg;
}

/* threads_work - whether a thread can be started and joined. */
static int threads_work(void)
{
	pthread_t t;

	return pthread_create(&t, NULL, thread_main, NULL) == 0 && pthread_join(t, NULL) == 0;
}

/* session_checks - in a filtered session: 0, or the first failed check. */
static int session_checks(pid_t parent)
{
	struct rlimit rl;
	int sv[2];

	if (sysfilter_enter(SYSFILTER_SESSION, 0) != 1)
		return 1;
	if (socket_works(AF_UNIX, SOCK_STREAM) || errno != EPERM)
		return 2;
	if (socket_works(AF_NETLINK, SOCK_RAW) || errno != EPERM)
		return 3;
	if (!socket_works(AF_INET, SOCK_DGRAM) || !socket_works(AF_INET6, SOCK_STREAM))
		return 4;
	if (!refused(socketpair(AF_UNIX, SOCK_STREAM, 0, sv)))
		return 5;
	if (!refused(kill(parent, 0)) || !refused(kill(0, 0)) || !refused(kill(-1, 0)))
		return 6;
	if (kill(getpid(), 0) != 0 || raise(SIGWINCH) != 0)
		return 7;
	if (!refused(fcntl(0, F_SETOWN, parent)))
		return 8;
	if (!SANITIZED && (!refused(ptrace(PTRACE_ATTACH, parent, 0, 0)) || !refused(fork())))
		return 9;
	if (!threads_work())
		return 10;
	if (!refused(prlimit(parent, RLIMIT_FSIZE, NULL, &rl)) ||
	    !refused(setpriority(PRIO_PROCESS, (id_t)parent, 0)) ||
	    !refused(setpriority(PRIO_PGRP, 0, 0)) || !refused(setpriority(PRIO_USER, 0, 0)))
		return 11;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || setrlimit(RLIMIT_NOFILE, &rl) != 0 ||
	    setpriority(PRIO_PROCESS, 0, getpriority(PRIO_PROCESS, 0)) != 0)
		return 12;
	return 0;
}

/* worker_checks - in a filtered delivery worker: 0, or the first failed check. */
static int worker_checks(pid_t parent)
{
	if (sysfilter_enter(SYSFILTER_WORKER, 0) != 1)
		return 1;
	if (!socket_works(AF_UNIX, SOCK_STREAM) || !socket_works(AF_INET, SOCK_STREAM))
		return 2;
	if (socket_works(AF_NETLINK, SOCK_RAW) || errno != EPERM)
		return 3;
	if (!refused(kill(parent, SIGTERM)))
		return 4;
	if (!SANITIZED && !refused(ptrace(PTRACE_ATTACH, parent, 0, 0)))
		return 5;
	if (!threads_work())
		return 6;
	return 0;
}

/* run_child - run checks in a child with no_new_privs; its exit status. */
static int run_child(int (*checks)(pid_t))
{
	pid_t parent = getpid(), pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGWINCH, SIG_IGN);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(100);
		_exit(checks(parent));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_session_filter(void **state)
{
	if (!sysfilter_available())
		skip();
	assert_int_equal(run_child(session_checks), 0);
}

static void test_worker_filter(void **state)
{
	if (!sysfilter_available())
		skip();
	assert_int_equal(run_child(worker_checks), 0);
}

/* loaded_checks - a process that loads the parent's program: it signals
 * itself, never its parent, and makes no Unix socket. */
static int loaded_checks(const struct sysfilter_prog *p, pid_t parent)
{
	if (sysfilter_load(p) != 1)
		return 1;
	if (kill(getpid(), 0) != 0)
		return 2;
	if (!refused(kill(parent, 0)))
		return 3;
	if (socket_works(AF_UNIX, SOCK_STREAM) || errno != EPERM)
		return 4;
	return 0;
}

/* One program, built once, serves every process that loads it: each gets
 * its own pid as the one it may signal. */
static void test_one_program_for_many_processes(void **state)
{
	struct sysfilter_prog *p;
	pid_t parent = getpid(), pid;
	int i, status;

	if (!sysfilter_available())
		skip();
	assert_non_null(p = sysfilter_build(SYSFILTER_SESSION, 0));
	for (i = 0; i < 3; i++) {
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
				_exit(100);
			_exit(loaded_checks(p, parent));
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	/* the parent that built it is not confined by it */
	assert_true(socket_works(AF_UNIX, SOCK_STREAM));
	sysfilter_free(p);
}

static void test_descriptions_say_what_is_left(void **state)
{
	assert_non_null(strstr(sysfilter_describe(SYSFILTER_SESSION, 0), "Internet sockets only"));
	assert_non_null(strstr(sysfilter_describe(SYSFILTER_SESSION, 1), "Unix sockets (saslauthd, services)"));
	assert_non_null(strstr(sysfilter_describe(SYSFILTER_WORKER, 0), "Internet and Unix sockets"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_session_filter),
	    cmocka_unit_test(test_worker_filter),
	    cmocka_unit_test(test_one_program_for_many_processes),
	    cmocka_unit_test(test_descriptions_say_what_is_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
