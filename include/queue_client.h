/*
 * queue_client.h - blocking requests to the queue process over a session
 * channel, for code that waits for the answer anyway: a rule's service
 * request in a session, and the messages the delivery worker writes
 * (bounces, rewritten copies).
 */
#ifndef VSMTPD_QUEUE_CLIENT_H
#define VSMTPD_QUEUE_CLIENT_H

#include <stddef.h>

#include "envelope.h"
#include "spool.h"

/* The requests a rule makes of the queue (rule_ctx.service). */
enum queue_service {
	QUEUE_SERVICE_USER_EXIST, /* name: an account */
	QUEUE_SERVICE_WRITE,      /* name: a folder of app_dir; data: the raw message */
	QUEUE_SERVICE_DUMP,       /* name: a folder of app_dir; data: the JSON dump */
};

#define QUEUE_CLIENT_TIMEOUT_MS 60000         /* a message's creation or commit */
#define QUEUE_CLIENT_SERVICE_TIMEOUT_MS 10000 /* a rule's request: the rule waits */

/*
 * queue_client_service - a rule's request (an account's existence, or a
 * copy of the message to save as app_dir/name/file) answered by the queue.
 * Returns 0 or an errno value (ENOENT: no such account).
 */
int queue_client_service(int queue_fd, enum queue_service kind, const char *name,
			 const char *file, const char *data, size_t len);

/*
 * queue_client_open_rules_file - a descriptor, read-only, for the file path
 * of the rules folder (send_mail()), opened by the queue. 0 with *fd set,
 * or an errno value (ENOENT, EACCES for a path leaving the folder, EFBIG).
 */
int queue_client_open_rules_file(int queue_fd, const char *path, int *fd);

/*
 * queue_client_submit - queue a new message: content (len bytes, as it
 * will be delivered) with env, whose id this sets to the new message's.
 * Returns 0 once the message is committed (on stable storage), or an errno
 * value (nothing was queued).
 */
int queue_client_submit(int queue_fd, struct envelope *env, const char *content, size_t len);

#endif
