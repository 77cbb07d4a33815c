/*
 * rules_dmarc.c - ctx:dmarc(): DMARC (RFC 7489) for the message of the
 * transaction, with OpenDMARC's library and the public suffix list.
 *
 * The public suffix list is read into the library when the rules are
 * loaded (rules_dmarc_open, in the master, where files can be read); a
 * session process inherits it in memory and never opens it. The library's
 * own DNS (res_query) is never used: the _dmarc TXT records are fetched
 * through rules_dns_query(), the rules' c-ares channel, first for the
 * RFC5322.From domain, then, when it has no record, for its organizational
 * domain (RFC 7489 §6.6.3). The record found is handed to the library's
 * parser (opendmarc_policy_store_dmarc), whose tags are read back.
 *
 * Alignment (RFC 7489 §3.1) is decided here, on the SPF result of ctx:spf()
 * and the DKIM results of ctx:dkim() (computed now when the rules have not
 * asked for them, and kept for them): strict means the same domain,
 * relaxed the same organizational domain. The library's own alignment
 * check is not used: it aligns a From domain with the organizational
 * domain of a signing domain under adkim=s, and a domain with any of its
 * parents whatever the public suffixes. The organizational domain is the
 * library's public suffix lookup plus one label; a name under no rule of
 * the list falls under the list's default rule "*" (its last label is the
 * public suffix), which the library does not apply.
 *
 * pct (RFC 7489 §6.6.4) is sampled with the rules' math.random(100), so a
 * rule that seeds math.random gets the same draw every time; a failing
 * message not sampled gets the next policy down (reject -> quarantine ->
 * none). The result is computed once per transaction and kept in
 * rule_ctx.dmarc (freed by rules_tx_end()); every call returns a fresh
 * table built from it.
 */
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <cjson/cJSON.h>
#include <opendmarc/dmarc.h>

#include "resolver.h"
#include "rules_dkim.h"
#include "rules_dmarc.h"
#include "rules_dns.h"
#include "rules_internal.h"
#include "rules_spf.h"

/*
 * The library's public suffix lookup: exported by libopendmarc.so.2 (its
 * own opendmarc_policy_query_dmarc() finds organizational domains with it)
 * but not declared in dmarc.h. tld gets the organizational domain of
 * domain, or stays as it was when no rule of the list matched.
 */
int opendmarc_get_tld(u_char *domain, u_char *tld, size_t tld_len);

#define DMARC_NAME_MAX 256
#define DMARC_DKIM_MAX 8 /* aligned signing domains kept */

/* The public suffix list as loaded: 0 when read, else the errno value. */
static int dmarc_psl_error = ENOENT;

/* What ctx:dmarc() found (rule_ctx.dmarc). */
struct dmarc_result {
	const char *result;      /* "pass", "fail", "none", "temperror", "permerror" */
	const char *policy;      /* "none", "quarantine", "reject"; NULL without a record */
	const char *p, *sp;      /* the record's p= and sp= (p= when absent), for reports */
	const char *disposition; /* what to apply */
	const char *adkim, *aspf; /* "r" or "s"; NULL without a record */
	const char *spf_result;  /* ctx:spf()'s result, NULL when not asked */
	int pct;                 /* -1 without a record */
	int sampled, spf_aligned, dkim_aligned;
	char domain[DMARC_NAME_MAX];        /* the From domain, "" when none */
	char policy_domain[DMARC_NAME_MAX]; /* where the record was found */
	char spf_domain[DMARC_NAME_MAX];
	char dkim[DMARC_DKIM_MAX][DMARC_NAME_MAX];
	size_t ndkim;
	char reason[DMARC_NAME_MAX * 3];
};

/* What one _dmarc query gave. */
enum dmarc_fetch { DMARC_FOUND, DMARC_ABSENT, DMARC_MANY, DMARC_TEMP };

