/*
 * rule_objects.c - the objects policy rules work with: IP addresses,
 * networks and network sets, mail addresses, domain names, POSIX regular
 * expressions and lists read from files, as Lua 5.4 values.
 *
 * One luaL_Reg table of metamethods and one of methods per class, one C
 * function per method (lua_<class>_<method>). Every parser reports a bad
 * value by pushing a message that quotes it and returning -1, so that the
 * constructors raise it at the rules file's position and the list loaders
 * at the list file's line.
 *
 * What a rule calls per connection only looks things up: network sets are
 * sorted arrays searched in O(log n), lists are Lua tables keyed by the
 * normalized entry. The arrays are allocated with the state's allocator so
 * that the rule engine's memory budget sees them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <lauxlib.h>
#include <lua.h>

#include "utf8.h"
#include "rule_objects.h"
#include "smtp_parse.h"

#define META_IP "vsmtpd.ip"
#define META_NET "vsmtpd.net"
#define META_NETSET "vsmtpd.netset"
#define META_ADDRESS "vsmtpd.address"
#define META_REGEX "vsmtpd.regex"
#define META_DOMAINLIST "vsmtpd.domainlist"
#define META_ADDRESSLIST "vsmtpd.addresslist"
#define META_STRINGLIST "vsmtpd.stringlist"
#define META_LISTFILE "vsmtpd.listfile"

/* Bytes of a bad value quoted back in an error message. */
#define RULE_QUOTE_MAX 200

/* RFC 1035 2.3.4: 255 octets in wire format, so 253 as dotted text. */
#define RULE_DOMAIN_MAX 253
#define RULE_LABEL_MAX 63

/* Networks tostring(netset) shows before "...". */
#define RULE_NETSET_SHOW 8


/* A network: an address whose bits past prefix are zero. */

/*
 * One network of a set. Addresses compare as byte strings in network order;
 * IPv4 ones are zero-padded so that a 16-byte comparison also works.
 */
struct rule_netset_entry {
	unsigned char v6;
	unsigned char prefix;
	unsigned char addr[16];
};

/*
 * A set of networks, sorted by (family, address, prefix) with every network
 * that lies inside another one dropped: what remains is disjoint, so the one
 * network that can contain an address is the last one starting at or before
 * it.
 */
struct rule_netset {
	size_t given; /* distinct networks given, for # */
	size_t n4;    /* e[0..n4) are IPv4, e[n4..n) IPv6 */
	size_t n;
	size_t cap;
	struct rule_netset_entry *e; /* from the state's allocator */
};

/* A list read from a file; its entries are the keys of its user value. */
struct rule_list {
	size_t count;
};

/* A list file being read: closed on error by __close, or by __gc. */
struct rule_file {
	FILE *f;
};

/* A compiled regular expression; its user value is the pattern. */
struct rule_regex {
	regex_t re;
	int compiled;
};

struct rule_list_load;

/* Adds one trimmed, NUL-terminated entry; -1 with a message pushed when bad. */
typedef int (*rule_list_add_fn)(lua_State *L, struct rule_list_load *ld, const char *s, size_t len);

/* What a list loader fills. */
struct rule_list_load {
	const char *fname; /* the Lua function, for the error message */
	rule_list_add_fn add;
	struct rule_netset *set; /* ip_list */
	struct rule_list *list;  /* the other lists */
	int table;               /* stack index of the list's table */
};

/* rule_lower - ASCII lower case, independent of the locale. */
static unsigned char rule_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* rule_is_alnum - ASCII letter or digit. */
static int rule_is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* rule_push_lower - push s with ASCII letters lowercased. */
static void rule_push_lower(lua_State *L, const char *s, size_t len)
{
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, len);
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (char)rule_lower((unsigned char)s[i]);
	luaL_pushresultsize(&b, len);
}

/*
 * rule_push_quoted - push s in double quotes, with quotes, backslashes and
 * control bytes escaped and cut after RULE_QUOTE_MAX bytes: the bad value is
 * anything at all, and the message ends up in a log.
 */
static void rule_push_quoted(lua_State *L, const char *s, size_t len)
{
	size_t i, n = len > RULE_QUOTE_MAX ? RULE_QUOTE_MAX : len;
	char esc[8];
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	luaL_addchar(&b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			luaL_addchar(&b, '\\');
			luaL_addchar(&b, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\%03u", c);
			luaL_addstring(&b, esc);
		} else {
			luaL_addchar(&b, (char)c);
		}
	}
	luaL_addchar(&b, '"');
	if (n < len)
		luaL_addstring(&b, "...");
	luaL_pushresult(&b);
}

/* rule_push_bad - push the message what followed by the quoted value. */
static void rule_push_bad(lua_State *L, const char *what, const char *s, size_t len)
{
	lua_pushstring(L, what);
	rule_push_quoted(L, s, len);
	lua_concat(L, 2);
}

/*
 * rule_raise_top - raise the message on top of the stack, prefixed like
 * luaL_error with the position in the rules file that called us.
 */
static int rule_raise_top(lua_State *L)
{
	luaL_where(L, 1);
	lua_insert(L, -2);
	lua_concat(L, 2);
	return lua_error(L);
}

/* rule_ip_parse - a Lua string as an address: no NUL inside, bounded. */
static int rule_ip_parse(const char *s, size_t len, struct netaddr_ip *out)
{
	if (len >= NETADDR_IP_INPUT_MAX || strlen(s) != len)
		return -1;
	return netaddr_ip_parse(s, out);
}

/* rule_ip_push - push ip as a "vsmtpd.ip" userdata. */
void rule_ip_push(lua_State *L, const struct netaddr_ip *ip)
{
	struct netaddr_ip *u = lua_newuserdatauv(L, sizeof(*u), 0);

	*u = *ip;
	luaL_setmetatable(L, META_IP);
}

/* rule_net_parse - a Lua string as a network; -1 with a message pushed. */
static int rule_net_parse(lua_State *L, const char *s, size_t len, struct netaddr_net *out)
{
	int r = NETADDR_INVALID;

	if (strlen(s) == len && len < 2 * NETADDR_IP_INPUT_MAX)
		r = netaddr_net_parse(s, out);
	if (r == NETADDR_OK)
		return 0;
	rule_push_bad(
	    L, r == NETADDR_HOST_BITS ? "host bits set in network " : "not an IP network: ", s,
	    len);
	return -1;
}

/*
 * rule_contains_arg - argument idx of a contains() method as an unmapped
 * network: an ip, a net, or a string holding an IP address. Returns 0 for
 * a string that is no address (the engine's "unknown" client), raises for
 * other types. out is cleared first, so that it is set on every path the
 * compiler sees: luaL_typeerror never returns, but is not declared so.
 */
