/*
 * test_rule_objects.c - unit tests of the objects rules work with: IP
 * addresses, networks and network sets, the built-in networks, mail
 * addresses, domain names, regular expressions and the lists read from the
 * files in tests/unit/data/lists. Each test runs Lua snippets that assert
 * in a fresh state set up as the rule engine does while loading rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "rule_objects.h"

/* test_data_dir - the test data folder the ctest environment names. */
static const char *test_data_dir(void)
{
	const char *dir = getenv("VSMTPD_TEST_DATA");

	if (dir == NULL)
		fail_msg("VSMTPD_TEST_DATA is not set (run the test through ctest)");
	return dir;
}

/* lua_rcpt_text - rcpt_text(x): what rule_address_check() makes of x. */
static int lua_rcpt_text(lua_State *L)
{
	char out[RULE_ADDRESS_TEXT_MAX];
	int n = rule_address_check(L, 1, out, sizeof(out));

	lua_pushlstring(L, out, (size_t)n);
	return 1;
}

/* lua_sender_text - sender_text(x): what rule_sender_check() makes of x. */
static int lua_sender_text(lua_State *L)
{
	char out[RULE_ADDRESS_TEXT_MAX];
	int n = rule_sender_check(L, 1, out, sizeof(out));

	lua_pushlstring(L, out, (size_t)n);
	return 1;
}

/* lua_session_address - session_address(s): rule_address_push(s), as the engine does. */
static int lua_session_address(lua_State *L)
{
	rule_address_push(L, luaL_checkstring(L, 1));
	return 1;
}

/* lua_client_ip - client_ip(s): netaddr_ip_parse() then rule_ip_push(). */
static int lua_client_ip(lua_State *L)
{
	struct netaddr_ip ip;

	if (netaddr_ip_parse(luaL_checkstring(L, 1), &ip) < 0)
		return luaL_error(L, "netaddr_ip_parse refused it");
	rule_ip_push(L, &ip);
	return 1;
}

/* setup - a state with the libraries rules get, the objects, and lists allowed. */
static int setup(void **state)
{
	static const luaL_Reg libs[] = {
	    {LUA_GNAME, luaopen_base},
	    {LUA_STRLIBNAME, luaopen_string},
	    {LUA_TABLIBNAME, luaopen_table},
	    {LUA_MATHLIBNAME, luaopen_math},
	    {NULL, NULL},
	};
	lua_State *L = luaL_newstate();
	const luaL_Reg *lib;

	assert_non_null(L);
	for (lib = libs; lib->func; lib++) {
		luaL_requiref(L, lib->name, lib->func, 1);
		lua_pop(L, 1);
	}
	rule_objects_open(L);
	lua_pushstring(L, test_data_dir());
	lua_setfield(L, LUA_REGISTRYINDEX, RULE_OBJECTS_RULES_DIR_KEY);
	lua_register(L, "rcpt_text", lua_rcpt_text);
	lua_register(L, "sender_text", lua_sender_text);
	lua_register(L, "session_address", lua_session_address);
	lua_register(L, "client_ip", lua_client_ip);
	*state = L;
	return 0;
}

/* teardown - close the state, which frees every object. */
static int teardown(void **state)
{
	lua_close(*state);
	return 0;
}

/* run_ok - run chunk, failing the test with the Lua error if it raises. */
static void run_ok(lua_State *L, const char *chunk)
{
	if (luaL_dostring(L, chunk) != LUA_OK)
		fail_msg("%s", lua_tostring(L, -1));
	lua_settop(L, 0);
}

/* run_err - run chunk, which must raise an error whose message contains needle. */
static void run_err(lua_State *L, const char *chunk, const char *needle)
{
	const char *msg;

	if (luaL_dostring(L, chunk) == LUA_OK)
		fail_msg("no error from: %s", chunk);
	msg = lua_tostring(L, -1);
	if (msg == NULL || strstr(msg, needle) == NULL)
		fail_msg("error '%s' does not contain '%s'", msg ? msg : "(no message)", needle);
	lua_settop(L, 0);
}

/* test_ip_parses_and_prints_canonical_text - both families, inet_ntop's spelling. */
static void test_ip_parses_and_prints_canonical_text(void **state)
{
	run_ok(*state, "local a = ip('192.0.2.1')\n"
	               "assert(tostring(a) == '192.0.2.1')\n"
	               "assert(a:is_v4() and not a:is_v6())\n"
	               "local b = ip('2001:DB8:0:0::1')\n"
	               "assert(tostring(b) == '2001:db8::1')\n"
	               "assert(b:is_v6() and not b:is_v4())\n"
	               "assert(ip4('10.1.2.3'):is_v4() and ip6('::1'):is_v6())");
}

/* test_ip_equality - same family and bytes; never equal to a net. */
static void test_ip_equality(void **state)
{
	run_ok(*state, "assert(ip('10.0.0.1') == ip('10.0.0.1'))\n"
	               "assert(ip('10.0.0.1') ~= ip('10.0.0.2'))\n"
	               "assert(ip('2001:db8::1') == ip('2001:0db8::0001'))\n"
	               "assert(ip('10.0.0.1') ~= net('10.0.0.1'))");
}

