/*
 * config_values.c - the syntax of configuration values, apart from any key:
 * numbers, sizes and durations, domain names, absolute paths, listener
 * addresses, delivery targets and the words of the listed keys. Each says
 * whether its text is well formed; the key parsers report what is not.
 * Also the retry backoff the [delivery] durations give.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "config_internal.h"
#include "netaddr.h"

/* read_number - an unsigned decimal prefix of s, overflow checked. */
static int read_number(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*end = s;
	*out = v;
	return 0;
}

/* config_plain_number - the whole of s as an unsigned decimal number. */
int config_plain_number(const char *s, uint64_t *out)
{
	const char *end;

	if (read_number(s, &end, out) < 0 || *end != '\0')
		return -1;
	return 0;
}

/* config_parse_size - a byte count with an optional k, M, G or T suffix. */
int config_parse_size(const char *text, uint64_t *bytes)
{
	const char *end;
	uint64_t v;
	unsigned shift;

	if (read_number(text, &end, &v) < 0)
		return -1;
	switch (*end) {
	case '\0':
		shift = 0;
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		return -1;
	}
	if (shift != 0 && end[1] != '\0')
		return -1;
	if (v > (UINT64_MAX >> shift))
		return -1;
	*bytes = v << shift;
	return 0;
}

/* config_parse_duration - a time with an optional ms, s, m or h unit. */
int config_parse_duration(const char *text, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
	    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	const char *end;
	uint64_t v;
	size_t i;

	if (read_number(text, &end, &v) < 0)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].unit) != 0)
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -1;
		*ms = v * units[i].ms;
		return 0;
	}
	return -1;
}

/* config_backoff - retry_min doubled at each attempt after the first, capped at retry_max. */
uint64_t config_backoff(unsigned retry_min, unsigned retry_max, unsigned n)
{
	uint64_t wait = retry_min;

	while (n-- > 1 && wait < retry_max)
		wait *= 2;
	return wait < retry_max ? wait : retry_max;
}