/* Why the From domain cannot be had (message_from_domain's results). */
static const char *const dmarc_from_reasons[] = {
    [MESSAGE_FROM_ONE] = NULL,
    [MESSAGE_FROM_NONE] = "the message has no From field",
    [MESSAGE_FROM_FIELDS] = "the message has more than one From field",
    [MESSAGE_FROM_NO_MAILBOX] = "the From field has no address",
    [MESSAGE_FROM_MAILBOXES] = "the From field has more than one address",
    [MESSAGE_FROM_BAD] = "the From field's address cannot be understood",
    [MESSAGE_FROM_LITERAL] = "the From domain is an address literal",
    [MESSAGE_FROM_NOMEM] = "out of memory",
};

/* The library's p= and sp= values by name. */
static const struct {
	int value;
	const char *name;
	const char *lower; /* the disposition of a failing message not sampled */
} dmarc_policies[] = {
    {DMARC_RECORD_P_NONE, "none", "none"},
    {DMARC_RECORD_P_QUARANTINE, "quarantine", "none"},
    {DMARC_RECORD_P_REJECT, "reject", "quarantine"},
};

/* rules_dmarc_open - see rules_dmarc.h. */
void rules_dmarc_open(void)
{
	OPENDMARC_LIB_T lib;

	memset(&lib, 0, sizeof(lib));
	lib.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
	snprintf((char *)lib.tld_source_file, sizeof(lib.tld_source_file), "%s",
		 RULES_DMARC_PUBLIC_SUFFIX_LIST);
	errno = 0;
	dmarc_psl_error = opendmarc_policy_library_init(&lib);
	if (dmarc_psl_error != 0 && dmarc_psl_error != ENOENT && dmarc_psl_error != EACCES)
		dmarc_psl_error = EINVAL;
}

/* rules_dmarc_forget - see rules_dmarc.h. */
void rules_dmarc_forget(struct rule_ctx *ctx)
{
	free(ctx->dmarc);
	ctx->dmarc = NULL;
}

/* dmarc_lower - s lowercased into out (a domain of at most outlen - 1 bytes). */
static void dmarc_lower(const char *s, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < outlen; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[i] = '\0';
}

/* dmarc_org_domain - the organizational domain of domain (RFC 7489 §3.2). */
static void dmarc_org_domain(const char *domain, char *out, size_t outlen)
{
	char tld[DMARC_NAME_MAX] = "";
	const char *p;

	opendmarc_get_tld((u_char *)domain, (u_char *)tld, sizeof(tld));
	if (tld[0] == '\0') {
		/* no rule matched: "*" makes the last label the public suffix */
		p = strrchr(domain, '.');
		while (p != NULL && p > domain && p[-1] != '.')
			p--;
		snprintf(tld, sizeof(tld), "%s", p != NULL ? p : domain);
	}
	snprintf(out, outlen, "%s", tld);
}

/* dmarc_aligned - whether domain is aligned with the From domain in mode
 * 's' (the same name) or 'r' (the same organizational domain). */
static int dmarc_aligned(const char *domain, const char *from, int mode)
{
	char a[DMARC_NAME_MAX], b[DMARC_NAME_MAX], lower[DMARC_NAME_MAX];

	dmarc_lower(domain, lower, sizeof(lower));
	if (strcmp(lower, from) == 0)
		return 1;
	if (mode == DMARC_RECORD_A_STRICT)
		return 0;
	dmarc_org_domain(lower, a, sizeof(a));
	dmarc_org_domain(from, b, sizeof(b));
	return strcmp(a, b) == 0;
}

/* dmarc_is_record - whether a TXT record is a DMARC record: it starts with
 * "v" *WSP "=" *WSP "DMARC1" (RFC 7489 §6.4, §6.6.3), then ";", WSP or its end. */
static int dmarc_is_record(const char *s)
{
	if (*s != 'v' && *s != 'V')
		return 0;
	s += 1 + strspn(s + 1, " \t");
	if (*s++ != '=')
		return 0;
	s += strspn(s, " \t");
	return strncmp(s, "DMARC1", 6) == 0 && (s[6] == '\0' || strchr("; \t", s[6]) != NULL);
}

/* dmarc_txt_records - the DMARC records of a TXT answer: how many, the
 * first into *record (malloc'ed); -1 when the answer cannot be read. */