/* test_ip_refuses_bad_text_naming_it - garbage, padding, leading zeros, zones. */
static void test_ip_refuses_bad_text_naming_it(void **state)
{
	run_err(*state, "ip('xyz')", "not an IP address: \"xyz\"");
	run_err(*state, "ip('1.2.3.4 ')", "not an IP address: \"1.2.3.4 \"");
	run_err(*state, "ip('01.2.3.4')", "not an IP address");
	run_err(*state, "ip('1.2.3.256')", "not an IP address");
	run_err(*state, "ip('fe80::1%eth0')", "not an IP address");
	run_err(*state, "ip('1.2.3.4\\0')", "not an IP address: \"1.2.3.4\\000\"");
	run_err(*state, "ip('a\\nb')", "\"a\\010b\"");
	run_err(*state, "ip()", "bad argument #1 to 'ip'");
}

/* test_ip4_and_ip6_require_their_family - the other family is refused. */
static void test_ip4_and_ip6_require_their_family(void **state)
{
	run_err(*state, "ip4('::1')", "not an IPv4 address: \"::1\"");
	run_err(*state, "ip6('10.0.0.1')", "not an IPv6 address: \"10.0.0.1\"");
}

/* test_ip_error_has_rules_file_position - errors point at the calling line. */
static void test_ip_error_has_rules_file_position(void **state)
{
	run_err(*state, "local x = 1\nip('nope')", ":2: not an IP address");
}

/* test_net_parses_cidr_and_bare_addresses - a bare address is a /32 or /128. */
static void test_net_parses_cidr_and_bare_addresses(void **state)
{
	run_ok(*state, "assert(tostring(net('192.168.0.0/16')) == '192.168.0.0/16')\n"
	               "assert(tostring(net('192.0.2.1')) == '192.0.2.1/32')\n"
	               "assert(tostring(net('2001:DB8::/32')) == '2001:db8::/32')\n"
	               "assert(tostring(net('::1')) == '::1/128')\n"
	               "assert(tostring(net('0.0.0.0/0')) == '0.0.0.0/0')\n"
	               "assert(net('10.0.0.0/8') == net('10.0.0.0/8'))\n"
	               "assert(net('10.0.0.0/8') ~= net('10.0.0.0/9'))");
}

/* test_net_refuses_host_bits - bits past the prefix are most likely a typo. */
static void test_net_refuses_host_bits(void **state)
{
	run_err(*state, "net('10.0.0.1/8')", "host bits set in network \"10.0.0.1/8\"");
	run_err(*state, "net('2001:db8::1/32')", "host bits set in network \"2001:db8::1/32\"");
	run_err(*state, "net('192.168.1.0/23')", "host bits set");
}

