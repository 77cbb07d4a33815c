/*
 * syscall_filter.c - the seccomp filters of the confined processes.
 *
 * Landlock takes away files; it does not cover what a process can reach
 * without a path: a Unix socket connect()ed by name (the control socket),
 * a signal to a process of the same user (the queue, the master), ptrace
 * and process_vm_readv on those processes. A session, whose code parses
 * what hostile clients send, and the delivery worker, which parses what
 * remote servers answer, each install a filter (libseccomp, classic BPF)
 * that refuses those calls:
 *
 *  - sockets only of the families the process needs: Internet sockets
 *    (the rules' DNS through c-ares, the rules' services, SMTP and LMTP
 *    for the worker) and Unix sockets only where a peer needs them (the
 *    worker's LMTP and services, saslauthd or a [service:NAME] at a Unix
 *    socket for a session); no socket pairs for sessions;
 *  - signals only to its own pid (a constant of the program, put in by
 *    the process that loads it): kill, tkill, tgkill and the queueing
 *    calls, and no pidfd at all (pidfd_open, pidfd_send_signal,
 *    pidfd_getfd); nor F_SETOWN or FIOSETOWN, which name a process to
 *    send SIGIO to;
 *  - resource limits, priorities, scheduling and CPUs only of itself:
 *    another process of the same user is open to prlimit, setpriority,
 *    ioprio_set and sched_set*, and the queue with a file size limit of
 *    0 would die of SIGXFSZ at its next write;
 *  - no ptrace, process_vm_readv/writev, process_madvise or kcmp;
 *  - no new process (fork, vfork, clone without CLONE_THREAD; clone3,
 *    whose flags a filter cannot read, answers ENOSYS so that the C
 *    library falls back to clone): a child would outlive its parent and
 *    no longer be known as one of the daemon's processes;
 *  - no io_uring (its operations make sockets and connect without the
 *    system calls the filter sees), no new namespaces (unshare, setns),
 *    no bpf, userfaultfd or perf_event_open, the usual first steps of an
 *    attack on the kernel itself.
 *
 * The master builds the sessions' filters once (in a fresh process
 * libseccomp takes about as long to make one as the kernel takes to load
 * it, half a millisecond here: too much for every connection), with a
 * mark where the pid goes; each session puts its pid in place of the
 * mark and installs the program, paying only for the kernel's part.
 *
 * Everything else is allowed: the filter is a deny list over the calls
 * that reach other processes, not an allow list of everything TLS, SASL,
 * Lua, c-ares and libevent may call. A refused call fails with EPERM
 * rather than killing the process, so that a legitimate use we missed
 * shows as an error in the log. Calls of another architecture (int 0x80
 * on x86_64, x32) are refused by libseccomp's architecture check, which
 * kills: nothing in vsmtpd makes them.
 *
 * Sanitizer builds leave ptrace and new processes alone: LeakSanitizer
 * stops the process's threads from a clone of its own with ptrace when
 * the process exits. Landlock (a confined process cannot ptrace one
 * outside its domain) and, when started as root, the processes'
 * dumpability still refuse ptrace of the other processes there.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>

#include "sandbox.h"
#include "syscall_filter.h"

/* A pid no process has (pids stop at 2^22): the rules compare with it,
 * and sysfilter_load() puts the loading process's own pid in its place. */
#define SYSFILTER_PID_MARK 0x7f5ecc0du

/* A filter made by sysfilter_build(). */
struct sysfilter_prog {
	struct sock_filter *insns;
	size_t len;
};


/* Calls refused outright (EPERM), to every confined process. */
static const int sysfilter_denied[] = {
    SCMP_SYS(process_vm_readv),  SCMP_SYS(process_vm_writev), SCMP_SYS(process_madvise),
    SCMP_SYS(kcmp),              SCMP_SYS(pidfd_open),        SCMP_SYS(pidfd_send_signal),
    SCMP_SYS(pidfd_getfd),       SCMP_SYS(io_uring_setup),    SCMP_SYS(io_uring_enter),
    SCMP_SYS(io_uring_register), SCMP_SYS(unshare),           SCMP_SYS(setns),
    SCMP_SYS(bpf),               SCMP_SYS(userfaultfd),       SCMP_SYS(perf_event_open),
};