static int rule_contains_arg(lua_State *L, int idx, struct netaddr_net *out)
{
	const struct netaddr_ip *ip;
	const struct netaddr_net *net;
	struct netaddr_ip parsed;
	const char *s;
	size_t len;

	memset(out, 0, sizeof(*out));
	if ((ip = luaL_testudata(L, idx, META_IP)) != NULL) {
		netaddr_net_of_ip(ip, out);
	} else if ((net = luaL_testudata(L, idx, META_NET)) != NULL) {
		*out = *net;
	} else if (lua_type(L, idx) == LUA_TSTRING) {
		s = lua_tolstring(L, idx, &len);
		if (rule_ip_parse(s, len, &parsed) < 0)
			return 0;
		netaddr_net_of_ip(&parsed, out);
	} else {
		return luaL_typeerror(L, idx, "ip, net or address string");
	}
	netaddr_net_unmap(out);
	return 1;
}

/* rule_ip_construct - ip(s), ip4(s), ip6(s): family AF_UNSPEC takes either. */
static int rule_ip_construct(lua_State *L, int family, const char *what)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	struct netaddr_ip ip;

	if (rule_ip_parse(s, len, &ip) < 0 || (family != AF_UNSPEC && ip.family != family)) {
		rule_push_bad(L, what, s, len);
		return rule_raise_top(L);
	}
	rule_ip_push(L, &ip);
	return 1;
}

/* lua_ip_new - ip(s): an IPv4 or IPv6 address. */
static int lua_ip_new(lua_State *L)
{
	return rule_ip_construct(L, AF_UNSPEC, "not an IP address: ");
}

/* lua_ip4_new - ip4(s): an IPv4 address. */
static int lua_ip4_new(lua_State *L)
{
	return rule_ip_construct(L, AF_INET, "not an IPv4 address: ");
}

/* lua_ip6_new - ip6(s): an IPv6 address. */
static int lua_ip6_new(lua_State *L)
{
	return rule_ip_construct(L, AF_INET6, "not an IPv6 address: ");
}

/* lua_ip_is_v4 - a:is_v4(). */
static int lua_ip_is_v4(lua_State *L)
{
	const struct netaddr_ip *ip = luaL_checkudata(L, 1, META_IP);

	lua_pushboolean(L, ip->family == AF_INET);
	return 1;
}

/* lua_ip_is_v6 - a:is_v6(). */
static int lua_ip_is_v6(lua_State *L)
{
	const struct netaddr_ip *ip = luaL_checkudata(L, 1, META_IP);

	lua_pushboolean(L, ip->family == AF_INET6);
	return 1;
}

/* lua_ip_tostring - tostring(a): the canonical text. */
static int lua_ip_tostring(lua_State *L)
{
	const struct netaddr_ip *ip = luaL_checkudata(L, 1, META_IP);
	char buf[NETADDR_IP_TEXT_MAX];

	lua_pushstring(L, netaddr_ip_format(ip, buf, sizeof(buf)) ? buf : "?");
	return 1;
}

/* lua_ip_eq - a == b: Lua calls it for any two userdata, so either may be no ip. */
static int lua_ip_eq(lua_State *L)
{
	const struct netaddr_ip *a = luaL_testudata(L, 1, META_IP);
	const struct netaddr_ip *b = luaL_testudata(L, 2, META_IP);

	lua_pushboolean(L, a && b && a->family == b->family &&
	                       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0);
	return 1;
}

static const luaL_Reg rule_ip_meta[] = {
    {"__tostring", lua_ip_tostring},
    {"__eq", lua_ip_eq},
    {NULL, NULL},
};

static const luaL_Reg rule_ip_methods[] = {
    {"is_v4", lua_ip_is_v4},
    {"is_v6", lua_ip_is_v6},
    {NULL, NULL},
};

/* lua_net_new - net(s): a network in CIDR notation or a single address. */
static int lua_net_new(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	struct netaddr_net parsed, *n;

	if (rule_net_parse(L, s, len, &parsed) < 0)
		return rule_raise_top(L);
	n = lua_newuserdatauv(L, sizeof(*n), 0);
	*n = parsed;
	luaL_setmetatable(L, META_NET);
	return 1;
}

