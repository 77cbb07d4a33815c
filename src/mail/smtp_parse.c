/*
 * smtp_parse.c - parsing of SMTP command lines: verbs, forward and reverse
 * paths, ESMTP parameters (SIZE, BODY, SMTPUTF8, DSN, AUTH), HELO/EHLO and
 * BDAT arguments, and RFC 3461 xtext.
 *
 * Every function reads one NUL-terminated line without its CRLF and writes
 * only into fixed-size caller structures, so any input is safe to feed. The
 * grammar follows RFC 5321 4.1.2 strictly where a lax reading would let two
 * parsers disagree about an address, and is lenient only about the spacing
 * real clients get wrong (blanks after "FROM:", runs of blanks between
 * parameters).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "smtp_parse.h"

#define R_LINE_CHAR "500 5.5.2 Syntax error: invalid character in command"
#define R_LINE_8BIT "500 5.5.2 Syntax error: 8-bit character in command"
#define R_HELO_SYNTAX "501 5.5.4 Syntax: EHLO hostname"
#define R_HELO_BAD "501 5.5.2 Invalid domain name"
#define R_MAIL_SYNTAX "501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_RCPT_SYNTAX "501 5.5.4 Syntax: RCPT TO:<address>"
#define R_SENDER_BAD "501 5.1.7 Bad sender address syntax"
#define R_SENDER_LONG "501 5.1.7 Sender address too long"
#define R_RCPT_BAD "501 5.1.3 Bad recipient address syntax"
#define R_RCPT_LONG "501 5.1.3 Recipient address too long"
#define R_NEED_UTF8 "553 5.6.7 Non-ASCII address requires SMTPUTF8"
#define R_PARAM_UNKNOWN "555 5.5.4 Unsupported parameter"
#define R_BDAT_SYNTAX "501 5.5.4 Syntax: BDAT size [LAST]"

/* The longest keyword quoted back in a 555 reply; a longer one is cut. */
#define SMTP_KEYWORD_ECHO_MAX 32

/* Longest address literal content inet_pton is asked about. */
#define SMTP_LITERAL_MAX 64

/* The largest 64-bit number has 20 digits. */
#define SMTP_U64_DIGITS_MAX 20

static const char *const smtp_verb_names[SMTP_VERB_COUNT] = {
    [SMTP_VERB_UNKNOWN] = "UNKNOWN", [SMTP_VERB_HELO] = "HELO", [SMTP_VERB_EHLO] = "EHLO",
    [SMTP_VERB_MAIL] = "MAIL",       [SMTP_VERB_RCPT] = "RCPT", [SMTP_VERB_DATA] = "DATA",
    [SMTP_VERB_BDAT] = "BDAT",       [SMTP_VERB_RSET] = "RSET", [SMTP_VERB_NOOP] = "NOOP",
    [SMTP_VERB_QUIT] = "QUIT",       [SMTP_VERB_HELP] = "HELP", [SMTP_VERB_VRFY] = "VRFY",
    [SMTP_VERB_EXPN] = "EXPN",       [SMTP_VERB_STARTTLS] = "STARTTLS",
    [SMTP_VERB_AUTH] = "AUTH",
};

/* smtp_lower - ASCII lower case, independent of the locale. */
static unsigned char smtp_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* smtp_is_alpha - ASCII letter. */
static int smtp_is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* smtp_is_digit - ASCII digit. */
static int smtp_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* smtp_is_alnum - ASCII letter or digit. */
static int smtp_is_alnum(unsigned char c)
{
	return smtp_is_alpha(c) || smtp_is_digit(c);
}