/* Refused outright too, but needed by LeakSanitizer in sanitizer builds. */
static const int sysfilter_denied_unsanitized[] = {
    SCMP_SYS(ptrace),
    SCMP_SYS(fork),
    SCMP_SYS(vfork),
};

/* How an argument rule compares its argument. */
enum sysfilter_when {
	SYSFILTER_IS,     /* refused when the argument is value */
	SYSFILTER_IS_NOT, /* refused when it is anything but value */
	SYSFILTER_OTHER,  /* refused when it is anything but the caller's pid */
};

/*
 * Calls refused for one value of one argument. The signals go only to the
 * caller's own pid (kill(0) and kill(-1), its process group, which is the
 * daemon's, and everyone, are refused too); F_SETOWN and FIOSETOWN would
 * name a process to send SIGIO to. The limits, priorities, scheduling and
 * CPUs of a process of the same user are its to change (prlimit could set
 * the queue's file size limit to 0, and SIGXFSZ would end it): the
 * confined process may change only its own (pid 0, PRIO_PROCESS, ...).
 */
static const struct sysfilter_arg_rule {
	int nr;
	unsigned arg;
	enum sysfilter_when when;
	unsigned value;
} sysfilter_arg_denied[] = {
    {SCMP_SYS(kill), 0, SYSFILTER_OTHER, 0},
    {SCMP_SYS(tkill), 0, SYSFILTER_OTHER, 0},
    {SCMP_SYS(tgkill), 0, SYSFILTER_OTHER, 0},
    {SCMP_SYS(rt_sigqueueinfo), 0, SYSFILTER_OTHER, 0},
    {SCMP_SYS(rt_tgsigqueueinfo), 0, SYSFILTER_OTHER, 0},
    {SCMP_SYS(fcntl), 1, SYSFILTER_IS, F_SETOWN},
    {SCMP_SYS(fcntl), 1, SYSFILTER_IS, F_SETOWN_EX},
    {SCMP_SYS(ioctl), 1, SYSFILTER_IS, FIOSETOWN},
    {SCMP_SYS(ioctl), 1, SYSFILTER_IS, SIOCSPGRP},
    {SCMP_SYS(prlimit64), 0, SYSFILTER_IS_NOT, 0},
    {SCMP_SYS(setpriority), 0, SYSFILTER_IS_NOT, PRIO_PROCESS},
    {SCMP_SYS(setpriority), 1, SYSFILTER_IS_NOT, 0},
    {SCMP_SYS(ioprio_set), 0, SYSFILTER_IS_NOT, 1 /* IOPRIO_WHO_PROCESS */},
    {SCMP_SYS(ioprio_set), 1, SYSFILTER_IS_NOT, 0},
    {SCMP_SYS(sched_setaffinity), 0, SYSFILTER_IS_NOT, 0},
    {SCMP_SYS(sched_setscheduler), 0, SYSFILTER_IS_NOT, 0},
    {SCMP_SYS(sched_setparam), 0, SYSFILTER_IS_NOT, 0},
    {SCMP_SYS(sched_setattr), 0, SYSFILTER_IS_NOT, 0},
};

/* The socket families each process may make, in increasing order. */
static const int sysfilter_families_inet[] = {AF_INET, AF_INET6};
static const int sysfilter_families_unix[] = {AF_UNIX, AF_INET, AF_INET6};

/* sysfilter_available - see syscall_filter.h. */
int sysfilter_available(void)
{
	__u32 action = SECCOMP_RET_ERRNO;

	return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}

/* sysfilter_deny - refuse nr with EPERM whatever its arguments. */
static int sysfilter_deny(scmp_filter_ctx ctx, int nr)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
}

/* sysfilter_cmp32 - a comparison of 32-bit argument arg with value
 * (libseccomp's SCMP_CMP32 leaves a field to the compiler's zeroing, which
 * clang warns about). */
static struct scmp_arg_cmp sysfilter_cmp32(unsigned arg, enum scmp_compare op, uint32_t value)
{
	return (struct scmp_arg_cmp){.arg = arg, .op = op, .datum_a = value, .datum_b = 0};
}

