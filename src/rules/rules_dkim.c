/*
 * rules_dkim.c - DKIM (RFC 6376, RFC 8463 Ed25519) for the rules, with
 * OpenDKIM's library: the library handle of a ruleset, its DNS through the
 * rules' c-ares channel, and ctx:dkim(), which verifies every
 * DKIM-Signature of the message. Signing is in rules_dkim_sign.c.
 *
 * The handle (DKIM_LIB) is made when the rules are loaded, in the master:
 * dkim_init() reads the system's resolver configuration (res_init), which
 * a confined session process could not. Every resolver hook of the handle
 * is replaced at once so that its built-in resolver is never used: a key
 * query goes through rules_dns_query(), synchronously, inside the query
 * start hook, with the rules' servers and timeout; the wait hook only
 * hands over what the start hook got. The DNS service handle the library
 * passes to the hooks is the Lua thread of the rule that asked, set for
 * the length of one verification and cleared after. The query method is
 * pinned to DNS (never the library's key file), no temporary file is
 * written, no cache is kept: at verify time the library only computes.
 *
 * rules_dns_query() gives no DNS message for a name that does not exist
 * or has no TXT record; the library reads those outcomes from the answer's
 * header, so the start hook hands it a reply made from c-ares' own query
 * encoding with the answer bit and the response code set.
 *
 * Verification runs once per transaction, at the first ctx:dkim() call, on
 * the message as it is then: the header fields one by one as received
 * (message_field_raw, line ending removed), then the body. The results are
 * kept as plain C strings in the transaction (rule_ctx.dkim) and freed by
 * rules_tx_end(): later calls, and later header edits, do not change them.
 * Each call returns a fresh Lua table built from them.
 */
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <lauxlib.h>
#include "rules_dkim.h"
#include "rules_dns.h"
#include "rules_internal.h"

#define DKIM_QUERIES_MAX 16 /* key queries remembered per verification, for reasons */
#define DKIM_QNAME_MAX 256

/* One key query a verification made, and what became of it. */
struct dkim_query {
	char name[DKIM_QNAME_MAX];
	enum rules_dns_result result;
};

/* What the hooks of one verification share (dkim_dns_set_query_service). */
struct dkim_dns {
	lua_State *L;
	struct dkim_query q[DKIM_QUERIES_MAX];
	size_t nq;
};

/* A query handle: the outcome the start hook got, read by the wait hook. */
struct dkim_pending {
	int status; /* DKIM_DNS_SUCCESS, DKIM_DNS_EXPIRED, DKIM_DNS_ERROR */
	size_t len;
};

/* One signature's result, as ctx:dkim() returns it. */
struct dkim_sig_result {
	char *domain, *selector, *algorithm, *identity, *reason;
	char b[RULES_DKIM_B_PREFIX + 1]; /* the start of b=, blanks left out */
	const char *result, *header_canon, *body_canon;
};

/* The results of a transaction (rule_ctx.dkim). */
struct rules_dkim_results {
	size_t n;
	struct dkim_sig_result sig[];
};

/* ---- the resolver hooks ------------------------------------------------ */

/* dkim_empty_reply - a reply without answers to name (rcode 0 or NXDOMAIN)
 * into buf; its length, or 0 when it does not fit. */
static size_t dkim_empty_reply(const char *name, int type, int rcode, unsigned char *buf,
			       size_t buflen)
{
	unsigned char *q = NULL;
	int qlen = 0;
	size_t n = 0;

	if (ares_create_query(name, ns_c_in, type, 0, 0, &q, &qlen, 0) != ARES_SUCCESS)
		return 0;
	if (qlen >= NS_HFIXEDSZ && (size_t)qlen <= buflen) {
		memcpy(buf, q, (size_t)qlen);
		buf[2] |= 0x80; /* QR: a response */
		buf[3] = (unsigned char)((buf[3] & 0xf0) | (rcode & 0x0f));
		n = (size_t)qlen;
	}
	ares_free_string(q);
	return n;
}

/* dkim_hook_start - run the query now through the rules' channel; the
 * wait hook hands over its outcome. */
