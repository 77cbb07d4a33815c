/*
 * resolver.c - the DNS plumbing the rules' dns table and the delivery
 * worker's MX lookups share: checking names, reverse names, the list of
 * servers ([rules] dns_servers, [delivery] dns_servers, or the system's),
 * and c-ares channels that read no file.
 *
 * The server list is read once, in the master (or at the worker's start),
 * where /etc/resolv.conf may still be read. A channel is then created
 * with every option c-ares would otherwise look up in a file given
 * explicitly, so that it works in a confined process.
 *
 * c-ares 1.18 keys its query id generator from /dev/urandom and, when that
 * cannot be opened (as under Landlock), from rand(). So rand() is seeded
 * from getrandom() just before a channel is created: otherwise every
 * confined process would send the same sequence of query ids.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "netaddr.h"
#include "resolver.h"

#define RESOLVER_TRIES 2        /* attempts per server */
#define RESOLVER_TRY_MIN_MS 100 /* the shortest wait before a retry */

/* resolver_is_label_char - what a label may hold: LDH and '_' (_dmarc, ...). */
static int resolver_is_label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* resolver_name_check - the name's length without its trailing dot, or 0. */
size_t resolver_name_check(const char *name, size_t len)
{
	size_t i, label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > RESOLVER_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (!resolver_is_label_char((unsigned char)name[i]) || ++label > 63) {
			return 0;
		}
	}
	return label == 0 ? 0 : len;
}

/* resolver_reverse_ip - the reverse name of ip into out; its length or -1. */
int resolver_reverse_ip(const struct netaddr_ip *ip, char *out, size_t outlen)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const char hex[] = "0123456789abcdef";
	const unsigned char *a = ip->addr;
	size_t pos = 0;
	int i, n;

	if (outlen < RESOLVER_REVERSE_MAX)
		return -1;
	if (ip->family == AF_INET6 && memcmp(a, mapped, sizeof(mapped)) == 0)
		a += 12; /* ::ffff:a.b.c.d is a.b.c.d */
	else if (ip->family == AF_INET6) {
		for (i = 15; i >= 0; i--) {
			out[pos++] = hex[a[i] & 0xf];
			out[pos++] = '.';
			out[pos++] = hex[a[i] >> 4];
			out[pos++] = '.';
		}
		memcpy(out + pos, "ip6.arpa", sizeof("ip6.arpa"));
		return (int)(pos + sizeof("ip6.arpa") - 1);
	} else if (ip->family != AF_INET) {
		return -1;
	}
	n = snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
	return n > 0 && (size_t)n < outlen ? n : -1;
}

/* resolver_reverse_name - the PTR query name of an address given as text. */
int resolver_reverse_name(const char *ip, char *out, size_t outlen)
{
	struct netaddr_ip addr;

	if (netaddr_ip_parse(ip, &addr) < 0)
		return -1;
	return resolver_reverse_ip(&addr, out, outlen);
}

/* resolver_parse_port - 1..65535 in decimal, nothing else; -1 when not. */
static long resolver_parse_port(const char *s)
{
	long v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return i == 0 || v < 1 || v > 65535 ? -1 : v;
}

/* resolver_server_parse - one server word into out; NULL or why not. */
static const char *resolver_server_parse(const char *word, struct resolver_server *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *port = NULL, *end;
	size_t hostlen;
	long p = 53;

	memset(out, 0, sizeof(*out));
	if (word[0] == '[') {
		if ((end = strchr(word, ']')) == NULL)
			return "is not an address: a '[' without its ']'";
		hostlen = (size_t)(end - word - 1);
		word++;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return "is not an address: only \":port\" may follow \"[address]\"";
		out->family = AF_INET6;
	} else if ((end = strchr(word, ':')) != NULL && strchr(end + 1, ':') == NULL) {
		hostlen = (size_t)(end - word); /* a.b.c.d:port */
		port = end + 1;
		out->family = AF_INET;
	} else {
		hostlen = strlen(word); /* a.b.c.d, or an IPv6 address without port */
		out->family = end != NULL ? AF_INET6 : AF_INET;
	}
	if (hostlen == 0 || hostlen >= sizeof(host))
		return "is not an IP address, as in 192.0.2.1, 192.0.2.1:53 or [2001:db8::1]:53";
	memcpy(host, word, hostlen);
	host[hostlen] = '\0';
	if (inet_pton(out->family, host, out->addr) != 1)
		return out->family == AF_INET6
			       ? "is not an IPv6 address, as in [2001:db8::1]:53"
			       : "is not an IP address, as in 192.0.2.1, 192.0.2.1:53 or [2001:db8::1]:53";
	if (port != NULL && (p = resolver_parse_port(port)) < 0)
		return "has a bad port: 1 to 65535";
	out->port = (unsigned)p;
	return NULL;
}

/* resolver_check_server - is word one server address? */
const char *resolver_check_server(const char *word)
{
	struct resolver_server s;

	return resolver_server_parse(word, &s);
}

