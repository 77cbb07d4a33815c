/*
 * rules_spf.c - ctx:spf() and ctx:spf_helo(): SPF (RFC 7208) for the MAIL
 * FROM identity and the HELO identity, checked with libspf2.
 *
 * A check builds a libspf2 server over the DNS layer of rules_spf_dns.c
 * (so every query goes through the rules' c-ares channel, with the limits
 * of RFC 7208 §4.6.4 counted there), fetches the checked domain's record
 * and runs libspf2's interpreter on it. libspf2's SPF_request_query_mailfrom
 * is not used: it passes every loopback client without looking, which RFC
 * 7208 does not. When a mechanism decided, the check is replayed on the
 * record cut after its first k terms, k = 1, 2, ..., from the answers the
 * layer kept (no query), to name the term of the checked domain's record
 * that matched.
 *
 * Results are kept in ctx->spf (engine-owned): the MAIL FROM one for the
 * transaction (rules_spf_tx_end), the HELO one for the connection and its
 * HELO name (rules_spf_release); a second call answers from them. A check
 * allocates only outside Lua and raises nothing until all it holds is
 * freed: the Lua table is built from the kept result.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "resolver.h"
#include "rules_internal.h"
#include "rules_spf.h"

/* One check's outcome, as the rules see it. */
struct spf_answer {
	const char *result;  /* "pass", ... (static) */
	char *domain;        /* the domain checked, NULL for none */
	char *explanation;   /* the exp= text of a fail, else NULL */
	char *mechanism;     /* the term that matched, else NULL */
	char *reason;        /* libspf2's text for errors, else NULL */
};

/* What ctx->spf holds. */
struct spf_kept {
	int has_mailfrom;
	struct spf_answer mailfrom;
	int has_helo;
	char helo_name[RULES_SPF_NAME_MAX];
	struct spf_answer helo;
};

/* The identities. */
enum spf_identity { SPF_ID_MAILFROM, SPF_ID_HELO };

/* libspf2's results by name. */
static const char *const spf_result_names[] = {
	[SPF_RESULT_INVALID] = "permerror",  [SPF_RESULT_NEUTRAL] = "neutral",
	[SPF_RESULT_PASS] = "pass",          [SPF_RESULT_FAIL] = "fail",
	[SPF_RESULT_SOFTFAIL] = "softfail",  [SPF_RESULT_NONE] = "none",
	[SPF_RESULT_TEMPERROR] = "temperror", [SPF_RESULT_PERMERROR] = "permerror",
};

/* Why the layer stopped a check. */
static const char *const spf_over_reasons[] = {
	[RULES_SPF_WITHIN] = NULL,
	[RULES_SPF_OVER_TERMS] = "more than 10 DNS-querying terms (RFC 7208 section 4.6.4)",
	[RULES_SPF_OVER_VOIDS] = "more than 2 void lookups (RFC 7208 section 4.6.4)",
	[RULES_SPF_OVER_TIME] = "the DNS lookups took more than 20 seconds",
	[RULES_SPF_SYNTAX] = "a record is not valid SPF",
};

/* spf_answer_free - what an answer holds. */
static void spf_answer_free(struct spf_answer *a)
{
	free(a->domain);
	free(a->explanation);
	free(a->mechanism);
	free(a->reason);
	memset(a, 0, sizeof(*a));
}

/* spf_set - replace *slot with a copy of s (NULL or "" for none). */
static void spf_set(char **slot, const char *s)
{
	free(*slot);
	*slot = s != NULL && *s != '\0' ? strdup(s) : NULL;
}

/* spf_is_domain - whether name is a multi-label domain that may be checked
 * (RFC 7208 §4.3: anything else gives "none"). */
static int spf_is_domain(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && resolver_name_check(name, len) > 0 && strchr(name, '.') != NULL &&
	       name[0] != '.';
}

/* spf_first_error - the first message libspf2 gave in resp, or its error's text. */
static const char *spf_first_error(SPF_response_t *resp, SPF_errcode_t err)
{
	int i;

	for (i = 0; i < SPF_response_messages(resp); i++) {
		SPF_error_t *e = SPF_response_message(resp, i);

		if (SPF_error_errorp(e) && SPF_error_message(e) != NULL)
			return SPF_error_message(e);
	}
	return SPF_strerror(err);
}