static int dkim_hook_start(void *srv, int type, unsigned char *query, unsigned char *buf,
			   size_t buflen, void **qh)
{
	struct dkim_dns *dns = srv;
	struct dkim_pending *p;
	unsigned char *answer = NULL;
	size_t len = 0;
	enum rules_dns_result res;

	if (dns == NULL || (p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	res = rules_dns_query(dns->L, (const char *)query, type, 0, &answer, &len);
	if (dns->nq < DKIM_QUERIES_MAX) {
		snprintf(dns->q[dns->nq].name, DKIM_QNAME_MAX, "%s", (const char *)query);
		dns->q[dns->nq++].result = res;
	}
	p->status = DKIM_DNS_ERROR;
	if (res == RULES_DNS_ANSWER && len <= buflen) {
		memcpy(buf, answer, len);
		p->len = len;
		p->status = DKIM_DNS_SUCCESS;
	} else if (res == RULES_DNS_NXDOMAIN || res == RULES_DNS_NODATA) {
		p->len = dkim_empty_reply((const char *)query, type,
					  res == RULES_DNS_NXDOMAIN ? ns_r_nxdomain : ns_r_noerror,
					  buf, buflen);
		p->status = p->len > 0 ? DKIM_DNS_SUCCESS : DKIM_DNS_ERROR;
	} else if (res == RULES_DNS_TIMEOUT) {
		p->status = DKIM_DNS_EXPIRED;
	}
	free(answer);
	*qh = p;
	return 0;
}

/* dkim_hook_wait - the outcome of a query started by dkim_hook_start. */
static int dkim_hook_wait(void *srv, void *qh, struct timeval *timeout, size_t *bytes, int *error,
			  int *dnssec)
{
	struct dkim_pending *p = qh;

	(void)srv;
	(void)timeout;
	if (bytes != NULL)
		*bytes = p->len;
	if (error != NULL)
		*error = 0;
	if (dnssec != NULL)
		*dnssec = DKIM_DNSSEC_UNKNOWN;
	return p->status;
}

/* dkim_hook_cancel - free a query handle (the library cancels every query
 * it started once it has its outcome). */
static int dkim_hook_cancel(void *srv, void *qh)
{
	(void)srv;
	free(qh);
	return 0;
}

/* ---- the library handle ------------------------------------------------ */

/* The header fields ctx:dkim_sign() signs, those present (RFC 6376 5.4)
 * (see rules_dkim.h), and those signed once more than present so that none
 * can be added. */
const char *rules_dkim_sign_headers[] = {
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to",
    "references", "mime-version", "content-type", "content-transfer-encoding", "list-id",
    "list-help", "list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post",
    "list-owner", "list-archive", NULL,
};
static const char *dkim_oversign_headers[] = {"from", NULL};

/* rules_dkim_open - see rules_dkim.h. */
void *rules_dkim_open(char *err, size_t errlen)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	unsigned flags = DKIM_LIBFLAGS_BADSIGHANDLES | DKIM_LIBFLAGS_FIXCRLF;
	dkim_query_t method = DKIM_QUERY_DNS;

	if (lib == NULL) {
		snprintf(err, errlen, "dkim: cannot initialize OpenDKIM's library");
		return NULL;
	}
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
		DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof(method)) !=
		DKIM_STAT_OK) {
		snprintf(err, errlen, "dkim: cannot set OpenDKIM's options");
		dkim_close(lib);
		return NULL;
	}
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, (void *)rules_dkim_sign_headers,
			 sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, (void *)dkim_oversign_headers,
			 sizeof(char **)) != DKIM_STAT_OK) {
		snprintf(err, errlen, "dkim: cannot set the header fields to sign");
		dkim_close(lib);
		return NULL;
	}
	dkim_dns_set_query_service(lib, NULL);
	dkim_dns_set_init(lib, NULL);
	dkim_dns_set_close(lib, NULL);
	dkim_dns_set_nslist(lib, NULL);
	dkim_dns_set_config(lib, NULL);
	dkim_dns_set_trustanchor(lib, NULL);
	dkim_dns_set_query_start(lib, dkim_hook_start);
	dkim_dns_set_query_waitreply(lib, dkim_hook_wait);
	dkim_dns_set_query_cancel(lib, dkim_hook_cancel);
	return lib;
}

/* rules_dkim_close - see rules_dkim.h. */
void rules_dkim_close(void *lib)
{
	if (lib != NULL)
		dkim_close(lib);
}

/* ---- results ----------------------------------------------------------- */