/* lua_net_contains - n:contains(ip, net or address string). */
static int lua_net_contains(lua_State *L)
{
	struct netaddr_net self = *(struct netaddr_net *)luaL_checkudata(L, 1, META_NET);
	struct netaddr_net x;

	if (!rule_contains_arg(L, 2, &x)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	netaddr_net_unmap(&self);
	lua_pushboolean(L, netaddr_net_covers(&self, &x));
	return 1;
}

/* lua_net_tostring - tostring(n): "address/prefix". */
static int lua_net_tostring(lua_State *L)
{
	const struct netaddr_net *n = luaL_checkudata(L, 1, META_NET);
	char buf[NETADDR_IP_TEXT_MAX + 8];

	netaddr_net_format(n, buf, sizeof(buf));
	lua_pushstring(L, buf);
	return 1;
}

/* lua_net_eq - n == m: same family, address and prefix. */
static int lua_net_eq(lua_State *L)
{
	const struct netaddr_net *a = luaL_testudata(L, 1, META_NET);
	const struct netaddr_net *b = luaL_testudata(L, 2, META_NET);

	lua_pushboolean(L, a && b && a->ip.family == b->ip.family && a->prefix == b->prefix &&
	                       memcmp(a->ip.addr, b->ip.addr, sizeof(a->ip.addr)) == 0);
	return 1;
}

static const luaL_Reg rule_net_meta[] = {
    {"__tostring", lua_net_tostring},
    {"__eq", lua_net_eq},
    {NULL, NULL},
};

static const luaL_Reg rule_net_methods[] = {
    {"contains", lua_net_contains},
    {NULL, NULL},
};

/* rule_netset_push - push a new, empty "vsmtpd.netset". */
static struct rule_netset *rule_netset_push(lua_State *L)
{
	struct rule_netset *set = lua_newuserdatauv(L, sizeof(*set), 0);

	memset(set, 0, sizeof(*set));
	luaL_setmetatable(L, META_NETSET);
	return set;
}

/* rule_netset_resize - set the capacity of set's array to cap entries. */
static void rule_netset_resize(lua_State *L, struct rule_netset *set, size_t cap)
{
	void *ud;
	lua_Alloc alloc = lua_getallocf(L, &ud);
	size_t esize = sizeof(struct rule_netset_entry);
	void *p;

	if (cap > SIZE_MAX / esize)
		luaL_error(L, "not enough memory");
	p = alloc(ud, set->e, set->cap * esize, cap * esize);
	if (p == NULL && cap > 0)
		luaL_error(L, "not enough memory");
	set->e = p;
	set->cap = cap;
}

/* rule_netset_add - append network n (unmapped here) to a set being built. */
static void rule_netset_add(lua_State *L, struct rule_netset *set, const struct netaddr_net *n)
{
	struct netaddr_net u = *n;
	struct rule_netset_entry *e;

	if (set->n == set->cap)
		rule_netset_resize(L, set, set->cap ? set->cap * 2 : 16);
	netaddr_net_unmap(&u);
	e = &set->e[set->n++];
	e->v6 = u.ip.family == AF_INET6;
	e->prefix = (unsigned char)u.prefix;
	memcpy(e->addr, u.ip.addr, sizeof(e->addr));
}

/* rule_entry_net - an entry of a set as a network. */
static void rule_entry_net(const struct rule_netset_entry *e, struct netaddr_net *out)
{
	out->ip.family = e->v6 ? AF_INET6 : AF_INET;
	memcpy(out->ip.addr, e->addr, sizeof(out->ip.addr));
	out->prefix = e->prefix;
}

/* rule_entry_cmp - qsort order: IPv4 first, then by address, shorter prefix first. */
static int rule_entry_cmp(const void *pa, const void *pb)
{
	const struct rule_netset_entry *a = pa, *b = pb;
	int c;

	if (a->v6 != b->v6)
		return (int)a->v6 - (int)b->v6;
	c = memcmp(a->addr, b->addr, sizeof(a->addr));
	if (c != 0)
		return c;
	return (int)a->prefix - (int)b->prefix;
}

/* rule_entry_covers - entry outer contains entry inner. */
static int rule_entry_covers(const struct rule_netset_entry *outer,
                             const struct rule_netset_entry *inner)
{
	return outer->v6 == inner->v6 && inner->prefix >= outer->prefix &&
	       netaddr_bits_equal(outer->addr, inner->addr, outer->prefix);
}

/*
 * rule_netset_finish - sort a built set and drop the networks inside
 * others. Two CIDR blocks are either disjoint or nested, and in sorted order
 * a nested block comes after its container and before anything past it, so
 * comparing with the last block kept is enough.
 */
static void rule_netset_finish(lua_State *L, struct rule_netset *set)
{
	struct rule_netset_entry prev;
	size_t i, kept = 0, distinct = 0;

	if (set->n > 1)
		qsort(set->e, set->n, sizeof(set->e[0]), rule_entry_cmp);
	for (i = 0; i < set->n; i++) {
		struct rule_netset_entry cur = set->e[i];

		if (i == 0 || rule_entry_cmp(&cur, &prev) != 0)
			distinct++;
		prev = cur;
		if (kept > 0 && rule_entry_covers(&set->e[kept - 1], &cur))
			continue;
		set->e[kept++] = cur;
	}
	set->n = kept;
	set->given = distinct;
	for (set->n4 = 0; set->n4 < set->n && !set->e[set->n4].v6; set->n4++)
		;
	rule_netset_resize(L, set, set->n);
}

/* rule_netset_find - some network of set contains x (unmapped). */
static int rule_netset_find(const struct rule_netset *set, const struct netaddr_net *x)
{
	int v6 = x->ip.family == AF_INET6;
	size_t first = v6 ? set->n4 : 0, lo = first, hi = v6 ? set->n : set->n4;
	size_t len = netaddr_ip_len(x->ip.family);
	const struct rule_netset_entry *e;

	/* lo ends at the first entry whose address is above x's. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(set->e[mid].addr, x->ip.addr, len) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == first)
		return 0;
	e = &set->e[lo - 1];
	return x->prefix >= e->prefix && netaddr_bits_equal(e->addr, x->ip.addr, e->prefix);
}

/*
 * rule_netset_add_value - add the value at idx to a set being built: a
 * network string, a net, an ip or another netset. -1 with a message pushed
 * when it is none of those.
 */
static int rule_netset_add_value(lua_State *L, struct rule_netset *set, int idx)
{
	const struct rule_netset *other;
	const struct netaddr_net *net;
	const struct netaddr_ip *ip;
	struct netaddr_net n;
	const char *s;
	size_t len, i;

	if (lua_type(L, idx) == LUA_TSTRING) {
		s = lua_tolstring(L, idx, &len);
		if (rule_net_parse(L, s, len, &n) < 0)
			return -1;
		rule_netset_add(L, set, &n);
	} else if ((net = luaL_testudata(L, idx, META_NET)) != NULL) {
		rule_netset_add(L, set, net);
	} else if ((ip = luaL_testudata(L, idx, META_IP)) != NULL) {
		netaddr_net_of_ip(ip, &n);
		rule_netset_add(L, set, &n);
	} else if ((other = luaL_testudata(L, idx, META_NETSET)) != NULL) {
		for (i = 0; i < other->n; i++) {
			rule_entry_net(&other->e[i], &n);
			rule_netset_add(L, set, &n);
		}
	} else {
		lua_pushfstring(L, "not an IP network: a %s", luaL_typename(L, idx));
		return -1;
	}
	return 0;
}

/* lua_netset_new - netset({ "10.0.0.0/8", net(...), ip(...), netset, ... }). */
static int lua_netset_new(lua_State *L)
{
	struct rule_netset *set;
	lua_Integer i, n;

	luaL_checktype(L, 1, LUA_TTABLE);
	n = (lua_Integer)lua_rawlen(L, 1);
	set = rule_netset_push(L);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		if (rule_netset_add_value(L, set, -1) < 0) {
			lua_pushfstring(L, "netset entry %I: ", i);
			lua_insert(L, -2);
			lua_concat(L, 2);
			return rule_raise_top(L);
		}
		lua_pop(L, 1);
	}
	rule_netset_finish(L, set);
	return 1;
}

/* lua_netset_contains - s:contains(ip, net or address string). */
static int lua_netset_contains(lua_State *L)
{
	const struct rule_netset *set = luaL_checkudata(L, 1, META_NETSET);
	struct netaddr_net x;

	lua_pushboolean(L, rule_contains_arg(L, 2, &x) && rule_netset_find(set, &x));
	return 1;
}

/* lua_netset_len - #s: the distinct networks given. */
static int lua_netset_len(lua_State *L)
{
	const struct rule_netset *set = luaL_checkudata(L, 1, META_NETSET);

	lua_pushinteger(L, (lua_Integer)set->given);
	return 1;
}

/* lua_netset_tostring - tostring(s): the size and the first networks. */
static int lua_netset_tostring(lua_State *L)
{
	const struct rule_netset *set = luaL_checkudata(L, 1, META_NETSET);
	char text[NETADDR_IP_TEXT_MAX + 8];
	struct netaddr_net n;
	luaL_Buffer b;
	size_t i;

	luaL_buffinit(L, &b);
	lua_pushfstring(L, "netset(%I)", (lua_Integer)set->given);
	luaL_addvalue(&b);
	for (i = 0; i < set->n && i < RULE_NETSET_SHOW; i++) {
		rule_entry_net(&set->e[i], &n);
		netaddr_net_format(&n, text, sizeof(text));
		luaL_addstring(&b, i == 0 ? ": " : ", ");
		luaL_addstring(&b, text);
	}
	if (set->n > RULE_NETSET_SHOW)
		luaL_addstring(&b, ", ...");
	luaL_pushresult(&b);
	return 1;
}

/* lua_netset_gc - free the array; the set is left empty, not dangling. */
static int lua_netset_gc(lua_State *L)
{
	struct rule_netset *set = luaL_checkudata(L, 1, META_NETSET);

	rule_netset_resize(L, set, 0);
	set->n = set->n4 = set->given = 0;
	return 0;
}

static const luaL_Reg rule_netset_meta[] = {
    {"__len", lua_netset_len},
    {"__tostring", lua_netset_tostring},
    {"__gc", lua_netset_gc},
    {NULL, NULL},
};

static const luaL_Reg rule_netset_methods[] = {
    {"contains", lua_netset_contains},
    {NULL, NULL},
};

/*
 * The built-in networks, from the IANA IPv4 and IPv6 Special-Purpose
 * Address Registries (RFC 6890) and the multicast registries.
 */
static const char *const rule_loopback[] = {
    "127.0.0.0/8", /* RFC 1122 3.2.1.3 */
    "::1/128",     /* RFC 4291 2.5.3 */
    NULL,
};

static const char *const rule_private[] = {
    "10.0.0.0/8",     /* RFC 1918 */
    "172.16.0.0/12",  /* RFC 1918 */
    "192.168.0.0/16", /* RFC 1918 */
    "fc00::/7",       /* RFC 4193, unique local addresses */
    NULL,
};

static const char *const rule_link_local[] = {
    "169.254.0.0/16", /* RFC 3927 */
    "fe80::/10",      /* RFC 4291 2.5.6 */
    NULL,
};

/*
 * Everything not globally reachable. ::ffff:0:0/96 (RFC 4291 2.5.5.2) is
 * left out on purpose: mapped addresses are checked as the IPv4 address they
 * carry. So are the blocks the registries mark globally reachable (AS112,
 * AMT, 64:ff9b::/96, 2002::/16 among others) and 192.88.99.0/24, the 6to4
 * relay anycast block deprecated by RFC 7526.
 */
static const char *const rule_non_routable[] = {
    "0.0.0.0/8",          /* RFC 791 3.2, "this network" */
    "10.0.0.0/8",         /* RFC 1918 */
    "100.64.0.0/10",      /* RFC 6598, shared address space (CGNAT) */
    "127.0.0.0/8",        /* RFC 1122 3.2.1.3, loopback */
    "169.254.0.0/16",     /* RFC 3927, link local */
    "172.16.0.0/12",      /* RFC 1918 */
    "192.0.0.0/24",       /* RFC 6890 2.1, IETF protocol assignments */
    "192.0.2.0/24",       /* RFC 5737, TEST-NET-1 */
    "192.168.0.0/16",     /* RFC 1918 */
    "198.18.0.0/15",      /* RFC 2544, benchmarking */
    "198.51.100.0/24",    /* RFC 5737, TEST-NET-2 */
    "203.0.113.0/24",     /* RFC 5737, TEST-NET-3 */
    "224.0.0.0/4",        /* RFC 5771, multicast */
    "240.0.0.0/4",        /* RFC 1112 4, reserved */
    "255.255.255.255/32", /* RFC 919 7 and RFC 8190, limited broadcast */
    "::/128",             /* RFC 4291 2.5.2, unspecified */
    "::1/128",            /* RFC 4291 2.5.3, loopback */
    "64:ff9b:1::/48",     /* RFC 8215, local-use IPv4/IPv6 translation */
    "100::/64",           /* RFC 6666, discard-only */
    "2001::/23",          /* RFC 2928, IETF protocol assignments */
    "2001:db8::/32",      /* RFC 3849, documentation */
    "3fff::/20",          /* RFC 9637, documentation */
    "5f00::/16",          /* RFC 9602, segment routing SIDs */
    "fc00::/7",           /* RFC 4193, unique local addresses */
    "fe80::/10",          /* RFC 4291 2.5.6, link local */
    "ff00::/8",           /* RFC 4291 2.7, multicast */
    NULL,
};

/* rule_netset_push_builtin - push a netset of the fixed, valid networks. */
static void rule_netset_push_builtin(lua_State *L, const char *const *nets)
{
	struct rule_netset *set = rule_netset_push(L);
	struct netaddr_net n;

	for (; *nets; nets++) {
		if (netaddr_net_parse(*nets, &n) != NETADDR_OK)
			luaL_error(L, "bad built-in network %s", *nets);
		rule_netset_add(L, set, &n);
	}
	rule_netset_finish(L, set);
}

/* rule_networks_open - the global table networks. */
static void rule_networks_open(lua_State *L)
{
	lua_createtable(L, 0, 4);
	rule_netset_push_builtin(L, rule_loopback);
	lua_setfield(L, -2, "loopback");
	rule_netset_push_builtin(L, rule_private);
	lua_setfield(L, -2, "private");
	rule_netset_push_builtin(L, rule_link_local);
	lua_setfield(L, -2, "link_local");
	rule_netset_push_builtin(L, rule_non_routable);
	lua_setfield(L, -2, "non_routable");
	lua_setglobal(L, "networks");
}

/*
 * rule_address_parse - s (len bytes) as the SMTP parser reads a path: as a
 * RCPT TO recipient when rcpt is set, else as a MAIL FROM sender (then ""
 * is the null sender). Characters that would end or break the path we wrap
 * it in are refused first, and so is a source route, which is no mailbox.
 * Returns 0 with addr filled, or -1.
 */
static int rule_address_parse(const char *s, size_t len, int rcpt, struct smtp_address *addr)
{
	char line[SMTP_PATH_MAX + 32];
	struct smtp_mail mail;
	struct smtp_rcpt rc;

	memset(addr, 0, sizeof(*addr));
	if (len == 0 && !rcpt) {
		addr->null = 1;
		return 0;
	}
	if (len == 0 || len > SMTP_PATH_MAX - 2 || strlen(s) != len || strpbrk(s, "<>\r\n") ||
	    s[0] == '@')
		return -1;
	if (rcpt) {
		snprintf(line, sizeof(line), "TO:<%s>", s);
		if (smtp_rcpt_parse(line, 1, &rc) != NULL)
			return -1;
		*addr = rc.to;
	} else {
		snprintf(line, sizeof(line), "FROM:<%s> SMTPUTF8", s);
		if (smtp_mail_parse(line, &mail) != NULL)
			return -1;
		*addr = mail.from;
	}
	return 0;
}

/* rule_address_push_parts - push an address table of these parts. */
static void rule_address_push_parts(lua_State *L, const char *text, size_t text_len,
                                    const char *local, size_t local_len, const char *domain,
                                    size_t domain_len)
{
	lua_createtable(L, 0, 4);
	lua_pushlstring(L, text, text_len);
	lua_setfield(L, -2, "address");
	lua_pushlstring(L, local, local_len);
	lua_setfield(L, -2, "local_part");
	rule_push_lower(L, domain, domain_len);
	lua_setfield(L, -2, "domain");
	lua_pushboolean(L, text_len == 0);
	lua_setfield(L, -2, "is_null");
	luaL_setmetatable(L, META_ADDRESS);
}

/* rule_address_push - push the table of an address already checked. */
void rule_address_push(lua_State *L, const char *addr)
{
	const char *at;
	size_t len;

	if (addr == NULL)
		addr = "";
	len = strlen(addr);
	/* A domain holds no '@'; a quoted local part may. */
	at = strrchr(addr, '@');
	if (at == NULL)
		rule_address_push_parts(L, addr, len, addr, len, "", 0);
	else
		rule_address_push_parts(L, addr, len, addr, (size_t)(at - addr), at + 1,
		                        strlen(at + 1));
}

/* rule_is_address - the value at idx is a table with the address metatable. */
int rule_is_address(lua_State *L, int idx)
{
	int is;

	if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
		return 0;
	luaL_getmetatable(L, META_ADDRESS);
	is = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return is;
}

/* rule_address_field - push field name of the address table at idx; its string or NULL. */
static const char *rule_address_field(lua_State *L, int idx, const char *name, size_t *len)
{
	lua_pushstring(L, name);
	if (lua_rawget(L, idx) != LUA_TSTRING)
		return NULL;
	return lua_tolstring(L, -1, len);
}

/*
 * rule_address_check_as - the address at idx (a table or a string) checked
 * as a recipient or a sender, formatted into out. Raises when it is none.
 */
static int rule_address_check_as(lua_State *L, int idx, int rcpt, char *out, size_t outlen)
{
	struct smtp_address a;
	const char *s = NULL;
	size_t len = 0, n;

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TSTRING) {
		lua_pushvalue(L, idx);
		s = lua_tolstring(L, -1, &len);
	} else if (rule_is_address(L, idx)) {
		if ((s = rule_address_field(L, idx, "address", &len)) == NULL)
			return luaL_error(L, "not an address: the table has no address text");
	} else {
		return luaL_typeerror(L, idx, "address or string");
	}
	if (rule_address_parse(s, len, rcpt, &a) < 0) {
		rule_push_bad(L, "not an address: ", s, len);
		return rule_raise_top(L);
	}
	n = smtp_address_format(&a, out, outlen);
	if (n >= outlen)
		return luaL_error(L, "address longer than its buffer (%d bytes)", (int)outlen);
	lua_pop(L, 1);
	return (int)n;
}

