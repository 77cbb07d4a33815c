/*
 * test_rules_spf.c - ctx:spf() and ctx:spf_helo() against a real DNS
 * server: Debian's dnsmasq (helper_dnsmasq.c) serving SPF records for the
 * mechanisms and modifiers of RFC 7208 §5 and §6, the errors of §4 (no
 * record, NXDOMAIN, syntax, two records, include loops, the lookup limits,
 * SERVFAIL/REFUSED) and a server that never answers. The rules run at the
 * mail stage and report the result table as their reply text.
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
#include "envelope.h"
#include "rules.h"

static const char *const zone[] = {
	"txt-record=ip4.test,v=spf1 ip4:192.0.2.0/24 -all",
	"txt-record=ip6.test,v=spf1 ip6:2001:db8::/32 -all",
	"txt-record=a.test,v=spf1 a -all",
	"host-record=a.test,192.0.2.20,2001:db8::20",
	"txt-record=mx.test,v=spf1 mx -all",
	"mx-host=mx.test,mail.mx.test,10",
	"host-record=mail.mx.test,192.0.2.30",
	"txt-record=include.test,v=spf1 include:inc-target.test -all",
	"txt-record=inc-target.test,v=spf1 ip4:192.0.2.40 -all",
	"txt-record=redirect.test,v=spf1 redirect=ip4.test",
	"txt-record=exists.test,v=spf1 exists:%{i}.ex.test -all",
	"host-record=192.0.2.50.ex.test,127.0.0.2",
	"txt-record=fail.test,v=spf1 ip4:192.0.2.1 -all exp=explain.test",
	"txt-record=explain.test,%{i} is not one of %{d}'s designated mail servers.",
	"txt-record=plainfail.test,v=spf1 -all",
	"txt-record=softfail.test,v=spf1 ~all",
	"txt-record=neutral.test,v=spf1 ?all",
	"txt-record=norecord.test,hello",
	"txt-record=syntax.test,v=spf1 ip4:not-an-address -all",
	"txt-record=two.test,v=spf1 -all",
	"txt-record=two.test,v=spf1 +all",
	"txt-record=loop1.test,v=spf1 include:loop2.test -all",
	"txt-record=loop2.test,v=spf1 include:loop1.test -all",
	"txt-record=eleven.test,v=spf1 a:a.test a:a.test a:a.test a:a.test a:a.test "
	"a:a.test a:a.test a:a.test a:a.test a:a.test a:a.test -all",
	"txt-record=ten.test,v=spf1 a:a.test a:a.test a:a.test a:a.test a:a.test "
	"a:a.test a:a.test a:a.test a:a.test include:ip4.test -all",
	"txt-record=voids.test,v=spf1 a:nx1.test a:nx2.test a:nx3.test -all",
	"txt-record=refused.test,v=spf1 include:elsewhere.invalid -all",
};

#define ZONE_SIZE (sizeof(zone) / sizeof(zone[0]))

static const char rules_lua[] =
	"local function show(r)\n"
	"  return table.concat({r.result, r.identity, r.domain or '-', r.mechanism or '-',\n"
	"                       r.explanation or '-', r.reason and 'reason' or '-'}, '|')\n"
	"end\n"
	"return {\n"
	"  helo = { rule \"h\" (function(ctx) return status.info(code(450, nil, show(ctx:spf_helo()))) end) },\n"
	"  mail = { rule \"m\" (function(ctx)\n"
	"    local r = ctx:spf()\n"
	"    if ctx:get('twice') then r = ctx:spf() end\n"
	"    if ctx:get('helo') then r = ctx:spf_helo() end\n"
	"    return status.info(code(450, nil, show(r)))\n"
	"  end) },\n"
	"  connect = { rule \"c\" (function(ctx)\n"
	"    local ok, err = pcall(ctx.spf, ctx)\n"
	"    return status.info(code(450, nil, tostring(err)))\n"
	"  end) },\n"
	"}\n";

static struct dnsmasq dns; /* the zone's server */
static char servers[64], silent_servers[64], dir[64], path[96], logpath[96];
static int silent_fd = -1;
static struct rules *r_dns, *r_silent;

/* load - the rules with dns_servers srv. */
static struct rules *load(const char *srv)
{
	struct rules_limits limits = {.instructions = 1000000, .memory = 8 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com", .local_domains = "",
					  .trusted_networks = "", .dns_servers = srv,
					  .dns_timeout_ms = 800};
	char err[512];
	struct rules *r = rules_load(path, &limits, &settings, err, sizeof(err));

	if (r == NULL)
		fprintf(stderr, "%s\n", err);
	return r;
}

