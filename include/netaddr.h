/*
 * netaddr.h - IP addresses and networks as plain values: parsed, printed,
 * compared. The configuration checks its network lists with it, sessions
 * test a client against them, and the rules' ip, net and netset objects
 * are built on it.
 */
#ifndef VSMTPD_NETADDR_H
#define VSMTPD_NETADDR_H

#include <stddef.h>

/* Text this long is no IP address (INET6_ADDRSTRLEN is 46). */
#define NETADDR_IP_INPUT_MAX 64

/* Room for netaddr_ip_format() (INET6_ADDRSTRLEN). */
#define NETADDR_IP_TEXT_MAX 46

/* An IP address; 4 bytes of addr are used for AF_INET, the rest are zero. */
struct netaddr_ip {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network byte order */
};

/*
 * netaddr_ip_parse - parse an IPv4 or IPv6 address (inet_pton syntax:
 * dotted quad without leading zeros, RFC 4291 text without zone). Returns 0,
 * or -1 when s is no address. An IPv4-mapped IPv6 address stays AF_INET6.
 */
int netaddr_ip_parse(const char *s, struct netaddr_ip *out);

/* A network: an address and a prefix length; no bits set past the prefix. */
struct netaddr_net {
	struct netaddr_ip ip;
	unsigned prefix;
};

enum { NETADDR_OK = 0, NETADDR_INVALID = -1, NETADDR_HOST_BITS = -2 };

/*
 * netaddr_net_parse - "address/prefix" or a bare address (a host
 * network). NETADDR_OK, NETADDR_INVALID, or NETADDR_HOST_BITS for an
 * address with bits set past its prefix ("10.0.0.1/8", usually a typo).
 */
int netaddr_net_parse(const char *s, struct netaddr_net *out);

/*
 * netaddr_list_contains - whether the address ip lies in one of networks:
 * space separated "address/prefix" or addresses, as config_load keeps
 * [rules] trusted_networks. IPv4-mapped IPv6 addresses count as IPv4.
 */
int netaddr_list_contains(const char *networks, const char *ip);

/* netaddr_ip_format - canonical text of ip into buf; buf, or NULL if it does not fit. */
const char *netaddr_ip_format(const struct netaddr_ip *ip, char *buf, size_t len);

/* netaddr_ip_len - bytes of an address of the family. */
size_t netaddr_ip_len(int family);

/* netaddr_ip_bits - bits of an address of the family. */
unsigned netaddr_ip_bits(int family);

/* netaddr_bits_equal - the first bits bits of a and b are the same. */
int netaddr_bits_equal(const unsigned char *a, const unsigned char *b, unsigned bits);

/* netaddr_net_of_ip - the network of the one address ip. */
void netaddr_net_of_ip(const struct netaddr_ip *ip, struct netaddr_net *out);

/*
 * netaddr_net_unmap - a network inside ::ffff:0:0/96 becomes the IPv4
 * network it maps, as dual-stack sockets show IPv4 clients that way.
 */
void netaddr_net_unmap(struct netaddr_net *n);

/* netaddr_net_format - "address/prefix" into buf. */
void netaddr_net_format(const struct netaddr_net *n, char *buf, size_t len);

/* netaddr_net_covers - outer contains inner; both unmapped. */
int netaddr_net_covers(const struct netaddr_net *outer, const struct netaddr_net *inner);

#endif