/* rule_address_check - a recipient, as RCPT TO takes it. */
int rule_address_check(lua_State *L, int idx, char *out, size_t outlen)
{
	return rule_address_check_as(L, idx, 1, out, outlen);
}

/* rule_sender_check - a sender, as MAIL FROM takes it. */
int rule_sender_check(lua_State *L, int idx, char *out, size_t outlen)
{
	return rule_address_check_as(L, idx, 0, out, outlen);
}

/* lua_address_new - address(s): a mailbox, or "" for the null sender. */
static int lua_address_new(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	struct smtp_address a;

	if (rule_address_parse(s, len, 0, &a) < 0) {
		rule_push_bad(L, "not an address: ", s, len);
		return rule_raise_top(L);
	}
	rule_address_push_parts(L, s, len, a.local, strlen(a.local), a.domain, strlen(a.domain));
	return 1;
}

/* lua_address_tostring - tostring(a): the address as given. */
static int lua_address_tostring(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	if (rule_address_field(L, 1, "address", NULL) == NULL)
		lua_pushliteral(L, "");
	return 1;
}

/* lua_address_eq - a == b: same local part, same (lowercased) domain. */
static int lua_address_eq(lua_State *L)
{
	int eq = rule_is_address(L, 1) && rule_is_address(L, 2);

	if (eq) {
		lua_pushliteral(L, "local_part");
		lua_rawget(L, 1);
		lua_pushliteral(L, "local_part");
		lua_rawget(L, 2);
		lua_pushliteral(L, "domain");
		lua_rawget(L, 1);
		lua_pushliteral(L, "domain");
		lua_rawget(L, 2);
		eq = lua_rawequal(L, -4, -3) && lua_rawequal(L, -2, -1);
	}
	lua_pushboolean(L, eq);
	return 1;
}

