/*
 * smtp_parse.c - parsing of SMTP command lines: verbs, forward and reverse
 * paths, HELO/EHLO and BDAT arguments. The ESMTP parameters after a path
 * (SIZE, BODY, SMTPUTF8, DSN, AUTH) and RFC 3461 xtext are smtp_params.c's.
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
#include "smtp_parse_internal.h"

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
#define R_BDAT_SYNTAX "501 5.5.4 Syntax: BDAT size [LAST]"

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
int smtp_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* smtp_is_alnum - ASCII letter or digit. */
int smtp_is_alnum(unsigned char c)
{
	return smtp_is_alpha(c) || smtp_is_digit(c);
}

/* smtp_ncaseeq - the n bytes at s equal word (n long), ignoring ASCII case. */
int smtp_ncaseeq(const char *s, size_t n, const char *word)
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
size_t smtp_utf8_seq(const unsigned char *s)
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
int smtp_parse_u64(const char *s, size_t n, uint64_t *out)
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
const char *smtp_skip_spaces(const char *s)
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
	err = smtp_mail_params_parse(p, mail);
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
	err = smtp_rcpt_params_parse(p, utf8, rcpt);
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
