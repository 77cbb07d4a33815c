/*
 * test_rules_dkim.c - ctx:dkim() against an independent signer and a real
 * DNS server: messages signed by python3-dkim's dkimsign (RSA and
 * Ed25519, relaxed and simple canonicalization), keys served by dnsmasq
 * (helper_dnsmasq.c) as selector._domainkey TXT records, the RSA one split
 * into several character-strings as a record longer than 255 bytes must
 * be. A UDP socket that never answers stands for a server that times out.
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
#include "helper_rules.h"
#include "message.h"
#include "config.h"
#include "rules.h"

static struct dnsmasq dns;
static char dir[256];       /* scratch folder: rules, messages */
static char data[512];      /* tests/unit/data/dkim */
static char rsa_record[2048]; /* "txt-record=rsa._domainkey.example.test,part,part" */
static char ed_record[512];
static int silent_fd = -1;  /* a DNS server that never answers */
static unsigned silent_port;

/* The rule: every signature as "result|d|s|a|hc/bc|i|reason", ";" between. */
static const char rules_lua[] =
	"return { preq = { rule \"dkim\" (function(ctx)\n"
	"  local out = {}\n"
	"  for _, s in ipairs(ctx:dkim()) do\n"
	"    out[#out + 1] = table.concat({s.result, s.domain, s.selector, s.algorithm,\n"
	"      (s.header_canon or '') .. '/' .. (s.body_canon or ''), s.identity or '',\n"
	"      s.reason or ''}, '|')\n"
	"  end\n"
	"  ctx:set_header('Subject', 'edited after the check')\n"
	"  local again = ctx:dkim()\n"
	"  if #again ~= #out then error('the result changed') end\n"
	"  ctx:set('dkim', table.concat(out, ';'))\n"
	"  return status.next()\n"
	"end) } }\n";

static int setup(void **state)
{
	const char *td = getenv("VSMTPD_TEST_DATA");
	const char *opts[2];

	(void)state;
	snprintf(data, sizeof(data), "%s/dkim", td ? td : "tests/unit/data");
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-dkim-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	test_txt_record(rsa_record, sizeof(rsa_record), "rsa._domainkey.example.test", data, "rsa.txt");
	test_txt_record(ed_record, sizeof(ed_record), "ed._domainkey.example.test", data, "ed25519.txt");
	opts[0] = rsa_record;
	opts[1] = ed_record;
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

/* load_keys - rules text with the signing keys conf, asking servers with
 * timeout_ms; NULL with the reason in err. */
static struct rules *load_keys(const char *text, const char *servers, unsigned timeout_ms,
			       const struct dkim_config *conf, size_t nconf, char *err,
			       size_t errlen)
{
	struct rules_limits limits = {.instructions = 1000000, .memory = 8 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com",
					  .local_domains = "example.com",
					  .dns_servers = servers,
					  .dns_timeout_ms = timeout_ms,
					  .dkim = conf,
					  .ndkim = nconf};

	return test_rules_load(dir, text, &limits, &settings, err, errlen);
}

/* load - the rules above, asking servers with timeout_ms. */
static struct rules *load(const char *servers, unsigned timeout_ms)
{
	struct rules_limits limits = {.instructions = 1000000, .memory = 8 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com",
					  .local_domains = "example.com",
					  .dns_servers = servers,
					  .dns_timeout_ms = timeout_ms};

	return test_rules_load_ok(dir, rules_lua, &limits, &settings);
}

static const char plain[] = "From: Alice <alice@example.test>\r\n"
			    "To: bob@example.com\r\n"
			    "Subject: the plan\r\n"
			    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
			    "Message-ID: <1@example.test>\r\n"
			    "\r\n"
			    "Hello Bob,\r\n"
			    "  the plan   stands.\r\n"
			    "\r\n"
			    "\r\n";

/* sign - text signed by dkimsign with args ("--signalg ... sel domain key"),
 * malloc'ed. */
static char *sign(const char *text, const char *args)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "dkimsign %s", args);
	return test_tool(dir, data, cmd, text, "dkimsign (Debian package python3-dkim)");
}