static const luaL_Reg rule_address_meta[] = {
    {"__tostring", lua_address_tostring},
    {"__eq", lua_address_eq},
    {NULL, NULL},
};

/*
 * rule_utf8_seq - length of the well-formed UTF-8 sequence at s (at most
 * avail bytes), 0 if there is none. The rules of smtp_parse.c: no overlong
 * forms, surrogates or code points past U+10FFFF, so that a domain has one
 * spelling.
 */
static size_t rule_utf8_seq(const unsigned char *s, size_t avail)
{
	uint32_t cp;

	return s[0] < 0x80 ? 0 : utf8_char(s, avail, &cp);
}

/*
 * rule_label_scan - length of the label at s (within len), 0 if it is not
 * one: letters, digits, inner hyphens and UTF-8. As in smtp_parse.c, the
 * 63 octet limit applies to ASCII labels only: what counts for a U-label is
 * the length of its A-label, which is shorter than its UTF-8.
 */
static size_t rule_label_scan(const unsigned char *s, size_t len)
{
	size_t i = 0, n;
	int nonascii = 0;

	while (i < len && s[i] != '.') {
		if (rule_is_alnum(s[i]) || s[i] == '-') {
			i++;
		} else if (s[i] >= 0x80 && (n = rule_utf8_seq(s + i, len - i)) != 0) {
			i += n;
			nonascii = 1;
		} else {
			return 0;
		}
	}
	if (i == 0 || s[0] == '-' || s[i - 1] == '-')
		return 0;
	if (!nonascii && i > RULE_LABEL_MAX)
		return 0;
	return i;
}

/*
 * rule_domain_check - the length of domain s without one trailing dot, or 0
 * when s (a NUL-terminated string of len bytes) is no domain name.
 */
static size_t rule_domain_check(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;

	if (strlen(s) != len)
		return 0;
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > RULE_DOMAIN_MAX)
		return 0;
	for (;;) {
		n = rule_label_scan(u + i, len - i);
		if (n == 0)
			return 0;
		i += n;
		if (i == len)
			return len;
		i++; /* the dot */
	}
}

/* lua_fqdn_new - fqdn(s): a checked domain name, lowercased, as a string. */
static int lua_fqdn_new(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	size_t n = rule_domain_check(s, len);

	if (n == 0) {
		rule_push_bad(L, "not a domain name: ", s, len);
		return rule_raise_top(L);
	}
	rule_push_lower(L, s, n);
	return 1;
}

/* lua_regex_new - regex(pattern [, flags]): a POSIX extended regular expression. */
static int lua_regex_new(lua_State *L)
{
	size_t len, flen, i;
	const char *pattern = luaL_checklstring(L, 1, &len);
	const char *flags = luaL_optlstring(L, 2, "", &flen);
	int cflags = REG_EXTENDED | REG_NOSUB, rc;
	struct rule_regex *r;
	char err[256];

	if (strlen(pattern) != len) {
		rule_push_bad(L, "a regex cannot hold a NUL byte: ", pattern, len);
		return rule_raise_top(L);
	}
	for (i = 0; i < flen; i++) {
		if (flags[i] != 'i') {
			rule_push_bad(L, "unknown regex flags (only \"i\" is known): ", flags,
			              flen);
			return rule_raise_top(L);
		}
		cflags |= REG_ICASE;
	}
	r = lua_newuserdatauv(L, sizeof(*r), 1);
	r->compiled = 0;
	luaL_setmetatable(L, META_REGEX);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1);
	if ((rc = regcomp(&r->re, pattern, cflags)) != 0) {
		regerror(rc, &r->re, err, sizeof(err));
		lua_pushfstring(L, "%s in regex ", err);
		rule_push_quoted(L, pattern, len);
		lua_concat(L, 2);
		return rule_raise_top(L);
	}
	r->compiled = 1;
	return 1;
}

