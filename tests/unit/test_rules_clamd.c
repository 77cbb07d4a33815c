/*
 * test_rules_clamd.c - ctx:clamd's parts without clamd: the parser of
 * clamd's answers (clean, infected, ERROR, garbage), and ctx:clamd against
 * a fake clamd in a thread of the test that checks the INSTREAM framing
 * and answers as told; the stages where ctx:clamd refuses to run.
 */
#include <netinet/in.h>
#include <pthread.h>
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
	int lfd;
	const char *answer; /* sent with its NUL */
	size_t got;         /* bytes of stream received */
	int chunks, framing_ok;
};

/* fake_main - one INSTREAM request: check it, count the data, answer. */
static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	char cmd[10], buf[65536];
	unsigned char len[4];
	size_t n;

	if (fd < 0)
		return NULL;
	f->framing_ok = recv(fd, cmd, 10, MSG_WAITALL) == 10 && memcmp(cmd, "zINSTREAM", 10) == 0;
	while (f->framing_ok && recv(fd, len, 4, MSG_WAITALL) == 4) {
		n = (size_t)len[0] << 24 | (size_t)len[1] << 16 | (size_t)len[2] << 8 | len[3];
		if (n == 0)
			break;
		if (n > sizeof(buf) || recv(fd, buf, n, MSG_WAITALL) != (ssize_t)n) {
			f->framing_ok = 0;
			break;
		}
		f->got += n;
		f->chunks++;
	}
	(void)send(fd, f->answer, strlen(f->answer) + 1, MSG_NOSIGNAL);
	close(fd);
	return NULL;
}

static char dir[64];
static char address[32];
static struct service_config svc[1];

/* load - the rules text with one clamd service "av" at address. */
static struct rules *load(const char *text)
{
	struct rules_limits limits = {.instructions = 200000, .memory = 4 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com", .local_domains = "",
	                                  .trusted_networks = "", .services = svc, .nservices = 1};
	char path[128], err[1024];
	struct rules *r;
	FILE *fp;

	svc[0] = (struct service_config){.name = "av", .kind = SERVICE_CLAMD, .address = address,
	                                 .connect_timeout_ms = 2000, .timeout_ms = 2000,
	                                 .on_failure = SERVICE_FAIL_ACCEPT};
	snprintf(path, sizeof(path), "%s/main.lua", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	if ((r = rules_load(path, &limits, &settings, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	return r;
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
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t slen = sizeof(sin);
	struct rule_ctx ctx = {.client_ip = "192.0.2.1", .helo = ""};
	struct rule_verdict v;
	struct rules *r;
	char *text, *vars;
	pthread_t t;

	memset(f, 0, sizeof(*f));
	f->answer = answer;
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(f->lfd, 1), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &slen), 0);
	snprintf(address, sizeof(address), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(pthread_create(&t, NULL, fake_main, f), 0);
	r = load(RULES);
	text = calloc(1, body + 32);
	strcpy(text, "Subject: scan me\r\n\r\n");
	memset(text + strlen(text), 'b', body);
	assert_non_null(ctx.msg = message_parse(text, strlen(text)));
	assert_int_equal(rules_run(r, RULE_STAGE_PREQ, &ctx, &v), RULE_NEXT);
	assert_non_null(vars = rules_tx_vars(&ctx));
	snprintf(out, sizeof(out), "%s", vars);
	shutdown(f->lfd, SHUT_RDWR); /* wakes the fake when no call came */
	pthread_join(t, NULL);
	close(f->lfd);
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

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-test-clamd.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_ctx_clamd),
	    cmocka_unit_test(test_stages),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
