/*
 * control.h - the master's control socket, through which vsmtpctl reaches
 * the running daemon.
 *
 * A unix stream socket at [server] control_socket, mode 0660, owned by the
 * vsmtpd user and the admin group: the file's permissions decide who may
 * connect, and the master checks the peer's credentials again on accept
 * (root, the vsmtpd user, or a member of admin_group), and refuses a peer
 * that is one of the daemon's own processes: every session runs as the
 * vsmtpd user, so the user alone does not tell vsmtpctl from a session
 * someone has taken over. The master does not read requests itself: it
 * hands each connection to the queue process, which owns what the
 * requests are about.
 */
#ifndef VSMTPD_CONTROL_H
#define VSMTPD_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/*
 * control_open - create the socket (and its directory, mode 0755, when
 * missing), refusing to take over one a running vsmtpd still answers on.
 * owner/group: -1 to keep the caller's. Returns the listening descriptor
 * (non-blocking) or -1 with the reason in err.
 */
int control_open(const struct config *cfg, int owner, int group, char *err, size_t errlen);

/*
 * control_peer_allowed - whether the peer of the accepted connection fd is
 * root, our own user, or a member of admin_group; *uid and *pid get its
 * uid and pid (SO_PEERCRED: the process that connected; pid 0 when it is
 * in another pid namespace).
 */
int control_peer_allowed(int fd, const char *admin_group, uid_t *uid, pid_t *pid);

/*
 * control_peer_descends - whether process pid descends from ancestor,
 * following parents in /proc: a process a session or the worker started
 * is still one of the daemon's while its parent lives. A process /proc
 * does not show (gone, or hidden by hidepid) is taken as no descendant.
 */
int control_peer_descends(pid_t pid, pid_t ancestor);

/* control_close - close the listening socket and remove its file. */
void control_close(int fd, const char *path);

#endif
