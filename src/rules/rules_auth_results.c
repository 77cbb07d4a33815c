/*
 * rules_auth_results.c - ctx:add_authentication_results(): one
 * Authentication-Results field (RFC 8601) on top of the message, under
 * this host's authserv-id (the configured host name, as hostname() gives
 * it), with every result the rules obtained so far in the transaction;
 * and every other such field carrying that id removed, as forged (RFC 8601
 * section 5). Fields of other hosts are kept.
 *
 * The results are only read, through the accessors the checks expose
 * (rules_spf.h, rules_dkim.h, rules_dmarc.h, rules_arc.h): nothing is
 * checked anew, no DNS is asked. A method the rules did not call is left
 * out; with none at all the field says "none". The methods are the rows of
 * ar_methods, in the order the field lists them: spf (MAIL FROM, then
 * HELO), dkim (one per signature), dmarc (RFC 7489 section 11.2:
 * dmarc=RESULT header.from=DOMAIN) and arc (RFC 8617 section 7.2).
 * The value is also what ctx:arc_seal() puts in its
 * ARC-Authentication-Results when the rule gives none (rules_ar_push_value).
 *
 * The value is "ID; method=result [reason="..."] ptype.property=value
 * ...; ..." (section 2.2), each property value a token when it can be,
 * else a quoted-string, a reason always quoted and cut to AR_REASON_MAX
 * bytes. The message library folds it before blanks. The new field goes
 * on top first; the forged ones are removed after, so that a refused edit
 * changes nothing.
 *
 * Only at preq: the SPF results live in the session process, from MAIL to
 * the end of the transaction, and a header edit at preq is what is queued.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rules_arc.h"
#include "rules_auth_results.h"
#include "rules_dkim.h"
#include "rules_dmarc.h"
#include "rules_internal.h"
#include "rules_offline.h"
#include "rules_spf.h"
#include "utf8.h"

#define AR_FIELD "Authentication-Results"
#define AR_REASON_MAX 200

/* ---- the authserv-id ----------------------------------------------------- */

/* ar_is_blank - FWS: a blank or a line break left in the value. */
static int ar_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ar_is_token_char - a character of an RFC 2045 token (UTF-8 bytes allowed,
 * RFC 6532): no space, control or tspecial. */
static int ar_is_token_char(unsigned char c)
{
	return c > ' ' && c != 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* ar_skip_cfws - past blanks and comments (nested, with quoted-pairs) from
 * p; NULL when a comment does not end before end. */
static const char *ar_skip_cfws(const char *p, const char *end)
{
	int depth;

	while (p < end) {
		if (ar_is_blank(*p)) {
			p++;
			continue;
		}
		if (*p != '(')
			break;
		depth = 0;
		do {
			if (*p == '\\') {
				if (++p == end)
					return NULL;
			} else if (*p == '(') {
				depth++;
			} else if (*p == ')') {
				depth--;
			}
			p++;
		} while (depth > 0 && p < end);
		if (depth > 0)
			return NULL;
	}
	return p;
}

/* rules_ar_authserv_id - see rules_auth_results.h. */
ssize_t rules_ar_authserv_id(const char *value, size_t len, char *out, size_t outlen)
{
	const char *p, *end = value + len;
	size_t n = 0;

	if (outlen == 0 || (p = ar_skip_cfws(value, end)) == NULL || p == end)
		return -1;
	if (*p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && ++p == end)
				return -1;
			if (*p == '\0' || n + 1 >= outlen)
				return -1;
			out[n++] = *p;
		}
		if (p++ == end)
			return -1;
	} else {
		for (; p < end && ar_is_token_char((unsigned char)*p); p++) {
			if (n + 1 >= outlen)
				return -1;
			out[n++] = *p;
		}
	}
	if (n == 0 || (p < end && !ar_is_blank(*p) && *p != '(' && *p != ';'))
		return -1;
	out[n] = '\0';
	return (ssize_t)n;
}

/* ---- the value ------------------------------------------------------------ */

/* ar_put_quoted - s as a quoted-string, at most max bytes of it; control
 * characters, which a header may not hold, left out, and a byte that
 * starts no valid UTF-8 character (a reason can quote a DNS record) shown
 * as '?'. */
static void ar_put_quoted(luaL_Buffer *b, const char *s, size_t max)
{
	size_t i, n, len = strnlen(s, max);
	uint32_t cp;

	luaL_addchar(b, '"');
	for (i = 0; i < len; i += n) {
		n = 1;
		if ((unsigned char)s[i] >= 0x80) {
			if ((n = utf8_char((const unsigned char *)s + i, len - i, &cp)) == 0) {
				n = 1;
				luaL_addchar(b, '?');
			} else {
				luaL_addlstring(b, s + i, n);
			}
			continue;
		}
		if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
			continue;
		if (s[i] == '"' || s[i] == '\\')
			luaL_addchar(b, '\\');
		luaL_addchar(b, s[i]);
	}
	luaL_addchar(b, '"');
}