/* rules_dkim_forget - see rules_dkim.h. */
void rules_dkim_forget(struct rule_ctx *ctx)
{
	struct rules_dkim_results *res = ctx->dkim;
	size_t i;

	if (res == NULL)
		return;
	for (i = 0; i < res->n; i++) {
		free(res->sig[i].domain);
		free(res->sig[i].selector);
		free(res->sig[i].algorithm);
		free(res->sig[i].identity);
		free(res->sig[i].reason);
	}
	free(res);
	ctx->dkim = NULL;
}

/* rules_dkim_kept - see rules_dkim.h. */
long rules_dkim_kept(const struct rule_ctx *ctx)
{
	const struct rules_dkim_results *res = ctx->dkim;

	return res != NULL ? (long)res->n : -1;
}

/* rules_dkim_view - see rules_dkim.h. */
void rules_dkim_view(const struct rule_ctx *ctx, size_t i, struct rules_dkim_view *out)
{
	const struct dkim_sig_result *s = &((const struct rules_dkim_results *)ctx->dkim)->sig[i];

	out->result = s->result;
	out->reason = s->reason;
	out->domain = s->domain;
	out->selector = s->selector;
	out->algorithm = s->algorithm;
	out->b = s->b;
}

/* A signature algorithm's name. */
static const struct {
	dkim_alg_t alg;
	const char *name;
} dkim_algs[] = {
    {DKIM_SIGN_RSASHA1, "rsa-sha1"},
    {DKIM_SIGN_RSASHA256, "rsa-sha256"},
    {DKIM_SIGN_ED25519SHA256, "ed25519-sha256"},
};

/* The result a signature error gives (RFC 8601 2.7.1); permerror otherwise. */
static const struct {
	int error;
	const char *result;
	const char *reason; /* NULL: the library's text */
} dkim_errors[] = {
    {DKIM_SIGERROR_BADSIG, "fail", "signature did not verify"},
    {DKIM_SIGERROR_KEYFAIL, "temperror", "key lookup failed"},
    {DKIM_SIGERROR_NOKEY, "permerror", "no key"},
    {DKIM_SIGERROR_KEYREVOKED, "permerror", "key revoked"},
    {DKIM_SIGERROR_KEYTOOSMALL, "policy", "key too small"},
    {DKIM_SIGERROR_MBSFAILED, "policy", NULL},
};

/* dkim_strdup_or_empty - a copy of s, "" for NULL; NULL when out of memory. */
static char *dkim_strdup_or_empty(const unsigned char *s)
{
	return strdup(s != NULL ? (const char *)s : "");
}

/* dkim_canon_name - "relaxed", "simple" or "". */
static const char *dkim_canon_name(dkim_canon_t c)
{
	return c == DKIM_CANON_RELAXED ? "relaxed" : c == DKIM_CANON_SIMPLE ? "simple" : "";
}

/* dkim_key_failure - why the key query of sig failed: "timeout" or "servfail". */
static const char *dkim_key_failure(const struct dkim_dns *dns, DKIM_SIGINFO *sig)
{
	char name[DKIM_QNAME_MAX];
	size_t i;

	snprintf(name, sizeof(name), "%s._domainkey.%s", dkim_sig_getselector(sig),
		 dkim_sig_getdomain(sig));
	for (i = dns->nq; i-- > 0;)
		if (strcasecmp(dns->q[i].name, name) == 0)
			return dns->q[i].result == RULES_DNS_TIMEOUT ? "key lookup timed out"
								     : "key lookup failed";
	return "key lookup failed";
}

