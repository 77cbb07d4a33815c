/*
 * test_config.c - unit tests of config.c: defaults, every key, sizes and
 * durations, the error messages, the overrides and the shipped config file.
 *
 * Each test writes its config to a temporary file, loads it and removes it.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define MINIMAL "[listener:smtp]\naddress = 127.0.0.1:2525\n"

static char tmp_path[PATH_MAX];
static char err[1024];

/* write_temp - put text in a new temporary file, named in tmp_path. */
static void write_temp(const char *text)
{
	const char *dir = getenv("TMPDIR");
	size_t len = strlen(text);
	int fd;

	snprintf(tmp_path, sizeof(tmp_path), "%s/vsmtpd-test-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* load_with - load text as a config file, then the overrides. */
static struct config *load_with(const char *text, char *const *overrides, size_t noverrides)
{
	struct config *cfg;

	write_temp(text);
	err[0] = 'x';
	err[1] = '\0';
	cfg = config_load(tmp_path, overrides, noverrides, err, sizeof(err));
	unlink(tmp_path);
	if (cfg != NULL)
		assert_string_equal(err, "");
	return cfg;
}

/* load - load text as a config file, without overrides. */
static struct config *load(const char *text)
{
	return load_with(text, NULL, 0);
}

/* load_ok - load text, which must succeed. */
static struct config *load_ok(const char *text)
{
	struct config *cfg = load(text);

	if (cfg == NULL)
		fail_msg("config_load failed: %s", err);
	return cfg;
}

/* expect_error - loading text must fail with "tmp_path:line: message". */
static void expect_error(const char *text, int line, const char *message)
{
	char want[PATH_MAX + 1024];
	struct config *cfg = load(text);

	if (cfg != NULL) {
		config_free(cfg);
		fail_msg("config_load accepted:\n%s", text);
	}
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: %s", tmp_path, line, message);
	else
		snprintf(want, sizeof(want), "%s: %s", tmp_path, message);
	assert_string_equal(err, want);
}

/* source_dir - the top of the source tree, three levels above the test data. */
static const char *source_dir(void)
{
	static char dir[PATH_MAX];
	const char *env = getenv("VSMTPD_SOURCE_DIR");
	int up;

	if (env != NULL && *env != '\0')
		return env;
	env = getenv("VSMTPD_TEST_DATA");
	if (env == NULL || *env == '\0')
		return ".";
	/* Lexically: tests/unit/data need not exist for its "..". */
	snprintf(dir, sizeof(dir), "%s", env);
	for (up = 0; up < 3; up++) {
		char *slash;
		size_t len = strlen(dir);

		while (len > 1 && dir[len - 1] == '/')
			dir[--len] = '\0';
		slash = strrchr(dir, '/');
		if (slash == NULL)
			return ".";
		slash[slash == dir] = '\0';
	}
	return dir;
}

/* test_parse_size - plain numbers, suffixes, garbage and overflow. */
static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(config_parse_size("10240000", &v), 0);
	assert_int_equal(v, 10240000);
	assert_int_equal(config_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_size("512k", &v), 0);
	assert_int_equal(v, 512 * 1024);
	assert_int_equal(config_parse_size("512K", &v), 0);
	assert_int_equal(v, 512 * 1024);
	assert_int_equal(config_parse_size("25M", &v), 0);
	assert_int_equal(v, 26214400);
	assert_int_equal(config_parse_size("25m", &v), 0);
	assert_int_equal(v, 26214400);
	assert_int_equal(config_parse_size("1G", &v), 0);
	assert_int_equal(v, 1073741824);
	assert_int_equal(config_parse_size("2t", &v), 0);
	assert_int_equal(v, UINT64_C(2) << 40);
	assert_int_equal(config_parse_size("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);

	assert_int_equal(config_parse_size("", &v), -1);
	assert_int_equal(config_parse_size("k", &v), -1);
	assert_int_equal(config_parse_size("-1", &v), -1);
	assert_int_equal(config_parse_size("+1", &v), -1);
	assert_int_equal(config_parse_size(" 1", &v), -1);
	assert_int_equal(config_parse_size("1 ", &v), -1);
	assert_int_equal(config_parse_size("1 k", &v), -1);
	assert_int_equal(config_parse_size("1kb", &v), -1);
	assert_int_equal(config_parse_size("1x", &v), -1);
	assert_int_equal(config_parse_size("1.5M", &v), -1);
	assert_int_equal(config_parse_size("0x10", &v), -1);
	assert_int_equal(config_parse_size("18446744073709551616", &v), -1);
	assert_int_equal(config_parse_size("17179869184G", &v), -1);
	assert_int_equal(config_parse_size("16777216T", &v), -1);
	assert_int_equal(config_parse_size("16777215T", &v), 0);
}

/* test_parse_duration - bare seconds, each unit, garbage and overflow. */
static void test_parse_duration(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(config_parse_duration("300", &v), 0);
	assert_int_equal(v, 300000);
	assert_int_equal(config_parse_duration("300s", &v), 0);
	assert_int_equal(v, 300000);
	assert_int_equal(config_parse_duration("5m", &v), 0);
	assert_int_equal(v, 300000);
	assert_int_equal(config_parse_duration("1h", &v), 0);
	assert_int_equal(v, 3600000);
	assert_int_equal(config_parse_duration("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(config_parse_duration("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_duration("2H", &v), 0);
	assert_int_equal(v, 7200000);

	assert_int_equal(config_parse_duration("", &v), -1);
	assert_int_equal(config_parse_duration("s", &v), -1);
	assert_int_equal(config_parse_duration("-5s", &v), -1);
	assert_int_equal(config_parse_duration("5 s", &v), -1);
	assert_int_equal(config_parse_duration("5d", &v), 0);
	assert_int_equal(v, 5ull * 86400000);
	assert_int_equal(config_parse_duration("5w", &v), -1);
	assert_int_equal(config_parse_duration("5sec", &v), -1);
	assert_int_equal(config_parse_duration("1.5s", &v), -1);
	assert_int_equal(config_parse_duration("18446744073709551615", &v), -1);
	assert_int_equal(config_parse_duration("18446744073709551615ms", &v), 0);
	assert_int_equal(config_parse_duration("5124095576030432h", &v), -1);
}

/* test_defaults - a file with only a listener gets every default. */
static void test_defaults(void **state)
{
	char host[256];
	struct config *cfg;

	(void)state;
	cfg = load_ok(MINIMAL);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	assert_string_equal(cfg->path, tmp_path);
	assert_string_equal(cfg->hostname, host);
	assert_string_equal(cfg->banner, "ESMTP vsmtpd");
	assert_string_equal(cfg->user, "vsmtpd");
	assert_null(cfg->group);
	assert_string_equal(cfg->spool_dir, "/var/spool/vsmtpd");
	assert_int_equal(cfg->log_target, LOG_TARGET_SYSLOG);
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_int_equal(cfg->syslog_facility, LOG_MAIL);
	assert_int_equal(cfg->nlisteners, 1);
	assert_string_equal(cfg->listeners[0].name, "smtp");
	assert_string_equal(cfg->listeners[0].kind, "smtp");
	assert_int_equal(cfg->listeners[0].naddresses, 1);
	assert_string_equal(cfg->listeners[0].addresses[0], "127.0.0.1:2525");
	assert_int_equal(cfg->max_sessions, 100);
	assert_int_equal(cfg->max_sessions_per_ip, 10);
	assert_int_equal(cfg->max_message_size, 26214400);
	assert_int_equal(cfg->max_recipients, 100);
	assert_int_equal(cfg->max_command_line, 2048);
	assert_int_equal(cfg->max_text_line, 1000);
	assert_int_equal(cfg->soft_error_limit, 10);
	assert_int_equal(cfg->hard_error_limit, 20);
	assert_int_equal(cfg->error_delay_ms, 1000);
	assert_int_equal(cfg->min_free_space, 26214400 + 13107200);
	assert_int_equal(cfg->timeout_command, 300);
	assert_int_equal(cfg->timeout_data, 300);
	assert_int_equal(cfg->timeout_command_deadline, 300);
	assert_int_equal(cfg->timeout_data_min_rate, 500);
	assert_int_equal(cfg->timeout_data_grace, 300);
	assert_int_equal(cfg->timeout_session, 3600);
	assert_int_equal(cfg->shutdown_grace, 30);
	assert_int_equal(cfg->bare_eol, BARE_EOL_REJECT);
	assert_int_equal(cfg->max_worker_failures, 3);
	config_free(cfg);
	cfg = load_ok(MINIMAL "[delivery]\nmax_worker_failures = 1\n");
	assert_int_equal(cfg->max_worker_failures, 1);
	config_free(cfg);
}

/* test_every_key - each key of each section, set away from its default. */
static void test_every_key(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok("[server]\n"
	              "hostname = mx1.example.org\n"
	              "banner = Hello there (test)\n"
	              "user = mail\n"
	              "group = nogroup\n"
	              "spool_dir = /srv/spool//vsmtpd/\n"
	              "log = stderr\n"
	              "log_level = debug\n"
	              "syslog_facility = local3\n"
	              "\n"
	              "[listener:in-1]\n"
	              "address = 192.0.2.1:25\n"
	              "kind = smtp\n"
	              "\n"
	              "[limits]\n"
	              "max_sessions = 500\n"
	              "max_sessions_per_ip = 3\n"
	              "max_message_size = 10M\n"
	              "max_recipients = 1\n"
	              "max_command_line = 512\n"
	              "max_text_line = 80\n"
	              "soft_error_limit = 0\n"
	              "hard_error_limit = 1\n"
	              "error_delay = 250ms\n"
	              "min_free_space = 1G\n"
	              "\n"
	              "[timeouts]\n"
	              "command = 1h\n"
	              "data = 90\n"
	              "command_deadline = 2h\n"
	              "data_min_rate = 2k\n"
	              "data_rate_grace = 45s\n"
	              "session = 90m\n"
	              "shutdown_grace = 2s\n"
	              "\n"
	              "[smtp]\n"
	              "bare_line_endings = normalize\n");
	assert_string_equal(cfg->hostname, "mx1.example.org");
	assert_string_equal(cfg->banner, "Hello there (test)");
	assert_string_equal(cfg->user, "mail");
	assert_string_equal(cfg->group, "nogroup");
	assert_string_equal(cfg->spool_dir, "/srv/spool/vsmtpd");
	assert_int_equal(cfg->log_target, LOG_TARGET_STDERR);
	assert_int_equal(cfg->log_level, LOG_DEBUG);
	assert_int_equal(cfg->syslog_facility, LOG_LOCAL3);
	assert_int_equal(cfg->nlisteners, 1);
	assert_string_equal(cfg->listeners[0].name, "in-1");
	assert_string_equal(cfg->listeners[0].kind, "smtp");
	assert_int_equal(cfg->listeners[0].naddresses, 1);
	assert_string_equal(cfg->listeners[0].addresses[0], "192.0.2.1:25");
	assert_int_equal(cfg->max_sessions, 500);
	assert_int_equal(cfg->max_sessions_per_ip, 3);
	assert_int_equal(cfg->max_message_size, 10485760);
	assert_int_equal(cfg->max_recipients, 1);
	assert_int_equal(cfg->max_command_line, 512);
	assert_int_equal(cfg->max_text_line, 80);
	assert_int_equal(cfg->soft_error_limit, 0);
	assert_int_equal(cfg->hard_error_limit, 1);
	assert_int_equal(cfg->error_delay_ms, 250);
	assert_int_equal(cfg->min_free_space, 1073741824);
	assert_int_equal(cfg->timeout_command, 3600);
	assert_int_equal(cfg->timeout_data, 90);
	assert_int_equal(cfg->timeout_command_deadline, 7200);
	assert_int_equal(cfg->timeout_data_min_rate, 2048);
	assert_int_equal(cfg->timeout_data_grace, 45);
	assert_int_equal(cfg->timeout_session, 5400);
	assert_int_equal(cfg->shutdown_grace, 2);
	assert_int_equal(cfg->bare_eol, BARE_EOL_NORMALIZE);
	config_free(cfg);
}

/* test_choices - every word of the enumerated keys. */
static void test_choices(void **state)
{
	static const struct {
		const char *text;
		size_t offset;
		int value;
	} cases[] = {
	    {"[server]\nlog = syslog\n", offsetof(struct config, log_target), LOG_TARGET_SYSLOG},
	    {"[server]\nlog = STDERR\n", offsetof(struct config, log_target), LOG_TARGET_STDERR},
	    {"[server]\nlog_level = info\n", offsetof(struct config, log_level), LOG_INFO},
	    {"[server]\nlog_level = notice\n", offsetof(struct config, log_level), LOG_NOTICE},
	    {"[server]\nlog_level = warning\n", offsetof(struct config, log_level), LOG_WARNING},
	    {"[server]\nlog_level = err\n", offsetof(struct config, log_level), LOG_ERR},
	    {"[server]\nsyslog_facility = daemon\n", offsetof(struct config, syslog_facility),
	     LOG_DAEMON},
	    {"[server]\nsyslog_facility = local0\n", offsetof(struct config, syslog_facility),
	     LOG_LOCAL0},
	    {"[server]\nsyslog_facility = local7\n", offsetof(struct config, syslog_facility),
	     LOG_LOCAL7},
	    {"[smtp]\nbare_line_endings = reject\n", offsetof(struct config, bare_eol),
	     BARE_EOL_REJECT},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct config *cfg;
		int got;

		snprintf(text, sizeof(text), "%s" MINIMAL, cases[i].text);
		cfg = load_ok(text);
		memcpy(&got, (char *)cfg + cases[i].offset, sizeof(got));
		assert_int_equal(got, cases[i].value);
		config_free(cfg);
	}
}

/* test_sizes_and_durations - units as the keys store them. */
static void test_sizes_and_durations(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok(MINIMAL "[limits]\n"
	                      "max_message_size = 10240000\n"
	                      "max_command_line = 4k\n"
	                      "max_text_line = 1M\n"
	                      "error_delay = 2\n"
	                      "[timeouts]\n"
	                      "command = 250ms\n"
	                      "data = 1500ms\n"
	                      "shutdown_grace = 1m\n");
	assert_int_equal(cfg->max_message_size, 10240000);
	assert_int_equal(cfg->min_free_space, 15360000);
	assert_int_equal(cfg->max_command_line, 4096);
	assert_int_equal(cfg->max_text_line, 1048576);
	assert_int_equal(cfg->error_delay_ms, 2000);
	assert_int_equal(cfg->timeout_command, 1);
	assert_int_equal(cfg->timeout_data, 2);
	assert_int_equal(cfg->shutdown_grace, 60);
	config_free(cfg);

	cfg = load_ok(MINIMAL "[limits]\nmax_message_size = 1T\nerror_delay = 0\n");
	assert_true(cfg->max_message_size == UINT64_C(1) << 40);
	assert_true(cfg->min_free_space == (UINT64_C(3) << 39));
	assert_int_equal(cfg->error_delay_ms, 0);
	config_free(cfg);
}

/* test_deadline_defaults - the deadlines follow the idle timers unless set;
 * the rate and the session cap can be turned off. */
static void test_deadline_defaults(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok(MINIMAL "[timeouts]\ncommand = 10m\ndata = 2m\n");
	assert_int_equal(cfg->timeout_command_deadline, 600);
	assert_int_equal(cfg->timeout_data_grace, 120);
	config_free(cfg);

	cfg = load_ok(MINIMAL "[timeouts]\ncommand = 10m\ncommand_deadline = 1m\n"
	                      "data_rate_grace = 1500ms\ndata_min_rate = 0\nsession = 0\n");
	assert_int_equal(cfg->timeout_command, 600);
	assert_int_equal(cfg->timeout_command_deadline, 60);
	assert_int_equal(cfg->timeout_data_grace, 2);
	assert_int_equal(cfg->timeout_data_min_rate, 0);
	assert_int_equal(cfg->timeout_session, 0);
	config_free(cfg);
}

/* test_bad_values - each bad value is named with its file, line and key. */
static void test_bad_values(void **state)
{
	static const struct {
		const char *text;
		int line;
		const char *message;
	} cases[] = {
	    {"[limits]\nmax_sessions = abc\n", 2, "[limits] max_sessions: \"abc\" is not a number"},
	    {"[limits]\nmax_sessions = -1\n", 2, "[limits] max_sessions: \"-1\" is not a number"},
	    {"[limits]\nmax_sessions = 5k\n", 2, "[limits] max_sessions: \"5k\" is not a number"},
	    {"[limits]\nmax_sessions =\n", 2, "[limits] max_sessions: \"\" is not a number"},
	    {"[limits]\nmax_sessions = 0\n", 2,
	     "[limits] max_sessions: \"0\" is less than the minimum, 1"},
	    {"[limits]\nmax_sessions = 4294967296\n", 2,
	     "[limits] max_sessions: \"4294967296\" is more than the maximum, 4294967295"},
	    {"[limits]\nmax_sessions = 99999999999999999999\n", 2,
	     "[limits] max_sessions: \"99999999999999999999\" is not a number"},
	    {"[limits]\nmax_sessions_per_ip = 0\n", 2,
	     "[limits] max_sessions_per_ip: \"0\" is less than the minimum, 1"},
	    {"[limits]\nmax_recipients = 0\n", 2,
	     "[limits] max_recipients: \"0\" is less than the minimum, 1"},
	    {"[delivery]\nmax_worker_failures = 0\n", 2,
	     "[delivery] max_worker_failures: \"0\" is less than the minimum, 1"},
	    {"[delivery]\nmax_worker_failures = 101\n", 2,
	     "[delivery] max_worker_failures: \"101\" is more than the maximum, 100"},
	    {"\n[limits]\nmax_message_size = 25X\n", 3,
	     "[limits] max_message_size: \"25X\" is not a size (such as 10240000, 512k, 25M, 1G)"},
	    {"[limits]\nmax_message_size = 0\n", 2,
	     "[limits] max_message_size: \"0\" is less than the minimum, 1 bytes"},
	    {"[limits]\nmax_message_size = 2T\n", 2,
	     "[limits] max_message_size: \"2T\" is more than the maximum, 1099511627776 bytes"},
	    {"[limits]\nmin_free_space = 17179869184G\n", 2,
	     "[limits] min_free_space: \"17179869184G\" is not a size (such as 10240000, 512k, "
	     "25M, 1G)"},
	    {"[limits]\nmax_command_line = 511\n", 2,
	     "[limits] max_command_line: \"511\" is less than the minimum, 512 bytes"},
	    {"[limits]\nmax_command_line = 2M\n", 2,
	     "[limits] max_command_line: \"2M\" is more than the maximum, 1048576 bytes"},
	    {"[limits]\nmax_text_line = 79\n", 2,
	     "[limits] max_text_line: \"79\" is less than the minimum, 80 bytes"},
	    {"[limits]\nerror_delay = 1x\n", 2,
	     "[limits] error_delay: \"1x\" is not a duration (such as 250ms, 1s, 5m, 1h)"},
	    {"[limits]\nerror_delay = 50w\n", 2,
	     "[limits] error_delay: \"50w\" is not a duration (such as 250ms, 1s, 5m, 1h)"},
	    {"[limits]\nerror_delay = 50d\n", 2,
	     "[limits] error_delay: \"50d\" is more than the maximum, 4294967295ms"},
	    {"[limits]\nerror_delay = 2000h\n", 2,
	     "[limits] error_delay: \"2000h\" is more than the maximum, 4294967295ms"},
	    {"[timeouts]\ncommand = 0\n", 2,
	     "[timeouts] command: \"0\" is less than the minimum, 1s"},
	    {"[timeouts]\ndata = 5 m\n", 2,
	     "[timeouts] data: \"5 m\" is not a duration (such as 30s, 5m, 1h)"},
	    {"[timeouts]\nshutdown_grace = 0ms\n", 2,
	     "[timeouts] shutdown_grace: \"0ms\" is less than the minimum, 1s"},
	    {"[timeouts]\ncommand_deadline = 0\n", 2,
	     "[timeouts] command_deadline: \"0\" is less than the minimum, 1s"},
	    {"[timeouts]\ndata_rate_grace = soon\n", 2,
	     "[timeouts] data_rate_grace: \"soon\" is not a duration (such as 30s, 5m, 1h)"},
	    {"[timeouts]\ndata_min_rate = 500/s\n", 2,
	     "[timeouts] data_min_rate: \"500/s\" is not a size (such as 2048, 4k, 1M)"},
	    {"[timeouts]\ndata_min_rate = 2G\n", 2,
	     "[timeouts] data_min_rate: \"2G\" is more than the maximum, 1073741824 bytes"},
	    {"[timeouts]\nsession = -1h\n", 2,
	     "[timeouts] session: \"-1h\" is not a duration (such as 30s, 5m, 1h)"},
	    {"[server]\nhostname = mail_host.example\n", 2,
	     "[server] hostname: \"mail_host.example\" is not a valid domain name"},
	    {"[server]\nhostname = -mx.example\n", 2,
	     "[server] hostname: \"-mx.example\" is not a valid domain name"},
	    {"[server]\nhostname = mx..example\n", 2,
	     "[server] hostname: \"mx..example\" is not a valid domain name"},
	    {"[server]\nhostname =\n", 2, "[server] hostname: \"\" is not a valid domain name"},
	    {"[server]\nbanner = tab\there\n", 2,
	     "[server] banner: \"tab?here\" holds a character other than printable ASCII"},
	    {"[server]\nuser =\n", 2, "[server] user: \"\" is empty"},
	    {"[server]\nuser = mail user\n", 2,
	     "[server] user: \"mail user\" is not a valid account name"},
	    {"[server]\nspool_dir =\n", 2, "[server] spool_dir: \"\" is empty"},
	    {"[server]\nlog = file\n", 2, "[server] log: \"file\" is not one of stderr, syslog"},
	    {"[server]\nlog_level = verbose\n", 2,
	     "[server] log_level: \"verbose\" is not one of debug, info, notice, warning, err"},
	    {"[server]\nsyslog_facility = local8\n", 2,
	     "[server] syslog_facility: \"local8\" is not one of mail, daemon, local0, local1, "
	     "local2, local3, local4, local5, local6, local7"},
	    {"[smtp]\nbare_line_endings = fix\n", 2,
	     "[smtp] bare_line_endings: \"fix\" is not one of reject, normalize"},
	    {"[listener:x]\naddress = 1.2.3.4\n", 2,
	     "[listener:x] address: \"1.2.3.4\" is not host:port (such as 127.0.0.1:25 or "
	     "[::1]:25)"},
	    {"[listener:x]\naddress = 1.2.3.4:0\n", 2,
	     "[listener:x] address: \"1.2.3.4:0\" does not end in a port from 1 to 65535"},
	    {"[listener:x]\naddress = 1.2.3.4:65536\n", 2,
	     "[listener:x] address: \"1.2.3.4:65536\" does not end in a port from 1 to 65535"},
	    {"[listener:x]\naddress = 1.2.3.4:\n", 2,
	     "[listener:x] address: \"1.2.3.4:\" does not end in a port from 1 to 65535"},
	    {"[listener:x]\naddress = 1.2.3.4:smtp\n", 2,
	     "[listener:x] address: \"1.2.3.4:smtp\" does not end in a port from 1 to 65535"},
	    {"[listener:x]\naddress = 1.2.3:25\n", 2,
	     "[listener:x] address: \"1.2.3:25\" does not start with an IPv4 address (a host "
	     "name is not accepted)"},
	    {"[listener:x]\naddress = localhost:25\n", 2,
	     "[listener:x] address: \"localhost:25\" does not start with an IPv4 address (a "
	     "host name is not accepted)"},
	    {"[listener:x]\naddress = ::1:25\n", 2,
	     "[listener:x] address: \"::1:25\" is not host:port: an IPv6 address goes in "
	     "brackets, as in [::1]:25"},
	    {"[listener:x]\naddress = [::1]25\n", 2,
	     "[listener:x] address: \"[::1]25\" is not [IPv6 address]:port"},
	    {"[listener:x]\naddress = [::1:25\n", 2,
	     "[listener:x] address: \"[::1:25\" has no closing ']'"},
	    {"[listener:x]\naddress = [1.2.3.4]:25\n", 2,
	     "[listener:x] address: \"[1.2.3.4]:25\" does not hold an IPv6 address"},
	    {"[listener:x]\naddress = 127.0.0.1:25, bogus\n", 2,
	     "[listener:x] address: \"bogus\" is not host:port (such as 127.0.0.1:25 or "
	     "[::1]:25)"},
	    {"[listener:x]\naddress = ,\n", 2, "[listener:x] address: \",\" holds no address"},
	    {"[listener:x]\naddress = 127.0.0.1:25\nkind = lmtp\n", 3,
	     "[listener:x] kind: \"lmtp\" is not a listener kind: smtp, submission, "
	     "submissions or delegation"},
	    {"[listener:x]\naddress = 127.0.0.1:25\nkind = delegation\ntls = may\n", 4,
	     "[listener:x] a delegation listener has no TLS and no AUTH (the returned mail is "
	     "checked by its token): leave tls and auth out"},
	    {"[listener:x]\naddress = 127.0.0.1:25\ntls = maybe\n", 3,
	     "[listener:x] tls: \"maybe\" is not one of none, may, encrypt"},
	    {"[listener:x]\naddress = 127.0.0.1:25\nauth = optional\n", 3,
	     "[listener:x] auth: \"optional\" is not one of no, yes, required"},
	    {"[tls]\nmin_protocol = SSLv3\n", 2,
	     "[tls] min_protocol: \"SSLv3\" is not one of TLSv1.2, TLSv1.3"},
	    {"[tls]\nhandshake_timeout = 2h\n", 2,
	     "[tls] handshake_timeout: \"2h\" is more than the maximum, 3600s"},
	    {"[auth]\nmechanisms = PLAIN LOG!N\n", 2,
	     "[auth] mechanisms: \"LOG!N\" is not a SASL mechanism name (1 to 20 of A-Z, 0-9, - "
	     "and _)"},
	    {"[auth]\nmechanisms = ,\n", 2, "[auth] mechanisms: \",\" names no mechanism"},
	    {"[auth]\nbackend = ldap\n", 2, "[auth] backend: \"ldap\" is not one of sasldb, saslauthd"},
	    {"[auth]\nallow_plaintext = sometimes\n", 2,
	     "[auth] allow_plaintext: \"sometimes\" is not one of no, yes"},
	    {"[auth]\nplaintext_networks = 10.0.0.1/8\n", 2,
	     "[auth] plaintext_networks: \"10.0.0.1/8\" has bits set past its prefix (10.0.0.0/8, "
	     "not 10.0.0.1/8)"},
	    {"[auth]\nmax_failures = 0\n", 2,
	     "[auth] max_failures: \"0\" is less than the minimum, 1"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].text, cases[i].line, cases[i].message);
}

/* test_tls_auth - listener defaults from kind and certificate, and the
 * settings that contradict each other. */
static void test_tls_auth(void **state)
{
	char where[PATH_MAX + 16];
	struct config *cfg;

	(void)state;
	cfg = load_ok("[listener:mx]\naddress = 127.0.0.1:25\n");
	assert_int_equal(cfg->listeners[0].kind_id, LISTENER_SMTP);
	assert_int_equal(cfg->listeners[0].tls, LISTENER_TLS_NONE);
	assert_int_equal(cfg->listeners[0].auth, LISTENER_AUTH_NO);
	assert_null(cfg->tls_certificate.path);
	assert_string_equal(cfg->auth_mechanisms, "PLAIN LOGIN");
	assert_int_equal(cfg->auth_backend, AUTH_BACKEND_SASLDB);
	assert_string_equal(cfg->sasldb_path, "/etc/sasldb2");
	assert_int_equal(cfg->tls_handshake_timeout, 30);
	config_free(cfg);

	cfg = load_ok("[tls]\ncertificate = /etc/ssl/c.pem\n"
	              "[listener:mx]\naddress = 127.0.0.1:25\n"
	              "[listener:sub]\naddress = 127.0.0.1:587\nkind = submission\n"
	              "[listener:subs]\naddress = 127.0.0.1:465\nkind = submissions\n"
	              "[listener:plain]\naddress = 127.0.0.1:26\ntls = none\nauth = yes\n"
	              "[sni:Mail.Example.ORG]\ncertificate = /etc/ssl/m.pem\nkey = m.key\n"
	              "[auth]\nmechanisms = plain, cram-md5\n");
	assert_int_equal(cfg->listeners[0].tls, LISTENER_TLS_MAY);
	assert_int_equal(cfg->listeners[0].auth, LISTENER_AUTH_NO);
	assert_int_equal(cfg->listeners[1].kind_id, LISTENER_SUBMISSION);
	assert_int_equal(cfg->listeners[1].tls, LISTENER_TLS_ENCRYPT);
	assert_int_equal(cfg->listeners[1].auth, LISTENER_AUTH_REQUIRED);
	assert_int_equal(cfg->listeners[2].kind_id, LISTENER_SUBMISSIONS);
	assert_int_equal(cfg->listeners[2].tls, LISTENER_TLS_ENCRYPT);
	assert_int_equal(cfg->listeners[3].tls, LISTENER_TLS_NONE);
	assert_int_equal(cfg->listeners[3].auth, LISTENER_AUTH_YES);
	assert_int_equal(cfg->nsni, 1);
	assert_string_equal(cfg->sni[0].name, "mail.example.org");
	assert_string_equal(cfg->sni[0].certificate.path, "/etc/ssl/m.pem");
	snprintf(where, sizeof(where), "%s:16", tmp_path);
	assert_string_equal(cfg->sni[0].certificate.where, where);
	assert_string_equal(cfg->auth_mechanisms, "PLAIN CRAM-MD5");
	snprintf(where, sizeof(where), "%s:19", tmp_path);
	assert_string_equal(cfg->auth_mechanisms_where, where);
	snprintf(where, sizeof(where), "%s:2", tmp_path);
	assert_string_equal(cfg->tls_certificate.where, where);
	config_free(cfg);

	expect_error("[listener:mx]\naddress = 127.0.0.1:25\ntls = may\n", 3,
	             "[listener:mx] tls = may needs a certificate: set [tls] certificate");
	expect_error("[listener:sub]\naddress = 127.0.0.1:587\nkind = submission\n", 3,
	             "[listener:sub] kind submission needs a certificate: set [tls] certificate "
	             "(or tls = none for a submission listener without TLS)");
	expect_error("[tls]\ncertificate = /c.pem\n"
	             "[listener:s]\naddress = 127.0.0.1:465\nkind = submissions\ntls = may\n",
	             6,
	             "[listener:s] tls: a submissions listener is TLS from the first byte: leave "
	             "tls out or set it to encrypt");
	expect_error(MINIMAL "[sni:mail.example.org]\ncertificate = /c.pem\n", 3,
	             "[sni:mail.example.org] needs [tls] certificate, the one for clients that "
	             "ask for no name or another name");
	expect_error(MINIMAL "[tls]\ncertificate = /c.pem\n[sni:mail.example.org]\nkey = /k\n", 5,
	             "[sni:mail.example.org] has no certificate");
	expect_error(MINIMAL "[sni:-bad-]\n", 3,
	             "[sni:-bad-]: NAME must be a host name or *.domain");
	expect_error(MINIMAL "[sni]\n", 3,
	             "section [sni] needs a host name, as in [sni:mail.example.org]");
	expect_error(MINIMAL "[tls]\ncertificate = /c.pem\n[sni:a.example]\ncertificate = /a\n"
	             "[sni:A.example]\ncertificate = /b\n", 7,
	             "duplicate section [sni:A.example], first on line 5");
	expect_error(MINIMAL "[tls]\nkey = /k.pem\n", 4, "[tls] key is set but certificate is not");
	expect_error(MINIMAL "[auth]\nmechanisms = PLAIN ANONYMOUS\n", 4,
	             "[auth] mechanisms: \"ANONYMOUS\" is not offered by vsmtpd: AUTH is for users "
	             "with a password");

	/* An empty certificate is no certificate: the default, and a way to
	 * turn TLS off from the command line. */
	{
		char *off[] = {"tls.certificate="};

		cfg = load_with("[tls]\ncertificate = /etc/ssl/c.pem\n" MINIMAL, off, 1);
		assert_non_null(cfg);
		assert_null(cfg->tls_certificate.path);
		assert_int_equal(cfg->listeners[0].tls, LISTENER_TLS_NONE);
		config_free(cfg);
	}
	{
		char *sni[] = {"tls.certificate=/c.pem", "sni:Mail.Example.org.certificate=/m.pem"};

		cfg = load_with(MINIMAL, sni, 2);
		assert_non_null(cfg);
		assert_int_equal(cfg->nsni, 1);
		assert_string_equal(cfg->sni[0].name, "mail.example.org");
		assert_string_equal(cfg->sni[0].certificate.path, "/m.pem");
		config_free(cfg);
	}
	cfg = load_ok("[tls]\ncertificate =\nciphers = HIGH:!aNULL\n" MINIMAL);
	assert_null(cfg->tls_certificate.path);
	assert_string_equal(cfg->tls_ciphers.value, "HIGH:!aNULL");
	snprintf(where, sizeof(where), "%s:3", tmp_path);
	assert_string_equal(cfg->tls_ciphers.where, where);
	config_free(cfg);
	expect_error(MINIMAL "[auth]\nbackend = saslauthd\nmechanisms = PLAIN CRAM-MD5\n", 5,
	             "[auth] mechanisms: CRAM-MD5 needs the password itself, which saslauthd does "
	             "not give: use backend = sasldb, or only PLAIN and LOGIN");
}

/* test_structure_errors - sections, keys and lines that do not belong. */
static void test_structure_errors(void **state)
{
	(void)state;
	expect_error("[server]\nuser = mail\n[lmits]\n" MINIMAL, 3, "unknown section [lmits]");
	expect_error("[server]\n\n\n\n\nuser = mail\nspooldir = /tmp\n", 7,
	             "[server] unknown key \"spooldir\"");
	expect_error("[limits]\nmax_session = 5\n", 2, "[limits] unknown key \"max_session\"");
	expect_error("[listener:smtp]\nadress = 127.0.0.1:25\n", 2,
	             "[listener:smtp] unknown key \"adress\"");
	expect_error("user = mail\n", 1, "\"user\" comes before any [section]");
	expect_error("[server]\nuser\n", 2,
	             "syntax error: expected \"key = value\", \"[section]\" or a comment");
	expect_error("[server\nuser = x\n", 1, "section header without a closing ']'");
	expect_error("[server] user = x\n", 1, "text after the section header");
	expect_error("[listener]\naddress = 127.0.0.1:25\n", 1,
	             "section [listener] needs a name, as in [listener:smtp]");
	expect_error("[listener:]\naddress = 127.0.0.1:25\n", 1,
	             "[listener:]: a listener name is 1 to 32 characters of a-z, 0-9, _ and -");
	expect_error("[listener:SMTP]\naddress = 127.0.0.1:25\n", 1,
	             "[listener:SMTP]: a listener name is 1 to 32 characters of a-z, 0-9, _ and -");
	expect_error("[listener:a.b]\naddress = 127.0.0.1:25\n", 1,
	             "[listener:a.b]: a listener name is 1 to 32 characters of a-z, 0-9, _ and -");
	expect_error("[server]\nuser = a\n[limits]\n[server]\n", 4,
	             "duplicate section [server], first on line 1");
	expect_error("[server]\nuser = a\ngroup = b\nuser = c\n", 4,
	             "[server] user: already set on line 2");
	expect_error(MINIMAL "kind = smtp\nkind = smtp\n", 4,
	             "[listener:smtp] kind: already set on line 3");
	/* The earlier of a syntax error and a bad value is the one reported. */
	expect_error("[server]\nnonsense\n[limits]\nmax_sessions = x\n", 2,
	             "syntax error: expected \"key = value\", \"[section]\" or a comment");
	expect_error("[limits]\nmax_sessions = x\nnonsense\n", 2,
	             "[limits] max_sessions: \"x\" is not a number");
}

/* test_listeners - repeated and listed addresses, several listeners. */
static void test_listeners(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok("[listener:a]\n"
	              "address = 0.0.0.0:25\n"
	              "address = [::]:25\n"
	              "address = 127.0.0.1:2525, [::1]:2525 192.0.2.7:26,192.0.2.8:26\n"
	              "[listener:b_2]\n"
	              "address = 127.0.0.2:25\n"
	              "[listener:back]\n"
	              "kind = delegation\n"
	              "address = 127.0.0.1:10026\n");
	assert_int_equal(cfg->nlisteners, 3);
	assert_int_equal(cfg->listeners[2].kind_id, LISTENER_DELEGATION);
	assert_int_equal(cfg->listeners[2].tls, LISTENER_TLS_NONE);
	assert_int_equal(cfg->listeners[2].auth, LISTENER_AUTH_NO);
	assert_string_equal(cfg->listeners[0].name, "a");
	assert_int_equal(cfg->listeners[0].naddresses, 6);
	assert_string_equal(cfg->listeners[0].addresses[0], "0.0.0.0:25");
	assert_string_equal(cfg->listeners[0].addresses[1], "[::]:25");
	assert_string_equal(cfg->listeners[0].addresses[2], "127.0.0.1:2525");
	assert_string_equal(cfg->listeners[0].addresses[3], "[::1]:2525");
	assert_string_equal(cfg->listeners[0].addresses[4], "192.0.2.7:26");
	assert_string_equal(cfg->listeners[0].addresses[5], "192.0.2.8:26");
	assert_string_equal(cfg->listeners[1].name, "b_2");
	assert_string_equal(cfg->listeners[1].kind, "smtp");
	assert_int_equal(cfg->listeners[1].naddresses, 1);
	config_free(cfg);
}

/* test_listener_errors - duplicates, missing addresses, too many. */
static void test_listener_errors(void **state)
{
	char text[4096];
	size_t used = 0;
	char want[256];
	int i;

	(void)state;
	expect_error("[listener:a]\naddress = 127.0.0.1:25\n\n[listener:a]\naddress = "
	             "127.0.0.1:26\n",
	             4, "duplicate listener [listener:a], first on line 1");
	expect_error("[listener:a]\naddress = 127.0.0.1:25\n[listener:b]\nkind = smtp\n", 3,
	             "[listener:b] has no address");
	expect_error("[listener:a]\n", 1, "[listener:a] has no address");
	expect_error("[server]\nuser = mail\n", 0,
	             "no [listener:NAME] section: vsmtpd would listen nowhere");
	expect_error("[listener:a]\naddress = 127.0.0.1:25\n[listener:b]\naddress = [::1]:25 "
	             "127.0.0.1:25\n",
	             3, "[listener:b] address 127.0.0.1:25 is also listed in [listener:a]");
	expect_error("[listener:a]\naddress = [::1]:25, [0:0::1]:25\n", 1,
	             "[listener:a] address [0:0::1]:25 is also listed in [listener:a]");

	for (i = 0; i <= CONFIG_MAX_LISTENERS; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used,
		                         "[listener:l%d]\naddress = 127.0.0.1:%d\n", i, 1000 + i);
	snprintf(want, sizeof(want), "[listener:l%d] is one listener too many (at most %d)",
	         CONFIG_MAX_LISTENERS, CONFIG_MAX_LISTENERS);
	expect_error(text, 2 * CONFIG_MAX_LISTENERS + 1, want);

	used = (size_t)snprintf(text, sizeof(text), "[listener:a]\n");
	for (i = 0; i <= CONFIG_MAX_ADDRESSES; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used,
		                         "address = 127.0.0.1:%d\n", 1000 + i);
	snprintf(want, sizeof(want),
	         "[listener:a] address: \"127.0.0.1:%d\" is one address too many (at most %d)",
	         1000 + CONFIG_MAX_ADDRESSES, CONFIG_MAX_ADDRESSES);
	expect_error(text, CONFIG_MAX_ADDRESSES + 2, want);
}

/* test_error_limits - hard_error_limit must stay above soft_error_limit. */
static void test_error_limits(void **state)
{
	char *ov[] = {"limits.soft_error_limit=30"};
	struct config *cfg;

	(void)state;
	expect_error(MINIMAL "[limits]\nhard_error_limit = 10\n", 4,
	             "[limits] hard_error_limit (10) must be greater than soft_error_limit (10)");
	expect_error(MINIMAL "[limits]\nsoft_error_limit = 25\n", 4,
	             "[limits] hard_error_limit (20) must be greater than soft_error_limit (25)");
	expect_error(MINIMAL "[limits]\nhard_error_limit = 5\nmax_sessions = 5\n"
	                     "soft_error_limit = 6\n",
	             6, "[limits] hard_error_limit (5) must be greater than soft_error_limit (6)");
	cfg = load_with(MINIMAL "[limits]\nhard_error_limit = 25\n", ov, 1);
	assert_null(cfg);
	assert_string_equal(err, "command line: [limits] hard_error_limit (25) must be greater "
	                         "than soft_error_limit (30)");
}

/* test_syntax_details - comments, indentation, CRLF, BOM, long lines. */
static void test_syntax_details(void **state)
{
	char text[512];
	struct config *cfg;

	(void)state;
	cfg = load_ok("\xEF\xBB\xBF# comment\r\n"
	              "; another\r\n"
	              "  [server]   ; the server\r\n"
	              "\tuser = mail ; inline comment\r\n"
	              "    banner = ESMTP #1 mail\r\n"
	              "group =\r\n"
	              "[listener:smtp]\r\n"
	              "address: 127.0.0.1:2525\r\n");
	assert_string_equal(cfg->user, "mail");
	assert_string_equal(cfg->banner, "ESMTP #1 mail");
	assert_null(cfg->group);
	assert_string_equal(cfg->listeners[0].addresses[0], "127.0.0.1:2525");
	config_free(cfg);

	/* An indented line is a key of its own, never a continuation. */
	expect_error("[server]\nuser = mail\n  group\n", 3,
	             "syntax error: expected \"key = value\", \"[section]\" or a comment");

	memset(text, 0, sizeof(text));
	memcpy(text, "[server]\nbanner = ", 18);
	memset(text + 18, 'x', 250);
	text[268] = '\n';
	expect_error(text, 2, "the line is longer than 199 characters");
}

/* test_file_errors - missing file, a directory, a NUL byte. */
static void test_file_errors(void **state)
{
	struct config *cfg;
	char path[PATH_MAX], want[PATH_MAX + 64];
	int fd;

	(void)state;
	cfg = config_load("/nonexistent/vsmtpd.conf", NULL, 0, err, sizeof(err));
	assert_null(cfg);
	assert_string_equal(err, "cannot open /nonexistent/vsmtpd.conf: No such file or directory");

	cfg = config_load("/", NULL, 0, err, sizeof(err));
	assert_null(cfg);
	assert_string_equal(err, "cannot read /: Is a directory");

	/* Without an error buffer the failure is still a NULL. */
	assert_null(config_load("/nonexistent/vsmtpd.conf", NULL, 0, NULL, 0));

	snprintf(path, sizeof(path), "/tmp/vsmtpd-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[server]\nuser = a\0b\n", 20), 20);
	close(fd);
	cfg = config_load(path, NULL, 0, err, sizeof(err));
	unlink(path);
	assert_null(cfg);
	snprintf(want, sizeof(want), "%s:2: the line holds a NUL byte", path);
	assert_string_equal(err, want);
}

/* test_overrides - -o values win, replace address lists, create listeners. */
static void test_overrides(void **state)
{
	char *ov[] = {
	    "listener:smtp.address=127.0.0.1:2525",
	    "listener:smtp.address = [::1]:2525",
	    "server.log=stderr",
	    " server.log_level = debug ",
	    "server.group=",
	    "limits.max_message_size=1M",
	    "timeouts.command=10s",
	    "listener:extra.address=127.0.0.1:2526,127.0.0.1:2527",
	    "smtp.bare_line_endings=normalize",
	};
	struct config *cfg;

	(void)state;
	cfg = load_with("[server]\ngroup = mail\nlog = syslog\n"
	                "[listener:smtp]\naddress = 0.0.0.0:25\naddress = [::]:25\n",
	                ov, sizeof(ov) / sizeof(ov[0]));
	if (cfg == NULL)
		fail_msg("config_load failed: %s", err);
	assert_int_equal(cfg->nlisteners, 2);
	assert_int_equal(cfg->listeners[0].naddresses, 2);
	assert_string_equal(cfg->listeners[0].addresses[0], "127.0.0.1:2525");
	assert_string_equal(cfg->listeners[0].addresses[1], "[::1]:2525");
	assert_string_equal(cfg->listeners[1].name, "extra");
	assert_string_equal(cfg->listeners[1].kind, "smtp");
	assert_int_equal(cfg->listeners[1].naddresses, 2);
	assert_string_equal(cfg->listeners[1].addresses[1], "127.0.0.1:2527");
	assert_int_equal(cfg->log_target, LOG_TARGET_STDERR);
	assert_int_equal(cfg->log_level, LOG_DEBUG);
	assert_null(cfg->group);
	assert_int_equal(cfg->max_message_size, 1048576);
	assert_int_equal(cfg->min_free_space, 1572864);
	assert_int_equal(cfg->timeout_command, 10);
	assert_int_equal(cfg->bare_eol, BARE_EOL_NORMALIZE);
	config_free(cfg);
}

/* test_override_errors - bad overrides are reported against "command line". */
static void test_override_errors(void **state)
{
	static const struct {
		const char *override;
		const char *message;
	} cases[] = {
	    {"limits.max_sessions=abc",
	     "command line: [limits] max_sessions: \"abc\" is not a number"},
	    {"server.log", "command line: -o \"server.log\": expected section.key=value, as in "
	                   "server.log=stderr"},
	    {"log=stderr", "command line: -o \"log=stderr\": expected section.key=value, as in "
	                   "server.log=stderr"},
	    {"lmits.max_sessions=5", "command line: unknown section [lmits]"},
	    {"server.spooldir=/tmp", "command line: [server] unknown key \"spooldir\""},
	    {"listener:smtp.address=localhost:25",
	     "command line: [listener:smtp] address: \"localhost:25\" does not start with an "
	     "IPv4 address (a host name is not accepted)"},
	    {"listener:new.kind=smtp", "command line: [listener:new] has no address"},
	    {"listener:Bad.address=127.0.0.1:25",
	     "command line: [listener:Bad]: a listener name is 1 to 32 characters of a-z, 0-9, "
	     "_ and -"},
	    {"listener:other.address=127.0.0.1:2525",
	     "command line: [listener:other] address 127.0.0.1:2525 is also listed in "
	     "[listener:smtp]"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *ov[1];
		struct config *cfg;

		ov[0] = (char *)cases[i].override;
		cfg = load_with(MINIMAL, ov, 1);
		assert_null(cfg);
		assert_string_equal(err, cases[i].message);
	}
}

/* test_spool_dir_relative - a relative spool_dir becomes absolute. */
static void test_spool_dir_relative(void **state)
{
	char *ov[] = {"server.spool_dir=./run/spool/"};
	char cwd[PATH_MAX], want[PATH_MAX + 16];
	struct config *cfg;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/run/spool", strcmp(cwd, "/") == 0 ? "" : cwd);
	cfg = load_with(MINIMAL, ov, 1);
	assert_non_null(cfg);
	assert_string_equal(cfg->spool_dir, want);
	config_free(cfg);

	cfg = load_ok("[server]\nspool_dir = spool/../q\n" MINIMAL);
	snprintf(want, sizeof(want), "%s/spool/../q", strcmp(cwd, "/") == 0 ? "" : cwd);
	assert_string_equal(cfg->spool_dir, want);
	config_free(cfg);
}

/* test_relative_config_path - cfg->path is absolute, for a reload after chdir. */
static void test_relative_config_path(void **state)
{
	char cwd[PATH_MAX], dir[] = "/tmp/vsmtpd-test-dir-XXXXXX", want[PATH_MAX];
	struct config *cfg;
	FILE *fp;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chdir(dir), 0);
	fp = fopen("v.conf", "w");
	assert_non_null(fp);
	fputs(MINIMAL, fp);
	fclose(fp);
	cfg = config_load("./v.conf", NULL, 0, err, sizeof(err));
	unlink("v.conf");
	assert_int_equal(chdir(cwd), 0);
	rmdir(dir);
	assert_non_null(cfg);
	snprintf(want, sizeof(want), "%s/v.conf", dir);
	assert_string_equal(cfg->path, want);
	config_free(cfg);
}

/* test_shipped_config - conf/vsmtpd.conf loads, as is and as developers run it. */
static void test_shipped_config(void **state)
{
	char *dev[] = {"listener:smtp.address=127.0.0.1:2525", "server.spool_dir=./run/spool",
	               "server.log=stderr"};
	char path[PATH_MAX];
	struct config *cfg;

	(void)state;
	snprintf(path, sizeof(path), "%s/conf/vsmtpd.conf", source_dir());
	cfg = config_load(path, NULL, 0, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->user, "vsmtpd");
	assert_string_equal(cfg->group, "vsmtpd");
	assert_string_equal(cfg->spool_dir, "/var/spool/vsmtpd");
	assert_int_equal(cfg->log_target, LOG_TARGET_SYSLOG);
	assert_int_equal(cfg->nlisteners, 1);
	assert_string_equal(cfg->listeners[0].name, "smtp");
	assert_string_equal(cfg->listeners[0].kind, "smtp");
	assert_int_equal(cfg->listeners[0].naddresses, 2);
	assert_string_equal(cfg->listeners[0].addresses[0], "0.0.0.0:25");
	assert_string_equal(cfg->listeners[0].addresses[1], "[::]:25");
	/* The file spells out every default. */
	assert_int_equal(cfg->max_message_size, 26214400);
	assert_int_equal(cfg->min_free_space, 39321600);
	assert_int_equal(cfg->max_command_line, 2048);
	assert_int_equal(cfg->error_delay_ms, 1000);
	assert_int_equal(cfg->timeout_command, 300);
	assert_int_equal(cfg->shutdown_grace, 30);
	assert_int_equal(cfg->bare_eol, BARE_EOL_REJECT);
	config_free(cfg);

	cfg = config_load(path, dev, 3, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg->listeners[0].naddresses, 1);
	assert_string_equal(cfg->listeners[0].addresses[0], "127.0.0.1:2525");
	assert_int_equal(cfg->log_target, LOG_TARGET_STDERR);
	assert_true(cfg->spool_dir[0] == '/');
	assert_non_null(strstr(cfg->spool_dir, "/run/spool"));
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_choices),
	    cmocka_unit_test(test_sizes_and_durations),
	    cmocka_unit_test(test_deadline_defaults),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_tls_auth),
	    cmocka_unit_test(test_structure_errors),
	    cmocka_unit_test(test_listeners),
	    cmocka_unit_test(test_listener_errors),
	    cmocka_unit_test(test_error_limits),
	    cmocka_unit_test(test_syntax_details),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_overrides),
	    cmocka_unit_test(test_override_errors),
	    cmocka_unit_test(test_spool_dir_relative),
	    cmocka_unit_test(test_relative_config_path),
	    cmocka_unit_test(test_shipped_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
