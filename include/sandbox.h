/*
 * sandbox.h - privilege separation: dropping root, confining sessions.
 */
#ifndef VSMTPD_SANDBOX_H
#define VSMTPD_SANDBOX_H

#include <sys/types.h>

/*
 * SANDBOX_ASAN - 1 in AddressSanitizer builds (GCC says so with
 * __SANITIZE_ADDRESS__, clang through __has_feature), whose LeakSanitizer
 * reads /proc and ptraces the process's threads when it exits: the test
 * builds leave it that much. 0 in production builds.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif
#ifndef SANDBOX_ASAN
#define SANDBOX_ASAN 0
#endif

/*
 * privileges_lookup - the uid and gid of user (and group, when not NULL).
 * Returns 0, or -1 with a message in err.
 */
int privileges_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid, char *err,
		      size_t errlen);

/*
 * privileges_drop - become uid/gid for good (root only), with the
 * supplementary groups /etc/group gives user (ssl-cert for keys, sasl for
 * sasldb2, as Debian sets them up). 0 or -1 with errno.
 */
int privileges_drop(const char *user, uid_t uid, gid_t gid);

/*
 * sandbox_abi - the kernel's Landlock ABI version: 0 without Landlock, 1
 * (Linux 5.13) and up. The rulesets below handle what the ABI knows.
 */
int sandbox_abi(void);

/*
 * sandbox_scoped - whether Landlock ABI abi scopes signals and abstract
 * Unix sockets (ABI 6, Linux 6.12): then every ruleset made here also
 * keeps the confined process from signalling, or connecting to an
 * abstract socket of, any process outside its own Landlock domain.
 */
int sandbox_scoped(int abi);

/*
 * sandbox_prepare - build the Landlock ruleset that denies every file system
 * access but reading the readable files (NULL, missing ones and directories
 * are skipped: the sasldb2 file SMTP AUTH needs, /dev/urandom). Returns its descriptor, or -1 with errno
 * EOPNOTSUPP when the kernel has no Landlock, or another errno on error.
 */
int sandbox_prepare(const char *const *readable, size_t nreadable);

/* What a confined process may still reach by path. */
enum sandbox_access {
	SANDBOX_READ,  /* read files (and list folders) */
	SANDBOX_WRITE, /* that, and create, write, rename and remove files, make folders */
};

struct sandbox_path {
	const char *path; /* a file, or a folder and all beneath it; NULL is skipped */
	enum sandbox_access access;
};

/*
 * sandbox_prepare_paths - the Landlock ruleset that denies every file
 * system access but what paths grant (paths that do not exist are
 * skipped; execution is never granted). Same returns as sandbox_prepare;
 * EOPNOTSUPP too when a path is SANDBOX_WRITE and the kernel's Landlock is
 * older than ABI 2 (Linux 5.19), which cannot allow renames across folders.
 */
int sandbox_prepare_paths(const struct sandbox_path *paths, size_t n);

/*
 * sandbox_enter - confine the calling process: no new privileges ever, and
 * with the ruleset from sandbox_prepare (when it is not -1) no file system
 * access at all, so it can neither read nor write the spool nor anything
 * else by path. Descriptors already open keep working. Returns 1 when
 * confined by Landlock, 0 when only no_new_privs applies, -1 on error.
 */
int sandbox_enter(int ruleset);

#endif
