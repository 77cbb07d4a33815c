/*
 * dsn.h - delivery status notifications (RFC 3464, RFC 3462, RFC 6522).
 *
 * Builds the message that tells a sender what became of some recipients:
 * a multipart/report; report-type=delivery-status with a human-readable
 * part, a message/delivery-status part (per-message fields, then one block
 * per recipient) and the original message or its header only. It is
 * sent from the null sender, carries "Auto-Submitted: auto-replied"
 * (RFC 3834) and is never built for a message whose sender is the null
 * sender (the caller checks: dsn_wanted).
 *
 * The whole original (message/rfc822) is returned only by a report that
 * holds a failure, when RET=HDRS was not asked, the content is at most
 * attach_limit bytes and it can travel unchanged (no NUL, no bare CR, no
 * line over 998 octets); otherwise its header section (text/rfc822-headers,
 * at most max(attach_limit, 8 KiB), cut at a line).
 *
 * Internationalized mail (RFC 6533): when the message came with SMTPUTF8 or
 * an address of the report is not ASCII, the report is
 * message/global-delivery-status (report-type=global-delivery-status), a
 * non-ASCII address is typed "utf-8" (utf-8-addr-unitext form), and the
 * original of an SMTPUTF8 message is message/global (message/global-headers).
 *
 * The result is well-formed whatever the inputs: CRLF lines of at most 998
 * octets, fields folded, control characters in addresses and diagnostics
 * made blanks. A part with 8-bit octets (UTF-8 text, an 8-bit original)
 * says "Content-Transfer-Encoding: 8bit", and so does the message then: it
 * must be sent with BODY=8BITMIME (and SMTPUTF8 when the sender's address
 * is not ASCII).
 */
#ifndef VSMTPD_DSN_H
#define VSMTPD_DSN_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

enum dsn_action {
	DSN_FAILED,    /* Action: failed */
	DSN_DELAYED,   /* Action: delayed (a delay warning) */
	DSN_DELIVERED, /* Action: delivered (NOTIFY=SUCCESS, final delivery) */
	DSN_RELAYED,   /* Action: relayed (NOTIFY=SUCCESS, to a peer without DSN) */
};

/* One recipient the notification is about. */
struct dsn_rcpt {
	const struct envelope_rcpt *rcpt; /* Final-Recipient, Original-Recipient */
	enum dsn_action action;
	const char *status;      /* "5.1.1" */
	const char *remote_mta;  /* "mx.example.org", NULL when none answered */
	const char *diagnostic;  /* the peer's reply ("550 5.1.1 no such user") or the reason */
	int diagnostic_smtp;     /* Diagnostic-Code: smtp; ... (else x-vsmtpd;) */
	int64_t last_attempt;    /* Last-Attempt-Date, 0 when none */
	int64_t will_retry_until; /* DSN_DELAYED: Will-Retry-Until */
};

/*
 * dsn_wanted - whether the sender of env should hear about rcpt for
 * action: never for the null sender, NOTIFY=NEVER, DELAY/SUCCESS only when
 * asked for; failures by default.
 */
int dsn_wanted(const struct envelope *env, const struct envelope_rcpt *rcpt,
	       enum dsn_action action);

/*
 * dsn_build - the notification for the message env / content (len bytes,
 * CRLF lines, as queued), about rcpts, written by hostname (Reporting-MTA,
 * From: MAILER-DAEMON@hostname) at time now. attach_limit bounds the copy of
 * the original: past it only the header is returned. Returns a malloc'ed
 * message with CRLF line endings (length in *out_len), or NULL with errno
 * ENOMEM, or EINVAL for the null sender, no recipient or a recipient
 * without an address.
 */
char *dsn_build(const char *hostname, const struct envelope *env, const char *content,
		size_t len, const struct dsn_rcpt *rcpts, size_t nrcpts, size_t attach_limit,
		int64_t now, size_t *out_len);

#endif
