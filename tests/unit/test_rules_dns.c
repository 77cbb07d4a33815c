/*
 * test_rules_dns.c - the rules' `dns` table: checks of names, addresses and
 * server lists, reverse names, and lookups against a small DNS responder
 * this test runs itself on a loopback UDP port (a child process answering
 * from a fixed zone), so that nothing outside the test is needed. Among
 * them: lookups from a process confined like a session (Landlock, no file
 * at all), a fresh resolver in every forked process, lookups from a
 * ruleset across rules_restore(), and rules_dns_query()'s raw answers,
 * parsed here with c-ares' parsers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "rule_objects.h"
#include "resolver.h"
#include "rules.h"
#include "rules_dns.h"
#include "sandbox.h"

/* ---- a DNS responder with a fixed zone --------------------------------- */

#define T_A 1
#define T_CNAME 5
#define T_PTR 12
#define T_MX 15
#define T_TXT 16
#define T_AAAA 28

struct resp {
	unsigned char b[1024];
	size_t len;
	unsigned ancount;
};

/* put - append raw bytes. */
static void put(struct resp *r, const void *p, size_t n)
{
	if (r->len + n <= sizeof(r->b)) {
		memcpy(r->b + r->len, p, n);
		r->len += n;
	}
}

static void put16(struct resp *r, unsigned v)
{
	unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};

	put(r, b, 2);
}

/* put_name - a name as labels; NULL is a pointer to the question name. */
static void put_name(struct resp *r, const char *name)
{
	const char *p = name, *dot;
	unsigned char n;

	if (name == NULL) {
		put16(r, 0xc00c);
		return;
	}
	while (*p) {
		dot = strchr(p, '.');
		n = (unsigned char)(dot ? (size_t)(dot - p) : strlen(p));
		put(r, &n, 1);
		put(r, p, n);
		p += n + (dot != NULL);
	}
	put(r, "", 1);
}

/* rr_begin - an RR's header; returns where its rdlength goes. */
static size_t rr_begin(struct resp *r, const char *owner, unsigned type)
{
	size_t at;

	put_name(r, owner);
	put16(r, type);
	put16(r, 1);
	put16(r, 0);
	put16(r, 60); /* ttl */
	at = r->len;
	put16(r, 0);
	r->ancount++;
	return at;
}

static void rr_end(struct resp *r, size_t at)
{
	size_t n = r->len - at - 2;

	r->b[at] = (unsigned char)(n >> 8);
	r->b[at + 1] = (unsigned char)n;
}

static void rr_addr(struct resp *r, const char *owner, unsigned type, const char *text)
{
	unsigned char a[16];
	size_t at = rr_begin(r, owner, type);

	inet_pton(type == T_A ? AF_INET : AF_INET6, text, a);
	put(r, a, type == T_A ? 4 : 16);
	rr_end(r, at);
}

static void rr_name(struct resp *r, unsigned type, const char *target)
{
	size_t at = rr_begin(r, NULL, type);

	put_name(r, target);
	rr_end(r, at);
}

static void rr_mx(struct resp *r, unsigned pref, const char *host)
{
	size_t at = rr_begin(r, NULL, T_MX);

	put16(r, pref);
	put_name(r, host);
	rr_end(r, at);
}

/* rr_txt - a TXT record of the strings (NULL-terminated list). */
static void rr_txt(struct resp *r, const char *const *strings)
{
	size_t at = rr_begin(r, NULL, T_TXT);
	unsigned char n;

	for (; *strings; strings++) {
		n = (unsigned char)strlen(*strings);
		put(r, &n, 1);
		put(r, *strings, n);
	}
	rr_end(r, at);
}

/*
 * zone - the answer to (name, type) into r. Returns the rcode, or -1 to
 * send nothing.
 */
