/*
 * rules_dns.c - the `dns` table of the Lua rules: synchronous lookups
 * through c-ares, bounded in time.
 *
 * The configuration is read once, by rules_dns_open() in the master: the
 * server list (given, or taken from the system's resolver configuration
 * through a throw-away c-ares channel) and the timeout. Session processes
 * are forked from the master and confined with Landlock, so they can open
 * no file: the channel that does the lookups is created lazily, in the
 * process that makes the first one, with every option c-ares would
 * otherwise look up in a file given explicitly. A channel is never shared
 * across fork() (its query id generator and sockets belong to one process):
 * the owner's pid is kept, and a process that inherited a channel drops it
 * and makes its own.
 *
 * The channel itself comes from resolver_channel_open() (resolver.c),
 * which also seeds the query ids c-ares draws in a confined process.
 *
 * With a zone file (rules_dns_zone(), for vsmtpctl's offline runs) no
 * channel is made: each query gets the message rules_zone.c builds from
 * the zone, at once, and goes through the same parsers.
 *
 * What the servers answer is kept for its TTL in a cache of the process
 * (rules_dns_cache.c), which answers the same question again without a
 * query: dns.lookup and rules_dns_query() share it.
 *
 * A call sends its queries (two for A and AAAA) and then polls the
 * channel's sockets until every answer is in or its deadline passes, when
 * the queries still open are cancelled. No Lua error can be raised while
 * c-ares holds a query: arguments are checked before, results are turned
 * into Lua values after, in a protected call so that the buffers and c-ares
 * structures are freed whatever happens.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <lauxlib.h>
#include <lua.h>

#include "rule_objects.h"
#include "resolver.h"
#include "rules_dns.h"
#include "rules_dns_cache.h"
#include "rules_dns_internal.h"
#include "rules_zone.h"

#define RULES_DNS_MT "vsmtpd.dns"
#define RULES_DNS_STATE "vsmtpd.dns.state" /* the registry's reference to the state */
#define RULES_DNS_IP_MT "vsmtpd.ip" /* rule_objects.c's ip() values */
#define RULES_DNS_QUOTE_MAX 64      /* bytes of a bad value quoted in an error */

/* The `dns` table's state: a userdata, upvalue of its functions. */
struct rules_dns {
	unsigned timeout_ms;
	size_t nservers;
	struct resolver_server servers[RESOLVER_SERVERS_MAX];
	ares_channel channel; /* NULL until the first lookup */
	pid_t owner;          /* the process that created channel */
	int library;          /* ares_library_init() to undo */
	struct rules_zone *zone; /* answers from a zone file instead, or NULL */
	struct rules_dns_cache *cache; /* this process's answers kept (rules_dns_cache.c) */
	pid_t cache_owner;             /* the process that made cache */
};

/* ---- checks and names ------------------------------------------------- */

/* dns_drop_inherited - close a channel inherited across fork(): our copy
 * of the parent's. */
static void dns_drop_inherited(struct rules_dns *d)
{
	if (d->channel != NULL && d->owner != getpid()) {
		ares_destroy(d->channel);
		d->channel = NULL;
	}
}

/* dns_channel - this process's channel, created on first use. Returns an
 * ARES_* status. */
static int dns_channel(struct rules_dns *d)
{
	pid_t pid = getpid();
	int rc;

	if (d->channel != NULL && d->owner == pid)
		return ARES_SUCCESS;
	dns_drop_inherited(d);
	rc = resolver_channel_open(&d->channel, d->servers, d->nservers, d->timeout_ms, NULL, NULL);
	if (rc != ARES_SUCCESS) {
		d->channel = NULL;
		return rc;
	}
	d->owner = pid;
	return ARES_SUCCESS;
}

/* ---- asking ----------------------------------------------------------- */

/* dns_now_ms - a monotonic clock in milliseconds. */
static uint64_t dns_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* dns_callback - a query is over: keep its status and its answer. */
static void dns_callback(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;

	(void)timeouts;
	q->done = 1;
	q->status = status;
	if ((status == ARES_ENOTFOUND || status == ARES_ENODATA) && abuf != NULL && alen > 0 &&
	    (q->neg = malloc((size_t)alen)) != NULL) {
		memcpy(q->neg, abuf, (size_t)alen);
		q->neg_len = alen;
	}
	if (status == ARES_SUCCESS) {
		if (abuf == NULL || alen <= 0)
			q->status = ARES_EBADRESP;
		else if ((q->buf = malloc((size_t)alen)) == NULL)
			q->status = ARES_ENOMEM;
		else {
			memcpy(q->buf, abuf, (size_t)alen);
			q->len = alen;
		}
	}
}

