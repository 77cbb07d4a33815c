/*
 * milter_proto.c - the milter protocol's packets (see milter_proto.h):
 * builders for the commands an MTA sends, and the parser of the replies a
 * milter sends back.
 *
 * The builders append whole packets to one growing buffer, so that a
 * stage's packets (macros, then the command) go out in one write. The
 * parser never trusts a length: the packet's own is bounded by
 * MILTER_PACKET_MAX and by what was read, every string must end with a
 * NUL inside the packet, every integer must fit, and a reply's shape is
 * checked against one table of {code, name, parse function}.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "milter_proto.h"

/* ---- building ------------------------------------------------------- */

/* milter_buf_free - release the buffer. */
void milter_buf_free(struct milter_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* milter_reserve - room for extra more bytes in b. */
static int milter_reserve(struct milter_buf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (b->failed)
		return -1;
	if (extra > SIZE_MAX / 2 - b->len)
		goto fail;
	while (cap - b->len < extra)
		cap *= 2;
	if (cap != b->cap) {
		if ((p = realloc(b->p, cap)) == NULL)
			goto fail;
		b->p = p;
		b->cap = cap;
	}
	return 0;
fail:
	b->failed = 1;
	return -1;
}

/* milter_buf_add - append len bytes. */
int milter_buf_add(struct milter_buf *b, const void *data, size_t len)
{
	if (milter_reserve(b, len) < 0)
		return -1;
	if (len > 0)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

/* milter_put - one packet of cmd and the parts. */
int milter_put(struct milter_buf *b, char cmd, const void *const *parts, const size_t *lens,
	       size_t n)
{
	size_t total = 1, i;
	uint32_t be;

	for (i = 0; i < n; i++) {
		if (lens[i] > MILTER_PACKET_MAX - total) {
			b->failed = 1;
			return -1;
		}
		total += lens[i];
	}
	if (milter_reserve(b, 4 + total) < 0)
		return -1;
	be = htonl((uint32_t)total);
	memcpy(b->p + b->len, &be, 4);
	b->p[b->len + 4] = cmd;
	b->len += 5;
	for (i = 0; i < n; i++) {
		if (lens[i] > 0)
			memcpy(b->p + b->len, parts[i], lens[i]);
		b->len += lens[i];
	}
	return 0;
}

/* milter_put_empty - a command without data. */
int milter_put_empty(struct milter_buf *b, char cmd)
{
	return milter_put(b, cmd, NULL, NULL, 0);
}

/* milter_put_optneg - version, actions, protocol steps. */
int milter_put_optneg(struct milter_buf *b, uint32_t actions, uint32_t protocol)
{
	uint32_t v[3] = {htonl(MILTER_VERSION), htonl(actions), htonl(protocol)};
	const void *parts[] = {v};
	size_t lens[] = {sizeof(v)};

	return milter_put(b, MILTER_OPTNEG, parts, lens, 1);
}

/* milter_put_connect - host, family, port, address. */
int milter_put_connect(struct milter_buf *b, const char *host, char family, unsigned port,
		       const char *addr)
{
	uint16_t be = htons((uint16_t)port);
	char fam = addr != NULL ? family : 'U';
	const void *parts[] = {host, &fam, &be, addr};
	size_t lens[] = {strlen(host) + 1, 1, 2, addr ? strlen(addr) + 1 : 0};

	return milter_put(b, MILTER_CONNECT, parts, lens, addr != NULL ? 4 : 2);
}

/* milter_put_strings - cmd with NUL-terminated strings. */
int milter_put_strings(struct milter_buf *b, char cmd, const char *const *s, size_t n)
{
	const void *parts[8];
	size_t lens[8], i;

	if (n > 8) {
		b->failed = 1;
		return -1;
	}
	for (i = 0; i < n; i++) {
		parts[i] = s[i];
		lens[i] = strlen(s[i]) + 1;
	}
	return milter_put(b, cmd, parts, lens, n);
}

/* milter_put_header - name NUL value NUL. */
int milter_put_header(struct milter_buf *b, const char *name, size_t nlen, const char *value,
		      size_t vlen)
{
	static const char nul = '\0';
	const void *parts[] = {name, &nul, value, &nul};
	size_t lens[] = {nlen, 1, vlen, 1};

	return milter_put(b, MILTER_HEADER, parts, lens, 4);
}

/* milter_put_body - the body in chunks. */
int milter_put_body(struct milter_buf *b, const char *data, size_t len)
{
	size_t off, n;
	const void *parts[1];

	for (off = 0; off < len; off += n) {
		n = len - off < MILTER_CHUNK_MAX ? len - off : MILTER_CHUNK_MAX;
		parts[0] = data + off;
		if (milter_put(b, MILTER_BODY, parts, &n, 1) < 0)
			return -1;
	}
	return 0;
}

/* milter_put_macros - cmd, then name NUL value NUL for each pair with a value. */
int milter_put_macros(struct milter_buf *b, char cmd, const char *const *pairs, size_t n)
{
	const void *parts[1 + 2 * 16];
	size_t lens[1 + 2 * 16], k = 0, i;

	if (n > 16) {
		b->failed = 1;
		return -1;
	}
	parts[k] = &cmd;
	lens[k++] = 1;
	for (i = 0; i < n; i++) {
		if (pairs[2 * i + 1] == NULL)
			continue;
		parts[k] = pairs[2 * i];
		lens[k++] = strlen(pairs[2 * i]) + 1;
		parts[k] = pairs[2 * i + 1];
		lens[k++] = strlen(pairs[2 * i + 1]) + 1;
	}
	if (k == 1)
		return 0;
	return milter_put(b, MILTER_MACRO, parts, lens, k);
}

/* ---- parsing -------------------------------------------------------- */

/* The data of one reply packet being parsed. */
struct milter_in {
	const char *p;
	size_t len;
	size_t off;
	char *err;
	size_t errlen;
};

/* in_fail - record why, return -1. */
static int in_fail(struct milter_in *in, const char *why)
{
	snprintf(in->err, in->errlen, "%s", why);
	return -1;
}

/* in_u32 - a 4-byte integer in network order. */
static int in_u32(struct milter_in *in, uint32_t *v)
{
	uint32_t be;

	if (in->len - in->off < 4)
		return in_fail(in, "truncated integer");
	memcpy(&be, in->p + in->off, 4);
	*v = ntohl(be);
	in->off += 4;
	return 0;
}

/* in_str - a NUL-terminated string. */
static int in_str(struct milter_in *in, const char **s)
{
	const char *nul = memchr(in->p + in->off, '\0', in->len - in->off);

	if (nul == NULL)
		return in_fail(in, "string without its NUL");
	*s = in->p + in->off;
	in->off = (size_t)(nul - in->p) + 1;
	return 0;
}

/* in_end - nothing may follow. */
static int in_end(struct milter_in *in)
{
	return in->off == in->len ? 0 : in_fail(in, "trailing bytes");
}

/* parse_none - a reply without data. */
static int parse_none(struct milter_in *in, struct milter_reply *r)
{
	(void)r;
	return in_end(in);
}

/* parse_optneg - version, actions, protocol; a symbol list may follow. */
static int parse_optneg(struct milter_in *in, struct milter_reply *r)
{
	if (in_u32(in, &r->version) < 0 || in_u32(in, &r->actions) < 0 ||
	    in_u32(in, &r->protocol) < 0)
		return -1;
	if (r->version < MILTER_VERSION_MIN || r->version > MILTER_VERSION)
		return in_fail(in, "unsupported protocol version");
	return 0;
}

/* parse_header - name NUL value NUL, after an index for INS/CHGHEADER. */
static int parse_header(struct milter_in *in, struct milter_reply *r)
{
	if (r->code != MILTER_R_ADDHEADER && in_u32(in, &r->index) < 0)
		return -1;
	if (in_str(in, &r->name) < 0 || in_str(in, &r->value) < 0)
		return -1;
	if (r->name[0] == '\0')
		return in_fail(in, "empty header name");
	return in_end(in);
}

/* parse_addr - an address, and for the _PAR forms optional arguments. */
static int parse_addr(struct milter_in *in, struct milter_reply *r)
{
	r->args = NULL;
	if (in_str(in, &r->addr) < 0)
		return -1;
	if (r->addr[0] == '\0' && r->code != MILTER_R_CHGFROM)
		return in_fail(in, "empty address");
	if ((r->code == MILTER_R_ADDRCPT_PAR || r->code == MILTER_R_CHGFROM) && in->off < in->len &&
	    in_str(in, &r->args) < 0)
		return -1;
	return in_end(in);
}

/* parse_quarantine - the reason. */
static int parse_quarantine(struct milter_in *in, struct milter_reply *r)
{
	if (in_str(in, &r->reason) < 0)
		return -1;
	return in_end(in);
}

/* parse_body - raw bytes. */
static int parse_body(struct milter_in *in, struct milter_reply *r)
{
	r->data = in->p;
	r->len = in->len;
	return 0;
}

/* enhanced_len - the length of an enhanced status code "c.y.z" at s (n
 * bytes), followed by a blank or the end; 0 when there is none. */
static size_t enhanced_len(const char *s, size_t n, char c)
{
	size_t i = 2, digits, part;

	if (n < 5 || s[0] != c || s[1] != '.')
		return 0;
	for (part = 0; part < 2; part++) {
		for (digits = 0; i < n && s[i] >= '0' && s[i] <= '9' && digits < 3; i++)
			digits++;
		if (digits == 0 || (part == 0 && (i >= n || s[i++] != '.')))
			return 0;
	}
	return (i == n || s[i] == ' ') && i < 16 ? i : 0;
}

/* reply_line - one line "ddd[ -]x.y.z text" of a custom reply, appended to r. */
static int reply_line(struct milter_in *in, struct milter_reply *r, const char *s, size_t n,
		      int last)
{
	int code;
	size_t i, t, e;

	if (n < 3 || s[0] < '4' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
	    s[2] > '9')
		return in_fail(in, "a custom reply needs a 4xx or 5xx code");
	code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (r->smtp != 0 && code != r->smtp)
		return in_fail(in, "the lines of a custom reply have different codes");
	r->smtp = code;
	if (n > 3 && s[3] != (last ? ' ' : '-'))
		return in_fail(in, "bad separator after the reply code");
	i = n > 3 ? 4 : 3;
	if ((e = enhanced_len(s + i, n - i, s[0])) > 0) {
		if (r->enhanced[0] == '\0') {
			memcpy(r->enhanced, s + i, e);
			r->enhanced[e] = '\0';
		}
		i += e < n - i ? e + 1 : e;
	}
	for (t = i; t < n; t++)
		if ((unsigned char)s[t] < 0x20 || (unsigned char)s[t] == 0x7f)
			return in_fail(in, "control character in a custom reply");
	e = strlen(r->text);
	if (e > 0 && n > i && e + 1 < sizeof(r->text))
		r->text[e++] = ' ';
	t = n - i < sizeof(r->text) - 1 - e ? n - i : sizeof(r->text) - 1 - e;
	memcpy(r->text + e, s + i, t);
	r->text[e + t] = '\0';
	return 0;
}

/* parse_replycode - "550 5.7.1 text", lines ending in CRLF before the last. */
static int parse_replycode(struct milter_in *in, struct milter_reply *r)
{
	const char *s, *eol;
	size_t n;

	r->smtp = 0;
	r->enhanced[0] = r->text[0] = '\0';
	if (in_str(in, &s) < 0 || in_end(in) < 0)
		return -1;
	n = strlen(s);
	while ((eol = strstr(s, "\r\n")) != NULL) {
		if (reply_line(in, r, s, (size_t)(eol - s), 0) < 0)
			return -1;
		n -= (size_t)(eol + 2 - s);
		s = eol + 2;
	}
	return reply_line(in, r, s, n, 1);
}

/* What a reply is called and how its data is read. */
struct milter_reply_kind {
	char code;
	const char *name;
	int (*parse)(struct milter_in *in, struct milter_reply *r);
};

static const struct milter_reply_kind milter_kinds[] = {
    {MILTER_R_ADDRCPT, "addrcpt", parse_addr},
    {MILTER_R_DELRCPT, "delrcpt", parse_addr},
    {MILTER_R_ADDRCPT_PAR, "addrcpt_par", parse_addr},
    {MILTER_R_SHUTDOWN, "shutdown", parse_none},
    {MILTER_R_ACCEPT, "accept", parse_none},
    {MILTER_R_REPLBODY, "replbody", parse_body},
    {MILTER_R_CONTINUE, "continue", parse_none},
    {MILTER_R_DISCARD, "discard", parse_none},
    {MILTER_R_CHGFROM, "chgfrom", parse_addr},
    {MILTER_R_CONN_FAIL, "conn_fail", parse_none},
    {MILTER_R_ADDHEADER, "addheader", parse_header},
    {MILTER_R_INSHEADER, "insheader", parse_header},
    {MILTER_R_CHGHEADER, "chgheader", parse_header},
    {MILTER_R_PROGRESS, "progress", parse_none},
    {MILTER_R_QUARANTINE, "quarantine", parse_quarantine},
    {MILTER_R_REJECT, "reject", parse_none},
    {MILTER_R_SKIP, "skip", parse_none},
    {MILTER_R_TEMPFAIL, "tempfail", parse_none},
    {MILTER_R_REPLYCODE, "replycode", parse_replycode},
    {MILTER_R_OPTNEG, "optneg", parse_optneg},
};

/* milter_kind - the table entry of code, or NULL. */
static const struct milter_reply_kind *milter_kind(char code)
{
	size_t i;

	for (i = 0; i < sizeof(milter_kinds) / sizeof(milter_kinds[0]); i++)
		if (milter_kinds[i].code == code)
			return &milter_kinds[i];
	return NULL;
}

/* milter_reply_name - the reply's name, "unknown" for none. */
const char *milter_reply_name(char code)
{
	const struct milter_reply_kind *k = milter_kind(code);

	return k != NULL ? k->name : "unknown";
}

/* milter_reply_next - frame and parse one reply. */
int milter_reply_next(const char *buf, size_t len, size_t *used, struct milter_reply *r,
		      char *err, size_t errlen)
{
	struct milter_in in = {.err = err, .errlen = errlen};
	const struct milter_reply_kind *k;
	uint32_t be, n;

	if (len < 5)
		return 0;
	memcpy(&be, buf, 4);
	n = ntohl(be);
	if (n == 0 || n > MILTER_PACKET_MAX)
		return in_fail(&in, "packet length out of range");
	if (len - 4 < n)
		return 0;
	memset(r, 0, sizeof(*r));
	r->code = buf[4];
	if ((k = milter_kind(r->code)) == NULL)
		return in_fail(&in, "unknown reply");
	in.p = buf + 5;
	in.len = n - 1;
	if (k->parse(&in, r) < 0)
		return -1;
	*used = 4 + (size_t)n;
	return 1;
}
