/*
 * rules_zone.c - a zone file (rules_zone.h gives the format) and the DNS
 * messages made from it, the offline backend of the rules' DNS.
 *
 * The parser reads the file line by line: a name, a type from the table
 * zone_types, and the value that type's parser turns into the record's
 * wire-format data at once (names uncompressed), so that an answer is only
 * the concatenation of records already encoded. Every error names the file
 * and the line. Each new record is checked against those of its name
 * before it: a CNAME, TIMEOUT or SERVFAIL stands alone, and one name and
 * type holds at most RULES_ZONE_RRSET_MAX records.
 *
 * An answer is the smallest correct DNS response: the header (QR, AA, RD,
 * RA, NOERROR, one question), the question, then the CNAME records that
 * lead from the name asked to the name that holds the records, then those
 * records, every owner name written in full. It parses with c-ares' own
 * ares_parse_*_reply functions and with OpenDKIM's and libspf2's users of
 * rules_dns_query() as a server's answer would.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "resolver.h"
#include "rules_zone.h"

#define ZONE_TIMEOUT (-1) /* the type of a TIMEOUT line */
#define ZONE_SERVFAIL (-2)
#define ZONE_RDATA_MAX 8192 /* bytes of one record's data */
#define ZONE_CNAME_HOPS 8
#define ZONE_TTL 300
#define ZONE_NAME_WIRE_MAX 255

/* One record of the zone. */
struct zone_record {
	char name[RESOLVER_NAME_MAX + 1];   /* lowercased, no trailing dot */
	char target[RESOLVER_NAME_MAX + 1]; /* a CNAME's target, "" otherwise */
	int type;                           /* ns_t_*, ZONE_TIMEOUT or ZONE_SERVFAIL */
	unsigned line;
	size_t rdlen;
	unsigned char *rdata; /* wire format */
};

struct rules_zone {
	struct zone_record *rec;
	size_t n, cap;
};

/* The line being parsed: where the value is, where errors go. */
struct zone_line {
	const char *file;
	unsigned number;
	const char *p, *end; /* the rest of the line */
	unsigned char rdata[ZONE_RDATA_MAX];
	size_t rdlen;
	char target[RESOLVER_NAME_MAX + 1];
	char *err;
	size_t errlen;
};

/* ---- small parts ------------------------------------------------------ */

/* zone_error - "file:line: message" into the line's err; returns -1. */
__attribute__((format(printf, 2, 3))) static int zone_error(struct zone_line *l, const char *fmt,
							     ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(l->err, l->errlen, "%s:%u: %s", l->file, l->number, msg);
	return -1;
}

/* zone_space - whether c separates words. */
static int zone_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* zone_word - the next word of the line (NULL at its end or at a '#'
 * comment); *wlen its length. */
static const char *zone_word(struct zone_line *l, size_t *wlen)
{
	const char *w;

	while (l->p < l->end && zone_space(*l->p))
		l->p++;
	if (l->p == l->end || *l->p == '#')
		return NULL;
	w = l->p;
	while (l->p < l->end && !zone_space(*l->p))
		l->p++;
	*wlen = (size_t)(l->p - w);
	return w;
}

/* zone_name_wire - name (checked, "" for the root) in wire format into
 * out (ZONE_NAME_WIRE_MAX bytes); its length. */
static size_t zone_name_wire(const char *name, unsigned char *out)
{
	size_t n = 0, len;
	const char *dot;

	while (*name != '\0') {
		dot = strchr(name, '.');
		len = dot != NULL ? (size_t)(dot - name) : strlen(name);
		out[n++] = (unsigned char)len;
		memcpy(out + n, name, len);
		n += len;
		name += len + (dot != NULL);
	}
	out[n++] = 0;
	return n;
}

