/*
 * smtp_parse.h - parsing of SMTP command lines (RFC 5321 and extensions).
 *
 * Pure functions over one command line without its CRLF: no I/O, no
 * allocation, every output bounded. A parse error comes back as the complete
 * reply line to send (code, enhanced status code, text, no CRLF) so that the
 * session and the tests agree on what a client is told.
 */
#ifndef VSMTPD_SMTP_PARSE_H
#define VSMTPD_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1 size limits, in octets. */
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256 /* the whole <...> path, brackets included */
#define SMTP_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500 /* RFC 3461 4.2, decoded */
#define SMTP_AUTH_PARAM_MAX 500

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_HELP,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_COUNT
};

/*
 * smtp_verb_parse - identify the command of a line.
 *
 * The verb is matched case-insensitively and must be followed by the end of
 * the line or by a single space; *args is set to what follows that space (an
 * empty string when there is nothing). Returns SMTP_VERB_UNKNOWN otherwise.
 */
enum smtp_verb smtp_verb_parse(const char *line, const char **args);

/* smtp_verb_name - "EHLO" etc, "UNKNOWN" for SMTP_VERB_UNKNOWN. */
const char *smtp_verb_name(enum smtp_verb verb);

/*
 * smtp_line_check - refuse what no command line may hold: NUL bytes, other
 * control characters than TAB, and (unless utf8 is set) bytes >= 0x80.
 * Returns NULL or the reply to send.
 */
const char *smtp_line_check(const char *line, size_t len, int utf8);

/* A parsed mailbox. The null path <> has null set and empty strings. */
struct smtp_address {
	int null;
	char local[SMTP_LOCAL_MAX + 1]; /* as written: a dot-string or a quoted-string */
	char domain[SMTP_DOMAIN_MAX + 1]; /* a domain or an address literal, as written; may be
					   * empty only for RCPT TO:<postmaster> */
};

/* smtp_address_format - "local@domain" (or "" for the null path) into buf. */
size_t smtp_address_format(const struct smtp_address *addr, char *buf, size_t len);

/* smtp_address_is_ascii - 1 when no byte of the address is >= 0x80. */
int smtp_address_is_ascii(const struct smtp_address *addr);

enum smtp_body { SMTP_BODY_UNSET = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_UNSET = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

/* RCPT NOTIFY= bits (RFC 3461 4.1); 0 means not given. */
#define SMTP_NOTIFY_NEVER 0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY 0x8

struct smtp_mail {
	struct smtp_address from;
	uint64_t size;      /* SIZE=, 0 when not given */
	int size_given;
	enum smtp_body body;
	int smtputf8;       /* SMTPUTF8 given */
	enum smtp_ret ret;  /* DSN RET= */
	char envid[SMTP_ENVID_MAX + 1]; /* DSN ENVID=, xtext-decoded, "" when not given */
	char auth[SMTP_AUTH_PARAM_MAX + 1]; /* AUTH=, xtext-decoded, "" when not given */
};

struct smtp_rcpt {
	struct smtp_address to;
	unsigned notify;                   /* SMTP_NOTIFY_* bits */
	char orcpt_type[16];               /* "rfc822", "utf-8", "" when not given */
	char orcpt[SMTP_ORCPT_MAX + 1];    /* the decoded ORCPT address */
};

/*
 * smtp_helo_parse - check the argument of HELO / EHLO: a domain name or an
 * address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"). Returns NULL or the
 * reply to send.
 */
const char *smtp_helo_parse(const char *args);

/*
 * smtp_mail_parse - parse the arguments of MAIL ("FROM:<path> params").
 *
 * Checks the path (RFC 5321 4.1.2, source routes accepted and dropped), the
 * lengths, and the parameters SIZE, BODY, SMTPUTF8, RET, ENVID and AUTH;
 * UTF-8 in the address is allowed only with SMTPUTF8 (else 553 5.6.7).
 * Returns NULL and fills *mail, or the reply to send.
 */
const char *smtp_mail_parse(const char *args, struct smtp_mail *mail);

/*
 * smtp_rcpt_parse - parse the arguments of RCPT ("TO:<path> params").
 *
 * The null path is refused; "<postmaster>" without a domain is accepted.
 * Parameters: NOTIFY and ORCPT. UTF-8 in the address only when utf8 is set
 * (the transaction's MAIL carried SMTPUTF8).
 */
const char *smtp_rcpt_parse(const char *args, int utf8, struct smtp_rcpt *rcpt);

/*
 * smtp_bdat_parse - parse "size [LAST]". Sets *size and *last.
 * Returns NULL or the reply to send.
 */
const char *smtp_bdat_parse(const char *args, uint64_t *size, int *last);

/*
 * smtp_xtext_encode - RFC 3461 xtext of in, into out (NUL-terminated).
 * Returns the length written, or (size_t)-1 if it does not fit.
 */
size_t smtp_xtext_encode(const char *in, char *out, size_t outlen);

#endif
