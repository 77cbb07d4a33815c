/*
 * send_mail.h - the messages rules send with send_mail(): a file of the
 * rules folder made into a message and queued like any other.
 *
 * The file is a whole message (header, blank line, body) with LF or CRLF
 * line ends. It is refused (EBADMSG) when empty, or with a NUL byte, a bare
 * CR, or a line over 998 octets. Lines are sent with CRLF; Date:,
 * Message-ID: and From: are added when the header lacks them, and a file
 * that starts with no header field at all is all body. The message skips
 * the postq and delivery rules (no rule can loop on its own notices): it
 * goes to the relay the rule named, or the usual way without one.
 */
#ifndef VSMTPD_SEND_MAIL_H
#define VSMTPD_SEND_MAIL_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h"
#include "spool.h"

#define SEND_MAIL_PATH_MAX 1024 /* bytes of a file's path in the rules folder */
#define SEND_MAIL_RCPTS_MAX 100 /* recipients of one send_mail() */

/*
 * send_mail_path_ok - whether path names a file inside a folder: relative,
 * no "." or ".." component, no empty one, at most SEND_MAIL_PATH_MAX bytes.
 */
int send_mail_path_ok(const char *path);

/*
 * send_mail_open - open path for reading under the folder dirfd, never
 * leaving it (no symbolic link pointing out, no magic link): a regular file
 * of at most max_size bytes. Returns the descriptor, or -1 with errno
 * (EACCES for a path that would leave the folder, EFBIG, EINVAL for what
 * is not a regular file).
 */
int send_mail_open(int dirfd, const char *path, uint64_t max_size);

/*
 * send_mail_open_rules - send_mail_open in the folder of the rules file
 * rules_file (absolute). Same returns.
 */
int send_mail_open_rules(const char *rules_file, const char *path, uint64_t max_size);

/*
 * send_mail_compose - the message to queue from the file's text (len
 * bytes), from sender from ("" for the null sender), written on host at
 * time now. Returns a malloc'ed message (length in *out_len; *eightbit
 * set when it has octets over 127), or NULL with errno EBADMSG or ENOMEM.
 */
char *send_mail_compose(const char *text, size_t len, const char *from, const char *host,
			int64_t now, size_t *out_len, int *eightbit);

/*
 * send_mail_build - read the file fd (at most max_size bytes) and compose
 * its message (send_mail_compose, now). 0 with *msg malloc'ed, or an errno
 * value (EBADMSG, EFBIG, ENOMEM, a read error).
 */
int send_mail_build(int fd, const char *from, const char *host, uint64_t max_size, char **msg,
		    size_t *len, int *eightbit);

/*
 * send_mail_queue - all of send_mail() for a process with a session channel
 * to the queue: the queue opens the file (the caller may have no access to
 * the file system), the message is composed here and queued, from host
 * (the configured host name). id gets the new message's queue id. Returns 0
 * once it is committed, or an errno value as rule_ctx.send_mail says.
 */
int send_mail_queue(int queue_fd, const struct rule_mail *mail, const char *host,
		    uint64_t max_size, char id[SPOOL_ID_LEN + 1]);

#endif
