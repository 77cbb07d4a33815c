/*
 * local_delivery.h - delivery into mailboxes on this host: maildir and mbox.
 *
 * Both are plain blocking file operations, safe to call from several
 * threads at once (the delivery worker runs them off its event loop). A
 * mailbox path comes from a template of the configuration (an absolute
 * path): %d is the recipient's domain, %u its local part, %% a '%'.
 *
 * Mailbox names. The local part is the whole of it (a "+detail" included);
 * a quoted-string local part ("\"John Doe\"@example.org") is used
 * unquoted, its quoted pairs resolved (john doe). The domain is what
 * follows the last '@'. ASCII letters of both are lowercased; UTF-8 is
 * kept as it is. A part the template uses is refused as a bad mailbox name
 * (LOCAL_FAILED, 5.1.3) when it could leave the template's directory or
 * make an odd file name: empty, starting with '.' (so "." and ".."),
 * holding '/', a control character (C0, DEL, C1) or bytes that are not
 * well-formed UTF-8, or longer than 255 bytes. A recipient without '@'
 * ("postmaster") has an empty domain.
 *
 * The message is written with "Return-Path: <sender>" (RFC 5321 4.4: the
 * final delivery records the envelope sender) and "Delivered-To:
 * <recipient>" (RFC 9228) in front, in that order; its line endings are
 * turned from CRLF into LF (the Unix convention of mailbox files). Nothing
 * is reported delivered before it is on stable storage (fsync of the file
 * and, for maildir, of new/ and of every directory created on the way).
 *
 * Outcomes. Trouble an administrator can fix does not bounce mail:
 *  - LOCAL_FAILED 5.1.3: a bad mailbox name, a path too long, an mbox
 *    path ending in ".lock" (the dot-lock of another mailbox);
 *  - LOCAL_FAILED 5.2.0: a path through something that is no directory
 *    (ENOTDIR); an mbox that is a symbolic link, not a regular file, or a
 *    file with more than one hard link;
 *  - LOCAL_DEFERRED 4.2.2: EDQUOT, EFBIG (mailbox full);
 *  - LOCAL_DEFERRED 4.3.1: ENOSPC (mail system full);
 *  - LOCAL_DEFERRED 4.2.0: the mbox stayed locked for lock_timeout;
 *  - LOCAL_DEFERRED 4.3.5: a template that is not absolute or has an
 *    unknown %-escape (the configuration check refuses those already);
 *  - LOCAL_DEFERRED 4.3.0: anything else, EACCES and EIO included.
 * A failed delivery leaves nothing behind: no maildir file in tmp/ or new/,
 * no partial message in an mbox.
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
 * out. Returns 0, or -1 with res filled: LOCAL_FAILED 5.1.3 when a part
 * is not a safe name or out is too short, LOCAL_DEFERRED 4.3.5 for a bad
 * template.
 */
int local_mailbox_path(const char *tmpl, const char *recipient, char *out, size_t outlen,
		       struct local_result *res);

/*
 * maildir_deliver - deliver content (len bytes, CRLF lines) to recipient in
 * the maildir that template gives: creates the maildir (cur/, new/, tmp/,
 * and missing parents, mode 0700) when missing, writes
 * tmp/<sec>.M<usec>P<pid>Q<counter>.<host>,S=<size>, fsyncs it, moves it
 * into new/ (never replacing a file) and fsyncs new/. hostname goes into
 * the name with '/' and ':' as \057 and \072; size is the file's.
 */
void maildir_deliver(const char *tmpl, const char *recipient, const char *hostname,
		     const char *sender, const char *content, size_t len,
		     struct local_result *res);

/*
 * mbox_deliver - append content to the mbox file that template gives for
 * recipient (created, mode 0600, with its directory when missing): a
 * "From sender Www Mmm dd hh:mm:ss yyyy" line (UTC; MAILER-DAEMON for the
 * null sender, blanks and control characters of the sender as '_'), the
 * message with mboxrd quoting (a line matching ^>*From  gets one more
 * '>'), a final LF when it has none, then an empty line. The file is never
 * opened through a symbolic link. It is locked with a dot-lock
 * (<file>.lock, skipped when the directory is not writable; one older than
 * 5 minutes is stale and removed) and an fcntl write lock (an open file
 * description lock, so that threads exclude each other too), each tried
 * every 100 ms until lock_timeout seconds have passed (then
 * LOCAL_DEFERRED 4.2.0); a failed write truncates the file back to its old
 * size.
 */
void mbox_deliver(const char *tmpl, const char *recipient, const char *sender,
		  const char *content, size_t len, unsigned lock_timeout,
		  struct local_result *res);

#endif