/* smtp_ncaseeq - the n bytes at s equal word (n long), ignoring ASCII case. */
static int smtp_ncaseeq(const char *s, size_t n, const char *word)
{
	size_t i;

	if (strlen(word) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (smtp_lower((unsigned char)s[i]) != smtp_lower((unsigned char)word[i]))
			return 0;
	return 1;
}

/* smtp_prefix_caseeq - s starts with prefix, ignoring ASCII case. */
static int smtp_prefix_caseeq(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++)
		if (smtp_lower((unsigned char)*s) != smtp_lower((unsigned char)*prefix))
			return 0;
	return 1;
}

/* smtp_is_atext - RFC 5322 atext, the characters of a dot-string atom. */
static int smtp_is_atext(unsigned char c)
{
	return smtp_is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* smtp_is_cont - a UTF-8 continuation byte. */
static int smtp_is_cont(unsigned char c)
{
	return c >= 0x80 && c <= 0xbf;
}

/*
 * smtp_utf8_seq - length of the well-formed UTF-8 sequence at s, 0 if there
 * is none. Overlong forms, surrogates and code points past U+10FFFF are
 * refused (RFC 3629), since they are the usual way to sneak a second
 * spelling of an address past a comparison.
 */
static size_t smtp_utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		return smtp_is_cont(s[1]) ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (c == 0xe0)
			lo = 0xa0;
		if (c == 0xed)
			hi = 0x9f;
		return (s[1] >= lo && s[1] <= hi && smtp_is_cont(s[2])) ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f;
		if (s[1] < lo || s[1] > hi || !smtp_is_cont(s[2]) || !smtp_is_cont(s[3]))
			return 0;
		return 4;
	}
	return 0;
}

/* smtp_parse_u64 - n decimal digits (1 to 20) that fit in 64 bits. */
static int smtp_parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > SMTP_U64_DIGITS_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (!smtp_is_digit((unsigned char)s[i]) || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* smtp_skip_spaces - first byte of s that is not a space. */
static const char *smtp_skip_spaces(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

/* smtp_verb_parse - identify the command of a line. */
enum smtp_verb smtp_verb_parse(const char *line, const char **args)
{
	size_t n;
	int v;

	for (v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
		if (!smtp_prefix_caseeq(line, smtp_verb_names[v]))
			continue;
		n = strlen(smtp_verb_names[v]);
		if (line[n] != '\0' && line[n] != ' ')
			break;
		if (args)
			*args = line[n] ? line + n + 1 : line + n;
		return (enum smtp_verb)v;
	}
	if (args)
		*args = "";
	return SMTP_VERB_UNKNOWN;
}

/* smtp_verb_name - the verb as a string, "UNKNOWN" when out of range. */
const char *smtp_verb_name(enum smtp_verb verb)
{
	if ((int)verb <= SMTP_VERB_UNKNOWN || verb >= SMTP_VERB_COUNT)
		return smtp_verb_names[SMTP_VERB_UNKNOWN];
	return smtp_verb_names[verb];
}

/* smtp_line_check - refuse control characters, and 8-bit bytes unless utf8. */
const char *smtp_line_check(const char *line, size_t len, int utf8)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return R_LINE_CHAR;
		if (c >= 0x80 && !utf8)
			return R_LINE_8BIT;
	}
	return NULL;
}

/*
 * smtp_label_scan - length of one domain label at s, 0 if it is not one.
 *
 * Letters, digits and inner hyphens; underscore too when allowed (HELO names
 * of misconfigured hosts), and UTF-8 (U-labels) when utf8 is set. The 63
 * octet limit is applied to ASCII labels only: a U-label's length that counts
 * is that of its A-label, which is shorter than its UTF-8.
 */
static size_t smtp_label_scan(const char *s, int underscore, int utf8, int *eightbit)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;
	int nonascii = 0;

	for (;;) {
		if (smtp_is_alnum(u[i]) || u[i] == '-' || (underscore && u[i] == '_')) {
			i++;
		} else if (utf8 && u[i] >= 0x80 && (n = smtp_utf8_seq(u + i)) != 0) {
			i += n;
			nonascii = 1;
		} else {
			break;
		}
	}
	if (i == 0 || u[0] == '-' || u[i - 1] == '-')
		return 0;
	if (!nonascii && i > 63)
		return 0;
	if (nonascii)
		*eightbit = 1;
	return i;
}

