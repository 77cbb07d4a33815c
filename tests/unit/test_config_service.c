/*
 * test_config_service.c - unit tests of the [service:NAME] sections
 * (config_service.c): every key and its default, each kind's keys, the
 * addresses accepted and turned into socket addresses, and the errors,
 * each naming the file and the line.
 *
 * Each test writes its config to a temporary file, loads it and removes it.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define MINIMAL "[listener:smtp]\naddress = 127.0.0.1:2525\n"

static char tmp_path[PATH_MAX];
static char err[1024];

/* load_with - load text as a config file, then the overrides; NULL with err on failure. */
static struct config *load_with(const char *text, char *const *overrides, size_t n)
{
	const char *dir = getenv("TMPDIR");
	struct config *cfg;
	size_t len = strlen(text);
	int fd;

	snprintf(tmp_path, sizeof(tmp_path), "%s/vsmtpd-test-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	cfg = config_load(tmp_path, overrides, n, err, sizeof(err));
	unlink(tmp_path);
	return cfg;
}

/* load_ok - load text, which must succeed. */
static struct config *load_ok(const char *text)
{
	struct config *cfg = load_with(text, NULL, 0);

	if (cfg == NULL)
		fail_msg("config_load failed: %s", err);
	return cfg;
}

/* expect_error - loading text must fail with "tmp_path:line: message". */
static void expect_error(const char *text, int line, const char *message)
{
	char want[PATH_MAX + 1024];
	struct config *cfg = load_with(text, NULL, 0);

	if (cfg != NULL) {
		config_free(cfg);
		fail_msg("config_load accepted:\n%s", text);
	}
	snprintf(want, sizeof(want), "%s:%d: %s", tmp_path, line, message);
	assert_string_equal(err, want);
}

/* test_defaults - a clamd service with only its kind and address. */
static void test_defaults(void **state)
{
	struct config *cfg;
	char where[PATH_MAX + 16];

	(void)state;
	cfg = load_ok(MINIMAL "\n[service:clamav]\nkind = clamd\naddress = 127.0.0.1:3310\n");
	assert_int_equal(cfg->nservice, 1);
	assert_string_equal(cfg->service[0].name, "clamav");
	assert_int_equal(cfg->service[0].kind, SERVICE_CLAMD);
	assert_string_equal(cfg->service[0].address, "127.0.0.1:3310");
	assert_int_equal(cfg->service[0].connect_timeout_ms, 5000);
	assert_int_equal(cfg->service[0].timeout_ms, 30000);
	assert_int_equal(cfg->service[0].on_failure, SERVICE_FAIL_TEMPFAIL);
	assert_int_equal(cfg->service[0].max_size, 0);
	assert_null(cfg->service[0].password);
	assert_null(cfg->service[0].path);
	assert_null(cfg->service[0].user);
	assert_null(cfg->service[0].argv);
	snprintf(where, sizeof(where), "%s:4", tmp_path);
	assert_string_equal(cfg->service[0].where, where);
	config_free(cfg);
}

/* test_every_key - every key of every kind, set away from its default. */
static void test_every_key(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok(MINIMAL "[service:av]\n"
	                      "kind = clamd\n"
	                      "address = /run/clamav/clamd.ctl\n"
	                      "connect_timeout = 250ms\n"
	                      "timeout = 2m\n"
	                      "on_failure = accept\n"
	                      "max_size = 10M\n"
	                      "[service:sa]\n"
	                      "kind = spamd\n"
	                      "address = [::1]:783\n"
	                      "user = vsmtpd\n"
	                      "on_failure = reject\n"
	                      "[service:rs]\n"
	                      "kind = rspamd\n"
	                      "address = 127.0.0.1:11333\n"
	                      "password = secret word\n"
	                      "path = /checkv2\n"
	                      "[service:rs2]\n"
	                      "kind = rspamd\n"
	                      "address = 127.0.0.1:11334\n"
	                      "[service:dkim-milter]\n"
	                      "kind = milter\n"
	                      "address = 127.0.0.1:8891\n"
	                      "[service:check_1]\n"
	                      "kind = command\n"
	                      "command = /usr/bin/check  --fast\t-x\n"
	                      "[service:filter]\n"
	                      "kind = delegate\n"
	                      "address = 127.0.0.1:10025\n"
	                      "[listener:back]\n"
	                      "kind = delegation\n"
	                      "address = 127.0.0.1:10026\n");
	assert_int_equal(cfg->nservice, 7);
	assert_string_equal(cfg->service[0].address, "/run/clamav/clamd.ctl");
	assert_int_equal(cfg->service[0].connect_timeout_ms, 250);
	assert_int_equal(cfg->service[0].timeout_ms, 120000);
	assert_int_equal(cfg->service[0].on_failure, SERVICE_FAIL_ACCEPT);
	assert_int_equal(cfg->service[0].max_size, 10 << 20);
	assert_int_equal(cfg->service[1].kind, SERVICE_SPAMD);
	assert_string_equal(cfg->service[1].user, "vsmtpd");
	assert_int_equal(cfg->service[1].on_failure, SERVICE_FAIL_REJECT);
	assert_int_equal(cfg->service[2].kind, SERVICE_RSPAMD);
	assert_string_equal(cfg->service[2].password, "secret word");
	assert_string_equal(cfg->service[2].path, "/checkv2");
	assert_string_equal(cfg->service[3].path, "/checkv2"); /* the default */
	assert_int_equal(cfg->service[4].kind, SERVICE_MILTER);
	assert_int_equal(cfg->service[5].kind, SERVICE_COMMAND);
	assert_null(cfg->service[5].address);
	assert_string_equal(cfg->service[5].argv[0], "/usr/bin/check");
	assert_string_equal(cfg->service[5].argv[1], "--fast");
	assert_string_equal(cfg->service[5].argv[2], "-x");
	assert_null(cfg->service[5].argv[3]);
	assert_int_equal(cfg->service[6].kind, SERVICE_DELEGATE);
	assert_string_equal(config_service_kind_name(cfg->service[6].kind), "delegate");
	assert_string_equal(config_service_failure_name(SERVICE_FAIL_REJECT), "reject");
	config_free(cfg);
}

/* test_errors - each mistake named with its file and line. */
static void test_errors(void **state)
{
	(void)state;
	expect_error(MINIMAL "[service]\n", 3,
	             "section [service] needs a name, as in [service:clamav]");
	expect_error(MINIMAL "[service:Bad]\n", 3,
	             "[service:Bad]: a service name is 1 to 32 characters of a-z, 0-9, _ and -");
	expect_error(MINIMAL "[service:a]\nkind = clamd\naddress = 127.0.0.1:1\n[service:a]\n", 6,
	             "duplicate section [service:a], first on line 3");
	expect_error(MINIMAL "[service:a]\naddress = 127.0.0.1:1\n", 3,
	             "[service:a] needs kind: clamd, spamd, rspamd, milter, command or delegate");
	expect_error(MINIMAL "[service:a]\nkind = clamav\n", 4,
	             "[service:a] kind: \"clamav\" is not one of clamd, spamd, rspamd, milter, "
	             "command, delegate");
	expect_error(MINIMAL "[service:f]\nkind = delegate\naddress = 127.0.0.1:10025\n", 3,
	             "[service:f] kind delegate: the filter sends mail back to a [listener:NAME] "
	             "with kind = delegation; declare one");
	expect_error(MINIMAL "[service:a]\nkind = clamd\n", 3,
	             "[service:a] needs address (IPv4:port, [IPv6]:port or a Unix socket path)");
	expect_error(MINIMAL "[service:a]\nkind = clamd\naddress = localhost:3310\n", 5,
	             "[service:a] address: \"localhost:3310\" is not IPv4:port, [IPv6]:port or "
	             "an absolute Unix socket path (host names are not looked up)");
	expect_error(MINIMAL "[service:a]\nkind = clamd\naddress = 127.0.0.1:0\n", 5,
	             "[service:a] address: \"127.0.0.1:0\" is not IPv4:port, [IPv6]:port or "
	             "an absolute Unix socket path (host names are not looked up)");
	expect_error(MINIMAL "[service:a]\nkind = clamd\naddress = [::1]\n", 5,
	             "[service:a] address: \"[::1]\" is not IPv4:port, [IPv6]:port or "
	             "an absolute Unix socket path (host names are not looked up)");
	expect_error(MINIMAL "[service:a]\nkind = clamd\naddress = 127.0.0.1:1\ntimeout = 5\n"
	                     "timeout = 6\n",
	             7, "[service:a] timeout: already set on line 6");
	expect_error(MINIMAL "[service:a]\nkind = clamd\naddress = 127.0.0.1:1\ntimeout = 1ms\n", 6,
	             "[service:a] timeout: \"1ms\" is less than the minimum, 10ms");
	expect_error(MINIMAL "[service:a]\nkind = clamd\naddress = 127.0.0.1:1\non_failure = drop\n",
	             6, "[service:a] on_failure: \"drop\" is not one of tempfail, accept, reject");
	expect_error(MINIMAL "[service:a]\nkind = clamd\naddress = 127.0.0.1:1\nuser = x\n", 6,
	             "[service:a] user is for kind spamd, not clamd");
	expect_error(MINIMAL "[service:a]\nkind = spamd\naddress = 127.0.0.1:1\npassword = x\n", 6,
	             "[service:a] password is for kind rspamd, not spamd");
	expect_error(MINIMAL "[service:a]\nkind = rspamd\naddress = 127.0.0.1:1\npath = checkv2\n",
	             6, "[service:a] path: \"checkv2\" does not start with /");
	expect_error(MINIMAL "[service:a]\nkind = command\ncommand = check -x\n", 5,
	             "[service:a] command: \"check -x\" does not start with an absolute program "
	             "path (no shell, no PATH search)");
	expect_error(MINIMAL "[service:a]\nkind = command\ncommand = /bin/true\naddress = /x\n", 6,
	             "[service:a] address: a command service runs a program, named by command, "
	             "and has no address");
	expect_error(MINIMAL "[service:a]\nkind = command\n", 3,
	             "[service:a] needs command (the program's absolute path and its arguments)");
	expect_error(MINIMAL "[service:a]\nkind = clamd\naddress = /x\ncommand = /bin/true\n", 6,
	             "[service:a] command is for kind command, not clamd");
}

/* test_sockaddr - the addresses as the calls connect to them. */
static void test_sockaddr(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char text[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(config_service_sockaddr("192.0.2.7:3310", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 3310);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(config_service_sockaddr("[2001:db8::1]:11333", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text,
	                          sizeof(text)));
	assert_string_equal(text, "2001:db8::1");
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 11333);
	assert_int_equal(config_service_sockaddr("/run/clamav/clamd.ctl", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_UNIX);
	assert_string_equal(((struct sockaddr_un *)&ss)->sun_path, "/run/clamav/clamd.ctl");
	assert_true(config_service_is_unix("/run/x"));
	assert_false(config_service_is_unix("127.0.0.1:1"));
	assert_int_equal(config_service_sockaddr("127.0.0.1", &ss, &len), -1);
	assert_int_equal(config_service_sockaddr("127.0.0.1:65536", &ss, &len), -1);
	assert_int_equal(config_service_sockaddr("[127.0.0.1]:25", &ss, &len), -1);
	assert_int_equal(config_service_sockaddr("::1:25", &ss, &len), -1);
	assert_int_equal(config_service_sockaddr("mail.example:25", &ss, &len), -1);
}

/* test_overrides - a service set or changed with -o. */
static void test_overrides(void **state)
{
	char *o[] = {"service:av.kind=clamd", "service:av.address=127.0.0.1:3310",
	             "service:av.on_failure=accept"};
	struct config *cfg;

	(void)state;
	cfg = load_with(MINIMAL "[service:av]\nkind = spamd\naddress = 127.0.0.1:783\n", o, 3);
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->nservice, 1);
	assert_int_equal(cfg->service[0].kind, SERVICE_CLAMD);
	assert_string_equal(cfg->service[0].address, "127.0.0.1:3310");
	assert_int_equal(cfg->service[0].on_failure, SERVICE_FAIL_ACCEPT);
	config_free(cfg);
	cfg = load_with(MINIMAL, o, 3);
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->service[0].where, "command line");
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),   cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_errors),     cmocka_unit_test(test_sockaddr),
	    cmocka_unit_test(test_overrides),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
