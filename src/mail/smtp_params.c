/*
 * smtp_params.c - the ESMTP parameters of MAIL and RCPT (SIZE, BODY,
 * SMTPUTF8, RET, ENVID, AUTH; NOTIFY, ORCPT) and RFC 3461 xtext, for
 * smtp_parse.c, which parses the paths they follow.
 *
 * Each command has a table of the keywords it accepts, with the replies for
 * a bad and a repeated one and the function that stores the value; a
 * keyword in no table gets a 555 naming it. xtext is decoded into the
 * caller's fixed-size fields and only printable ASCII comes out of it, as
 * the values end up in DSN header fields.
 */
#include <stdio.h>
#include <string.h>

#include "smtp_parse.h"
#include "smtp_parse_internal.h"

#define R_PARAM_UNKNOWN "555 5.5.4 Unsupported parameter"

/* The longest keyword quoted back in a 555 reply; a longer one is cut. */
#define SMTP_KEYWORD_ECHO_MAX 32

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

/* smtp_mail_params_parse - the parameters after MAIL's path. */
const char *smtp_mail_params_parse(const char *p, struct smtp_mail *mail)
{
	return smtp_params_parse(p, smtp_mail_params,
	                         sizeof(smtp_mail_params) / sizeof(smtp_mail_params[0]), mail, 0);
}

/* smtp_rcpt_params_parse - the parameters after RCPT's path. */
const char *smtp_rcpt_params_parse(const char *p, int utf8, struct smtp_rcpt *rcpt)
{
	return smtp_params_parse(p, smtp_rcpt_params,
	                         sizeof(smtp_rcpt_params) / sizeof(smtp_rcpt_params[0]), rcpt, utf8);
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
