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
#define RULES_DNS_SERVERS_MAX 8
#define RULES_DNS_TIMEOUT_DEFAULT 5000 /* ms, for a timeout of 0 */
#define RULES_DNS_NAME_MAX 253
#define RULES_DNS_REVERSE_MAX 80 /* room for any reverse name, NUL included */

/*
 * rules_dns_open - register the global table `dns` in L. servers: NULL or
 * "" for the system's resolvers (read now from /etc/resolv.conf), else
 * addresses separated by commas or blanks: "127.0.0.1", "127.0.0.1:5353",
 * "::1", "[::1]:53"; at most RULES_DNS_SERVERS_MAX. timeout_ms bounds each
 * call (0: RULES_DNS_TIMEOUT_DEFAULT). Returns 0, or -1 with the reason in
 * err, e.g. 'dns_servers: "x" is not an address ...'. Makes no query.
 */
int rules_dns_open(struct lua_State *L, const char *servers, unsigned timeout_ms, char *err,
		   size_t errlen);

/* One DNS server, as a dns_servers list names it. */
struct rules_dns_server {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network byte order */
	unsigned port;
};

/*
 * rules_dns_servers_read - the servers of list, written as rules_dns_open
 * takes them, into out (room for RULES_DNS_SERVERS_MAX); for NULL or "",
 * the system's resolvers, read now from /etc/resolv.conf through c-ares.
 * Returns how many (at least one), or -1 with the reason in err. Shared
 * with the delivery worker's resolver (mx_lookup.c), whose [delivery]
 * dns_servers has the same syntax.
 */
int rules_dns_servers_read(const char *list, struct rules_dns_server *out, char *err,
			   size_t errlen);

/*
 * rules_dns_check_server - NULL when word is one server address as
 * rules_dns_open takes them ("192.0.2.1", "192.0.2.1:53", "2001:db8::1",
 * "[2001:db8::1]:53"), else why not (a static string). For the
 * configuration's word_list().
 */
const char *rules_dns_check_server(const char *word);

/*
 * rules_dns_name_check - the length of name (len bytes) without one
 * trailing dot when it is a name dns.lookup() takes, else 0.
 */
size_t rules_dns_name_check(const char *name, size_t len);

/*
 * rules_dns_reverse_name - the name to query PTR for the address ip
 * ("1.2.0.192.in-addr.arpa", "...8.b.d.0.1.0.0.2.ip6.arpa"); an
 * IPv4-mapped IPv6 address gives the IPv4 name. Returns its length, or -1
 * when ip is no address or out (at least RULES_DNS_REVERSE_MAX) is short.
 */
int rules_dns_reverse_name(const char *ip, char *out, size_t outlen);

#endif
