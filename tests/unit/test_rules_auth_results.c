/*
 * test_rules_auth_results.c - ctx:add_authentication_results() with real
 * results: SPF records and a DKIM key served by dnsmasq (helper_dnsmasq.c),
 * messages signed by python3-dkim's dkimsign. A preq rule makes the checks
 * a header field X-Calls names, then adds the field and records what the
 * method returned; the test reads the message the rule left. Also: the
 * authserv-id parser on the shapes RFC 8601 allows and on broken ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "helper_dnsmasq.h"
#include "helper_mail.h"
#include "message.h"
#include "rules.h"
#include "rules_auth_results.h"

static struct dnsmasq dns;
static char dir[256];
static char data[512];       /* tests/unit/data/dkim */
static char rsa_record[2048];
static struct rules *rules;

static const char rules_lua[] =
	"return {\n"
	"  mail = { rule \"m\" (function(ctx)\n"
	"    local ok, err = pcall(ctx.add_authentication_results, ctx)\n"
	"    return status.info(code(450, nil, ok and 'no error' or err))\n"
	"  end) },\n"
	"  preq = { rule \"ar\" (function(ctx)\n"
	"    local calls = ctx:get_header('X-Calls') or ''\n"
	"    if calls:find('mailfrom') then ctx:spf() end\n"
	"    if calls:find('helo') then ctx:spf_helo() end\n"
	"    if calls:find('dkim') then ctx:dkim() end\n"
	"    ctx:append_header('X-Returned', ctx:add_authentication_results())\n"
	"    return status.next()\n"
	"  end) },\n"
	"  postq = { rule \"p\" (function(ctx)\n"
	"    local ok, err = pcall(ctx.add_authentication_results, ctx)\n"
	"    ctx:set('err', ok and 'no error' or err)\n"
	"    return status.next()\n"
	"  end) },\n"
	"}\n";

/* write_file - text into dir/name; the path in out. */
static void write_file(const char *name, const char *text, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s", dir, name);
	test_write_file(out, text, strlen(text));
}