static int dmarc_txt_records(const unsigned char *buf, size_t len, char **record)
{
	struct ares_txt_ext *txt = NULL;
	const struct ares_txt_ext *p, *next;
	size_t total;
	int found = 0;
	char *rec;

	if (ares_parse_txt_reply_ext(buf, (int)len, &txt) != ARES_SUCCESS)
		return -1;
	for (p = txt; p != NULL; p = next) {
		if ((rec = rules_dns_txt_join(p, &next, &total)) == NULL) {
			found = -1;
			break;
		}
		/* a NUL inside ends the record: the library reads C strings */
		if (strlen(rec) == total && dmarc_is_record(rec) && found++ == 0) {
			*record = rec;
			continue;
		}
		free(rec);
	}
	ares_free_data(txt);
	if (found < 0) {
		free(*record);
		*record = NULL;
	}
	return found;
}

/* dmarc_fetch - the DMARC record of domain (its _dmarc TXT records), the
 * outcome, and why in why for DMARC_MANY and DMARC_TEMP. */
static enum dmarc_fetch dmarc_fetch(lua_State *L, const char *domain, char **record, char *why,
				    size_t whylen)
{
	char name[DMARC_NAME_MAX + 8];
	unsigned char *answer = NULL;
	enum rules_dns_result res;
	size_t len = 0;
	int n;

	*record = NULL;
	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	if (resolver_name_check(name, strlen(name)) == 0) {
		snprintf(why, whylen, "_dmarc.%s is too long a name", domain);
		return DMARC_ABSENT;
	}
	res = rules_dns_query(L, name, ns_t_txt, 0, &answer, &len);
	if (res == RULES_DNS_NXDOMAIN || res == RULES_DNS_NODATA)
		return DMARC_ABSENT;
	if (res != RULES_DNS_ANSWER) {
		snprintf(why, whylen, "the lookup of %s %s", name,
			 res == RULES_DNS_TIMEOUT ? "timed out" : "failed");
		return DMARC_TEMP;
	}
	n = dmarc_txt_records(answer, len, record);
	free(answer);
	if (n < 0) {
		snprintf(why, whylen, "the answer for %s cannot be read", name);
		return DMARC_TEMP;
	}
	if (n > 1) {
		free(*record);
		*record = NULL;
		snprintf(why, whylen, "%s has more than one DMARC record", name);
		return DMARC_MANY;
	}
	return n == 1 ? DMARC_FOUND : DMARC_ABSENT;
}

/* dmarc_policy_name - the name of a p= or sp= value, and its lower step. */
static const char *dmarc_policy_name(int value, const char **lower)
{
	size_t i;

	for (i = 0; i < sizeof(dmarc_policies) / sizeof(dmarc_policies[0]); i++)
		if (dmarc_policies[i].value == value) {
			if (lower != NULL)
				*lower = dmarc_policies[i].lower;
			return dmarc_policies[i].name;
		}
	return NULL;
}

/* rules_dmarc_p_none - see rules_dmarc.h. */
char *rules_dmarc_p_none(const char *record)
{
	/* each tag of k bytes and its ';' becomes "; " and the k bytes */
	size_t len = strlen(record), size = 3 * len + 32, used;
	char *out = malloc(size), *copy = strdup(record), *tag, *save = NULL, *name;
	int rua = 0;

	if (out == NULL || copy == NULL) {
		free(out);
		free(copy);
		return NULL;
	}
	used = (size_t)snprintf(out, size, "v=DMARC1; p=none");
	for (tag = strtok_r(copy, ";", &save); tag != NULL; tag = strtok_r(NULL, ";", &save)) {
		tag += strspn(tag, " \t");
		name = tag;
		tag += strcspn(tag, " \t=");
		if (name == tag || tag[strspn(tag, " \t")] != '=')
			continue;
		if ((tag - name == 1 && (name[0] == 'p' || name[0] == 'v')) ||
		    (tag - name == 2 && strncmp(name, "sp", 2) == 0))
			continue;
		if (tag - name == 3 && strncmp(name, "rua", 3) == 0)
			rua = strncasecmp(tag + strspn(tag, " \t=") , "mailto:", 7) == 0 &&
			      strchr(tag, '@') != NULL;
		used += (size_t)snprintf(out + used, size - used, "; %s", name);
	}
	free(copy);
	if (!rua) {
		free(out);
		return NULL;
	}
	return out;
}

