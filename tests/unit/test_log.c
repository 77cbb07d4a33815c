/*
 * test_log.c - log lines: whatever the text holds, one line out, with its
 * control characters written out so that no client or rule can start a
 * line of its own or steer a terminal.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static void test_escape_writes_control_characters_out(void **state)
{
	char out[256];

	log_escape("a\nvsmtpd master[1]: forged", out, sizeof(out));
	assert_string_equal(out, "a\\nvsmtpd master[1]: forged");
	log_escape("cr\r tab\t esc\x1b[2J bel\x07 del\x7f", out, sizeof(out));
	assert_string_equal(out, "cr\\r tab\\t esc\\x1b[2J bel\\x07 del\\x7f");
	log_escape("plain text, UTF-8 \xc3\xa9t\xc3\xa9 and \\ backslash", out, sizeof(out));
	assert_string_equal(out, "plain text, UTF-8 \xc3\xa9t\xc3\xa9 and \\ backslash");
}

static void test_escape_cuts_short_between_characters(void **state)
{
	char out[8];

	log_escape("abc\x01" "def", out, sizeof(out));
	assert_string_equal(out, "abc\\x01"); /* 7 bytes and the NUL */
	log_escape("abcd\x01", out, sizeof(out));
	assert_string_equal(out, "abcd"); /* no "\x0" half */
	log_escape("x", out, 1);
	assert_string_equal(out, "");
}

/* One log_msg with a line break in its text writes one line. */
static void test_a_line_break_in_the_text_stays_in_one_line(void **state)
{
	char path[] = "/tmp/vsmtpd-test-log.XXXXXX", buf[1024];
	int fd = mkstemp(path), saved;
	ssize_t n;

	assert_true(fd >= 0);
	unlink(path);
	log_open(LOG_TARGET_STDERR, LOG_INFO, 0);
	log_set_role("smtp");
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	log_info("rules: main.lua:3: %s", "a\nvsmtpd master[1]: info: forged\r\n");
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, ": info: rules: main.lua:3: "
				    "a\\nvsmtpd master[1]: info: forged\\r\\n\n"));
	assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
	assert_int_equal(strncmp(buf, "vsmtpd smtp[", 12), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_writes_control_characters_out),
		cmocka_unit_test(test_escape_cuts_short_between_characters),
		cmocka_unit_test(test_a_line_break_in_the_text_stays_in_one_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
