/*
 * test_rules_arc_seal.c - ctx:arc_seal() against an independent verifier:
 * what vsmtpd seals is checked by python3-dkim's arc_verify (its keys read
 * from the test data) and by vsmtpd's own ctx:arc() over a real DNS server
 * (dnsmasq, helper_dnsmasq.c): one hop (a message without ARC), two hops
 * (python3-dkim's arcsign first), a failing chain sealed with cv=fail, the
 * refusals (a chain already sealed as failed, an Ed25519 key, an unknown
 * key, a key lookup that times out), sealing at delivery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "helper_dnsmasq.h"
#include "helper_mail.h"
#include "message.h"
#include "rules.h"

static struct dnsmasq dns;
static char dir[256];  /* scratch folder */
static char data[512]; /* tests/unit/data */
static char rec1[2048], rec2[2048];
static int silent_fd = -1;
static unsigned silent_port;

/* The rules: seal with the key X-Key names (and the text of X-Authres,
 * when there is one) and record "true" or the error as "seal"; check the
 * chain into "arc" as "result|instances|reason". */
static const char rules_lua[] =
	"local function seal(ctx)\n"
	"  local ok, err = pcall(ctx.arc_seal, ctx, ctx:get_header('X-Key'),\n"
	"                        ctx:get_header('X-Authres'))\n"
	"  ctx:set('seal', ok and tostring(err) or err)\n"
	"  return status.next()\n"
	"end\n"
	"return {\n"
	"  preq = { rule \"seal\" (seal) },\n"
	"  delivery = { rule \"seal\" (seal) },\n"
	"}\n";
static const char check_lua[] =
	"return { preq = { rule \"arc\" (function(ctx)\n"
	"  local a = ctx:arc()\n"
	"  ctx:set('arc', a.result .. '|' .. a.instances .. '|' .. (a.reason or ''))\n"
	"  return status.next()\n"
	"end) } }\n";