/* smtp_domain_scan - length of the dot-separated domain at s, 0 if none. */
static size_t smtp_domain_scan(const char *s, int underscore, int utf8, int *eightbit)
{
	size_t i = 0, n;

	for (;;) {
		n = smtp_label_scan(s + i, underscore, utf8, eightbit);
		if (n == 0)
			return 0;
		i += n;
		if (s[i] != '.')
			return i;
		i++;
	}
}

/*
 * smtp_literal_scan - length of the address literal at s ("[192.0.2.1]",
 * "[IPv6:2001:db8::1]"), 0 if it is not one. General address literals
 * ("[tag:content]") are refused: nothing could be delivered to them.
 */
static size_t smtp_literal_scan(const char *s)
{
	char buf[SMTP_LITERAL_MAX];
	unsigned char addr[16];
	size_t n = 0;

	if (s[0] != '[')
		return 0;
	while (s[1 + n] != ']') {
		if (s[1 + n] == '\0' || n + 1 >= sizeof(buf))
			return 0;
		n++;
	}
	memcpy(buf, s + 1, n);
	buf[n] = '\0';
	if (smtp_prefix_caseeq(buf, "IPv6:")) {
		if (inet_pton(AF_INET6, buf + 5, addr) != 1)
			return 0;
	} else if (inet_pton(AF_INET, buf, addr) != 1) {
		return 0;
	}
	return n + 2;
}

/* smtp_dot_string_scan - length of the RFC 5321 dot-string at s, 0 if none. */
static size_t smtp_dot_string_scan(const char *s, int *eightbit)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;
	int in_atom = 0;

	for (;;) {
		if (smtp_is_atext(u[i])) {
			i++;
			in_atom = 1;
		} else if (u[i] >= 0x80 && (n = smtp_utf8_seq(u + i)) != 0) {
			i += n;
			in_atom = 1;
			*eightbit = 1;
		} else if (u[i] == '.' && in_atom) {
			i++;
			in_atom = 0;
		} else {
			break;
		}
	}
	/* Refuses the empty string and a trailing dot alike. */
	return in_atom ? i : 0;
}

/* smtp_quoted_scan - length of the RFC 5321 quoted-string at s, 0 if none. */
static size_t smtp_quoted_scan(const char *s, int *eightbit)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 1, n;

	if (u[0] != '"')
		return 0;
	for (;;) {
		if (u[i] == '"')
			return i + 1;
		if (u[i] == '\\') {
			if (u[i + 1] < 32 || u[i + 1] > 126)
				return 0;
			i += 2;
		} else if (u[i] >= 32 && u[i] <= 126) {
			i++;
		} else if (u[i] >= 0x80 && (n = smtp_utf8_seq(u + i)) != 0) {
			i += n;
			*eightbit = 1;
		} else {
			return 0;
		}
	}
}

/* smtp_route_skip - length of a source route "@a,@b:" at s, 0 if bad. */
static size_t smtp_route_skip(const char *s)
{
	size_t i = 0, n;
	int ignored = 0;

	for (;;) {
		if (s[i] != '@')
			return 0;
		i++;
		n = smtp_domain_scan(s + i, 0, 1, &ignored);
		if (n == 0)
			return 0;
		i += n;
		if (s[i] == ':')
			return i + 1;
		if (s[i] != ',')
			return 0;
		i++;
	}
}

/* The replies of one command for the ways its path can be wrong. */
struct smtp_path_replies {
	const char *syntax;
	const char *bad;
	const char *too_long;
};

static const struct smtp_path_replies smtp_mail_replies = {R_MAIL_SYNTAX, R_SENDER_BAD,
                                                           R_SENDER_LONG};
