/*
 * message_addrlist.c - the address-list tokenizer (RFC 5322 3.4) behind the
 * To helpers of message_to.c: al_parse() splits a field value into items
 * (mailboxes, groups with their members, and elements it does not
 * understand, kept as they are), each a span of the value, and tells
 * whether the list is lexically sound enough to be changed. Quoted strings,
 * domain literals, nested comments and angle-addrs are skipped whole, so a
 * comma or '@' inside one never splits or ends anything.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message_internal.h"

/* What al_scan passed over: angle-addrs, and anything out of place. */
struct al_span {
	size_t angles;
	size_t angle; /* where the last angle-addr opened */
	int stray;
};

/* al_delimited - past the quoted string or domain literal opening at s[i]. */
static size_t al_delimited(const char *s, size_t n, size_t i, char close)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++; /* a quoted-pair: the next byte is not special */
		else if (s[i] == close)
			return i + 1;
	}
	return AL_ERR;
}

/* al_comment - past the (possibly nested) comment opening at s[i]. */
static size_t al_comment(const char *s, size_t n, size_t i)
{
	size_t depth = 0;

	for (; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && --depth == 0)
			return i + 1;
	}
	return AL_ERR;
}

static size_t al_skip(const char *s, size_t n, size_t i);

/* al_angle - past the angle-addr opening at s[i]; another '<' inside is an error. */
static size_t al_angle(const char *s, size_t n, size_t i)
{
	for (i++; i < n && i != AL_ERR;) {
		if (s[i] == '>')
			return i + 1;
		if (s[i] == '<')
			return AL_ERR;
		i = al_skip(s, n, i);
	}
	return AL_ERR;
}

/* al_skip - past the construct (or the plain byte) at s[i]; AL_ERR when unterminated. */
static size_t al_skip(const char *s, size_t n, size_t i)
{
	switch (s[i]) {
	case '"':
		return al_delimited(s, n, i, '"');
	case '[':
		return al_delimited(s, n, i, ']');
	case '(':
		return al_comment(s, n, i);
	case '<':
		return al_angle(s, n, i);
	default:
		return i + 1;
	}
}

/* is_stop - c is one of the characters in stops (NUL never is). */
static int is_stop(char c, const char *stops)
{
	return c != '\0' && strchr(stops, c) != NULL;
}

/*
 * al_scan - from s[i], the position of the first of stops outside quoted
 * strings, comments, literals and angle-addrs; the end when there is none
 * (also after a lexical error, which marks the list bad).
 */
static size_t al_scan(struct al_list *l, size_t i, const char *stops, struct al_span *sp)
{
	while (i < l->n && !is_stop(l->s[i], stops)) {
		if (l->s[i] == '<') {
			sp->angles++;
			sp->angle = i;
		} else if (l->s[i] == '>') {
			sp->stray = 1;
		}
		i = al_skip(l->s, l->n, i);
		if (i == AL_ERR) {
			l->bad = 1;
			return l->n;
		}
	}
	return i;
}

/* al_cfws_end - past the blanks and comments from s[p], up to end. */
static size_t al_cfws_end(const char *s, size_t p, size_t end)
{
	while (p < end) {
		if (message_is_wsp(s[p])) {
			p++;
		} else if (s[p] == '(') {
			size_t q = al_comment(s, end, p);

			if (q == AL_ERR)
				return p;
			p = q;
		} else {
			break;
		}
	}
	return p;
}

/* addr_at - where the '@' between local part and domain of the addr-spec is, or AL_ERR. */
static size_t addr_at(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] != '@') {
		i = s[i] == '"' ? al_delimited(s, n, i, '"') : i + 1;
		if (i == AL_ERR)
			return AL_ERR;
	}
	if (i == 0 || i + 1 >= n)
		return AL_ERR;
	return i;
}

/*
 * al_word_end - past the run of addr-spec bytes from s[p]: up to a blank or
 * a comment, quoted strings and literals skipped. AL_ERR at a special that
 * has no place in an addr-spec.
 */
static size_t al_word_end(const char *s, size_t p, size_t end)
{
	while (p < end) {
		char c = s[p];

		if (c == '"' || c == '[') {
			p = al_delimited(s, end, p, c == '"' ? '"' : ']');
			if (p == AL_ERR)
				return AL_ERR;
		} else if (message_is_wsp(c) || c == '(') {
			break;
		} else if (is_stop(c, ")<>]:;\\,")) {
			return AL_ERR;
		} else {
			p++;
		}
	}
	return p;
}

/* al_addr_spec - [a, b) is one addr-spec within blanks and comments: set its span. */
int al_addr_spec(const char *s, size_t a, size_t b, struct al_item *it)
{
	size_t p = al_cfws_end(s, a, b);
	size_t q = al_word_end(s, p, b);

	if (q == AL_ERR || q == p || al_cfws_end(s, q, b) != b || addr_at(s + p, q - p) == AL_ERR)
		return 0;
	it->addr = p;
	it->addr_end = q;
	return 1;
}

/*
 * al_angle_addr - the mailbox [.., b) has its one angle-addr at s[angle],
 * followed only by blanks and comments: find the addr-spec inside, after an
 * obsolete source route ("<@relay:user@domain>") if there is one.
 */