/* dns_pending - queries not answered yet. */
static size_t dns_pending(const struct dns_call *c)
{
	size_t i, n = 0;

	for (i = 0; i < c->nq; i++)
		n += !c->q[i].done;
	return n;
}

/* dns_wait - drive the channel until every query is over or the deadline
 * passed; then cancel what is left (its callbacks get ARES_ECANCELLED). */
static void dns_wait(struct rules_dns *d, struct dns_call *c, uint64_t deadline)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd pfd[ARES_GETSOCK_MAXNUM];
	struct timeval maxtv, tv, *tvp;
	uint64_t now, wait_ms;
	nfds_t nfds, i;
	unsigned bits;
	int rc;

	while (dns_pending(c) > 0 && (now = dns_now_ms()) < deadline) {
		maxtv.tv_sec = (time_t)((deadline - now) / 1000);
		maxtv.tv_usec = (suseconds_t)((deadline - now) % 1000 * 1000);
		tvp = ares_timeout(d->channel, &maxtv, &tv);
		wait_ms = (uint64_t)tvp->tv_sec * 1000 + ((uint64_t)tvp->tv_usec + 999) / 1000;
		/* ARES_GETSOCK_WRITABLE() shifts an int by up to 31: test the bits
		 * as unsigned here */
		bits = (unsigned)ares_getsock(d->channel, socks, ARES_GETSOCK_MAXNUM);
		nfds = 0;
		for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short events = (short)((bits & 1u << i ? POLLIN : 0) |
					       (bits & 1u << (i + ARES_GETSOCK_MAXNUM) ? POLLOUT : 0));

			if (events != 0)
				pfd[nfds++] = (struct pollfd){.fd = socks[i], .events = events};
		}
		rc = poll(pfd, nfds, (int)wait_ms);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc <= 0) {
			ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (i = 0; i < nfds; i++) {
			short re = pfd[i].revents;

			if (re != 0)
				ares_process_fd(d->channel,
						re & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
						re & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
		}
	}
	if (dns_pending(c) > 0)
		ares_cancel(d->channel);
	for (i = 0; i < c->nq; i++)
		if (!c->q[i].done) { /* cannot happen after ares_cancel; be safe */
			c->q[i].done = 1;
			c->q[i].status = ARES_ETIMEOUT;
		}
}

/* dns_outcome_of - what a c-ares status means for the rule. */
static enum dns_outcome dns_outcome_of(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_ANSWER;
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		return DNS_EMPTY;
	case ARES_ETIMEOUT:
	case ARES_ECANCELLED:
		return DNS_TIMEOUT;
	case ARES_ENOMEM:
		return DNS_NOMEM;
	default:
		return DNS_FAIL;
	}
}

/* dns_cache - this process's cache, made on first use; NULL when out of
 * memory (then nothing is kept). One inherited across fork() is dropped. */
static struct rules_dns_cache *dns_cache(struct rules_dns *d)
{
	if (d->cache != NULL && d->cache_owner != getpid()) {
		rules_dns_cache_free(d->cache);
		d->cache = NULL;
	}
	if (d->cache == NULL && (d->cache = rules_dns_cache_new()) != NULL)
		d->cache_owner = getpid();
	return d->cache;
}

/* dns_cached - answer q from the cache when it holds name; 1 when it did. */
static int dns_cached(struct rules_dns *d, struct dns_query *q, const char *name)
{
	static const int status[] = {
		[RULES_DNS_ANSWER] = ARES_SUCCESS,
		[RULES_DNS_NXDOMAIN] = ARES_ENOTFOUND,
		[RULES_DNS_NODATA] = ARES_ENODATA,
	};
	enum rules_dns_result res;
	size_t len;

	if (!rules_dns_cache_get(dns_cache(d), name, q->type, dns_now_ms(), &res, &q->buf, &len))
		return 0;
	q->len = (int)len;
	q->status = status[res];
	q->done = 1;
	q->cached = 1;
	return 1;
}

