/*
 * message_raw.c - the edits a milter asks for, which message.c's do not
 * cover: a field inserted anywhere or given a new value with the folding
 * its writer chose (a DKIM signature is computed over its own field as
 * folded, so it must not be refolded), and the body replaced.
 *
 * A raw value's line breaks (CRLF or a bare LF) are written with the
 * message's line ending; each must be followed by a blank, so the field
 * stays one field, and no line may pass 998 characters. The replacement
 * body is copied and owned by the message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "message_internal.h"

/* raw_name_ok - name is 1 or more bytes 33..126 other than ':'. */
static int raw_name_ok(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++)
		if ((unsigned char)name[i] < 33 || (unsigned char)name[i] > 126 || name[i] == ':')
			return 0;
	return i > 0;
}

/*
 * raw_field - "name:" sep value eol, the value's line breaks written as
 * eol; NULL with EINVAL for a value that would not stay one field or has a
 * line over 998 characters, ENOMEM.
 */
static char *raw_field(const char *name, size_t nlen, const char *sep, const char *value,
		       const char *eol, size_t *len)
{
	struct sbuf b = {0};
	size_t i, line = nlen + 1 + strlen(sep);

	message_sb_put(&b, name, nlen);
	message_sb_str(&b, ":");
	message_sb_str(&b, sep);
	for (i = 0; value[i]; i++) {
		if (value[i] == '\r' && value[i + 1] == '\n')
			continue;
		if (value[i] == '\n') {
			if (!message_is_wsp(value[i + 1]))
				goto bad;
			message_sb_str(&b, eol);
			line = 0;
			continue;
		}
		if (value[i] == '\r' || ++line > MESSAGE_LINE_MAX)
			goto bad;
		message_sb_put(&b, value + i, 1);
	}
	message_sb_str(&b, eol);
	return message_sb_take(&b, len);
bad:
	free(b.p);
	errno = EINVAL;
	return NULL;
}

/* message_field_insert_raw - a new field at pos, its folding kept. */
int message_field_insert_raw(struct message *m, size_t pos, const char *name, const char *sep,
			     const char *value)
{
	size_t len;
	char *raw;

	if (!raw_name_ok(name)) {
		errno = EINVAL;
		return -1;
	}
	if ((raw = raw_field(name, strlen(name), sep, value, m->eol, &len)) == NULL)
		return -1;
	if (message_insert_field(m, pos < m->count ? pos : m->count, raw, len, strlen(name)) < 0) {
		free(raw);
		return -1;
	}
	return 0;
}

/* message_field_set_raw - field index's new value, its name kept as spelled. */
int message_field_set_raw(struct message *m, size_t index, const char *sep, const char *value)
{
	struct field *f;
	size_t len;
	char *raw;

	if (index >= m->count) {
		errno = ENOENT;
		return -1;
	}
	f = &m->fields[index];
	if ((raw = raw_field(f->raw, f->name_len, sep, value, m->eol, &len)) == NULL)
		return -1;
	message_field_replace(f, raw, len, f->name_len);
	m->modified = 1;
	return 0;
}

/* message_body_replace - the body becomes a copy of the len bytes at body. */
int message_body_replace(struct message *m, const char *body, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (len > 0)
		memcpy(copy, body, len);
	free(m->body_own);
	m->body_own = copy;
	m->body = copy;
	m->body_len = len;
	if (m->sep_len == 0 && len > 0) {
		m->sep = m->eol;
		m->sep_len = strlen(m->eol);
	}
	m->modified = 1;
	return 0;
}
