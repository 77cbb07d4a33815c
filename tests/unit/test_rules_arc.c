/*
 * test_rules_arc.c - ctx:arc() against an independent sealer and a real
 * DNS server: chains made by python3-dkim's arcsign (one hop, two hops of
 * two domains and keys), keys served by dnsmasq (helper_dnsmasq.c); broken
 * and tampered chains; a UDP socket that never answers for a DNS timeout.
 * The relaxed canonicalization is compared with python3-dkim's on tricky
 * inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helper_dnsmasq.h"
#include "helper_mail.h"
#include "message.h"
#include "rules.h"
#include "rules_arc.h"

static struct dnsmasq dns;
static char dir[256];  /* scratch folder */
static char data[512]; /* tests/unit/data */
static char rec1[2048], rec2[2048];
static int silent_fd = -1;
static unsigned silent_port;

/* The rule: "result|instances|oldest_pass|reason|set;set" with each set as
 * "instance:domain:selector:ams_result:as_result". */
static const char rules_lua[] =
	"return { preq = { rule \"arc\" (function(ctx)\n"
	"  local a = ctx:arc()\n"
	"  local sets = {}\n"
	"  for _, s in ipairs(a.sets) do\n"
	"    sets[#sets + 1] = table.concat({s.instance, s.domain or '', s.selector or '',\n"
	"      s.ams_result or '', s.as_result or ''}, ':')\n"
	"  end\n"
	"  ctx:set('arc', table.concat({a.result, a.instances, a.oldest_pass or '',\n"
	"    a.reason or '', table.concat(sets, ';')}, '|'))\n"
	"  return status.next()\n"
	"end) } }\n";

