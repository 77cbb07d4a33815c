/*
 * rule_objects_internal.h - what the files of the rule object classes
 * share: the metatable names, the network set every IP class and ip_list
 * build, the helpers that quote a bad value into an error message, and the
 * parsers one class borrows from another (ip_list parses networks, the
 * domain and address lists parse domains and addresses).
 *
 * Each class file registers its metatables and its global constructors
 * through its own open function, which rule_objects_open() calls in turn.
 */
#ifndef VSMTPD_RULE_OBJECTS_INTERNAL_H
#define VSMTPD_RULE_OBJECTS_INTERNAL_H

#include <stddef.h>

#include <lauxlib.h>
#include <lua.h>

#include "netaddr.h"
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

/* RFC 1035 2.3.4: 255 octets in wire format, so 253 as dotted text. */
#define RULE_DOMAIN_MAX 253

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
/* rule_lower - ASCII lower case, independent of the locale. */
unsigned char rule_lower(unsigned char c);

/* rule_is_alnum - ASCII letter or digit. */
int rule_is_alnum(unsigned char c);

/* rule_push_lower - push s with ASCII letters lowercased. */
void rule_push_lower(lua_State *L, const char *s, size_t len);

/* rule_push_quoted - push s in double quotes, escaped and cut for a log. */
void rule_push_quoted(lua_State *L, const char *s, size_t len);

/* rule_push_bad - push the message what followed by the quoted value. */
void rule_push_bad(lua_State *L, const char *what, const char *s, size_t len);

/* rule_raise_top - raise the message on top at the calling rule's position. */
int rule_raise_top(lua_State *L);

/* rule_class_open - register metatable name with metamethods meta and methods. */
void rule_class_open(lua_State *L, const char *name, const luaL_Reg *meta,
                     const luaL_Reg *methods);

/* rule_globals_open - set the functions of globals as global variables. */
void rule_globals_open(lua_State *L, const luaL_Reg *globals);

/* rule_net_parse - a Lua string as a network; -1 with a message pushed. */
int rule_net_parse(lua_State *L, const char *s, size_t len, struct netaddr_net *out);

/* rule_netset_push - push a new, empty "vsmtpd.netset". */
struct rule_netset *rule_netset_push(lua_State *L);

/* rule_netset_add - append network n (unmapped here) to a set being built. */
void rule_netset_add(lua_State *L, struct rule_netset *set, const struct netaddr_net *n);

/* rule_netset_finish - sort a built set and drop the networks inside others. */
void rule_netset_finish(lua_State *L, struct rule_netset *set);

/* rule_address_parse - s as a RCPT TO (rcpt set) or MAIL FROM path; 0 or -1. */
int rule_address_parse(const char *s, size_t len, int rcpt, struct smtp_address *addr);

/* rule_address_field - push field name of the address table at idx; its string or NULL. */
const char *rule_address_field(lua_State *L, int idx, const char *name, size_t *len);

/* rule_domain_check - the length of domain s without a trailing dot, 0 if none. */
size_t rule_domain_check(const char *s, size_t len);

/* rule_ip_open - the classes ip, net and netset, their constructors and networks. */
void rule_ip_open(lua_State *L);

/* rule_address_open - the class address and the constructors address and fqdn. */
void rule_address_open(lua_State *L);

/* rule_regex_open - the class regex and its constructor. */
void rule_regex_open(lua_State *L);

/* rule_lists_open - the list classes and ip_list, domain_list, address_list, string_list. */
void rule_lists_open(lua_State *L);

#endif