/* ar_put_value - s as an RFC 2045 value: itself when a token, else quoted. */
static void ar_put_value(luaL_Buffer *b, const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0' && ar_is_token_char((unsigned char)s[i]); i++)
		;
	if (i > 0 && s[i] == '\0')
		luaL_addstring(b, s);
	else
		ar_put_quoted(b, s, AR_REASON_MAX);
}

/* ar_resinfo - "; method=result", with the reason when there is one. */
static void ar_resinfo(luaL_Buffer *b, const char *method, const char *result,
		       const char *reason)
{
	luaL_addstring(b, "; ");
	luaL_addstring(b, method);
	luaL_addchar(b, '=');
	luaL_addstring(b, result);
	if (reason != NULL && reason[0] != '\0') {
		luaL_addstring(b, " reason=");
		ar_put_quoted(b, reason, AR_REASON_MAX);
	}
}

/* ar_prop - " ptype.property=value", unless value is NULL or empty. */
static void ar_prop(luaL_Buffer *b, const char *prop, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return;
	luaL_addchar(b, ' ');
	luaL_addstring(b, prop);
	luaL_addchar(b, '=');
	ar_put_value(b, value);
}

/* ar_spf_mailfrom - spf=RESULT smtp.mailfrom=DOMAIN (ctx:spf()); 1 when added. */
static int ar_spf_mailfrom(const struct rule_ctx *ctx, const char *method, luaL_Buffer *b)
{
	struct rules_spf_view v;

	if (!rules_spf_mailfrom_kept(ctx, &v))
		return 0;
	ar_resinfo(b, method, v.result, v.reason);
	ar_prop(b, "smtp.mailfrom", v.domain);
	return 1;
}

/* ar_spf_helo - spf=RESULT smtp.helo=NAME (ctx:spf_helo()); 1 when added. */
static int ar_spf_helo(const struct rule_ctx *ctx, const char *method, luaL_Buffer *b)
{
	struct rules_spf_view v;

	if (!rules_spf_helo_kept(ctx, &v))
		return 0;
	ar_resinfo(b, method, v.result, v.reason);
	ar_prop(b, "smtp.helo", ctx->helo);
	return 1;
}

/* ar_dkim - dkim=RESULT header.d= header.s= header.a= header.b= for each
 * signature ctx:dkim() found, dkim=none for a message without; how many added. */
static int ar_dkim(const struct rule_ctx *ctx, const char *method, luaL_Buffer *b)
{
	long i, n = rules_dkim_kept(ctx);
	struct rules_dkim_view v;

	if (n < 0)
		return 0;
	if (n == 0) {
		ar_resinfo(b, method, "none", NULL);
		return 1;
	}
	for (i = 0; i < n; i++) {
		rules_dkim_view(ctx, (size_t)i, &v);
		ar_resinfo(b, method, v.result, v.reason);
		ar_prop(b, "header.d", v.domain);
		ar_prop(b, "header.s", v.selector);
		ar_prop(b, "header.a", v.algorithm);
		ar_prop(b, "header.b", v.b);
	}
	return (int)n;
}

/* ar_dmarc - dmarc=RESULT header.from=DOMAIN (ctx:dmarc()); 1 when added. */
static int ar_dmarc(const struct rule_ctx *ctx, const char *method, luaL_Buffer *b)
{
	const char *result, *domain, *reason;

	if (!rules_dmarc_kept(ctx, &result, &domain, &reason))
		return 0;
	ar_resinfo(b, method, result, reason);
	ar_prop(b, "header.from", domain);
	return 1;
}

/* ar_arc - arc=RESULT (ctx:arc(), RFC 8617 §7.2), with header.oldest-pass
 * when an older signature did not verify; 1 when added. */
static int ar_arc(const struct rule_ctx *ctx, const char *method, luaL_Buffer *b)
{
	const struct rules_arc_result *r = rules_arc_kept(ctx);
	char oldest[16];

	if (r == NULL)
		return 0;
	ar_resinfo(b, method, r->result, strcmp(r->result, "pass") != 0 ? r->reason : NULL);
	if (strcmp(r->result, "pass") == 0 && r->oldest_pass > 0) {
		snprintf(oldest, sizeof(oldest), "%d", r->oldest_pass);
		ar_prop(b, "header.oldest-pass", oldest);
	}
	return 1;
}

/*
 * The methods, in the order the field lists them: each adds its resinfos
 * ("; method=result ...") from the results kept in ctx and says how many.
 */
static const struct {
	const char *method;
	int (*add)(const struct rule_ctx *ctx, const char *method, luaL_Buffer *b);
} ar_methods[] = {
    {"spf", ar_spf_mailfrom},
    {"spf", ar_spf_helo},
    {"dkim", ar_dkim},
    {"dmarc", ar_dmarc},
    {"arc", ar_arc},
};