/* spf_term_of - the text of the k-th term of rec (1-based) into a->mechanism. */
static void spf_term_of(struct rules_spf_dns *d, SPF_record_t *rec, int k, struct spf_answer *a)
{
	unsigned char num_mech = rec->num_mech, num_mod = rec->num_mod;
	char *buf = NULL, *term;
	size_t buflen = 0, n;
	const char *p;

	rec->num_mech = (unsigned char)k;
	rec->num_mod = 0;
	if (SPF_record_stringify(rec, &buf, &buflen) == SPF_E_SUCCESS && buf != NULL &&
	    (term = strrchr(buf, ' ')) != NULL) {
		/* libspf2 prints redirect= as "redirect:" */
		if (strncmp(term + 1, "redirect:", 9) == 0)
			term[9] = '=';
		spf_set(&a->mechanism, term + 1);
	} else if (d->record != NULL) {
		/* libspf2 cannot print redirect= (it keeps it as a mechanism
		 * without a prefix): take it from the record's text */
		for (p = d->record; (p = strchr(p, ' ')) != NULL;) {
			p += strspn(p, " ");
			if (strncasecmp(p, "redirect=", 9) == 0) {
				n = strcspn(p, " ");
				free(a->mechanism);
				if ((a->mechanism = malloc(n + 1)) != NULL) {
					memcpy(a->mechanism, p, n);
					a->mechanism[n] = '\0';
				}
				break;
			}
		}
	}
	free(buf);
	rec->num_mech = num_mech;
	rec->num_mod = num_mod;
}

/* spf_find_mechanism - the term that decided: the first k for which the
 * record cut after k terms is decided by a mechanism, replayed without DNS. */
static void spf_find_mechanism(struct rules_spf_dns *d, SPF_request_t *req, SPF_record_t *rec,
			       struct spf_answer *a)
{
	unsigned char num_mech = rec->num_mech;
	SPF_response_t *resp;
	int k, decided;

	d->replay = 1;
	for (k = 1; k <= num_mech; k++) {
		if ((resp = SPF_response_new(req)) == NULL)
			break;
		resp->spf_record_exp = rec;
		rec->num_mech = (unsigned char)k;
		SPF_record_interpret(rec, req, resp, 0);
		rec->num_mech = num_mech;
		decided = resp->reason == SPF_REASON_MECH;
		SPF_response_free(resp);
		if (decided) {
			spf_term_of(d, rec, k, a);
			break;
		}
	}
	d->replay = 0;
}

/* spf_evaluate - the record of req->cur_dom, evaluated, into a. */
static void spf_evaluate(struct rules_spf_dns *d, SPF_server_t *server, SPF_request_t *req,
			 struct spf_answer *a)
{
	SPF_response_t *resp = SPF_response_new(req);
	SPF_record_t *rec = NULL;
	SPF_errcode_t err;
	SPF_result_t result;

	if (resp == NULL) {
		a->result = "temperror";
		spf_set(&a->reason, "out of memory");
		return;
	}
	err = SPF_server_get_record(server, req, resp, &rec);
	if (err != SPF_E_SUCCESS) {
		result = resp->result;
		/* a record that does not compile leaves no result: permerror;
		 * libspf2 1.2.10 calls a failed lookup of the record permerror */
		if (d->over == RULES_SPF_SYNTAX)
			result = SPF_RESULT_PERMERROR;
		else if (d->failed)
			result = SPF_RESULT_TEMPERROR;
		else if (result != SPF_RESULT_NONE && result != SPF_RESULT_TEMPERROR)
			result = SPF_RESULT_PERMERROR;
		a->result = spf_result_names[result];
		spf_set(&a->reason, d->over == RULES_SPF_SYNTAX ? d->syntax : spf_first_error(resp, err));
	} else {
		resp->spf_record_exp = rec;
		err = SPF_record_interpret(rec, req, resp, 0);
		result = resp->result;
		a->result = result <= SPF_RESULT_PERMERROR ? spf_result_names[result] : "permerror";
		if (d->over == RULES_SPF_OVER_TIME) {
			a->result = "temperror";
			spf_set(&a->reason, spf_over_reasons[d->over]);
		} else if (d->over != RULES_SPF_WITHIN) {
			a->result = "permerror";
			spf_set(&a->reason, d->over == RULES_SPF_SYNTAX ? d->syntax
								  : spf_over_reasons[d->over]);
		} else if (result == SPF_RESULT_TEMPERROR || result == SPF_RESULT_PERMERROR ||
			   result == SPF_RESULT_INVALID) {
			spf_set(&a->reason, spf_first_error(resp, resp->err ? resp->err : err));
		} else if (resp->reason == SPF_REASON_MECH) {
			spf_find_mechanism(d, req, rec, a);
		}
		if (result == SPF_RESULT_FAIL && d->over == RULES_SPF_WITHIN)
			spf_set(&a->explanation, d->explanation);
	}
	if (rec != NULL)
		SPF_record_free(rec);
	SPF_response_free(resp);
}

/* spf_request_for - a request with the client's address, HELO and sender;
 * NULL with a reason in *why when it cannot be made. */