static int setup(void **state)
{
	const char *td = getenv("VSMTPD_TEST_DATA");
	const char *opts[2] = {rec1, rec2};

	(void)state;
	snprintf(data, sizeof(data), "%s", td ? td : "tests/unit/data");
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-arcseal-XXXXXX");
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

/* key_conf - [dkim:name] of domain and selector for file in the test data
 * (its path kept in path). */
static void key_conf(struct dkim_config *c, char *path, size_t len, const char *name,
		     const char *domain, const char *file)
{
	snprintf(path, len, "%s/%s", data, file);
	memset(c, 0, sizeof(*c));
	c->name = (char *)name;
	c->domain = (char *)domain;
	c->selector = (char *)name;
	c->key.path = path;
}

/* load - text as the rules, asking servers with timeout_ms, with the keys
 * rsa (example.test), hop2 (forwarder.test) and ed (Ed25519). */
static struct rules *load(const char *text, const char *servers, unsigned timeout_ms)
{
	struct rules_limits limits = {.instructions = 1000000, .memory = 8 << 20};
	static char p[3][600];
	struct dkim_config conf[3];
	struct rules_settings settings = {.hostname = "mx.example.com",
					  .local_domains = "example.com",
					  .dns_servers = servers,
					  .dns_timeout_ms = timeout_ms,
					  .dkim = conf,
					  .ndkim = 3};
	char path[512], err[1024];
	struct rules *r;

	key_conf(&conf[0], p[0], sizeof(p[0]), "rsa", "example.test", "dkim/rsa.pem");
	key_conf(&conf[1], p[1], sizeof(p[1]), "hop2", "forwarder.test", "arc/hop2.pem");
	key_conf(&conf[2], p[2], sizeof(p[2]), "ed", "example.test", "dkim/ed25519.pem");
	snprintf(path, sizeof(path), "%s/main.lua", dir);
	test_write_file(path, text, strlen(text));
	if ((r = rules_load(path, &limits, &settings, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	return r;
}

static const char plain[] = "From: Alice <alice@example.test>\r\n"
			    "To: list@forwarder.test\r\n"
			    "Subject: the plan\r\n"
			    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
			    "Message-ID: <1@example.test>\r\n"
			    "\r\n"
			    "Hello Bob,\r\n"
			    "  the plan   stands.\r\n"
			    "\r\n";

/* hop1 - plain sealed once by python3-dkim's arcsign for example.test. */
static char *hop1(void)
{
	char *text, *sealed;

	assert_true(asprintf(&text, "Authentication-Results: mx.example.test; spf=pass "
				    "smtp.mailfrom=example.test\r\n%s",
			     plain) > 0);
	sealed = test_tool(dir, data, "arcsign rsa example.test dkim/rsa.pem mx.example.test 2>/dev/null",
			   text, "arcsign (Debian packages python3-dkim, python3-authres)");
	free(text);
	return sealed;
}

/* tx_var - the transaction variable name of ctx, malloc'ed; NULL when unset. */
static char *tx_var(const struct rule_ctx *ctx, const char *name)
{
	char *vars = rules_tx_vars(ctx), *res = NULL;
	cJSON *obj = vars ? cJSON_Parse(vars) : NULL;
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));

	if (s != NULL)
		res = strdup(s);
	cJSON_Delete(obj);
	free(vars);
	return res;
}

/* starts_with - whether s starts with prefix. */
static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* run - the rules of r at stage on "X-Key: key\r\n" (and X-Authres) +
 * text; *out the message after, malloc'ed; returns the "seal" variable. */
static char *run(struct rules *r, enum rule_stage stage, const char *key, const char *authres,
		 const char *text, char **out)
{
	struct rule_ctx ctx = {.client_ip = "192.0.2.1", .helo = "client.example.test"};
	struct rule_verdict v;
	char *in, *res;
	size_t len;

	assert_true(asprintf(&in, "X-Key: %s\r\n%s%s%s%s", key, authres ? "X-Authres: " : "",
			     authres ? authres : "", authres ? "\r\n" : "", text) > 0);
	assert_non_null(ctx.msg = message_parse(in, strlen(in)));
	assert_int_equal(rules_run(r, stage, &ctx, &v), RULE_NEXT);
	assert_non_null(res = tx_var(&ctx, "seal"));
	assert_non_null(*out = message_serialize(ctx.msg, &len));
	rules_ctx_release(&ctx);
	message_free(ctx.msg);
	free(in);
	return res;
}

/* sealed - run() at preq, which must succeed; the message after. */
static char *sealed(struct rules *r, const char *key, const char *authres, const char *text)
{
	char *out, *res = run(r, RULE_STAGE_PREQ, key, authres, text, &out);

	assert_string_equal(res, "true");
	free(res);
	return out;
}

/* refused - run() at preq, which must raise an error containing want; the
 * message must not have changed. */
static void refused(struct rules *r, const char *key, const char *text, const char *want)
{
	char *out, *res = run(r, RULE_STAGE_PREQ, key, NULL, text, &out);

	if (strstr(res, want) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", res, want);
	assert_non_null(strstr(out, text));
	assert_int_equal(strlen(out), strlen(text) + strlen("X-Key: \r\n") + strlen(key));
	free(res);
	free(out);
}

/* python_arc - python3-dkim's arc_verify of text (keys from the test data),
 * malloc'ed: its cv ("pass", "fail", "none", or "None" when an older seal
 * says cv=fail), "|", and, with alone, whether the newest set's AMS and AS
 * verify when the AS signs that set only (RFC 8617 5.1.2, cv=fail). */
static char *python_arc(const char *text, int alone)
{
	char path[300], outp[300], cmd[2400];

	snprintf(path, sizeof(path), "%s/sealed.eml", dir);
	snprintf(outp, sizeof(outp), "%s/cv.out", dir);
	test_write_file(path, text, strlen(text));
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 -c 'import dkim\n"
		 "keys = {b\"rsa._domainkey.example.test.\": \"dkim/rsa.txt\",\n"
		 "        b\"hop2._domainkey.forwarder.test.\": \"arc/hop2.txt\"}\n"
		 "def txt(name, timeout=5):\n"
		 "    return open(\"%s/\" + keys[name], \"rb\").read().strip()\n"
		 "msg = open(\"%s\", \"rb\").read()\n"
		 "cv, res, why = dkim.arc_verify(msg, dnsfunc=txt)\n"
		 "out = (cv or b\"None\").decode() + \"|\"\n"
		 "if %d:\n"
		 "    import re\n"
		 "    a = dkim.ARC(msg)\n"
		 "    n, hs = a.sorted_arc_headers()\n"
		 "    inst = lambda v: int(re.search(rb\"i\\s*=\\s*(\\d+)\", v).group(1))\n"
		 "    a.headers = [h for h in a.headers if h[0].lower() not in a.ARC_HEADERS\n"
		 "                 or inst(h[1]) == n]\n"
		 "    n, hs = a.sorted_arc_headers()\n"
		 "    r = a.verify_instance(hs, n, dnsfunc=txt)\n"
		 "    out += \"%%s %%s\" %% (r[\"ams-valid\"], r[\"as-valid\"])\n"
		 "open(\"%s\", \"w\").write(out)'",
		 data, path, alone, outp);
	assert_int_equal(system(cmd), 0);
	return test_read_file(outp, NULL);
}

/* expect_python - python_arc(text, alone) is want. */
static void expect_python(const char *text, int alone, const char *want)
{
	char *res = python_arc(text, alone);

	assert_string_equal(res, want);
	free(res);
}

/* expect_vsmtpd - ctx:arc() of text, by the rules check, is want. */
static void expect_vsmtpd(struct rules *check, const char *text, const char *want)
{
	struct rule_ctx ctx = {.client_ip = "192.0.2.1"};
	struct rule_verdict v;
	char *res;

	assert_non_null(ctx.msg = message_parse(text, strlen(text)));
	assert_int_equal(rules_run(check, RULE_STAGE_PREQ, &ctx, &v), RULE_NEXT);
	assert_non_null(res = tx_var(&ctx, "arc"));
	assert_string_equal(res, want);
	free(res);
	rules_ctx_release(&ctx);
	message_free(ctx.msg);
}

static void test_one_hop(void **state)
{
	struct rules *r = load(rules_lua, dns.servers, 2000), *check = load(check_lua, dns.servers, 2000);
	char *m;

	(void)state;
	m = sealed(r, "rsa", NULL, plain);
	assert_true(starts_with(m, "ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.test; s=rsa;"));
	assert_non_null(strstr(m, "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; "
				  "d=example.test;\r\n s=rsa;"));
	assert_non_null(strstr(m, "h=from:from:to:subject:date:message-id;"));
	/* the results kept so far: only ctx:arc()'s, which the seal asked for */
	assert_non_null(strstr(m, "ARC-Authentication-Results: i=1; mx.example.com; arc=none\r\n"));
	expect_python(m, 0, "pass|");
	expect_vsmtpd(check, m, "pass|1|");
	free(m);
	/* the results given */
	m = sealed(r, "rsa", "mx.example.com; spf=pass smtp.mailfrom=example.test", plain);
	assert_non_null(strstr(m, "ARC-Authentication-Results: i=1; mx.example.com; spf=pass"));
	assert_non_null(strstr(m, "smtp.mailfrom=example.test\r\nX-Key: rsa\r\n"));
	expect_python(m, 0, "pass|");
	expect_vsmtpd(check, m, "pass|1|");
	free(m);
	rules_free(r);
	rules_free(check);
}

static void test_two_hops(void **state)
{
	struct rules *r = load(rules_lua, dns.servers, 2000), *check = load(check_lua, dns.servers, 2000);
	char *one = hop1(), *m, *m3;

	(void)state;
	expect_python(one, 0, "pass|");
	m = sealed(r, "hop2", NULL, one);
	assert_true(starts_with(m, "ARC-Seal: i=2; cv=pass; a=rsa-sha256; d=forwarder.test; s=hop2;"));
	assert_non_null(strstr(m, "ARC-Authentication-Results: i=2; mx.example.com; arc=pass\r\n"));
	expect_python(m, 0, "pass|");
	expect_vsmtpd(check, m, "pass|2|");
	/* and a third hop over vsmtpd's own set */
	m3 = sealed(r, "rsa", NULL, m);
	assert_true(starts_with(m3, "ARC-Seal: i=3; cv=pass;"));
	expect_python(m3, 0, "pass|");
	expect_vsmtpd(check, m3, "pass|3|");
	free(m3);
	free(m);
	free(one);
	rules_free(r);
	rules_free(check);
}

static void test_failing_chain(void **state)
{
	struct rules *r = load(rules_lua, dns.servers, 2000), *check = load(check_lua, dns.servers, 2000);
	char *one = hop1(), *at, *m;

	(void)state;
	/* the body changed after the first hop: sealed with cv=fail, which
	 * signs the new set only */
	assert_non_null(at = strstr(one, "stands."));
	memcpy(at, "failed.", 7);
	m = sealed(r, "hop2", NULL, one);
	assert_true(starts_with(m, "ARC-Seal: i=2; cv=fail;"));
	assert_non_null(strstr(m, "ARC-Authentication-Results: i=2; mx.example.com; arc=fail"));
	assert_non_null(strstr(m, "reason=\"ARC-Message-Signature 1: body hash did not verify\""));
	/* python3-dkim stops at a cv=fail seal; the new set verifies alone */
	expect_python(m, 1, "None|True True");
	expect_vsmtpd(check, m, "fail|2|ARC-Seal 2 says the chain failed (cv=fail)");
	/* such a chain is not sealed again */
	refused(r, "rsa", m, "ARC-Seal 2 says the chain failed (cv=fail); such a chain is not "
			     "sealed again");
	free(m);
	free(one);
	rules_free(r);
	rules_free(check);
}

static void test_refusals(void **state)
{
	struct rules *r = load(rules_lua, dns.servers, 2000);
	char *one = hop1(), servers[64];

	(void)state;
	refused(r, "ed", plain, "arc_seal(\"ed\"): the key is not RSA; ARC seals with rsa-sha256 only");
	refused(r, "other", plain, "arc_seal: no key \"other\" (a [dkim:other] section");
	rules_free(r);
	/* the chain's key lookup times out: temperror, the rule may defer */
	snprintf(servers, sizeof(servers), "127.0.0.1:%u", silent_port);
	r = load(rules_lua, servers, 300);
	refused(r, "hop2", one, "the ARC chain could not be checked now (ARC-Message-Signature 1: "
				"key lookup timed out)");
	free(one);
	rules_free(r);
}

static void test_delivery(void **state)
{
	struct rules *r = load(rules_lua, dns.servers, 2000), *check = load(check_lua, dns.servers, 2000);
	char *one = hop1(), *m, *res;

	(void)state;
	res = run(r, RULE_STAGE_DELIVERY, "hop2", NULL, one, &m);
	assert_string_equal(res, "true");
	assert_true(starts_with(m, "ARC-Seal: i=2; cv=pass;"));
	expect_python(m, 0, "pass|");
	expect_vsmtpd(check, m, "pass|2|");
	free(res);
	free(m);
	free(one);
	rules_free(r);
	rules_free(check);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_hop),
		cmocka_unit_test(test_two_hops),
		cmocka_unit_test(test_failing_chain),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_delivery),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
