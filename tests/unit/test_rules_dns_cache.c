/*
 * test_rules_dns_cache.c - the rules' DNS cache (rules_dns_cache.c): the
 * TTLs read from answers built here (the smallest of the answer section,
 * RFC 2308's negative TTL from the SOA, malformed messages), keeping and
 * expiring, the bound on entries, and, against dnsmasq on loopback, that a
 * second lookup of a record with a TTL asks no server (dnsmasq's query log
 * and its stop show it) while a record with TTL 0 and a failure are asked
 * again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "helper_dnsmasq.h"
#include "helper_mail.h"
#include "rules_dns.h"
#include "rules_dns_cache.h"

/* ---- messages built here ------------------------------------------------ */

struct msg {
	unsigned char b[1024];
	size_t len;
};

/* put - append raw bytes. */
static void put(struct msg *m, const void *p, size_t n)
{
	assert_true(m->len + n <= sizeof(m->b));
	memcpy(m->b + m->len, p, n);
	m->len += n;
}

/* put16, put32 - big-endian numbers. */
static void put16(struct msg *m, unsigned v)
{
	unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};

	put(m, b, 2);
}

static void put32(struct msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

/* put_name - "a.test" as labels. */
static void put_name(struct msg *m, const char *name)
{
	const char *p = name, *dot;
	unsigned char n;

	while (*p) {
		dot = strchr(p, '.');
		n = (unsigned char)(dot ? (size_t)(dot - p) : strlen(p));
		put(m, &n, 1);
		put(m, p, n);
		p += n + (dot != NULL);
	}
	put(m, "", 1);
}

/* header - a response header with its counts, and the question. */
static void header(struct msg *m, unsigned rcode, unsigned an, unsigned ns, int type)
{
	m->len = 0;
	put16(m, 0x1234);
	put16(m, 0x8180 | rcode);
	put16(m, 1);
	put16(m, an);
	put16(m, ns);
	put16(m, 0);
	put_name(m, "a.test");
	put16(m, (unsigned)type);
	put16(m, 1);
}

/* txt_rr - a TXT record of a.test (a pointer to the question's name). */
static void txt_rr(struct msg *m, uint32_t ttl)
{
	put16(m, 0xc00c);
	put16(m, ns_t_txt);
	put16(m, 1);
	put32(m, ttl);
	put16(m, 4);
	put(m, "\003abc", 4);
}

/* soa_rr - the SOA of test with its TTL and MINIMUM. */
static void soa_rr(struct msg *m, uint32_t ttl, uint32_t minimum)
{
	put_name(m, "test");
	put16(m, ns_t_soa);
	put16(m, 1);
	put32(m, ttl);
	put16(m, 8 + 9 + 20); /* "ns.test", "h.test" and five numbers */
	put_name(m, "ns.test");
	put_name(m, "h.test");
	put32(m, 1);
	put32(m, 3600);
	put32(m, 600);
	put32(m, 86400);
	put32(m, minimum);
}

/* ---- TTLs ------------------------------------------------------------------ */

static void test_ttl_of_an_answer_is_the_smallest(void **state)
{
	struct msg m;

	(void)state;
	header(&m, 0, 3, 0, ns_t_txt);
	txt_rr(&m, 300);
	txt_rr(&m, 60);
	txt_rr(&m, 900);
	assert_int_equal(dns_cache_ttl(m.b, m.len, RULES_DNS_ANSWER), 60);
	/* RFC 2181 section 8: a TTL with the top bit set is 0 */
	header(&m, 0, 1, 0, ns_t_txt);
	txt_rr(&m, 0x80000000u);
	assert_int_equal(dns_cache_ttl(m.b, m.len, RULES_DNS_ANSWER), 0);
}

static void test_negative_ttl_from_the_soa(void **state)
{
	struct msg m;

	(void)state;
	header(&m, 3, 0, 1, ns_t_txt); /* NXDOMAIN */
	soa_rr(&m, 3600, 120);
	assert_int_equal(dns_cache_ttl(m.b, m.len, RULES_DNS_NXDOMAIN), 120);
	header(&m, 0, 0, 1, ns_t_txt); /* NODATA: the SOA's own TTL is smaller */
	soa_rr(&m, 30, 120);
	assert_int_equal(dns_cache_ttl(m.b, m.len, RULES_DNS_NODATA), 30);
	/* without a SOA nothing says how long */
	header(&m, 3, 0, 0, ns_t_txt);
	assert_int_equal(dns_cache_ttl(m.b, m.len, RULES_DNS_NXDOMAIN), -1);
}

static void test_malformed_messages_have_no_ttl(void **state)
{
	struct msg m;
	size_t cut;

	(void)state;
	header(&m, 0, 1, 0, ns_t_txt);
	txt_rr(&m, 300);
	for (cut = 0; cut < m.len; cut++)
		assert_int_equal(dns_cache_ttl(m.b, cut, RULES_DNS_ANSWER), -1);
	/* a count larger than the records there */
	m.b[7] = 2;
	assert_int_equal(dns_cache_ttl(m.b, m.len, RULES_DNS_ANSWER), -1);
	/* a label type that does not exist (0x40) */
	header(&m, 0, 1, 0, ns_t_txt);
	m.b[12] = 0x41;
	assert_int_equal(dns_cache_ttl(m.b, m.len, RULES_DNS_ANSWER), -1);
}

/* ---- keeping -------------------------------------------------------------- */

static void test_kept_until_the_ttl_runs_out(void **state)
{
	struct rules_dns_cache *c = rules_dns_cache_new();
	enum rules_dns_result res;
	unsigned char *answer;
	size_t len;
	struct msg m;

	(void)state;
	header(&m, 0, 1, 0, ns_t_txt);
	txt_rr(&m, 30);
	rules_dns_cache_put(c, "a.test", ns_t_txt, 1000, RULES_DNS_ANSWER, m.b, m.len);
	assert_int_equal(rules_dns_cache_get(c, "A.Test", ns_t_txt, 30999, &res, &answer, &len), 1);
	assert_int_equal(res, RULES_DNS_ANSWER);
	assert_int_equal(len, m.len);
	assert_memory_equal(answer, m.b, len);
	free(answer);
	/* another type is another question */
	assert_int_equal(rules_dns_cache_get(c, "a.test", ns_t_a, 2000, &res, &answer, &len), 0);
	assert_int_equal(rules_dns_cache_get(c, "a.test", ns_t_txt, 31000, &res, &answer, &len), 0);
	assert_null(answer);

	/* a negative answer: its result, no message */
	header(&m, 3, 0, 1, ns_t_mx);
	soa_rr(&m, 600, 60);
	rules_dns_cache_put(c, "a.test", ns_t_mx, 1000, RULES_DNS_NXDOMAIN, m.b, m.len);
	assert_int_equal(rules_dns_cache_get(c, "a.test", ns_t_mx, 2000, &res, &answer, &len), 1);
	assert_int_equal(res, RULES_DNS_NXDOMAIN);
	assert_null(answer);

	/* a TTL of 0, a timeout and a failure are never kept */
	header(&m, 0, 1, 0, ns_t_txt);
	txt_rr(&m, 0);
	rules_dns_cache_put(c, "b.test", ns_t_txt, 1000, RULES_DNS_ANSWER, m.b, m.len);
	rules_dns_cache_put(c, "c.test", ns_t_txt, 1000, RULES_DNS_TIMEOUT, m.b, m.len);
	rules_dns_cache_put(c, "d.test", ns_t_txt, 1000, RULES_DNS_FAIL, m.b, m.len);
	assert_int_equal(rules_dns_cache_get(c, "b.test", ns_t_txt, 1000, &res, &answer, &len), 0);
	assert_int_equal(rules_dns_cache_get(c, "c.test", ns_t_txt, 1000, &res, &answer, &len), 0);
	assert_int_equal(rules_dns_cache_get(c, "d.test", ns_t_txt, 1000, &res, &answer, &len), 0);
	/* a TTL past the cap is cut to it */
	header(&m, 0, 1, 0, ns_t_txt);
	txt_rr(&m, 86400);
	rules_dns_cache_put(c, "e.test", ns_t_txt, 0, RULES_DNS_ANSWER, m.b, m.len);
	assert_int_equal(rules_dns_cache_get(c, "e.test", ns_t_txt,
					     RULES_DNS_CACHE_TTL_MAX * 1000ull - 1, &res, &answer,
					     &len), 1);
	free(answer);
	assert_int_equal(rules_dns_cache_get(c, "e.test", ns_t_txt, RULES_DNS_CACHE_TTL_MAX * 1000ull,
					     &res, &answer, &len), 0);
	rules_dns_cache_free(c);
}

static void test_the_least_recently_used_goes_first(void **state)
{
	struct rules_dns_cache *c = rules_dns_cache_new();
	enum rules_dns_result res;
	unsigned char *answer;
	char name[32];
	size_t len, i;
	struct msg m;

	(void)state;
	header(&m, 0, 1, 0, ns_t_txt);
	txt_rr(&m, 300);
	for (i = 0; i < RULES_DNS_CACHE_SIZE; i++) {
		snprintf(name, sizeof(name), "n%zu.test", i);
		rules_dns_cache_put(c, name, ns_t_txt, 1000, RULES_DNS_ANSWER, m.b, m.len);
	}
	/* n0 is used again; n1 is now the oldest */
	assert_int_equal(rules_dns_cache_get(c, "n0.test", ns_t_txt, 1000, &res, &answer, &len), 1);
	free(answer);
	rules_dns_cache_put(c, "new.test", ns_t_txt, 1000, RULES_DNS_ANSWER, m.b, m.len);
	assert_int_equal(rules_dns_cache_get(c, "n1.test", ns_t_txt, 1000, &res, &answer, &len), 0);
	assert_int_equal(rules_dns_cache_get(c, "n0.test", ns_t_txt, 1000, &res, &answer, &len), 1);
	free(answer);
	assert_int_equal(rules_dns_cache_get(c, "new.test", ns_t_txt, 1000, &res, &answer, &len), 1);
	free(answer);
	rules_dns_cache_free(c);
}

/* ---- against dnsmasq -------------------------------------------------------- */

/* count_queries - how many times dnsmasq's log shows a query for name. */
static int count_queries(const char *log, const char *name)
{
	char *text = test_read_file(log, NULL), *p, needle[300];
	int n = 0;

	if (text == NULL)
		return 0;
	snprintf(needle, sizeof(needle), "]: query[TXT] %s from", name);
	for (p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(text);
	return n;
}

/* query_txt - rules_dns_query for a TXT record: its result. */
static enum rules_dns_result query_txt(lua_State *L, const char *name)
{
	enum rules_dns_result res;
	unsigned char *answer;
	size_t len;

	res = rules_dns_query(L, name, ns_t_txt, 0, &answer, &len);
	free(answer);
	return res;
}

static void test_a_second_lookup_asks_no_server(void **state)
{
	static const char *const zone[] = {"local-ttl=300", "txt-record=kept.test,v=spf1 -all"};
	static const char *const zone0[] = {"txt-record=zero.test,v=spf1 -all"};
	char dir[] = "/tmp/test_rules_dns_cache.XXXXXX", log[300], err[256];
	struct dnsmasq dns = {0}, dns0 = {0};
	lua_State *L, *L0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(log, sizeof(log), "%s/dnsmasq.log", dir);
	dns.log = log;
	assert_int_equal(dnsmasq_start(&dns, "test", zone, 2), 0);
	assert_int_equal(dnsmasq_start(&dns0, "test", zone0, 1), 0);
	L = luaL_newstate();
	L0 = luaL_newstate();
	luaL_requiref(L, "_G", luaopen_base, 1);
	lua_pop(L, 1);
	assert_int_equal(rules_dns_open(L, dns.servers, 1000, err, sizeof(err)), 0);
	assert_int_equal(rules_dns_open(L0, dns0.servers, 1000, err, sizeof(err)), 0);

	assert_int_equal(query_txt(L, "kept.test"), RULES_DNS_ANSWER);
	assert_int_equal(query_txt(L, "kept.test"), RULES_DNS_ANSWER);
	/* dns.lookup shares the cache */
	if (luaL_dostring(L, "local t = dns.lookup('kept.test', 'TXT')\n"
			     "assert(t[1] == 'v=spf1 -all', tostring(t[1]))") != LUA_OK)
		fail_msg("%s", lua_tostring(L, -1));
	usleep(100000); /* the log is written after the answer */
	assert_int_equal(count_queries(log, "kept.test"), 1);

	/* with the server gone, the kept answer still comes; another name fails,
	 * again and again (a failure is not kept) */
	dnsmasq_stop(&dns);
	assert_int_equal(query_txt(L, "kept.test"), RULES_DNS_ANSWER);
	assert_int_not_equal(query_txt(L, "other.test"), RULES_DNS_ANSWER);
	assert_int_not_equal(query_txt(L, "other.test"), RULES_DNS_ANSWER);

	/* dnsmasq gives its own records TTL 0 by default: nothing is kept */
	assert_int_equal(query_txt(L0, "zero.test"), RULES_DNS_ANSWER);
	dnsmasq_stop(&dns0);
	assert_int_not_equal(query_txt(L0, "zero.test"), RULES_DNS_ANSWER);

	lua_close(L);
	lua_close(L0);
	unlink(log);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ttl_of_an_answer_is_the_smallest),
	    cmocka_unit_test(test_negative_ttl_from_the_soa),
	    cmocka_unit_test(test_malformed_messages_have_no_ttl),
	    cmocka_unit_test(test_kept_until_the_ttl_runs_out),
	    cmocka_unit_test(test_the_least_recently_used_goes_first),
	    cmocka_unit_test(test_a_second_lookup_asks_no_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
