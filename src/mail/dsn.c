/*
 * dsn.c - delivery status notifications (RFC 3464, RFC 6522, RFC 6533).
 *
 * dsn_build writes the three parts (an explanation for people, the
 * machine-readable report, the returned original) into buffers of their
 * own, picks a boundary found in none of them, then puts the message
 * together. Whatever the envelope and the content hold, the result is a
 * well-formed MIME message: CRLF line endings, no line over 998 octets.
 * What the third part returns of the original is dsn_original.c's.
 *
 * Choices:
 *  - The report is message/delivery-status with "rfc822" addresses, unless
 *    the message came with SMTPUTF8 or an address it names (sender,
 *    recipient, ORCPT) is not ASCII: then it is message/global-delivery-status
 *    (report-type=global-delivery-status), a non-ASCII address is typed
 *    "utf-8" in the utf-8-addr-unitext form of RFC 6533, and diagnostics
 *    keep their UTF-8. Outside it, non-ASCII in a diagnostic becomes '?'.
 *  - The whole original is returned only by a report about a failure, when
 *    RET=HDRS was not asked, it is at most attach_limit bytes and it can be
 *    carried unchanged (no NUL, no bare CR, no line over 998 octets; a bare
 *    LF becomes CRLF). Otherwise its header section is returned, cut at a
 *    line boundary past max(attach_limit, 8 KiB), lines over 998 octets
 *    cut short. An SMTPUTF8 original is message/global (or
 *    message/global-headers), else message/rfc822 (text/rfc822-headers).
 *  - Text from outside (addresses, diagnostics, ENVID, host names) is
 *    cleaned: control characters become blanks, runs of blanks one blank,
 *    invalid UTF-8 '?', and long values are cut with "...". Header fields
 *    are folded at blanks past 78 columns and split at 998 when a word is
 *    longer.
 *  - A part with octets above 127 is marked "Content-Transfer-Encoding:
 *    8bit", and then the message too: it needs a BODY=8BITMIME transfer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"
#include "dsn.h"
#include "dsn_internal.h"
#include "mail_header.h"
#include "smtp_parse.h"

#define DSN_LINE_SOFT 78  /* RFC 5322 2.1.1: fold past this when possible */
#define DSN_TEXT_WIDTH 76 /* the explanation's lines */
#define DSN_HOST_MAX 253
#define DSN_VALUE_MAX 1000   /* a cleaned address */
#define DSN_DIAG_MAX 4000    /* a cleaned diagnostic */
#define DSN_DATE_MAX 64

/* dsn_buf_put - append n bytes. */
void dsn_buf_put(struct dsn_buf *b, const char *s, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom || n == 0)
		return;
	if (n > b->cap - b->len) {
		cap = b->cap != 0 ? b->cap : 4096;
		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2) {
				b->oom = 1;
				return;
			}
			cap *= 2;
		}
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* dsn_buf_puts - append a string. */
void dsn_buf_puts(struct dsn_buf *b, const char *s)
{
	dsn_buf_put(b, s, strlen(s));
}

