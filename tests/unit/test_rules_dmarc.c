/*
 * test_rules_dmarc.c - ctx:dmarc() against a real DNS server (dnsmasq,
 * helper_dnsmasq.c) serving _dmarc, SPF and DKIM key records, with
 * messages signed by python3-dkim's dkimsign. A UDP socket that never
 * answers stands for a server that times out.
 *
 * The names: example.com, example.net and example.org (RFC 2606) sit under
 * "com", "net" and "org", public suffixes of the list, so the organizational
 * domain of news.example.com is example.com, and every *.example.com below
 * shares it: those with a record of their own are checked under their own
 * p=, the others fall back to example.com's record and its sp=.
 * example.co.uk shows a suffix of two labels (co.uk is in the list), and
 * example.test one under no rule of the list ("test" is not in it: the
 * default rule "*" makes example.test the organizational domain of
 * a.example.test).
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

static struct dnsmasq dns;
static char dir[256];
static char data[512];        /* tests/unit/data/dkim */
static char rsa_record[2048]; /* the DKIM key of rsa._domainkey.example.com */
static int silent_fd = -1;
static unsigned silent_port;

/* The rule: the result's fields as "result|policy|disposition|pct|sampled|
 * spf_aligned|dkim_aligned|policy_domain|spf_domain|dkim_domains|reason";
 * the draws of math.random are fixed by the seed the rule sets. */
static const char rules_lua[] =
	"return { preq = { rule \"dmarc\" (function(ctx)\n"
	"  math.randomseed(7)\n"
	"  local d = ctx:dmarc()\n"
	"  local again = ctx:dmarc()\n"
	"  if again.result ~= d.result or again.disposition ~= d.disposition then\n"
	"    error('the result changed') end\n"
	"  local f = {d.result, d.policy or '-', d.disposition, tostring(d.pct),\n"
	"    tostring(d.sampled), tostring(d.spf_aligned), tostring(d.dkim_aligned),\n"
	"    d.policy_domain or '-', d.spf_domain or '-', table.concat(d.dkim_domains, ','),\n"
	"    d.reason or ''}\n"
	"  ctx:set('dmarc', table.concat(f, '|'))\n"
	"  return status.next()\n"
	"end) },\n"
	"  postq = { rule \"late\" (function(ctx) ctx:dmarc() return status.next() end) } }\n";

static const char *const zone[] = {
	"local=/net/",
	"local=/org/",
	"local=/uk/",
	"local=/test/",
	"txt-record=_dmarc.example.com,v=DMARC1; p=reject; sp=quarantine",
	"txt-record=example.com,v=spf1 ip4:192.0.2.1 -all",
	"txt-record=bounce.example.com,v=spf1 ip4:192.0.2.1 -all",
	"txt-record=_dmarc.none.example.com,v=DMARC1; p=none",
	"txt-record=_dmarc.strict.example.com,v=DMARC1; p=reject; aspf=s; adkim=s",
	"txt-record=strict.example.com,v=spf1 ip4:192.0.2.1 -all",
	"txt-record=_dmarc.pct0.example.com,v=DMARC1; p=reject; pct=0",
	"txt-record=_dmarc.pct100.example.com,v=DMARC1; p=quarantine; pct=100",
	"txt-record=_dmarc.pct50.example.com,v=DMARC1; p=reject; pct=50",
	"txt-record=_dmarc.bad.example.com,v=DMARC1; p=bogus",
	"txt-record=_dmarc.nop.example.com,v=DMARC1; rua=mailto:d@example.com",
	"txt-record=_dmarc.nopr.example.com,v=DMARC1; adkim=s",
	"txt-record=_dmarc.two.example.com,v=DMARC1; p=none",
	"txt-record=_dmarc.two.example.com,v=DMARC1; p=reject",
	"txt-record=_dmarc.other.example.com,v=spf1 -all",
	"txt-record=_dmarc.split.example.com,v=DMARC1; ,p=reject",
	"txt-record=_dmarc.example.co.uk,v=DMARC1; p=quarantine; sp=reject",
	"txt-record=_dmarc.example.test,v=DMARC1; p=none; sp=reject",
};