/* dmarc_parse - the record of policy_domain, parsed by the library, into
 * res (policy, pct, adkim, aspf); 0, or -1 with res->reason set. */
static int dmarc_parse(struct dmarc_result *res, char *record, int *adkim, int *aspf,
		       const char **lower)
{
	int is_org = strcmp(res->policy_domain, res->domain) != 0;
	DMARC_POLICY_T *pctx = opendmarc_policy_connect_init((u_char *)"0.0.0.0", 0);
	OPENDMARC_STATUS_T st;
	int p = 0, sp = 0, pct = 100;
	char *fallback;

	if (pctx == NULL) {
		snprintf(res->reason, sizeof(res->reason), "out of memory");
		return -1;
	}
	st = opendmarc_policy_store_dmarc(pctx, (u_char *)record, (u_char *)res->domain,
					  is_org ? (u_char *)res->policy_domain : NULL);
	if ((st == DMARC_PARSE_ERROR_BAD_VALUE || st == DMARC_PARSE_ERROR_NO_REQUIRED_P) &&
	    (fallback = rules_dmarc_p_none(record)) != NULL) {
		opendmarc_policy_connect_rset(pctx);
		st = opendmarc_policy_store_dmarc(pctx, (u_char *)fallback, (u_char *)res->domain,
						  is_org ? (u_char *)res->policy_domain : NULL);
		free(fallback);
	}
	if (st == DMARC_PARSE_OKAY) {
		opendmarc_policy_fetch_p(pctx, &p);
		opendmarc_policy_fetch_sp(pctx, &sp);
		opendmarc_policy_fetch_pct(pctx, &pct);
		opendmarc_policy_fetch_adkim(pctx, adkim);
		opendmarc_policy_fetch_aspf(pctx, aspf);
	}
	opendmarc_policy_connect_shutdown(pctx);
	if (st != DMARC_PARSE_OKAY) {
		snprintf(res->reason, sizeof(res->reason), "_dmarc.%s: %s", res->policy_domain,
			 opendmarc_policy_status_to_str(st));
		return -1;
	}
	/* sp= applies to a From domain below the one whose record was found */
	res->policy = dmarc_policy_name(is_org && sp != DMARC_RECORD_P_UNSPECIFIED ? sp : p, lower);
	res->p = dmarc_policy_name(p, NULL);
	res->sp = dmarc_policy_name(sp != DMARC_RECORD_P_UNSPECIFIED ? sp : p, NULL);
	res->pct = pct;
	res->adkim = *adkim == DMARC_RECORD_A_STRICT ? "s" : "r";
	res->aspf = *aspf == DMARC_RECORD_A_STRICT ? "s" : "r";
	return res->policy != NULL ? 0 : -1;
}

/* dmarc_find_record - the record for res->domain, from its own _dmarc name
 * or its organizational domain's (RFC 7489 §6.6.3) into *record, with
 * res->policy_domain set; otherwise res->result and res->reason say why. */
static void dmarc_find_record(lua_State *L, struct dmarc_result *res, char **record)
{
	const char *where[2] = {res->domain, NULL};
	char org[DMARC_NAME_MAX];
	enum dmarc_fetch got = DMARC_ABSENT;
	size_t i;

	dmarc_org_domain(res->domain, org, sizeof(org));
	if (strcmp(org, res->domain) != 0)
		where[1] = org;
	for (i = 0; i < 2 && where[i] != NULL; i++) {
		got = dmarc_fetch(L, where[i], record, res->reason, sizeof(res->reason));
		if (got != DMARC_ABSENT)
			break;
	}
	if (got == DMARC_FOUND) {
		snprintf(res->policy_domain, sizeof(res->policy_domain), "%s", where[i]);
		return;
	}
	res->result = got == DMARC_TEMP ? "temperror" : "none";
	if (got == DMARC_ABSENT)
		snprintf(res->reason, sizeof(res->reason), "no DMARC record for %s%s%s",
			 res->domain, where[1] != NULL ? " nor for " : "",
			 where[1] != NULL ? where[1] : "");
}

