/*
 * test_rules_clamd.c - ctx:clamd's parts without clamd: the parser of
 * clamd's answers (clean, infected, ERROR, garbage), and ctx:clamd against
 * a fake clamd in a thread of the test that checks the INSTREAM framing
 * and answers as told; the stages where ctx:clamd refuses to run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rules_clamd.h"
#include "config.h"
#include "helper_mail.h"
#include "helper_rules.h"
#include "rules_internal.h"

/* parse - rules_clamd_parse on a C string (len bytes of it, NUL included). */
static enum rules_clamd_verdict parse(const char *text, size_t len, char *virus)
{
	return rules_clamd_parse(text, len, virus);
}

/* test_parse - every kind of answer. */
static void test_parse(void **state)
{
	char virus[RULES_CLAMD_VIRUS_MAX], longer[400];

	(void)state;
	assert_int_equal(parse("stream: OK", 11, virus), RULES_CLAMD_CLEAN);
	assert_string_equal(virus, "");
	assert_int_equal(parse("stream: OK\n", 11, virus), RULES_CLAMD_CLEAN);
	assert_int_equal(parse("stream: Eicar-Test-Signature FOUND", 35, virus),
	                 RULES_CLAMD_INFECTED);
	assert_string_equal(virus, "Eicar-Test-Signature");
	assert_int_equal(parse("stream: Win.Test.EICAR_HDB-1 FOUND\n", 35, virus),
	                 RULES_CLAMD_INFECTED);
	assert_string_equal(virus, "Win.Test.EICAR_HDB-1");
	assert_int_equal(parse("INSTREAM size limit exceeded. ERROR", 36, virus),
	                 RULES_CLAMD_ERROR);
	assert_string_equal(virus, "INSTREAM size limit exceeded. ERROR");
	assert_int_equal(parse("stream: OK\0junk", 15, virus), RULES_CLAMD_CLEAN);
	assert_int_equal(parse("stream:  FOUND", 14, virus), RULES_CLAMD_GARBAGE);
	assert_int_equal(parse("stream: two words FOUND", 23, virus), RULES_CLAMD_GARBAGE);
	assert_int_equal(parse("HTTP/1.1 400 Bad\r\n", 18, virus), RULES_CLAMD_GARBAGE);
	assert_string_equal(virus, "unexpected answer \"HTTP/1.1 400 Bad\"");
	assert_int_equal(parse("stream: \x01 FOUND", 15, virus), RULES_CLAMD_GARBAGE);
	assert_string_equal(virus, "unexpected answer \"stream: ? FOUND\"");
	assert_int_equal(parse("", 0, virus), RULES_CLAMD_GARBAGE);
	memset(longer, 'x', sizeof(longer));
	memcpy(longer, "stream: ", 8);
	memcpy(longer + sizeof(longer) - 6, " FOUND", 6);
	assert_int_equal(parse(longer, sizeof(longer), virus), RULES_CLAMD_GARBAGE);
	assert_non_null(strstr(virus, "...\""));
}

/* The fake clamd: what it answers, what it got. */
struct fake {
	const char *answer; /* sent with its NUL */
	size_t got;         /* bytes of stream received */
	int chunks, framing_ok;
};

/* serve - one INSTREAM request: check it, count the data, answer. */
static void serve(int fd, void *arg)
{
	struct fake *f = arg;
	char cmd[10];

	f->framing_ok = recv(fd, cmd, 10, MSG_WAITALL) == 10 && memcmp(cmd, "zINSTREAM", 10) == 0 &&
	                test_read_frames(fd, 65536, &f->got, &f->chunks) == 0;
	(void)send(fd, f->answer, strlen(f->answer) + 1, MSG_NOSIGNAL);
}

static char address[32];
static struct service_config svc[1];

/* load - the rules text with one clamd service "av" at address. */
static struct rules *load(const char *text)
{
	struct rules_limits limits = {.instructions = 200000, .memory = 4 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com", .local_domains = "",
	                                  .trusted_networks = "", .services = svc, .nservices = 1};

	svc[0] = (struct service_config){.name = "av", .kind = SERVICE_CLAMD, .address = address,
	                                 .connect_timeout_ms = 2000, .timeout_ms = 2000,
	                                 .on_failure = SERVICE_FAIL_ACCEPT};
	return test_rules_load_ok(test_dir, text, &limits, &settings);
}

/* RULES - records the result in the transaction's variables. */
#define RULES                                                                                      \
	"return { preq = { rule \"scan\" (function(ctx)\n"                                         \
	"  local r = ctx:clamd(\"av\")\n"                                                          \
	"  ctx:set(\"out\", tostring(r.clean) .. \" \" .. tostring(r.virus) .. \" \" ..\n"        \
	"          tostring(r.failed) .. \" \" .. tostring(r.skipped))\n"                           \
	"  return r.status\n"                                                                      \
	"end) } }\n"

/* scan - ctx:clamd on a message of body bytes against a fake answering
 * answer; what the rule recorded (static). */
static const char *scan(const char *answer, size_t body, struct fake *f)
{
	static char out[256];
	struct test_server srv;
	struct rule_ctx ctx = {.client_ip = "192.0.2.1", .helo = ""};
	struct rule_verdict v;
	struct rules *r;
	char *text, *vars;

	memset(f, 0, sizeof(*f));
	f->answer = answer;
	test_server_start_tcp(&srv, serve, f);
	snprintf(address, sizeof(address), "%s", srv.address);
	r = load(RULES);
	text = calloc(1, body + 32);
	strcpy(text, "Subject: scan me\r\n\r\n");
	memset(text + strlen(text), 'b', body);
	assert_non_null(ctx.msg = message_parse(text, strlen(text)));
	assert_int_equal(rules_run(r, RULE_STAGE_PREQ, &ctx, &v), RULE_NEXT);
	assert_non_null(vars = rules_tx_vars(&ctx));
	snprintf(out, sizeof(out), "%s", vars);
	test_server_stop(&srv);
	free(vars);
	free(text);
	message_free(ctx.msg);
	rules_ctx_release(&ctx);
	rules_free(r);
	return out;
}

/* test_ctx_clamd - the message in chunks; the answers as the rule sees them. */
static void test_ctx_clamd(void **state)
{
	struct fake f;

	(void)state;
	assert_string_equal(scan("stream: OK", 200000, &f), "{\"out\":\"true nil false false\"}");
	assert_true(f.framing_ok);
	assert_int_equal(f.got, 200000 + strlen("Subject: scan me\r\n\r\n"));
	assert_int_equal(f.chunks, 4);
	assert_string_equal(scan("stream: Eicar-Test-Signature FOUND", 10, &f),
	                    "{\"out\":\"false Eicar-Test-Signature false false\"}");
	/* on_failure = accept: a garbled answer is a failed call the rule sees */
	assert_string_equal(scan("what?", 10, &f), "{\"out\":\"nil nil true false\"}");
}

/* test_stages - before preq there is no message to scan. */
static void test_stages(void **state)
{
	struct rules *r;
	struct rule_ctx ctx = {.client_ip = "192.0.2.1", .helo = ""};
	struct rule_verdict v;

	(void)state;
	snprintf(address, sizeof(address), "127.0.0.1:9");
	r = load("return { connect = { rule \"c\" (function(ctx) return ctx:clamd(\"av\").status "
	         "end) } }\n");
	assert_int_equal(rules_run(r, RULE_STAGE_CONNECT, &ctx, &v), RULE_ERROR);
	rules_ctx_release(&ctx);
	rules_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_ctx_clamd),
	    cmocka_unit_test(test_stages),
	};

	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