static int al_angle_addr(const char *s, size_t angle, size_t b, struct al_item *it)
{
	size_t after = al_angle(s, b, angle);
	size_t p, end;

	if (after == AL_ERR || al_cfws_end(s, after, b) != b)
		return 0;
	end = after - 1;
	p = al_cfws_end(s, angle + 1, end);
	if (p < end && s[p] == '@') {
		while (p < end && s[p] != ':')
			p = al_skip(s, end, p);
		if (p == AL_ERR || p >= end)
			return 0;
		p++;
	}
	return al_addr_spec(s, p, end, it);
}

/* al_push - store an item; returns its index, or AL_ERR when out of memory. */
static size_t al_push(struct al_list *l, const struct al_item *it)
{
	if (l->count == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : GROW_MIN;
		struct al_item *items = NULL;

		if (cap <= SIZE_MAX / sizeof(*items))
			items = realloc(l->items, cap * sizeof(*items));
		if (!items) {
			l->nomem = 1;
			return AL_ERR;
		}
		l->items = items;
		l->cap = cap;
	}
	l->items[l->count] = *it;
	return l->count++;
}

/* al_mailbox - store the element [a, b) as what it turns out to be. */
static void al_mailbox(struct al_list *l, size_t a, size_t b, const struct al_span *sp)
{
	struct al_item it = {AL_OTHER, a, b, 0, 0, 0, 0, 0};

	if (al_cfws_end(l->s, a, b) == b)
		it.kind = AL_EMPTY;
	else if (!sp->stray && sp->angles == 1 && al_angle_addr(l->s, sp->angle, b, &it))
		it.kind = AL_MAILBOX;
	else if (!sp->stray && sp->angles == 0 && al_addr_spec(l->s, a, b, &it))
		it.kind = AL_MAILBOX;
	al_push(l, &it);
}

/*
 * al_group - the group whose display name starts at s[start] and whose colon
 * is s[colon]: store it and its members. Returns where the element ends.
 */
static size_t al_group(struct al_list *l, size_t start, size_t colon)
{
	struct al_item it = {AL_GROUP, start, l->n, 0, 0, colon, l->n, 0};
	struct al_span tail = {0};
	size_t g = al_push(l, &it);
	size_t i = colon + 1, e;

	if (g == AL_ERR)
		return l->n;
	for (;;) {
		struct al_span sp = {0};

		e = al_scan(l, i, ",;:", &sp);
		if (e < l->n && l->s[e] == ':') {
			/* Groups do not nest: this member is not understood. */
			sp.stray = 1;
			e = al_scan(l, e + 1, ",;", &sp);
		}
		al_mailbox(l, i, e, &sp);
		l->items[g].members++;
		if (e >= l->n || l->s[e] == ';' || l->bad || l->nomem)
			break;
		i = e + 1;
	}
	l->items[g].semi = e;
	l->items[g].end = e < l->n ? al_scan(l, e + 1, ",", &tail) : l->n;
	return l->items[g].end;
}

/* al_element - store the top-level element starting at s[start]; returns its end. */
static size_t al_element(struct al_list *l, size_t start)
{
	struct al_span sp = {0};
	size_t j = al_scan(l, start, ",:;", &sp);

	if (j < l->n && l->s[j] == ':' && sp.angles == 0)
		return al_group(l, start, j);
	if (j < l->n && l->s[j] != ',') {
		/* A ':' after an angle-addr, or a ';' outside a group. */
		sp.stray = 1;
		j = al_scan(l, j + 1, ",", &sp);
	}
	al_mailbox(l, start, j, &sp);
	return j;
}

/* al_parse - tokenize the list s (n bytes). -1 when out of memory. */
int al_parse(struct al_list *l, const char *s, size_t n)
{
	size_t i = 0, end;

	memset(l, 0, sizeof(*l));
	l->s = s;
	l->n = n;
	for (;;) {
		end = al_element(l, i);
		if (l->bad || l->nomem || end >= n)
			break;
		i = end + 1; /* past the comma */
	}
	if (l->nomem) {
		free(l->items);
		l->items = NULL;
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* addr_equal - the addr-specs a and b: same local part, same domain but for ASCII case. */
static int addr_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t ai = addr_at(a, alen);
	size_t bi = addr_at(b, blen);

	if (ai == AL_ERR || bi == AL_ERR || ai != bi || memcmp(a, b, ai) != 0)
		return 0;
	return message_case_eq(a + ai, alen - ai, b + bi, blen - bi);
}

/* al_matches - item it is a mailbox whose address is addr. */
int al_matches(const struct al_list *l, const struct al_item *it, const char *addr)
{
	return it->kind == AL_MAILBOX &&
	       addr_equal(l->s + it->addr, it->addr_end - it->addr, addr, strlen(addr));
}

/* al_is_empty - the list s (n bytes) holds nothing but blanks, comments and commas. */
int al_is_empty(const char *s, size_t n)
{
	size_t p = al_cfws_end(s, 0, n);

	while (p < n && s[p] == ',')
		p = al_cfws_end(s, p + 1, n);
	return p == n;
}