/* verify - run the rule on text; what it recorded, malloc'ed. */
static char *verify(struct rules *r, const char *text)
{
	struct rule_ctx ctx = {.client_ip = "192.0.2.1", .helo = "client.example.test"};
	struct rule_verdict v;
	char *vars, *at, *end, *res;

	assert_non_null(ctx.msg = message_parse(text, strlen(text)));
	assert_int_equal(rules_run(r, RULE_STAGE_PREQ, &ctx, &v), RULE_NEXT);
	assert_non_null(ctx.dkim); /* kept with the transaction ... */
	assert_non_null(vars = rules_tx_vars(&ctx));
	rules_tx_end(&ctx);
	assert_null(ctx.dkim); /* ... until it ends */
	rules_ctx_release(&ctx);
	message_free(ctx.msg);
	assert_non_null(at = strstr(vars, "\"dkim\":\""));
	at += strlen("\"dkim\":\"");
	assert_non_null(end = strchr(at, '"'));
	res = strndup(at, (size_t)(end - at));
	free(vars);
	return res;
}

#define RSA_RELAXED "--hcanon relaxed --bcanon relaxed rsa example.test rsa.pem"

static void test_rsa_relaxed_pass(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = sign(plain, RSA_RELAXED), *res = verify(r, m);

	(void)state;
	assert_string_equal(res, "pass|example.test|rsa|rsa-sha256|relaxed/relaxed|@example.test|");
	free(res);
	free(m);
	rules_free(r);
}

static void test_rsa_simple_pass(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = sign(plain, "--hcanon simple --bcanon simple --identity alice@example.test "
			      "rsa example.test rsa.pem"),
	     *res = verify(r, m);

	(void)state;
	assert_string_equal(res,
			    "pass|example.test|rsa|rsa-sha256|simple/simple|alice@example.test|");
	free(res);
	free(m);
	rules_free(r);
}

static void test_ed25519_pass(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = sign(plain, "--signalg ed25519-sha256 --hcanon relaxed --bcanon relaxed "
			      "ed example.test ed25519.seed"),
	     *res = verify(r, m);

	(void)state;
	assert_string_equal(res,
			    "pass|example.test|ed|ed25519-sha256|relaxed/relaxed|@example.test|");
	free(res);
	free(m);
	rules_free(r);
}

static void test_tampering(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = sign(plain, RSA_RELAXED), *t, *res;

	(void)state;
	/* the body */
	t = test_replace(m, "stands.", "is off.");
	res = verify(r, t);
	assert_string_equal(res, "fail|example.test|rsa|rsa-sha256|relaxed/relaxed|@example.test|"
				 "body hash did not verify");
	free(res);
	free(t);
	/* a signed header field */
	t = test_replace(m, "Subject: the plan", "Subject: the other plan");
	res = verify(r, t);
	assert_string_equal(res, "fail|example.test|rsa|rsa-sha256|relaxed/relaxed|@example.test|"
				 "signature did not verify");
	free(res);
	free(t);
	/* a field the signature does not cover: still good */
	t = test_replace(m, "Subject:", "X-Scanned: yes\r\nSubject:");
	res = verify(r, t);
	assert_string_equal(res, "pass|example.test|rsa|rsa-sha256|relaxed/relaxed|@example.test|");
	free(res);
	free(t);
	free(m);
	rules_free(r);
}

static void test_no_key_and_timeout(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = sign(plain, "--hcanon relaxed --bcanon relaxed none example.test rsa.pem"),
	     *res = verify(r, m), servers[64];
	long long t0;

	(void)state;
	assert_string_equal(res, "permerror|example.test|none|rsa-sha256|relaxed/relaxed|"
				 "@example.test|no key");
	free(res);
	rules_free(r);
	free(m);

	snprintf(servers, sizeof(servers), "127.0.0.1:%u", silent_port);
	r = load(servers, 500);
	m = sign(plain, RSA_RELAXED);
	t0 = test_now_ms();
	res = verify(r, m);
	assert_true(test_now_ms() - t0 < 3000);
	assert_string_equal(res, "temperror|example.test|rsa|rsa-sha256|relaxed/relaxed|"
				 "@example.test|key lookup timed out");
	free(res);
	free(m);
	rules_free(r);
}

