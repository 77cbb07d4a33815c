/*
 * rule_ip.c - the rule objects ip, net and netset, and the global table
 * networks of the built-in special-purpose network sets.
 *
 * An ip is a struct netaddr_ip userdata, a net a struct netaddr_net one. A
 * netset is a sorted array of disjoint networks, allocated with the state's
 * allocator, that contains() searches in O(log n); ip_list (rule_lists.c)
 * builds one from a file with rule_netset_push/add/finish.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <lauxlib.h>
#include <lua.h>

#include "rule_objects.h"
#include "rule_objects_internal.h"

/* Networks tostring(netset) shows before "...". */
#define RULE_NETSET_SHOW 8

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
int rule_net_parse(lua_State *L, const char *s, size_t len, struct netaddr_net *out)
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
struct rule_netset *rule_netset_push(lua_State *L)
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
void rule_netset_add(lua_State *L, struct rule_netset *set, const struct netaddr_net *n)
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
void rule_netset_finish(lua_State *L, struct rule_netset *set)
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

static const luaL_Reg rule_ip_globals[] = {
    {"ip", lua_ip_new},
    {"ip4", lua_ip4_new},
    {"ip6", lua_ip6_new},
    {"net", lua_net_new},
    {"netset", lua_netset_new},
    {NULL, NULL},
};

/* rule_ip_open - the classes ip, net and netset, their constructors and networks. */
void rule_ip_open(lua_State *L)
{
	rule_class_open(L, META_IP, rule_ip_meta, rule_ip_methods);
	rule_class_open(L, META_NET, rule_net_meta, rule_net_methods);
	rule_class_open(L, META_NETSET, rule_netset_meta, rule_netset_methods);
	rule_globals_open(L, rule_ip_globals);
	rule_networks_open(L);
}