/* sysfilter_deny_arg - refuse nr with EPERM when argument arg is value. */
static int sysfilter_deny_arg(scmp_filter_ctx ctx, int nr, unsigned arg, unsigned value)
{
	struct scmp_arg_cmp cmp = sysfilter_cmp32(arg, SCMP_CMP_EQ, value);

	return seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &cmp);
}

/* sysfilter_arg_rule - add rule r of sysfilter_arg_denied; pid is ours. */
static int sysfilter_arg_rule(scmp_filter_ctx ctx, const struct sysfilter_arg_rule *r,
			      unsigned pid)
{
	unsigned value = r->when == SYSFILTER_OTHER ? pid : r->value;
	struct scmp_arg_cmp cmp = sysfilter_cmp32(r->arg, SCMP_CMP_NE, value);

	if (r->when == SYSFILTER_IS)
		return sysfilter_deny_arg(ctx, r->nr, r->arg, r->value);
	return seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), r->nr, 1, &cmp);
}

/*
 * sysfilter_families - socket() only for the families of allowed (sorted):
 * refuse the values below the first, between two, and above the last
 * (libseccomp takes one comparison per argument in a rule, so the gaps
 * are listed one value at a time).
 */
static int sysfilter_families(scmp_filter_ctx ctx, const int *allowed, size_t n)
{
	const int nr = SCMP_SYS(socket);
	struct scmp_arg_cmp below = sysfilter_cmp32(0, SCMP_CMP_LT, (uint32_t)allowed[0]);
	struct scmp_arg_cmp above = sysfilter_cmp32(0, SCMP_CMP_GT, (uint32_t)allowed[n - 1]);
	int rc = 0, v;
	size_t i;

	if (allowed[0] > 0)
		rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &below);
	for (i = 0; rc == 0 && i + 1 < n; i++)
		for (v = allowed[i] + 1; rc == 0 && v < allowed[i + 1]; v++)
			rc = sysfilter_deny_arg(ctx, nr, 0, (unsigned)v);
	if (rc == 0)
		rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &above);
	return rc;
}

/* sysfilter_processes - threads only: no clone without CLONE_THREAD, and
 * clone3 answers ENOSYS so that the C library uses clone. */
static int sysfilter_processes(scmp_filter_ctx ctx)
{
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				  SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));

	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return rc;
}

/* sysfilter_rules - add role's rules to ctx, with SYSFILTER_PID_MARK for
 * the pid. 0 or a negative errno. */
static int sysfilter_rules(scmp_filter_ctx ctx, enum sysfilter_role role, int unix_sockets)
{
	const unsigned pid = SYSFILTER_PID_MARK;
	int rc = 0;
	size_t i;

	for (i = 0; rc == 0 && i < sizeof(sysfilter_denied) / sizeof(sysfilter_denied[0]); i++)
		rc = sysfilter_deny(ctx, sysfilter_denied[i]);
	for (i = 0; rc == 0 && !SANDBOX_ASAN &&
		    i < sizeof(sysfilter_denied_unsanitized) / sizeof(sysfilter_denied_unsanitized[0]);
	     i++)
		rc = sysfilter_deny(ctx, sysfilter_denied_unsanitized[i]);
	if (rc == 0 && !SANDBOX_ASAN)
		rc = sysfilter_processes(ctx);
	for (i = 0; rc == 0 && i < sizeof(sysfilter_arg_denied) / sizeof(sysfilter_arg_denied[0]);
	     i++)
		rc = sysfilter_arg_rule(ctx, &sysfilter_arg_denied[i], pid);
	if (rc == 0 && role == SYSFILTER_SESSION)
		rc = sysfilter_deny(ctx, SCMP_SYS(socketpair));
	if (rc == 0 && (role == SYSFILTER_WORKER || unix_sockets))
		rc = sysfilter_families(ctx, sysfilter_families_unix,
					sizeof(sysfilter_families_unix) / sizeof(int));
	else if (rc == 0)
		rc = sysfilter_families(ctx, sysfilter_families_inet,
					sizeof(sysfilter_families_inet) / sizeof(int));
	return rc;
}