static int setup(void **state)
{
	const char *td = getenv("VSMTPD_TEST_DATA");
	const char *opts[2] = {rec1, rec2};

	(void)state;
	snprintf(data, sizeof(data), "%s", td ? td : "tests/unit/data");
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-arc-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	test_txt_record(rec1, sizeof(rec1), "rsa._domainkey.example.test", data, "dkim/rsa.txt");
	test_txt_record(rec2, sizeof(rec2), "hop2._domainkey.forwarder.test", data, "arc/hop2.txt");
	if ((silent_fd = test_silent_udp(&silent_port)) < 0)
		return -1;
	return dnsmasq_start(&dns, "test", opts, 2);
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	dnsmasq_stop(&dns);
	if (silent_fd >= 0)
		close(silent_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* load - the rules above, asking servers with timeout_ms. */
static struct rules *load(const char *servers, unsigned timeout_ms)
{
	struct rules_limits limits = {.instructions = 1000000, .memory = 8 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com",
					  .local_domains = "example.com",
					  .dns_servers = servers,
					  .dns_timeout_ms = timeout_ms};
	char path[512], err[1024];
	struct rules *r;

	snprintf(path, sizeof(path), "%s/main.lua", dir);
	test_write_file(path, rules_lua, strlen(rules_lua));
	if ((r = rules_load(path, &limits, &settings, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	return r;
}

static const char plain[] = "Authentication-Results: mx.example.test; spf=pass "
			    "smtp.mailfrom=example.test\r\n"
			    "From: Alice <alice@example.test>\r\n"
			    "To: list@forwarder.test\r\n"
			    "Subject: the plan\r\n"
			    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
			    "Message-ID: <1@example.test>\r\n"
			    "\r\n"
			    "Hello Bob,\r\n"
			    "  the plan   stands.\r\n"
			    "\r\n";

/* arcsign - text sealed by python3-dkim's arcsign with args
 * ("selector domain keyfile authserv-id"), malloc'ed. */
static char *arcsign(const char *text, const char *args)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "arcsign %s 2>/dev/null", args);
	return test_tool(dir, data, cmd, text, "arcsign (Debian packages python3-dkim, python3-authres)");
}

/* hop1, hop2 - plain sealed once by example.test; then, with an
 * Authentication-Results saying arc=pass, by forwarder.test. */
static char *hop1(void)
{
	return arcsign(plain, "rsa example.test dkim/rsa.pem mx.example.test");
}

static char *hop2(void)
{
	char *one = hop1(), *text, *two;

	assert_true(asprintf(&text, "Authentication-Results: fwd.forwarder.test; arc=pass\r\n%s",
			     one) > 0);
	two = arcsign(text, "hop2 forwarder.test arc/hop2.pem fwd.forwarder.test");
	assert_non_null(strstr(two, "ARC-Seal: i=2; cv=pass"));
	free(one);
	free(text);
	return two;
}

/* check - run the rule on text; what it recorded, malloc'ed. */
static char *check(struct rules *r, const char *text)
{
	struct rule_ctx ctx = {.client_ip = "192.0.2.1", .helo = "client.example.test"};
	struct rule_verdict v;
	char *vars, *at, *end, *res;

	assert_non_null(ctx.msg = message_parse(text, strlen(text)));
	assert_int_equal(rules_run(r, RULE_STAGE_PREQ, &ctx, &v), RULE_NEXT);
	assert_non_null(ctx.arc); /* kept with the transaction ... */
	assert_non_null(vars = rules_tx_vars(&ctx));
	rules_tx_end(&ctx);
	assert_null(ctx.arc); /* ... until it ends */
	rules_ctx_release(&ctx);
	message_free(ctx.msg);
	assert_non_null(at = strstr(vars, "\"arc\":\""));
	at += strlen("\"arc\":\"");
	assert_non_null(end = strchr(at, '"'));
	res = strndup(at, (size_t)(end - at));
	free(vars);
	return res;
}

/* expect - check(r, text) is want. */
static void expect(struct rules *r, const char *text, const char *want)
{
	char *res = check(r, text);

	assert_string_equal(res, want);
	free(res);
}

#define SET1 "1:example.test:rsa:"
#define SET2 "2:forwarder.test:hop2:"

static void test_one_hop(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = hop1();

	(void)state;
	expect(r, m, "pass|1|0||" SET1 "pass:pass");
	free(m);
	rules_free(r);
}

static void test_two_hops(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = hop2(), *t;

	(void)state;
	expect(r, m, "pass|2|0||" SET1 "pass:pass;" SET2 "pass:pass");
	/* the body changed after the last hop */
	t = test_replace(m, "stands.", "is off.");
	expect(r, t, "fail|2||ARC-Message-Signature 2: body hash did not verify|" SET1
		     "fail:pass;" SET2 "fail:pass");
	free(t);
	/* a signed header field changed */
	t = test_replace(m, "Subject: the plan", "Subject: the other plan");
	expect(r, t, "fail|2||ARC-Message-Signature 2: signature did not verify|" SET1
		     "fail:pass;" SET2 "fail:pass");
	free(t);
	/* the first hop's ARC-Authentication-Results, which only the seals cover */
	t = test_replace(m, "i=1; mx.example.test; spf=pass", "i=1; mx.example.test; spf=fail");
	expect(r, t, "fail|2||ARC-Seal 2: signature did not verify|" SET1 "pass:fail;" SET2
		     "pass:fail");
	free(t);
	free(m);
	rules_free(r);
}

/* drop_field - text without the field that starts with start. */
static char *drop_field(const char *text, const char *start)
{
	const char *at = strstr(text, start), *end;
	char *out;

	assert_non_null(at);
	for (end = strstr(at, "\r\n"); end != NULL && (end[2] == ' ' || end[2] == '\t');
	     end = strstr(end + 2, "\r\n"))
		;
	assert_non_null(end);
	assert_non_null(out = malloc(strlen(text) + 1));
	sprintf(out, "%.*s%s", (int)(at - text), text, end + 2);
	return out;
}

static void test_broken_chains(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = hop2(), *t;

	(void)state;
	t = drop_field(m, "ARC-Seal: i=1;");
	expect(r, t, "fail|2||ARC set 1 has no ARC-Seal|1::::;2::::");
	free(t);
	t = test_replace(m, "ARC-Authentication-Results: i=2;", "ARC-Authentication-Results: i=3;");
	expect(r, t, "fail|3||ARC set 2 has no ARC-Authentication-Results|1::::;2::::;3::::");
	free(t);
	t = test_replace(m, "ARC-Seal: i=2; cv=pass", "ARC-Seal: i=2; cv=none");
	expect(r, t, "fail|2||ARC-Seal 2 has cv=none|" SET1 ":;" SET2 ":");
	free(t);
	t = test_replace(m, "ARC-Seal: i=2; cv=pass", "ARC-Seal: i=2; cv=fail");
	expect(r, t, "fail|2||ARC-Seal 2 says the chain failed (cv=fail)|" SET1 ":;" SET2 ":");
	free(t);
	t = test_replace(m, "ARC-Seal: i=1; cv=none", "ARC-Seal: i=1; i=1; cv=none");
	expect(r, t, "fail|0||an ARC-Seal without a valid instance (i=1 to 50)|");
	free(t);
	t = test_replace(m, "ARC-Seal: i=2;", "ARC-Seal: i=1;");
	expect(r, t, "fail|0||two ARC-Seal fields of instance 1|");
	free(t);
	free(m);
	rules_free(r);
}

static void test_none_no_key_timeout(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m, servers[64];
	long long t0;

	(void)state;
	expect(r, plain, "none|0|||");
	/* a selector without a key */
	m = arcsign(plain, "nokey example.test dkim/rsa.pem mx.example.test");
	expect(r, m, "fail|1||ARC-Message-Signature 1: no key|1:example.test:nokey:permerror:"
		     "permerror");
	free(m);
	rules_free(r);
	/* a DNS server that never answers: temperror, within the timeout */
	snprintf(servers, sizeof(servers), "127.0.0.1:%u", silent_port);
	r = load(servers, 500);
	m = hop1();
	t0 = test_now_ms();
	expect(r, m, "temperror|1||ARC-Message-Signature 1: key lookup timed out|" SET1
		     "temperror:temperror");
	assert_true(test_now_ms() - t0 < 3000);
	free(m);
	rules_free(r);
}

/* python_canon - python3-dkim's relaxed canonical form of a header field
 * (is_header: "name:value" split at the first colon) or body, malloc'ed. */
static char *python_canon(const char *in, size_t len, int is_header, size_t *outlen)
{
	char path[300], outp[300], cmd[1200];
	char *out;

	snprintf(path, sizeof(path), "%s/canon.in", dir);
	snprintf(outp, sizeof(outp), "%s/canon.out", dir);
	test_write_file(path, in, len);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 -c 'import sys\n"
		 "from dkim.canonicalization import Relaxed\n"
		 "d = open(\"%s\", \"rb\").read()\n"
		 "if %d:\n"
		 "    n, v = d.split(b\":\", 1)\n"
		 "    (n, v), = Relaxed.canonicalize_headers([(n, v)])\n"
		 "    o = n + b\":\" + v\n"
		 "else:\n"
		 "    o = Relaxed.canonicalize_body(d)\n"
		 "open(\"%s\", \"wb\").write(o)'",
		 path, is_header, outp);
	assert_int_equal(system(cmd), 0);
	out = test_read_file(outp, NULL);
	*outlen = strlen(out);
	return out;
}

static void test_canonicalization(void **state)
{
	static const char *const headers[] = {
		"Subject:  a \t b  \r\n",
		"SUBJECT \t: folded\r\n  line\r\n\tmore  \r\n",
		"X-Empty:\r\n",
		"X-Blank:   \r\n  \r\n",
		"To: a:b ,  c\r\n",
		"Tabs:\tone\r\n\t\ttwo\t\r\n",
	};
	static const char *const bodies[] = {
		"",
		"\r\n",
		"\r\n\r\n\r\n",
		"a  b \t c \r\n\r\n\r\n",
		" leading\r\n\t\r\nx\r\n  \r\n",
		"no line end",
		"line\r\n\r\nafter a blank\r\n \t \r\n",
		"bare\nline feeds\n\n",
		"cr\rinside \r\n",
	};
	char *mine, *theirs;
	size_t i, mlen, tlen;

	(void)state;
	for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		mine = arc_canon_header(headers[i], strlen(headers[i]), &mlen);
		theirs = python_canon(headers[i], strlen(headers[i]), 1, &tlen);
		assert_non_null(mine);
		assert_string_equal(mine, theirs);
		assert_int_equal(mlen, tlen);
		free(mine);
		free(theirs);
	}
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		mine = arc_canon_body(bodies[i], strlen(bodies[i]), &mlen);
		/* python3-dkim reads a body with CRLF line ends */
		if (strstr(bodies[i], "bare") != NULL) {
			assert_string_equal(mine, "bare\r\nline feeds\r\n");
		} else {
			theirs = python_canon(bodies[i], strlen(bodies[i]), 0, &tlen);
			assert_string_equal(mine, theirs);
			assert_int_equal(mlen, tlen);
			free(theirs);
		}
		free(mine);
	}
}