static void test_two_signatures(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *m = sign(plain, RSA_RELAXED), *other, *o, *m2, *res, *end;

	(void)state;
	/* on top, a good Ed25519 signature of another body: fails, the RSA one passes */
	other = test_replace(plain, "stands.", "is off.");
	o = sign(other, "--signalg ed25519-sha256 ed example.test ed25519.seed");
	assert_non_null(end = strstr(o, "\r\nFrom:"));
	end[2] = '\0'; /* the DKIM-Signature field alone */
	assert_non_null(m2 = malloc(strlen(o) + strlen(m) + 1));
	sprintf(m2, "%s%s", o, m);
	res = verify(r, m2);
	assert_string_equal(res, "fail|example.test|ed|ed25519-sha256|relaxed/simple|@example.test|"
				 "body hash did not verify;"
				 "pass|example.test|rsa|rsa-sha256|relaxed/relaxed|@example.test|");
	free(res);
	free(m2);
	free(o);
	free(other);
	/* signed again by the Ed25519 key naming the RSA key's selector: a key of
	 * the wrong type */
	m2 = sign(m, "--signalg ed25519-sha256 rsa example.test ed25519.seed");
	res = verify(r, m2);
	assert_string_equal(res, "permerror|example.test|rsa|ed25519-sha256|relaxed/simple|"
				 "@example.test|unable to apply public key;"
				 "pass|example.test|rsa|rsa-sha256|relaxed/relaxed|@example.test|");
	free(res);
	free(m2);
	free(m);
	rules_free(r);
}

static void test_unsigned(void **state)
{
	struct rules *r = load(dns.servers, 2000);
	char *res = verify(r, plain);

	(void)state;
	assert_string_equal(res, "");
	free(res);
	rules_free(r);
}

/* The signing rules: sign with the key named by X-Key, then add a field
 * the signature does not cover. */
static const char sign_lua[] =
	"return { preq = {\n"
	"  rule \"sign\" (function(ctx)\n"
	"    if ctx:dkim_sign(ctx:get_header('X-Key')) ~= true then error('not true') end\n"
	"    return status.next()\n"
	"  end),\n"
	"  rule \"after\" (function(ctx)\n"
	"    ctx:append_header('X-Scanned', 'after the signature')\n"
	"    return status.next()\n"
	"  end),\n"
	"} }\n";

/* dkim_conf - [dkim:name] for file in the test data (paths kept in bufs). */
static void dkim_conf(struct dkim_config *c, char *path, size_t len, const char *name,
		      const char *selector, const char *file)
{
	snprintf(path, len, "%s/%s", data, file);
	memset(c, 0, sizeof(*c));
	c->name = (char *)name;
	c->domain = (char *)"example.test";
	c->selector = (char *)selector;
	c->key.path = path;
}

/* signed_by - text signed at preq with the key called key, serialized. */
static char *signed_by(struct rules *r, const char *key)
{
	struct rule_ctx ctx = {.client_ip = "192.0.2.1"};
	struct rule_verdict v;
	char *text, *out;
	size_t len;

	assert_true(asprintf(&text, "X-Key: %s\r\n%s", key, plain) > 0);
	assert_non_null(ctx.msg = message_parse(text, strlen(text)));
	assert_int_equal(rules_run(r, RULE_STAGE_PREQ, &ctx, &v), RULE_NEXT);
	assert_non_null(out = message_serialize(ctx.msg, &len));
	rules_ctx_release(&ctx);
	message_free(ctx.msg);
	free(text);
	return out;
}

/* python_verifies - whether python3-dkim's verifier accepts text, the keys
 * given from the test data's records instead of DNS. */
static int python_verifies(const char *text)
{
	char path[300], cmd[1200];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/signed.eml", dir);
	assert_non_null(fp = fopen(path, "wb"));
	fputs(text, fp);
	fclose(fp);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 -c 'import dkim, sys\n"
		 "keys = {b\"rsa._domainkey.example.test.\": \"rsa.txt\",\n"
		 "        b\"ed._domainkey.example.test.\": \"ed25519.txt\"}\n"
		 "def txt(name, timeout=5):\n"
		 "    return open(\"%s/\" + keys[name], \"rb\").read().strip()\n"
		 "msg = open(\"%s\", \"rb\").read()\n"
		 "sys.exit(0 if dkim.verify(msg, dnsfunc=txt) else 1)'",
		 data, path);
	return system(cmd) == 0;
}