/* config_valid_domain - whether name is a domain: dot-separated LDH labels. */
bool config_valid_domain(const char *name)
{
	size_t len = strlen(name), label = 0, i;

	if (len == 0 || len > 253)
		return false;
	for (i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || name[i - 1] == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '-') {
			if (label == 0 && c == '-')
				return false;
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* config_absolute_path - path made absolute against the working directory, tidied. */
char *config_absolute_path(const char *path)
{
	char *cwd = NULL, *joined, *out, *tok, *save = NULL;
	size_t len = 1;

	if (path[0] != '/') {
		cwd = getcwd(NULL, 0);
		if (cwd == NULL)
			return NULL;
	}
	if (asprintf(&joined, "%s/%s", cwd ? cwd : "", path) < 0) {
		free(cwd);
		errno = ENOMEM;
		return NULL;
	}
	free(cwd);
	out = malloc(strlen(joined) + 2);
	if (out == NULL) {
		free(joined);
		return NULL;
	}
	out[0] = '/';
	out[1] = '\0';
	for (tok = strtok_r(joined, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		size_t n = strlen(tok);

		if (strcmp(tok, ".") == 0)
			continue;
		if (len > 1)
			out[len++] = '/';
		memcpy(out + len, tok, n + 1);
		len += n;
	}
	free(joined);
	return out;
}

/* config_check_address - validate "1.2.3.4:25" or "[::1]:25"; NULL or why not. */
const char *config_check_address(const char *text, struct address_key *key)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port, *close;
	size_t hostlen;
	uint64_t v;

	memset(key, 0, sizeof(*key));
	if (text[0] == '[') {
		close = strchr(text, ']');
		if (close == NULL)
			return "has no closing ']'";
		if (close[1] != ':')
			return "is not [IPv6 address]:port";
		hostlen = (size_t)(close - text - 1);
		if (hostlen >= sizeof(host))
			return "is not [IPv6 address]:port";
		memcpy(host, text + 1, hostlen);
		host[hostlen] = '\0';
		key->family = AF_INET6;
		port = close + 2;
	} else {
		port = strrchr(text, ':');
		if (port == NULL)
			return "is not host:port (such as 127.0.0.1:25 or [::1]:25)";
		hostlen = (size_t)(port - text);
		if (memchr(text, ':', hostlen) != NULL)
			return "is not host:port: an IPv6 address goes in brackets, as in [::1]:25";
		if (hostlen >= sizeof(host))
			return "is not IPv4-address:port";
		memcpy(host, text, hostlen);
		host[hostlen] = '\0';
		key->family = AF_INET;
		port++;
	}
	if (inet_pton(key->family, host, key->addr) != 1)
		return key->family == AF_INET6 ? "does not hold an IPv6 address"
		                               : "does not start with an IPv4 address (a host name "
		                                 "is not accepted)";
	if (config_plain_number(port, &v) < 0 || v < 1 || v > 65535)
		return "does not end in a port from 1 to 65535";
	key->port = (unsigned)v;
	return NULL;
}

/*
 * config_target_split - "unix:/path", "host", "host:port", "[host]:port" or
 * "[v6addr]:port" into its parts: *path for a unix socket (the rest empty),
 * else host (brackets removed) and *port (0 when not given). *bracketed
 * tells that the host was in brackets (no MX lookup). 0, or -1 when the
 * text is no such target.
 */
int config_target_split(const char *text, char *host, size_t hostlen, unsigned *port,
                        const char **path, int *bracketed)
{
	const char *colon, *end;
	size_t len;
	uint64_t v;

	*path = NULL;
	*port = 0;
	*bracketed = 0;
	host[0] = '\0';
	if (strncmp(text, "unix:", 5) == 0) {
		if (text[5] != '/' || strlen(text + 5) >= 108)
			return -1;
		*path = text + 5;
		return 0;
	}
	if (text[0] == '[') {
		if ((end = strchr(text, ']')) == NULL)
			return -1;
		*bracketed = 1;
		len = (size_t)(end - text - 1);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
		text++;
	} else {
		colon = strrchr(text, ':');
		len = colon ? (size_t)(colon - text) : strlen(text);
	}
	if (len == 0 || len >= hostlen)
		return -1;
	memcpy(host, text, len);
	host[len] = '\0';
	if (colon != NULL) {
		if (read_number(colon + 1, &end, &v) < 0 || *end != '\0' || v == 0 || v > 65535)
			return -1;
		*port = (unsigned)v;
	}
	if (strchr(host, ':') != NULL && !*bracketed)
		return -1; /* an IPv6 address needs brackets */
	if (!*bracketed || strchr(host, ':') == NULL) {
		struct in_addr a4;

		if (!config_valid_domain(host) && inet_pton(AF_INET, host, &a4) != 1)
			return -1;
	} else {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, host, &a6) != 1)
			return -1;
	}
	return 0;
}

/* config_check_domain_word - a word of local_domains. */
const char *config_check_domain_word(const char *word)
{
	return config_valid_domain(word) ? NULL : "is not a valid domain name";
}

/* config_check_network_word - a word of trusted_networks: parsed as the rules
 * will parse it, so a mistake is reported here, with its line. */
const char *config_check_network_word(const char *word)
{
	struct netaddr_net net;

	switch (netaddr_net_parse(word, &net)) {
	case NETADDR_OK:
		return NULL;
	case NETADDR_HOST_BITS:
		return "has bits set past its prefix (10.0.0.0/8, not 10.0.0.1/8)";
	default:
		return "is not an IP network (address/prefix, as in 192.168.0.0/16)";
	}
}

/* config_check_mechanism_word - a word of [auth] mechanisms: a SASL name (RFC 4422 3.1). */
const char *config_check_mechanism_word(const char *word)
{
	size_t n = strspn(word, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

	if (n == 0 || n > 20 || word[n] != '\0')
		return "is not a SASL mechanism name (1 to 20 of A-Z, 0-9, - and _)";
	if (strcasecmp(word, "ANONYMOUS") == 0 || strcasecmp(word, "EXTERNAL") == 0)
		return "is not offered by vsmtpd: AUTH is for users with a password";
	return NULL;
}