static int setup(void **state)
{
	const char *td = getenv("VSMTPD_TEST_DATA");
	struct rules_limits limits = {.instructions = 1000000, .memory = 8 << 20};
	struct rules_settings settings = {.hostname = "Mx.Example.COM", .local_domains = "",
					  .trusted_networks = "", .dns_timeout_ms = 2000};
	const char *opts[4];
	char path[600], err[1024];

	(void)state;
	snprintf(data, sizeof(data), "%s/dkim", td ? td : "tests/unit/data");
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-ar-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	test_txt_record(rsa_record, sizeof(rsa_record), "rsa._domainkey.example.test", data,
			"rsa.txt");
	opts[0] = rsa_record;
	opts[1] = "txt-record=example.test,v=spf1 ip4:192.0.2.0/24 -all";
	opts[2] = "txt-record=mail.example.test,v=spf1 ip4:192.0.2.1 -all";
	opts[3] = "txt-record=soft.test,v=spf1 ~all";
	if (dnsmasq_start(&dns, "test", opts, 4) < 0)
		return -1;
	settings.dns_servers = dns.servers;
	write_file("main.lua", rules_lua, path, sizeof(path));
	if ((rules = rules_load(path, &limits, &settings, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	rules_free(rules);
	dnsmasq_stop(&dns);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* sign - text signed with the RSA key by dkimsign, malloc'ed. */
static char *sign(const char *text)
{
	return test_tool(dir, data,
			 "dkimsign --hcanon relaxed --bcanon relaxed rsa example.test rsa.pem", text,
			 "dkimsign (Debian package python3-dkim)");
}

/* A connection: the client, its HELO name, the sender. */
struct conn {
	struct rule_ctx ctx;
	struct envelope env;
};

/* conn_open - a connection from ip with helo, in a transaction from sender. */
static void conn_open(struct conn *c, const char *ip, const char *helo, const char *sender)
{
	memset(c, 0, sizeof(*c));
	c->ctx.client_ip = ip;
	c->ctx.helo = helo;
	c->ctx.server_name = "mx.example.com";
	assert_int_equal(envelope_set(&c->env.mail_from, sender), 0);
	c->ctx.env = &c->env;
}

/* conn_close - the engine's state and the envelope freed. */
static void conn_close(struct conn *c)
{
	rules_ctx_release(&c->ctx);
	envelope_clear(&c->env);
}

/* run_preq - the preq rules on text in c; the message the rules left, serialized. */
static char *run_preq(struct conn *c, const char *text)
{
	struct rule_verdict v;
	size_t len;
	char *out;

	assert_non_null(c->ctx.msg = message_parse(text, strlen(text)));
	assert_int_equal(rules_run(rules, RULE_STAGE_PREQ, &c->ctx, &v), RULE_NEXT);
	assert_non_null(out = message_serialize(c->ctx.msg, &len));
	message_free(c->ctx.msg);
	c->ctx.msg = NULL;
	rules_tx_end(&c->ctx);
	return out;
}

/* field - the unfolded value of the nth field called name in text, malloc'ed, or NULL. */
static char *field(const char *text, const char *name, size_t nth)
{
	struct message *m = message_parse(text, strlen(text));
	char *v;

	assert_non_null(m);
	v = message_header_get(m, name, nth, NULL);
	message_free(m);
	return v;
}

/* assert_ar - text starts with our field, whose value is expected, as returned. */
static void assert_ar(const char *text, const char *expected)
{
	char *ar = field(text, "Authentication-Results", 0), *ret = field(text, "X-Returned", 0);

	assert_int_equal(strncmp(text, "Authentication-Results: ", 24), 0);
	assert_non_null(ar);
	assert_string_equal(ar, expected);
	assert_non_null(ret);
	assert_string_equal(ret, expected);
	free(ar);
	free(ret);
}

static const char plain[] = "From: Alice <alice@example.test>\r\n"
			    "To: bob@example.com\r\n"
			    "Subject: results\r\n"
			    "X-Calls: %s\r\n"
			    "\r\n"
			    "Hello Bob.\r\n";

/* message - the plain message with X-Calls: calls, in a static buffer. */
static const char *message(const char *calls)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), plain, calls);
	return buf;
}

static void test_authserv_id_parser(void **state)
{
	static const struct {
		const char *value, *id;
	} cases[] = {
	    {"mx.example.com; spf=pass", "mx.example.com"},
	    {"mx.example.com 1; spf=pass", "mx.example.com"},
	    {"  mx.example.com(a comment) 1 ; none", "mx.example.com"},
	    {"(comment) mx.example.com;", "mx.example.com"},
	    {"(nested (comment) \\) here) MX.example.com ;", "MX.example.com"},
	    {"\"mx.example.com\"; none", "mx.example.com"},
	    {"\"mx.ex\\\"ample\"; none", "mx.ex\"ample"},
	    {"mx.example.com", "mx.example.com"},
	    {"h\xc3\xa9.example; none", "h\xc3\xa9.example"},
	    {"", NULL},
	    {"   (only a comment)", NULL},
	    {"(unterminated mx.example.com;", NULL},
	    {"\"unterminated; none", NULL},
	    {"\"\"; none", NULL},
	    {"; spf=pass", NULL},
	    {"mx.example.com/x; none", NULL},
	    {"mx.example.com=x; none", NULL},
	};
	char out[RULES_AR_ID_MAX], small[4];
	size_t i;
	ssize_t n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = rules_ar_authserv_id(cases[i].value, strlen(cases[i].value), out, sizeof(out));
		if (cases[i].id == NULL) {
			if (n != -1)
				fail_msg("\"%s\" gave \"%s\"", cases[i].value, out);
		} else {
			if (n < 0)
				fail_msg("\"%s\" did not parse", cases[i].value);
			assert_string_equal(out, cases[i].id);
			assert_int_equal((size_t)n, strlen(cases[i].id));
		}
	}
	/* an id that does not fit, and a NUL in a quoted one */
	assert_int_equal(rules_ar_authserv_id("abcd;", 5, small, sizeof(small)), -1);
	assert_int_equal(rules_ar_authserv_id("abc;", 4, small, sizeof(small)), 3);
	assert_int_equal(rules_ar_authserv_id("\"a\0b\";", 6, out, sizeof(out)), -1);
}

