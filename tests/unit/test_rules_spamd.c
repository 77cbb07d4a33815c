/*
 * test_rules_spamd.c - ctx:spamd's parts without spamd: the parser of
 * spamd's answers and of the rule names in their bodies (SYMBOLS and
 * REPORT), and ctx:spamd against a fake spamd in a thread of the test that
 * records the request and answers as told.
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

#include "config.h"
#include "helper_mail.h"
#include "helper_rules.h"
#include "rules_internal.h"
#include "rules_spamd.h"

#define GTUBE_ANSWER                                                                               \
	"SPAMD/1.1 0 EX_OK\r\nContent-length: 17\r\nSpam: True ; 1003.3 / 5.0\r\n\r\n"            \
	"GTUBE,MISSING_MID"

#define REPORT_BODY                                                                                \
	"Content analysis details:   (3.3 points, 5.0 required)\n\n"                              \
	" pts rule name              description\n"                                                \
	"---- ---------------------- ------------------------------------------\n"                \
	"-0.0 NO_RECEIVED            Informational: message has no Received headers\n"            \
	" 1.4 MISSING_DATE           Missing Date: header\n"                                       \
	"                            [cites 2.0 points]\n"                                          \
	"1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email\n"

/* names - the rule names of body, joined by spaces (static). */
static const char *names(const char *body, int report)
{
	static char out[512];
	const char *name;
	size_t pos = 0, n, used = 0;

	out[0] = '\0';
	while (rules_spamd_symbol(body, strlen(body), report, &pos, &name, &n))
		used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%.*s", used ? " " : "",
		                         (int)n, name);
	return out;
}

