/*
 * test_rules_zone.c - DNS answers from a zone file (rules_zone.c): the
 * parser's good and bad lines (each error names file:line), the messages
 * it builds, read back with c-ares' own parsers, what rules_dns_query()
 * and dns.lookup() give for a name that is not there, has no data, times
 * out or fails, and SPF checked by a ruleset loaded with a zone: no
 * server anywhere (the configured one is a port nothing listens on).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ares.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "envelope.h"
#include "rule_objects.h"
#include "rules.h"
#include "rules_dns.h"
#include "rules_zone.h"

#define NOWHERE "127.0.0.1:9" /* the configured server: the zone must answer instead */

static const char zone_text[] =
	"# the test zone\n"
	"\n"
	"a.test        A     192.0.2.1\n"
	"a.test        A     192.0.2.2\n"
	"A.Test.       AAAA  2001:db8::1    # any case, a trailing dot\n"
	"mx.test       MX    20 mx2.test\n"
	"mx.test       MX    10 mx1.test\n"
	"nullmx.test   MX    0 .\n"
	"txt.test      TXT   \"v=spf1 \" \"-all\"\n"
	"txt.test\tTXT\t\"say \\\"hi\\\" \\\\ \\065 # not a comment\"\n"
	"1.2.0.192.in-addr.arpa  PTR  host.test\n"
	"alias.test    CNAME a.test\n"
	"loop1.test    CNAME loop2.test\n"
	"loop2.test    CNAME loop1.test\n"
	"slow.test     TIMEOUT\n"
	"broken.test   SERVFAIL\n"
	"ok.spf.test   TXT   \"v=spf1 ip4:192.0.2.0/24 a:a.test -all\"\n"
	"slow.spf.test TXT   \"v=spf1 include:slow.test -all\"\n"
	"key._domainkey.sig.test TXT \"v=DKIM1; k=rsa; \" \"p=MIIB\"\n";

static char dir[64], zone_path[96], rules_file[96];

static int setup(void **state)
{
	FILE *fp;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-test-zone.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(zone_path, sizeof(zone_path), "%s/test.zone", dir);
	snprintf(rules_file, sizeof(rules_file), "%s/main.lua", dir);
	if ((fp = fopen(zone_path, "w")) == NULL)
		return -1;
	fputs(zone_text, fp);
	return fclose(fp);
}

static int teardown(void **state)
{
	(void)state;
	unlink(zone_path);
	unlink(rules_file);
	rmdir(dir);
	return 0;
}

/* ---- the parser --------------------------------------------------------- */

