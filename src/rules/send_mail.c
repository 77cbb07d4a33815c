/*
 * send_mail.c - the rules' send_mail(): a file of the rules folder made
 * into a message and queued (see send_mail.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "mail_header.h"
#include "send_mail.h"
#include "smtp_parse.h"
#include "queue_client.h"

#define SEND_MAIL_LINE_MAX 998 /* octets of a line, CRLF excluded (RFC 5322 2.1.1) */

/* send_mail_path_ok - relative, and every component a real name. */
int send_mail_path_ok(const char *path)
{
	size_t len = strlen(path), n;
	const char *p = path;

	if (len == 0 || len > SEND_MAIL_PATH_MAX || path[0] == '/')
		return 0;
	for (;;) {
		n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		if (p[n] == '\0')
			return 1;
		p += n + 1;
	}
}

/* send_mail_open - openat2 with RESOLVE_BENEATH: the kernel keeps the
 * lookup (symbolic links included) inside the folder. */
int send_mail_open(int dirfd, const char *path, uint64_t max_size)
{
	struct open_how how = {
	    .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, /* a FIFO must not block us */
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	struct stat st;
	int fd;

	if (!send_mail_path_ok(path)) {
		errno = EACCES;
		return -1;
	}
	fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd < 0) {
		if (errno == EXDEV || errno == ELOOP)
			errno = EACCES;
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max_size) {
		close(fd);
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		return -1;
	}
	return fd;
}

/* send_mail_open_rules - open the rules folder, then the file in it. */
int send_mail_open_rules(const char *rules_file, const char *path, uint64_t max_size)
{
	char dir[PATH_MAX], *slash;
	int dfd, fd, err;

	snprintf(dir, sizeof(dir), "%s", rules_file);
	if ((slash = strrchr(dir, '/')) == NULL) {
		errno = EINVAL; /* the configuration makes it absolute */
		return -1;
	}
	*(slash == dir ? slash + 1 : slash) = '\0';
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	fd = send_mail_open(dfd, path, max_size);
	err = errno;
	close(dfd);
	errno = err;
	return fd;
}

/* The lines of a text: each call of line_next gives the next one. */
struct line_iter {
	const char *text;
	size_t len, pos;
};

/*
 * line_next - the next line (start, length without its end); 1, 0 at the
 * end of the text, -1 for a NUL, a bare CR or a line too long.
 */
static int line_next(struct line_iter *it, const char **start, size_t *n)
{
	const char *p = it->text + it->pos, *end = it->text + it->len;
	size_t i = 0;

	if (p >= end)
		return 0;
	while (p + i < end && p[i] != '\n') {
		if (p[i] == '\0' || (p[i] == '\r' && (p + i + 1 == end || p[i + 1] != '\n')))
			return -1;
		i++;
	}
	*start = p;
	*n = i > 0 && p[i - 1] == '\r' ? i - 1 : i;
	it->pos += i + (p + i < end); /* past the LF, when there is one */
	return *n > SEND_MAIL_LINE_MAX ? -1 : 1;
}

/* header_name_len - the length of the field name a line starts with
 * ("Subject:" gives 7), 0 when it starts no header field. */
static size_t header_name_len(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && p[i] > 32 && p[i] < 127 && p[i] != ':'; i++)
		;
	return i > 0 && i < n && p[i] == ':' ? i : 0;
}

/* out_line - append a line and CRLF (room was reserved). */
static void out_line(char *out, size_t *o, const char *p, size_t n)
{
	memcpy(out + *o, p, n);
	*o += n;
	out[(*o)++] = '\r';
	out[(*o)++] = '\n';
}

/* The fields send_mail_compose adds when the header lacks them. */
struct missing_fields {
	int date, id, from;
	char date_value[MAIL_HEADER_DATE_MAX], id_value[300], from_value[300];
};

/* put_missing - the missing fields, then the blank line ending the header. */
static void put_missing(char *out, size_t *o, const struct missing_fields *f)
{
	if (f->date)
		*o += (size_t)sprintf(out + *o, "Date: %s\r\n", f->date_value);
	if (f->id)
		*o += (size_t)sprintf(out + *o, "Message-ID: %s\r\n", f->id_value);
	if (f->from)
		*o += (size_t)sprintf(out + *o, "From: %s\r\n", f->from_value);
	out_line(out, o, "", 0);
}

/* header_ends - whether line number nth (from 1) p/n ends the header: a
 * blank line, or a line that is neither a field nor a continuation. */
static int header_ends(const char *p, size_t n, size_t nth)
{
	return n == 0 || (header_name_len(p, n) == 0 && !(nth > 1 && (p[0] == ' ' || p[0] == '\t')));
}