/* bad - the answer must not parse, with err saying words. */
static void bad(const char *answer, const char *words)
{
	struct rules_spamd_reply r;
	char err[256];

	assert_int_equal(rules_spamd_parse(answer, strlen(answer), &r, err, sizeof(err)), -1);
	if (strstr(err, words) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", err, words);
}

/* test_parse - answers good and bad, and the names in their bodies. */
static void test_parse(void **state)
{
	struct rules_spamd_reply r;
	char err[256];

	(void)state;
	assert_int_equal(rules_spamd_parse(GTUBE_ANSWER, strlen(GTUBE_ANSWER), &r, err, sizeof(err)),
	                 0);
	assert_true(r.is_spam);
	assert_true(r.score > 1003.2 && r.score < 1003.4);
	assert_true(r.threshold > 4.9 && r.threshold < 5.1);
	assert_int_equal(r.body_len, 17);
	assert_memory_equal(r.body, "GTUBE,MISSING_MID", 17);
	assert_string_equal(names("GTUBE,MISSING_MID", 0), "GTUBE MISSING_MID");
	assert_string_equal(names(" A , B,,C\r\n", 0), "A B C");
	assert_string_equal(names("", 0), "");
	assert_string_equal(names(REPORT_BODY, 1), "NO_RECEIVED MISSING_DATE GTUBE");

	assert_int_equal(rules_spamd_parse("SPAMD/1.1 0 EX_OK\nspam: no ; -1.5 / 5\n\n", 39, &r, err,
	                                   sizeof(err)),
	                 0);
	assert_false(r.is_spam);
	assert_true(r.score < -1.4 && r.score > -1.6);
	assert_int_equal(r.body_len, 0);

	bad("SPAMD/1.0 76 Bad header line: (Content-length)\r\n",
	    "spamd answered status 76: Bad header line");
	bad("HTTP/1.1 200 OK\r\n\r\n", "does not start with a SPAMD/ status line");
	bad("SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", "no Spam header");
	bad("SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1 / 5\r\n\r\n", "Spam header is not");
	bad("SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / \r\n\r\n", "Spam header is not");
	bad("SPAMD/1.1 0 EX_OK\r\nSpam: True ; nan / 5\r\n\r\n", "Spam header is not");
	bad("SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / 5\r\n", "ends within its headers");
	bad("SPAMD/1.1 0 EX_OK\r\nSpam True\r\n\r\n", "without a colon");
	bad("SPAMD/1.1 0 EX_OK\r\nContent-length: -3\r\n\r\n", "not a length");
	bad("SPAMD/1.1 0 EX_OK", "no complete line");
}

/* The fake spamd: its answer, and the request it got. */
struct fake {
	const char *answer;
	char request[4096];
};

/* serve - read the request to its end, answer. */
static void serve(int fd, void *arg)
{
	struct fake *f = arg;
	size_t used = 0;
	ssize_t n;

	while (used < sizeof(f->request) - 1 &&
	       (n = recv(fd, f->request + used, sizeof(f->request) - 1 - used, 0)) > 0)
		used += (size_t)n;
	f->request[used] = '\0';
	(void)send(fd, f->answer, strlen(f->answer), MSG_NOSIGNAL);
}

/* check - run text's preq rule against a fake answering answer; what the
 * rule recorded (static), the request in f. */
static const char *check(const char *text, const char *answer, const char *user, struct fake *f)
{
	static char out[1024];
	struct rules_limits limits = {.instructions = 200000, .memory = 4 << 20};
	struct service_config svc = {.name = "sa", .kind = SERVICE_SPAMD, .connect_timeout_ms = 2000,
	                             .timeout_ms = 2000, .user = (char *)user};
	struct rules_settings settings = {.hostname = "mx.example.com", .local_domains = "",
	                                  .trusted_networks = "", .services = &svc, .nservices = 1};
	struct rule_ctx ctx = {.client_ip = "192.0.2.1", .helo = ""};
	static const char msg[] = "Subject: hi\r\n\r\nhello\r\n";
	struct test_server srv;
	struct rule_verdict v;
	struct rules *r;
	char *vars;

	memset(f, 0, sizeof(*f));
	f->answer = answer;
	test_server_start_tcp(&srv, serve, f);
	svc.address = srv.address;
	r = test_rules_load_ok(test_dir, text, &limits, &settings);
	assert_non_null(ctx.msg = message_parse(msg, strlen(msg)));
	v.status = RULE_ERROR;
	rules_run(r, RULE_STAGE_PREQ, &ctx, &v);
	vars = rules_tx_vars(&ctx);
	snprintf(out, sizeof(out), "%s %s", rules_status_name(v.status), vars ? vars : "{}");
	test_server_stop(&srv);
	free(vars);
	message_free(ctx.msg);
	rules_ctx_release(&ctx);
	rules_free(r);
	return out;
}

#define RECORD(call)                                                                               \
	"return { preq = { rule \"sa\" (function(ctx)\n"                                           \
	"  local r = " call "\n"                                                                   \
	"  ctx:set(\"out\", string.format(\"%s %.1f %.1f [%s] %d\", tostring(r.is_spam),\n"      \
	"          r.score, r.threshold, table.concat(r.symbols, \" \"), #r.report))\n"             \
	"  return r.status\n"                                                                      \
	"end) } }\n"

/* test_ctx_spamd - the request spamd gets, and the result the rule sees. */
static void test_ctx_spamd(void **state)
{
	static const char report[] = "SPAMD/1.1 0 EX_OK\r\nSpam: False ; 3.3 / 5.0\r\n\r\n" REPORT_BODY;
	char want[128];
	struct fake f;

	(void)state;
	assert_string_equal(check(RECORD("ctx:spamd(\"sa\")"), GTUBE_ANSWER, "vmail", &f),
	                    "next {\"out\":\"true 1003.3 5.0 [GTUBE MISSING_MID] 0\"}");
	assert_string_equal(f.request, "SYMBOLS SPAMC/1.5\r\nContent-length: 22\r\nUser: vmail\r\n"
	                               "\r\nSubject: hi\r\n\r\nhello\r\n");
	snprintf(want, sizeof(want), "next {\"out\":\"false 3.3 5.0 [NO_RECEIVED MISSING_DATE GTUBE] %zu\"}",
	         strlen(REPORT_BODY));
	assert_string_equal(check(RECORD("ctx:spamd(\"sa\", {report = true})"), report, NULL, &f),
	                    want);
	assert_string_equal(f.request, "REPORT SPAMC/1.5\r\nContent-length: 22\r\n\r\n"
	                               "Subject: hi\r\n\r\nhello\r\n");
	/* on_failure = tempfail (the default): a garbled answer is 451 */
	assert_string_equal(check(RECORD("ctx:spamd(\"sa\")"), "garbage\r\n", NULL, &f), "reject {}");
	assert_string_equal(check(RECORD("ctx:spamd(\"sa\", {repor = true})"), GTUBE_ANSWER, NULL, &f),
	                    "error {}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_ctx_spamd),
	};

	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