/* parse_error - the error of parsing text as z.txt ("" when it parses). */
static const char *parse_error(const char *text, char *err, size_t errlen)
{
	struct rules_zone *z;

	err[0] = '\0';
	z = rules_zone_parse("z.txt", text, strlen(text), err, errlen);
	if (z != NULL) {
		assert_string_equal(err, "");
		rules_zone_free(z);
	} else {
		assert_string_not_equal(err, "");
	}
	return err;
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *text, *error;
	} cases[] = {
		{"a.test A 192.0.2.300\n", "z.txt:1: not an IPv4 address: \"192.0.2.300\""},
		{"a.test AAAA 192.0.2.1\n", "z.txt:1: not an IPv6 address: \"192.0.2.1\""},
		{"a.test A\n", "z.txt:1: the address is missing"},
		{"# one\n\na.test AX 1\n", "z.txt:3: unknown type \"AX\" (A, AAAA, MX, TXT, PTR, "
					   "CNAME, TIMEOUT, SERVFAIL)"},
		{"a.test\n", "z.txt:1: a.test: the type is missing"},
		{"bad\\1name A 192.0.2.1\n", "z.txt:1: the name: not a domain name: \"bad\\1name\""},
		{"bad\\009name A 192.0.2.1\n", "z.txt:1: the name: not a domain name: \"bad\\009name\""},
		{"a.\\256 A 192.0.2.1\n", "z.txt:1: the name: not a domain name: \"a.\\256\""},
		{"a123456789012345678901234567890123456789012345678901234567890123.test A 192.0.2.1\n",
		 "z.txt:1: the name: not a domain name: "
		 "\"a123456789012345678901234567890123456789012345678901234567890123\""},
		{"a..test A 192.0.2.1\n", "z.txt:1: the name: not a domain name: \"a..test\""},
		{"a.test TXT \"open\n", "z.txt:1: TXT: a string without its closing quote"},
		{"a.test TXT bare\n", "z.txt:1: TXT: strings are written in double quotes"},
		{"a.test TXT\n", "z.txt:1: TXT needs at least one \"string\""},
		{"a.test TXT \"a\"\"b\"\n", "z.txt:1: TXT: strings are separated by blanks"},
		{"a.test TXT \"\\300\"\n", "z.txt:1: TXT: \\DDD takes three digits, at most 255"},
		{"a.test MX 70000 mx.test\n",
		 "z.txt:1: MX preference: not a number from 0 to 65535: \"70000\""},
		{"a.test MX ten mx.test\n",
		 "z.txt:1: MX preference: not a number from 0 to 65535: \"ten\""},
		{"a.test MX 10\n", "z.txt:1: the MX host is missing"},
		{"a.test PTR\n", "z.txt:1: the name is missing"},
		{"a.test A 192.0.2.1 extra\n", "z.txt:1: unexpected \"extra\" after the A value"},
		{"a.test TIMEOUT now\n", "z.txt:1: unexpected \"now\" after the TIMEOUT value"},
		{"a.test CNAME b.test\na.test A 192.0.2.1\n",
		 "z.txt:2: a.test: A cannot go with the CNAME record of line 1 (a CNAME, TIMEOUT or "
		 "SERVFAIL stands alone)"},
		{"a.test A 192.0.2.1\n\na.test SERVFAIL\n",
		 "z.txt:3: a.test: SERVFAIL cannot go with the A record of line 1 (a CNAME, TIMEOUT or "
		 "SERVFAIL stands alone)"},
		{"a.test TXT \"a\x01\"\n",
		 "z.txt:1: TXT: a control character in a string (write \\001)"},
	};
	char err[512], big[600];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(parse_error(cases[i].text, err, sizeof(err)), cases[i].error);
	/* a character-string holds 255 bytes; several make a longer record */
	snprintf(big, sizeof(big), "a.test TXT \"%0256d\"\n", 0);
	assert_string_equal(parse_error(big, err, sizeof(err)),
			    "z.txt:1: TXT: a string longer than 255 bytes (split it into several "
			    "\"...\" \"...\")");
	snprintf(big, sizeof(big), "a.test TXT \"%0255d\" \"%0255d\"\n", 0, 0);
	assert_string_equal(parse_error(big, err, sizeof(err)), "");
	/* a NUL inside a line */
	assert_null(rules_zone_parse("z.txt", "a.test A\0 1", 11, err, sizeof(err)));
	assert_string_equal(err, "z.txt:1: a NUL byte");
}

static void test_parse_good(void **state)
{
	char err[512];

	(void)state;
	assert_string_equal(parse_error(zone_text, err, sizeof(err)), "");
	assert_string_equal(parse_error("", err, sizeof(err)), "");
	assert_string_equal(parse_error("# only a comment", err, sizeof(err)), "");
	assert_string_equal(parse_error("a.test a 192.0.2.1\r\nb.test txt \"x\"\r\n", err,
					sizeof(err)),
			    "");
	assert_string_equal(parse_error("_dmarc.a.test TXT \"v=DMARC1; p=none\"#c", err,
					sizeof(err)),
			    "");
}

