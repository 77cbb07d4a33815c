/*
 * dsn_original.c - what a delivery status notification returns of the
 * original message (RFC 6522, RFC 6532), the third part dsn.c puts
 * together.
 *
 * The whole original goes back only in a report about a failure, when
 * RET=HDRS was not asked, it is at most attach_limit bytes and it can be
 * carried unchanged; a bare LF is then made CRLF. Otherwise its header
 * section goes back, whole lines up to a limit, each cut at 998 octets,
 * and the explanation says why. An SMTPUTF8 original is message/global,
 * else message/rfc822, or their header-only forms.
 */
#include <string.h>

#include "dsn.h"
#include "dsn_internal.h"
#include "smtp_parse.h"

/*
 * orig_carriable - whether content can go into message/rfc822 unchanged:
 * no NUL, no CR but before LF, no line longer than DSN_LINE_MAX.
 */
static int orig_carriable(const char *c, size_t len)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		if (c[i] == '\n') {
			col = 0;
			continue;
		}
		if (c[i] == '\0' || (c[i] == '\r' && (i + 1 == len || c[i + 1] != '\n')))
			return 0;
		if (c[i] != '\r' && ++col > DSN_LINE_MAX)
			return 0;
	}
	return 1;
}

/* orig_full - the whole content, a bare LF made CRLF, ending with CRLF. */
static void orig_full(struct dsn_buf *b, const char *c, size_t len)
{
	const char *p = c, *end = c + len, *nl;
	size_t n;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		dsn_buf_put(b, p, n);
		dsn_buf_puts(b, "\r\n");
		p = nl != NULL ? nl + 1 : end;
	}
}

/* line_is_field - whether a header line starts a field ("name:") or continues one. */
static int line_is_field(const char *p, size_t n, int first)
{
	size_t i = 0;

	if (!first && n > 0 && (p[0] == ' ' || p[0] == '\t'))
		return 1;
	while (i < n && p[i] > ' ' && p[i] < 0x7f && p[i] != ':')
		i++;
	if (i == 0)
		return 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < n && p[i] == ':';
}

/* put_header_line - one line of the returned header: NUL dropped, lone CR a blank, cut at 998. */
static void put_header_line(struct dsn_buf *b, const char *p, size_t n)
{
	size_t i, col = 0;
	char c;

	for (i = 0; i < n && col < DSN_LINE_MAX; i++) {
		c = p[i] == '\r' ? ' ' : p[i];
		if (c == '\0')
			continue;
		dsn_buf_put(b, &c, 1);
		col++;
	}
	dsn_buf_puts(b, "\r\n");
}

/*
 * orig_headers - the header section of content (up to the empty line, or
 * the first line that is no field), whole lines up to limit bytes.
 */
static void orig_headers(struct dsn_buf *b, const char *c, size_t len, size_t limit)
{
	const char *p = c, *end = c + len, *nl;
	size_t n, used = 0;

	while (p < end && used < limit) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (!line_is_field(p, n, p == c))
			break;
		put_header_line(b, p, n);
		used += n + 2;
		p = nl != NULL ? nl + 1 : end;
	}
}

/* dsn_original - what to return of the original, and why only its header when so. */
void dsn_original(struct dsn_original *o, const struct envelope *env, const char *content,
                  size_t len, int failure, size_t attach_limit)
{
	memset(o, 0, sizeof(*o));
	if (!failure)
		o->why = "The header of your message is attached below.";
	else if (env->ret == SMTP_RET_HDRS)
		o->why = "The header of your message is attached below (you asked for the "
		         "header only).";
	else if (len > attach_limit)
		o->why = "The header of your message is attached below; the whole message is "
		         "too large to be returned.";
	else if (!orig_carriable(content, len))
		o->why = "The header of your message is attached below; the whole message "
		         "cannot be returned unchanged.";
	else
		o->full = 1;
	if (o->full)
		orig_full(&o->part, content, len);
	else
		orig_headers(&o->part, content, len,
		             attach_limit > DSN_HEADERS_MIN ? attach_limit : DSN_HEADERS_MIN);
}

/* dsn_original_type - the media type and description of the returned original. */
const char *dsn_original_type(const struct envelope *env, int full, const char **description)
{
	*description = full ? "Undelivered Message" : "Message Headers";
	if (env->smtputf8)
		return full ? "message/global" : "message/global-headers";
	return full ? "message/rfc822" : "text/rfc822-headers";
}