/* lua_regex_match - r:match(s): whether r matches somewhere in all of s. */
static int lua_regex_match(lua_State *L)
{
	struct rule_regex *r = luaL_checkudata(L, 1, META_REGEX);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);
	regmatch_t m;
	int rc;
	char err[256];

	if (!r->compiled)
		return luaL_error(L, "regex used after being freed");
	if (len > INT_MAX)
		return luaL_error(L, "string too long for a regex match");
	/* REG_STARTEND bounds the subject by length, so a NUL does not end it. */
	m.rm_so = 0;
	m.rm_eo = (regoff_t)len;
	rc = regexec(&r->re, s, 1, &m, REG_STARTEND);
	if (rc != 0 && rc != REG_NOMATCH) {
		regerror(rc, &r->re, err, sizeof(err));
		return luaL_error(L, "regex match failed: %s", err);
	}
	lua_pushboolean(L, rc == 0);
	return 1;
}

/* lua_regex_tostring - tostring(r): the pattern. */
static int lua_regex_tostring(lua_State *L)
{
	luaL_checkudata(L, 1, META_REGEX);
	lua_getiuservalue(L, 1, 1);
	return 1;
}

/* lua_regex_gc - free the compiled expression once. */
static int lua_regex_gc(lua_State *L)
{
	struct rule_regex *r = luaL_checkudata(L, 1, META_REGEX);

	if (r->compiled)
		regfree(&r->re);
	r->compiled = 0;
	return 0;
}

static const luaL_Reg rule_regex_meta[] = {
    {"__tostring", lua_regex_tostring},
    {"__gc", lua_regex_gc},
    {NULL, NULL},
};

static const luaL_Reg rule_regex_methods[] = {
    {"match", lua_regex_match},
    {NULL, NULL},
};

/* lua_listfile_close - close a list file once, on __close or __gc. */
static int lua_listfile_close(lua_State *L)
{
	struct rule_file *rf = luaL_checkudata(L, 1, META_LISTFILE);

	if (rf->f != NULL)
		fclose(rf->f);
	rf->f = NULL;
	return 0;
}

static const luaL_Reg rule_listfile_meta[] = {
    {"__close", lua_listfile_close},
    {"__gc", lua_listfile_close},
    {NULL, NULL},
};

/*
 * rule_list_open - open the file of argument 1 for list function fname.
 * Pushes the resolved path and the file, a to-be-closed slot so that an
 * error in the middle of the file does not leak it. Only while the rules
 * are loaded: a session process could not open the file.
 */
static FILE *rule_list_open(lua_State *L, const char *fname)
{
	size_t len;
	const char *path = luaL_checklstring(L, 1, &len);
	struct rule_file *rf;
	int err;

	if (lua_getfield(L, LUA_REGISTRYINDEX, RULE_OBJECTS_RULES_DIR_KEY) != LUA_TSTRING)
		luaL_error(L,
		           "lists are loaded with the rules: call %s() at the top level of a rules "
		           "file, not inside a rule",
		           fname);
	if (len == 0 || strlen(path) != len) {
		rule_push_bad(L, "not a file name: ", path, len);
		rule_raise_top(L);
	}
	if (path[0] == '/')
		lua_pushvalue(L, 1);
	else
		lua_pushfstring(L, "%s/%s", lua_tostring(L, -1), path);
	lua_remove(L, -2);
	rf = lua_newuserdatauv(L, sizeof(*rf), 0);
	rf->f = NULL;
	luaL_setmetatable(L, META_LISTFILE);
	lua_toclose(L, -1);
	rf->f = fopen(lua_tostring(L, -2), "re");
	if (rf->f == NULL) {
		err = errno;
		luaL_error(L, "cannot open %s: %s", lua_tostring(L, -2), strerror(err));
	}
	return rf->f;
}

/*
 * rule_read_line - the next line of f into buf (RULE_LIST_LINE_MAX + 1
 * bytes) without its newline. Returns 1, 0 at the end of the file, -1 when
 * the line is too long and -2 on a read error.
 */
static int rule_read_line(FILE *f, char *buf, size_t *len)
{
	size_t n = 0;
	int c;

	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (n == RULE_LIST_LINE_MAX)
			return -1;
		buf[n++] = (char)c;
	}
	if (c == EOF && ferror(f))
		return -2;
	if (c == EOF && n == 0)
		return 0;
	buf[n] = '\0';
	*len = n;
	return 1;
}

/* rule_is_blank - the blanks trimmed around list entries (CR for CRLF files). */
static int rule_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* rule_trim - the line without surrounding blanks, NUL-terminated in place. */
static char *rule_trim(char *line, size_t *len)
{
	size_t n = *len;

	while (n > 0 && rule_is_blank(line[n - 1]))
		n--;
	line[n] = '\0';
	while (n > 0 && rule_is_blank(*line)) {
		line++;
		n--;
	}
	*len = n;
	return line;
}

/* rule_list_fail - raise the message on top as "path:line: message". */
static int rule_list_fail(lua_State *L, int path_idx, lua_Integer lineno)
{
	lua_pushfstring(L, "%s:%I: ", lua_tostring(L, path_idx), lineno);
	lua_insert(L, -2);
	lua_concat(L, 2);
	return rule_raise_top(L);
}

/*
 * rule_list_read - read the list file of argument 1, handing each entry to
 * ld->add. Leaves the stack as it found it.
 */
static void rule_list_read(lua_State *L, struct rule_list_load *ld)
{
	char line[RULE_LIST_LINE_MAX + 1];
	int top = lua_gettop(L), path_idx = top + 1, rc;
	lua_Integer lineno = 0;
	size_t entries = 0, len = 0;
	FILE *f = rule_list_open(L, ld->fname);
	char *entry;

	while ((rc = rule_read_line(f, line, &len)) != 0) {
		lineno++;
		if (rc == -1)
			lua_pushfstring(L, "line longer than %d bytes", RULE_LIST_LINE_MAX);
		else if (rc == -2)
			lua_pushfstring(L, "read error: %s", strerror(errno));
		if (rc < 0)
			rule_list_fail(L, path_idx, lineno);
		entry = rule_trim(line, &len);
		if (len == 0 || entry[0] == '#')
			continue;
		if (memchr(entry, '\0', len) != NULL) {
			lua_pushliteral(L, "NUL byte in line");
			rule_list_fail(L, path_idx, lineno);
		}
		if (++entries > RULE_LIST_ENTRIES_MAX) {
			lua_pushfstring(L, "more than %d entries", RULE_LIST_ENTRIES_MAX);
			rule_list_fail(L, path_idx, lineno);
		}
		if (ld->add(L, ld, entry, len) < 0)
			rule_list_fail(L, path_idx, lineno);
	}
	lua_closeslot(L, path_idx + 1);
	lua_settop(L, top);
}