static const struct smtp_path_replies smtp_rcpt_replies = {R_RCPT_SYNTAX, R_RCPT_BAD, R_RCPT_LONG};

/* smtp_mailbox_domain_scan - length of the domain part at s, 0 if bad. */
static size_t smtp_mailbox_domain_scan(const char *s, int *eightbit)
{
	if (s[0] == '[')
		return smtp_literal_scan(s);
	return smtp_domain_scan(s, 0, 1, eightbit);
}

/* smtp_is_postmaster - the local part is the bare "postmaster" of RCPT. */
static int smtp_is_postmaster(const char *local, size_t n)
{
	return smtp_ncaseeq(local, n, "postmaster");
}

/*
 * smtp_path_parse - parse the path at *pp, which starts with '<', into addr,
 * and move *pp past its '>'. *eightbit tells whether it holds UTF-8; whether
 * that is allowed is decided by the caller once the parameters are known.
 * Returns NULL or the reply to send.
 */
static const char *smtp_path_parse(const char **pp, int rcpt, const struct smtp_path_replies *r,
                                   struct smtp_address *addr, int *eightbit)
{
	const char *start = *pp, *p = *pp + 1, *local, *domain = "";
	size_t local_len, domain_len = 0, path_len;

	memset(addr, 0, sizeof(*addr));
	if (*start != '<')
		return r->syntax;
	if (*p == '>') {
		addr->null = 1;
		*pp = p + 1;
		return NULL;
	}
	if (*p == '@') {
		size_t n = smtp_route_skip(p);

		if (n == 0)
			return r->bad;
		p += n;
	}
	local = p;
	local_len = *p == '"' ? smtp_quoted_scan(p, eightbit) : smtp_dot_string_scan(p, eightbit);
	if (local_len == 0)
		return r->bad;
	p += local_len;
	if (*p == '@') {
		domain = ++p;
		domain_len = smtp_mailbox_domain_scan(p, eightbit);
		if (domain_len == 0)
			return r->bad;
		p += domain_len;
	} else if (!(rcpt && *p == '>' && smtp_is_postmaster(local, local_len))) {
		return r->bad;
	}
	if (*p != '>')
		return r->bad;
	p++;
	path_len = (size_t)(p - start);
	if (local_len > SMTP_LOCAL_MAX || domain_len > SMTP_DOMAIN_MAX || path_len > SMTP_PATH_MAX)
		return r->too_long;
	memcpy(addr->local, local, local_len);
	memcpy(addr->domain, domain, domain_len);
	*pp = p;
	return NULL;
}

/* One ESMTP parameter, keyword[=value], pointing into the command line. */
struct smtp_param {
	const char *keyword;
	size_t keyword_len;
	const char *value; /* NULL when there is no '=' */
	size_t value_len;
};

/* smtp_param_next - split off the next parameter at *pp; 0 at the end. */
static int smtp_param_next(const char **pp, struct smtp_param *prm)
{
	const char *p = smtp_skip_spaces(*pp);
	const char *end, *eq;

	if (*p == '\0')
		return 0;
	end = p + strcspn(p, " ");
	eq = memchr(p, '=', (size_t)(end - p));
	prm->keyword = p;
	prm->keyword_len = (size_t)((eq ? eq : end) - p);
	prm->value = eq ? eq + 1 : NULL;
	prm->value_len = eq ? (size_t)(end - eq - 1) : 0;
	*pp = end;
	return 1;
}