/* dns_keep - put what a server answered to q into the cache. */
static void dns_keep(struct rules_dns *d, const struct dns_query *q, const char *name)
{
	uint64_t now = dns_now_ms();

	if (q->status == ARES_SUCCESS)
		rules_dns_cache_put(d->cache, name, q->type, now, RULES_DNS_ANSWER, q->buf,
				    (size_t)q->len);
	else if (q->neg != NULL)
		rules_dns_cache_put(d->cache, name, q->type, now,
				    q->status == ARES_ENOTFOUND ? RULES_DNS_NXDOMAIN
								: RULES_DNS_NODATA,
				    q->neg, (size_t)q->neg_len);
}

/* dns_ask_zone - the call's queries answered from the zone, as c-ares
 * statuses and answers. */
static void dns_ask_zone(struct rules_dns *d, struct dns_call *c, const char *name)
{
	static const int status[] = {
		[RULES_DNS_ANSWER] = ARES_SUCCESS,    [RULES_DNS_NXDOMAIN] = ARES_ENOTFOUND,
		[RULES_DNS_NODATA] = ARES_ENODATA,    [RULES_DNS_TIMEOUT] = ARES_ETIMEOUT,
		[RULES_DNS_FAIL] = ARES_ESERVFAIL,    [RULES_DNS_NOMEM] = ARES_ENOMEM,
	};
	enum rules_dns_result res;
	size_t i, len;

	for (i = 0; i < c->nq; i++) {
		res = rules_zone_query(d->zone, name, c->q[i].type, &c->q[i].buf, &len);
		c->q[i].len = (int)len;
		c->q[i].status = status[res];
		c->q[i].done = 1;
		c->q[i].outcome = dns_outcome_of(c->q[i].status);
	}
}

/* dns_ask - send the call's queries for name and wait for them. Returns an
 * ARES_* status for a failure to start; the outcomes are in c->q. */
static int dns_ask(struct rules_dns *d, struct dns_call *c, const char *name)
{
	uint64_t deadline;
	size_t i;
	int rc;

	if (d->zone != NULL) {
		dns_ask_zone(d, c, name);
		return ARES_SUCCESS;
	}
	if ((rc = dns_channel(d)) != ARES_SUCCESS)
		return rc;
	deadline = dns_now_ms() + d->timeout_ms;
	for (i = 0; i < c->nq; i++)
		if (!dns_cached(d, &c->q[i], name))
			ares_query(d->channel, name, ns_c_in, c->q[i].type, dns_callback, &c->q[i]);
	dns_wait(d, c, deadline);
	for (i = 0; i < c->nq; i++) {
		if (!c->q[i].cached)
			dns_keep(d, &c->q[i], name);
		c->q[i].outcome = dns_outcome_of(c->q[i].status);
	}
	return ARES_SUCCESS;
}

/* dns_call_free - see rules_dns_internal.h. */
void dns_call_free(struct dns_call *c)
{
	size_t i;

	for (i = 0; i < c->nq; i++) {
		free(c->q[i].buf);
		free(c->q[i].neg);
		c->q[i].buf = c->q[i].neg = NULL;
	}
	if (c->host != NULL)
		ares_free_hostent(c->host);
	if (c->mx != NULL)
		ares_free_data(c->mx);
	if (c->txt != NULL)
		ares_free_data(c->txt);
	c->host = NULL;
	c->mx = NULL;
	c->txt = NULL;
}

/* dns_run - ask for name with the call's queries and push the results. */
static int dns_run(lua_State *L, struct rules_dns *d, struct dns_call *c, const char *name)
{
	int rc;

	luaL_checkstack(L, 8, "dns");
	if ((rc = dns_ask(d, c, name)) != ARES_SUCCESS) {
		dns_call_free(c);
		return luaL_error(L, "dns: cannot start the resolver: %s", ares_strerror(rc));
	}
	return dns_finish(L, c);
}