/* buf_printf - append formatted text (short: one field or line). */
static void buf_printf(struct dsn_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void buf_printf(struct dsn_buf *b, const char *fmt, ...)
{
	char line[DSN_LINE_MAX + 3];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		dsn_buf_put(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* buf_has_8bit - whether the buffer holds an octet above 127. */
static int buf_has_8bit(const struct dsn_buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++)
		if ((unsigned char)b->p[i] >= 0x80)
			return 1;
	return 0;
}

/* is_ascii - whether s (NULL counts as empty) has no octet above 127. */
static int is_ascii(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/*
 * text_clean - s made fit for one line into out (outlen > 4): control
 * characters and blanks become single blanks (none at either end), a
 * character that is not valid UTF-8, a C1 control, or (without utf8) any
 * non-ASCII one becomes '?'; cut with "..." when it does not fit.
 */
static void text_clean(const char *s, int utf8, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t o = 0, clen, n, need;
	int blank = 0;
	uint32_t cp;

	while (*p != '\0') {
		if (*p <= ' ' || *p == 0x7f) {
			blank = o > 0;
			p++;
			continue;
		}
		n = strnlen((const char *)p, 4);
		clen = utf8_char(p, n, &cp);
		need = (clen <= 1 || !utf8 || (cp >= 0x80 && cp <= 0x9f)) ? 1 : clen;
		if (o + blank + need + 4 > outlen) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (blank)
			out[o++] = ' ';
		blank = 0;
		if (need == 1 && clen != 1) {
			out[o++] = '?';
		} else {
			memcpy(out + o, p, need);
			o += need;
		}
		p += clen != 0 ? clen : 1;
	}
	out[o] = '\0';
}

/*
 * host_clean - a host name for Reporting-MTA, From and Message-ID (letters,
 * digits, '.' and '-'), or with extra (":[]" for an address literal) for
 * Remote-MTA; fallback when nothing is left.
 */
static void host_clean(const char *s, const char *extra, char *out, size_t outlen,
                       const char *fallback)
{
	size_t o = 0;

	for (; s != NULL && *s != '\0' && o + 1 < outlen; s++)
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' || strchr(extra, *s) != NULL)
			out[o++] = *s;
	out[o] = '\0';
	if (o == 0)
		snprintf(out, outlen, "%s", fallback);
}

/* char_start - the largest n <= max that does not split a UTF-8 character of w. */
static size_t char_start(const char *w, size_t max)
{
	size_t n = max;

	while (n > 0 && ((unsigned char)w[n] & 0xc0) == 0x80)
		n--;
	return n > 0 ? n : max;
}

/*
 * put_wrapped - first, then text (cleaned: single blanks) broken at blanks
 * so that lines stay within soft columns when the words allow, never
 * beyond DSN_LINE_MAX; each further line starts with cont. Ends with CRLF.
 */
static void put_wrapped(struct dsn_buf *b, const char *first, const char *text, const char *cont,
                        size_t soft)
{
	size_t col = strlen(first), clen = strlen(cont), wl, n;
	const char *w = text, *e;
	int empty = 1;

	dsn_buf_puts(b, first);
	while (*w != '\0') {
		while (*w == ' ')
			w++;
		if (*w == '\0')
			break;
		e = strchr(w, ' ');
		if (e == NULL)
			e = w + strlen(w);
		wl = (size_t)(e - w);
		if (!empty && col + 1 + wl > soft) {
			dsn_buf_puts(b, "\r\n");
			dsn_buf_puts(b, cont);
			col = clen;
			empty = 1;
		}
		if (!empty) {
			dsn_buf_put(b, " ", 1);
			col++;
		}
		while (col + wl > DSN_LINE_MAX) {
			n = char_start(w, DSN_LINE_MAX - col);
			dsn_buf_put(b, w, n);
			dsn_buf_puts(b, "\r\n");
			dsn_buf_puts(b, cont);
			col = clen;
			w += n;
			wl -= n;
		}
		dsn_buf_put(b, w, wl);
		col += wl;
		empty = 0;
		w = e;
	}
	dsn_buf_puts(b, "\r\n");
}

/* put_field - a header field "Name: value", folded. */
static void put_field(struct dsn_buf *b, const char *name, const char *value)
{
	char first[64];

	snprintf(first, sizeof(first), "%s: ", name);
	put_wrapped(b, first, value, " ", DSN_LINE_SOFT);
}

/* unitext - addr in the utf-8-addr-unitext form of RFC 6533 (cut to fit out). */
static void unitext(const char *addr, char *out, size_t outlen)
{
	const unsigned char *p;
	size_t o = 0;

	for (p = (const unsigned char *)addr; *p != '\0'; p++) {
		if (*p <= ' ' || *p == 0x7f || *p == '+' || *p == '=' || *p == '\\') {
			if (o + 7 >= outlen)
				break;
			o += (size_t)snprintf(out + o, outlen - o, "\\x{%02X}", *p);
		} else {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
}

/*
 * put_address - "Name: rfc822; addr", or "Name: utf-8; <unitext>" for a
 * non-ASCII address (only met in a global report: see dsn_is_global).
 */
static void put_address(struct dsn_buf *b, const char *name, const char *addr, int global)
{
	char clean[DSN_VALUE_MAX], enc[DSN_VALUE_MAX * 2], value[DSN_VALUE_MAX * 2 + 16];

	text_clean(addr, global, clean, sizeof(clean));
	if (is_ascii(clean)) {
		snprintf(value, sizeof(value), "rfc822; %s", clean);
	} else {
		unitext(clean, enc, sizeof(enc));
		snprintf(value, sizeof(value), "utf-8; %s", enc);
	}
	put_field(b, name, value);
}

/*
 * put_orcpt - Original-Recipient from ORCPT: its type as given and its
 * decoded address (a "utf-8" one is already in its RFC 6533 form).
 */
static void put_orcpt(struct dsn_buf *b, const struct envelope_rcpt *r, int global)
{
	char type[32], clean[DSN_VALUE_MAX], value[DSN_VALUE_MAX + 40];
	size_t o = 0;
	const char *t;

	if (r->orcpt == NULL || r->orcpt[0] == '\0')
		return;
	for (t = r->orcpt_type != NULL ? r->orcpt_type : ""; *t != '\0' && o + 1 < sizeof(type);
	     t++)
		if ((*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') || *t == '-')
			type[o++] = *t;
		else if (*t >= 'A' && *t <= 'Z')
			type[o++] = (char)(*t - 'A' + 'a');
	type[o] = '\0';
	text_clean(r->orcpt, global, clean, sizeof(clean));
	if (o == 0 || clean[0] == '\0')
		return;
	if (!is_ascii(clean) && strcmp(type, "utf-8") != 0) {
		put_address(b, "Original-Recipient", clean, global);
		return;
	}
	snprintf(value, sizeof(value), "%s; %s", type, clean);
	put_field(b, "Original-Recipient", value);
}

/* dsn_is_global - whether the report must be message/global-delivery-status. */
static int dsn_is_global(const struct envelope *env, const struct dsn_rcpt *rcpts, size_t n)
{
	size_t i;

	if (env->smtputf8 || !is_ascii(env->mail_from))
		return 1;
	for (i = 0; i < n; i++)
		if (!is_ascii(rcpts[i].rcpt->address) || !is_ascii(rcpts[i].rcpt->orcpt))
			return 1;
	return 0;
}

/* status_valid - whether s is a status code "c.sss.ddd" (RFC 3463) of class 2, 4 or 5. */
static int status_valid(const char *s)
{
	size_t n;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	s += 2;
	n = strspn(s, "0123456789");
	if (n < 1 || n > 3 || s[n] != '.')
		return 0;
	s += n + 1;
	n = strspn(s, "0123456789");
	return n >= 1 && n <= 3 && s[n] == '\0';
}

/* action_name - the Action: value. */
static const char *action_name(enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return "failed";
	case DSN_DELAYED:
		return "delayed";
	case DSN_DELIVERED:
		return "delivered";
	case DSN_RELAYED:
		return "relayed";
	}
	return "failed";
}

/* rcpt_status - the Status: value, a default of the action's class when none valid was given. */
static const char *rcpt_status(const struct dsn_rcpt *r)
{
	if (status_valid(r->status))
		return r->status;
	if (r->action == DSN_FAILED)
		return "5.0.0";
	return r->action == DSN_DELAYED ? "4.0.0" : "2.0.0";
}

/* put_rcpt_fields - the per-recipient block of the report (RFC 3464 2.3). */
static void put_rcpt_fields(struct dsn_buf *b, const struct dsn_rcpt *r, int global)
{
	char host[DSN_HOST_MAX + 1], diag[DSN_DIAG_MAX], value[DSN_DIAG_MAX + 32];
	char date[DSN_DATE_MAX];

	put_orcpt(b, r->rcpt, global);
	put_address(b, "Final-Recipient", r->rcpt->address, global);
	put_field(b, "Action", action_name(r->action));
	put_field(b, "Status", rcpt_status(r));
	host_clean(r->remote_mta, ":[]", host, sizeof(host), "");
	if (host[0] != '\0') {
		snprintf(value, sizeof(value), "dns; %s", host);
		put_field(b, "Remote-MTA", value);
	}
	text_clean(r->diagnostic, global, diag, sizeof(diag));
	if (diag[0] != '\0') {
		snprintf(value, sizeof(value), "%s; %s", r->diagnostic_smtp ? "smtp" : "x-vsmtpd",
		         diag);
		put_field(b, "Diagnostic-Code", value);
	}
	if (r->last_attempt > 0) {
		mail_header_date(r->last_attempt, date, sizeof(date));
		put_field(b, "Last-Attempt-Date", date);
	}
	if (r->action == DSN_DELAYED && r->will_retry_until > 0) {
		mail_header_date(r->will_retry_until, date, sizeof(date));
		put_field(b, "Will-Retry-Until", date);
	}
}

/* status_part - the delivery-status body: per-message fields, a block per recipient. */
static void status_part(struct dsn_buf *b, const char *host, const struct envelope *env,
                        const struct dsn_rcpt *rcpts, size_t n, int global)
{
	char value[DSN_VALUE_MAX + 16], id[ENVELOPE_ID_MAX + 1];
	size_t i;

	snprintf(value, sizeof(value), "dns; %s", host);
	put_field(b, "Reporting-MTA", value);
	host_clean(env->id, "", id, sizeof(id), "");
	if (id[0] != '\0')
		put_field(b, "X-Vsmtpd-Queue-ID", id);
	put_address(b, "X-Vsmtpd-Sender", env->mail_from, global);
	if (env->envid != NULL && env->envid[0] != '\0') {
		/* RFC 3461: printable ASCII, xtext-decoded. */
		text_clean(env->envid, 0, value, SMTP_ENVID_MAX + 4);
		put_field(b, "Original-Envelope-Id", value);
	}
	if (env->received_at > 0) {
		mail_header_date(env->received_at, value, sizeof(value));
		put_field(b, "Arrival-Date", value);
	}
	for (i = 0; i < n; i++) {
		dsn_buf_puts(b, "\r\n");
		put_rcpt_fields(b, &rcpts[i], global);
	}
}

/* rcpt_line - "<addr>: what happened" for the explanation. */
static void rcpt_line(struct dsn_buf *b, const struct dsn_rcpt *r)
{
	char addr[DSN_VALUE_MAX], diag[DSN_DIAG_MAX], host[DSN_HOST_MAX + 1], date[DSN_DATE_MAX];
	char line[DSN_VALUE_MAX + DSN_DIAG_MAX + DSN_HOST_MAX + DSN_DATE_MAX + 64];
	int n;

	text_clean(r->rcpt->address, 1, addr, sizeof(addr));
	text_clean(r->diagnostic, 1, diag, sizeof(diag));
	host_clean(r->remote_mta, ":[]", host, sizeof(host), "");
	if (diag[0] == '\0')
		n = snprintf(line, sizeof(line), "<%s>: status %s", addr, rcpt_status(r));
	else if (host[0] != '\0' && r->diagnostic_smtp)
		n = snprintf(line, sizeof(line), "<%s>: host %s said: %s", addr, host, diag);
	else
		n = snprintf(line, sizeof(line), "<%s>: %s", addr, diag);
	if (r->action == DSN_DELAYED && r->will_retry_until > 0 && n > 0 &&
	    (size_t)n < sizeof(line)) {
		mail_header_date(r->will_retry_until, date, sizeof(date));
		snprintf(line + n, sizeof(line) - (size_t)n, " (retried until %s)", date);
	}
	put_wrapped(b, "", line, "    ", DSN_TEXT_WIDTH);
	dsn_buf_puts(b, "\r\n");
}

/* text_section - the paragraph for one action and its recipients, when it has any. */
static void text_section(struct dsn_buf *b, const struct dsn_rcpt *rcpts, size_t n,
                         enum dsn_action action, const char *intro)
{
	size_t i;
	int any = 0;

	for (i = 0; i < n; i++)
		any |= rcpts[i].action == action;
	if (!any)
		return;
	put_wrapped(b, "", intro, "", DSN_TEXT_WIDTH);
	dsn_buf_puts(b, "\r\n");
	for (i = 0; i < n; i++)
		if (rcpts[i].action == action)
			rcpt_line(b, &rcpts[i]);
}

/* text_part - the explanation for people (text/plain; charset=utf-8). */
static void text_part(struct dsn_buf *b, const char *host, const struct dsn_rcpt *rcpts, size_t n,
                      const struct dsn_original *orig)
{
	char line[DSN_HOST_MAX + 128];

	snprintf(line, sizeof(line), "This is the mail system at host %s.", host);
	put_wrapped(b, "", line, "", DSN_TEXT_WIDTH);
	dsn_buf_puts(b, "\r\n");
	text_section(b, rcpts, n, DSN_FAILED,
	             "Your message could not be delivered to one or more of its recipients. "
	             "The mail system has given up on them; each address below is followed by "
	             "the reason.");
	text_section(b, rcpts, n, DSN_DELAYED,
	             "Your message has not been delivered yet to one or more of its recipients. "
	             "The mail system keeps trying for a while; there is no need to send the "
	             "message again.");
	text_section(b, rcpts, n, DSN_DELIVERED,
	             "Your message was delivered to these recipients, as you asked to be told:");
	text_section(b, rcpts, n, DSN_RELAYED,
	             "Your message was passed on for these recipients to a mail system that sends "
	             "no delivery reports; you will not hear more about them:");
	if (orig->full)
		put_wrapped(b, "", "Your message is attached below.", "", DSN_TEXT_WIDTH);
	else
		put_wrapped(b, "", orig->why, "", DSN_TEXT_WIDTH);
	dsn_buf_puts(b, "\r\n");
	snprintf(line, sizeof(line), "If you need help, forward this report to postmaster@%s.",
	         host);
	put_wrapped(b, "", line, "", DSN_TEXT_WIDTH);
}

/* buf_contains - whether needle occurs in b. */
static int buf_contains(const struct dsn_buf *b, const char *needle)
{
	return b->len > 0 && memmem(b->p, b->len, needle, strlen(needle)) != NULL;
}

/* dsn_boundary - a boundary that none of the parts contain. */
static void dsn_boundary(char *out, size_t outlen, const struct dsn_buf *parts, size_t nparts)
{
	unsigned long q;
	size_t i;
	int clash;

	do {
		uint64_t r = mail_header_random(&q);

		/* "=_" cannot occur in quoted-printable or base64 text. */
		snprintf(out, outlen, "=_vsmtpd_%016llx_%lu", (unsigned long long)r, q);
		clash = 0;
		for (i = 0; i < nparts; i++)
			clash |= buf_contains(&parts[i], out);
	} while (clash);
}

/* dsn_subject - after the most serious action reported. */
static const char *dsn_subject(const struct dsn_rcpt *rcpts, size_t n)
{
	int failed = 0, delayed = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		failed |= rcpts[i].action == DSN_FAILED;
		delayed |= rcpts[i].action == DSN_DELAYED;
	}
	if (failed)
		return "Undelivered Mail Returned to Sender";
	return delayed ? "Delayed Mail (still being retried)" : "Successful Mail Delivery Report";
}

/* put_headers - the header of the notification. */
static void put_headers(struct dsn_buf *b, const char *host, const struct envelope *env,
                        const struct dsn_rcpt *rcpts, size_t n, int global, int eightbit,
                        const char *boundary, int64_t now)
{
	char value[DSN_VALUE_MAX + 16], clean[DSN_VALUE_MAX];
	snprintf(value, sizeof(value), "Mail Delivery System <MAILER-DAEMON@%s>", host);
	put_field(b, "From", value);
	text_clean(env->mail_from, 1, clean, sizeof(clean));
	snprintf(value, sizeof(value), "<%s>", clean);
	put_field(b, "To", value);
	put_field(b, "Subject", dsn_subject(rcpts, n));
	mail_header_date(now, value, sizeof(value));
	put_field(b, "Date", value);
	mail_header_message_id(host, now, value, sizeof(value));
	put_field(b, "Message-ID", value);
	put_field(b, "Auto-Submitted", "auto-replied");
	put_field(b, "MIME-Version", "1.0");
	buf_printf(b, "Content-Type: multipart/report; report-type=%s;\r\n\tboundary=\"%s\"\r\n",
	           global ? "global-delivery-status" : "delivery-status", boundary);
	if (eightbit)
		put_field(b, "Content-Transfer-Encoding", "8bit");
	dsn_buf_puts(b, "\r\n");
}

/* put_part - a body part: delimiter, its header, its content. */
static void put_part(struct dsn_buf *b, const char *boundary, const char *description,
                     const char *type, const struct dsn_buf *content)
{
	buf_printf(b, "--%s\r\n", boundary);
	put_field(b, "Content-Description", description);
	put_field(b, "Content-Type", type);
	if (buf_has_8bit(content))
		put_field(b, "Content-Transfer-Encoding", "8bit");
	dsn_buf_puts(b, "\r\n");
	dsn_buf_put(b, content->p, content->len);
	/* The content ends with CRLF; this one belongs to the next delimiter. */
	dsn_buf_puts(b, "\r\n");
}

/* dsn_wanted - whether the sender asked (or, for failures, did not decline) to hear. */
int dsn_wanted(const struct envelope *env, const struct envelope_rcpt *rcpt, enum dsn_action action)
{
	unsigned notify = rcpt->notify;

	if (env->mail_from == NULL || env->mail_from[0] == '\0' || (notify & SMTP_NOTIFY_NEVER))
		return 0;
	switch (action) {
	case DSN_FAILED:
		/* RFC 3461 4.1: without NOTIFY, failures are reported. */
		return notify == 0 || (notify & SMTP_NOTIFY_FAILURE) != 0;
	case DSN_DELAYED:
		return (notify & SMTP_NOTIFY_DELAY) != 0;
	case DSN_DELIVERED:
	case DSN_RELAYED:
		return (notify & SMTP_NOTIFY_SUCCESS) != 0;
	}
	return 0;
}

/* dsn_args_valid - what dsn_build refuses with EINVAL. */
static int dsn_args_valid(const struct envelope *env, const char *content, size_t len,
                          const struct dsn_rcpt *rcpts, size_t nrcpts)
{
	size_t i;

	if (env == NULL || env->mail_from == NULL || env->mail_from[0] == '\0' || nrcpts == 0 ||
	    rcpts == NULL || (content == NULL && len > 0))
		return 0;
	for (i = 0; i < nrcpts; i++)
		if (rcpts[i].rcpt == NULL || rcpts[i].rcpt->address == NULL)
			return 0;
	return 1;
}

/* dsn_build - the notification about rcpts. */
char *dsn_build(const char *hostname, const struct envelope *env, const char *content, size_t len,
                const struct dsn_rcpt *rcpts, size_t nrcpts, size_t attach_limit, int64_t now,
                size_t *out_len)
{
	struct dsn_buf parts[2] = {{0}}, msg = {0};
	struct dsn_original orig;
	char host[DSN_HOST_MAX + 1], boundary[64];
	const char *desc, *type;
	int global, failure = 0, oom, eightbit;
	size_t i;

	if (!dsn_args_valid(env, content, len, rcpts, nrcpts)) {
		errno = EINVAL;
		return NULL;
	}
	host_clean(hostname, "", host, sizeof(host), "localhost");
	global = dsn_is_global(env, rcpts, nrcpts);
	for (i = 0; i < nrcpts; i++)
		failure |= rcpts[i].action == DSN_FAILED;
	dsn_original(&orig, env, content != NULL ? content : "", len, failure, attach_limit);
	text_part(&parts[0], host, rcpts, nrcpts, &orig);
	status_part(&parts[1], host, env, rcpts, nrcpts, global);
	{
		struct dsn_buf all[3] = {parts[0], parts[1], orig.part};

		dsn_boundary(boundary, sizeof(boundary), all, 3);
	}
	eightbit = buf_has_8bit(&parts[0]) || buf_has_8bit(&parts[1]) || buf_has_8bit(&orig.part);
	put_headers(&msg, host, env, rcpts, nrcpts, global, eightbit, boundary, now);
	dsn_buf_puts(&msg, "This is a MIME-encapsulated message.\r\n\r\n");
	put_part(&msg, boundary, "Notification", "text/plain; charset=utf-8", &parts[0]);
	put_part(&msg, boundary, "Delivery report",
	         global ? "message/global-delivery-status" : "message/delivery-status", &parts[1]);
	type = dsn_original_type(env, orig.full, &desc);
	put_part(&msg, boundary, desc, type, &orig.part);
	buf_printf(&msg, "--%s--\r\n", boundary);
	oom = msg.oom || parts[0].oom || parts[1].oom || orig.part.oom;
	free(parts[0].p);
	free(parts[1].p);
	free(orig.part.p);
	if (oom) {
		free(msg.p);
		errno = ENOMEM;
		return NULL;
	}
	*out_len = msg.len;
	return msg.p;
}