/* Names DNS allows but host names do not: what SPF macros expand to. */
static void test_names_with_any_character(void **state)
{
	const char *text = "space\\032name.test A 192.0.2.1\n"
			   "foo:bar/baz.test A 192.0.2.2\n"
			   "%{l}.test TXT \"x\"\n";
	struct rules_zone *z;
	unsigned char *answer;
	size_t len;
	char err[512];

	(void)state;
	assert_non_null(z = rules_zone_parse("z.txt", text, strlen(text), err, sizeof(err)));
	assert_int_equal(rules_zone_query(z, "SPACE name.test", ns_t_a, &answer, &len),
			 RULES_DNS_ANSWER);
	free(answer);
	assert_int_equal(rules_zone_query(z, "foo:bar/baz.test.", ns_t_a, &answer, &len),
			 RULES_DNS_ANSWER);
	free(answer);
	assert_int_equal(rules_zone_query(z, "%{l}.test", ns_t_txt, &answer, &len),
			 RULES_DNS_ANSWER);
	free(answer);
	assert_int_equal(rules_zone_query(z, "space\\032name.test", ns_t_a, &answer, &len),
			 RULES_DNS_NXDOMAIN);
	assert_int_equal(rules_zone_name_check("a b.test", 8), 8);
	assert_int_equal(rules_zone_name_check("a\tb.test", 8), 0);
	assert_int_equal(rules_zone_name_check("a..test", 7), 0);
	assert_int_equal(rules_zone_name_check("test.", 5), 4);
	rules_zone_free(z);
}

