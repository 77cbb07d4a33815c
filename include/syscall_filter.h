/*
 * syscall_filter.h - the seccomp filters of the confined processes: what
 * a session or the delivery worker may ask of the kernel beyond what
 * Landlock already withholds (see src/lib/syscall_filter.c).
 */
#ifndef VSMTPD_SYSCALL_FILTER_H
#define VSMTPD_SYSCALL_FILTER_H

/* Who the filter is for. */
enum sysfilter_role {
	SYSFILTER_SESSION, /* a session: Internet sockets only, no socket pairs */
	SYSFILTER_WORKER,  /* the delivery worker: Unix sockets too (LMTP) */
};

/*
 * sysfilter_available - whether this kernel has seccomp filters that can
 * answer a call with an errno (Linux 4.14 and later with CONFIG_SECCOMP_FILTER).
 */
int sysfilter_available(void);

/* A filter, made once, loaded by each process it is for. */
struct sysfilter_prog;

/*
 * sysfilter_build - make role's filter (see sysfilter_enter) without
 * installing it, for processes to load later: the master makes the
 * sessions' at start. unix_sockets: for a session, also let it make Unix
 * sockets (Cyrus's saslauthd client connects to saslauthd's socket, the
 * rules to a [service:NAME] at a Unix socket); the worker always may. Returns it, or NULL with errno: ENOSYS when the
 * kernel has no seccomp filters, another errno on failure.
 */
struct sysfilter_prog *sysfilter_build(enum sysfilter_role role, int unix_sockets);

/*
 * sysfilter_load - install p on the calling thread and the threads it
 * starts later (call it before starting any), with the caller's pid as
 * the only one it may signal. Needs no_new_privs (sandbox_enter sets it).
 * Returns 1, or -1 with errno.
 */
int sysfilter_load(const struct sysfilter_prog *p);

/* sysfilter_free - release a filter (NULL is fine). */
void sysfilter_free(struct sysfilter_prog *p);

/*
 * sysfilter_enter - build role's filter and load it. Refused calls fail
 * with EPERM (a new process by clone3 with ENOSYS, so that the C library
 * falls back to clone, which the filter can inspect): a bug shows as an
 * error in the log, never as a killed process. Returns 1 when installed,
 * 0 when the kernel has no seccomp filters, -1 with errno on failure.
 */
int sysfilter_enter(enum sysfilter_role role, int unix_sockets);

/*
 * sysfilter_describe - one line for the log saying what role's filter
 * leaves, e.g. "seccomp: Internet sockets only, signals to itself only,
 * no ptrace, no new processes".
 */
const char *sysfilter_describe(enum sysfilter_role role, int unix_sockets);

#endif
