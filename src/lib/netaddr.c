/*
 * netaddr.c - IP addresses and networks (see netaddr.h): inet_pton and
 * inet_ntop for the text, byte-wise prefix comparisons for containment.
 * Pure functions: no allocation, no global state.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "netaddr.h"

/* netaddr_ip_len - bytes of an address of the family. */
size_t netaddr_ip_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* netaddr_ip_bits - bits of an address of the family. */
unsigned netaddr_ip_bits(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* netaddr_ip_parse - parse an IPv4 or IPv6 address. */
int netaddr_ip_parse(const char *s, struct netaddr_ip *out)
{
	memset(out, 0, sizeof(*out));
	if (strchr(s, ':')) {
		if (inet_pton(AF_INET6, s, out->addr) != 1)
			return -1;
		out->family = AF_INET6;
		return 0;
	}
	if (inet_pton(AF_INET, s, out->addr) != 1)
		return -1;
	out->family = AF_INET;
	return 0;
}

/* netaddr_ip_format - canonical text of ip, NULL if buf is too small. */
const char *netaddr_ip_format(const struct netaddr_ip *ip, char *buf, size_t len)
{
	if (ip->family != AF_INET && ip->family != AF_INET6)
		return NULL;
	return inet_ntop(ip->family, ip->addr, buf, (socklen_t)len);
}

/* netaddr_bits_equal - the first bits bits of a and b are the same. */
int netaddr_bits_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return ((a[whole] ^ b[whole]) & mask) == 0;
}

/* netaddr_host_bits_clear - no bit of ip past prefix is set. */
static int netaddr_host_bits_clear(const struct netaddr_ip *ip, unsigned prefix)
{
	size_t i = prefix / 8, len = netaddr_ip_len(ip->family);

	if (prefix % 8 != 0 && (ip->addr[i++] & (0xff >> (prefix % 8))) != 0)
		return 0;
	for (; i < len; i++)
		if (ip->addr[i] != 0)
			return 0;
	return 1;
}

/*
 * netaddr_net_unmap - a network inside ::ffff:0:0/96 becomes the IPv4 network
 * it maps: a dual-stack socket shows IPv4 clients that way, and they must
 * match the IPv4 networks the administrator wrote.
 */
void netaddr_net_unmap(struct netaddr_net *n)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (n->ip.family != AF_INET6 || n->prefix < 96 || memcmp(n->ip.addr, mapped, 12) != 0)
		return;
	memmove(n->ip.addr, n->ip.addr + 12, 4);
	memset(n->ip.addr + 4, 0, 12);
	n->ip.family = AF_INET;
	n->prefix -= 96;
}

/* netaddr_net_of_ip - the network of the one address ip. */
void netaddr_net_of_ip(const struct netaddr_ip *ip, struct netaddr_net *out)
{
	out->ip = *ip;
	out->prefix = netaddr_ip_bits(ip->family);
}

/* netaddr_prefix_parse - one to three decimal digits, at most max. */
static int netaddr_prefix_parse(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i == 3)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (i == 0 || s[i] != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* netaddr_net_parse - "address/prefix" or a bare address; RULE_NET_*. */
int netaddr_net_parse(const char *s, struct netaddr_net *out)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	char buf[NETADDR_IP_INPUT_MAX];

	if (alen >= sizeof(buf))
		return NETADDR_INVALID;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (netaddr_ip_parse(buf, &out->ip) < 0)
		return NETADDR_INVALID;
	netaddr_net_of_ip(&out->ip, out);
	if (slash && netaddr_prefix_parse(slash + 1, out->prefix, &out->prefix) < 0)
		return NETADDR_INVALID;
	/* "10.0.0.1/8" is more often a typo than a way to write 10.0.0.0/8. */
	if (!netaddr_host_bits_clear(&out->ip, out->prefix))
		return NETADDR_HOST_BITS;
	return NETADDR_OK;
}

/* netaddr_net_format - "address/prefix" into buf. */
void netaddr_net_format(const struct netaddr_net *n, char *buf, size_t len)
{
	char ip[NETADDR_IP_TEXT_MAX];

	if (!netaddr_ip_format(&n->ip, ip, sizeof(ip)))
		ip[0] = '\0';
	snprintf(buf, len, "%s/%u", ip, n->prefix);
}

/* netaddr_net_covers - outer contains inner; both unmapped. */
int netaddr_net_covers(const struct netaddr_net *outer, const struct netaddr_net *inner)
{
	return outer->ip.family == inner->ip.family && inner->prefix >= outer->prefix &&
	       netaddr_bits_equal(outer->ip.addr, inner->ip.addr, outer->prefix);
}

/* netaddr_list_contains - whether ip is in one of the space separated networks. */
int netaddr_list_contains(const char *networks, const char *ip)
{
	struct netaddr_net host, net;
	char word[2 * NETADDR_IP_INPUT_MAX];
	const char *p = networks;
	size_t n;

	if (netaddr_net_parse(ip, &host) != NETADDR_OK)
		return 0;
	netaddr_net_unmap(&host);
	while (*p != '\0') {
		p += strspn(p, " ");
		n = strcspn(p, " ");
		if (n > 0 && n < sizeof(word)) {
			memcpy(word, p, n);
			word[n] = '\0';
			if (netaddr_net_parse(word, &net) == NETADDR_OK) {
				netaddr_net_unmap(&net);
				if (netaddr_net_covers(&net, &host))
					return 1;
			}
		}
		p += n;
	}
	return 0;
}