static void test_tags(void **state)
{
	struct arc_tags t;
	char err[100], canon[] = "arc-seal:i=1; b=abc def; cv=none\r\n";
	size_t len = strlen(canon);
	static const char *const bad[] = {"i=1;;a=2", "=1", "i", "1a=2", "i=1; i=2", "i=a;b",
					  "i=\x01"};
	size_t i;

	(void)state;
	assert_int_equal(arc_tags_parse(" i = 1 ;\r\n a=rsa-sha256; b=ab\r\n cd ;", 35, &t, err,
					sizeof(err)), 0);
	assert_int_equal(t.n, 3);
	assert_string_equal(arc_tag(&t, "i"), "1");
	assert_string_equal(arc_tag(&t, "b"), "ab cd");
	assert_null(arc_tag(&t, "c"));
	arc_tags_free(&t);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(arc_tags_parse(bad[i], strlen(bad[i]), &t, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(arc_canon_strip_b(canon, &len), 0);
	assert_string_equal(canon, "arc-seal:i=1; b=; cv=none");
	assert_int_equal(arc_instance_of(" i=2; x", 7, 1), 2);
	assert_int_equal(arc_instance_of(" i=51; x", 8, 1), 0);
	assert_int_equal(arc_instance_of("a=1; i=07", 9, 0), 0);
	assert_int_equal(arc_instance_of("a=1; i=7", 8, 0), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_hop),
		cmocka_unit_test(test_two_hops),
		cmocka_unit_test(test_broken_chains),
		cmocka_unit_test(test_none_no_key_timeout),
		cmocka_unit_test(test_canonicalization),
		cmocka_unit_test(test_tags),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
