/*
 * rule_objects.h - the values policy rules work with, as Lua 5.4 objects:
 * IP addresses, networks, network sets, mail addresses, domain names,
 * regular expressions and lists read from files.
 *
 * Rules are loaded in the master and their Lua state is inherited by the
 * sandboxed session processes, which can open no file. So every object is
 * checked when it is built (bad text raises an error that quotes it), lists
 * are read only while the rules are loaded, and what a rule does per
 * connection (contains(), match()) only looks things up.
 *
 * Globals registered by rule_objects_open():
 *
 *   ip(s)            an IPv4 or IPv6 address (userdata "vsmtpd.ip"); bad text
 *                    raises 'not an IP address: "s"'. ip4(s) and ip6(s)
 *                    also require that family.
 *                      tostring(a)   canonical text (inet_ntop)
 *                      a == b        same family and address
 *                      a:is_v4(), a:is_v6()
 *   net(s)           "192.168.0.0/16", "2001:db8::/32", or a bare address
 *                    (/32, /128) (userdata "vsmtpd.net"); bits set past the
 *                    prefix raise 'host bits set in network "10.0.0.1/8"'.
 *                      tostring(n)   "192.168.0.0/16"
 *                      n == m        same network
 *                      n:contains(x) x an ip, a net (wholly inside) or a
 *                                    string holding an IP address (any other
 *                                    string, e.g. "unknown", gives false)
 *   netset(t)        a set of networks from a sequence of CIDR strings, net,
 *                    ip or netset values (userdata "vsmtpd.netset"); sorted
 *                    once, looked up by binary search.
 *                      s:contains(x) as net:contains, true when a member
 *                                    contains x
 *                      #s            distinct networks given
 *                      tostring(s)   "netset(3): 10.0.0.0/8, ..." (the
 *                                    first 8 networks)
 *   networks         netsets loopback, private, link_local, non_routable
 *                    (the IANA special-purpose registries; see the C file)
 *   address(s)       a mailbox "local@domain" checked like MAIL FROM (quoted
 *                    local parts and UTF-8 allowed, no angle brackets); ""
 *                    is the null sender. A table (metatable
 *                    "vsmtpd.address") with fields address (s as given),
 *                    local_part, domain (ASCII letters lowercased) and
 *                    is_null; tostring() gives address, == compares the
 *                    local part exactly and the domain ignoring case. Bad
 *                    text raises 'not an address: "s"'.
 *   fqdn(s)          a domain name (LDH or UTF-8 labels, at most 253
 *                    octets, one trailing dot dropped) as a lowercased
 *                    string; bad text raises 'not a domain name: "s"'.
 *   regex(p [, f])   a POSIX extended regular expression (userdata
 *                    "vsmtpd.regex"); flags f: "i" ignores case.
 *                      r:match(s)    true when it matches anywhere in s
 *                                    (the whole string, NUL bytes included;
 *                                    anchor with ^ and $)
 *                      tostring(r)   the pattern
 *   ip_list(path)      IP addresses and networks, one a line: a netset
 *   domain_list(path)  domains; ".example.com" matches every subdomain of
 *                      example.com but not example.com (userdata
 *                      "vsmtpd.domainlist"): l:contains(x) with x a domain
 *                      string or an address table (its domain), #l
 *   address_list(path) addresses; "@example.com" matches every address of
 *                      that domain (userdata "vsmtpd.addresslist"):
 *                      l:contains(x) with x a string or an address table, #l
 *   string_list(path)  lines compared exactly (userdata
 *                      "vsmtpd.stringlist"): l:contains(s), #l
 *
 * domain_list, address_list and string_list also take a table of entries
 * instead of a path ({"example.com", ".example.org"}), checked the same way
 * (an error names the entry's index); that form reads no file and works at
 * any time.
 *
 * List files hold one entry a line; surrounding blanks are trimmed, and
 * blank lines and lines starting with '#' are skipped. A relative path is
 * relative to the rules folder. A bad entry raises "path:line: message";
 * lines are at most RULE_LIST_LINE_MAX bytes and files hold at most
 * RULE_LIST_ENTRIES_MAX entries. Lookups in domain and address lists ignore
 * the case of domains only; #l counts distinct entries.
 *
 * Methods check their self and argument types and raise on misuse; a lookup
 * that finds nothing returns false.
 */
#ifndef VSMTPD_RULE_OBJECTS_H
#define VSMTPD_RULE_OBJECTS_H

#include <stddef.h>

#include <lua.h>

#include "netaddr.h"

/*
 * The registry key under which the rule engine stores the rules folder (a
 * string) while the rules are being loaded, and only then: list functions
 * raise when it is absent, as a session process could not open the file.
 */
#define RULE_OBJECTS_RULES_DIR_KEY "vsmtpd.rules_dir"

#define RULE_LIST_LINE_MAX 1024
#define RULE_LIST_ENTRIES_MAX 10000000

/* Room for any address text rule_address_check() writes, NUL included. */
#define RULE_ADDRESS_TEXT_MAX 256


/* rule_ip_push - push ip as a "vsmtpd.ip" userdata. Needs rule_objects_open(). */
void rule_ip_push(lua_State *L, const struct netaddr_ip *ip);

/*
 * rule_address_push - push an address table ("vsmtpd.address") for an
 * address the SMTP session already checked: "local@domain", the bare
 * "postmaster" of RCPT (local_part "postmaster", domain "") or "" (the null
 * sender; NULL is taken as ""). The text is split at its last '@' and is
 * not checked again. Needs rule_objects_open().
 */
void rule_address_push(lua_State *L, const char *addr);

/* rule_is_address - 1 when the value at idx is an address table. */
int rule_is_address(lua_State *L, int idx);

/*
 * rule_address_check - the recipient at stack index idx, an address table
 * or a string, checked as RCPT TO would ("local@domain" or "postmaster";
 * not the null sender), written to out as "local@domain". Returns its
 * length. Raises a Lua error 'not an address: "..."' when it is none, or a
 * type error for another type; outlen should be RULE_ADDRESS_TEXT_MAX.
 * For ctx:add_rcpt(x) and the like.
 */
int rule_address_check(lua_State *L, int idx, char *out, size_t outlen);

/*
 * rule_sender_check - the same for a sender, checked as MAIL FROM would:
 * "local@domain" or "" (the null sender, for which it returns 0).
 */
int rule_sender_check(lua_State *L, int idx, char *out, size_t outlen);

/*
 * rule_objects_open - register the metatables and the globals listed above
 * in L. Call it once, before the rules are loaded.
 */
void rule_objects_open(lua_State *L);

#endif