static int setup(void **state)
{
	const char *td = getenv("VSMTPD_TEST_DATA");
	const char *opts[sizeof(zone) / sizeof(zone[0]) + 1];
	size_t i;

	(void)state;
	snprintf(data, sizeof(data), "%s/dkim", td ? td : "tests/unit/data");
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-dmarc-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	test_txt_record(rsa_record, sizeof(rsa_record), "rsa._domainkey.example.com", data,
			"rsa.txt");
	for (i = 0; i < sizeof(zone) / sizeof(zone[0]); i++)
		opts[i] = zone[i];
	opts[i] = rsa_record;
	if ((silent_fd = test_silent_udp(&silent_port)) < 0)
		return -1;
	return dnsmasq_start(&dns, "com", opts, i + 1);
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
	struct rules_settings settings = {.hostname = "mx.example.net",
					  .local_domains = "example.net",
					  .dns_servers = servers,
					  .dns_timeout_ms = timeout_ms};
	char path[512], err[1024];
	struct rules *r;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/main.lua", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs(rules_lua, fp);
	fclose(fp);
	if ((r = rules_load(path, &limits, &settings, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	return r;
}

/* message - a message whose header starts with from_fields. */
static char *message(const char *from_fields)
{
	char *m;

	assert_true(asprintf(&m,
			     "%sTo: bob@example.net\r\nSubject: the plan\r\n"
			     "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
			     "Message-ID: <1@example.com>\r\n\r\nHello Bob,\r\n  the plan stands.\r\n",
			     from_fields) > 0);
	return m;
}

/* sign - text signed by dkimsign for domain with the RSA key, malloc'ed. */
static char *sign(const char *text, const char *domain)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "dkimsign rsa %s rsa.pem", domain);
	return test_tool(dir, data, cmd, text, "dkimsign (Debian package python3-dkim)");
}

/* run - the preq rule on text from client ip with sender; what it recorded. */
static char *run(struct rules *r, const char *ip, const char *sender, const char *text)
{
	struct envelope env = {0};
	struct rule_ctx ctx = {.client_ip = ip, .helo = "client.example.net",
			       .server_name = "mx.example.net"};
	struct rule_verdict v;
	char *vars, *at, *end, *res;

	assert_int_equal(envelope_set(&env.mail_from, sender), 0);
	ctx.env = &env;
	assert_non_null(ctx.msg = message_parse(text, strlen(text)));
	if (rules_run(r, RULE_STAGE_PREQ, &ctx, &v) != RULE_NEXT)
		fail_msg("the rule failed");
	assert_non_null(ctx.dmarc); /* kept with the transaction ... */
	assert_non_null(vars = rules_tx_vars(&ctx));
	rules_tx_end(&ctx);
	assert_null(ctx.dmarc); /* ... until it ends */
	rules_ctx_release(&ctx);
	message_free(ctx.msg);
	envelope_clear(&env);
	assert_non_null(at = strstr(vars, "\"dmarc\":\""));
	at += strlen("\"dmarc\":\"");
	assert_non_null(end = strchr(at, '"'));
	res = strndup(at, (size_t)(end - at));
	free(vars);
	return res;
}

/* check - run() with a message from the From fields, compared with expected. */
static void check(struct rules *r, const char *ip, const char *sender, const char *from,
		  int signed_by_example_com, const char *expected)
{
	char *m = message(from), *s = signed_by_example_com ? sign(m, "example.com") : NULL;
	char *res = run(r, ip, sender, s != NULL ? s : m);

	assert_string_equal(res, expected);
	free(res);
	free(s);
	free(m);
}

#define GOOD_IP "192.0.2.1"    /* passes the SPF records above */
#define OTHER_IP "198.51.100.7" /* fails them */

static void test_spf_aligned(void **state)
{
	struct rules *r = load(dns.servers, 2000);

	(void)state;
	/* relaxed: bounce.example.com and example.com share example.com */
	check(r, GOOD_IP, "b@bounce.example.com", "From: A <a@example.com>\r\n", 0,
	      "pass|reject|none|100|true|true|false|example.com|bounce.example.com||");
	/* strict: only the same name aligns */
	check(r, GOOD_IP, "b@bounce.example.com", "From: a@strict.example.com\r\n", 0,
	      "fail|reject|reject|100|true|false|false|strict.example.com|bounce.example.com||"
	      "neither SPF nor DKIM aligned with strict.example.com");
	check(r, GOOD_IP, "b@strict.example.com", "From: a@strict.example.com\r\n", 0,
	      "pass|reject|none|100|true|true|false|strict.example.com|strict.example.com||");
	rules_free(r);
}

static void test_dkim_aligned(void **state)
{
	struct rules *r = load(dns.servers, 2000);

	(void)state;
	/* SPF none for example.org, a good signature of example.com */
	check(r, GOOD_IP, "b@example.org", "From: a@example.com\r\n", 1,
	      "pass|reject|none|100|true|false|true|example.com|example.org|example.com|");
	/* relaxed: example.com aligns with news.example.com (sp= of example.com) */
	check(r, GOOD_IP, "b@example.org", "From: a@news.example.com\r\n", 1,
	      "pass|quarantine|none|100|true|false|true|example.com|example.org|example.com|");
	/* strict: it does not align with strict.example.com */
	check(r, GOOD_IP, "b@example.org", "From: a@strict.example.com\r\n", 1,
	      "fail|reject|reject|100|true|false|false|strict.example.com|example.org||"
	      "neither SPF nor DKIM aligned with strict.example.com");
	rules_free(r);
}

static void test_both_fail(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m, *t, *res;

	(void)state;
	/* SPF fails for the client, no signature */
	check(r, OTHER_IP, "b@example.com", "From: a@example.com\r\n", 0,
	      "fail|reject|reject|100|true|false|false|example.com|example.com||"
	      "neither SPF nor DKIM aligned with example.com");
	/* a signature broken by a body change does not count */
	m = message("From: a@example.com\r\n");
	t = sign(m, "example.com");
	assert_non_null(strstr(t, "stands."));
	memcpy(strstr(t, "stands."), "is off", 6);
	res = run(r, OTHER_IP, "b@example.com", t);
	assert_string_equal(res, "fail|reject|reject|100|true|false|false|example.com|"
				 "example.com||neither SPF nor DKIM aligned with example.com");
	free(res);
	free(t);
	free(m);
	rules_free(r);
}

static void test_policies(void **state)
{
	struct rules *r = load(dns.servers, 2000);

	(void)state;
	check(r, OTHER_IP, "b@example.org", "From: a@none.example.com\r\n", 0,
	      "fail|none|none|100|true|false|false|none.example.com|example.org||"
	      "neither SPF nor DKIM aligned with none.example.com");
	/* the org domain's record for a subdomain without one: its sp= */
	check(r, OTHER_IP, "b@example.org", "From: a@x.news.example.com\r\n", 0,
	      "fail|quarantine|quarantine|100|true|false|false|example.com|example.org||"
	      "neither SPF nor DKIM aligned with x.news.example.com");
	/* a suffix of two labels: example.co.uk is the organizational domain */
	check(r, OTHER_IP, "b@example.org", "From: a@mail.example.co.uk\r\n", 0,
	      "fail|reject|reject|100|true|false|false|example.co.uk|example.org||"
	      "neither SPF nor DKIM aligned with mail.example.co.uk");
	check(r, OTHER_IP, "b@example.org", "From: a@example.co.uk\r\n", 0,
	      "fail|quarantine|quarantine|100|true|false|false|example.co.uk|example.org||"
	      "neither SPF nor DKIM aligned with example.co.uk");
	/* a TLD the list does not name: the default rule "*" */
	check(r, OTHER_IP, "b@example.org", "From: a@a.example.test\r\n", 0,
	      "fail|reject|reject|100|true|false|false|example.test|example.org||"
	      "neither SPF nor DKIM aligned with a.example.test");
	rules_free(r);
}

static void test_pct(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = message("From: a@pct50.example.com\r\n"), *first, *res;
	int i;

	(void)state;
	/* pct=0: never sampled, the next policy down applies */
	check(r, OTHER_IP, "b@example.org", "From: a@pct0.example.com\r\n", 0,
	      "fail|reject|quarantine|0|false|false|false|pct0.example.com|example.org||"
	      "neither SPF nor DKIM aligned with pct0.example.com");
	check(r, OTHER_IP, "b@example.org", "From: a@pct100.example.com\r\n", 0,
	      "fail|quarantine|quarantine|100|true|false|false|pct100.example.com|example.org||"
	      "neither SPF nor DKIM aligned with pct100.example.com");
	/* pct=50: drawn from math.random, the same for the same seed */
	first = run(r, OTHER_IP, "b@example.org", m);
	assert_true(strncmp(first, "fail|reject|reject|50|true|", 27) == 0 ||
		    strncmp(first, "fail|reject|quarantine|50|false|", 32) == 0);
	for (i = 0; i < 3; i++) {
		res = run(r, OTHER_IP, "b@example.org", m);
		assert_string_equal(res, first);
		free(res);
	}
	free(first);
	free(m);
	rules_free(r);
}

static void test_no_record_and_errors(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char servers[64];
	long long t0;

	(void)state;
	check(r, GOOD_IP, "b@example.org", "From: a@example.net\r\n", 0,
	      "none|-|none|nil|nil|false|false|-|-||no DMARC record for example.net");
	check(r, GOOD_IP, "b@example.org", "From: a@www.example.net\r\n", 0,
	      "none|-|none|nil|nil|false|false|-|-||"
	      "no DMARC record for www.example.net nor for example.net");
	/* a TXT record that is no DMARC record is not one */
	check(r, GOOD_IP, "b@example.org", "From: a@other.example.com\r\n", 0,
	      "fail|quarantine|quarantine|100|true|false|false|example.com|example.org||"
	      "neither SPF nor DKIM aligned with other.example.com");
	/* two records: no policy (RFC 7489 6.6.3) */
	check(r, GOOD_IP, "b@example.org", "From: a@two.example.com\r\n", 0,
	      "none|-|none|nil|nil|false|false|-|-||"
	      "_dmarc.two.example.com has more than one DMARC record");
	/* malformed records */
	check(r, GOOD_IP, "b@example.org", "From: a@bad.example.com\r\n", 0,
	      "permerror|-|none|nil|nil|false|false|bad.example.com|-||"
	      "_dmarc.bad.example.com: Found DMARC record contained a bad token value");
	/* RFC 7489 6.6.3: no valid p= but a mailto: rua=: as p=none */
	check(r, GOOD_IP, "b@example.org", "From: a@nop.example.com\r\n", 0,
	      "fail|none|none|100|true|false|false|nop.example.com|example.org||"
	      "neither SPF nor DKIM aligned with nop.example.com");
	check(r, GOOD_IP, "b@example.org", "From: a@nopr.example.com\r\n", 0,
	      "permerror|-|none|nil|nil|false|false|nopr.example.com|-||"
	      "_dmarc.nopr.example.com: Found DMARC record lacked a required p= entry");
	/* the From field */
	check(r, GOOD_IP, "b@example.org", "", 0,
	      "permerror|-|none|nil|nil|false|false|-|-||the message has no From field");
	check(r, GOOD_IP, "b@example.org", "From: a@example.com, b@example.net\r\n", 0,
	      "permerror|-|none|nil|nil|false|false|-|-||"
	      "the From field has more than one address");
	check(r, GOOD_IP, "b@example.org", "From: a@example.com\r\nFrom: a@example.com\r\n", 0,
	      "permerror|-|none|nil|nil|false|false|-|-||"
	      "the message has more than one From field");
	check(r, GOOD_IP, "b@example.org", "From: \"a@x\" (c@y) <a@Example.COM.>\r\n", 0,
	      "fail|reject|reject|100|true|false|false|example.com|example.org||"
	      "neither SPF nor DKIM aligned with example.com");
	rules_free(r);

	/* a server that never answers: temperror within the time given */
	snprintf(servers, sizeof(servers), "127.0.0.1:%u", silent_port);
	r = load(servers, 500);
	t0 = test_now_ms();
	check(r, GOOD_IP, "b@example.org", "From: a@example.com\r\n", 0,
	      "temperror|-|none|nil|nil|false|false|-|-||"
	      "the lookup of _dmarc.example.com timed out");
	assert_true(test_now_ms() - t0 < 3000);
	rules_free(r);
}

static void test_stage(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	struct rule_ctx ctx = {.client_ip = GOOD_IP};
	struct rule_verdict v;
	char *m = message("From: a@example.com\r\n");

	(void)state;
	assert_non_null(ctx.msg = message_parse(m, strlen(m)));
	assert_int_equal(rules_run(r, RULE_STAGE_POSTQ, &ctx, &v), RULE_ERROR);
	assert_null(ctx.dmarc);
	rules_ctx_release(&ctx);
	message_free(ctx.msg);
	free(m);
	rules_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spf_aligned),
		cmocka_unit_test(test_dkim_aligned),
		cmocka_unit_test(test_both_fail),
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_pct),
		cmocka_unit_test(test_no_record_and_errors),
		cmocka_unit_test(test_stage),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