/* smtp_keyword_valid - RFC 5321 esmtp-keyword: alnum, then alnum or '-'. */
static int smtp_keyword_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || !smtp_is_alnum((unsigned char)s[0]))
		return 0;
	for (i = 1; i < n; i++)
		if (!smtp_is_alnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

/*
 * smtp_param_unknown - the 555 reply naming an unknown keyword. The text
 * lives in a per-thread buffer, valid until this thread's next parse call.
 */
static const char *smtp_param_unknown(const struct smtp_param *prm)
{
	static _Thread_local char reply[sizeof(R_PARAM_UNKNOWN) + SMTP_KEYWORD_ECHO_MAX + 2];
	size_t n = prm->keyword_len;

	if (!smtp_keyword_valid(prm->keyword, n))
		return R_PARAM_UNKNOWN;
	if (n > SMTP_KEYWORD_ECHO_MAX)
		n = SMTP_KEYWORD_ECHO_MAX;
	snprintf(reply, sizeof(reply), "%s: %.*s", R_PARAM_UNKNOWN, (int)n, prm->keyword);
	return reply;
}

/* smtp_is_xchar - a byte that stands for itself in xtext. */
static int smtp_is_xchar(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '+' && c != '=';
}

/* smtp_hex_upper - value of an upper-case hex digit, -1 for anything else. */
static int smtp_hex_upper(unsigned char c)
{
	if (smtp_is_digit(c))
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * smtp_xtext_decode - decode the n bytes of xtext at in into out (at most
 * max bytes and a NUL). Decoded characters must be printable ASCII, as the
 * values end up in DSN header fields; raw UTF-8 is let through only when
 * utf8 is set (the "utf-8" ORCPT type of RFC 6533 under SMTPUTF8). Returns
 * -1 when malformed, empty or too long.
 */
static int smtp_xtext_decode(const char *in, size_t n, char *out, size_t max, int utf8)
{
	const unsigned char *u = (const unsigned char *)in;
	size_t i = 0, o = 0, seq;
	int hi, lo;

	while (i < n) {
		if (u[i] == '+') {
			if (n - i < 3 || (hi = smtp_hex_upper(u[i + 1])) < 0 ||
			    (lo = smtp_hex_upper(u[i + 2])) < 0 || hi * 16 + lo < 0x20 ||
			    hi * 16 + lo > 0x7e || o + 1 > max)
				return -1;
			out[o++] = (char)(hi * 16 + lo);
			i += 3;
		} else if (smtp_is_xchar(u[i])) {
			if (o + 1 > max)
				return -1;
			out[o++] = (char)u[i++];
		} else if (utf8 && u[i] >= 0x80 && (seq = smtp_utf8_seq(u + i)) != 0 &&
		           seq <= n - i) {
			if (o + seq > max)
				return -1;
			memcpy(out + o, in + i, seq);
			o += seq;
			i += seq;
		} else {
			return -1;
		}
	}
	if (o == 0)
		return -1;
	out[o] = '\0';
	return (int)o;
}

/* smtp_value_is - the parameter's value is word, ignoring ASCII case. */
static int smtp_value_is(const struct smtp_param *prm, const char *word)
{
	return prm->value && smtp_ncaseeq(prm->value, prm->value_len, word);
}

/* smtp_mail_param_size - SIZE=digits (RFC 1870). */
static int smtp_mail_param_size(void *target, const struct smtp_param *prm, int utf8)
{
	struct smtp_mail *mail = target;

	if (!prm->value || smtp_parse_u64(prm->value, prm->value_len, &mail->size) < 0)
		return -1;
	mail->size_given = 1;
	return 0;
}

/* smtp_mail_param_body - BODY=7BIT or BODY=8BITMIME (RFC 6152). */
static int smtp_mail_param_body(void *target, const struct smtp_param *prm, int utf8)
{
	struct smtp_mail *mail = target;

	if (smtp_value_is(prm, "7BIT"))
		mail->body = SMTP_BODY_7BIT;
	else if (smtp_value_is(prm, "8BITMIME"))
		mail->body = SMTP_BODY_8BITMIME;
	else
		return -1;
	return 0;
}

/* smtp_mail_param_smtputf8 - SMTPUTF8, which takes no value (RFC 6531). */
static int smtp_mail_param_smtputf8(void *target, const struct smtp_param *prm, int utf8)
{
	struct smtp_mail *mail = target;

	if (prm->value)
		return -1;
	mail->smtputf8 = 1;
	return 0;
}

/* smtp_mail_param_ret - RET=FULL or RET=HDRS (RFC 3461 4.3). */
static int smtp_mail_param_ret(void *target, const struct smtp_param *prm, int utf8)
{
	struct smtp_mail *mail = target;

	if (smtp_value_is(prm, "FULL"))
		mail->ret = SMTP_RET_FULL;
	else if (smtp_value_is(prm, "HDRS"))
		mail->ret = SMTP_RET_HDRS;
	else
		return -1;
	return 0;
}

/* smtp_mail_param_envid - ENVID=xtext (RFC 3461 4.4). */
static int smtp_mail_param_envid(void *target, const struct smtp_param *prm, int utf8)
{
	struct smtp_mail *mail = target;

	if (!prm->value)
		return -1;
	if (smtp_xtext_decode(prm->value, prm->value_len, mail->envid, SMTP_ENVID_MAX, 0) < 0)
		return -1;
	return 0;
}

/* smtp_mail_param_auth - AUTH=xtext or AUTH=<> (RFC 4954 5). */
static int smtp_mail_param_auth(void *target, const struct smtp_param *prm, int utf8)
{
	struct smtp_mail *mail = target;

	if (!prm->value)
		return -1;
	if (smtp_xtext_decode(prm->value, prm->value_len, mail->auth, SMTP_AUTH_PARAM_MAX, 0) < 0)
		return -1;
	return 0;
}

/* smtp_notify_word - the SMTP_NOTIFY_* bit of one NOTIFY list item, 0 if none. */
static unsigned smtp_notify_word(const char *s, size_t n)
{
	if (smtp_ncaseeq(s, n, "NEVER"))
		return SMTP_NOTIFY_NEVER;
	if (smtp_ncaseeq(s, n, "SUCCESS"))
		return SMTP_NOTIFY_SUCCESS;
	if (smtp_ncaseeq(s, n, "FAILURE"))
		return SMTP_NOTIFY_FAILURE;
	if (smtp_ncaseeq(s, n, "DELAY"))
		return SMTP_NOTIFY_DELAY;
	return 0;
}

/* smtp_rcpt_param_notify - NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY. */
static int smtp_rcpt_param_notify(void *target, const struct smtp_param *prm, int utf8)
{
	struct smtp_rcpt *rcpt = target;
	const char *p = prm->value, *end;
	unsigned bits = 0, bit;

	if (!p)
		return -1;
	end = p + prm->value_len;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma ? comma : end;

		bit = smtp_notify_word(p, (size_t)(item_end - p));
		if (bit == 0 || (bits & bit))
			return -1;
		bits |= bit;
		if (!comma)
			break;
		p = comma + 1;
	}
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return -1;
	rcpt->notify = bits;
	return 0;
}

/* smtp_rcpt_param_orcpt - ORCPT=rfc822;xtext or ORCPT=utf-8;... (RFC 3461, 6533). */
static int smtp_rcpt_param_orcpt(void *target, const struct smtp_param *prm, int utf8)
{
	struct smtp_rcpt *rcpt = target;
	const char *semi;
	const char *type;
	size_t type_len, i;

	if (!prm->value)
		return -1;
	semi = memchr(prm->value, ';', prm->value_len);
	if (!semi)
		return -1;
	type_len = (size_t)(semi - prm->value);
	if (smtp_ncaseeq(prm->value, type_len, "rfc822"))
		type = "rfc822";
	else if (smtp_ncaseeq(prm->value, type_len, "utf-8"))
		type = "utf-8";
	else
		return -1;
	if (smtp_xtext_decode(semi + 1, prm->value_len - type_len - 1, rcpt->orcpt, SMTP_ORCPT_MAX,
	                      utf8 && strcmp(type, "utf-8") == 0) < 0)
		return -1;
	for (i = 0; type[i]; i++)
		rcpt->orcpt_type[i] = type[i];
	rcpt->orcpt_type[i] = '\0';
	return 0;
}

/* What a command accepts as parameter: its keyword and replies. */
struct smtp_param_def {
	const char *keyword;
	const char *bad;
	const char *duplicate;
	int (*set)(void *target, const struct smtp_param *prm, int utf8);
};

static const struct smtp_param_def smtp_mail_params[] = {
    {"SIZE", "501 5.5.4 Bad SIZE parameter", "501 5.5.4 Duplicate parameter: SIZE",
     smtp_mail_param_size},
    {"BODY", "501 5.5.4 Bad BODY parameter", "501 5.5.4 Duplicate parameter: BODY",
     smtp_mail_param_body},
    {"SMTPUTF8", "501 5.5.4 Bad SMTPUTF8 parameter", "501 5.5.4 Duplicate parameter: SMTPUTF8",
     smtp_mail_param_smtputf8},
    {"RET", "501 5.5.4 Bad RET parameter", "501 5.5.4 Duplicate parameter: RET",
     smtp_mail_param_ret},
    {"ENVID", "501 5.5.4 Bad ENVID parameter", "501 5.5.4 Duplicate parameter: ENVID",
     smtp_mail_param_envid},
    {"AUTH", "501 5.5.4 Bad AUTH parameter", "501 5.5.4 Duplicate parameter: AUTH",
     smtp_mail_param_auth},
};

static const struct smtp_param_def smtp_rcpt_params[] = {
    {"NOTIFY", "501 5.5.4 Bad NOTIFY parameter", "501 5.5.4 Duplicate parameter: NOTIFY",
     smtp_rcpt_param_notify},
    {"ORCPT", "501 5.5.4 Bad ORCPT parameter", "501 5.5.4 Duplicate parameter: ORCPT",
     smtp_rcpt_param_orcpt},
};

/*
 * smtp_params_parse - the space-separated parameters at p, each one of defs
 * and each at most once, stored into target. Returns NULL or the reply.
 */
static const char *smtp_params_parse(const char *p, const struct smtp_param_def *defs, size_t ndefs,
                                     void *target, int utf8)
{
	struct smtp_param prm;
	unsigned seen = 0;
	size_t i;

	while (smtp_param_next(&p, &prm)) {
		for (i = 0; i < ndefs; i++)
			if (smtp_ncaseeq(prm.keyword, prm.keyword_len, defs[i].keyword))
				break;
		if (i == ndefs)
			return smtp_param_unknown(&prm);
		if (seen & (1u << i))
			return defs[i].duplicate;
		seen |= 1u << i;
		if (defs[i].set(target, &prm, utf8) < 0)
			return defs[i].bad;
	}
	return NULL;
}

/* smtp_address_format - "local@domain", "postmaster" or "" into buf, like snprintf. */
size_t smtp_address_format(const struct smtp_address *addr, char *buf, size_t len)
{
	int n;

	if (addr->null)
		n = snprintf(buf, len, "%s", "");
	else if (addr->domain[0] == '\0')
		n = snprintf(buf, len, "%s", addr->local);
	else
		n = snprintf(buf, len, "%s@%s", addr->local, addr->domain);
	return n < 0 ? 0 : (size_t)n;
}

/* smtp_string_is_ascii - 1 when no byte of s is >= 0x80. */
static int smtp_string_is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* smtp_address_is_ascii - 1 when no byte of the address is >= 0x80. */
int smtp_address_is_ascii(const struct smtp_address *addr)
{
	return smtp_string_is_ascii(addr->local) && smtp_string_is_ascii(addr->domain);
}

/* smtp_helo_parse - check the domain or address literal of HELO / EHLO. */
const char *smtp_helo_parse(const char *args)
{
	const char *p = smtp_skip_spaces(args);
	size_t len = strlen(p), n;
	int ignored = 0;

	while (len > 0 && p[len - 1] == ' ')
		len--;
	if (len == 0)
		return R_HELO_SYNTAX;
	if (p[0] == '[')
		n = smtp_literal_scan(p);
	else
		n = smtp_domain_scan(p, 1, 0, &ignored);
	if (n == 0 || n != len || n > SMTP_DOMAIN_MAX)
		return R_HELO_BAD;
	return NULL;
}

/* smtp_path_after_ok - what may follow a path: the end, or a space and parameters. */
static int smtp_path_after_ok(const char *p)
{
	return *p == '\0' || *p == ' ';
}

/* smtp_mail_parse - parse "FROM:<path> params" of MAIL. */
const char *smtp_mail_parse(const char *args, struct smtp_mail *mail)
{
	const char *p = args, *err;
	int eightbit = 0;

	memset(mail, 0, sizeof(*mail));
	if (!smtp_prefix_caseeq(p, "FROM:"))
		return R_MAIL_SYNTAX;
	p = smtp_skip_spaces(p + 5);
	err = smtp_path_parse(&p, 0, &smtp_mail_replies, &mail->from, &eightbit);
	if (err)
		return err;
	if (!smtp_path_after_ok(p))
		return R_MAIL_SYNTAX;
	err = smtp_params_parse(p, smtp_mail_params,
	                        sizeof(smtp_mail_params) / sizeof(smtp_mail_params[0]), mail, 0);
	if (err)
		return err;
	/* Only now is it known whether SMTPUTF8 came after the address. */
	if (eightbit && !mail->smtputf8)
		return R_NEED_UTF8;
	return NULL;
}

/* smtp_rcpt_parse - parse "TO:<path> params" of RCPT. */
const char *smtp_rcpt_parse(const char *args, int utf8, struct smtp_rcpt *rcpt)
{
	const char *p = args, *err;
	int eightbit = 0;

	memset(rcpt, 0, sizeof(*rcpt));
	if (!smtp_prefix_caseeq(p, "TO:"))
		return R_RCPT_SYNTAX;
	p = smtp_skip_spaces(p + 3);
	err = smtp_path_parse(&p, 1, &smtp_rcpt_replies, &rcpt->to, &eightbit);
	if (err)
		return err;
	if (rcpt->to.null)
		return R_RCPT_BAD;
	if (!smtp_path_after_ok(p))
		return R_RCPT_SYNTAX;
	err = smtp_params_parse(p, smtp_rcpt_params,
	                        sizeof(smtp_rcpt_params) / sizeof(smtp_rcpt_params[0]), rcpt, utf8);
	if (err)
		return err;
	if (eightbit && !utf8)
		return R_NEED_UTF8;
	return NULL;
}

/* smtp_bdat_parse - parse "size [LAST]" of BDAT. */
const char *smtp_bdat_parse(const char *args, uint64_t *size, int *last)
{
	size_t n = strspn(args, "0123456789");
	const char *rest = args + n;

	if (smtp_parse_u64(args, n, size) < 0)
		return R_BDAT_SYNTAX;
	if (*rest == '\0') {
		*last = 0;
		return NULL;
	}
	if (rest[0] == ' ' && smtp_ncaseeq(rest + 1, strlen(rest + 1), "LAST")) {
		*last = 1;
		return NULL;
	}
	return R_BDAT_SYNTAX;
}

/* smtp_xtext_encode - RFC 3461 xtext of in, into out (NUL-terminated). */
size_t smtp_xtext_encode(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;
		size_t need = smtp_is_xchar(c) ? 1 : 3;

		if (o + need >= outlen) {
			if (outlen > 0)
				out[0] = '\0';
			return (size_t)-1;
		}
		if (need == 1) {
			out[o++] = (char)c;
		} else {
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	if (outlen == 0)
		return (size_t)-1;
	out[o] = '\0';
	return o;
}
