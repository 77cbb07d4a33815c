/*
 * local_delivery.h - delivery into mailboxes on this host: maildir and mbox.
 *
 * Both are plain blocking file operations, safe to call from several
 * threads at once (the delivery worker runs them off its event loop). A
 * mailbox path comes from a template of the configuration: %d is the
 * recipient's domain, %u its local part, %% a '%'. Both parts are
 * lowercased, and a part that could leave the template's directory (empty,
 * ".", "..", holding '/' or a control character, starting with '.') is
 * refused as a bad mailbox name rather than followed.
 *
 * The message is written with a Delivered-To: header (RFC 9228) for the
 * recipient in front; its line endings are turned from CRLF into LF (the
 * Unix convention of mailbox files). Nothing is reported delivered before
 * it is on stable storage (fsync of the file and, for maildir, of new/).
 */
#ifndef VSMTPD_LOCAL_DELIVERY_H
#define VSMTPD_LOCAL_DELIVERY_H

#include <stddef.h>

#define LOCAL_REASON_MAX 256

enum local_outcome {
	LOCAL_DELIVERED,
	LOCAL_DEFERRED, /* try again later: a lock held too long, EIO, ENOSPC, EDQUOT ... */
	LOCAL_FAILED,   /* permanent: a bad mailbox name, a path that is no directory ... */
};

struct local_result {
	enum local_outcome outcome;
	/* "250 2.0.0"-like status for logs and bounces: "5.1.3", "4.2.2" ... */
	char enhanced[16];
	/* what happened: "delivered to /var/vmail/example.org/bob/Maildir/new/1700000000.M12P3Q4.host,S=1234"
	 * or "cannot create /var/vmail/...: Permission denied" */
	char reason[LOCAL_REASON_MAX];
};

/*
 * local_mailbox_path - expand template for recipient ("user@domain") into
 * out. Returns 0, or -1 with res filled (LOCAL_FAILED, 5.1.3) when a part
 * is not a safe name or out is too short.
 */
int local_mailbox_path(const char *tmpl, const char *recipient, char *out, size_t outlen,
		       struct local_result *res);

/*
 * maildir_deliver - deliver content (len bytes, CRLF lines) to recipient in
 * the maildir that template gives: creates the maildir (cur/, new/, tmp/,
 * mode 0700) when missing, writes tmp/<unique>, fsyncs it, renames it into
 * new/ and fsyncs new/. hostname goes into the unique name.
 */
void maildir_deliver(const char *tmpl, const char *recipient, const char *hostname,
		     const char *sender, const char *content, size_t len,
		     struct local_result *res);

/*
 * mbox_deliver - append content to the mbox file that template gives for
 * recipient (created, mode 0600, with its directory when missing): a
 * "From sender date" line, the message with ">From " quoting (mboxrd),
 * then an empty line. The file is locked with fcntl and a dot-lock
 * (<file>.lock, skipped when the directory is not writable) for at most
 * lock_timeout seconds (then LOCAL_DEFERRED); a failed write truncates the
 * file back to its old size.
 */
void mbox_deliver(const char *tmpl, const char *recipient, const char *sender,
		  const char *content, size_t len, unsigned lock_timeout,
		  struct local_result *res);

#endif