static int zone(const char *name, unsigned type, unsigned id, struct resp *r)
{
	char text[64];
	int i;

	if (strcmp(name, "v4.test") == 0 || strcmp(name, "up.test") == 0) {
		if (type == T_A) {
			rr_addr(r, NULL, T_A, "192.0.2.1");
			rr_addr(r, NULL, T_A, "192.0.2.2");
		} else if (type == T_AAAA) {
			rr_addr(r, NULL, T_AAAA, "2001:db8::1");
		}
		return 0;
	}
	if (strcmp(name, "v6.test") == 0) {
		if (type == T_AAAA)
			rr_addr(r, NULL, T_AAAA, "2001:db8::2");
		return 0;
	}
	if (strcmp(name, "cname.test") == 0) {
		if (type == T_A) {
			rr_name(r, T_CNAME, "v4.test");
			rr_addr(r, "v4.test", T_A, "192.0.2.1");
		}
		return 0;
	}
	if (strcmp(name, "many.test") == 0) {
		for (i = 1; type == T_A && i <= 30; i++) {
			snprintf(text, sizeof(text), "192.0.2.%d", i);
			rr_addr(r, NULL, T_A, text);
		}
		return 0;
	}
	if (strcmp(name, "mx.test") == 0) {
		if (type == T_MX) {
			rr_mx(r, 20, "MX2.Example.TEST");
			rr_mx(r, 10, "mx1.example.test");
			rr_mx(r, 10, "a-mx.example.test");
		}
		return 0;
	}
	if (strcmp(name, "manymx.test") == 0) {
		for (i = 22; type == T_MX && i >= 1; i--) {
			snprintf(text, sizeof(text), "m%02d.t", i);
			rr_mx(r, (unsigned)i, text);
		}
		return 0;
	}
	if (strcmp(name, "nullmx.test") == 0) {
		if (type == T_MX)
			rr_mx(r, 0, "");
		return 0;
	}
	if (strcmp(name, "txt.test") == 0) {
		static const char *const spf[] = {"v=spf1 ", "-all", NULL};
		static const char *const hello[] = {"hello", NULL};
		static const char *const empty[] = {"", NULL};

		if (type == T_TXT) {
			rr_txt(r, spf);
			rr_txt(r, hello);
			rr_txt(r, empty);
		}
		return 0;
	}
	if (strcmp(name, "id.test") == 0) {
		const char *strings[] = {text, NULL};

		snprintf(text, sizeof(text), "%u", id); /* the query's id */
		if (type == T_TXT)
			rr_txt(r, strings);
		return 0;
	}
	if (strcmp(name, "1.2.0.192.in-addr.arpa") == 0) {
		if (type == T_PTR) {
			rr_name(r, T_PTR, "Host.Example.test");
			rr_name(r, T_PTR, "alias.example.test");
		}
		return 0;
	}
	if (strcmp(name, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa") ==
	    0) {
		if (type == T_PTR)
			rr_name(r, T_PTR, "v6host.example.test");
		return 0;
	}
	if (strcmp(name, "9.2.0.192.in-addr.arpa") == 0) {
		if (type == T_PTR)
			rr_name(r, T_PTR, "evil name\".example.test");
		return 0;
	}
	if (strcmp(name, "bad.test") == 0) {
		/* one answer announced, three bytes of it sent */
		put(r, "\xc0\x0c\x00", 3);
		r->ancount = 1;
		return 0;
	}
	if (strcmp(name, "fail.test") == 0)
		return 2;
	if (strcmp(name, "refused.test") == 0)
		return 5;
	if (strcmp(name, "drop.test") == 0)
		return -1;
	if (strcmp(name, "half.test") == 0) {
		if (type == T_AAAA)
			return -1;
		rr_addr(r, NULL, T_A, "192.0.2.9");
		return 0;
	}
	if (strcmp(name, "halffail.test") == 0)
		return type == T_AAAA ? 2 : 0;
	return 3; /* NXDOMAIN */
}

/* respond - the reply to query q (n bytes); its length or 0. */
static size_t respond(const unsigned char *q, size_t n, struct resp *r)
{
	char name[256];
	size_t pos = 12, out = 0;
	unsigned type;
	int rcode;

	if (n < 12 || q[4] != 0 || q[5] != 1)
		return 0;
	while (pos < n && q[pos] != 0) {
		size_t l = q[pos], i;

		if (l > 63 || pos + 1 + l >= n || out + l + 1 >= sizeof(name))
			return 0;
		for (i = 0; i < l; i++) {
			char c = (char)q[pos + 1 + i];

			name[out++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
		name[out++] = '.';
		pos += 1 + l;
	}
	if (pos + 5 > n)
		return 0;
	name[out ? out - 1 : 0] = '\0';
	type = (unsigned)q[pos + 1] << 8 | q[pos + 2];
	pos += 5;
	memset(r, 0, sizeof(*r));
	r->len = pos; /* header and question, filled in below */
	if ((rcode = zone(name, type, (unsigned)q[0] << 8 | q[1], r)) < 0)
		return 0;
	memcpy(r->b, q, pos);
	r->b[2] = 0x80 | (q[2] & 0x01); /* QR, RD as asked */
	r->b[3] = (unsigned char)(0x80 | rcode); /* RA */
	r->b[6] = (unsigned char)(r->ancount >> 8);
	r->b[7] = (unsigned char)r->ancount;
	memset(r->b + 8, 0, 4);
	return r->len;
}

/* serve - the responder's loop, in its own process. */
static void serve(int fd)
{
	unsigned char q[1024];
	struct sockaddr_storage from;
	struct resp r;
	socklen_t flen;
	ssize_t n;
	size_t len;

	for (;;) {
		flen = sizeof(from);
		n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
		if (n <= 0)
			continue;
		len = respond(q, (size_t)n, &r);
		if (len > 0)
			sendto(fd, r.b, len, 0, (struct sockaddr *)&from, flen);
	}
}

static pid_t responder_pid;
static char servers[64];        /* "127.0.0.1:port" of the responder */
static char closed_servers[64]; /* a port where nothing listens */

/* udp_socket - a UDP socket on 127.0.0.1, any port; its port in *port. */
static int udp_socket(unsigned *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	*port = ntohs(sa.sin_port);
	return fd;
}

static int start_responder(void **state)
{
	unsigned port;
	int fd = udp_socket(&port);
	pid_t parent = getpid();

	(void)state;
	if (fd < 0)
		return -1;
	snprintf(servers, sizeof(servers), "127.0.0.1:%u", port);
	if ((responder_pid = fork()) < 0)
		return -1;
	if (responder_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		alarm(300);
		serve(fd);
		_exit(0);
	}
	close(fd);
	/* a port that was free a moment ago: nothing answers there */
	if ((fd = udp_socket(&port)) < 0)
		return -1;
	close(fd);
	snprintf(closed_servers, sizeof(closed_servers), "127.0.0.1:%u", port);
	return 0;
}

static int stop_responder(void **state)
{
	(void)state;
	if (responder_pid > 0) {
		kill(responder_pid, SIGKILL);
		waitpid(responder_pid, NULL, 0);
	}
	return 0;
}

/* ---- Lua helpers ------------------------------------------------------- */

static const char show_lua[] =
	"function show(res, err)\n"
	"  if res == nil then return 'nil ' .. tostring(err) end\n"
	"  local out = {}\n"
	"  for i, v in ipairs(res) do\n"
	"    if type(v) == 'table' then out[i] = v.preference .. ':' .. v.exchange\n"
	"    else out[i] = v end\n"
	"  end\n"
	"  return 'ok ' .. table.concat(out, ',')\n"
	"end\n";

/* new_state - a Lua state with ip() and the dns table. */
static lua_State *new_state(const char *srv, unsigned timeout_ms)
{
	char err[256] = "";
	lua_State *L = luaL_newstate();

	assert_non_null(L);
	luaL_openlibs(L);
	rule_objects_open(L);
	if (rules_dns_open(L, srv, timeout_ms, err, sizeof(err)) != 0)
		fail_msg("rules_dns_open(%s): %s", srv, err);
	assert_int_equal(luaL_dostring(L, show_lua), LUA_OK);
	return L;
}

/* eval - run chunk; its string result, or "error: message". */
static const char *eval(lua_State *L, const char *chunk, char *out, size_t outlen)
{
	if (luaL_dostring(L, chunk) != LUA_OK)
		snprintf(out, outlen, "error: %s", lua_tostring(L, -1));
	else
		snprintf(out, outlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
	lua_settop(L, 0);
	return out;
}

#define assert_eval(L, chunk, expected)                                                            \
	do {                                                                                       \
		char out_[2048];                                                                   \
		assert_string_equal(eval(L, chunk, out_, sizeof(out_)), expected);                 \
	} while (0)

#define assert_raises(L, chunk, what)                                                              \
	do {                                                                                       \
		char out_[2048];                                                                   \
		eval(L, chunk, out_, sizeof(out_));                                                \
		if (strncmp(out_, "error: ", 7) != 0 || strstr(out_, what) == NULL)                \
			fail_msg("%s: expected an error with \"%s\", got \"%s\"", chunk, what, out_); \
	} while (0)

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* ---- checks without a server ------------------------------------------- */

static void test_name_check(void **state)
{
	char big[300];

	(void)state;
	assert_int_equal(resolver_name_check("example.org", 11), 11);
	assert_int_equal(resolver_name_check("example.org.", 12), 11);
	assert_int_equal(resolver_name_check("_dmarc.Example.ORG", 18), 18);
	assert_int_equal(resolver_name_check("2.0.0.127.zen.example", 21), 21);
	assert_int_equal(resolver_name_check("localhost", 9), 9);
	assert_int_equal(resolver_name_check("", 0), 0);
	assert_int_equal(resolver_name_check(".", 1), 0);
	assert_int_equal(resolver_name_check("a..b", 4), 0);
	assert_int_equal(resolver_name_check(".a", 2), 0);
	assert_int_equal(resolver_name_check("a.b..", 5), 0);
	assert_int_equal(resolver_name_check("a b", 3), 0);
	assert_int_equal(resolver_name_check("a\\.b", 4), 0);
	assert_int_equal(resolver_name_check("caf\xc3\xa9.fr", 8), 0);
	assert_int_equal(resolver_name_check("*.example", 9), 0);
	/* 63-byte labels pass, 64 do not */
	memset(big, 'a', 64);
	big[64] = '\0';
	assert_int_equal(resolver_name_check(big, 63), 63);
	assert_int_equal(resolver_name_check(big, 64), 0);
	/* 253 bytes pass (254 with the trailing dot), 254 do not */
	memset(big, 'a', sizeof(big));
	for (size_t i = 50; i < sizeof(big); i += 51)
		big[i] = '.';
	big[252] = 'a';
	big[253] = '.';
	assert_int_equal(resolver_name_check(big, 253), 253);
	assert_int_equal(resolver_name_check(big, 254), 253);
	big[253] = 'a';
	assert_int_equal(resolver_name_check(big, 254), 0);
}

static void test_reverse_names(void **state)
{
	char out[RESOLVER_REVERSE_MAX];

	(void)state;
	assert_int_equal(resolver_reverse_name("192.0.2.1", out, sizeof(out)), 22);
	assert_string_equal(out, "1.2.0.192.in-addr.arpa");
	resolver_reverse_name("255.255.255.255", out, sizeof(out));
	assert_string_equal(out, "255.255.255.255.in-addr.arpa");
	assert_int_equal(resolver_reverse_name("2001:db8::567:89ab", out, sizeof(out)), 72);
	assert_string_equal(out, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	resolver_reverse_name("::1", out, sizeof(out));
	assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
	/* IPv4-mapped: the IPv4 name */
	resolver_reverse_name("::ffff:198.51.100.7", out, sizeof(out));
	assert_string_equal(out, "7.100.51.198.in-addr.arpa");
	assert_int_equal(resolver_reverse_name("192.0.2", out, sizeof(out)), -1);
	assert_int_equal(resolver_reverse_name("192.0.2.01", out, sizeof(out)), -1);
	assert_int_equal(resolver_reverse_name("example.org", out, sizeof(out)), -1);
	assert_int_equal(resolver_reverse_name("fe80::1%eth0", out, sizeof(out)), -1);
	assert_int_equal(resolver_reverse_name("", out, sizeof(out)), -1);
	assert_int_equal(resolver_reverse_name("192.0.2.1", out, 20), -1);
}

static void test_server_words(void **state)
{
	(void)state;
	assert_null(resolver_check_server("127.0.0.1"));
	assert_null(resolver_check_server("127.0.0.1:5353"));
	assert_null(resolver_check_server("::1"));
	assert_null(resolver_check_server("2001:db8::53"));
	assert_null(resolver_check_server("[::1]"));
	assert_null(resolver_check_server("[2001:db8::53]:65535"));
	assert_non_null(resolver_check_server("localhost"));
	assert_non_null(resolver_check_server("127.0.0.1:0"));
	assert_non_null(resolver_check_server("127.0.0.1:65536"));
	assert_non_null(resolver_check_server("127.0.0.1:99999"));
	assert_non_null(resolver_check_server("127.0.0.1:"));
	assert_non_null(resolver_check_server("127.0.0.1:53x"));
	assert_non_null(resolver_check_server("127.0.0.1:+53"));
	assert_non_null(resolver_check_server("[127.0.0.1]:53"));
	assert_non_null(resolver_check_server("[::1"));
	assert_non_null(resolver_check_server("[::1]53"));
	assert_non_null(resolver_check_server("fe80::1%eth0"));
	assert_non_null(resolver_check_server("1.2.3"));
	assert_non_null(resolver_check_server(""));
}

static void test_open_errors(void **state)
{
	char err[256];
	lua_State *L = luaL_newstate();

	(void)state;
	err[0] = '\0';
	assert_int_equal(rules_dns_open(L, "127.0.0.1, nameserver", 1000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "dns_servers"));
	assert_non_null(strstr(err, "\"nameserver\""));
	assert_int_equal(rules_dns_open(L, "127.0.0.1:70000", 1000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "port"));
	assert_int_equal(
		rules_dns_open(L, "1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 1.1.1.9",
			       1000, err, sizeof(err)),
		-1);
	assert_non_null(strstr(err, "at most"));
	lua_getglobal(L, "dns");
	assert_true(lua_isnil(L, -1)); /* nothing registered on failure */
	lua_pop(L, 1);
	/* blanks and commas both separate; IPv6 with and without port */
	assert_int_equal(rules_dns_open(L, " 127.0.0.1:53,[::1]:5353 ::1 ", 1000, err, sizeof(err)), 0);
	lua_getglobal(L, "dns");
	assert_true(lua_istable(L, -1));
	lua_pop(L, 1);
	/* the system's resolvers (whatever /etc/resolv.conf says; no query) */
	assert_int_equal(rules_dns_open(L, "", 1000, err, sizeof(err)), 0);
	assert_int_equal(rules_dns_open(L, NULL, 0, err, sizeof(err)), 0);
	lua_close(L);
}

static void test_misuse_raises(void **state)
{
	/* a closed port: a check that let a bad name through would not hang */
	lua_State *L = new_state(closed_servers, 2000);

	(void)state;
	assert_raises(L, "return dns.lookup('not a domain')", "not a domain name: \"not a domain\"");
	assert_raises(L, "return dns.lookup('')", "not a domain name");
	assert_raises(L, "return dns.lookup('a..b')", "not a domain name");
	assert_raises(L, "return dns.lookup('a\\0b')", "not a domain name: \"a\\000b\"");
	assert_raises(L, "return dns.lookup(string.rep('a', 64) .. '.test')", "not a domain name");
	assert_raises(L, "return dns.lookup(string.rep('a.', 127) .. 'test')", "not a domain name");
	assert_raises(L, "return dns.lookup(string.rep('x', 5000))", "...");
	assert_raises(L, "return dns.lookup()", "bad argument #1");
	assert_raises(L, "return dns.lookup({})", "bad argument #1");
	assert_raises(L, "return dns.lookup('example.org', 'SRV')", "unknown type");
	assert_raises(L, "return dns.lookup('example.org', 'A\\0')", "unknown type");
	assert_raises(L, "return dns.lookup('example.org', {})", "bad argument #2");
	assert_raises(L, "return dns.rlookup('example.org')", "not an IP address: \"example.org\"");
	assert_raises(L, "return dns.rlookup('192.0.2.1/32')", "not an IP address");
	assert_raises(L, "return dns.rlookup()", "bad argument #1");
	assert_raises(L, "return dns.rlookup(net('192.0.2.0/24'))", "bad argument #1");
	lua_close(L);
}

/* ---- lookups against the responder -------------------------------------- */

static void test_addresses(void **state)
{
	lua_State *L = new_state(servers, 2000);

	(void)state;
	assert_eval(L, "return show(dns.lookup('v4.test'))", "ok 192.0.2.1,192.0.2.2,2001:db8::1");
	assert_eval(L, "return show(dns.lookup('v4.test', 'A'))", "ok 192.0.2.1,192.0.2.2");
	assert_eval(L, "return show(dns.lookup('v4.test', 'a'))", "ok 192.0.2.1,192.0.2.2");
	assert_eval(L, "return show(dns.lookup('V4.Test.', 'AAAA'))", "ok 2001:db8::1");
	assert_eval(L, "return show(dns.lookup('v6.test'))", "ok 2001:db8::2");
	assert_eval(L, "return show(dns.lookup('v6.test', 'A'))", "ok ");
	assert_eval(L, "return show(dns.lookup('cname.test', 'A'))", "ok 192.0.2.1");
	assert_eval(L, "return #dns.lookup('many.test', 'A')", "20");
	assert_eval(L, "local r = dns.lookup('many.test', 'A') return r[1] .. ' ' .. r[20]",
		    "192.0.2.1 192.0.2.20");
	lua_close(L);
}

static void test_mx_txt_ptr(void **state)
{
	lua_State *L = new_state(servers, 2000);

	(void)state;
	assert_eval(L, "return show(dns.lookup('mx.test', 'MX'))",
		    "ok 10:a-mx.example.test,10:mx1.example.test,20:mx2.example.test");
	assert_eval(L, "return math.type(dns.lookup('mx.test', 'MX')[1].preference)", "integer");
	assert_eval(L, "local r = dns.lookup('manymx.test', 'MX') "
		       "return #r .. ' ' .. r[1].exchange .. ' ' .. r[20].exchange",
		    "20 m01.t m20.t");
	assert_eval(L, "return show(dns.lookup('nullmx.test', 'MX'))", "ok 0:");
	assert_eval(L, "return show(dns.lookup('txt.test', 'TXT'))", "ok v=spf1 -all,hello,");
	assert_eval(L, "return #dns.lookup('txt.test', 'TXT')", "3");
	assert_eval(L, "return show(dns.lookup('1.2.0.192.in-addr.arpa', 'PTR'))",
		    "ok host.example.test,alias.example.test");
	assert_eval(L, "return show(dns.rlookup('192.0.2.1'))",
		    "ok host.example.test,alias.example.test");
	assert_eval(L, "return show(dns.rlookup(ip('192.0.2.1')))",
		    "ok host.example.test,alias.example.test");
	assert_eval(L, "return show(dns.rlookup('::ffff:192.0.2.1'))",
		    "ok host.example.test,alias.example.test");
	assert_eval(L, "return show(dns.rlookup('2001:db8::1'))", "ok v6host.example.test");
	assert_eval(L, "return show(dns.rlookup('192.0.2.77'))", "ok ");
	lua_close(L);
}

static void test_misses_and_failures(void **state)
{
	struct timespec t0;
	lua_State *L = new_state(servers, 600);
	long ms;

	(void)state;
	assert_eval(L, "return show(dns.lookup('nx.test'))", "ok ");
	assert_eval(L, "return show(dns.lookup('nx.test', 'MX'))", "ok ");
	assert_eval(L, "return show(dns.lookup('v4.test', 'MX'))", "ok ");
	assert_eval(L, "return show(dns.lookup('fail.test'))", "nil servfail");
	assert_eval(L, "return show(dns.lookup('refused.test', 'TXT'))", "nil servfail");
	/* a hostile answer: cut short, or a name that is no host name */
	assert_eval(L, "return show(dns.lookup('bad.test', 'A'))", "nil servfail");
	assert_eval(L, "return show(dns.rlookup('192.0.2.9'))", "nil servfail");
	/* one family failed, the other gave nothing: no answer at all */
	assert_eval(L, "return show(dns.lookup('halffail.test'))", "nil servfail");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_eval(L, "return show(dns.lookup('drop.test', 'A'))", "nil timeout");
	ms = elapsed_ms(&t0);
	if (ms < 550 || ms > 1100)
		fail_msg("the timeout took %ld ms, not about 600", ms);

	/* one family answered, the other did not: what was found */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_eval(L, "return show(dns.lookup('half.test'))", "ok 192.0.2.9");
	ms = elapsed_ms(&t0);
	if (ms > 1100)
		fail_msg("half.test took %ld ms", ms);

	/* the channel is still good after a cancelled query */
	assert_eval(L, "return show(dns.lookup('v4.test', 'A'))", "ok 192.0.2.1,192.0.2.2");
	lua_close(L);

	/* nothing listens: refused at once, or a timeout; never an answer */
	L = new_state(closed_servers, 500);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	{
		char out[256];

		eval(L, "return show(dns.lookup('v4.test'))", out, sizeof(out));
		if (strcmp(out, "nil servfail") != 0 && strcmp(out, "nil timeout") != 0)
			fail_msg("closed port: %s", out);
	}
	assert_true(elapsed_ms(&t0) < 1000);
	lua_close(L);
}

/* ---- rules_dns_query(): raw answers ------------------------------------ */

/* query - rules_dns_query() with the checks every outcome shares. */
static enum rules_dns_result query(lua_State *L, const char *name, int type, unsigned ms,
				   unsigned char **answer, size_t *len)
{
	enum rules_dns_result r = rules_dns_query(L, name, type, ms, answer, len);

	if (r == RULES_DNS_ANSWER) {
		assert_non_null(*answer);
		assert_true(*len >= 12);
		assert_int_equal((*answer)[3] & 0x0f, 0); /* NOERROR */
	} else {
		assert_null(*answer);
		assert_int_equal(*len, 0);
	}
	return r;
}

static void test_query_answers(void **state)
{
	static const char *const txt_expected[] = {"v=spf1 ", "-all", "hello", ""};
	static const int txt_starts[] = {1, 0, 1, 1};
	lua_State *L = new_state(servers, 2000);
	struct ares_txt_ext *txt = NULL, *t;
	struct ares_mx_reply *mx = NULL;
	struct ares_addrttl addrs[4];
	unsigned char *answer;
	size_t len;
	int n = 4, i;

	(void)state;
	/* TXT: every record, every character-string, in the order sent */
	assert_int_equal(query(L, "txt.test", T_TXT, 0, &answer, &len), RULES_DNS_ANSWER);
	assert_int_equal(ares_parse_txt_reply_ext(answer, (int)len, &txt), ARES_SUCCESS);
	for (t = txt, i = 0; t != NULL; t = t->next, i++) {
		assert_true(i < 4);
		assert_int_equal(t->length, strlen(txt_expected[i]));
		assert_memory_equal(t->txt, txt_expected[i], t->length);
		assert_int_equal(t->record_start, txt_starts[i]);
	}
	assert_int_equal(i, 4);
	ares_free_data(txt);
	free(answer);

	/* MX: as the server sent them (sorting is the caller's) */
	assert_int_equal(query(L, "MX.Test.", T_MX, 0, &answer, &len), RULES_DNS_ANSWER);
	assert_int_equal(ares_parse_mx_reply(answer, (int)len, &mx), ARES_SUCCESS);
	assert_non_null(mx);
	assert_int_equal(mx->priority, 20);
	assert_string_equal(mx->host, "MX2.Example.TEST");
	assert_non_null(mx->next);
	assert_int_equal(mx->next->priority, 10);
	assert_string_equal(mx->next->host, "mx1.example.test");
	assert_non_null(mx->next->next);
	assert_null(mx->next->next->next);
	ares_free_data(mx);
	free(answer);

	/* A through a CNAME: the whole message, the chain included */
	assert_int_equal(query(L, "cname.test", T_A, 0, &answer, &len), RULES_DNS_ANSWER);
	assert_int_equal(ares_parse_a_reply(answer, (int)len, NULL, addrs, &n), ARES_SUCCESS);
	assert_int_equal(n, 1);
	assert_int_equal(addrs[0].ttl, 60);
	assert_int_equal(ntohl(addrs[0].ipaddr.s_addr), 0xc0000201); /* 192.0.2.1 */
	free(answer);
	lua_close(L);
}

static void test_query_misses_and_failures(void **state)
{
	lua_State *L = new_state(servers, 600), *bare = luaL_newstate();
	struct timespec t0;
	unsigned char *answer = (unsigned char *)"x";
	size_t len = 1;
	long ms;

	(void)state;
	assert_int_equal(query(L, "nx.test", T_TXT, 0, &answer, &len), RULES_DNS_NXDOMAIN);
	assert_int_equal(query(L, "v4.test", T_MX, 0, &answer, &len), RULES_DNS_NODATA);
	assert_int_equal(query(L, "v6.test", T_A, 0, &answer, &len), RULES_DNS_NODATA);
	assert_int_equal(query(L, "fail.test", T_TXT, 0, &answer, &len), RULES_DNS_FAIL);
	assert_int_equal(query(L, "refused.test", T_TXT, 0, &answer, &len), RULES_DNS_FAIL);
	/* an answer section cut short comes as it is: the parser refuses it */
	assert_int_equal(query(L, "bad.test", T_A, 0, &answer, &len), RULES_DNS_ANSWER);
	assert_int_equal(ares_parse_a_reply(answer, (int)len, NULL, NULL, NULL), ARES_EBADRESP);
	free(answer);

	/* a silent server: the time given, when shorter than the configured one */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(query(L, "drop.test", T_TXT, 250, &answer, &len), RULES_DNS_TIMEOUT);
	ms = elapsed_ms(&t0);
	if (ms < 200 || ms > 550)
		fail_msg("a 250 ms query took %ld ms", ms);
	/* ... and never longer than the configured one */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(query(L, "drop.test", T_A, 60000, &answer, &len), RULES_DNS_TIMEOUT);
	ms = elapsed_ms(&t0);
	if (ms < 550 || ms > 1100)
		fail_msg("the configured 600 ms took %ld ms", ms);
	/* the channel answers again after a timed-out query */
	assert_int_equal(query(L, "v4.test", T_A, 0, &answer, &len), RULES_DNS_ANSWER);
	free(answer);
	lua_close(L);

	/* no `dns` table registered: no channel, a failure */
	assert_int_equal(query(bare, "v4.test", T_A, 0, &answer, &len), RULES_DNS_FAIL);
	lua_close(bare);

	/* nothing listens: refused at once, or a timeout; never an answer */
	L = new_state(closed_servers, 500);
	switch (query(L, "v4.test", T_A, 0, &answer, &len)) {
	case RULES_DNS_FAIL:
	case RULES_DNS_TIMEOUT:
		break;
	default:
		fail_msg("an answer from a closed port");
	}
	lua_close(L);
}

/* Exit codes of the confined child. */
enum { CHILD_OK = 0, CHILD_ENTER, CHILD_FILES, CHILD_USED, CHILD_FRESH, CHILD_IDS,
       CHILD_NO_LANDLOCK = 77 };

/* Two query ids in a row, "id1/id2": they tell one resolver state from another. */
static const char ids_lua[] =
	"return dns.lookup('id.test', 'TXT')[1] .. '/' .. dns.lookup('id.test', 'TXT')[1]";

/*
 * confined_child - a session's situation: Landlock, then lookups; writes
 * the query ids of both states to out_fd.
 */
static int confined_child(lua_State *used, lua_State *fresh, int out_fd)
{
	char out[512], ids[256];
	int ruleset = sandbox_prepare(NULL, 0);
	size_t n;

	if (ruleset < 0)
		return CHILD_NO_LANDLOCK;
	if (sandbox_enter(ruleset) != 1)
		return CHILD_ENTER;
	if (open("/etc/resolv.conf", O_RDONLY) >= 0 || open("/etc/hosts", O_RDONLY) >= 0 ||
	    open("/dev/urandom", O_RDONLY) >= 0)
		return CHILD_FILES;
	/* a state whose channel was made before the fork, by the parent */
	if (strcmp(eval(used, "return show(dns.lookup('v4.test'))", out, sizeof(out)),
		   "ok 192.0.2.1,192.0.2.2,2001:db8::1") != 0)
		return CHILD_USED;
	/* a state that never looked anything up, as in a session */
	if (strcmp(eval(fresh, "return show(dns.lookup('mx.test', 'MX'))", out, sizeof(out)),
		   "ok 10:a-mx.example.test,10:mx1.example.test,20:mx2.example.test") != 0 ||
	    strcmp(eval(fresh, "return show(dns.rlookup('2001:db8::1'))", out, sizeof(out)),
		   "ok v6host.example.test") != 0 ||
	    strcmp(eval(fresh, "return show(dns.lookup('nx.test'))", out, sizeof(out)), "ok ") != 0)
		return CHILD_FRESH;
	eval(used, ids_lua, out, sizeof(out));
	n = (size_t)snprintf(ids, sizeof(ids), "%s ", out);
	eval(fresh, ids_lua, out, sizeof(out));
	n += (size_t)snprintf(ids + n, sizeof(ids) - n, "%s", out);
	if (strstr(ids, "error") != NULL || write(out_fd, ids, n) != (ssize_t)n)
		return CHILD_IDS;
	return CHILD_OK;
}

/* run_confined - fork a confined child; its ids into out, or -1 to skip. */
static int run_confined(lua_State *used, lua_State *fresh, char *out, size_t outlen)
{
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		_exit(confined_child(used, fresh, fds[1]));
	}
	close(fds[1]);
	n = read(fds[0], out, outlen - 1);
	close(fds[0]);
	out[n > 0 ? n : 0] = '\0';
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == CHILD_NO_LANDLOCK)
		return -1;
	assert_int_equal(WEXITSTATUS(status), CHILD_OK);
	return 0;
}

/*
 * Lookups from confined processes work (c-ares reads no file there), and
 * each process has its own resolver: a child that reused its parent's would
 * send the query ids the parent sends next, and two children that created
 * theirs from the same inherited rand() state would send the same ones.
 */
static void test_confined_lookups(void **state)
{
	lua_State *used = new_state(servers, 2000), *fresh = new_state(servers, 2000);
	char a[256], b[256], parent[256], used_a[128], fresh_a[128], used_b[128], fresh_b[128];

	(void)state;
	assert_eval(used, "return show(dns.lookup('v4.test', 'A'))", "ok 192.0.2.1,192.0.2.2");
	if (run_confined(used, fresh, a, sizeof(a)) < 0 || run_confined(used, fresh, b, sizeof(b)) < 0) {
		lua_close(used);
		lua_close(fresh);
		skip();
	}
	eval(used, ids_lua, parent, sizeof(parent));
	assert_int_equal(sscanf(a, "%127s %127s", used_a, fresh_a), 2);
	assert_int_equal(sscanf(b, "%127s %127s", used_b, fresh_b), 2);
	assert_string_not_equal(used_a, parent);
	assert_string_not_equal(used_b, parent);
	assert_string_not_equal(used_a, used_b);
	assert_string_not_equal(fresh_a, fresh_b);
	/* the parent's resolver is unharmed by the children closing their copies */
	assert_eval(used, "return show(dns.lookup('v4.test', 'A'))", "ok 192.0.2.1,192.0.2.2");
	lua_close(used);
	lua_close(fresh);
}

static void test_lookups_after_a_restore(void **state)
{
	static const char rules_lua[] =
		"local seen = 0\n"
		"return { connect = { rule \"dns\" (function(ctx)\n"
		"  seen = seen + 1\n"
		"  local r = dns.lookup('v4.test', 'A')\n"
		"  return status.info(code(450, nil, seen .. ' ' .. table.concat(r, ',')))\n"
		"end) } }\n";
	struct rules_limits limits = {.instructions = 1000000, .memory = 4 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com", .local_domains = "",
					  .trusted_networks = "", .dns_servers = servers,
					  .dns_timeout_ms = 2000};
	char dir[] = "/tmp/vsmtpd-test-dns.XXXXXX", path[64], err[512];
	struct rule_verdict v;
	struct rules *r;
	FILE *fp;
	int i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/main.lua", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs(rules_lua, fp);
	fclose(fp);
	if ((r = rules_load(path, &limits, &settings, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	/* the channel the first lookup makes outlives the restores */
	for (i = 0; i < 3; i++) {
		struct rule_ctx ctx = {.client_ip = "203.0.113.5", .helo = "", .server_name = "mx"};

		rules_run(r, RULE_STAGE_CONNECT, &ctx, &v);
		assert_int_equal(v.status, RULE_INFO);
		assert_string_equal(v.reply.text, "1 192.0.2.1,192.0.2.2");
		assert_int_equal(rules_restore(r), 0);
		rules_ctx_release(&ctx);
	}
	rules_free(r);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_check),
		cmocka_unit_test(test_reverse_names),
		cmocka_unit_test(test_server_words),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_misuse_raises),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_mx_txt_ptr),
		cmocka_unit_test(test_misses_and_failures),
		cmocka_unit_test(test_query_answers),
		cmocka_unit_test(test_query_misses_and_failures),
		cmocka_unit_test(test_confined_lookups),
		cmocka_unit_test(test_lookups_after_a_restore),
	};

	return cmocka_run_group_tests(tests, start_responder, stop_responder);
}