/* test_net_refuses_malformed_prefixes - missing, too big, signed, spaced, doubled. */
static void test_net_refuses_malformed_prefixes(void **state)
{
	static const char *const bad[] = {
	    "net('10.0.0.0/33')",  "net('::/129')",        "net('10.0.0.0/')",
	    "net('/8')",           "net('10.0.0.0/+8')",   "net('10.0.0.0/ 8')",
	    "net('10.0.0.0/8/8')", "net('10.0.0.0/0008')", "net('10.0.0/8')",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		run_err(*state, bad[i], "not an IP network: ");
}

/* test_net_contains_ipv4_and_rejects_other_family - ip, string and subnet arguments. */
static void test_net_contains_ipv4_and_rejects_other_family(void **state)
{
	run_ok(*state, "local n = net('192.168.0.0/16')\n"
	               "assert(n:contains(ip('192.168.3.4')))\n"
	               "assert(n:contains('192.168.255.255'))\n"
	               "assert(not n:contains('192.169.0.0'))\n"
	               "assert(n:contains(net('192.168.4.0/24')))\n"
	               "assert(n:contains(net('192.168.0.0/16')))\n"
	               "assert(not n:contains(net('192.168.0.0/15')))\n"
	               "assert(not n:contains(ip('::1')))\n"
	               "assert(not n:contains('c0a8::1'))\n"
	               "assert(not net('::/0'):contains('10.0.0.1'))\n"
	               "assert(net('0.0.0.0/0'):contains('255.255.255.255'))\n"
	               "assert(net('2001:db8::/33'):contains('2001:db8:7fff::1'))\n"
	               "assert(not net('2001:db8::/33'):contains('2001:db8:8000::1'))");
}

/* test_net_contains_non_address_string_is_false - the engine's "unknown" client. */
static void test_net_contains_non_address_string_is_false(void **state)
{
	run_ok(*state, "assert(net('10.0.0.0/8'):contains('unknown') == false)\n"
	               "assert(net('10.0.0.0/8'):contains('10.0.0.0/8') == false)\n"
	               "assert(netset({'10.0.0.0/8'}):contains('') == false)");
}

/* test_mapped_ipv6_matches_ipv4_network - ::ffff:a.b.c.d is checked as a.b.c.d. */
static void test_mapped_ipv6_matches_ipv4_network(void **state)
{
	run_ok(*state, "assert(net('192.0.2.0/24'):contains('::ffff:192.0.2.1'))\n"
	               "assert(net('192.0.2.0/24'):contains(ip('::ffff:192.0.2.77')))\n"
	               "assert(net('192.0.2.0/24'):contains(net('::ffff:192.0.2.128/121')))\n"
	               "assert(net('::ffff:192.0.2.0/120'):contains('192.0.2.9'))\n"
	               "assert(not net('192.0.2.0/24'):contains('::ffff:192.0.3.1'))\n"
	               "assert(netset({'10.0.0.0/8'}):contains('::ffff:10.9.8.7'))\n"
	               "assert(networks.private:contains('::ffff:172.16.0.1'))\n"
	               "assert(tostring(ip('::ffff:192.0.2.1')) == '::ffff:192.0.2.1')\n"
	               "assert(not ip('::ffff:192.0.2.1'):is_v4())");
}

/* test_contains_refuses_wrong_self_and_argument_types - errors, not crashes. */
static void test_contains_refuses_wrong_self_and_argument_types(void **state)
{
	run_err(*state, "net('10.0.0.0/8').contains(42)", "vsmtpd.net expected, got number");
	run_err(*state, "net('10.0.0.0/8').contains(ip('10.0.0.1'), '10.0.0.1')",
	        "vsmtpd.net expected, got vsmtpd.ip");
	run_err(*state, "net('10.0.0.0/8'):contains(42)", "bad argument #1 to 'contains'");
	run_err(*state, "net('10.0.0.0/8'):contains()", "bad argument #1 to 'contains'");
	run_err(*state, "netset({}).contains(net('10.0.0.0/8'), '1.2.3.4')",
	        "vsmtpd.netset expected, got vsmtpd.net");
	run_err(*state, "netset({}):contains({})", "bad argument #1 to 'contains'");
	run_err(*state, "ip('1.2.3.4').is_v4('1.2.3.4')", "vsmtpd.ip expected, got string");
	run_err(*state, "regex('a').match('a', 'a')", "vsmtpd.regex expected, got string");
	run_err(*state, "local r = regex('a'); r.match(net('10.0.0.0/8'), 'a')",
	        "vsmtpd.regex expected, got vsmtpd.net");
}

/* test_metatables_are_protected - no __gc by hand, no relabelled tables. */
static void test_metatables_are_protected(void **state)
{
	run_ok(*state, "assert(getmetatable(ip('10.0.0.1')) == 'vsmtpd.ip')\n"
	               "assert(getmetatable(address('a@b.example')) == 'vsmtpd.address')\n"
	               "assert(ip('10.0.0.1').__gc == nil)");
	run_err(*state, "setmetatable(address('a@b.example'), nil)", "protected metatable");
}

/* test_networks_contain - the C check of a configured network list
 * ([auth] plaintext_networks), IPv4-mapped addresses as IPv4. */
static void test_networks_contain(void **state)
{
	(void)state;
	assert_true(netaddr_list_contains("127.0.0.0/8 ::1", "127.0.0.1"));
	assert_true(netaddr_list_contains("127.0.0.0/8 ::1", "127.255.0.9"));
	assert_true(netaddr_list_contains("127.0.0.0/8 ::1", "::1"));
	assert_true(netaddr_list_contains("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_true(netaddr_list_contains("192.0.2.7", "192.0.2.7"));
	assert_false(netaddr_list_contains("192.0.2.7", "192.0.2.8"));
	assert_false(netaddr_list_contains("10.0.0.0/8 ::1", "11.0.0.1"));
	assert_false(netaddr_list_contains("2001:db8::/32", "2001:db9::1"));
	assert_false(netaddr_list_contains("", "127.0.0.1"));
	assert_false(netaddr_list_contains("127.0.0.0/8", "unknown"));
}

/* test_netset_contains_any_member - strings, nets, ips and other netsets as members. */
static void test_netset_contains_any_member(void **state)
{
	run_ok(*state, "local s = netset({ '10.0.0.0/8', net('fd00::/8'), ip('192.0.2.1'),\n"
	               "                    networks.loopback })\n"
	               "assert(s:contains('10.255.0.1') and s:contains('fd12::1'))\n"
	               "assert(s:contains('192.0.2.1') and not s:contains('192.0.2.2'))\n"
	               "assert(s:contains('127.0.0.1') and s:contains('::1'))\n"
	               "assert(s:contains(net('10.1.0.0/16')))\n"
	               "assert(not s:contains(net('10.0.0.0/7')))\n"
	               "assert(not s:contains('11.0.0.0') and not s:contains('fe00::1'))\n"
	               "assert(#netset({}) == 0 and not netset({}):contains('10.0.0.1'))");
}

/* test_netset_drops_nested_networks_but_counts_them - # counts distinct networks given. */
static void test_netset_drops_nested_networks_but_counts_them(void **state)
{
	run_ok(*state, "local s = netset({ '10.1.0.0/16', '10.0.0.0/8', '::1', '10.0.0.0/8' })\n"
	               "assert(#s == 3, #s)\n"
	               "assert(tostring(s) == 'netset(3): 10.0.0.0/8, ::1/128', tostring(s))\n"
	               "assert(s:contains(net('10.1.2.0/24')))");
}

/* test_netset_refuses_bad_entries_naming_them - the entry's position and text. */
static void test_netset_refuses_bad_entries_naming_them(void **state)
{
	run_err(*state, "netset({ '10.0.0.0/8', 'bogus' })",
	        "netset entry 2: not an IP network: \"bogus\"");
	run_err(*state, "netset({ '10.0.0.1/8' })", "host bits set in network \"10.0.0.1/8\"");
	run_err(*state, "netset({ true })", "netset entry 1: not an IP network: a boolean");
	run_err(*state, "netset('10.0.0.0/8')", "bad argument #1 to 'netset'");
}

/* test_netset_many_entries - 5000 networks of both families, hits and misses. */
static void test_netset_many_entries(void **state)
{
	run_ok(*state,
	       "local members = {}\n"
	       "for i = 0, 4999 do\n"
	       "  if i % 2 == 0 then\n"
	       "    members[#members + 1] = string.format('10.%d.%d.0/24', i // 256, i % 256)\n"
	       "  else\n"
	       "    members[#members + 1] = string.format('2001:db8:%x::/48', i)\n"
	       "  end\n"
	       "end\n"
	       "local s = netset(members)\n"
	       "assert(#s == 5000)\n"
	       "assert(s:contains('10.0.0.1') and not s:contains('10.0.1.1'))\n"
	       "assert(s:contains('10.19.134.255') and not s:contains('10.19.135.0'))\n"
	       "assert(not s:contains('10.19.136.0') and not s:contains('9.255.255.255'))\n"
	       "assert(s:contains('2001:db8:1::5') and not s:contains('2001:db8:2::5'))\n"
	       "assert(s:contains('2001:db8:1387:ffff::') and not s:contains('2001:db8:1388::'))\n"
	       "assert(not s:contains('2001:db8::1') and not s:contains('::1'))");
}

/* test_netset_agrees_with_linear_search - random probes against every member in turn. */
static void test_netset_agrees_with_linear_search(void **state)
{
	run_ok(*state,
	       "math.randomseed(42)\n"
	       "local members, nets = {}, {}\n"
	       "local function add(s) members[#members + 1] = s; nets[#nets + 1] = net(s) end\n"
	       "for i = 1, 400 do\n"
	       "  local p = math.random(8, 30)\n"
	       "  local a = math.random(0, 0xffffffff) & ~((1 << (32 - p)) - 1)\n"
	       "  add(string.format('%d.%d.%d.%d/%d', a >> 24, (a >> 16) & 255,\n"
	       "                    (a >> 8) & 255, a & 255, p))\n"
	       "  add(string.format('2001:db8:%x::/%d', math.random(0, 15) * 4096, 36 + i % 12))\n"
	       "end\n"
	       "local s = netset(members)\n"
	       "for n = 1, 600 do\n"
	       "  local probe\n"
	       "  if n % 2 == 0 then\n"
	       "    local a = math.random(0, 0xffffffff)\n"
	       "    probe = string.format('%d.%d.%d.%d', a >> 24, (a >> 16) & 255,\n"
	       "                          (a >> 8) & 255, a & 255)\n"
	       "  else\n"
	       "    probe = string.format('2001:db8:%x::%x', math.random(0, 0xffff),\n"
	       "                          math.random(0, 0xffff))\n"
	       "  end\n"
	       "  local want = false\n"
	       "  for _, m in ipairs(nets) do\n"
	       "    if m:contains(probe) then want = true; break end\n"
	       "  end\n"
	       "  assert(s:contains(probe) == want, probe)\n"
	       "end");
}

/* test_private_networks - RFC 1918 and RFC 4193, nothing else. */
static void test_private_networks(void **state)
{
	run_ok(*state, "local p = networks.private\n"
	               "for _, a in ipairs({ '10.0.0.1', '172.16.0.1', '172.31.255.255',\n"
	               "                     '192.168.1.1', 'fc00::1', 'fd12:3456::1' }) do\n"
	               "  assert(p:contains(a), a)\n"
	               "end\n"
	               "for _, a in ipairs({ '172.32.0.1', '192.169.0.1', '8.8.8.8', '127.0.0.1',\n"
	               "                     'fe80::1', '2001:4860::8888' }) do\n"
	               "  assert(not p:contains(a), a)\n"
	               "end\n"
	               "assert(networks.loopback:contains('127.5.5.5') and "
	               "networks.loopback:contains('::1'))\n"
	               "assert(not networks.loopback:contains('::2'))\n"
	               "assert(networks.link_local:contains('169.254.1.1') and "
	               "networks.link_local:contains('fe80::abcd'))\n"
	               "assert(not networks.link_local:contains('fec0::1'))");
}

/* test_non_routable_includes_documentation_ranges - the special-purpose blocks, and no more. */
static void test_non_routable_includes_documentation_ranges(void **state)
{
	run_ok(*state,
	       "local nr = networks.non_routable\n"
	       "for _, a in ipairs({ '192.0.2.1', '198.51.100.1', '203.0.113.1', '2001:db8::1',\n"
	       "    '0.1.2.3', '10.1.1.1', '100.64.0.1', '100.127.255.255', '127.0.0.1',\n"
	       "    '169.254.0.1', '172.16.0.1', '192.0.0.8', '192.168.0.1', '198.18.0.1',\n"
	       "    '198.19.255.255', '224.0.0.1', '239.1.1.1', '240.0.0.1', '255.255.255.255',\n"
	       "    '::', '::1', '64:ff9b:1::1', '100::1', '2001::1', '2001:1ff::1', 'fc00::1',\n"
	       "    'fe80::1', 'ff02::1', '3fff::1', '5f00::1', '::ffff:127.0.0.1',\n"
	       "    '::ffff:192.168.1.1' }) do\n"
	       "  assert(nr:contains(a), a)\n"
	       "end\n"
	       "for _, a in ipairs({ '8.8.8.8', '1.1.1.1', '100.63.255.255', '100.128.0.0',\n"
	       "    '192.0.1.255', '198.17.255.255', '198.20.0.0', '223.255.255.255',\n"
	       "    '2001:200::1', '2a00:1450::1', '64:ff9b::808:808', '::ffff:8.8.8.8',\n"
	       "    '::2', '2002:c000:0201::1' }) do\n"
	       "  assert(not nr:contains(a), a)\n"
	       "end\n"
	       "assert(nr:contains(net('192.0.2.0/25')) and not nr:contains(net('192.0.0.0/16')))");
}

/* test_address_fields - the text as given, the parts, the domain lowercased. */
static void test_address_fields(void **state)
{
	run_ok(*state, "local a = address('John.Doe@Mail.Example.COM')\n"
	               "assert(a.address == 'John.Doe@Mail.Example.COM')\n"
	               "assert(a.local_part == 'John.Doe')\n"
	               "assert(a.domain == 'mail.example.com')\n"
	               "assert(a.is_null == false)\n"
	               "assert(tostring(a) == 'John.Doe@Mail.Example.COM')\n"
	               "assert(type(a) == 'table')");
}

/* test_address_null_sender - "" is the null sender, with empty parts. */
static void test_address_null_sender(void **state)
{
	run_ok(*state, "local a = address('')\n"
	               "assert(a.is_null == true and a.address == '')\n"
	               "assert(a.local_part == '' and a.domain == '')\n"
	               "assert(tostring(a) == '' and a == address(''))\n"
	               "assert(a ~= address('a@b.example'))");
}

/* test_address_domain_compared_case_insensitively - and the local part exactly. */
static void test_address_domain_compared_case_insensitively(void **state)
{
	run_ok(*state,
	       "assert(address('User@Example.COM') == address('User@example.com'))\n"
	       "assert(address('User@example.com') ~= address('user@example.com'))\n"
	       "assert(address('a@b.example') ~= { local_part = 'a', domain = 'b.example' })");
}

/* test_address_quoted_and_utf8 - what SMTPUTF8 and RFC 5321 quoting allow. */
static void test_address_quoted_and_utf8(void **state)
{
	run_ok(
	    *state,
	    "local q = address('\"john doe\"@example.com')\n"
	    "assert(q.local_part == '\"john doe\"' and q.domain == 'example.com')\n"
	    "local u = address('\\xe7\\x94\\xa8@\\xe4\\xbe\\x8b.Example')\n"
	    "assert(u.local_part == '\\xe7\\x94\\xa8' and u.domain == '\\xe4\\xbe\\x8b.example')\n"
	    "assert(address('a@[192.0.2.1]').domain == '[192.0.2.1]')\n"
	    "assert(address('a@[IPv6:2001:DB8::1]').domain == '[ipv6:2001:db8::1]')");
}

/* test_address_refuses_angle_brackets - and line breaks, NULs, routes and bad syntax. */
static void test_address_refuses_angle_brackets(void **state)
{
	static const char *const bad[] = {
	    "address('<a@b.example>')",       "address('a@b.example>')",
	    "address('a@b.example> SIZE=1')", "address('a@b.example\\r\\nRCPT TO:<x@y.example')",
	    "address('a\\0@b.example')",      "address('@relay.example:a@b.example')",
	    "address('postmaster')",          "address('a b@example.com')",
	    "address('a..b@example.com')",    "address('a@-example.com')",
	    "address('\\xff@example.com')",   "address(string.rep('a', 65) .. '@example.com')",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		run_err(*state, bad[i], "not an address: \"");
	run_err(*state, "address('<a@b.example>')", "not an address: \"<a@b.example>\"");
}

/* test_address_push_splits_session_addresses - postmaster, null, quoted '@'. */
static void test_address_push_splits_session_addresses(void **state)
{
	run_ok(*state, "local p = session_address('Postmaster')\n"
	               "assert(p.local_part == 'Postmaster' and p.domain == '' and not p.is_null)\n"
	               "local n = session_address('')\n"
	               "assert(n.is_null and n.address == '')\n"
	               "local q = session_address('\"a@b\"@Example.COM')\n"
	               "assert(q.local_part == '\"a@b\"' and q.domain == 'example.com')\n"
	               "assert(q.address == '\"a@b\"@Example.COM')\n"
	               "assert(session_address('u@X.example') == address('u@x.example'))");
}

/* test_address_check_takes_tables_and_strings - recipients as RCPT TO takes them. */
static void test_address_check_takes_tables_and_strings(void **state)
{
	run_ok(*state, "assert(rcpt_text(address('u@Example.com')) == 'u@Example.com')\n"
	               "assert(rcpt_text('u@example.com') == 'u@example.com')\n"
	               "assert(rcpt_text('postmaster') == 'postmaster')\n"
	               "assert(rcpt_text(session_address('PostMaster')) == 'PostMaster')\n"
	               "assert(sender_text('') == '' and sender_text(address('')) == '')\n"
	               "assert(sender_text('s@example.com') == 's@example.com')");
	run_err(*state, "rcpt_text('')", "not an address: \"\"");
	run_err(*state, "rcpt_text(address(''))", "not an address: \"\"");
	run_err(*state, "rcpt_text('<a@b.example>')", "not an address: \"<a@b.example>\"");
	run_err(*state, "sender_text('postmaster')", "not an address: \"postmaster\"");
	run_err(*state, "rcpt_text(42)", "address or string expected, got number");
	run_err(*state, "rcpt_text({ address = 'a@b.example' })", "address or string expected");
	run_err(*state, "local a = address('a@b.example'); a.address = 'bad'; rcpt_text(a)",
	        "not an address: \"bad\"");
}

/* test_ip_helpers_for_the_engine - netaddr_ip_parse() and rule_ip_push(). */
static void test_ip_helpers_for_the_engine(void **state)
{
	struct netaddr_ip ip;
	char buf[NETADDR_IP_TEXT_MAX];

	assert_int_equal(netaddr_ip_parse("2001:db8::1", &ip), 0);
	assert_string_equal(netaddr_ip_format(&ip, buf, sizeof(buf)), "2001:db8::1");
	assert_int_equal(netaddr_ip_parse("192.0.2.1", &ip), 0);
	assert_int_equal(ip.addr[0], 192);
	assert_int_equal(ip.addr[4], 0);
	assert_null(netaddr_ip_format(&ip, buf, 4));
	assert_int_equal(netaddr_ip_parse("unknown", &ip), -1);
	assert_int_equal(netaddr_ip_parse("", &ip), -1);
	run_ok(*state, "local c = client_ip('::ffff:10.1.2.3')\n"
	               "assert(networks.private:contains(c) and c == ip('::ffff:10.1.2.3'))");
}

/* test_fqdn_lowercases_and_strips_trailing_dot - and keeps UTF-8 labels. */
static void test_fqdn_lowercases_and_strips_trailing_dot(void **state)
{
	run_ok(*state, "assert(fqdn('Mail.Example.COM.') == 'mail.example.com')\n"
	               "assert(fqdn('localhost') == 'localhost')\n"
	               "assert(fqdn('xn--bcher-kva.example') == 'xn--bcher-kva.example')\n"
	               "assert(fqdn('B\\xc3\\xbccher.Example') == 'b\\xc3\\xbccher.example')\n"
	               "local l63 = string.rep('a', 63)\n"
	               "assert(fqdn(l63 .. '.example') == l63 .. '.example')\n"
	               "local d253 = string.rep('a.', 126) .. 'b'\n"
	               "assert(#d253 == 253 and fqdn(d253) == d253)\n"
	               "assert(fqdn(d253 .. '.') == d253)");
}

/* test_fqdn_refuses_bad_names - empty labels, hyphens at the ends, underscores, lengths. */
static void test_fqdn_refuses_bad_names(void **state)
{
	static const char *const bad[] = {
	    "fqdn('')",
	    "fqdn('.')",
	    "fqdn('.example.com')",
	    "fqdn('a..example')",
	    "fqdn('example.com..')",
	    "fqdn('-a.example')",
	    "fqdn('a-.example')",
	    "fqdn('under_score.example')",
	    "fqdn('sp ace.example')",
	    "fqdn('a\\0.example')",
	    "fqdn('\\xff.example')",
	    "fqdn('\\xc0\\xaf.example')",
	    "fqdn(string.rep('a', 64) .. '.example')",
	    "fqdn(string.rep('a.', 127) .. 'a')",
	    "fqdn(string.rep('a.', 126) .. 'bc')",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		run_err(*state, bad[i], "not a domain name: \"");
	run_err(*state, "fqdn('a_b.example')", "not a domain name: \"a_b.example\"");
}

/* test_regex_matches_anywhere - an unanchored search, anchors when asked. */
static void test_regex_matches_anywhere(void **state)
{
	run_ok(*state, "local r = regex('sp[a4]m')\n"
	               "assert(r:match('buy spam now') and r:match('sp4m'))\n"
	               "assert(not r:match('SPAM') and not r:match('spm'))\n"
	               "assert(regex('^a+$'):match('aaa') and not regex('^a+$'):match('aab'))\n"
	               "assert(tostring(r) == 'sp[a4]m')");
}

/* test_regex_case_insensitive_flag - "i" sets REG_ICASE. */
static void test_regex_case_insensitive_flag(void **state)
{
	run_ok(*state, "assert(regex('^viagra', 'i'):match('VIAGRA offer'))\n"
	               "assert(not regex('^viagra'):match('VIAGRA offer'))\n"
	               "assert(regex('x', ''):match('x'))");
	run_err(*state, "regex('x', 'g')", "unknown regex flags (only \"i\" is known): \"g\"");
}

/* test_regex_compile_error_names_pattern - regerror's text and the pattern. */
static void test_regex_compile_error_names_pattern(void **state)
{
	run_err(*state, "regex('a(')", "in regex \"a(\"");
	run_err(*state, "regex('a(')", "nmatched");
	run_err(*state, "regex('a\\0b')", "a regex cannot hold a NUL byte: \"a\\000b\"");
}

/* test_regex_sees_past_nul_bytes - the whole subject, not up to its first NUL. */
static void test_regex_sees_past_nul_bytes(void **state)
{
	run_ok(*state, "assert(regex('b$'):match('a\\0b'))\n"
	               "assert(not regex('^a$'):match('a\\0b'))\n"
	               "assert(regex('^$'):match(''))");
}

/* test_ip_list_from_file_with_comments - comments, blanks, padding, CRLF, mapped. */
static void test_ip_list_from_file_with_comments(void **state)
{
	run_ok(*state,
	       "local l = ip_list('lists/ips.txt')\n"
	       "assert(#l == 5, #l)\n"
	       "assert(l:contains('10.20.30.40') and l:contains('192.0.2.1'))\n"
	       "assert(not l:contains('192.0.2.2'))\n"
	       "assert(l:contains('2001:db8::25') and l:contains('fe80::1'))\n"
	       "assert(l:contains('198.51.100.200') and l:contains('::ffff:198.51.100.1'))\n"
	       "assert(not l:contains('fe80::2') and not l:contains('unknown'))\n"
	       "assert(getmetatable(l) == 'vsmtpd.netset')");
}

/* test_ip_list_absolute_path - used as it is, not below the rules folder. */
static void test_ip_list_absolute_path(void **state)
{
	char chunk[512];

	snprintf(chunk, sizeof(chunk), "assert(#ip_list('%s/lists/ips.txt') == 5)",
	         test_data_dir());
	run_ok(*state, chunk);
}

/* test_list_error_names_file_and_line - a bad entry, for each kind of list. */
static void test_list_error_names_file_and_line(void **state)
{
	const char *dir = test_data_dir();
	char want[512];

	snprintf(want, sizeof(want), "%s/lists/ips_bad.txt:7: not an IP network: \"10.0.0.300\"",
	         dir);
	run_err(*state, "ip_list('lists/ips_bad.txt')", want);
	snprintf(want, sizeof(want),
	         "%s/lists/ips_host_bits.txt:2: host bits set in network \"10.0.0.1/8\"", dir);
	run_err(*state, "ip_list('lists/ips_host_bits.txt')", want);
	snprintf(want, sizeof(want),
	         "%s/lists/domains_bad.txt:3: not a domain name: \"bad_domain.example\"", dir);
	run_err(*state, "domain_list('lists/domains_bad.txt')", want);
	snprintf(want, sizeof(want),
	         "%s/lists/addresses_bad.txt:2: not an address: \"<user@example.com>\"", dir);
	run_err(*state, "address_list('lists/addresses_bad.txt')", want);
}

/* test_list_missing_file - the path and strerror. */
static void test_list_missing_file(void **state)
{
	char want[512];

	snprintf(want, sizeof(want), "cannot open %s/lists/nope.txt: No such file or directory",
	         test_data_dir());
	run_err(*state, "string_list('lists/nope.txt')", want);
	run_err(*state, "string_list('')", "not a file name: \"\"");
	run_err(*state, "string_list()", "bad argument #1 to 'string_list'");
}

/* write_temp - a temporary file holding text; its path into path. */
static void write_temp(char *path, size_t len, const char *text, size_t text_len)
{
	int fd;

	snprintf(path, len, "/tmp/test_rule_objects.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, text_len), (ssize_t)text_len);
	close(fd);
}

/* test_list_refuses_long_lines - over RULE_LIST_LINE_MAX bytes, with file and line. */
static void test_list_refuses_long_lines(void **state)
{
	char text[RULE_LIST_LINE_MAX + 16], path[64], chunk[256], want[128];

	memset(text, 'a', sizeof(text));
	memcpy(text, "ok\n", 3);
	text[3 + RULE_LIST_LINE_MAX] = '\n'; /* a line of exactly the limit */
	text[3 + RULE_LIST_LINE_MAX + 1] = '\n';
	text[sizeof(text) - 1] = '\n';
	write_temp(path, sizeof(path), text, 3 + RULE_LIST_LINE_MAX + 1);
	snprintf(chunk, sizeof(chunk), "assert(#string_list('%s') == 2)", path);
	run_ok(*state, chunk);
	unlink(path);

	memset(text, 'a', sizeof(text));
	memcpy(text, "ok\n\n", 4);
	text[sizeof(text) - 1] = '\n';
	write_temp(path, sizeof(path), text, sizeof(text));
	snprintf(chunk, sizeof(chunk), "string_list('%s')", path);
	snprintf(want, sizeof(want), "%s:3: line longer than %d bytes", path, RULE_LIST_LINE_MAX);
	run_err(*state, chunk, want);
	unlink(path);
}

/* test_list_refuses_nul_bytes - a NUL would cut an entry short. */
static void test_list_refuses_nul_bytes(void **state)
{
	char path[64], chunk[256], want[128];

	write_temp(path, sizeof(path), "a\nb\0c\n", 6);
	snprintf(chunk, sizeof(chunk), "string_list('%s')", path);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	run_err(*state, chunk, want);
	unlink(path);
}

/* test_list_last_line_without_newline - the final entry still counts. */
static void test_list_last_line_without_newline(void **state)
{
	char path[64], chunk[256];

	write_temp(path, sizeof(path), "10.0.0.0/8\n192.0.2.0/24", 23);
	snprintf(chunk, sizeof(chunk), "assert(ip_list('%s'):contains('192.0.2.9'))", path);
	run_ok(*state, chunk);
	unlink(path);
}

/* test_lists_refused_after_loading - without the rules folder key, nothing is opened. */
static void test_lists_refused_after_loading(void **state)
{
	lua_State *L = *state;

	run_ok(L, "kept = domain_list('lists/domains.txt')");
	lua_pushnil(L);
	lua_setfield(L, LUA_REGISTRYINDEX, RULE_OBJECTS_RULES_DIR_KEY);
	run_err(L, "ip_list('lists/ips.txt')",
	        "lists are loaded with the rules: call ip_list() at the top level of a rules "
	        "file, not inside a rule");
	run_err(L, "domain_list('/etc/hostname')", "call domain_list() at the top level");
	run_err(L, "address_list('lists/addresses.txt')", "call address_list() at the top level");
	run_err(L, "string_list('lists/strings.txt')", "call string_list() at the top level");
	/* What was loaded before keeps working in the sessions. */
	run_ok(L, "assert(kept:contains('example.com'))");
}

/* test_domain_list_subdomain_entries - ".example.net" covers below, not itself. */
static void test_lists_from_tables_need_no_file(void **state)
{
	lua_State *L = *state;

	/* Without the rules folder (as in a session) files are refused, tables not. */
	lua_pushnil(L);
	lua_setfield(L, LUA_REGISTRYINDEX, RULE_OBJECTS_RULES_DIR_KEY);
	run_ok(L, "local l = domain_list({'Example.COM', '.example.net'})\n"
		  "assert(#l == 2)\n"
		  "assert(l:contains('example.com') and l:contains('a.example.net'))\n"
		  "assert(not l:contains('example.net'))\n"
		  "local a = address_list({'@example.org', 'u@example.com'})\n"
		  "assert(a:contains('x@EXAMPLE.org') and a:contains('u@example.com'))\n"
		  "assert(not a:contains('v@example.com'))\n"
		  "assert(string_list({'a', 'b'}):contains('b'))");
	run_err(L, "domain_list({'ok.example', 'bad domain'})", "domain_list: entry 2: ");
	run_err(L, "address_list({'u@example.com', 42})", "address_list: entry 2 is not a string");
	run_err(L, "domain_list({''})", "entry 1: empty");
}

static void test_domain_list_subdomain_entries(void **state)
{
	run_ok(*state,
	       "local l = domain_list('lists/domains.txt')\n"
	       "assert(#l == 4, #l)\n"
	       "assert(l:contains('example.com') and l:contains('EXAMPLE.com.'))\n"
	       "assert(not l:contains('www.example.com'))\n"
	       "assert(not l:contains('example.net'))\n"
	       "assert(l:contains('a.example.net') and l:contains('a.B.Example.NET'))\n"
	       "assert(l:contains('spam.example.org'))\n"
	       "assert(l:contains('x.sub.example.org') and not l:contains('sub.example.org'))\n"
	       "assert(not l:contains('') and not l:contains('net'))\n"
	       "assert(l:contains(address('u@Mail.Example.NET')))\n"
	       "assert(not l:contains(address('')))\n"
	       "assert(getmetatable(l) == 'vsmtpd.domainlist')");
	run_err(*state, "domain_list('lists/domains.txt'):contains(42)",
	        "domain string or address expected");
	run_err(*state, "domain_list('lists/domains.txt').contains('example.com')",
	        "vsmtpd.domainlist expected, got string");
}

/* test_address_list_domain_entries - "@spam.example" covers the whole domain. */
static void test_address_list_domain_entries(void **state)
{
	run_ok(*state,
	       "local l = address_list('lists/addresses.txt')\n"
	       "assert(#l == 3, #l)\n"
	       "assert(l:contains('John.Doe@example.COM'))\n"
	       "assert(not l:contains('john.doe@example.com'))\n"
	       "assert(l:contains('anyone@SPAM.example') and l:contains('x@spam.example'))\n"
	       "assert(not l:contains('x@sub.spam.example'))\n"
	       "assert(l:contains('\"quoted user\"@example.org'))\n"
	       "assert(l:contains(address('John.Doe@Example.Com')))\n"
	       "assert(l:contains(session_address('who@Spam.Example')))\n"
	       "assert(not l:contains('x@example.com') and not l:contains(''))\n"
	       "assert(not l:contains('not an address') and not l:contains(address('')))");
	run_err(*state, "address_list('lists/addresses.txt'):contains(true)",
	        "address or string expected");
}

/* test_string_list_exact_lines - trimmed lines, compared exactly, counted once. */
static void test_string_list_exact_lines(void **state)
{
	run_ok(*state, "local l = string_list('lists/strings.txt')\n"
	               "assert(#l == 2, #l)\n"
	               "assert(l:contains('hello world') and l:contains('padded'))\n"
	               "assert(not l:contains('hello') and not l:contains('Hello world'))\n"
	               "assert(not l:contains('  padded  ') and not l:contains('# Strings'))");
}

/* main - run the tests. */
int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_ip_parses_and_prints_canonical_text),
	    T(test_lists_from_tables_need_no_file),
	    T(test_ip_equality),
	    T(test_ip_refuses_bad_text_naming_it),
	    T(test_ip4_and_ip6_require_their_family),
	    T(test_ip_error_has_rules_file_position),
	    T(test_net_parses_cidr_and_bare_addresses),
	    T(test_net_refuses_host_bits),
	    T(test_net_refuses_malformed_prefixes),
	    T(test_net_contains_ipv4_and_rejects_other_family),
	    T(test_net_contains_non_address_string_is_false),
	    T(test_mapped_ipv6_matches_ipv4_network),
	    T(test_contains_refuses_wrong_self_and_argument_types),
	    T(test_metatables_are_protected),
	    T(test_networks_contain),
	    T(test_netset_contains_any_member),
	    T(test_netset_drops_nested_networks_but_counts_them),
	    T(test_netset_refuses_bad_entries_naming_them),
	    T(test_netset_many_entries),
	    T(test_netset_agrees_with_linear_search),
	    T(test_private_networks),
	    T(test_non_routable_includes_documentation_ranges),
	    T(test_address_fields),
	    T(test_address_null_sender),
	    T(test_address_domain_compared_case_insensitively),
	    T(test_address_quoted_and_utf8),
	    T(test_address_refuses_angle_brackets),
	    T(test_address_push_splits_session_addresses),
	    T(test_address_check_takes_tables_and_strings),
	    T(test_ip_helpers_for_the_engine),
	    T(test_fqdn_lowercases_and_strips_trailing_dot),
	    T(test_fqdn_refuses_bad_names),
	    T(test_regex_matches_anywhere),
	    T(test_regex_case_insensitive_flag),
	    T(test_regex_compile_error_names_pattern),
	    T(test_regex_sees_past_nul_bytes),
	    T(test_ip_list_from_file_with_comments),
	    T(test_ip_list_absolute_path),
	    T(test_list_error_names_file_and_line),
	    T(test_list_missing_file),
	    T(test_list_refuses_long_lines),
	    T(test_list_refuses_nul_bytes),
	    T(test_list_last_line_without_newline),
	    T(test_lists_refused_after_loading),
	    T(test_domain_list_subdomain_entries),
	    T(test_address_list_domain_entries),
	    T(test_string_list_exact_lines),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
