/*
 * mx_lookup.h - where mail for a domain goes: MX records, then addresses,
 * asynchronously through c-ares on the delivery worker's libevent loop.
 *
 * A lookup of a domain gives the hosts to try in order: the MX hosts by
 * preference (hosts of equal preference shuffled), each with its IPv4
 * addresses, then its IPv6 ones; without MX records the domain itself (the
 * implicit MX of RFC 5321 5.1). A null MX (RFC 7505: an MX "."; one among
 * others counts too) and a domain that does not exist are permanent
 * failures; a resolver that does not answer is a temporary one. An MX host
 * whose addresses cannot be had is skipped; when no host has an address,
 * the lookup fails temporarily if a host's lookup did, else permanently.
 *
 * Only the DNS servers are asked (A, AAAA and MX queries): never
 * /etc/hosts, no search domains. At most the best 16 MX hosts are looked
 * up, with at most 4 addresses of each family each (16 of each for
 * mx_lookup_host), and MTA_MAX_ADDRS in all.
 */
#ifndef VSMTPD_MX_LOOKUP_H
#define VSMTPD_MX_LOOKUP_H

#include <stddef.h>

#include "mta.h"

struct event_base;
struct mx_resolver;

enum mx_status {
	MX_OK,        /* addrs holds at least one address */
	MX_NULL,      /* null MX: the domain takes no mail (fail, 5.1.10) */
	MX_NOTFOUND,  /* NXDOMAIN, or no MX and no address (fail, 5.1.2) */
	MX_TEMPFAIL,  /* timeout, SERVFAIL, no server reachable (defer, 4.4.3) */
};

struct mx_result {
	enum mx_status status;
	/* For logs and bounces, "" with MX_OK: "example.org: null MX: the
	 * domain accepts no mail", "example.org: Host or domain name not
	 * found (NXDOMAIN)", "example.org: no MX and no address",
	 * "example.org: DNS lookup timed out", "example.org: no MX host has an
	 * address (mx1.example.org: DNS server failure (SERVFAIL))" */
	char reason[256];
	struct mta_addr addrs[MTA_MAX_ADDRS];
	size_t naddrs;     /* in the order to try; ports set to the lookup's port */
};

typedef void (*mx_done_fn)(void *arg, const struct mx_result *res);

/*
 * mx_resolver_new - a resolver on base. servers: "" or NULL for the
 * system's (read now from /etc/resolv.conf), else addresses as [delivery]
 * dns_servers takes them ("127.0.0.1:5353 ::1"). timeout_ms bounds a whole
 * lookup (0: 10 s). Nothing is read from a file after this call. Returns
 * NULL with the reason in err.
 */
struct mx_resolver *mx_resolver_new(struct event_base *base, const char *servers,
				    unsigned timeout_ms, char *err, size_t errlen);

/* mx_resolver_free - cancel every lookup under way (their callbacks are not called). */
void mx_resolver_free(struct mx_resolver *r);

/*
 * mx_lookup - the MX hosts of domain and their addresses, with port set on
 * each; fn is called exactly once, never from inside this call, and may
 * start lookups or free the resolver. res is valid during the call only.
 * An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") is that address;
 * a name that is no LDH domain name (an internationalized one must come
 * as A-labels) is MX_NOTFOUND. Out of memory is fatal: the promise of one
 * callback could not be kept.
 */
void mx_lookup(struct mx_resolver *r, const char *domain, unsigned port, mx_done_fn fn,
	       void *arg);

/*
 * mx_lookup_host - the addresses of one host (A and AAAA, no MX): for a
 * relay host. A literal address ("192.0.2.1", "2001:db8::1", also in
 * brackets) is returned as is. Same callback rules.
 */
void mx_lookup_host(struct mx_resolver *r, const char *host, unsigned port, mx_done_fn fn,
		    void *arg);

#endif