/*
 * rule_list_entries - the entries of the table at argument 1, each handed
 * to ld->add as a line of a file would be; an error names the entry.
 */
static void rule_list_entries(lua_State *L, struct rule_list_load *ld)
{
	lua_Integer i, n = (lua_Integer)lua_rawlen(L, 1);
	size_t len;
	const char *entry;

	for (i = 1; i <= n; i++) {
		if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
			luaL_error(L, "%s: entry %I is not a string", ld->fname, i);
		entry = lua_tolstring(L, -1, &len);
		if (len == 0 || strlen(entry) != len || ld->add(L, ld, entry, len) < 0) {
			if (len == 0 || strlen(entry) != len)
				lua_pushliteral(L, "empty or holds a NUL byte");
			lua_pushfstring(L, "%s: entry %I: ", ld->fname, i);
			lua_insert(L, -2);
			lua_concat(L, 2);
			rule_raise_top(L);
		}
		lua_pop(L, 1);
	}
}

/* rule_list_set - add the key on top of the stack to the list's table. */
static void rule_list_set(lua_State *L, struct rule_list_load *ld)
{
	lua_pushvalue(L, -1);
	if (lua_rawget(L, ld->table) == LUA_TNIL)
		ld->list->count++;
	lua_pop(L, 1);
	lua_pushboolean(L, 1);
	lua_rawset(L, ld->table);
}

/* rule_ip_list_add - an IP address or network. */
static int rule_ip_list_add(lua_State *L, struct rule_list_load *ld, const char *s, size_t len)
{
	struct netaddr_net n;

	if (rule_net_parse(L, s, len, &n) < 0)
		return -1;
	rule_netset_add(L, ld->set, &n);
	return 0;
}

/* rule_domain_list_add - a domain, or ".domain" for its subdomains. */
static int rule_domain_list_add(lua_State *L, struct rule_list_load *ld, const char *s, size_t len)
{
	size_t sub = s[0] == '.', n = rule_domain_check(s + sub, len - sub);

	if (n == 0) {
		rule_push_bad(L, "not a domain name: ", s, len);
		return -1;
	}
	/* The key keeps the leading dot and loses a trailing one. */
	rule_push_lower(L, s, sub + n);
	rule_list_set(L, ld);
	return 0;
}

/* rule_address_list_add - an address, or "@domain" for all of the domain's. */
static int rule_address_list_add(lua_State *L, struct rule_list_load *ld, const char *s, size_t len)
{
	char probe[SMTP_PATH_MAX + 2];
	struct smtp_address a;
	int ok;

	if (s[0] == '@') {
		/* The domain is checked as the domain of an address would be. */
		snprintf(probe, sizeof(probe), "x%s", s);
		ok = len < SMTP_PATH_MAX && rule_address_parse(probe, len + 1, 0, &a) == 0;
	} else {
		ok = rule_address_parse(s, len, 0, &a) == 0;
	}
	if (!ok) {
		rule_push_bad(L, "not an address: ", s, len);
		return -1;
	}
	lua_pushstring(L, s[0] == '@' ? "" : a.local);
	lua_pushliteral(L, "@");
	rule_push_lower(L, a.domain, strlen(a.domain));
	lua_concat(L, 3);
	rule_list_set(L, ld);
	return 0;
}

/* rule_string_list_add - a line, as it is. */
static int rule_string_list_add(lua_State *L, struct rule_list_load *ld, const char *s, size_t len)
{
	lua_pushlstring(L, s, len);
	rule_list_set(L, ld);
	return 0;
}

/* lua_ip_list_new - ip_list(path): a netset of the file's addresses and networks. */
static int lua_ip_list_new(lua_State *L)
{
	struct rule_list_load ld = {"ip_list", rule_ip_list_add, NULL, NULL, 0};

	luaL_checkstring(L, 1);
	lua_settop(L, 1);
	ld.set = rule_netset_push(L);
	rule_list_read(L, &ld);
	rule_netset_finish(L, ld.set);
	return 1;
}

/* rule_list_new - list(path) or list({entries}) of one kind: its userdata,
 * with a table of entries. A table needs no file, so it works at any time. */
static int rule_list_new(lua_State *L, const char *meta, const char *fname, rule_list_add_fn add)
{
	struct rule_list_load ld = {fname, add, NULL, NULL, 0};
	int from_table = lua_istable(L, 1);

	if (!from_table)
		luaL_checkstring(L, 1);
	lua_settop(L, 1);
	ld.list = lua_newuserdatauv(L, sizeof(*ld.list), 1);
	ld.list->count = 0;
	luaL_setmetatable(L, meta);
	lua_newtable(L);
	lua_pushvalue(L, -1);
	lua_setiuservalue(L, 2, 1);
	ld.table = lua_gettop(L);
	if (from_table)
		rule_list_entries(L, &ld);
	else
		rule_list_read(L, &ld);
	lua_pop(L, 1);
	return 1;
}

/* lua_domain_list_new - domain_list(path). */
static int lua_domain_list_new(lua_State *L)
{
	return rule_list_new(L, META_DOMAINLIST, "domain_list", rule_domain_list_add);
}

/* lua_address_list_new - address_list(path). */
static int lua_address_list_new(lua_State *L)
{
	return rule_list_new(L, META_ADDRESSLIST, "address_list", rule_address_list_add);
}

/* lua_string_list_new - string_list(path). */
static int lua_string_list_new(lua_State *L)
{
	return rule_list_new(L, META_STRINGLIST, "string_list", rule_string_list_add);
}

/* rule_key_present - the table at tidx has key k (n bytes). */
static int rule_key_present(lua_State *L, int tidx, const char *k, size_t n)
{
	int found;

	lua_pushlstring(L, k, n);
	found = lua_rawget(L, tidx) != LUA_TNIL;
	lua_pop(L, 1);
	return found;
}

/* rule_list_table - check self is a list of kind meta; push its table and return its index. */
static int rule_list_table(lua_State *L, const char *meta)
{
	luaL_checkudata(L, 1, meta);
	lua_getiuservalue(L, 1, 1);
	return lua_gettop(L);
}

/*
 * rule_domain_lookup - domain d (len bytes) is in the table at tidx, itself
 * or through a ".parent" entry of one of its parent domains.
 */
static int rule_domain_lookup(lua_State *L, int tidx, const char *d, size_t len)
{
	char buf[RULE_DOMAIN_MAX + 1];
	size_t i;

	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > RULE_DOMAIN_MAX)
		return 0;
	for (i = 0; i < len; i++)
		buf[i] = (char)rule_lower((unsigned char)d[i]);
	if (rule_key_present(L, tidx, buf, len))
		return 1;
	for (i = 0; i < len; i++)
		if (buf[i] == '.' && rule_key_present(L, tidx, buf + i, len - i))
			return 1;
	return 0;
}

