/*
 * message.c - an Internet message in memory (RFC 5322): header fields parsed
 * over the untouched input, edits that replace whole fields, and
 * serialization. The To address-list editor is message_to.c; the address
 * lists themselves are tokenized by message_addrlist.c.
 *
 * The input is never changed. A field is a span of it until an edit writes
 * the field anew into a buffer of its own; untouched spans are written back
 * as they were, which is what makes the round trip exact. The field array
 * grows by doubling so that parsing stays linear however many fields there
 * are; an edit builds everything it needs before changing anything, so a
 * failed edit leaves the message as it was.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "message_internal.h"

/* ---- Bytes ---- */

/* message_is_wsp - SP or HTAB, the blanks of RFC 5322. */
int message_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* is_name_char - a byte allowed in a field name (RFC 5322 2.2). */
static int is_name_char(char c)
{
	return (unsigned char)c >= 33 && (unsigned char)c <= 126 && c != ':';
}

/* ascii_lower - ASCII lower case, independent of the locale. */
static unsigned char ascii_lower(char c)
{
	unsigned char u = (unsigned char)c;

	return (u >= 'A' && u <= 'Z') ? (unsigned char)(u - 'A' + 'a') : u;
}

/* message_case_eq - a (alen) and b (blen) are equal ignoring ASCII case. */
int message_case_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return 0;
	return 1;
}

/* trim - narrow [*s, *s + *n) to leave out leading and trailing blanks. */
static void trim(const char **s, size_t *n)
{
	while (*n > 0 && message_is_wsp((*s)[0])) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && message_is_wsp((*s)[*n - 1]))
		(*n)--;
}

/* eol_len - the length of the line ending that closes raw (0 when none). */
static size_t eol_len(const char *raw, size_t len)
{
	if (len == 0 || raw[len - 1] != '\n')
		return 0;
	return (len >= 2 && raw[len - 2] == '\r') ? 2 : 1;
}

