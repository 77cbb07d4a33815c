/*
 * rules_dns.h - DNS lookups for the Lua rules (the global table `dns`),
 * through c-ares.
 *
 *   dns.lookup(name [, type])
 *       type "A", "AAAA", "MX", "TXT" or "PTR" (any case); without a type,
 *       A and AAAA both, the IPv4 addresses first. Returns an array:
 *         A, AAAA  address strings ("192.0.2.1", "2001:db8::1")
 *         MX       tables {preference = 10, exchange = "mx.example.org"},
 *                  sorted by preference (then by name); a null MX
 *                  (RFC 7505) has exchange ""
 *         TXT      one string per record, its character-strings joined
 *         PTR      names
 *       A name that does not exist (NXDOMAIN) or has no record of the type
 *       gives an empty table. When no answer could be had it returns nil
 *       and a reason: "timeout" (no answer within the configured timeout)
 *       or "servfail" (the servers answered with a failure - SERVFAIL,
 *       REFUSED, a malformed answer - or could not be reached). Without a
 *       type, addresses found for one family are returned even when the
 *       other's query failed; nil, reason comes only when neither gave any.
 *       name: 1 to 253 bytes (one trailing dot allowed) of labels of 1 to 63
 *       ASCII letters, digits, '-' and '_'. Anything else raises
 *       'not a domain name: "..."', an unknown type raises too.
 *   dns.rlookup(ip)
 *       the PTR names of an IPv4 or IPv6 address (a string or an ip()
 *       value; an IPv4-mapped IPv6 address is looked up as IPv4), with the
 *       same results and errors. A bad address raises
 *       'not an IP address: "..."'.
 *
 * Every list holds at most RULES_DNS_ANSWERS_MAX entries; names are
 * lowercased, without a trailing dot. Each call blocks until its answers
 * are in, for at most the configured timeout in all (one session process
 * per connection: only that client waits).
 *
 * Session processes can open no file (Landlock), so everything c-ares
 * would read (/etc/resolv.conf, ...) is read by rules_dns_open(), in the
 * master when the rules are compiled; the resolver itself is created
 * lazily, in each process on its first lookup (a process forked from one
 * that had a resolver makes its own), with every setting given so that
 * c-ares reads no file: no search domains, no hosts file, the servers
 * captured at open.
 */
#ifndef VSMTPD_RULES_DNS_H
#define VSMTPD_RULES_DNS_H

#include <stddef.h>

struct lua_State;

#define RULES_DNS_ANSWERS_MAX 20
#define RULES_DNS_TIMEOUT_DEFAULT 5000 /* ms, for a timeout of 0 */

/*
 * rules_dns_open - register the global table `dns` in L. servers: NULL or
 * "" for the system's resolvers (read now from /etc/resolv.conf), else
 * addresses separated by commas or blanks: "127.0.0.1", "127.0.0.1:5353",
 * "::1", "[::1]:53"; at most RESOLVER_SERVERS_MAX. timeout_ms bounds each
 * call (0: RULES_DNS_TIMEOUT_DEFAULT). Returns 0, or -1 with the reason in
 * err, e.g. 'dns_servers: "x" is not an address ...'. Makes no query.
 */
int rules_dns_open(struct lua_State *L, const char *servers, unsigned timeout_ms, char *err,
		   size_t errlen);

/*
 * rules_dns_zone - from now on, answer the lookups of the `dns` table
 * registered in L (by rules_dns_open) and rules_dns_query() from the zone
 * file at path (rules_zone.h gives its format), read now, instead of
 * asking servers: for testing rules offline. Returns 0, or -1 with the
 * reason in err ("zone.txt:3: unknown type ...", "cannot open ...").
 */
int rules_dns_zone(struct lua_State *L, const char *path, char *err, size_t errlen);

/* What one raw query became (rules_dns_query). */
enum rules_dns_result {
	RULES_DNS_ANSWER,   /* NOERROR with at least one answer record (not parsed:
			     * the caller's parser refuses a malformed one) */
	RULES_DNS_NXDOMAIN, /* the name does not exist */
	RULES_DNS_NODATA,   /* the name exists, with no record of the type */
	RULES_DNS_TIMEOUT,  /* no answer within the time given */
	RULES_DNS_FAIL,     /* SERVFAIL, REFUSED, a malformed header, no server reached */
	RULES_DNS_NOMEM,
};

/*
 * rules_dns_query - one query of type (ns_t_txt, ns_t_a, ...) for name,
 * through the channel of the `dns` table registered in L and its servers,
 * synchronously: for the resolver hooks of the libraries that check mail
 * authentication, called from inside a rule. It waits timeout_ms at most
 * (0, or more than the configured timeout: the configured timeout). With
 * RULES_DNS_ANSWER, *answer is the whole DNS message as received
 * (malloc'ed, *len bytes, the caller frees it); otherwise *answer is NULL.
 * Nothing is read from a file: the servers were captured when the rules
 * were loaded. With a zone (rules_dns_zone), the zone answers at once.
 */
enum rules_dns_result rules_dns_query(struct lua_State *L, const char *name, int type,
				      unsigned timeout_ms, unsigned char **answer, size_t *len);

/*
 * rules_dns_forked - in a child of the process that registered `dns` in
 * L: close the parent's channel (its sockets are still the parent's
 * descriptors here), so that the child, once it has closed what it
 * inherited, never closes a descriptor number that has become its own.
 * The parent has a channel only when the rules file looked a name up as
 * it was loaded; Debian 12's c-ares then closes the server's socket once
 * the query is answered, but a c-ares that keeps it open for the next
 * query would leave one behind.
 */
void rules_dns_forked(struct lua_State *L);

struct ares_txt_ext;

/*
 * rules_dns_txt_join - the TXT record whose first string is p (of a list
 * ares_parse_txt_reply_ext() made): its strings joined, NUL-terminated, in
 * a malloc'ed string of *len bytes (a record of one empty string gives "",
 * and the strings may hold NULs); *next gets the first string of the next
 * record, NULL after the last. NULL when out of memory (*next is set).
 */
char *rules_dns_txt_join(const struct ares_txt_ext *p, const struct ares_txt_ext **next,
			 size_t *len);

#endif