static void test_sign(void **state)
{
	struct dkim_config conf[2];
	char p0[600], p1[600], err[1024], *m, *m2, *res;
	struct rules *r, *check = load(dns.servers, 2000);

	(void)state;
	dkim_conf(&conf[0], p0, sizeof(p0), "rsa", "rsa", "rsa.pem");
	dkim_conf(&conf[1], p1, sizeof(p1), "ed", "ed", "ed25519.pem");
	if ((r = load_keys(sign_lua, dns.servers, 2000, conf, 2, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	/* RSA: the independent verifier and ctx:dkim() accept it */
	m = signed_by(r, "rsa");
	assert_true(strncmp(m, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 53) == 0);
	assert_non_null(strstr(m, "h=From:"));
	assert_non_null(strstr(m, "X-Scanned: after the signature"));
	assert_true(python_verifies(m));
	res = verify(check, m);
	assert_string_equal(res, "pass|example.test|rsa|rsa-sha256|relaxed/relaxed||");
	free(res);
	free(m);
	/* Ed25519 */
	m = signed_by(r, "ed");
	assert_non_null(strstr(m, "a=ed25519-sha256"));
	assert_true(python_verifies(m));
	res = verify(check, m);
	assert_string_equal(res, "pass|example.test|ed|ed25519-sha256|relaxed/relaxed||");
	free(res);
	/* From is signed once more than present: a second From, even on top
	 * of the others (where the signed one is not looked for), breaks it */
	assert_true(asprintf(&m2, "From: mallory@example.test\r\n%s", m) > 0);
	res = verify(check, m2);
	assert_string_equal(res, "fail|example.test|ed|ed25519-sha256|relaxed/relaxed||"
				 "signature did not verify");
	free(res);
	free(m2);
	free(m);
	rules_free(r);
	rules_free(check);
}

static void test_sign_errors(void **state)
{
	struct dkim_config conf;
	char p[600], err[1024], *text;
	struct rules *r;

	(void)state;
	/* a file that is no key, a missing file, a short RSA key */
	dkim_conf(&conf, p, sizeof(p), "bad", "bad", "rsa.txt");
	assert_null(load_keys(sign_lua, dns.servers, 2000, &conf, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "rsa.txt: not a PEM private key"));
	dkim_conf(&conf, p, sizeof(p), "bad", "bad", "missing.pem");
	assert_null(load_keys(sign_lua, dns.servers, 2000, &conf, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "missing.pem: cannot read the DKIM key"));
	snprintf(p, sizeof(p), "%s/short.pem", dir);
	assert_true(asprintf(&text, "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 "
				    "-out '%s' 2>/dev/null", p) > 0);
	assert_int_equal(system(text), 0);
	free(text);
	conf.key.path = p;
	assert_null(load_keys(sign_lua, dns.servers, 2000, &conf, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "short.pem: an RSA key of 1024 bits"));
	/* an unknown key name is a rule error */
	dkim_conf(&conf, p, sizeof(p), "rsa", "rsa", "rsa.pem");
	if ((r = load_keys(sign_lua, dns.servers, 2000, &conf, 1, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	{
		struct rule_ctx ctx = {.client_ip = "192.0.2.1"};
		struct rule_verdict v;

		assert_true(asprintf(&text, "X-Key: other\r\n%s", plain) > 0);
		assert_non_null(ctx.msg = message_parse(text, strlen(text)));
		assert_int_equal(rules_run(r, RULE_STAGE_PREQ, &ctx, &v), RULE_ERROR);
		assert_int_equal(message_header_count(ctx.msg, "DKIM-Signature"), 0);
		rules_ctx_release(&ctx);
		message_free(ctx.msg);
		free(text);
	}
	rules_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa_relaxed_pass),
		cmocka_unit_test(test_rsa_simple_pass),
		cmocka_unit_test(test_ed25519_pass),
		cmocka_unit_test(test_tampering),
		cmocka_unit_test(test_no_key_and_timeout),
		cmocka_unit_test(test_two_signatures),
		cmocka_unit_test(test_unsigned),
		cmocka_unit_test(test_sign),
		cmocka_unit_test(test_sign_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
