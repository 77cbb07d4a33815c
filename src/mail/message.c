/*
 * message.c - an Internet message in memory (RFC 5322): header fields parsed
 * over the untouched input, edits that replace whole fields, the To
 * address-list editor, and serialization. The address lists themselves
 * are tokenized by message_addrlist.c.
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

struct field {
	const char *raw; /* name, colon, value, line ending */
	size_t len;
	size_t name_len; /* without the blanks before the colon */
	size_t colon;    /* offset of the colon in raw */
	char *own;       /* raw's allocation once an edit has written the field */
};

struct message {
	char *buf; /* the input */
	size_t buf_len;
	struct field *fields;
	size_t count;
	size_t cap;
	const char *sep; /* the empty line between header and body, if any */
	size_t sep_len;
	const char *body;
	size_t body_len;
	const char *eol; /* the line ending of the lines written by edits */
	int modified;
};

/* A growing byte string; failed records an allocation failure. */
struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	int failed;
};

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

/* sb_put - append n bytes; after a failure, nothing more is stored. */
static void sb_put(struct sbuf *b, const char *s, size_t n)
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

/* sb_str - append a NUL-terminated string. */
static void sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* sb_take - the built string (NUL-terminated) and its length, or NULL with ENOMEM. */
static char *sb_take(struct sbuf *b, size_t *len)
{
	sb_put(b, "", 1);
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
 * fold_field - a new raw field "name: value" and eol, folded before blanks so
 * that lines stay within 78 characters where the blanks allow. Every
 * continuation line starts with a blank and holds a non-blank, so unfolding
 * gives back the (trimmed) value exactly. strict refuses a line over 998
 * characters (EINVAL); otherwise such a line, made of a word the message
 * already had, is written as it is.
 */
static char *fold_field(const char *name, size_t name_len, const char *v, size_t n, const char *eol,
                        int strict, size_t *out_len)
{
	struct sbuf b = {0};
	size_t line = name_len + 1;
	size_t i, end;

	trim(&v, &n);
	sb_put(&b, name, name_len);
	sb_put(&b, n ? ": " : ":", n ? 2 : 1);
	line += n ? 1 : 0;
	for (i = 0; i < n; i = end) {
		end = fold_next(v, n, i);
		if (i > 0 && line + (end - i) > MESSAGE_LINE_SOFT_MAX) {
			sb_str(&b, eol);
			line = 0;
		}
		line += end - i;
		if (strict && line > MESSAGE_LINE_MAX) {
			free(b.p);
			errno = EINVAL;
			return NULL;
		}
		sb_put(&b, v + i, end - i);
	}
	sb_str(&b, eol);
	return sb_take(&b, out_len);
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

/* field_is - field f is called name (len bytes), ignoring case. */
static int field_is(const struct field *f, const char *name, size_t len)
{
	return message_case_eq(f->raw, f->name_len, name, len);
}

/* message_header_count - how many fields are called name. */
size_t message_header_count(const struct message *m, const char *name)
{
	size_t len = strlen(name);
	size_t i, n = 0;

	for (i = 0; i < m->count; i++)
		n += field_is(&m->fields[i], name, len);
	return n;
}

/* message_header_index - where the nth field called name is, or -1. */
ssize_t message_header_index(const struct message *m, const char *name, size_t nth)
{
	size_t len = strlen(name);
	size_t i;

	for (i = 0; i < m->count; i++)
		if (field_is(&m->fields[i], name, len) && nth-- == 0)
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

/* field_replace - field f is now raw (len bytes, owned), its name name_len long. */
static void field_replace(struct field *f, char *raw, size_t len, size_t name_len)
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
	sb_put(&b, f->raw, f->len);
	sb_str(&b, m->eol);
	raw = sb_take(&b, &len);
	if (!raw)
		return -1;
	free(f->own);
	f->own = raw;
	f->raw = raw;
	f->len = len;
	return 0;
}

/*
 * insert_field - put the new raw field at position pos. A body that starts
 * with a blank only followed the header section because there was no field
 * for it to continue; now there is one, so an empty line must keep it body.
 */
static int insert_field(struct message *m, size_t pos, char *raw, size_t len, size_t name_len)
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
	field_replace(f, raw, len, name_len);
	if (m->sep_len == 0 && m->body_len > 0 && message_is_wsp(m->body[0])) {
		m->sep = m->eol;
		m->sep_len = strlen(m->eol);
	}
	m->modified = 1;
	return 0;
}

/* add_field - a new field "name: value" at the top or after the last field. */
static int add_field(struct message *m, int at_top, const char *name, const char *value)
{
	size_t len;
	char *raw;

	if (!valid_name(name) || !valid_value(value)) {
		errno = EINVAL;
		return -1;
	}
	raw = fold_field(name, strlen(name), value, strlen(value), m->eol, 1, &len);
	if (!raw)
		return -1;
	if (insert_field(m, at_top ? 0 : m->count, raw, len, strlen(name)) < 0) {
		free(raw);
		return -1;
	}
	return 0;
}

/* message_header_append - add a field after the last one. */
int message_header_append(struct message *m, const char *name, const char *value)
{
	return add_field(m, 0, name, value);
}

/* message_header_prepend - add a field at the top. */
int message_header_prepend(struct message *m, const char *name, const char *value)
{
	return add_field(m, 1, name, value);
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
		return add_field(m, 0, name, value);
	f = &m->fields[i];
	raw = fold_field(f->raw, f->name_len, value, strlen(value), m->eol, 1, &len);
	if (!raw)
		return -1;
	field_replace(f, raw, len, f->name_len);
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
	sb_put(&b, new_name, name_len);
	sb_put(&b, f->raw + f->colon, f->len - f->colon);
	return sb_take(&b, len);
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
		if (!field_is(&m->fields[i], old_name, old_len))
			continue;
		raws[k] = renamed(&m->fields[i], new_name, &len);
		if (!raws[k])
			goto fail;
		lens[k++] = len;
	}
	for (i = 0, k = 0; i < m->count; i++)
		if (field_is(&m->fields[i], old_name, old_len)) {
			field_replace(&m->fields[i], raws[k], lens[k], strlen(new_name));
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
		if (field_is(&m->fields[i], name, len))
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
/* ---- Address-list edits (over message_addrlist.c's items) ---- */

/* al_put_item - append the text of item it. */
static void al_put_item(struct sbuf *b, const struct al_list *l, const struct al_item *it)
{
	sb_put(b, l->s + it->start, it->end - it->start);
}

/*
 * al_put_members - the members of group g that do not match addr, joined by
 * commas as they were; *removed counts the others.
 */
static void al_put_members(struct sbuf *b, const struct al_list *l, size_t g, const char *addr,
                           size_t *removed)
{
	size_t k, put = 0;

	for (k = g + 1; k <= g + l->items[g].members; k++) {
		if (al_matches(l, &l->items[k], addr)) {
			(*removed)++;
			continue;
		}
		if (put++)
			sb_put(b, ",", 1);
		al_put_item(b, l, &l->items[k]);
	}
}

/*
 * al_remove - the list without the mailboxes equal to addr. The elements
 * kept are written as they were, each with the blanks that preceded it, and
 * joined by commas as before.
 */
static void al_remove(const struct al_list *l, const char *addr, struct sbuf *b, size_t *removed)
{
	size_t i = 0, put = 0;

	while (i < l->count) {
		const struct al_item *it = &l->items[i];

		if (it->kind != AL_GROUP && al_matches(l, it, addr)) {
			(*removed)++;
			i++;
			continue;
		}
		if (put++)
			sb_put(b, ",", 1);
		if (it->kind != AL_GROUP) {
			al_put_item(b, l, it);
			i++;
			continue;
		}
		sb_put(b, l->s + it->start, it->colon + 1 - it->start);
		al_put_members(b, l, i, addr, removed);
		sb_put(b, l->s + it->semi, it->end - it->semi);
		i += 1 + it->members;
	}
}

/* al_rewrite - the list with new_addr for the addr-spec of each mailbox equal to addr. */
static void al_rewrite(const struct al_list *l, const char *addr, const char *new_addr,
                       struct sbuf *b, size_t *rewritten)
{
	size_t i, pos = 0;

	for (i = 0; i < l->count; i++) {
		const struct al_item *it = &l->items[i];

		if (!al_matches(l, it, addr))
			continue;
		sb_put(b, l->s + pos, it->addr - pos);
		sb_str(b, new_addr);
		pos = it->addr_end;
		(*rewritten)++;
	}
	sb_put(b, l->s + pos, l->n - pos);
}

/* ---- The To helpers ---- */

/* valid_addr - addr is a bare addr-spec the helpers can use. */
static int valid_addr(const char *addr)
{
	struct al_item it;
	size_t n;

	if (!addr || strpbrk(addr, "\r\n"))
		return 0;
	n = strlen(addr);
	if (n == 0 || n > MESSAGE_ADDR_MAX)
		return 0;
	return al_addr_spec(addr, 0, n, &it) && it.addr == 0 && it.addr_end == n;
}

/* A To field's new raw text, built before any field is changed. */
struct to_change {
	size_t index;
	char *raw; /* NULL: remove the field */
	size_t len;
};

/*
 * to_field_edit - the change of field index, if it has mailboxes equal to
 * addr: removed (new_addr NULL) or rewritten. *n gets how many; 0 leaves
 * ch->raw unset. -1 when out of memory.
 */
static int to_field_edit(const struct message *m, size_t index, const char *addr,
                         const char *new_addr, struct to_change *ch, size_t *n)
{
	const struct field *f = &m->fields[index];
	struct sbuf b = {0};
	struct al_list l;
	size_t vlen, len;
	char *v = message_field_value(m, index, &vlen);

	*n = 0;
	if (!v || al_parse(&l, v, vlen) < 0) {
		free(v);
		return -1;
	}
	if (!l.bad) {
		if (new_addr)
			al_rewrite(&l, addr, new_addr, &b, n);
		else
			al_remove(&l, addr, &b, n);
	}
	free(l.items);
	free(v);
	v = sb_take(&b, &len);
	if (!v)
		return -1;
	ch->index = index;
	ch->raw = NULL;
	if (*n == 0 || (!new_addr && al_is_empty(v, len))) {
		free(v);
		return 0; /* unchanged, or the field is to go */
	}
	ch->raw = fold_field(f->raw, f->name_len, v, len, m->eol, 0, &ch->len);
	free(v);
	return ch->raw ? 0 : -1;
}

/* to_apply - make the changes, in field order; fields changed to NULL go. */
static void to_apply(struct message *m, struct to_change *ch, size_t nch)
{
	size_t i, j = 0, k = 0;

	for (i = 0; i < m->count; i++) {
		if (k < nch && ch[k].index == i) {
			if (!ch[k].raw) {
				free(m->fields[i].own);
				k++;
				continue;
			}
			field_replace(&m->fields[i], ch[k].raw, ch[k].len, m->fields[i].name_len);
			k++;
		}
		m->fields[j++] = m->fields[i];
	}
	m->count = j;
	m->modified = 1;
}

/*
 * to_edit - remove (new_addr NULL) or rewrite the mailboxes equal to addr in
 * every To field. Returns how many, or -1.
 */
static ssize_t to_edit(struct message *m, const char *addr, const char *new_addr)
{
	size_t nto = message_header_count(m, "To");
	struct to_change *ch;
	size_t i, k = 0, nch = 0, total = 0, n;

	if (nto == 0)
		return 0;
	ch = calloc(nto, sizeof(*ch));
	if (!ch) {
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < m->count; i++) {
		if (!field_is(&m->fields[i], "To", 2))
			continue;
		if (to_field_edit(m, i, addr, new_addr, &ch[nch], &n) < 0)
			goto fail;
		if (n) {
			nch++;
			total += n;
		}
	}
	if (nch)
		to_apply(m, ch, nch);
	free(ch);
	return (ssize_t)total;
fail:
	for (k = 0; k < nch; k++)
		free(ch[k].raw);
	free(ch);
	errno = ENOMEM;
	return -1;
}

/* message_to_remove - remove every mailbox equal to addr from the To fields. */
ssize_t message_to_remove(struct message *m, const char *addr)
{
	if (!valid_addr(addr)) {
		errno = EINVAL;
		return -1;
	}
	return to_edit(m, addr, NULL);
}

/* message_to_rewrite - replace old_addr by new_addr in the To fields. */
ssize_t message_to_rewrite(struct message *m, const char *old_addr, const char *new_addr)
{
	if (!valid_addr(old_addr) || !valid_addr(new_addr)) {
		errno = EINVAL;
		return -1;
	}
	return to_edit(m, old_addr, new_addr);
}

/*
 * to_added - list v (n bytes, tokenized in l) with addr after it. An
 * unclosed group at the end is closed first, so addr does not join it.
 */
static char *to_added(const struct al_list *l, const char *v, size_t n, const char *addr,
                      size_t *len)
{
	struct sbuf b = {0};
	const struct al_item *last = NULL;
	int close_group;
	size_t k;

	for (k = 0; k < l->count; k += 1 + (l->items[k].kind == AL_GROUP ? l->items[k].members : 0))
		last = &l->items[k];
	close_group = last && last->kind == AL_GROUP && last->semi == n;
	sb_put(&b, v, n);
	if (close_group)
		sb_put(&b, ";", 1);
	if (n > 0)
		sb_str(&b, v[n - 1] == ',' && !close_group ? " " : ", ");
	sb_str(&b, addr);
	return sb_take(&b, len);
}

/* message_to_add - add addr to the first To field, or create one. */
int message_to_add(struct message *m, const char *addr)
{
	struct al_list l;
	struct field *f;
	char *v, *list, *raw;
	size_t vlen, list_len, len;
	ssize_t i;

	if (!valid_addr(addr)) {
		errno = EINVAL;
		return -1;
	}
	i = message_header_index(m, "To", 0);
	if (i < 0)
		return add_field(m, 0, "To", addr);
	v = message_field_value(m, (size_t)i, &vlen);
	if (!v || al_parse(&l, v, vlen) < 0) {
		free(v);
		return -1;
	}
	list = l.bad ? NULL : to_added(&l, v, vlen, addr, &list_len);
	free(l.items);
	free(v);
	if (!list) {
		if (l.bad)
			errno = EBADMSG;
		return -1;
	}
	f = &m->fields[i];
	raw = fold_field(f->raw, f->name_len, list, list_len, m->eol, 0, &len);
	free(list);
	if (!raw)
		return -1;
	field_replace(f, raw, len, f->name_len);
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
