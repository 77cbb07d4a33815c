/*
 * rules_dns_internal.h - what the two halves of the `dns` table share: the
 * queries of one call (rules_dns.c asks them) and the turning of their
 * answers into Lua values (rules_dns_answers.c).
 */
#ifndef VSMTPD_RULES_DNS_INTERNAL_H
#define VSMTPD_RULES_DNS_INTERNAL_H

#include <stddef.h>

#include <ares.h>
#include <lua.h>

/* What one query became. */
enum dns_outcome {
	DNS_ANSWER,  /* an answer to parse */
	DNS_EMPTY,   /* NXDOMAIN, or no record of the type */
	DNS_TIMEOUT, /* no answer in time */
	DNS_FAIL,    /* the servers failed, or could not be reached */
	DNS_NOMEM,
};

/* One query in flight, filled by dns_callback(). */
struct dns_query {
	int type; /* ns_t_a, ... */
	int done;
	int status;         /* ARES_SUCCESS, ARES_ENOTFOUND, ... */
	unsigned char *buf; /* the answer when status is ARES_SUCCESS, malloc'ed */
	int len;
	unsigned char *neg; /* the message of an NXDOMAIN or NODATA, malloc'ed: */
	int neg_len;        /* its SOA says how long to keep it */
	int cached;         /* answered from the process's cache */
	enum dns_outcome outcome;
};

/* One call of dns.lookup / dns.rlookup, from the queries to the results. */
struct dns_call {
	struct dns_query q[2];
	size_t nq;
	/* what the parsers allocated, freed by dns_call_free() */
	struct hostent *host;
	struct ares_mx_reply *mx;
	struct ares_txt_ext *txt;
};

/* dns_call_free - everything the call holds. */
void dns_call_free(struct dns_call *c);

/* dns_finish - turn the call's outcomes into the Lua results (a table, or
 * nil and "timeout" / "servfail"), free the call; raises (after freeing)
 * on a memory error. */
int dns_finish(lua_State *L, struct dns_call *c);

#endif