static void test_forged_removed_others_kept(void **state)
{
	static const char text[] =
	    "Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=example.test\r\n"
	    "Received: from somewhere\r\n"
	    "Authentication-Results: MX.Example.COM 1; dkim=pass header.d=example.test\r\n"
	    "Authentication-Results: (forged) mx.example.com (yes);\r\n"
	    "  spf=pass smtp.mailfrom=example.test\r\n"
	    "Authentication-Results: \"mx.example.com\"; none\r\n"
	    "authentication-results: mx.example.com\r\n"
	    "Authentication-Results: other.example.net; spf=fail smtp.mailfrom=example.test\r\n"
	    "Authentication-Results: mx.example.com.evil.test; none\r\n"
	    "Authentication-Results: (mx.example.com) relay.example.net; none\r\n"
	    "X-Calls: none\r\n"
	    "\r\n"
	    "body\r\n";
	struct conn c;
	char *out;

	(void)state;
	conn_open(&c, "192.0.2.1", "mail.example.test", "alice@example.test");
	out = run_preq(&c, text);
	assert_string_equal(
	    out, "Authentication-Results: mx.example.com; none\r\n"
		 "Received: from somewhere\r\n"
		 "Authentication-Results: other.example.net; spf=fail smtp.mailfrom=example.test\r\n"
		 "Authentication-Results: mx.example.com.evil.test; none\r\n"
		 "Authentication-Results: (mx.example.com) relay.example.net; none\r\n"
		 "X-Calls: none\r\n"
		 "X-Returned: mx.example.com; none\r\n"
		 "\r\n"
		 "body\r\n");
	free(out);
	conn_close(&c);
}

