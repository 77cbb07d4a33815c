/*
 * rules_spf.h - SPF (RFC 7208) for the rules: ctx:spf() and ctx:spf_helo()
 * (rules_spf.c) over libspf2, whose DNS goes through the rules' own c-ares
 * channel by a DNS layer of our own (rules_spf_dns.c). Private to the
 * rule engine.
 */
#ifndef VSMTPD_RULES_SPF_H
#define VSMTPD_RULES_SPF_H

#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include <netinet/in.h> /* before libspf2, which needs in_addr */
#include <spf2/spf.h>

#include "rules.h"

/* RFC 7208 §4.6.4: terms that query DNS, and void lookups, per check. */
#define RULES_SPF_TERMS_MAX 10
#define RULES_SPF_VOIDS_MAX 2
/* The longest one check may wait on DNS in all (RFC 7208 §4.6.4: at least 20 s). */
#define RULES_SPF_TIME_MS 20000
/* Names an MX or PTR answer may bring whose addresses are looked up next. */
#define RULES_SPF_FOLLOW_MAX 10
#define RULES_SPF_NAME_MAX 256

/* Why a check was stopped by the layer. */
enum rules_spf_over {
	RULES_SPF_WITHIN,
	RULES_SPF_OVER_TERMS, /* an 11th term querying DNS */
	RULES_SPF_OVER_VOIDS, /* a 3rd void lookup */
	RULES_SPF_OVER_TIME,  /* RULES_SPF_TIME_MS spent */
	RULES_SPF_SYNTAX,     /* a record fetched is not valid SPF (rules_spf_syntax.c) */
};

struct rules_spf_cached;

/*
 * The DNS layer of one check: libspf2 calls server.lookup for every query,
 * server.get_exp for the exp= text. It counts the terms and void lookups of
 * RFC 7208 §4.6.4 and keeps every answer, so that the check can be replayed
 * without a query (to name the mechanism that matched).
 */
struct rules_spf_dns {
	SPF_dns_server_t server; /* server.hook points back here */
	lua_State *L;            /* whose `dns` channel the queries use */
	SPF_request_t *request;  /* for expanding the exp= text's macros */
	uint64_t deadline_ms;    /* CLOCK_MONOTONIC */
	unsigned terms, voids, queries;
	enum rules_spf_over over;
	int started;             /* the checked domain's own record was asked for */
	int replay;              /* answer from what was kept only */
	int failed;              /* a query had no answer (timeout, SERVFAIL, ...) */
	char follow[RULES_SPF_FOLLOW_MAX][RULES_SPF_NAME_MAX]; /* MX/PTR names, in order */
	size_t nfollow, next;
	int follow_ptr;          /* the names to follow came from a PTR answer */
	char *record;            /* the checked domain's SPF record text */
	char *explanation;       /* the exp= text, expanded; NULL without one */
	struct rules_spf_cached *kept;
	char syntax[256];        /* with RULES_SPF_SYNTAX: what is wrong, and where */
};

/* rules_spf_dns_init - a layer for one check with the channel of L. */
void rules_spf_dns_init(struct rules_spf_dns *d, lua_State *L);

/* rules_spf_dns_free - what the layer holds (not d itself). */
void rules_spf_dns_free(struct rules_spf_dns *d);

/* The ctx methods ctx:spf() and ctx:spf_helo() (rules_spf.c). */
extern const luaL_Reg ctx_spf_methods[];

/*
 * rules_spf_mailfrom - ctx:spf()'s result for the transaction, checked now
 * when it was not yet (and kept, as ctx:spf() keeps it): the result
 * ("pass", ...) and the domain checked (NULL when there was none). For the
 * callers of the session stages, mail to preq; raises like ctx:spf().
 */
void rules_spf_mailfrom(lua_State *L, struct rule_ctx *ctx, const char **result,
			const char **domain);

/* A kept result, read by Authentication-Results (rules_auth_results.c). */
struct rules_spf_view {
	const char *result; /* "pass", ... */
	const char *domain; /* the domain checked, NULL for none */
	const char *reason; /* for none, temperror, permerror; else NULL */
};

/* rules_spf_mailfrom_kept - the transaction's MAIL FROM result into *out:
 * 1, or 0 when ctx:spf() has not run in this transaction. */
int rules_spf_mailfrom_kept(const struct rule_ctx *ctx, struct rules_spf_view *out);

/* rules_spf_helo_kept - the result for the current HELO name into *out:
 * 1, or 0 when ctx:spf_helo() has not run for that name. */
int rules_spf_helo_kept(const struct rule_ctx *ctx, struct rules_spf_view *out);

/* rules_spf_tx_end - forget the transaction's MAIL FROM result. */
void rules_spf_tx_end(struct rule_ctx *ctx);

/* rules_spf_release - forget every result kept in ctx. */
void rules_spf_release(struct rule_ctx *ctx);

/*
 * rules_spf_syntax_check - the syntax of an SPF record (rules_spf_syntax.c,
 * RFC 7208 section 12): 0 when rec (len bytes) is valid or is no SPF
 * record at all (it does not start with "v=spf1"), -1 with the reason in
 * why when it is an SPF record with an error (permerror).
 */
int rules_spf_syntax_check(const char *rec, size_t len, char *why, size_t whylen);

#endif