/* send_mail_compose - normalize the lines; add the fields a message needs. */
char *send_mail_compose(const char *text, size_t len, const char *from, const char *host,
			int64_t now, size_t *out_len, int *eightbit)
{
	struct line_iter it = {.text = text, .len = len};
	struct missing_fields f = {.date = 1, .id = 1, .from = 1};
	int in_header = 1, rc;
	size_t lines = 0, total = 0, o = 0, n, i;
	const char *p;
	char *out;

	if (len == 0) {
		errno = EBADMSG;
		return NULL;
	}
	*eightbit = 0;
	for (i = 0; i < len; i++)
		*eightbit |= (unsigned char)text[i] > 127;
	/* First pass: check every line, see which fields the header has. */
	while ((rc = line_next(&it, &p, &n)) > 0) {
		size_t name = header_name_len(p, n);

		total++;
		if (in_header && header_ends(p, n, ++lines)) {
			in_header = 0;
		} else if (in_header) {
			f.date &= !(name == 4 && strncasecmp(p, "Date", 4) == 0);
			f.id &= !(name == 10 && strncasecmp(p, "Message-ID", 10) == 0);
			f.from &= !(name == 4 && strncasecmp(p, "From", 4) == 0);
		}
	}
	if (rc < 0) {
		errno = EBADMSG;
		return NULL;
	}
	mail_header_date(now, f.date_value, sizeof(f.date_value));
	mail_header_message_id(host, now, f.id_value, sizeof(f.id_value));
	if (from[0] != '\0')
		snprintf(f.from_value, sizeof(f.from_value), "%s", from);
	else
		snprintf(f.from_value, sizeof(f.from_value), "MAILER-DAEMON@%s", host);
	for (i = 0; f.from && f.from_value[i] != '\0'; i++)
		*eightbit |= (unsigned char)f.from_value[i] > 127; /* an SMTPUTF8 sender */
	/* Each line may gain a CR and an LF; then the added fields (names,
	 * values, CRLFs) and the blank line. */
	if ((out = malloc(len + 2 * total + sizeof(f) + 64)) == NULL)
		return NULL;
	/* Second pass: the header as it is, the missing fields, the body. */
	it.pos = 0;
	in_header = 1;
	lines = 0;
	while (line_next(&it, &p, &n) > 0) {
		if (in_header && header_ends(p, n, ++lines)) {
			in_header = 0;
			put_missing(out, &o, &f);
			if (n == 0)
				continue; /* the file's own blank line is the one just written */
		}
		out_line(out, &o, p, n);
	}
	if (in_header) /* a header and no body */
		put_missing(out, &o, &f);
	*out_len = o;
	return out;
}

/* send_mail_is_ascii - whether s has only ASCII octets. */
static int send_mail_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s > 127)
			return 0;
	return 1;
}

/* send_mail_envelope - the envelope of a message vsmtpd sends itself. 0 or ENOMEM. */
static int send_mail_envelope(struct envelope *env, const struct rule_mail *mail,
			      const char *host, int eightbit)
{
	int utf8 = !send_mail_is_ascii(mail->from);
	size_t i;

	if (envelope_init_local(env, host, mail->from) < 0 ||
	    (mail->relay[0] != '\0' && envelope_set(&env->relay, mail->relay) < 0))
		return ENOMEM;
	for (i = 0; i < mail->nto; i++) {
		if (envelope_add_rcpt(env, mail->to[i], 0, NULL, NULL) < 0)
			return ENOMEM;
		utf8 |= !send_mail_is_ascii(mail->to[i]);
	}
	if (utf8 && envelope_set(&env->protocol, "UTF8SMTP") < 0)
		return ENOMEM;
	env->smtputf8 = utf8;
	env->body = eightbit ? SMTP_BODY_8BITMIME : SMTP_BODY_7BIT;
	env->faccept = 1; /* nor the delivery rules: none can send mail about it in turn */
	return 0;
}

/* send_mail_read - all of fd (at most max bytes) into a malloc'ed buffer. */
static char *send_mail_read(int fd, uint64_t max, size_t *len)
{
	struct stat st;
	char *buf;
	ssize_t n;
	size_t got = 0;

	if (fstat(fd, &st) < 0)
		return NULL;
	if ((uint64_t)st.st_size > max) {
		errno = EFBIG;
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		return NULL;
	while (got < (size_t)st.st_size &&
	       (n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return NULL;
		}
		got += (size_t)n;
	}
	*len = got; /* a file that shrank meanwhile is taken as it is now */
	return buf;
}

/* send_mail_build - read the file and compose the message. */
int send_mail_build(int fd, const char *from, const char *host, uint64_t max_size, char **msg,
		    size_t *len, int *eightbit)
{
	size_t tlen = 0;
	char *text;

	*msg = NULL;
	if ((text = send_mail_read(fd, max_size, &tlen)) == NULL)
		return errno;
	*msg = send_mail_compose(text, tlen, from, host, time(NULL), len, eightbit);
	free(text);
	if (*msg == NULL)
		return errno;
	if (*len > max_size) {
		free(*msg);
		*msg = NULL;
		return EFBIG;
	}
	return 0;
}

/* send_mail_queue - ask for the file, compose, queue. */
int send_mail_queue(int queue_fd, const struct rule_mail *mail, const char *host,
		    uint64_t max_size, char id[SPOOL_ID_LEN + 1])
{
	struct envelope env = {0};
	char *msg = NULL;
	size_t mlen;
	int fd = -1, err, eightbit;

	if ((err = queue_client_open_rules_file(queue_fd, mail->path, &fd)) != 0)
		return err;
	err = send_mail_build(fd, mail->from, host, max_size, &msg, &mlen, &eightbit);
	close(fd);
	if (err == 0 && (err = send_mail_envelope(&env, mail, host, eightbit)) == 0 &&
	    (err = queue_client_submit(queue_fd, &env, msg, mlen)) == 0)
		memcpy(id, env.id, SPOOL_ID_LEN + 1);
	free(msg);
	envelope_clear(&env);
	return err;
}