/* b_prefix - the first 8 characters of the b= tag of text's DKIM-Signature. */
static void b_prefix(const char *text, char out[9])
{
	char *sig = field(text, "DKIM-Signature", 0), *p;
	size_t n = 0;

	assert_non_null(sig);
	for (p = sig; *p != '\0'; p++) {
		if ((p == sig || p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t') && p[0] == 'b' &&
		    p[1] == '=')
			break;
	}
	assert_true(*p != '\0');
	for (p += 2; *p != '\0' && n < 8; p++)
		if (*p != ' ' && *p != '\t')
			out[n++] = *p;
	out[n] = '\0';
	free(sig);
}

static void test_every_result_listed_and_folded(void **state)
{
	char *signed_text = sign(message("mailfrom helo dkim")), *out, expected[1024], b[9];
	const char *line, *eol;
	struct conn c;

	(void)state;
	b_prefix(signed_text, b);
	snprintf(expected, sizeof(expected),
		 "mx.example.com; spf=pass smtp.mailfrom=example.test; spf=pass "
		 "smtp.helo=mail.example.test; dkim=pass header.d=example.test header.s=rsa "
		 "header.a=rsa-sha256 header.b=%s%s%s",
		 strchr(b, '/') != NULL ? "\"" : "", b, strchr(b, '/') != NULL ? "\"" : "");
	conn_open(&c, "192.0.2.1", "mail.example.test", "alice@example.test");
	out = run_preq(&c, signed_text);
	assert_ar(out, expected);
	/* folded before blanks: no line of the field past 78 characters */
	for (line = out;; line = eol + 2) {
		eol = strstr(line, "\r\n");
		assert_true(eol - line <= 78);
		if (eol[2] != ' ' && eol[2] != '\t')
			break;
	}
	assert_true(line > out); /* more than one line */
	free(out);
	/* the next transaction: its own sender unchecked, the HELO result kept */
	out = run_preq(&c, message("nothing"));
	assert_ar(out, "mx.example.com; spf=pass smtp.helo=mail.example.test");
	free(out);
	conn_close(&c);
	free(signed_text);
}

static void test_failures_with_reasons(void **state)
{
	char *signed_text = sign(message("mailfrom helo dkim")), *tampered, *at, *out, b[9];
	char expected[1024];
	struct conn c;

	(void)state;
	b_prefix(signed_text, b);
	assert_non_null(tampered = strdup(signed_text));
	assert_non_null(at = strstr(tampered, "Hello Bob."));
	memcpy(at, "Hello Eve.", 10);
	snprintf(expected, sizeof(expected),
		 "mx.example.com; spf=softfail smtp.mailfrom=soft.test; spf=none "
		 "reason=\"the HELO name is not a domain name\" smtp.helo=nohelo; dkim=fail "
		 "reason=\"body hash did not verify\" header.d=example.test header.s=rsa "
		 "header.a=rsa-sha256 header.b=%s%s%s",
		 strchr(b, '/') != NULL ? "\"" : "", b, strchr(b, '/') != NULL ? "\"" : "");
	conn_open(&c, "192.0.2.1", "nohelo", "alice@soft.test");
	out = run_preq(&c, tampered);
	assert_ar(out, expected);
	free(out);
	conn_close(&c);
	/* checked and unsigned; a HELO address literal is quoted */
	conn_open(&c, "203.0.113.77", "[203.0.113.77]", "alice@example.test");
	out = run_preq(&c, message("mailfrom helo dkim"));
	assert_ar(out, "mx.example.com; spf=fail smtp.mailfrom=example.test; spf=none "
		       "reason=\"the HELO name is not a domain name\" smtp.helo=\"[203.0.113.77]\"; "
		       "dkim=none");
	free(out);
	conn_close(&c);
	free(tampered);
	free(signed_text);
}

static void test_none_when_nothing_checked(void **state)
{
	struct conn c;
	char *out;

	(void)state;
	conn_open(&c, "192.0.2.1", "mail.example.test", "alice@example.test");
	out = run_preq(&c, message("nothing"));
	assert_ar(out, "mx.example.com; none");
	assert_null(strstr(out + 1, "Authentication-Results"));
	free(out);
	conn_close(&c);
}

static void test_other_stages_raise(void **state)
{
	struct conn c;
	struct rule_verdict v;
	char *vars;

	(void)state;
	conn_open(&c, "192.0.2.1", "mail.example.test", "alice@example.test");
	assert_int_equal(rules_run(rules, RULE_STAGE_MAIL, &c.ctx, &v), RULE_INFO);
	assert_non_null(strstr(v.reply.text, "works at the preq stage only, not at mail"));
	assert_non_null(c.ctx.msg = message_parse(message("x"), strlen(message("x"))));
	assert_int_equal(rules_run(rules, RULE_STAGE_POSTQ, &c.ctx, &v), RULE_NEXT);
	assert_non_null(vars = rules_tx_vars(&c.ctx));
	assert_non_null(strstr(vars, "works at the preq stage only, not at postq"));
	assert_int_equal(message_modified(c.ctx.msg), 0);
	free(vars);
	message_free(c.ctx.msg);
	conn_close(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_authserv_id_parser),
	    cmocka_unit_test(test_forged_removed_others_kept),
	    cmocka_unit_test(test_every_result_listed_and_folded),
	    cmocka_unit_test(test_failures_with_reasons),
	    cmocka_unit_test(test_none_when_nothing_checked),
	    cmocka_unit_test(test_other_stages_raise),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
