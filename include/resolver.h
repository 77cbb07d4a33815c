/*
 * resolver.h - DNS plumbing shared by the rules' dns table (rules_dns.c)
 * and the delivery worker's MX lookups (mx_lookup.c): names, the server
 * list, and c-ares channels that read no file.
 */
#ifndef VSMTPD_RESOLVER_H
#define VSMTPD_RESOLVER_H

#include <stddef.h>

#include <ares.h>

#include "netaddr.h"

#define RESOLVER_SERVERS_MAX 8
#define RESOLVER_NAME_MAX 253
#define RESOLVER_REVERSE_MAX 80 /* room for any reverse name, NUL included */

/* One DNS server, as a dns_servers list names it. */
struct resolver_server {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network byte order */
	unsigned port;
};

/*
 * resolver_servers_read - the servers of list, written as [rules] dns_servers
 * takes them, into out (room for RESOLVER_SERVERS_MAX); for NULL or "",
 * the system's resolvers, read now from /etc/resolv.conf through c-ares.
 * Returns how many (at least one), or -1 with the reason in err.
 */
int resolver_servers_read(const char *list, struct resolver_server *out, char *err,
			   size_t errlen);

/*
 * resolver_check_server - NULL when word is one server address as
 * [rules] dns_servers takes them ("192.0.2.1", "192.0.2.1:53", "2001:db8::1",
 * "[2001:db8::1]:53"), else why not (a static string). For the
 * configuration's word_list().
 */
const char *resolver_check_server(const char *word);

/*
 * resolver_name_check - the length of name (len bytes) without one
 * trailing dot when it is a name that may be looked up, else 0.
 */
size_t resolver_name_check(const char *name, size_t len);

/*
 * resolver_reverse_name - the name to query PTR for the address ip
 * ("1.2.0.192.in-addr.arpa", "...8.b.d.0.1.0.0.2.ip6.arpa"); an
 * IPv4-mapped IPv6 address gives the IPv4 name. Returns its length, or -1
 * when ip is no address or out (at least RESOLVER_REVERSE_MAX) is short.
 */
int resolver_reverse_name(const char *ip, char *out, size_t outlen);

/* resolver_reverse_ip - resolver_reverse_name() of a parsed address. */
int resolver_reverse_ip(const struct netaddr_ip *ip, char *out, size_t outlen);

/*
 * resolver_channel_open - a c-ares channel asking servers (n of them) with
 * every option given, so that it reads no file: no search domains, no
 * hosts file, no rotation; timeout_ms spread over the tries of every
 * server. sock_state (may be NULL) is c-ares's socket state callback, for
 * a channel driven by an event loop. Seeds rand() first (see resolver.c).
 * Returns an ARES_* status; *out is set on ARES_SUCCESS.
 */
int resolver_channel_open(ares_channel *out, const struct resolver_server *servers,
			  size_t nservers, unsigned timeout_ms, ares_sock_state_cb sock_state,
			  void *sock_state_data);

#endif