/* dns_raise_bad - raise "fn: what "value"" with the value quoted safely. */
static int dns_raise_bad(lua_State *L, const char *fn, const char *what, const char *s, size_t len)
{
	size_t i, n = len > RULES_DNS_QUOTE_MAX ? RULES_DNS_QUOTE_MAX : len;
	char esc[8];
	luaL_Buffer b;

	luaL_where(L, 1);
	luaL_buffinit(L, &b);
	luaL_addstring(&b, fn);
	luaL_addstring(&b, ": ");
	luaL_addstring(&b, what);
	luaL_addstring(&b, " \"");
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			luaL_addchar(&b, '\\');
			luaL_addchar(&b, (char)ch);
		} else if (ch < 0x20 || ch >= 0x7f) {
			snprintf(esc, sizeof(esc), "\\%03u", ch);
			luaL_addstring(&b, esc);
		} else {
			luaL_addchar(&b, (char)ch);
		}
	}
	luaL_addchar(&b, '"');
	if (n < len)
		luaL_addstring(&b, "...");
	luaL_pushresult(&b);
	lua_concat(L, 2);
	return lua_error(L);
}

/* lua_dns_lookup - dns.lookup(name [, type]). */
static int lua_dns_lookup(lua_State *L)
{
	static const struct {
		const char *name;
		int type;
	} types[] = {{"A", ns_t_a},     {"AAAA", ns_t_aaaa}, {"MX", ns_t_mx},
		     {"TXT", ns_t_txt}, {"PTR", ns_t_ptr}};
	struct rules_dns *d = lua_touserdata(L, lua_upvalueindex(1));
	struct dns_call c;
	char name[RESOLVER_NAME_MAX + 1];
	size_t len, tlen, n, i;
	const char *s = luaL_checklstring(L, 1, &len);
	const char *type = luaL_optlstring(L, 2, NULL, &tlen);

	memset(&c, 0, sizeof(c));
	if ((n = strlen(s) == len ? resolver_name_check(s, len) : 0) == 0)
		return dns_raise_bad(L, "dns.lookup", "not a domain name:", s, len);
	memcpy(name, s, n);
	name[n] = '\0';
	if (type == NULL) {
		c.q[0].type = ns_t_a;
		c.q[1].type = ns_t_aaaa;
		c.nq = 2;
	} else {
		for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strlen(type) == tlen && strcasecmp(type, types[i].name) == 0)
				break;
		if (i == sizeof(types) / sizeof(types[0]))
			return dns_raise_bad(L, "dns.lookup", "unknown type (A, AAAA, MX, TXT, PTR):",
					     type, tlen);
		c.q[0].type = types[i].type;
		c.nq = 1;
	}
	return dns_run(L, d, &c, name);
}

/* lua_dns_rlookup - dns.rlookup(ip): the PTR names of an address. */
static int lua_dns_rlookup(lua_State *L)
{
	struct rules_dns *d = lua_touserdata(L, lua_upvalueindex(1));
	const struct netaddr_ip *ud = luaL_testudata(L, 1, RULES_DNS_IP_MT);
	char name[RESOLVER_REVERSE_MAX];
	struct netaddr_ip ip;
	struct dns_call c;
	const char *s;
	size_t len;

	if (ud != NULL) {
		ip = *ud;
	} else {
		s = luaL_checklstring(L, 1, &len);
		if (strlen(s) != len || len >= NETADDR_IP_INPUT_MAX || netaddr_ip_parse(s, &ip) < 0)
			return dns_raise_bad(L, "dns.rlookup", "not an IP address:", s, len);
	}
	if (resolver_reverse_ip(&ip, name, sizeof(name)) < 0)
		return luaL_error(L, "dns.rlookup: not an IP address");
	memset(&c, 0, sizeof(c));
	c.q[0].type = ns_t_ptr;
	c.nq = 1;
	return dns_run(L, d, &c, name);
}

/* lua_dns_gc - the ruleset is closed: close this process's channel. */
static int lua_dns_gc(lua_State *L)
{
	struct rules_dns *d = luaL_checkudata(L, 1, RULES_DNS_MT);

	if (d->channel != NULL)
		ares_destroy(d->channel);
	d->channel = NULL;
	if (d->library)
		ares_library_cleanup();
	d->library = 0;
	rules_zone_free(d->zone);
	d->zone = NULL;
	rules_dns_cache_free(d->cache);
	d->cache = NULL;
	return 0;
}