/* dkim_judge - result and reason of one signature. */
static void dkim_judge(DKIM_SIGINFO *sig, const struct dkim_dns *dns, const char **result,
		       const char **reason)
{
	int err = dkim_sig_geterror(sig);
	dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
	size_t i;

	*result = "permerror";
	*reason = NULL;
	dkim_sig_getsignalg(sig, &alg);
	if ((dkim_sig_getflags(sig) & DKIM_SIGFLAG_IGNORE) != 0) {
		*result = "neutral";
		*reason = "signature ignored";
		return;
	}
	if ((err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_UNKNOWN ||
	     err == DKIM_SIGERROR_BADSIG) &&
	    dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
		*result = "fail";
		*reason = "body hash did not verify";
		return;
	}
	if (err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_UNKNOWN) {
		if ((dkim_sig_getflags(sig) & DKIM_SIGFLAG_PROCESSED) == 0) {
			*result = "neutral";
			*reason = "signature not checked";
		} else if (!DKIM_SIG_CHECK(sig)) {
			*result = "fail";
			*reason = "signature did not verify";
		} else if (alg == DKIM_SIGN_RSASHA1) {
			*result = "policy"; /* RFC 8301 3.1 */
			*reason = "rsa-sha1 is not accepted (RFC 8301)";
		} else {
			*result = "pass";
		}
		return;
	}
	for (i = 0; i < sizeof(dkim_errors) / sizeof(dkim_errors[0]); i++)
		if (dkim_errors[i].error == err) {
			*result = dkim_errors[i].result;
			*reason = dkim_errors[i].reason;
			break;
		}
	if (err == DKIM_SIGERROR_KEYFAIL)
		*reason = dkim_key_failure(dns, sig);
	if (*reason == NULL)
		*reason = dkim_sig_geterrorstr(err);
	if (*reason == NULL)
		*reason = "invalid signature";
}

/* dkim_b_prefix - the first RULES_DKIM_B_PREFIX characters of the b= value
 * b (NULL for none), folding blanks left out, into out. */
static void dkim_b_prefix(const unsigned char *b, char out[RULES_DKIM_B_PREFIX + 1])
{
	size_t n = 0;

	for (; b != NULL && *b != '\0' && n < RULES_DKIM_B_PREFIX; b++)
		if (*b > ' ' && *b < 0x7f)
			out[n++] = (char)*b;
	out[n] = '\0';
}

/* dkim_fill - one signature's result; -1 when out of memory. */
static int dkim_fill(struct dkim_sig_result *out, DKIM_SIGINFO *sig, const struct dkim_dns *dns)
{
	dkim_canon_t hc = DKIM_CANON_UNKNOWN, bc = DKIM_CANON_UNKNOWN;
	dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
	const char *algname = NULL, *reason;
	size_t i;

	dkim_judge(sig, dns, &out->result, &reason);
	dkim_sig_getcanons(sig, &hc, &bc);
	out->header_canon = dkim_canon_name(hc);
	out->body_canon = dkim_canon_name(bc);
	dkim_sig_getsignalg(sig, &alg);
	for (i = 0; i < sizeof(dkim_algs) / sizeof(dkim_algs[0]); i++)
		if (dkim_algs[i].alg == alg)
			algname = dkim_algs[i].name;
	out->algorithm = dkim_strdup_or_empty(
	    algname ? (const unsigned char *)algname
		    : dkim_sig_gettagvalue(sig, 0, (unsigned char *)"a"));
	out->domain = dkim_strdup_or_empty(dkim_sig_getdomain(sig));
	out->selector = dkim_strdup_or_empty(dkim_sig_getselector(sig));
	out->identity = dkim_strdup_or_empty(dkim_sig_gettagvalue(sig, 0, (unsigned char *)"i"));
	out->reason = dkim_strdup_or_empty((const unsigned char *)(reason ? reason : ""));
	dkim_b_prefix(dkim_sig_gettagvalue(sig, 0, (unsigned char *)"b"), out->b);
	return out->algorithm && out->domain && out->selector && out->identity && out->reason
		   ? 0
		   : -1;
}

/* rules_dkim_feed - see rules_dkim.h. Statuses of single fields are not
 * errors (a malformed field is left out by the library). */
DKIM_STAT rules_dkim_feed(DKIM *d, const struct message *msg)
{
	size_t i, n = message_field_count(msg), len;
	const char *raw, *body;
	DKIM_STAT st;

	for (i = 0; i < n; i++) {
		raw = message_field_raw(msg, i, &len);
		if (len > 0 && raw[len - 1] == '\n')
			len--;
		if (len > 0 && raw[len - 1] == '\r')
			len--;
		st = dkim_header(d, (unsigned char *)raw, len);
		if (st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL)
			return st;
	}
	st = dkim_eoh(d);
	if (st == DKIM_STAT_NOSIG || st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL)
		return st;
	body = message_body(msg, &len);
	if (len > 0 && (st = dkim_body(d, (unsigned char *)body, len)) != DKIM_STAT_OK &&
	    (st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL))
		return st;
	return dkim_eom(d, NULL);
}

/* dkim_verify_message - verify every signature of msg into a new results
 * set; NULL with a reason in err when the library failed. */