/* lua_domainlist_contains - l:contains(domain string or address table). */
static int lua_domainlist_contains(lua_State *L)
{
	int tidx = rule_list_table(L, META_DOMAINLIST);
	const char *d = NULL;
	size_t len = 0;

	if (lua_type(L, 2) == LUA_TSTRING)
		d = lua_tolstring(L, 2, &len);
	else if (rule_is_address(L, 2))
		d = rule_address_field(L, 2, "domain", &len);
	else
		return luaL_typeerror(L, 2, "domain string or address");
	lua_pushboolean(L, d != NULL && rule_domain_lookup(L, tidx, d, len));
	return 1;
}

/*
 * rule_address_lookup - local@domain is in the table at tidx, itself or
 * through an "@domain" entry. The domain is compared lowercased.
 */
static int rule_address_lookup(lua_State *L, int tidx, const char *local, const char *domain,
                               size_t domain_len)
{
	int found;

	if (local[0] == '\0' || domain_len == 0)
		return 0;
	rule_push_lower(L, domain, domain_len);
	lua_pushstring(L, local);
	lua_pushliteral(L, "@");
	lua_pushvalue(L, -3);
	lua_concat(L, 3);
	found = lua_rawget(L, tidx) != LUA_TNIL;
	lua_pop(L, 1);
	if (!found) {
		lua_pushliteral(L, "@");
		lua_insert(L, -2);
		lua_concat(L, 2);
		found = lua_rawget(L, tidx) != LUA_TNIL;
	}
	lua_pop(L, 1);
	return found;
}

/* lua_addresslist_contains - l:contains(address string or table). */
static int lua_addresslist_contains(lua_State *L)
{
	int tidx = rule_list_table(L, META_ADDRESSLIST);
	const char *s, *local, *domain;
	struct smtp_address a;
	size_t len, domain_len = 0;
	int found = 0;

	if (lua_type(L, 2) == LUA_TSTRING) {
		s = lua_tolstring(L, 2, &len);
		if (rule_address_parse(s, len, 0, &a) == 0)
			found = rule_address_lookup(L, tidx, a.local, a.domain, strlen(a.domain));
	} else if (rule_is_address(L, 2)) {
		local = rule_address_field(L, 2, "local_part", &len);
		domain = rule_address_field(L, 2, "domain", &domain_len);
		if (local != NULL && domain != NULL && strlen(local) == len)
			found = rule_address_lookup(L, tidx, local, domain, domain_len);
	} else {
		return luaL_typeerror(L, 2, "address or string");
	}
	lua_pushboolean(L, found);
	return 1;
}

/* lua_stringlist_contains - l:contains(s): s is one of the lines. */
static int lua_stringlist_contains(lua_State *L)
{
	int tidx = rule_list_table(L, META_STRINGLIST);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);

	lua_pushboolean(L, rule_key_present(L, tidx, s, len));
	return 1;
}

/* rule_list_len - #l for a list of kind meta. */
static int rule_list_len(lua_State *L, const char *meta)
{
	const struct rule_list *list = luaL_checkudata(L, 1, meta);

	lua_pushinteger(L, (lua_Integer)list->count);
	return 1;
}

/* lua_domainlist_len - #l: distinct entries. */
static int lua_domainlist_len(lua_State *L)
{
	return rule_list_len(L, META_DOMAINLIST);
}

/* lua_addresslist_len - #l: distinct entries. */
static int lua_addresslist_len(lua_State *L)
{
	return rule_list_len(L, META_ADDRESSLIST);
}

/* lua_stringlist_len - #l: distinct entries. */
static int lua_stringlist_len(lua_State *L)
{
	return rule_list_len(L, META_STRINGLIST);
}

static const luaL_Reg rule_domainlist_meta[] = {
    {"__len", lua_domainlist_len},
    {NULL, NULL},
};

static const luaL_Reg rule_domainlist_methods[] = {
    {"contains", lua_domainlist_contains},
    {NULL, NULL},
};

static const luaL_Reg rule_addresslist_meta[] = {
    {"__len", lua_addresslist_len},
    {NULL, NULL},
};

static const luaL_Reg rule_addresslist_methods[] = {
    {"contains", lua_addresslist_contains},
    {NULL, NULL},
};

static const luaL_Reg rule_stringlist_meta[] = {
    {"__len", lua_stringlist_len},
    {NULL, NULL},
};

static const luaL_Reg rule_stringlist_methods[] = {
    {"contains", lua_stringlist_contains},
    {NULL, NULL},
};

static const luaL_Reg rule_globals[] = {
    {"ip", lua_ip_new},
    {"ip4", lua_ip4_new},
    {"ip6", lua_ip6_new},
    {"net", lua_net_new},
    {"netset", lua_netset_new},
    {"address", lua_address_new},
    {"fqdn", lua_fqdn_new},
    {"regex", lua_regex_new},
    {"ip_list", lua_ip_list_new},
    {"domain_list", lua_domain_list_new},
    {"address_list", lua_address_list_new},
    {"string_list", lua_string_list_new},
    {NULL, NULL},
};

/*
 * rule_class_open - the metatable name with metamethods meta and methods as
 * its __index. __metatable hides it from getmetatable() and setmetatable(),
 * so a rule can neither call __gc by hand nor re-label a table as an
 * address.
 */
static void rule_class_open(lua_State *L, const char *name, const luaL_Reg *meta,
                            const luaL_Reg *methods)
{
	luaL_newmetatable(L, name);
	luaL_setfuncs(L, meta, 0);
	if (methods != NULL) {
		lua_newtable(L);
		luaL_setfuncs(L, methods, 0);
		lua_setfield(L, -2, "__index");
	}
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

/* rule_objects_open - register the classes and the globals. */
void rule_objects_open(lua_State *L)
{
	rule_class_open(L, META_IP, rule_ip_meta, rule_ip_methods);
	rule_class_open(L, META_NET, rule_net_meta, rule_net_methods);
	rule_class_open(L, META_NETSET, rule_netset_meta, rule_netset_methods);
	rule_class_open(L, META_ADDRESS, rule_address_meta, NULL);
	rule_class_open(L, META_REGEX, rule_regex_meta, rule_regex_methods);
	rule_class_open(L, META_DOMAINLIST, rule_domainlist_meta, rule_domainlist_methods);
	rule_class_open(L, META_ADDRESSLIST, rule_addresslist_meta, rule_addresslist_methods);
	rule_class_open(L, META_STRINGLIST, rule_stringlist_meta, rule_stringlist_methods);
	rule_class_open(L, META_LISTFILE, rule_listfile_meta, NULL);
	lua_pushglobaltable(L);
	luaL_setfuncs(L, rule_globals, 0);
	lua_pop(L, 1);
	rule_networks_open(L);
}