/* dmarc_random - math.random(100) of the rules; raises when it cannot be had. */
static int dmarc_random(lua_State *L)
{
	lua_Integer v;

	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	if (lua_getfield(L, -1, "math") != LUA_TTABLE ||
	    lua_getfield(L, -1, "random") != LUA_TFUNCTION)
		luaL_error(L, "dmarc: math.random is not available for pct");
	lua_pushinteger(L, 100);
	lua_call(L, 1, 1);
	v = lua_tointeger(L, -1);
	lua_pop(L, 3);
	return (int)v;
}

/* dmarc_authenticate - SPF and DKIM alignment of the message into res. */
static void dmarc_authenticate(lua_State *L, struct rule_ctx *ctx, struct dmarc_result *res,
			       int adkim, int aspf)
{
	const char *spf_result, *spf_domain, *domain, *result;
	size_t i, j, n;

	rules_spf_mailfrom(L, ctx, &spf_result, &spf_domain);
	res->spf_result = spf_result;
	if (spf_domain != NULL)
		dmarc_lower(spf_domain, res->spf_domain, sizeof(res->spf_domain));
	res->spf_aligned = strcmp(spf_result, "pass") == 0 && res->spf_domain[0] != '\0' &&
			   dmarc_aligned(res->spf_domain, res->domain, aspf);
	n = rules_dkim_verified(L, ctx);
	for (i = 0; i < n; i++) {
		rules_dkim_signature(ctx, i, &domain, &result);
		if (strcmp(result, "pass") != 0 || !dmarc_aligned(domain, res->domain, adkim))
			continue;
		res->dkim_aligned = 1;
		for (j = 0; j < res->ndkim && strcasecmp(res->dkim[j], domain) != 0; j++)
			;
		if (j == res->ndkim && res->ndkim < DMARC_DKIM_MAX)
			dmarc_lower(domain, res->dkim[res->ndkim++], DMARC_NAME_MAX);
	}
}

/* dmarc_evaluate - DMARC for the transaction's message into res (raises
 * only where ctx:spf() or ctx:dkim() would, or out of memory). */
static void dmarc_evaluate(lua_State *L, struct rule_ctx *ctx, struct dmarc_result *res)
{
	enum message_from from = message_from_domain(ctx->msg, res->domain, sizeof(res->domain));
	int adkim = DMARC_RECORD_A_RELAXED, aspf = DMARC_RECORD_A_RELAXED;
	const char *lower = "none";
	char *record = NULL;
	int rc;

	res->disposition = "none";
	res->pct = -1;
	if (from != MESSAGE_FROM_ONE) {
		res->result = "permerror";
		snprintf(res->reason, sizeof(res->reason), "%s", dmarc_from_reasons[from]);
		return;
	}
	if (resolver_name_check(res->domain, strlen(res->domain)) == 0) {
		res->result = "permerror";
		snprintf(res->reason, sizeof(res->reason), "the From domain is not a domain name");
		return;
	}
	dmarc_find_record(L, res, &record);
	if (record == NULL)
		return;
	rc = dmarc_parse(res, record, &adkim, &aspf, &lower);
	free(record);
	if (rc < 0) {
		/* RFC 8601 2.7.1: a record that cannot be understood */
		res->result = "permerror";
		return;
	}
	dmarc_authenticate(L, ctx, res, adkim, aspf);
	if (res->spf_aligned || res->dkim_aligned) {
		res->result = "pass";
		res->sampled = 1;
		return;
	}
	res->sampled = res->pct >= 100 || (res->pct > 0 && dmarc_random(L) <= res->pct);
	res->disposition = res->sampled ? res->policy : lower;
	snprintf(res->reason, sizeof(res->reason), "neither SPF nor DKIM aligned with %s",
		 res->domain);
	res->result = "fail"; /* last: a result is complete once it is set */
}

