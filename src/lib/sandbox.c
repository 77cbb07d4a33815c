/*
 * sandbox.c - dropping root and confining session processes.
 *
 * A session talks to an untrusted client, so it gets nothing by path: it is
 * Landlock-restricted with every file system right handled and none granted.
 * This works without root, which keeps development and production on the
 * same footing. The spool is reached only through descriptors the queue
 * process hands out. Where the kernel's Landlock has scoping (ABI 6, Linux
 * 6.12), the same ruleset also confines signals and abstract Unix sockets
 * to the process's own domain: a confined process can then neither signal
 * nor reach through an abstract socket any process outside it (the
 * master, the queue, another session).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"

/* privileges_lookup - resolve user and group names. */
int privileges_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid, char *err,
		      size_t errlen)
{
	struct passwd *pw = getpwnam(user);
	struct group *gr;

	if (pw == NULL) {
		snprintf(err, errlen, "user \"%s\" does not exist", user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group != NULL && *group != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			snprintf(err, errlen, "group \"%s\" does not exist", group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	if (*uid == 0) {
		snprintf(err, errlen, "user \"%s\" is root: choose an unprivileged account", user);
		return -1;
	}
	return 0;
}

/* privileges_drop - switch to uid/gid, with user's supplementary groups. */
int privileges_drop(const char *user, uid_t uid, gid_t gid)
{
	if (initgroups(user, gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		return -1;
	/* Paranoia: getting root back must fail. */
	if (setuid(0) == 0) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/*
 * The ruleset attribute as Landlock ABI 6 (Linux 6.12) has it: Debian 12's
 * <linux/landlock.h> knows only handled_access_fs, so the later fields and
 * the scope flags are named here. The kernel takes the longer struct from
 * any ABI as long as the fields it does not know are zero.
 */
struct sandbox_ruleset_attr {
	__u64 handled_access_fs;
	__u64 handled_access_net; /* ABI 4; left 0: the network is not handled */
	__u64 scoped;             /* ABI 6 */
};
#define SANDBOX_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define SANDBOX_SCOPE_SIGNAL (1ULL << 1)
#define SANDBOX_SCOPE_ABI 6

/* landlock_abi - the kernel's Landlock ABI version, or -1. */
static long landlock_abi(void)
{
	return syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
}

/* sandbox_abi - see sandbox.h. */
int sandbox_abi(void)
{
	long abi = landlock_abi();

	return abi < 1 ? 0 : (int)abi;
}

/* sandbox_scoped - see sandbox.h. */
int sandbox_scoped(int abi)
{
	return abi >= SANDBOX_SCOPE_ABI;
}

/* landlock_fs_rights - every file system right the kernel's ABI knows. */
static __u64 landlock_fs_rights(long abi)
{
	__u64 rights = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
		       LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
		       LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		       LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
		       LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
		       LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		       LANDLOCK_ACCESS_FS_MAKE_SYM;

	if (abi >= 2)
		rights |= LANDLOCK_ACCESS_FS_REFER;
	/* ABI 3 adds truncate(2) by path (bit 14); Debian 12's headers predate
	 * it, so name the bit ourselves. */
	if (abi >= 3)
		rights |= 1ULL << 14;
	return rights;
}

/*
 * sandbox_allow_proc - sanitizer builds only: LeakSanitizer reads /proc when
 * the process exits, so the test builds that look for leaks in sessions let
 * it. Production builds grant nothing.
 */
static int sandbox_allow_proc(int ruleset)
{
#if SANDBOX_ASAN
	struct landlock_path_beneath_attr rule = {
		.allowed_access = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR};
	int rc;

	if ((rule.parent_fd = open("/proc", O_PATH | O_CLOEXEC)) < 0)
		return -1;
	rc = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
	close(rule.parent_fd);
	return rc;
#else
	(void)ruleset;
	return 0;
#endif
}

/* The rights a SANDBOX_WRITE folder grants: what maildir and mbox delivery
 * do (create, write, rename across folders, lock files), never execute. */
static __u64 sandbox_write_rights(long abi)
{
	return landlock_fs_rights(abi) &
	       (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
		LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REFER |
		(1ULL << 14) /* truncate, ABI 3 */);
}

/*
 * sandbox_allow - grant what p says beneath p->path, if it exists. A file
 * gets only the file rights; a directory gets them for all beneath it,
 * unless dirs_ok is 0 (then it is skipped).
 */
static int sandbox_allow(int ruleset, long abi, const struct sandbox_path *p, int dirs_ok)
{
	const __u64 file_rights = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
				  (abi >= 3 ? 1ULL << 14 : 0);
	struct landlock_path_beneath_attr rule = {0};
	struct stat st;
	int rc;

	if ((rule.parent_fd = open(p->path, O_PATH | O_CLOEXEC)) < 0)
		return errno == ENOENT || errno == EACCES || errno == ENOTDIR ? 0 : -1;
	if (fstat(rule.parent_fd, &st) < 0 || (S_ISDIR(st.st_mode) && !dirs_ok)) {
		close(rule.parent_fd);
		return 0;
	}
	rule.allowed_access = p->access == SANDBOX_WRITE
				  ? sandbox_write_rights(abi)
				  : LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
	if (!S_ISDIR(st.st_mode))
		rule.allowed_access &= file_rights;
	rc = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
	close(rule.parent_fd);
	return rc;
}

/* sandbox_build - a ruleset handling every right, granting paths. */
static int sandbox_build(const struct sandbox_path *paths, size_t n, int dirs_ok)
{
	struct sandbox_ruleset_attr attr = {0};
	long abi = landlock_abi();
	size_t i;
	int fd;

	if (abi < 1) {
		errno = EOPNOTSUPP;
		return -1;
	}
	/* ABI 1 refuses every rename or link between folders, which maildir
	 * delivery (tmp/ to new/) needs: no confinement beats a broken one. */
	for (i = 0; abi < 2 && i < n; i++)
		if (paths[i].path != NULL && paths[i].access == SANDBOX_WRITE) {
			errno = EOPNOTSUPP;
			return -1;
		}
	attr.handled_access_fs = landlock_fs_rights(abi);
	if (sandbox_scoped((int)abi))
		attr.scoped = SANDBOX_SCOPE_ABSTRACT_UNIX_SOCKET | SANDBOX_SCOPE_SIGNAL;
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (fd < 0)
		return -1;
	if (sandbox_allow_proc(fd) < 0) {
		close(fd);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (paths[i].path != NULL && sandbox_allow(fd, abi, &paths[i], dirs_ok) < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
	}
	return fd;
}

/* sandbox_prepare - the deny-everything-but-readable-files ruleset. */
int sandbox_prepare(const char *const *readable, size_t nreadable)
{
	struct sandbox_path paths[8];
	size_t i;

	if (nreadable > sizeof(paths) / sizeof(paths[0])) {
		errno = E2BIG;
		return -1;
	}
	for (i = 0; i < nreadable; i++)
		paths[i] = (struct sandbox_path){.path = readable[i], .access = SANDBOX_READ};
	return sandbox_build(paths, nreadable, 0);
}

/* sandbox_prepare_paths - the ruleset granting folders and files. */
int sandbox_prepare_paths(const struct sandbox_path *paths, size_t n)
{
	return sandbox_build(paths, n, 1);
}

/* sandbox_enter - confine this process. */
int sandbox_enter(int ruleset)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	if (ruleset < 0)
		return 0;
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		return -1;
	return 1;
}