static int setup(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	FILE *fp;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-test-spf.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/main.lua", dir);
	snprintf(logpath, sizeof(logpath), "%s/queries.log", dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs(rules_lua, fp);
	fclose(fp);
	dns.log = logpath;
	if (dnsmasq_start(&dns, "test", zone, ZONE_SIZE) < 0)
		return -1;
	snprintf(servers, sizeof(servers), "%s", dns.servers);
	/* a server that never answers: a bound UDP socket nobody reads */
	silent_fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (silent_fd < 0 || bind(silent_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(silent_fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	snprintf(silent_servers, sizeof(silent_servers), "127.0.0.1:%u", ntohs(sa.sin_port));
	r_dns = load(servers);
	r_silent = load(silent_servers);
	return r_dns != NULL && r_silent != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rules_free(r_dns);
	rules_free(r_silent);
	dnsmasq_stop(&dns);
	close(silent_fd);
	unlink(path);
	unlink(logpath);
	rmdir(dir);
	return 0;
}

/* check - run the mail stage for ip, helo, sender; the reply text into out. */
static const char *check_with(struct rules *r, const char *ip, const char *helo,
			      const char *sender, const char *var, char *out, size_t outlen)
{
	struct envelope env = {0};
	struct rule_ctx ctx = {.client_ip = ip, .helo = helo, .server_name = "mx.example.com"};
	struct rule_verdict v;

	assert_int_equal(envelope_set(&env.mail_from, sender), 0);
	ctx.env = &env;
	(void)var;
	rules_run(r, RULE_STAGE_MAIL, &ctx, &v);
	snprintf(out, outlen, "%s", v.status == RULE_INFO ? v.reply.text : rules_status_name(v.status));
	rules_ctx_release(&ctx);
	envelope_clear(&env);
	return out;
}

#define assert_spf(ip, helo, sender, expected)                                                     \
	do {                                                                                       \
		char out_[600];                                                                    \
		assert_string_equal(check_with(r_dns, ip, helo, sender, NULL, out_, sizeof(out_)), \
				    expected);                                                     \
	} while (0)

static void test_pass(void **state)
{
	(void)state;
	assert_spf("192.0.2.10", "h.test", "a@ip4.test", "pass|mailfrom|ip4.test|ip4:192.0.2.0/24|-|-");
	assert_spf("2001:db8::5", "h.test", "a@ip6.test", "pass|mailfrom|ip6.test|ip6:2001:db8::/32|-|-");
	assert_spf("192.0.2.20", "h.test", "a@a.test", "pass|mailfrom|a.test|a|-|-");
	assert_spf("2001:db8::20", "h.test", "a@a.test", "pass|mailfrom|a.test|a|-|-");
	assert_spf("192.0.2.30", "h.test", "a@mx.test", "pass|mailfrom|mx.test|mx|-|-");
	assert_spf("192.0.2.40", "h.test", "a@include.test",
		   "pass|mailfrom|include.test|include:inc-target.test|-|-");
	assert_spf("192.0.2.10", "h.test", "a@redirect.test",
		   "pass|mailfrom|redirect.test|redirect=ip4.test|-|-");
	assert_spf("192.0.2.50", "h.test", "a@exists.test",
		   "pass|mailfrom|exists.test|exists:%{i}.ex.test|-|-");
	/* the ninth a: plus an include stays within the 10 terms */
	assert_spf("192.0.2.10", "h.test", "a@ten.test", "pass|mailfrom|ten.test|include:ip4.test|-|-");
	/* a loopback client gets no free pass */
	assert_spf("127.0.0.1", "h.test", "a@ip4.test", "fail|mailfrom|ip4.test|-all|-|-");
}

static void test_fail_softfail_neutral(void **state)
{
	(void)state;
	assert_spf("192.0.2.99", "h.test", "a@fail.test",
		   "fail|mailfrom|fail.test|-all|192.0.2.99 is not one of fail.test's designated "
		   "mail servers.|-");
	assert_spf("192.0.2.99", "h.test", "a@plainfail.test", "fail|mailfrom|plainfail.test|-all|-|-");
	assert_spf("192.0.2.99", "h.test", "a@softfail.test", "softfail|mailfrom|softfail.test|~all|-|-");
	assert_spf("192.0.2.99", "h.test", "a@neutral.test", "neutral|mailfrom|neutral.test|?all|-|-");
	/* the include does not match: the record's -all */
	assert_spf("192.0.2.99", "h.test", "a@include.test", "fail|mailfrom|include.test|-all|-|-");
}

static void test_none(void **state)
{
	(void)state;
	assert_spf("192.0.2.99", "h.test", "a@norecord.test", "none|mailfrom|norecord.test|-|-|reason");
	assert_spf("192.0.2.99", "h.test", "a@nxdomain.test", "none|mailfrom|nxdomain.test|-|-|reason");
	assert_spf("192.0.2.99", "h.test", "a@localhost", "none|mailfrom|localhost|-|-|reason");
}

static void test_permerror(void **state)
{
	(void)state;
	assert_spf("192.0.2.99", "h.test", "a@syntax.test", "permerror|mailfrom|syntax.test|-|-|reason");
	assert_spf("192.0.2.99", "h.test", "a@two.test", "permerror|mailfrom|two.test|-|-|reason");
	assert_spf("192.0.2.99", "h.test", "a@loop1.test", "permerror|mailfrom|loop1.test|-|-|reason");
	assert_spf("192.0.2.99", "h.test", "a@eleven.test", "permerror|mailfrom|eleven.test|-|-|reason");
	assert_spf("192.0.2.99", "h.test", "a@voids.test", "permerror|mailfrom|voids.test|-|-|reason");
}

static void test_temperror(void **state)
{
	char out[600];

	(void)state;
	/* REFUSED (dnsmasq has no upstream for it), in an include and for the domain */
	assert_spf("192.0.2.99", "h.test", "a@refused.test", "temperror|mailfrom|refused.test|-|-|reason");
	assert_spf("192.0.2.99", "h.test", "a@elsewhere.invalid",
		   "temperror|mailfrom|elsewhere.invalid|-|-|reason");
	/* a server that never answers */
	assert_string_equal(check_with(r_silent, "192.0.2.10", "h.test", "a@ip4.test", NULL, out,
				       sizeof(out)),
			    "temperror|mailfrom|ip4.test|-|-|reason");
}

static void test_null_sender_and_helo(void **state)
{
	char out[600];
	struct rule_ctx ctx = {.client_ip = "192.0.2.20", .helo = "a.test", .server_name = "mx"};
	struct rule_verdict v;

	(void)state;
	/* the null sender is postmaster@<helo> */
	assert_spf("192.0.2.10", "ip4.test", "", "pass|mailfrom|ip4.test|ip4:192.0.2.0/24|-|-");
	assert_spf("192.0.2.99", "[192.0.2.99]", "", "none|mailfrom|[192.0.2.99]|-|-|reason");
	/* the HELO identity */
	rules_run(r_dns, RULE_STAGE_HELO, &ctx, &v);
	assert_int_equal(v.status, RULE_INFO);
	assert_string_equal(v.reply.text, "pass|helo|a.test|a|-|-");
	ctx.helo = "softfail.test";
	rules_run(r_dns, RULE_STAGE_HELO, &ctx, &v);
	assert_string_equal(v.reply.text, "softfail|helo|softfail.test|~all|-|-");
	rules_ctx_release(&ctx);
	/* at connect: a clear error */
	rules_run(r_dns, RULE_STAGE_CONNECT, &ctx, &v);
	if (strstr(v.reply.text, "ctx:spf() works at the mail to preq stages, not at connect") == NULL)
		fail_msg("%s", v.reply.text);
	rules_ctx_release(&ctx);
	(void)out;
}

/* queries_for - how many queries for name the log shows. */
static int queries_for(const char *name)
{
	char line[1024], needle[300];
	FILE *fp = fopen(logpath, "r");
	int n = 0;

	snprintf(needle, sizeof(needle), "] %s from", name);
	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		n += strstr(line, "query[") != NULL && strstr(line, needle) != NULL;
	fclose(fp);
	return n;
}

static void test_cached_per_transaction(void **state)
{
	struct envelope env = {0};
	struct rule_ctx ctx = {.client_ip = "192.0.2.99", .helo = "h.test", .server_name = "mx"};
	struct rule_verdict v;
	int before;

	(void)state;
	before = queries_for("softfail.test");
	assert_int_equal(envelope_set(&env.mail_from, "a@softfail.test"), 0);
	ctx.env = &env;
	rules_run(r_dns, RULE_STAGE_MAIL, &ctx, &v);
	assert_string_equal(v.reply.text, "softfail|mailfrom|softfail.test|~all|-|-");
	rules_run(r_dns, RULE_STAGE_MAIL, &ctx, &v);
	assert_string_equal(v.reply.text, "softfail|mailfrom|softfail.test|~all|-|-");
	usleep(100000);
	assert_int_equal(queries_for("softfail.test") - before, 1);
	/* a new transaction asks again */
	rules_tx_end(&ctx);
	rules_run(r_dns, RULE_STAGE_MAIL, &ctx, &v);
	usleep(100000);
	assert_int_equal(queries_for("softfail.test") - before, 2);
	rules_ctx_release(&ctx);
	envelope_clear(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pass),
		cmocka_unit_test(test_fail_softfail_neutral),
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_permerror),
		cmocka_unit_test(test_temperror),
		cmocka_unit_test(test_null_sender_and_helo),
		cmocka_unit_test(test_cached_per_transaction),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
