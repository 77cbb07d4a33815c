/*
 * rules_arc_canon.c - the text work of ARC (RFC 8617), which reuses DKIM's
 * (RFC 6376): tag=value lists (3.2), relaxed header and body
 * canonicalization (3.4.2, 3.4.4; ARC knows no other), the emptying of a
 * signature's b= tag before it is hashed into itself, base64, and the
 * instance (i=) of an ARC header field. Pure functions over bytes, with no
 * state: what the fuzz target tests/fuzz/fuzz_arc.c feeds.
 *
 * A header field arrives as the message library keeps it: name, colon,
 * value with its folding, line end. Unfolding removes "\r\n" and a bare
 * "\n" (a lone CR stays a character), as the independent implementation
 * the tests compare with does; a body's bare LF is a line end too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "rules_arc.h"

/* arc_wsp - SP or HTAB. */
static int arc_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* arc_fws - a blank of folding white space (after unfolding, CR and LF
 * left over are taken as blanks too). */
static int arc_fws(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* arc_unfold - a NUL-terminated copy of v without its line breaks. */
static char *arc_unfold(const char *v, size_t len, size_t *outlen)
{
	char *out = malloc(len + 1);
	size_t i, o = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (v[i] == '\r' && i + 1 < len && v[i + 1] == '\n')
			continue;
		if (v[i] == '\n')
			continue;
		out[o++] = v[i];
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* arc_tag_name_ok - a tag name: ALPHA *(ALPHA / DIGIT / "_"). */
static int arc_tag_name_ok(const char *s)
{
	size_t i;

	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (i = 1; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* arc_tag_value_ok - a tag value: VALCHARs (%x21-3A / %x3C-7E) with blanks
 * only between them. */
static int arc_tag_value_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!arc_fws((unsigned char)s[i]) &&
		    ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e || s[i] == ';'))
			return 0;
	return 1;
}

/* arc_trim - s without the blanks at both ends (in place). */
static char *arc_trim(char *s)
{
	size_t n;

	while (arc_fws((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && arc_fws((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* arc_fail - the reason into err; -1. */
static int arc_fail(char *err, size_t errlen, const char *reason)
{
	size_t n = strlen(reason);

	if (errlen > 0) {
		if (n >= errlen)
			n = errlen - 1;
		memcpy(err, reason, n);
		err[n] = '\0';
	}
	return -1;
}

/* arc_tags_parse - see rules_arc.h. */
int arc_tags_parse(const char *value, size_t len, struct arc_tags *out, char *err, size_t errlen)
{
	char *p, *spec, *eq, *name;
	size_t n, i;

	memset(out, 0, sizeof(*out));
	if ((out->buf = arc_unfold(value, len, &n)) == NULL)
		return arc_fail(err, errlen, "out of memory");
	if (strlen(out->buf) != n) {
		arc_tags_free(out);
		return arc_fail(err, errlen, "a NUL byte in a tag list");
	}
	for (p = out->buf; p != NULL;) {
		spec = p;
		if ((p = strchr(p, ';')) != NULL)
			*p++ = '\0';
		spec = arc_trim(spec);
		if (*spec == '\0') {
			if (p == NULL && out->n > 0)
				break; /* the list may end with a ';' */
			arc_tags_free(out);
			return arc_fail(err, errlen, "an empty tag");
		}
		if ((eq = strchr(spec, '=')) == NULL) {
			arc_tags_free(out);
			return arc_fail(err, errlen, "a tag without '='");
		}
		*eq = '\0';
		name = arc_trim(spec);
		if (!arc_tag_name_ok(name) || !arc_tag_value_ok(eq + 1)) {
			arc_tags_free(out);
			return arc_fail(err, errlen, "a malformed tag");
		}
		for (i = 0; i < out->n; i++)
			if (strcmp(out->tag[i].name, name) == 0) {
				arc_tags_free(out);
				return arc_fail(err, errlen, "a tag given twice");
			}
		if (out->n == ARC_TAGS_MAX) {
			arc_tags_free(out);
			return arc_fail(err, errlen, "too many tags");
		}
		out->tag[out->n].name = name;
		out->tag[out->n++].value = arc_trim(eq + 1);
	}
	return 0;
}

/* arc_tags_free - see rules_arc.h. */
void arc_tags_free(struct arc_tags *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

/* arc_tag - see rules_arc.h. */
const char *arc_tag(const struct arc_tags *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->tag[i].name, name) == 0)
			return t->tag[i].value;
	return NULL;
}

/* arc_canon_header - see rules_arc.h. */
char *arc_canon_header(const char *raw, size_t len, size_t *outlen)
{
	const char *colon = memchr(raw, ':', len);
	size_t nlen, vlen, i, o = 0;
	char *v, *out;
	int blank = 0, started = 0;

	if (colon == NULL)
		return NULL;
	nlen = (size_t)(colon - raw);
	while (nlen > 0 && arc_wsp((unsigned char)raw[nlen - 1]))
		nlen--;
	if ((v = arc_unfold(colon + 1, len - (size_t)(colon - raw) - 1, &vlen)) == NULL)
		return NULL;
	if ((out = malloc(nlen + vlen + 4)) == NULL) {
		free(v);
		return NULL;
	}
	for (i = 0; i < nlen; i++)
		out[o++] = (char)(raw[i] >= 'A' && raw[i] <= 'Z' ? raw[i] + 32 : raw[i]);
	out[o++] = ':';
	for (i = 0; i < vlen; i++) {
		if (arc_wsp((unsigned char)v[i])) {
			blank = 1;
			continue;
		}
		if (blank && started)
			out[o++] = ' ';
		blank = 0;
		started = 1;
		out[o++] = v[i];
	}
	free(v);
	out[o++] = '\r';
	out[o++] = '\n';
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* arc_canon_strip_b - see rules_arc.h. Tags begin after the colon or a ';'. */
int arc_canon_strip_b(char *c, size_t *len)
{
	size_t n = *len, i, j, end;

	if (n >= 2 && c[n - 2] == '\r' && c[n - 1] == '\n')
		n -= 2;
	for (i = 0; i < n; i++) {
		if (c[i] != ':' && c[i] != ';')
			continue;
		j = i + 1;
		while (j < n && c[j] == ' ')
			j++;
		if (j >= n || c[j] != 'b')
			continue;
		j++;
		while (j < n && c[j] == ' ')
			j++;
		if (j >= n || c[j] != '=')
			continue;
		j++;
		for (end = j; end < n && c[end] != ';'; end++)
			;
		memmove(c + j, c + end, n - end);
		n -= end - j;
		c[n] = '\0';
		*len = n;
		return 0;
	}
	return -1;
}

/* arc_canon_body - see rules_arc.h. Each line is written after the empty
 * lines held back before it, which are dropped when none follows. */
char *arc_canon_body(const char *body, size_t len, size_t *outlen)
{
	char *out = malloc(2 * len + 3);
	size_t i = 0, o = 0, empty = 0, k, w, end, next;
	const char *nl;
	int blank;

	if (out == NULL)
		return NULL;
	while (i < len) {
		nl = memchr(body + i, '\n', len - i);
		next = nl ? (size_t)(nl - body) + 1 : len;
		end = nl ? (size_t)(nl - body) : len;
		if (nl && end > i && body[end - 1] == '\r')
			end--;
		w = o + 2 * empty; /* the line's text goes after the held-back lines */
		blank = 0;
		for (k = i; k < end; k++) {
			if (arc_wsp((unsigned char)body[k])) {
				blank = 1;
				continue;
			}
			if (blank)
				out[w++] = ' ';
			blank = 0;
			out[w++] = body[k];
		}
		if (w == o + 2 * empty) {
			empty++;
		} else {
			for (k = 0; k < empty; k++) {
				out[o + 2 * k] = '\r';
				out[o + 2 * k + 1] = '\n';
			}
			out[w++] = '\r';
			out[w++] = '\n';
			o = w;
			empty = 0;
		}
		i = next;
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* arc_base64_decode - see rules_arc.h. */
unsigned char *arc_base64_decode(const char *s, size_t *outlen)
{
	size_t n = strlen(s), i, m = 0, pad = 0;
	char *clean = malloc(n + 1);
	unsigned char *out;
	int got;

	if (clean == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (!arc_fws((unsigned char)s[i]))
			clean[m++] = s[i];
	clean[m] = '\0';
	if (m == 0 || m % 4 != 0 || m > INT32_MAX || (out = malloc(m / 4 * 3 + 1)) == NULL) {
		free(clean);
		return NULL;
	}
	while (pad < 2 && clean[m - 1 - pad] == '=')
		pad++;
	for (i = 0; i < m - pad; i++)
		if (clean[i] == '=')
			break;
	got = i == m - pad ? EVP_DecodeBlock(out, (unsigned char *)clean, (int)m) : -1;
	free(clean);
	if (got < 0 || (size_t)got < pad) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)got - pad;
	return out;
}

/* arc_instance_of - see rules_arc.h. */
int arc_instance_of(const char *value, size_t len, int is_aar)
{
	struct arc_tags t;
	char err[64], buf[8];
	const char *iv = NULL;
	size_t i = 0, k = 0;
	long n;

	if (is_aar) {
		while (i < len && arc_fws((unsigned char)value[i]))
			i++;
		if (i >= len || value[i++] != 'i')
			return 0;
		while (i < len && arc_fws((unsigned char)value[i]))
			i++;
		if (i >= len || value[i++] != '=')
			return 0;
		while (i < len && arc_fws((unsigned char)value[i]))
			i++;
		while (i < len && k < sizeof(buf) - 1 && value[i] >= '0' && value[i] <= '9')
			buf[k++] = value[i++];
		buf[k] = '\0';
		while (i < len && arc_fws((unsigned char)value[i]))
			i++;
		if (i >= len || value[i] != ';')
			return 0;
		iv = buf;
	} else {
		if (arc_tags_parse(value, len, &t, err, sizeof(err)) < 0)
			return 0;
		if ((iv = arc_tag(&t, "i")) != NULL && strlen(iv) < sizeof(buf))
			iv = strcpy(buf, iv);
		else
			iv = NULL;
		arc_tags_free(&t);
		if (iv == NULL)
			return 0;
	}
	if (iv[0] < '1' || iv[0] > '9' || strspn(iv, "0123456789") != strlen(iv) ||
	    strlen(iv) > 2)
		return 0;
	n = strtol(iv, NULL, 10);
	return n >= 1 && n <= ARC_INSTANCES_MAX ? (int)n : 0;
}