/* message_sb_put - append n bytes; after a failure, nothing more is stored. */
void message_sb_put(struct sbuf *b, const char *s, size_t n)
{
	size_t cap = b->cap ? b->cap : GROW_MIN;
	char *p;

	if (b->failed || n == 0)
		return;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			b->failed = 1;
			return;
		}
		cap *= 2;
	}
	if (cap != b->cap) {
		p = realloc(b->p, cap);
		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* message_sb_str - append a NUL-terminated string. */
void message_sb_str(struct sbuf *b, const char *s)
{
	message_sb_put(b, s, strlen(s));
}

/* message_sb_take - the built string (NUL-terminated) and its length, or NULL with ENOMEM. */
char *message_sb_take(struct sbuf *b, size_t *len)
{
	message_sb_put(b, "", 1);
	if (b->failed) {
		free(b->p);
		errno = ENOMEM;
		return NULL;
	}
	*len = b->len - 1;
	return b->p;
}

/* ---- Names and values from the caller ---- */

/* valid_name - name is a field name: 1 or more bytes 33..126 but ':'. */
static int valid_name(const char *name)
{
	size_t i;

	if (!name || !name[0])
		return 0;
	for (i = 0; name[i]; i++)
		if (!is_name_char(name[i]))
			return 0;
	return 1;
}

/* valid_value - value can go into a field: no CR, no LF. */
static int valid_value(const char *value)
{
	return value && !strpbrk(value, "\r\n");
}

/*
 * fold_next - the end of the folding segment that starts at v[i]: its blanks,
 * then up to the next blank that follows a non-blank. A blank after a
 * backslash is not a fold point, so that no quoted-pair is ever split.
 */
static size_t fold_next(const char *v, size_t n, size_t i)
{
	size_t p = i;

	while (p < n && message_is_wsp(v[p]))
		p++;
	while (p < n &&
	       !(p > i && message_is_wsp(v[p]) && !message_is_wsp(v[p - 1]) && v[p - 1] != '\\'))
		p++;
	return p;
}

/*
 * message_fold_field - a new raw field "name: value" and eol, folded before blanks so
 * that lines stay within 78 characters where the blanks allow. Every
 * continuation line starts with a blank and holds a non-blank, so unfolding
 * gives back the (trimmed) value exactly. strict refuses a line over 998
 * characters (EINVAL); otherwise such a line, made of a word the message
 * already had, is written as it is.
 */
char *message_fold_field(const char *name, size_t name_len, const char *v, size_t n,
                         const char *eol, int strict, size_t *out_len)
{
	struct sbuf b = {0};
	size_t line = name_len + 1;
	size_t i, end;

	trim(&v, &n);
	message_sb_put(&b, name, name_len);
	message_sb_put(&b, n ? ": " : ":", n ? 2 : 1);
	line += n ? 1 : 0;
	for (i = 0; i < n; i = end) {
		end = fold_next(v, n, i);
		if (i > 0 && line + (end - i) > MESSAGE_LINE_SOFT_MAX) {
			message_sb_str(&b, eol);
			line = 0;
		}
		line += end - i;
		if (strict && line > MESSAGE_LINE_MAX) {
			free(b.p);
			errno = EINVAL;
			return NULL;
		}
		message_sb_put(&b, v + i, end - i);
	}
	message_sb_str(&b, eol);
	return message_sb_take(&b, out_len);
}

/* ---- Parsing ---- */

/* detect_eol - the line ending edits write: a bare LF only if the first line has one. */
static const char *detect_eol(const char *s, size_t n)
{
	const char *lf = memchr(s, '\n', n);

	if (lf && (lf == s || lf[-1] != '\r'))
		return "\n";
	return "\r\n";
}

/*
 * field_colon - when the line at s starts a field, the offset of its colon
 * (and the name's length in *name_len); 0 otherwise. The scan cannot leave
 * the line: neither a name byte nor a blank is a LF.
 */
static size_t field_colon(const char *s, size_t n, size_t *name_len)
{
	size_t i = 0;

	while (i < n && is_name_char(s[i]))
		i++;
	if (i == 0)
		return 0;
	*name_len = i;
	while (i < n && message_is_wsp(s[i]))
		i++;
	return (i < n && s[i] == ':') ? i : 0;
}

/* reserve - room for extra more fields. */
static int reserve(struct message *m, size_t extra)
{
	size_t cap = m->cap ? m->cap : GROW_MIN;
	struct field *f;

	if (extra > SIZE_MAX / sizeof(*f) - m->count)
		goto nomem;
	while (cap - m->count < extra)
		cap *= 2;
	if (cap == m->cap)
		return 0;
	if (cap > SIZE_MAX / sizeof(*f))
		goto nomem;
	f = realloc(m->fields, cap * sizeof(*f));
	if (!f)
		goto nomem;
	m->fields = f;
	m->cap = cap;
	return 0;
nomem:
	errno = ENOMEM;
	return -1;
}

/* push_field - record the field starting at raw, its first line len bytes long. */
static int push_field(struct message *m, const char *raw, size_t len, size_t name_len, size_t colon)
{
	struct field *f;

	if (reserve(m, 1) < 0)
		return -1;
	f = &m->fields[m->count++];
	f->raw = raw;
	f->len = len;
	f->name_len = name_len;
	f->colon = colon;
	f->own = NULL;
	return 0;
}

/* is_empty_line - the line [s, s + len) is only a line ending. */
static int is_empty_line(const char *s, size_t len)
{
	return (len == 1 && s[0] == '\n') || (len == 2 && s[0] == '\r' && s[1] == '\n');
}

/* parse - split m->buf into fields, separator and body. */
static int parse(struct message *m)
{
	const char *s = m->buf;
	size_t n = m->buf_len;
	size_t i = 0;

	m->eol = detect_eol(s, n);
	while (i < n) {
		const char *lf = memchr(s + i, '\n', n - i);
		size_t next = lf ? (size_t)(lf - s) + 1 : n;
		size_t name_len = 0, colon;

		if (is_empty_line(s + i, next - i)) {
			m->sep = s + i;
			m->sep_len = next - i;
			i = next;
			break;
		}
		if (message_is_wsp(s[i])) {
			if (m->count == 0)
				break;
			/* A continuation line directly follows its field. */
			m->fields[m->count - 1].len += next - i;
			i = next;
			continue;
		}
		colon = field_colon(s + i, next - i, &name_len);
		if (!colon)
			break;
		if (push_field(m, s + i, next - i, name_len, colon) < 0)
			return -1;
		i = next;
	}
	m->body = s + i;
	m->body_len = n - i;
	return 0;
}

/* message_parse_take - parse buf, which the message then owns. */
struct message *message_parse_take(char *buf, size_t len)
{
	struct message *m;

	if (!buf && len) {
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	m->buf = buf;
	m->buf_len = len;
	if (!buf)
		m->buf = calloc(1, 1); /* so that every pointer into it is a real one */
	if (!m->buf || parse(m) < 0) {
		if (!buf)
			free(m->buf);
		free(m->fields);
		free(m);
		errno = ENOMEM;
		return NULL;
	}
	return m;
}

/* message_parse - parse a copy of buf. */
struct message *message_parse(const char *buf, size_t len)
{
	char *copy;
	struct message *m;

	if (!buf && len) {
		errno = EINVAL;
		return NULL;
	}
	copy = malloc(len ? len : 1);
	if (!copy) {
		errno = ENOMEM;
		return NULL;
	}
	if (len)
		memcpy(copy, buf, len);
	m = message_parse_take(copy, len);
	if (!m)
		free(copy);
	return m;
}

/* message_free - free m and the fields edits wrote. */
void message_free(struct message *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->count; i++)
		free(m->fields[i].own);
	free(m->fields);
	free(m->buf);
	free(m->body_own);
	free(m);
}

/* message_modified - non-zero once an edit changed m. */
int message_modified(const struct message *m)
{
	return m->modified;
}

/* ---- Queries ---- */

/* message_field_count - the number of fields. */
size_t message_field_count(const struct message *m)
{
	return m->count;
}

/* message_field_name - field index's name as written. */
const char *message_field_name(const struct message *m, size_t index, size_t *len)
{
	if (index >= m->count)
		return NULL;
	*len = m->fields[index].name_len;
	return m->fields[index].raw;
}

/* message_field_raw - field index's bytes. */
const char *message_field_raw(const struct message *m, size_t index, size_t *len)
{
	if (index >= m->count)
		return NULL;
	*len = m->fields[index].len;
	return m->fields[index].raw;
}

/*
 * unfold - a malloc'ed copy of v without its line breaks (every line break
 * inside a field is followed by a blank) and trimmed.
 */
static char *unfold(const char *v, size_t n, size_t *out_len)
{
	char *out = malloc(n + 1);
	const char *t;
	size_t o = 0, i;

	if (!out) {
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (v[i] == '\n' || (v[i] == '\r' && i + 1 < n && v[i + 1] == '\n'))
			continue;
		out[o++] = v[i];
	}
	t = out;
	trim(&t, &o);
	memmove(out, t, o);
	out[o] = '\0';
	if (out_len)
		*out_len = o;
	return out;
}

/* message_field_value - field index's unfolded value. */
char *message_field_value(const struct message *m, size_t index, size_t *len)
{
	const struct field *f;
	size_t start;

	if (index >= m->count) {
		errno = ENOENT;
		return NULL;
	}
	f = &m->fields[index];
	start = f->colon + 1;
	return unfold(f->raw + start, f->len - start - eol_len(f->raw, f->len), len);
}

/* message_field_is - field f is called name (len bytes), ignoring case. */
int message_field_is(const struct field *f, const char *name, size_t len)
{
	return message_case_eq(f->raw, f->name_len, name, len);
}

/* message_header_count - how many fields are called name. */
size_t message_header_count(const struct message *m, const char *name)
{
	size_t len = strlen(name);
	size_t i, n = 0;

	for (i = 0; i < m->count; i++)
		n += message_field_is(&m->fields[i], name, len);
	return n;
}

/* message_header_index - where the nth field called name is, or -1. */
ssize_t message_header_index(const struct message *m, const char *name, size_t nth)
{
	size_t len = strlen(name);
	size_t i;

	for (i = 0; i < m->count; i++)
		if (message_field_is(&m->fields[i], name, len) && nth-- == 0)
			return (ssize_t)i;
	return -1;
}

/* message_header_get - the unfolded value of the nth field called name. */
char *message_header_get(const struct message *m, const char *name, size_t nth, size_t *len)
{
	ssize_t i = message_header_index(m, name, nth);

	if (i < 0) {
		errno = ENOENT;
		return NULL;
	}
	return message_field_value(m, (size_t)i, len);
}

/* ---- Edits of whole fields ---- */

/* message_field_replace - field f is now raw (len bytes, owned), its name name_len long. */
void message_field_replace(struct field *f, char *raw, size_t len, size_t name_len)
{
	free(f->own);
	f->own = raw;
	f->raw = raw;
	f->len = len;
	f->name_len = name_len;
	f->colon = name_len;
}

/*
 * terminate_last - give the last field the line ending it lacks when it
 * ended the input, before a field goes after it.
 */
static int terminate_last(struct message *m)
{
	struct field *f;
	struct sbuf b = {0};
	size_t len;
	char *raw;

	if (m->count == 0)
		return 0;
	f = &m->fields[m->count - 1];
	if (eol_len(f->raw, f->len))
		return 0;
	message_sb_put(&b, f->raw, f->len);
	message_sb_str(&b, m->eol);
	raw = message_sb_take(&b, &len);
	if (!raw)
		return -1;
	free(f->own);
	f->own = raw;
	f->raw = raw;
	f->len = len;
	return 0;
}

/*
 * message_insert_field - put the new raw field at position pos. A body that starts
 * with a blank only followed the header section because there was no field
 * for it to continue; now there is one, so an empty line must keep it body.
 */
int message_insert_field(struct message *m, size_t pos, char *raw, size_t len, size_t name_len)
{
	struct field *f;

	if (reserve(m, 1) < 0)
		return -1;
	if (pos == m->count && terminate_last(m) < 0)
		return -1;
	f = &m->fields[pos];
	memmove(f + 1, f, (m->count - pos) * sizeof(*f));
	m->count++;
	f->own = NULL;
	message_field_replace(f, raw, len, name_len);
	if (m->sep_len == 0 && m->body_len > 0 && message_is_wsp(m->body[0])) {
		m->sep = m->eol;
		m->sep_len = strlen(m->eol);
	}
	m->modified = 1;
	return 0;
}

/* message_add_field - a new field "name: value" at the top or after the last field. */
int message_add_field(struct message *m, int at_top, const char *name, const char *value)
{
	size_t len;
	char *raw;

	if (!valid_name(name) || !valid_value(value)) {
		errno = EINVAL;
		return -1;
	}
	raw = message_fold_field(name, strlen(name), value, strlen(value), m->eol, 1, &len);
	if (!raw)
		return -1;
	if (message_insert_field(m, at_top ? 0 : m->count, raw, len, strlen(name)) < 0) {
		free(raw);
		return -1;
	}
	return 0;
}

/* message_header_append - add a field after the last one. */
int message_header_append(struct message *m, const char *name, const char *value)
{
	return message_add_field(m, 0, name, value);
}

/* message_header_prepend - add a field at the top. */
int message_header_prepend(struct message *m, const char *name, const char *value)
{
	return message_add_field(m, 1, name, value);
}

/* message_header_set - replace the value of the first field called name, or append. */
int message_header_set(struct message *m, const char *name, const char *value)
{
	struct field *f;
	ssize_t i;
	size_t len;
	char *raw;

	if (!valid_name(name) || !valid_value(value)) {
		errno = EINVAL;
		return -1;
	}
	i = message_header_index(m, name, 0);
	if (i < 0)
		return message_add_field(m, 0, name, value);
	f = &m->fields[i];
	raw = message_fold_field(f->raw, f->name_len, value, strlen(value), m->eol, 1, &len);
	if (!raw)
		return -1;
	message_field_replace(f, raw, len, f->name_len);
	m->modified = 1;
	return 0;
}

/* first_line_rest - the length of f's first line from the colon on, its ending left out. */
static size_t first_line_rest(const struct field *f)
{
	const char *lf = memchr(f->raw + f->colon, '\n', f->len - f->colon);
	size_t end = lf ? (size_t)(lf - f->raw) : f->len;

	if (lf && end > f->colon && f->raw[end - 1] == '\r')
		end--;
	return end - f->colon;
}

/*
 * renamed - f's raw with new_name before its colon, in a new buffer; NULL with
 * EINVAL when that makes the first line too long and it was not already.
 */
static char *renamed(const struct field *f, const char *new_name, size_t *len)
{
	size_t name_len = strlen(new_name);
	size_t rest = first_line_rest(f);
	struct sbuf b = {0};

	if (name_len + rest > MESSAGE_LINE_MAX && name_len > f->colon) {
		errno = EINVAL;
		return NULL;
	}
	message_sb_put(&b, new_name, name_len);
	message_sb_put(&b, f->raw + f->colon, f->len - f->colon);
	return message_sb_take(&b, len);
}

/* message_header_rename - rename every field called old_name. */
ssize_t message_header_rename(struct message *m, const char *old_name, const char *new_name)
{
	size_t old_len, n, i, k, len;
	char **raws;
	size_t *lens;

	if (!valid_name(old_name) || !valid_name(new_name)) {
		errno = EINVAL;
		return -1;
	}
	n = message_header_count(m, old_name);
	if (n == 0)
		return 0;
	old_len = strlen(old_name);
	raws = calloc(n, sizeof(*raws));
	lens = calloc(n, sizeof(*lens));
	if (!raws || !lens) {
		errno = ENOMEM;
		goto fail;
	}
	for (i = 0, k = 0; i < m->count; i++) {
		if (!message_field_is(&m->fields[i], old_name, old_len))
			continue;
		raws[k] = renamed(&m->fields[i], new_name, &len);
		if (!raws[k])
			goto fail;
		lens[k++] = len;
	}
	for (i = 0, k = 0; i < m->count; i++)
		if (message_field_is(&m->fields[i], old_name, old_len)) {
			message_field_replace(&m->fields[i], raws[k], lens[k], strlen(new_name));
			k++;
		}
	free(raws);
	free(lens);
	m->modified = 1;
	return (ssize_t)n;
fail:
	for (k = 0; raws && k < n; k++)
		free(raws[k]);
	free(raws);
	free(lens);
	return -1;
}

/* message_header_remove - remove every field called name. */
ssize_t message_header_remove(struct message *m, const char *name)
{
	size_t len, i, j = 0;

	if (!valid_name(name)) {
		errno = EINVAL;
		return -1;
	}
	len = strlen(name);
	for (i = 0; i < m->count; i++) {
		if (message_field_is(&m->fields[i], name, len))
			free(m->fields[i].own);
		else
			m->fields[j++] = m->fields[i];
	}
	if (j == m->count)
		return 0;
	len = m->count - j;
	m->count = j;
	m->modified = 1;
	return (ssize_t)len;
}

/* message_field_remove - remove the field at index. */
int message_field_remove(struct message *m, size_t index)
{
	if (index >= m->count) {
		errno = ENOENT;
		return -1;
	}
	free(m->fields[index].own);
	memmove(&m->fields[index], &m->fields[index + 1],
		(m->count - index - 1) * sizeof(m->fields[0]));
	m->count--;
	m->modified = 1;
	return 0;
}

/* ---- Serialization ---- */

/* message_header_size - the header section's length, separator included. */
size_t message_header_size(const struct message *m)
{
	size_t i, n = m->sep_len;

	for (i = 0; i < m->count; i++)
		n += m->fields[i].len;
	return n;
}

/* message_size - the serialized message's length. */
size_t message_size(const struct message *m)
{
	return message_header_size(m) + m->body_len;
}

/* message_body - the body and its length. */
const char *message_body(const struct message *m, size_t *len)
{
	*len = m->body_len;
	return m->body;
}

/* emit - hand n bytes to sink, never an empty piece. */
static void emit(message_sink sink, void *arg, const char *buf, size_t n)
{
	if (n)
		sink(arg, buf, n);
}

/* message_write_header - the fields then the separator, to sink. */
void message_write_header(const struct message *m, message_sink sink, void *arg)
{
	size_t i;

	for (i = 0; i < m->count; i++)
		emit(sink, arg, m->fields[i].raw, m->fields[i].len);
	emit(sink, arg, m->sep, m->sep_len);
}

/* message_write - the whole message, to sink. */
void message_write(const struct message *m, message_sink sink, void *arg)
{
	message_write_header(m, sink, arg);
	emit(sink, arg, m->body, m->body_len);
}

/* copy_sink - append to a buffer known to be large enough. */
static void copy_sink(void *arg, const char *buf, size_t len)
{
	char **p = arg;

	memcpy(*p, buf, len);
	*p += len;
}

/* message_serialize - the whole message in a new buffer. */
char *message_serialize(const struct message *m, size_t *len)
{
	size_t size = message_size(m);
	char *out = size < SIZE_MAX ? malloc(size + 1) : NULL;
	char *p = out;

	if (!out) {
		errno = ENOMEM;
		return NULL;
	}
	message_write(m, copy_sink, &p);
	*p = '\0';
	*len = size;
	return out;
}