/* rules_dns_query - see rules_dns.h. */
enum rules_dns_result rules_dns_query(lua_State *L, const char *name, int type,
				      unsigned timeout_ms, unsigned char **answer, size_t *len)
{
	struct dns_call c = {.nq = 1};
	struct rules_dns *d;
	enum rules_dns_result result;

	*answer = NULL;
	*len = 0;
	lua_getfield(L, LUA_REGISTRYINDEX, RULES_DNS_STATE);
	d = luaL_testudata(L, -1, RULES_DNS_MT);
	lua_pop(L, 1);
	if (d != NULL && d->zone != NULL)
		return rules_zone_query(d->zone, name, type, answer, len);
	if (d == NULL || dns_channel(d) != ARES_SUCCESS)
		return RULES_DNS_FAIL;
	c.q[0].type = type;
	if (!dns_cached(d, &c.q[0], name)) {
		ares_query(d->channel, name, ns_c_in, type, dns_callback, &c.q[0]);
		dns_wait(d, &c, dns_now_ms() + (timeout_ms > 0 && timeout_ms < d->timeout_ms
							? timeout_ms
							: d->timeout_ms));
		dns_keep(d, &c.q[0], name);
	}
	free(c.q[0].neg);
	switch (c.q[0].status) {
	case ARES_SUCCESS:
		*answer = c.q[0].buf;
		*len = (size_t)c.q[0].len;
		return RULES_DNS_ANSWER;
	case ARES_ENOTFOUND:
		result = RULES_DNS_NXDOMAIN;
		break;
	case ARES_ENODATA:
		result = RULES_DNS_NODATA;
		break;
	case ARES_ETIMEOUT:
	case ARES_ECANCELLED:
		result = RULES_DNS_TIMEOUT;
		break;
	case ARES_ENOMEM:
		result = RULES_DNS_NOMEM;
		break;
	default:
		result = RULES_DNS_FAIL;
		break;
	}
	free(c.q[0].buf);
	return result;
}

/* rules_dns_forked - see rules_dns.h. */
void rules_dns_forked(lua_State *L)
{
	struct rules_dns *d;

	lua_getfield(L, LUA_REGISTRYINDEX, RULES_DNS_STATE);
	if ((d = luaL_testudata(L, -1, RULES_DNS_MT)) != NULL)
		dns_drop_inherited(d);
	lua_pop(L, 1);
}

/* rules_dns_zone - read the zone file, answer from it. */
int rules_dns_zone(lua_State *L, const char *path, char *err, size_t errlen)
{
	struct rules_zone *z;
	struct rules_dns *d;

	lua_getfield(L, LUA_REGISTRYINDEX, RULES_DNS_STATE);
	d = luaL_testudata(L, -1, RULES_DNS_MT);
	lua_pop(L, 1);
	if (d == NULL) {
		snprintf(err, errlen, "dns: no resolver to give the zone %s", path);
		return -1;
	}
	if ((z = rules_zone_load(path, err, errlen)) == NULL)
		return -1;
	rules_zone_free(d->zone);
	d->zone = z;
	return 0;
}

/* rules_dns_open - read the resolver settings, register `dns`. */
int rules_dns_open(lua_State *L, const char *servers, unsigned timeout_ms, char *err,
		   size_t errlen)
{
	struct rules_dns cfg, *d;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.timeout_ms = timeout_ms > 0 ? timeout_ms : RULES_DNS_TIMEOUT_DEFAULT;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: cannot initialize c-ares: %s", ares_strerror(rc));
		return -1;
	}
	rc = resolver_servers_read(servers, cfg.servers, err, errlen);
	if (rc < 0) {
		ares_library_cleanup();
		return -1;
	}
	cfg.nservers = (size_t)rc;
	cfg.library = 1;
	d = lua_newuserdatauv(L, sizeof(*d), 0);
	*d = cfg;
	if (luaL_newmetatable(L, RULES_DNS_MT)) {
		lua_pushcfunction(L, lua_dns_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushliteral(L, "dns");
		lua_setfield(L, -2, "__metatable");
	}
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, RULES_DNS_STATE);
	lua_createtable(L, 0, 2);
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, lua_dns_lookup, 1);
	lua_setfield(L, -2, "lookup");
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, lua_dns_rlookup, 1);
	lua_setfield(L, -2, "rlookup");
	lua_setglobal(L, "dns");
	lua_pop(L, 1);
	return 0;
}
