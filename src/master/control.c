/*
 * control.c - the control socket of the master (see control.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"

#define CONTROL_ANCESTRY_MAX 64 /* parents followed up from a peer, at most */

/* control_address - the sockaddr for path; -1 when it does not fit. */
static int control_address(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return -1;
	strcpy(sun->sun_path, path);
	return 0;
}

/* control_in_use - whether a process answers on the socket at path. */
static int control_in_use(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int used;

	if (fd < 0)
		return 0;
	used = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return used;
}

/* control_mkdir - create the socket's directory when missing (one level). */
static int control_mkdir(const char *path, int owner, int group)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0)
		return errno == EEXIST ? 0 : -1;
	if ((owner != -1 || group != -1) && chown(dir, (uid_t)owner, (gid_t)group) < 0)
		return -1;
	return 0;
}

/* control_open - bind and listen on [server] control_socket. */
int control_open(const struct config *cfg, int owner, int group, char *err, size_t errlen)
{
	const char *path = cfg->control_socket;
	struct sockaddr_un sun;
	mode_t old;
	int fd;

	if (control_address(path, &sun) < 0) {
		snprintf(err, errlen, "[server] control_socket %s: path too long", path);
		return -1;
	}
	if (control_mkdir(path, owner, group) < 0) {
		snprintf(err, errlen, "[server] control_socket: cannot create the directory of %s: %s",
			 path, strerror(errno));
		return -1;
	}
	if (control_in_use(&sun)) {
		snprintf(err, errlen, "[server] control_socket %s: another vsmtpd answers there", path);
		return -1;
	}
	unlink(path); /* a stale socket from a crash */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	/* Never a moment where others could connect: the mode is right from bind on. */
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old);
		snprintf(err, errlen, "[server] control_socket: cannot bind %s: %s", path,
			 strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (((owner != -1 || group != -1) && chown(path, (uid_t)owner, (gid_t)group) < 0) ||
	    listen(fd, 16) < 0) {
		snprintf(err, errlen, "[server] control_socket %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

/* control_member - whether the user uid belongs to group gid. */
static int control_member(uid_t uid, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	gid_t groups[256];
	int n = 256, i;

	if (pw == NULL)
		return 0;
	if (pw->pw_gid == gid)
		return 1;
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return 0;
	for (i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/* control_peer_allowed - check the connected peer's credentials. */
int control_peer_allowed(int fd, const char *admin_group, uid_t *uid, pid_t *pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct group *gr;

	*uid = (uid_t)-1;
	*pid = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	*uid = cred.uid;
	*pid = cred.pid;
	if (cred.uid == 0 || cred.uid == geteuid())
		return 1;
	if (admin_group == NULL || (gr = getgrnam(admin_group)) == NULL)
		return 0;
	return cred.gid == gr->gr_gid || control_member(cred.uid, gr->gr_gid);
}

/* control_parent - the parent of process pid, from /proc; -1 when unknown. */
static pid_t control_parent(pid_t pid)
{
	char path[64], buf[512], *close_paren;
	ssize_t n;
	int fd, ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* "pid (comm) state ppid ...": comm may hold anything, even ')' */
	if ((close_paren = strrchr(buf, ')')) == NULL ||
	    sscanf(close_paren + 1, " %*c %d", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

/* control_peer_descends - whether pid is a descendant of ancestor. */
int control_peer_descends(pid_t pid, pid_t ancestor)
{
	int depth;

	for (depth = 0; pid > 1 && depth < CONTROL_ANCESTRY_MAX; depth++) {
		if ((pid = control_parent(pid)) == ancestor)
			return 1;
	}
	return 0;
}

/* control_close - stop listening and remove the socket file. */
void control_close(int fd, const char *path)
{
	if (fd < 0)
		return;
	close(fd);
	unlink(path);
}