/* rules_ar_push_value - see rules_auth_results.h. */
const char *rules_ar_push_value(lua_State *L, const struct rule_ctx *ctx, const char *id)
{
	luaL_Buffer b;
	size_t i;
	int n = 0;

	luaL_buffinit(L, &b);
	luaL_addstring(&b, id);
	for (i = 0; i < sizeof(ar_methods) / sizeof(ar_methods[0]); i++)
		n += ar_methods[i].add(ctx, ar_methods[i].method, &b);
	if (n == 0)
		luaL_addstring(&b, "; none");
	luaL_pushresult(&b);
	return lua_tostring(L, -1);
}

/* ar_summary_dkim - each signature's result, comma-separated, into out. */
static void ar_summary_dkim(const struct rule_ctx *ctx, char *out, size_t outlen)
{
	long i, n = rules_dkim_kept(ctx);
	struct rules_dkim_view v;
	size_t used = 0;

	out[0] = '\0';
	if (n == 0)
		snprintf(out, outlen, "none");
	for (i = 0; i < n && used < outlen; i++) {
		rules_dkim_view(ctx, (size_t)i, &v);
		used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? "," : "", v.result);
	}
}

/* rules_ar_summary - see rules_auth_results.h. */
void rules_ar_summary(struct rules *r, const struct rule_ctx *ctx, struct offline_auth *out)
{
	struct rules_spf_view v;
	const struct rules_arc_result *arc;
	const char *result, *domain, *reason, *text;
	int top = lua_gettop(r->L);

	memset(out, 0, sizeof(*out));
	if (rules_spf_mailfrom_kept(ctx, &v))
		snprintf(out->spf, sizeof(out->spf), "%s", v.result);
	if (rules_spf_helo_kept(ctx, &v))
		snprintf(out->spf_helo, sizeof(out->spf_helo), "%s", v.result);
	ar_summary_dkim(ctx, out->dkim, sizeof(out->dkim));
	if (rules_dmarc_kept(ctx, &result, &domain, &reason))
		snprintf(out->dmarc, sizeof(out->dmarc), "%s", result);
	if ((arc = rules_arc_kept(ctx)) != NULL)
		snprintf(out->arc, sizeof(out->arc), "%s", arc->result);
	/* The field's value under an empty id: "; spf=...; dkim=..." or "; none". */
	text = rules_ar_push_value(r->L, ctx, "");
	if (strcmp(text, "; none") != 0)
		snprintf(out->text, sizeof(out->text), "%s", text + 2);
	lua_settop(r->L, top);
}

/* ---- the method ----------------------------------------------------------- */

/* ar_is_ours - whether field i is an Authentication-Results field under id;
 * -1 when out of memory. */
static int ar_is_ours(const struct message *msg, size_t i, const char *id)
{
	char found[RULES_AR_ID_MAX];
	const char *name;
	size_t nlen, vlen;
	char *value;
	int ours;

	name = message_field_name(msg, i, &nlen);
	if (nlen != strlen(AR_FIELD) || strncasecmp(name, AR_FIELD, nlen) != 0)
		return 0;
	if ((value = message_field_value(msg, i, &vlen)) == NULL)
		return -1;
	ours = rules_ar_authserv_id(value, vlen, found, sizeof(found)) >= 0 &&
	       strcasecmp(found, id) == 0;
	free(value);
	return ours;
}

/* lua_ctx_add_authentication_results - ctx:add_authentication_results():
 * the field on top, the forged ones removed; returns the value added. */
static int lua_ctx_add_authentication_results(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	const char *id = rules_from_state(L)->hostname;
	struct message *msg;
	const char *value;
	size_t i;
	int ours;

	if (ud->stage != RULE_STAGE_PREQ)
		return luaL_error(L,
				  "ctx:add_authentication_results() works at the preq stage only, "
				  "not at %s: it reports the transaction's results on the message as "
				  "it is queued",
				  rules_stage_name(ud->stage));
	msg = ctx_need_msg(L, ctx, "ctx:add_authentication_results()");
	value = rules_ar_push_value(L, ctx, id);
	if (message_header_prepend(msg, AR_FIELD, value) < 0)
		return luaL_error(L, "ctx:add_authentication_results(): %s",
				  errno == ENOMEM ? "out of memory"
						  : "the results do not fit in a header field");
	for (i = 1; i < message_field_count(msg);) {
		if ((ours = ar_is_ours(msg, i, id)) < 0) {
			message_field_remove(msg, 0); /* no field of ours left */
			return luaL_error(L, "ctx:add_authentication_results(): out of memory");
		}
		if (ours)
			message_field_remove(msg, i);
		else
			i++;
	}
	return 1;
}

const luaL_Reg ctx_auth_results_methods[] = {
    {"add_authentication_results", lua_ctx_add_authentication_results},
    {NULL, NULL},
};
