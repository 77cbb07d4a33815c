/*
 * control.h - the master's control socket, through which vsmtpctl reaches
 * the running daemon.
 *
 * A unix stream socket at [server] control_socket, mode 0660, owned by the
 * vsmtpd user and the admin group: the file's permissions decide who may
 * connect, and the master checks the peer's credentials again on accept
 * (root, the vsmtpd user, or a member of admin_group). The master does not
 * read requests itself: it hands each connection to the queue process,
 * which owns what the requests are about.
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
 * root, our own user, or a member of admin_group; *uid gets its uid.
 */
int control_peer_allowed(int fd, const char *admin_group, uid_t *uid);

/* control_close - close the listening socket and remove its file. */
void control_close(int fd, const char *path);

#endif
