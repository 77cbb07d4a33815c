/*
 * local_delivery.c - delivery into mailboxes on this host: maildir and mbox.
 *
 * Blocking file operations for the delivery worker's threads: no static
 * buffer, the only shared state is the atomic counter of maildir names.
 *
 * Each delivered copy starts with "Return-Path: <sender>" (RFC 5321 4.4:
 * the final delivery records the envelope sender) and "Delivered-To:
 * <recipient>" (RFC 9228), then the message with CRLF turned into LF.
 *
 * This file holds what both formats use: the results, the mailbox path
 * from its template, making directories durably and the writer of a
 * delivered copy. The formats themselves are in local_maildir.c and
 * local_mbox.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utf8.h"
#include "io.h"
#include "local_delivery_internal.h"

#define LD_PART_MAX 255     /* a recipient part becomes one file name: NAME_MAX */
#define LD_VALUE_MAX 900    /* an address written into a header or the From_ line */
#define LD_BUF_SIZE 65536   /* the write buffer */

/* ld_res_set - fill res; the reason is cut to fit. */
void ld_res_set(struct local_result *res, enum local_outcome outcome, const char *enhanced,
                const char *fmt, ...)
{
	va_list ap;

	res->outcome = outcome;
	snprintf(res->enhanced, sizeof(res->enhanced), "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
}

/*
 * ld_res_errno - the outcome of a failed operation on path: a full disk or
 * mailbox and everything an administrator can fix (permissions, I/O) is
 * deferred; only a path through something that is no directory fails.
 */
void ld_res_errno(struct local_result *res, int err, const char *what, const char *path)
{
	char buf[128];
	const char *text = strerror_r(err, buf, sizeof(buf));

	switch (err) {
	case EDQUOT:
	case EFBIG:
		ld_res_set(res, LOCAL_DEFERRED, "4.2.2", "cannot %s %s: %s", what, path, text);
		break;
	case ENOSPC:
		ld_res_set(res, LOCAL_DEFERRED, "4.3.1", "cannot %s %s: %s", what, path, text);
		break;
	case ENOTDIR:
		ld_res_set(res, LOCAL_FAILED, "5.2.0", "cannot %s %s: %s", what, path, text);
		break;
	default:
		ld_res_set(res, LOCAL_DEFERRED, "4.3.0", "cannot %s %s: %s", what, path, text);
		break;
	}
}

/*
 * part_safe - whether a recipient part can be one file name: not empty,
 * not starting with '.', no '/', no control character (C0, DEL, C1), and
 * only well-formed UTF-8 above ASCII.
 */
static int part_safe(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i, len;
	uint32_t cp;

	if (n == 0 || n > LD_PART_MAX || p[0] == '.')
		return 0;
	for (i = 0; i < n; i += len) {
		len = utf8_char(p + i, n - i, &cp);
		if (len == 0 || cp < 0x20 || cp == '/' || (cp >= 0x7f && cp <= 0x9f))
			return 0;
	}
	return 1;
}

/* ascii_lower - lowercase the ASCII letters of s in place (UTF-8 is left alone). */
static void ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/*
 * local_unquote - the content of a quoted-string local part ("\"john
 * doe\"") with its quoted pairs resolved, or the dot-string as it is.
 * -1 when it does not fit or the quoting is broken.
 */
static int local_unquote(const char *local, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;

	if (len == 0 || local[0] != '"') {
		if (len >= outlen)
			return -1;
		memcpy(out, local, len);
		out[len] = '\0';
		return 0;
	}
	if (len < 2 || local[len - 1] != '"')
		return -1;
	for (i = 1; i < len - 1; i++) {
		if (local[i] == '"')
			return -1;
		if (local[i] == '\\' && ++i == len - 1)
			return -1;
		if (o + 1 >= outlen)
			return -1;
		out[o++] = local[i];
	}
	out[o] = '\0';
	return 0;
}

/*
 * recipient_split - the lowercased local part (unquoted) and domain of
 * recipient; each is left empty when it is not usable, which the caller
 * refuses only if the template needs it.
 */
static void recipient_split(const char *recipient, char *local, char *domain)
{
	const char *at = strrchr(recipient, '@');
	size_t llen = at != NULL ? (size_t)(at - recipient) : strlen(recipient);

	local[0] = domain[0] = '\0';
	if (local_unquote(recipient, llen, local, LD_PART_MAX + 1) < 0 || !part_safe(local))
		local[0] = '\0';
	if (at != NULL && strlen(at + 1) <= LD_PART_MAX) {
		strcpy(domain, at + 1);
		if (!part_safe(domain))
			domain[0] = '\0';
	}
	ascii_lower(local);
	ascii_lower(domain);
}

/* local_mailbox_path - expand the template for recipient. */
int local_mailbox_path(const char *tmpl, const char *recipient, char *out, size_t outlen,
                       struct local_result *res)
{
	char local[LD_PART_MAX + 1], domain[LD_PART_MAX + 1];
	const char *p, *add;
	size_t o = 0, n;

	if (tmpl == NULL || tmpl[0] != '/') {
		ld_res_set(res, LOCAL_DEFERRED, "4.3.5", "mailbox template is not an absolute path");
		return -1;
	}
	recipient_split(recipient, local, domain);
	for (p = tmpl; *p; p++) {
		add = p, n = 1;
		if (*p == '%') {
			p++;
			if (*p == 'u')
				add = local, n = strlen(local);
			else if (*p == 'd')
				add = domain, n = strlen(domain);
			else if (*p != '%') {
				ld_res_set(res, LOCAL_DEFERRED, "4.3.5",
				           "mailbox template holds an unknown %%-escape");
				return -1;
			}
			if (n == 0) {
				ld_res_set(res, LOCAL_FAILED, "5.1.3",
				           "the recipient's %s is not a safe mailbox name",
				           *p == 'u' ? "local part" : "domain");
				return -1;
			}
		}
		if (o + n >= outlen) {
			ld_res_set(res, LOCAL_FAILED, "5.1.3", "mailbox path too long");
			return -1;
		}
		memcpy(out + o, add, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

/* ld_fsync_dir - make the entries of directory path durable. */
int ld_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r, e;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	e = errno;
	close(fd);
	/* Some file systems cannot sync a directory: nothing more to do there. */
	if (r < 0 && e != EINVAL) {
		errno = e;
		return -1;
	}
	return 0;
}

/* ld_fsync_parent - fsync the directory that holds path (absolute). */
int ld_fsync_parent(char *path)
{
	char *slash = strrchr(path, '/');
	int r;

	if (slash == NULL)
		return 0;
	if (slash == path)
		return ld_fsync_dir("/");
	*slash = '\0';
	r = ld_fsync_dir(path);
	*slash = '/';
	return r;
}

/* ld_dir_mkdir - mkdir one directory (0700), syncing its parent when made; EEXIST is fine. */
int ld_dir_mkdir(char *path)
{
	if (mkdir(path, 0700) == 0)
		return ld_fsync_parent(path);
	return errno == EEXIST ? 0 : -1;
}

/*
 * ld_dir_make - make the directory path (absolute, modified and restored) and
 * the missing ones above it. An existing non-directory is left for the
 * next operation to report (ENOTDIR).
 */
int ld_dir_make(char *path)
{
	char *p;

	if (mkdir(path, 0700) == 0)
		return ld_fsync_parent(path);
	if (errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return -1;
	for (p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		int r, e;

		*p = '\0';
		r = ld_dir_mkdir(path);
		e = errno;
		*p = '/';
		if (r < 0) {
			errno = e;
			return -1;
		}
	}
	return ld_dir_mkdir(path);
}

/* ld_writer_flush - write out the buffer; the first error sticks in w->err. */
void ld_writer_flush(struct ld_writer *w)
{
	if (w->err == 0)
		w->err = io_write_all(w->fd, w->buf, w->used, -1, NULL);
	w->used = 0;
}

/* ld_writer_put - append len bytes. */
void ld_writer_put(struct ld_writer *w, const char *data, size_t len)
{
	size_t n;

	if (len == 0)
		return;
	w->total += len;
	w->last = (unsigned char)data[len - 1];
	if (w->fd < 0)
		return;
	while (len > 0 && w->err == 0) {
		if (w->used == LD_BUF_SIZE)
			ld_writer_flush(w);
		n = LD_BUF_SIZE - w->used;
		if (n > len)
			n = len;
		memcpy(w->buf + w->used, data, n);
		w->used += n;
		data += n;
		len -= n;
	}
}

/* ld_writer_puts - append a string. */
void ld_writer_puts(struct ld_writer *w, const char *s)
{
	ld_writer_put(w, s, strlen(s));
}

/*
 * ld_writer_put_value - append an address for a header or the From_ line,
 * cut at LD_VALUE_MAX bytes; control characters (and, when blank_too,
 * blanks) become bad, so that it stays on one line (one word).
 */
void ld_writer_put_value(struct ld_writer *w, const char *s, int blank_too, char bad)
{
	size_t i;
	char c;

	for (i = 0; s[i] != '\0' && i < LD_VALUE_MAX; i++) {
		c = s[i];
		if ((unsigned char)c < 0x20 || c == 0x7f || (blank_too && c == ' '))
			c = bad;
		ld_writer_put(w, &c, 1);
	}
}

/* line_is_from - whether a line matches ^>*From (mboxrd quotes those). */
static int line_is_from(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] == '>')
		i++;
	return n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/* ld_writer_put_content - append the message, CRLF turned into LF, mboxrd-quoted if asked. */
void ld_writer_put_content(struct ld_writer *w, const char *content, size_t len, int mboxrd)
{
	const char *p = content, *end = content + len, *nl;
	size_t n;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (mboxrd && line_is_from(p, n))
			ld_writer_put(w, ">", 1);
		if (nl == NULL) {
			ld_writer_put(w, p, n);
			break;
		}
		ld_writer_put(w, p, n > 0 && p[n - 1] == '\r' ? n - 1 : n);
		ld_writer_put(w, "\n", 1);
		p = nl + 1;
	}
}

/* ld_writer_put_trace - Return-Path and Delivered-To, the header fields of the delivery. */
void ld_writer_put_trace(struct ld_writer *w, const char *recipient, const char *sender)
{
	ld_writer_puts(w, "Return-Path: <");
	ld_writer_put_value(w, sender != NULL ? sender : "", 0, '?');
	ld_writer_puts(w, ">\nDelivered-To: ");
	ld_writer_put_value(w, recipient, 0, '?');
	ld_writer_puts(w, "\n");
}

/* ld_writer_open - a writer on fd with its buffer; -1 (ENOMEM) when none. */
int ld_writer_open(struct ld_writer *w, int fd)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->last = -1;
	w->buf = malloc(LD_BUF_SIZE);
	return w->buf != NULL ? 0 : -1;
}

/* ld_writer_finish - flush, fsync and close fd; 0 or -1 with errno. */
int ld_writer_finish(struct ld_writer *w)
{
	ld_writer_flush(w);
	free(w->buf);
	w->buf = NULL;
	if (w->err == 0 && fsync(w->fd) < 0)
		w->err = errno;
	if (close(w->fd) < 0 && w->err == 0)
		w->err = errno;
	if (w->err != 0) {
		errno = w->err;
		return -1;
	}
	return 0;
}