/* resolver_parse_servers - the words of list into out (*n of them); 0 or -1 with err. */
static int resolver_parse_servers(const char *list, struct resolver_server *out, size_t *n_out,
			     char *err, size_t errlen)
{
	char word[128];
	const char *p = list, *why;
	size_t n;

	for (;;) {
		p += strspn(p, " \t,");
		if (*p == '\0')
			return 0;
		n = strcspn(p, " \t,");
		if (n >= sizeof(word)) {
			snprintf(err, errlen, "dns_servers: \"%.40s...\" is not an IP address", p);
			return -1;
		}
		memcpy(word, p, n);
		word[n] = '\0';
		p += n;
		if (*n_out == RESOLVER_SERVERS_MAX) {
			snprintf(err, errlen, "dns_servers: at most %d servers", RESOLVER_SERVERS_MAX);
			return -1;
		}
		if ((why = resolver_server_parse(word, &out[*n_out])) != NULL) {
			snprintf(err, errlen, "dns_servers: \"%s\" %s", word, why);
			return -1;
		}
		(*n_out)++;
	}
}

/* resolver_system_servers - the system's resolvers, as c-ares reads them, into
 * out (*n of them); 0 or -1 with err. */
static int resolver_system_servers(struct resolver_server *out, size_t *n_out, char *err,
			      size_t errlen)
{
	struct ares_addr_port_node *list = NULL, *n;
	ares_channel ch;
	int rc;

	if ((rc = ares_init(&ch)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns_servers: cannot read the system's DNS resolvers: %s",
			 ares_strerror(rc));
		return -1;
	}
	rc = ares_get_servers_ports(ch, &list);
	for (n = list; rc == ARES_SUCCESS && n != NULL && *n_out < RESOLVER_SERVERS_MAX;
	     n = n->next) {
		struct resolver_server *s = &out[*n_out];

		if (n->family == AF_INET)
			memcpy(s->addr, &n->addr.addr4, 4);
		else if (n->family == AF_INET6)
			memcpy(s->addr, &n->addr.addr6, 16);
		else
			continue;
		s->family = n->family;
		s->port = n->udp_port > 0 && n->udp_port <= 65535 ? (unsigned)n->udp_port : 53;
		(*n_out)++;
	}
	ares_free_data(list);
	ares_destroy(ch);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns_servers: cannot read the system's DNS resolvers: %s",
			 ares_strerror(rc));
		return -1;
	}
	if (*n_out == 0) {
		snprintf(err, errlen, "dns_servers: the system has no DNS resolver "
				      "(/etc/resolv.conf): set dns_servers");
		return -1;
	}
	return 0;
}

/* resolver_servers_read - the servers of list, or the system's. */
int resolver_servers_read(const char *list, struct resolver_server *out, char *err,
			   size_t errlen)
{
	size_t n = 0;
	int rc;

	if (list != NULL && list[strspn(list, " \t,")] != '\0')
		rc = resolver_parse_servers(list, out, &n, err, errlen);
	else
		rc = resolver_system_servers(out, &n, err, errlen);
	return rc < 0 ? -1 : (int)n;
}

/* ---- the channel ------------------------------------------------------ */

/* resolver_seed_rand - see the top of the file: c-ares 1.18 may key its query
 * ids from rand(). */
static void resolver_seed_rand(void)
{
	unsigned seed;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (unsigned)ts.tv_nsec ^ (unsigned)ts.tv_sec ^ ((unsigned)getpid() << 16);
	}
	srand(seed);
}


/* resolver_channel_open - see resolver.h. */
int resolver_channel_open(ares_channel *out, const struct resolver_server *servers,
			  size_t nservers, unsigned timeout_ms, ares_sock_state_cb sock_state,
			  void *sock_state_data)
{
	struct ares_addr_port_node nodes[RESOLVER_SERVERS_MAX];
	struct ares_options opts;
	ares_channel ch;
	unsigned try_ms;
	int optmask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_NDOTS |
		      ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS | ARES_OPT_SERVERS | ARES_OPT_SORTLIST |
		      ARES_OPT_NOROTATE;
	size_t i;
	int rc;

	/* All of it, so that c-ares has nothing to read from a file: servers
	 * (set below), search domains, ndots, lookups, sortlist, rotation. */
	memset(&opts, 0, sizeof(opts));
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	/* c-ares 1.18 doubles the wait each round: tries 2 take 3 waits per server */
	try_ms = timeout_ms / (3 * (unsigned)(nservers > 0 ? nservers : 1));
	opts.timeout = (int)(try_ms < RESOLVER_TRY_MIN_MS ? RESOLVER_TRY_MIN_MS : try_ms);
	opts.tries = RESOLVER_TRIES;
	opts.ndots = 1;
	opts.lookups = (char *)"b";
	if (sock_state != NULL) {
		opts.sock_state_cb = sock_state;
		opts.sock_state_cb_data = sock_state_data;
		optmask |= ARES_OPT_SOCK_STATE_CB;
	}
	resolver_seed_rand();
	if ((rc = ares_init_options(&ch, &opts, optmask)) != ARES_SUCCESS)
		return rc;
	memset(nodes, 0, sizeof(nodes));
	for (i = 0; i < nservers && i < RESOLVER_SERVERS_MAX; i++) {
		nodes[i].next = i + 1 < nservers ? &nodes[i + 1] : NULL;
		nodes[i].family = servers[i].family;
		if (servers[i].family == AF_INET)
			memcpy(&nodes[i].addr.addr4, servers[i].addr, 4);
		else
			memcpy(&nodes[i].addr.addr6, servers[i].addr, 16);
		nodes[i].udp_port = (int)servers[i].port;
		nodes[i].tcp_port = (int)servers[i].port;
	}
	if ((rc = ares_set_servers_ports(ch, nodes)) != ARES_SUCCESS) {
		ares_destroy(ch);
		return rc;
	}
	*out = ch;
	return ARES_SUCCESS;
}