/* dmarc_set - t[key] = s when s is set and not empty. */
static void dmarc_set(lua_State *L, const char *key, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return;
	lua_pushstring(L, s);
	lua_setfield(L, -2, key);
}

/* dmarc_push - the rules' table of a result. */
static int dmarc_push(lua_State *L, const struct dmarc_result *res)
{
	size_t i;

	lua_createtable(L, 0, 16);
	dmarc_set(L, "result", res->result);
	dmarc_set(L, "domain", res->domain);
	dmarc_set(L, "policy_domain", res->policy_domain);
	dmarc_set(L, "policy", res->policy);
	dmarc_set(L, "disposition", res->disposition);
	dmarc_set(L, "adkim", res->adkim);
	dmarc_set(L, "aspf", res->aspf);
	dmarc_set(L, "spf", res->spf_result);
	dmarc_set(L, "spf_domain", res->spf_domain);
	dmarc_set(L, "reason", res->reason);
	if (res->pct >= 0) {
		lua_pushinteger(L, res->pct);
		lua_setfield(L, -2, "pct");
		lua_pushboolean(L, res->sampled);
		lua_setfield(L, -2, "sampled");
	}
	lua_pushboolean(L, res->spf_aligned);
	lua_setfield(L, -2, "spf_aligned");
	lua_pushboolean(L, res->dkim_aligned);
	lua_setfield(L, -2, "dkim_aligned");
	lua_createtable(L, (int)res->ndkim, 0);
	for (i = 0; i < res->ndkim; i++) {
		lua_pushstring(L, res->dkim[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "dkim_domains");
	return 1;
}

/* rules_dmarc_kept - see rules_dmarc.h. */
int rules_dmarc_kept(const struct rule_ctx *ctx, const char **result, const char **domain,
		     const char **reason)
{
	const struct dmarc_result *res = ctx->dmarc;

	if (res == NULL || res->result == NULL)
		return 0;
	*result = res->result;
	*domain = res->domain;
	*reason = strcmp(res->result, "pass") != 0 ? res->reason : NULL;
	return 1;
}

/* lua_ctx_dmarc - ctx:dmarc(): the message's DMARC result, once per transaction. */
static int lua_ctx_dmarc(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	struct dmarc_result *res;

	if (ud->stage != RULE_STAGE_PREQ)
		return luaL_error(L,
				  "ctx:dmarc() works at the preq stage, not at %s: it needs the "
				  "SMTP session's SPF result (keep its result with ctx:set() for "
				  "later stages)",
				  rules_stage_name(ud->stage));
	ctx_need_msg(L, ctx, "ctx:dmarc()");
	/* a check that raised half-way (out of memory) is done again */
	if (ctx->dmarc != NULL && ((struct dmarc_result *)ctx->dmarc)->result == NULL)
		rules_dmarc_forget(ctx);
	if (ctx->dmarc == NULL) {
		if (dmarc_psl_error != 0)
			return luaL_error(L, "dmarc: the public suffix list %s could not be read "
					     "when the rules were loaded: %s",
					  RULES_DMARC_PUBLIC_SUFFIX_LIST, strerror(dmarc_psl_error));
		/* kept in ctx before anything can raise, freed with the transaction */
		if ((ctx->dmarc = calloc(1, sizeof(struct dmarc_result))) == NULL)
			return luaL_error(L, "out of memory");
		dmarc_evaluate(L, ctx, ctx->dmarc);
	}
	res = ctx->dmarc;
	return dmarc_push(L, res);
}

/* dmarc_json_string - obj[key] = s when s is set; 0 or -1. */
static int dmarc_json_string(cJSON *obj, const char *key, const char *s)
{
	return s == NULL || cJSON_AddStringToObject(obj, key, s) != NULL ? 0 : -1;
}

/* dmarc_record_spf - the MAIL FROM SPF result kept for the transaction,
 * with its scope (RFC 7489 appendix C: mfrom, or helo for the null sender). */
static int dmarc_record_spf(const struct rule_ctx *ctx, cJSON *obj)
{
	struct rules_spf_view v;
	cJSON *spf;
	int helo = ctx->env == NULL || ctx->env->mail_from == NULL || ctx->env->mail_from[0] == '\0';

	if (!rules_spf_mailfrom_kept(ctx, &v))
		return 0;
	if ((spf = cJSON_AddObjectToObject(obj, "spf")) == NULL)
		return -1;
	return dmarc_json_string(spf, "domain", v.domain != NULL ? v.domain : "") < 0 ||
			       dmarc_json_string(spf, "scope", helo ? "helo" : "mfrom") < 0 ||
			       dmarc_json_string(spf, "result", v.result) < 0
		   ? -1
		   : 0;
}

/* dmarc_record_dkim - every signature ctx:dkim() verified: domain, selector, result. */
static int dmarc_record_dkim(const struct rule_ctx *ctx, cJSON *obj)
{
	long n = rules_dkim_kept(ctx), i;
	struct rules_dkim_view v;
	cJSON *list, *sig;

	if ((list = cJSON_AddArrayToObject(obj, "dkim")) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		rules_dkim_view(ctx, (size_t)i, &v);
		if ((sig = cJSON_CreateObject()) == NULL)
			return -1;
		cJSON_AddItemToArray(list, sig);
		if (dmarc_json_string(sig, "domain", v.domain) < 0 ||
		    dmarc_json_string(sig, "selector", v.selector) < 0 ||
		    dmarc_json_string(sig, "result", v.result) < 0)
			return -1;
	}
	return 0;
}

/* dmarc_envelope_domain - the domain of the MAIL FROM address, "" for the null sender. */
static const char *dmarc_envelope_domain(const struct rule_ctx *ctx)
{
	const char *at;

	if (ctx->env == NULL || ctx->env->mail_from == NULL)
		return "";
	at = strrchr(ctx->env->mail_from, '@');
	return at != NULL ? at + 1 : "";
}

/* rules_dmarc_record - see rules.h. */
char *rules_dmarc_record(const struct rule_ctx *ctx)
{
	const struct dmarc_result *res = ctx->dmarc;
	cJSON *obj;
	char *text = NULL;

	if (res == NULL || res->result == NULL || (obj = cJSON_CreateObject()) == NULL)
		return NULL;
	if (dmarc_json_string(obj, "source_ip", ctx->client_ip) < 0 ||
	    dmarc_json_string(obj, "envelope_from", dmarc_envelope_domain(ctx)) < 0 ||
	    dmarc_json_string(obj, "header_from", res->domain) < 0 ||
	    dmarc_json_string(obj, "result", res->result) < 0 ||
	    dmarc_json_string(obj, "disposition", res->disposition) < 0 ||
	    cJSON_AddBoolToObject(obj, "spf_aligned", res->spf_aligned) == NULL ||
	    cJSON_AddBoolToObject(obj, "dkim_aligned", res->dkim_aligned) == NULL)
		goto out;
	if (res->p != NULL &&
	    (dmarc_json_string(obj, "policy_domain", res->policy_domain) < 0 ||
	     dmarc_json_string(obj, "p", res->p) < 0 || dmarc_json_string(obj, "sp", res->sp) < 0 ||
	     cJSON_AddNumberToObject(obj, "pct", res->pct) == NULL ||
	     dmarc_json_string(obj, "adkim", res->adkim) < 0 ||
	     dmarc_json_string(obj, "aspf", res->aspf) < 0 ||
	     cJSON_AddBoolToObject(obj, "sampled", res->sampled) == NULL))
		goto out;
	if (dmarc_record_spf(ctx, obj) < 0 || dmarc_record_dkim(ctx, obj) < 0)
		goto out;
	text = cJSON_PrintUnformatted(obj);
out:
	cJSON_Delete(obj);
	return text;
}

const luaL_Reg ctx_dmarc_methods[] = {
    {"dmarc", lua_ctx_dmarc},
    {NULL, NULL},
};