static SPF_request_t *spf_request_for(SPF_server_t *server, const char *ip, const char *helo,
				      const char *sender, const char **why)
{
	SPF_request_t *req = SPF_request_new(server);
	struct in6_addr a6;
	struct in_addr a4;
	int ok;

	if (req == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		ok = SPF_request_set_ipv4(req, a4) == SPF_E_SUCCESS;
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		/* an IPv4-mapped address is checked as IPv4 */
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
			ok = SPF_request_set_ipv4(req, a4) == SPF_E_SUCCESS;
		} else {
			ok = SPF_request_set_ipv6(req, a6) == SPF_E_SUCCESS;
		}
	} else {
		*why = "the client has no IP address";
		SPF_request_free(req);
		return NULL;
	}
	if (ok && helo[0] != '\0')
		ok = SPF_request_set_helo_dom(req, helo) == SPF_E_SUCCESS;
	/* "" with a HELO name: postmaster@<helo> (RFC 7208 §2.4, and §2.3's <sender>) */
	if (ok)
		ok = SPF_request_set_env_from(req, sender) == SPF_E_SUCCESS;
	if (!ok) {
		*why = "out of memory";
		SPF_request_free(req);
		return NULL;
	}
	return req;
}

/* spf_check - check identity for the client and fill a (never raises). */
static void spf_check(lua_State *L, const struct rule_ctx *ctx, enum spf_identity identity,
		      struct spf_answer *a)
{
	const char *helo = ctx->helo != NULL ? ctx->helo : "";
	const char *sender = "", *domain, *why = NULL;
	struct rules_spf_dns d;
	SPF_server_t *server;
	SPF_request_t *req;

	memset(a, 0, sizeof(*a));
	if (identity == SPF_ID_MAILFROM && ctx->env != NULL && ctx->env->mail_from != NULL)
		sender = ctx->env->mail_from;
	domain = identity == SPF_ID_HELO || sender[0] == '\0' ? helo : strrchr(sender, '@');
	domain = domain != NULL && domain[0] == '@' ? domain + 1 : domain;
	if (domain == NULL || !spf_is_domain(domain)) {
		a->result = "none";
		spf_set(&a->domain, domain);
		spf_set(&a->reason, identity == SPF_ID_HELO || sender[0] == '\0'
					    ? "the HELO name is not a domain name"
					    : "the sender's domain is not a domain name");
		return;
	}
	spf_set(&a->domain, domain);
	/* libspf2's warnings and notes would go to the session's stderr: the
	 * result carries what matters */
	SPF_warning_handler = NULL;
	SPF_info_handler = NULL;
	SPF_debug_handler = NULL;
	rules_spf_dns_init(&d, L);
	if ((server = SPF_server_new_dns(&d.server, 0)) == NULL) {
		a->result = "temperror";
		spf_set(&a->reason, "out of memory");
		return;
	}
	SPF_server_set_rec_dom(server, ctx->server_name != NULL && ctx->server_name[0] != '\0'
					       ? ctx->server_name
					       : "unknown");
	SPF_server_set_max_dns_mech(server, RULES_SPF_TERMS_MAX);
	SPF_server_set_max_dns_mx(server, RULES_SPF_TERMS_MAX);
	SPF_server_set_max_dns_ptr(server, RULES_SPF_TERMS_MAX);
	req = spf_request_for(server, ctx->client_ip != NULL ? ctx->client_ip : "", helo,
			      identity == SPF_ID_HELO ? "" : sender, &why);
	if (req == NULL) {
		a->result = "temperror";
		spf_set(&a->reason, why);
	} else {
		req->use_helo = identity == SPF_ID_HELO;
		req->cur_dom = identity == SPF_ID_HELO ? req->helo_dom : req->env_from_dp;
		d.request = req;
		spf_evaluate(&d, server, req, a);
		SPF_request_free(req);
	}
	SPF_server_free(server);
	rules_spf_dns_free(&d);
}

/* spf_push - the rules' table of an answer. */
static int spf_push(lua_State *L, const struct spf_answer *a, enum spf_identity identity)
{
	static const char *const identities[] = {"mailfrom", "helo"};

	lua_createtable(L, 0, 6);
	lua_pushstring(L, a->result);
	lua_setfield(L, -2, "result");
	lua_pushstring(L, identities[identity]);
	lua_setfield(L, -2, "identity");
	if (a->domain != NULL) {
		lua_pushstring(L, a->domain);
		lua_setfield(L, -2, "domain");
	}
	if (a->explanation != NULL) {
		lua_pushstring(L, a->explanation);
		lua_setfield(L, -2, "explanation");
	}
	if (a->mechanism != NULL) {
		lua_pushstring(L, a->mechanism);
		lua_setfield(L, -2, "mechanism");
	}
	if (a->reason != NULL) {
		lua_pushstring(L, a->reason);
		lua_setfield(L, -2, "reason");
	}
	return 1;
}