/* sysfilter_export - ctx's program, read back from a memfd (libseccomp
 * 2.5 exports only to a descriptor). 0 or a negative errno. */
static int sysfilter_export(scmp_filter_ctx ctx, struct sysfilter_prog *p)
{
	int fd = memfd_create("vsmtpd-seccomp", MFD_CLOEXEC), rc;
	off_t len;

	if (fd < 0)
		return -errno;
	rc = seccomp_export_bpf(ctx, fd);
	if (rc == 0 && ((len = lseek(fd, 0, SEEK_END)) <= 0 ||
			len % (off_t)sizeof(struct sock_filter) != 0 ||
			len / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS))
		rc = -EINVAL;
	if (rc == 0 && (p->insns = malloc((size_t)len)) == NULL)
		rc = -ENOMEM;
	if (rc == 0 && pread(fd, p->insns, (size_t)len, 0) != len)
		rc = -EIO;
	if (rc == 0)
		p->len = (size_t)len / sizeof(struct sock_filter);
	close(fd);
	return rc;
}

/* sysfilter_build - see syscall_filter.h. */
struct sysfilter_prog *sysfilter_build(enum sysfilter_role role, int unix_sockets)
{
	struct sysfilter_prog *p;
	scmp_filter_ctx ctx;
	int rc;

	if (!sysfilter_available()) {
		errno = ENOSYS;
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL || (ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	rc = sysfilter_rules(ctx, role, unix_sockets);
	if (rc == 0)
		rc = sysfilter_export(ctx, p);
	seccomp_release(ctx);
	if (rc < 0) {
		sysfilter_free(p);
		errno = -rc;
		return NULL;
	}
	return p;
}

/* sysfilter_load - see syscall_filter.h. */
int sysfilter_load(const struct sysfilter_prog *p)
{
	struct sock_fprog prog = {.len = (unsigned short)p->len};
	struct sock_filter *insns;
	size_t i, marks = 0;
	int rc;

	if ((insns = malloc(p->len * sizeof(*insns))) == NULL)
		return -1;
	/* The pid compared with is this process's: the mark's jumps get it. */
	for (i = 0; i < p->len; i++) {
		insns[i] = p->insns[i];
		if (BPF_CLASS(insns[i].code) == BPF_JMP && BPF_SRC(insns[i].code) == BPF_K &&
		    insns[i].k == SYSFILTER_PID_MARK) {
			insns[i].k = (__u32)getpid();
			marks++;
		}
	}
	prog.filter = insns;
	if (marks == 0) {
		free(insns);
		errno = EINVAL; /* a program without the signal rules */
		return -1;
	}
	rc = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
	free(insns);
	return rc < 0 ? -1 : 1;
}

/* sysfilter_free - see syscall_filter.h. */
void sysfilter_free(struct sysfilter_prog *p)
{
	if (p != NULL)
		free(p->insns);
	free(p);
}

/* sysfilter_enter - see syscall_filter.h. */
int sysfilter_enter(enum sysfilter_role role, int unix_sockets)
{
	struct sysfilter_prog *p = sysfilter_build(role, unix_sockets);
	int rc;

	if (p == NULL)
		return errno == ENOSYS ? 0 : -1;
	rc = sysfilter_load(p);
	sysfilter_free(p);
	return rc;
}

/* sysfilter_describe - see syscall_filter.h. */
const char *sysfilter_describe(enum sysfilter_role role, int unix_sockets)
{
	static char text[256];
	const char *sockets = "Internet sockets only, no socket pairs";

	if (role == SYSFILTER_WORKER)
		sockets = "Internet and Unix sockets";
	else if (unix_sockets)
		sockets = "Internet and Unix sockets (saslauthd, services), no socket pairs";
	snprintf(text, sizeof(text),
		 "seccomp: %s, signals to itself only, no limits or priorities of other "
		 "processes, %s",
		 sockets,
		 SANDBOX_ASAN ? "ptrace and new processes left to LeakSanitizer (sanitizer "
				       "build)"
				     : "no ptrace, no new processes");
	return text;
}