static struct rules_dkim_results *dkim_verify_message(lua_State *L, DKIM_LIB *lib,
						      const struct message *msg, char *err,
						      size_t errlen)
{
	struct dkim_dns dns = {.L = L};
	struct rules_dkim_results *res = NULL;
	DKIM_SIGINFO **sigs = NULL;
	DKIM_STAT st;
	DKIM *d;
	int nsigs = 0, i;

	dkim_dns_set_query_service(lib, &dns);
	d = dkim_verify(lib, (const unsigned char *)"rules", NULL, &st);
	if (d == NULL) {
		snprintf(err, errlen, "%s", dkim_getresultstr(st));
		dkim_dns_set_query_service(lib, NULL);
		return NULL;
	}
	st = rules_dkim_feed(d, msg);
	if (st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL) {
		snprintf(err, errlen, "%s", dkim_getresultstr(st));
	} else if (st == DKIM_STAT_NOSIG || dkim_getsiglist(d, &sigs, &nsigs) != DKIM_STAT_OK) {
		nsigs = 0;
	}
	if (st != DKIM_STAT_NORESOURCE && st != DKIM_STAT_INTERNAL &&
	    (res = calloc(1, sizeof(*res) + (size_t)nsigs * sizeof(res->sig[0]))) == NULL)
		snprintf(err, errlen, "out of memory");
	for (i = 0; res != NULL && i < nsigs; i++) {
		res->n = (size_t)i + 1;
		if (dkim_fill(&res->sig[i], sigs[i], &dns) < 0) {
			struct rule_ctx tmp = {.dkim = res};

			rules_dkim_forget(&tmp);
			res = NULL;
			snprintf(err, errlen, "out of memory");
		}
	}
	dkim_free(d);
	dkim_dns_set_query_service(lib, NULL);
	return res;
}

/* dkim_push_field - t[key] = s when s is not empty (or always with keep_empty). */
static void dkim_push_field(lua_State *L, const char *key, const char *s, int keep_empty)
{
	if (s[0] == '\0' && !keep_empty)
		return;
	lua_pushstring(L, s);
	lua_setfield(L, -2, key);
}

/* rules_dkim_verified - see rules_dkim.h. */
size_t rules_dkim_verified(lua_State *L, struct rule_ctx *ctx)
{
	struct message *msg = ctx_need_msg(L, ctx, "dkim");
	struct rules *r = rules_from_state(L);
	char err[256] = "";

	if (ctx->dkim == NULL) {
		if (r->dkim == NULL)
			luaL_error(L, "dkim: no DKIM library in this ruleset");
		if ((ctx->dkim = dkim_verify_message(L, r->dkim, msg, err, sizeof(err))) == NULL)
			luaL_error(L, "dkim: %s", err);
	}
	return ((struct rules_dkim_results *)ctx->dkim)->n;
}

/* rules_dkim_signature - see rules_dkim.h. */
void rules_dkim_signature(const struct rule_ctx *ctx, size_t i, const char **domain,
			  const char **result)
{
	const struct rules_dkim_results *res = ctx->dkim;

	*domain = res->sig[i].domain;
	*result = res->sig[i].result;
}

/* lua_ctx_dkim - ctx:dkim(): every signature's result, in header order. */
static int lua_ctx_dkim(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct rules_dkim_results *res;
	size_t i;

	rules_dkim_verified(L, ctx);
	res = ctx->dkim;
	lua_createtable(L, (int)res->n, 0);
	for (i = 0; i < res->n; i++) {
		const struct dkim_sig_result *s = &res->sig[i];

		lua_createtable(L, 0, 8);
		dkim_push_field(L, "domain", s->domain, 1);
		dkim_push_field(L, "selector", s->selector, 1);
		dkim_push_field(L, "algorithm", s->algorithm, 1);
		dkim_push_field(L, "result", s->result, 1);
		dkim_push_field(L, "reason", s->reason, 0);
		dkim_push_field(L, "header_canon", s->header_canon, 0);
		dkim_push_field(L, "body_canon", s->body_canon, 0);
		dkim_push_field(L, "identity", s->identity, 0);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/* The ctx methods of DKIM (rules_ctx_open adds them). */
const luaL_Reg ctx_dkim_methods[] = {
    {"dkim", lua_ctx_dkim},
    {NULL, NULL},
};