/* spf_kept_of - ctx's kept results, made on first use; raises when out of memory. */
static struct spf_kept *spf_kept_of(lua_State *L, struct rule_ctx *ctx)
{
	if (ctx->spf == NULL && (ctx->spf = calloc(1, sizeof(struct spf_kept))) == NULL)
		luaL_error(L, "out of memory");
	return ctx->spf;
}

/* spf_need_stage - raise unless the stage is one of those from first to preq. */
static void spf_need_stage(lua_State *L, enum rule_stage stage, enum rule_stage first,
			   const char *what)
{
	if (stage < first || stage > RULE_STAGE_PREQ || stage == RULE_STAGE_AUTHENTICATE)
		luaL_error(L,
			   "%s works at the %s to preq stages, not at %s: it needs the SMTP "
			   "session (keep its result with ctx:set() for later stages)",
			   what, rules_stage_name(first), rules_stage_name(stage));
}

/* spf_mailfrom_kept - the transaction's MAIL FROM result, checked now when
 * not yet; raises when out of memory. */
static struct spf_answer *spf_mailfrom_kept(lua_State *L, struct rule_ctx *ctx)
{
	struct spf_kept *k = spf_kept_of(L, ctx);

	if (!k->has_mailfrom) {
		spf_check(L, ctx, SPF_ID_MAILFROM, &k->mailfrom);
		k->has_mailfrom = 1;
	}
	return &k->mailfrom;
}

/* rules_spf_mailfrom - see rules_spf.h. */
void rules_spf_mailfrom(lua_State *L, struct rule_ctx *ctx, const char **result,
			const char **domain)
{
	const struct spf_answer *a;

	ctx_need_env(L, ctx, "ctx:spf()");
	a = spf_mailfrom_kept(L, ctx);
	*result = a->result;
	*domain = a->domain;
}

/* lua_ctx_spf - ctx:spf(): the MAIL FROM identity, once per transaction. */
static int lua_ctx_spf(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);

	spf_need_stage(L, ud->stage, RULE_STAGE_MAIL, "ctx:spf()");
	ctx_need_env(L, ctx, "ctx:spf()");
	return spf_push(L, spf_mailfrom_kept(L, ctx), SPF_ID_MAILFROM);
}

/* lua_ctx_spf_helo - ctx:spf_helo(): the HELO identity, once per HELO name. */
static int lua_ctx_spf_helo(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	const char *helo = ctx->helo != NULL ? ctx->helo : "";
	struct spf_kept *k;

	spf_need_stage(L, ud->stage, RULE_STAGE_HELO, "ctx:spf_helo()");
	k = spf_kept_of(L, ctx);
	if (!k->has_helo || strcmp(k->helo_name, helo) != 0) {
		spf_answer_free(&k->helo);
		k->has_helo = 0;
		spf_check(L, ctx, SPF_ID_HELO, &k->helo);
		k->has_helo = strlen(helo) < sizeof(k->helo_name);
		if (k->has_helo)
			strcpy(k->helo_name, helo);
	}
	return spf_push(L, &k->helo, SPF_ID_HELO);
}

/* spf_view - what Authentication-Results reads of an answer. */
static void spf_view(const struct spf_answer *a, struct rules_spf_view *out)
{
	out->result = a->result;
	out->domain = a->domain;
	out->reason = a->reason;
}

/* rules_spf_mailfrom_kept - see rules_spf.h. */
int rules_spf_mailfrom_kept(const struct rule_ctx *ctx, struct rules_spf_view *out)
{
	const struct spf_kept *k = ctx->spf;

	if (k == NULL || !k->has_mailfrom)
		return 0;
	spf_view(&k->mailfrom, out);
	return 1;
}

/* rules_spf_helo_kept - see rules_spf.h. */
int rules_spf_helo_kept(const struct rule_ctx *ctx, struct rules_spf_view *out)
{
	const struct spf_kept *k = ctx->spf;

	if (k == NULL || !k->has_helo || strcmp(k->helo_name, ctx->helo != NULL ? ctx->helo : "") != 0)
		return 0;
	spf_view(&k->helo, out);
	return 1;
}

/* rules_spf_tx_end - see rules_spf.h. */
void rules_spf_tx_end(struct rule_ctx *ctx)
{
	struct spf_kept *k = ctx->spf;

	if (k != NULL && k->has_mailfrom) {
		spf_answer_free(&k->mailfrom);
		k->has_mailfrom = 0;
	}
}

/* rules_spf_release - see rules_spf.h. */
void rules_spf_release(struct rule_ctx *ctx)
{
	struct spf_kept *k = ctx->spf;

	if (k == NULL)
		return;
	spf_answer_free(&k->mailfrom);
	spf_answer_free(&k->helo);
	free(k);
	ctx->spf = NULL;
}

const luaL_Reg ctx_spf_methods[] = {
    {"spf", lua_ctx_spf},
    {"spf_helo", lua_ctx_spf_helo},
    {NULL, NULL},
};