/* rules_zone_name_check - see rules_zone.h. */
size_t rules_zone_name_check(const char *w, size_t wlen)
{
	size_t i, label = 0;

	if (wlen > 0 && w[wlen - 1] == '.')
		wlen--;
	if (wlen == 0 || wlen > 253)
		return 0;
	for (i = 0; i < wlen; i++) {
		if (w[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((unsigned char)w[i] < 32 || (unsigned char)w[i] > 126 || ++label > 63) {
			return 0;
		}
	}
	return label > 0 ? wlen : 0;
}

/* zone_unescape - w (wlen bytes) with its \DDD and \X escapes (as in a
 * master file: a blank is written \032) decoded into out (outlen bytes);
 * the decoded length, or -1 when an escape is malformed or it is too long. */
static ssize_t zone_unescape(const char *w, size_t wlen, char *out, size_t outlen)
{
	size_t i, n = 0;
	unsigned v;
	int k;

	for (i = 0; i < wlen; i++) {
		char c = w[i];

		if (c == '\\') {
			if (++i == wlen)
				return -1;
			c = w[i];
			if (c >= '0' && c <= '9') {
				for (k = 0, v = 0; k < 3 && i < wlen && w[i] >= '0' && w[i] <= '9'; k++, i++)
					v = v * 10 + (unsigned)(w[i] - '0');
				if (k < 3 || v > 255)
					return -1;
				i--;
				c = (char)v;
			}
		}
		if (n == outlen)
			return -1;
		out[n++] = c;
	}
	return (ssize_t)n;
}

/* zone_name - the word w (wlen bytes) as a checked, lowercased name
 * without a trailing dot, into out; -1 with an error when it is none. */
static int zone_name(struct zone_line *l, const char *what, const char *w, size_t wlen, char *out)
{
	char name[RESOLVER_NAME_MAX + 2];
	ssize_t len = w != NULL ? zone_unescape(w, wlen, name, sizeof(name)) : -1;
	size_t n = len > 0 ? rules_zone_name_check(name, (size_t)len) : 0, i;

	if (w == NULL)
		return zone_error(l, "%s is missing", what);
	if (n == 0)
		return zone_error(l, "%s: not a domain name: \"%.*s\"", what,
				  (int)(wlen > 64 ? 64 : wlen), w);
	for (i = 0; i < n; i++)
		out[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] - 'A' + 'a') : name[i];
	out[n] = '\0';
	return 0;
}

/* ---- one parser per type ---------------------------------------------- */

/* zone_parse_ip - an A or AAAA value: family's address. */
static int zone_parse_ip(struct zone_line *l, int family)
{
	char text[INET6_ADDRSTRLEN];
	size_t wlen;
	const char *w = zone_word(l, &wlen);

	if (w == NULL)
		return zone_error(l, "the address is missing");
	if (wlen < sizeof(text)) {
		memcpy(text, w, wlen);
		text[wlen] = '\0';
	}
	if (wlen >= sizeof(text) || inet_pton(family, text, l->rdata) != 1)
		return zone_error(l, "not an IPv%c address: \"%.*s\"", family == AF_INET ? '4' : '6',
				  (int)(wlen > 64 ? 64 : wlen), w);
	l->rdlen = family == AF_INET ? 4 : 16;
	return 0;
}

/* zone_parse_a - A: an IPv4 address. */
static int zone_parse_a(struct zone_line *l)
{
	return zone_parse_ip(l, AF_INET);
}

/* zone_parse_aaaa - AAAA: an IPv6 address. */
static int zone_parse_aaaa(struct zone_line *l)
{
	return zone_parse_ip(l, AF_INET6);
}

/* zone_parse_host - PTR, CNAME: a name (kept in target for a CNAME). */
static int zone_parse_host(struct zone_line *l)
{
	size_t wlen = 0;
	const char *w = zone_word(l, &wlen);

	if (zone_name(l, "the name", w, wlen, l->target) < 0)
		return -1;
	l->rdlen = zone_name_wire(l->target, l->rdata);
	return 0;
}

/* zone_parse_mx - MX: a preference (0 to 65535) and a host, "." for none. */
static int zone_parse_mx(struct zone_line *l)
{
	char host[RESOLVER_NAME_MAX + 1] = "";
	unsigned long pref = 0;
	size_t wlen = 0, i;
	const char *w = zone_word(l, &wlen);

	if (w == NULL)
		return zone_error(l, "MX needs a preference and a host");
	for (i = 0; i < wlen && pref <= 65535; i++) {
		if (w[i] < '0' || w[i] > '9')
			break;
		pref = pref * 10 + (unsigned long)(w[i] - '0');
	}
	if (i < wlen || wlen == 0 || pref > 65535)
		return zone_error(l, "MX preference: not a number from 0 to 65535: \"%.*s\"",
				  (int)(wlen > 64 ? 64 : wlen), w);
	w = zone_word(l, &wlen);
	if (w == NULL || wlen != 1 || w[0] != '.')
		if (zone_name(l, "the MX host", w, wlen, host) < 0)
			return -1;
	l->rdata[0] = (unsigned char)(pref >> 8);
	l->rdata[1] = (unsigned char)pref;
	l->rdlen = 2 + zone_name_wire(host, l->rdata + 2);
	return 0;
}

/* zone_parse_string - one quoted character-string of a TXT value (l->p at
 * its quote) appended to the record; \" \\ and \DDD escape. */
static int zone_parse_string(struct zone_line *l)
{
	size_t at = l->rdlen, n = 0;
	unsigned v;
	int i;

	if (at + 1 + 255 > ZONE_RDATA_MAX)
		return zone_error(l, "TXT: the record is longer than %d bytes", ZONE_RDATA_MAX);
	for (l->p++; l->p < l->end && *l->p != '"'; l->p++) {
		unsigned char c = (unsigned char)*l->p;

		if (c == '\\') {
			if (++l->p == l->end)
				break;
			c = (unsigned char)*l->p;
			if (c >= '0' && c <= '9') {
				for (i = 0, v = 0; i < 3 && l->p < l->end && *l->p >= '0' && *l->p <= '9';
				     i++, l->p++)
					v = v * 10 + (unsigned)(*l->p - '0');
				if (i < 3 || v > 255)
					return zone_error(l, "TXT: \\DDD takes three digits, at most 255");
				l->p--;
				c = (unsigned char)v;
			}
		} else if (c < 0x20 && c != '\t') {
			return zone_error(l, "TXT: a control character in a string (write \\%03u)", c);
		}
		if (n == 255)
			return zone_error(l, "TXT: a string longer than 255 bytes (split it into "
					     "several \"...\" \"...\")");
		l->rdata[at + 1 + n++] = c;
	}
	if (l->p == l->end)
		return zone_error(l, "TXT: a string without its closing quote");
	l->p++;
	l->rdata[at] = (unsigned char)n;
	l->rdlen = at + 1 + n;
	return 0;
}

/* zone_parse_txt - TXT: one or more quoted strings. */
static int zone_parse_txt(struct zone_line *l)
{
	int strings = 0;

	for (;;) {
		while (l->p < l->end && zone_space(*l->p))
			l->p++;
		if (l->p == l->end || *l->p == '#')
			break;
		if (*l->p != '"')
			return zone_error(l, "TXT: strings are written in double quotes");
		if (zone_parse_string(l) < 0)
			return -1;
		strings++;
		if (l->p < l->end && !zone_space(*l->p) && *l->p != '#')
			return zone_error(l, "TXT: strings are separated by blanks");
	}
	return strings > 0 ? 0 : zone_error(l, "TXT needs at least one \"string\"");
}

/* zone_parse_none - TIMEOUT, SERVFAIL: nothing. */
static int zone_parse_none(struct zone_line *l)
{
	(void)l;
	return 0;
}

/* The types a line may have. */
static const struct {
	const char *name;
	int type;
	int (*parse)(struct zone_line *l);
} zone_types[] = {
	{"A", ns_t_a, zone_parse_a},
	{"AAAA", ns_t_aaaa, zone_parse_aaaa},
	{"MX", ns_t_mx, zone_parse_mx},
	{"TXT", ns_t_txt, zone_parse_txt},
	{"PTR", ns_t_ptr, zone_parse_host},
	{"CNAME", ns_t_cname, zone_parse_host},
	{"TIMEOUT", ZONE_TIMEOUT, zone_parse_none},
	{"SERVFAIL", ZONE_SERVFAIL, zone_parse_none},
};

#define ZONE_NTYPES (sizeof(zone_types) / sizeof(zone_types[0]))

/* zone_type_name - the name of a record's type. */
static const char *zone_type_name(int type)
{
	size_t i;

	for (i = 0; i < ZONE_NTYPES; i++)
		if (zone_types[i].type == type)
			return zone_types[i].name;
	return "?";
}

/* zone_alone - whether records of type take no other record of their name. */
static int zone_alone(int type)
{
	return type == ns_t_cname || type == ZONE_TIMEOUT || type == ZONE_SERVFAIL;
}

/* ---- the file ---------------------------------------------------------- */

/* zone_add - the line's record into z, after the checks against the
 * records of its name; -1 with an error. */
static int zone_add(struct rules_zone *z, struct zone_line *l, const char *name, int type)
{
	struct zone_record *r;
	size_t i, same = 0;

	for (i = 0; i < z->n; i++) {
		r = &z->rec[i];
		if (strcmp(r->name, name) != 0)
			continue;
		if (zone_alone(type) || zone_alone(r->type))
			return zone_error(l, "%s: %s cannot go with the %s record of line %u (a "
					     "CNAME, TIMEOUT or SERVFAIL stands alone)",
					  name, zone_type_name(type), zone_type_name(r->type), r->line);
		if (r->type == type && ++same == RULES_ZONE_RRSET_MAX)
			return zone_error(l, "%s: more than %d %s records", name,
					  RULES_ZONE_RRSET_MAX, zone_type_name(type));
	}
	if (z->n == RULES_ZONE_RECORDS_MAX)
		return zone_error(l, "more than %d records", RULES_ZONE_RECORDS_MAX);
	if (z->n == z->cap) {
		size_t cap = z->cap ? z->cap * 2 : 16;

		if ((r = realloc(z->rec, cap * sizeof(*r))) == NULL)
			return zone_error(l, "out of memory");
		z->rec = r;
		z->cap = cap;
	}
	r = &z->rec[z->n];
	memset(r, 0, sizeof(*r));
	if (l->rdlen > 0 && (r->rdata = malloc(l->rdlen)) == NULL)
		return zone_error(l, "out of memory");
	if (l->rdlen > 0)
		memcpy(r->rdata, l->rdata, l->rdlen);
	r->rdlen = l->rdlen;
	r->type = type;
	r->line = l->number;
	snprintf(r->name, sizeof(r->name), "%s", name);
	if (type == ns_t_cname)
		snprintf(r->target, sizeof(r->target), "%s", l->target);
	z->n++;
	return 0;
}

/* zone_parse_line - one line (l->p to l->end) into z; -1 with an error. */
static int zone_parse_line(struct rules_zone *z, struct zone_line *l)
{
	char name[RESOLVER_NAME_MAX + 1];
	size_t wlen = 0, tlen = 0, i;
	const char *w, *t;

	if (memchr(l->p, '\0', (size_t)(l->end - l->p)) != NULL)
		return zone_error(l, "a NUL byte");
	if ((w = zone_word(l, &wlen)) == NULL)
		return 0; /* blank, or a comment */
	if (zone_name(l, "the name", w, wlen, name) < 0)
		return -1;
	if ((t = zone_word(l, &tlen)) == NULL)
		return zone_error(l, "%s: the type is missing", name);
	for (i = 0; i < ZONE_NTYPES; i++)
		if (strlen(zone_types[i].name) == tlen && strncasecmp(t, zone_types[i].name, tlen) == 0)
			break;
	if (i == ZONE_NTYPES)
		return zone_error(l, "unknown type \"%.*s\" (A, AAAA, MX, TXT, PTR, CNAME, TIMEOUT, "
				     "SERVFAIL)",
				  (int)(tlen > 32 ? 32 : tlen), t);
	l->rdlen = 0;
	l->target[0] = '\0';
	if (zone_types[i].parse(l) < 0)
		return -1;
	if ((w = zone_word(l, &wlen)) != NULL)
		return zone_error(l, "unexpected \"%.*s\" after the %s value",
				  (int)(wlen > 64 ? 64 : wlen), w, zone_types[i].name);
	return zone_add(z, l, name, zone_types[i].type);
}

/* rules_zone_parse - see rules_zone.h. */
struct rules_zone *rules_zone_parse(const char *file, const char *text, size_t len, char *err,
				    size_t errlen)
{
	struct rules_zone *z = calloc(1, sizeof(*z));
	struct zone_line *l = calloc(1, sizeof(*l));
	const char *end = text + len, *nl;

	if (z == NULL || l == NULL) {
		snprintf(err, errlen, "%s: out of memory", file);
		free(z);
		free(l);
		return NULL;
	}
	*l = (struct zone_line){.file = file, .err = err, .errlen = errlen};
	while (text < end) {
		nl = memchr(text, '\n', (size_t)(end - text));
		l->number++;
		l->p = text;
		l->end = nl != NULL ? nl : end;
		if (zone_parse_line(z, l) < 0) {
			rules_zone_free(z);
			free(l);
			return NULL;
		}
		text = nl != NULL ? nl + 1 : end;
	}
	free(l);
	return z;
}

/* rules_zone_load - read the file, parse it. */
struct rules_zone *rules_zone_load(const char *path, char *err, size_t errlen)
{
	struct rules_zone *z;
	FILE *fp = fopen(path, "rb");
	char *text;
	size_t n;

	if (fp == NULL) {
		snprintf(err, errlen, "cannot open the DNS zone %s: %s", path, strerror(errno));
		return NULL;
	}
	if ((text = malloc(RULES_ZONE_FILE_MAX + 1)) == NULL) {
		fclose(fp);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	n = fread(text, 1, RULES_ZONE_FILE_MAX + 1, fp);
	if (ferror(fp))
		snprintf(err, errlen, "cannot read the DNS zone %s: %s", path, strerror(errno));
	else if (n > RULES_ZONE_FILE_MAX)
		snprintf(err, errlen, "%s: a DNS zone file of more than %u bytes", path,
			 RULES_ZONE_FILE_MAX);
	z = ferror(fp) || n > RULES_ZONE_FILE_MAX ? NULL : rules_zone_parse(path, text, n, err, errlen);
	fclose(fp);
	free(text);
	return z;
}

/* rules_zone_free - the records and the zone. */
void rules_zone_free(struct rules_zone *z)
{
	size_t i;

	if (z == NULL)
		return;
	for (i = 0; i < z->n; i++)
		free(z->rec[i].rdata);
	free(z->rec);
	free(z);
}

/* ---- answers ----------------------------------------------------------- */

/* zone_put16 - a 16-bit number, network order. */
static unsigned char *zone_put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	return p + 2;
}

/* zone_put_record - one answer record at p; the end of what was written. */
static unsigned char *zone_put_record(unsigned char *p, const struct zone_record *r)
{
	p += zone_name_wire(r->name, p);
	p = zone_put16(p, (unsigned)r->type);
	p = zone_put16(p, ns_c_in);
	p = zone_put16(p, ZONE_TTL >> 16);
	p = zone_put16(p, ZONE_TTL & 0xffff);
	p = zone_put16(p, (unsigned)r->rdlen);
	memcpy(p, r->rdata, r->rdlen);
	return p + r->rdlen;
}

/* zone_encode - the response to (qname, type) with the records of list
 * (n of them) as its answer. */
static enum rules_dns_result zone_encode(const char *qname, int type,
					 const struct zone_record *const *list, size_t n,
					 unsigned char **answer, size_t *len)
{
	unsigned char *msg, *p;
	size_t size = 12 + strlen(qname) + 2 + 4, i;

	for (i = 0; i < n; i++)
		size += strlen(list[i]->name) + 2 + 10 + list[i]->rdlen;
	if ((msg = malloc(size)) == NULL)
		return RULES_DNS_NOMEM;
	p = zone_put16(msg, 0);    /* id: nobody matches it */
	p = zone_put16(p, 0x8580); /* QR, AA, RD, RA; NOERROR */
	p = zone_put16(p, 1);
	p = zone_put16(p, (unsigned)n);
	p = zone_put16(p, 0);
	p = zone_put16(p, 0);
	p += zone_name_wire(qname, p);
	p = zone_put16(p, (unsigned)type);
	p = zone_put16(p, ns_c_in);
	for (i = 0; i < n; i++)
		p = zone_put_record(p, list[i]);
	*answer = msg;
	*len = (size_t)(p - msg);
	return RULES_DNS_ANSWER;
}

/* zone_find - the first record of name (len bytes, any case), or NULL. */
static const struct zone_record *zone_find(const struct rules_zone *z, const char *name,
					   size_t len, size_t *at)
{
	size_t i;

	for (i = 0; i < z->n; i++)
		if (strlen(z->rec[i].name) == len && strncasecmp(z->rec[i].name, name, len) == 0) {
			*at = i;
			return &z->rec[i];
		}
	return NULL;
}

/* rules_zone_query - follow CNAMEs, then answer with the records of the type. */
enum rules_dns_result rules_zone_query(const struct rules_zone *z, const char *name, int type,
				       unsigned char **answer, size_t *len)
{
	const struct zone_record *list[ZONE_CNAME_HOPS + RULES_ZONE_RRSET_MAX], *r, *first = NULL;
	size_t n = 0, nlen = strlen(name), at = 0, i;
	int hops;

	*answer = NULL;
	*len = 0;
	if (nlen > 0 && name[nlen - 1] == '.')
		nlen--;
	for (hops = 0; hops <= ZONE_CNAME_HOPS; hops++) {
		if ((r = zone_find(z, name, nlen, &at)) == NULL)
			return RULES_DNS_NXDOMAIN;
		if (first == NULL)
			first = r;
		if (r->type == ZONE_TIMEOUT)
			return RULES_DNS_TIMEOUT;
		if (r->type == ZONE_SERVFAIL)
			return RULES_DNS_FAIL;
		if (r->type != ns_t_cname || type == ns_t_cname)
			break;
		list[n++] = r;
		name = r->target;
		nlen = strlen(name);
	}
	if (hops > ZONE_CNAME_HOPS)
		return RULES_DNS_FAIL; /* a CNAME loop, or too long a chain */
	for (i = at; i < z->n; i++)
		if (z->rec[i].type == type && strcmp(z->rec[i].name, r->name) == 0)
			list[n++] = &z->rec[i];
	if (n == 0 || list[n - 1]->type != type)
		return RULES_DNS_NODATA;
	return zone_encode(first->name, type, list, n, answer, len);
}