static void test_load_errors(void **state)
{
	char err[512], path[128];
	FILE *fp;

	(void)state;
	assert_null(rules_zone_load("/nonexistent/zone", err, sizeof(err)));
	assert_string_equal(err, "cannot open the DNS zone /nonexistent/zone: No such file or "
				 "directory");
	snprintf(path, sizeof(path), "%s/bad.zone", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("a.test A 192.0.2.1\nb.test MX 10\n", fp);
	fclose(fp);
	assert_null(rules_zone_load(path, err, sizeof(err)));
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_string_equal(err + strlen(path), ":2: the MX host is missing");
	unlink(path);
}

/* ---- the messages, through c-ares' parsers ---------------------------- */

/* zone - the test zone. */
static struct rules_zone *zone(void)
{
	char err[512];
	struct rules_zone *z = rules_zone_parse("test.zone", zone_text, strlen(zone_text), err,
						sizeof(err));

	if (z == NULL)
		fail_msg("%s", err);
	return z;
}

/* ask - rules_zone_query() that must give an answer. */
static unsigned char *ask(struct rules_zone *z, const char *name, int type, int *len)
{
	unsigned char *answer = NULL;
	size_t n = 0;

	assert_int_equal(rules_zone_query(z, name, type, &answer, &n), RULES_DNS_ANSWER);
	assert_non_null(answer);
	assert_true(n >= 12 && n < 65536);
	*len = (int)n;
	return answer;
}

static void test_encode_addresses(void **state)
{
	struct rules_zone *z = zone();
	struct ares_addrttl a4[4];
	struct ares_addr6ttl a6[4];
	struct hostent *host = NULL;
	char text[INET6_ADDRSTRLEN];
	unsigned char *m;
	int len, n = 4;

	(void)state;
	m = ask(z, "a.test", ns_t_a, &len);
	assert_int_equal(ares_parse_a_reply(m, len, NULL, a4, &n), ARES_SUCCESS);
	assert_int_equal(n, 2);
	assert_string_equal(inet_ntop(AF_INET, &a4[0].ipaddr, text, sizeof(text)), "192.0.2.1");
	assert_string_equal(inet_ntop(AF_INET, &a4[1].ipaddr, text, sizeof(text)), "192.0.2.2");
	assert_int_equal(a4[0].ttl, 300);
	free(m);
	/* any case, with a trailing dot */
	m = ask(z, "A.TEST.", ns_t_aaaa, &len);
	n = 4;
	assert_int_equal(ares_parse_aaaa_reply(m, len, NULL, a6, &n), ARES_SUCCESS);
	assert_int_equal(n, 1);
	assert_string_equal(inet_ntop(AF_INET6, &a6[0].ip6addr, text, sizeof(text)), "2001:db8::1");
	free(m);
	/* a CNAME is followed: the alias, then the target's addresses */
	m = ask(z, "alias.test", ns_t_a, &len);
	assert_int_equal(ares_parse_a_reply(m, len, &host, NULL, NULL), ARES_SUCCESS);
	assert_string_equal(host->h_name, "a.test");
	assert_string_equal(host->h_aliases[0], "alias.test");
	assert_non_null(host->h_addr_list[1]);
	assert_null(host->h_addr_list[2]);
	ares_free_hostent(host);
	free(m);
	/* asked for the CNAME itself */
	m = ask(z, "alias.test", ns_t_cname, &len);
	assert_int_equal(m[7], 1); /* one answer */
	free(m);
	rules_zone_free(z);
}

static void test_encode_mx_txt_ptr(void **state)
{
	static const unsigned char addr[4] = {192, 0, 2, 1};
	struct rules_zone *z = zone();
	struct ares_mx_reply *mx = NULL;
	struct ares_txt_ext *txt = NULL, *t;
	struct hostent *host = NULL;
	unsigned char *m;
	int len;

	(void)state;
	m = ask(z, "mx.test", ns_t_mx, &len);
	assert_int_equal(ares_parse_mx_reply(m, len, &mx), ARES_SUCCESS);
	assert_string_equal(mx->host, "mx2.test");
	assert_int_equal(mx->priority, 20);
	assert_string_equal(mx->next->host, "mx1.test");
	assert_int_equal(mx->next->priority, 10);
	assert_null(mx->next->next);
	ares_free_data(mx);
	free(m);
	m = ask(z, "nullmx.test", ns_t_mx, &len);
	assert_int_equal(ares_parse_mx_reply(m, len, &mx), ARES_SUCCESS);
	assert_string_equal(mx->host, "");
	assert_int_equal(mx->priority, 0);
	ares_free_data(mx);
	free(m);
	/* two records, the first of two character-strings */
	m = ask(z, "txt.test", ns_t_txt, &len);
	assert_int_equal(ares_parse_txt_reply_ext(m, len, &txt), ARES_SUCCESS);
	t = txt;
	assert_true(t->record_start);
	assert_int_equal(t->length, 7);
	assert_memory_equal(t->txt, "v=spf1 ", 7);
	t = t->next;
	assert_false(t->record_start);
	assert_memory_equal(t->txt, "-all", 4);
	t = t->next;
	assert_true(t->record_start);
	assert_int_equal(t->length, strlen("say \"hi\" \\ A # not a comment"));
	assert_memory_equal(t->txt, "say \"hi\" \\ A # not a comment", t->length);
	assert_null(t->next);
	ares_free_data(txt);
	free(m);
	m = ask(z, "1.2.0.192.in-addr.arpa", ns_t_ptr, &len);
	assert_int_equal(ares_parse_ptr_reply(m, len, addr, 4, AF_INET, &host), ARES_SUCCESS);
	assert_string_equal(host->h_name, "host.test");
	ares_free_hostent(host);
	free(m);
	rules_zone_free(z);
}

static void test_query_results(void **state)
{
	struct rules_zone *z = zone();
	unsigned char *m = (unsigned char *)"x";
	size_t len = 1;

	(void)state;
	assert_int_equal(rules_zone_query(z, "none.test", ns_t_a, &m, &len), RULES_DNS_NXDOMAIN);
	assert_null(m);
	assert_int_equal(len, 0);
	assert_int_equal(rules_zone_query(z, "mx.test", ns_t_a, &m, &len), RULES_DNS_NODATA);
	assert_int_equal(rules_zone_query(z, "a.test", ns_t_txt, &m, &len), RULES_DNS_NODATA);
	assert_int_equal(rules_zone_query(z, "slow.test", ns_t_a, &m, &len), RULES_DNS_TIMEOUT);
	assert_int_equal(rules_zone_query(z, "broken.test", ns_t_mx, &m, &len), RULES_DNS_FAIL);
	assert_int_equal(rules_zone_query(z, "loop1.test", ns_t_a, &m, &len), RULES_DNS_FAIL);
	/* a name longer than any in the zone, and a suffix of one */
	assert_int_equal(rules_zone_query(z, "test", ns_t_a, &m, &len), RULES_DNS_NXDOMAIN);
	assert_int_equal(rules_zone_query(z, "", ns_t_a, &m, &len), RULES_DNS_NXDOMAIN);
	assert_null(m);
	rules_zone_free(z);
}

/* ---- rules_dns_query() and dns.lookup() over a zone ------------------- */

/* zone_state - a Lua state with ip(), the dns table and the test zone. */
static lua_State *zone_state(void)
{
	char err[512] = "";
	lua_State *L = luaL_newstate();

	assert_non_null(L);
	luaL_openlibs(L);
	rule_objects_open(L);
	if (rules_dns_open(L, NOWHERE, 1000, err, sizeof(err)) != 0 ||
	    rules_dns_zone(L, zone_path, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	return L;
}

/* eval - run chunk; its results joined with "|" ("error: ..." when it raised). */
static const char *eval(lua_State *L, const char *chunk, char *out, size_t outlen)
{
	int i, n;

	out[0] = '\0';
	if (luaL_dostring(L, chunk) != LUA_OK) {
		snprintf(out, outlen, "error: %s", lua_tostring(L, -1));
	} else {
		for (i = 1, n = lua_gettop(L); i <= n; i++)
			snprintf(out + strlen(out), outlen - strlen(out), "%s%s", i > 1 ? "|" : "",
				 luaL_tolstring(L, i, NULL));
	}
	lua_settop(L, 0);
	return out;
}

#define assert_eval(L, chunk, expected)                                                            \
	do {                                                                                       \
		char out_[1024];                                                                   \
		assert_string_equal(eval(L, chunk, out_, sizeof(out_)), expected);                 \
	} while (0)

static void test_rules_dns_query_over_zone(void **state)
{
	lua_State *L = zone_state();
	struct ares_txt_ext *txt = NULL;
	unsigned char *m;
	size_t len;

	(void)state;
	assert_int_equal(rules_dns_query(L, "txt.test", ns_t_txt, 0, &m, &len), RULES_DNS_ANSWER);
	assert_int_equal(ares_parse_txt_reply_ext(m, (int)len, &txt), ARES_SUCCESS);
	ares_free_data(txt);
	free(m);
	assert_int_equal(rules_dns_query(L, "none.test", ns_t_txt, 0, &m, &len), RULES_DNS_NXDOMAIN);
	assert_null(m);
	assert_int_equal(rules_dns_query(L, "a.test", ns_t_txt, 0, &m, &len), RULES_DNS_NODATA);
	assert_int_equal(rules_dns_query(L, "slow.test", ns_t_txt, 0, &m, &len), RULES_DNS_TIMEOUT);
	assert_int_equal(rules_dns_query(L, "broken.test", ns_t_txt, 0, &m, &len), RULES_DNS_FAIL);
	assert_null(m);
	lua_close(L);
}

static void test_dns_lookup_over_zone(void **state)
{
	lua_State *L = zone_state();

	(void)state;
	assert_eval(L, "return table.concat(dns.lookup('a.test'), ',')",
		    "192.0.2.1,192.0.2.2,2001:db8::1");
	assert_eval(L, "return table.concat(dns.lookup('alias.test', 'A'), ',')",
		    "192.0.2.1,192.0.2.2");
	assert_eval(L, "local t = dns.lookup('mx.test', 'MX') "
		       "return t[1].exchange .. '/' .. t[1].preference .. ' ' .. t[2].exchange",
		    "mx1.test/10 mx2.test");
	assert_eval(L, "return table.concat(dns.lookup('txt.test', 'txt'), '|')",
		    "v=spf1 -all|say \"hi\" \\ A # not a comment");
	assert_eval(L, "return dns.rlookup('192.0.2.1')[1]", "host.test");
	/* nothing there: an empty list; no answer: nil and the reason */
	assert_eval(L, "return #dns.lookup('none.test', 'A')", "0");
	assert_eval(L, "return #dns.lookup('mx.test', 'A')", "0");
	assert_eval(L, "return dns.lookup('slow.test', 'A')", "nil|timeout");
	assert_eval(L, "return dns.lookup('broken.test')", "nil|servfail");
	assert_eval(L, "return dns.lookup('loop1.test', 'A')", "nil|servfail");
	lua_close(L);
}

/* ---- a ruleset loaded with a zone -------------------------------------- */

static const char rules_lua[] =
	"return {\n"
	"  mail = { rule \"spf\" (function(ctx)\n"
	"    local r = ctx:spf()\n"
	"    local a, why = dns.lookup(ctx.mail_from.domain, 'A')\n"
	"    return status.info(code(450, nil, r.result .. ' ' .. (r.mechanism or '-') .. ' '\n"
	"      .. (a and #a or why)))\n"
	"  end) },\n"
	"}\n";

/* load - the test rules with the zone at zone (NULL: none); err when NULL. */
static struct rules *load(const char *zone_file, char *err, size_t errlen)
{
	struct rules_limits limits = {.instructions = 1000000, .memory = 8 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com", .local_domains = "",
					  .trusted_networks = "", .dns_servers = NOWHERE,
					  .dns_timeout_ms = 300, .dns_zone = zone_file};
	FILE *fp = fopen(rules_file, "w");

	assert_non_null(fp);
	fputs(rules_lua, fp);
	fclose(fp);
	return rules_load(rules_file, &limits, &settings, err, errlen);
}

/* spf - the mail stage's reply for a client and a sender. */
static const char *spf(struct rules *r, const char *ip, const char *sender, char *out,
		       size_t outlen)
{
	struct envelope env = {0};
	struct rule_ctx ctx = {.client_ip = ip, .helo = "h.test", .server_name = "mx.example.com"};
	struct rule_verdict v;

	assert_int_equal(envelope_set(&env.mail_from, sender), 0);
	ctx.env = &env;
	rules_run(r, RULE_STAGE_MAIL, &ctx, &v);
	snprintf(out, outlen, "%s", v.status == RULE_INFO ? v.reply.text : rules_status_name(v.status));
	rules_ctx_release(&ctx);
	envelope_clear(&env);
	return out;
}

static void test_spf_over_zone(void **state)
{
	struct rules *r;
	char err[512], out[600];

	(void)state;
	r = load(zone_path, err, sizeof(err));
	if (r == NULL)
		fail_msg("%s", err);
	assert_string_equal(spf(r, "192.0.2.77", "x@ok.spf.test", out, sizeof(out)),
			    "pass ip4:192.0.2.0/24 0");
	assert_string_equal(spf(r, "198.51.100.1", "x@ok.spf.test", out, sizeof(out)),
			    "fail -all 0");
	assert_string_equal(spf(r, "198.51.100.1", "x@a.test", out, sizeof(out)), "none - 2");
	assert_string_equal(spf(r, "198.51.100.1", "x@nowhere.test", out, sizeof(out)),
			    "none - 0");
	assert_string_equal(spf(r, "198.51.100.1", "x@slow.spf.test", out, sizeof(out)),
			    "temperror - 0");
	assert_string_equal(spf(r, "198.51.100.1", "x@slow.test", out, sizeof(out)),
			    "temperror - timeout");
	assert_string_equal(spf(r, "198.51.100.1", "x@broken.test", out, sizeof(out)),
			    "temperror - servfail");
	rules_free(r);
}

static void test_rules_load_with_a_bad_zone(void **state)
{
	char err[512], path[128];
	FILE *fp;

	(void)state;
	assert_null(load("/nonexistent/zone", err, sizeof(err)));
	assert_string_equal(err, "cannot open the DNS zone /nonexistent/zone: No such file or "
				 "directory");
	snprintf(path, sizeof(path), "%s/bad.zone", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("\n\nok.test TXT \"v=spf1 -all\" x\n", fp);
	fclose(fp);
	assert_null(load(path, err, sizeof(err)));
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_string_equal(err + strlen(path), ":3: TXT: strings are written in double quotes");
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_names_with_any_character),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_encode_addresses),
		cmocka_unit_test(test_encode_mx_txt_ptr),
		cmocka_unit_test(test_query_results),
		cmocka_unit_test(test_rules_dns_query_over_zone),
		cmocka_unit_test(test_dns_lookup_over_zone),
		cmocka_unit_test(test_spf_over_zone),
		cmocka_unit_test(test_rules_load_with_a_bad_zone),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
