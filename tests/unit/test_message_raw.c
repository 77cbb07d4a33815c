/*
 * test_message_raw.c - the edits a milter asks for: fields inserted at a
 * position or given a new value with their folding kept (written with the
 * message's line ending), values that would not stay one field refused,
 * and the body replaced, with or without a separator before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

/* assert_message - m serializes to want. */
static void assert_message(const struct message *m, const char *want)
{
	size_t len;
	char *out = message_serialize(m, &len);

	assert_non_null(out);
	assert_string_equal(out, want);
	assert_int_equal(len, strlen(want));
	free(out);
}

static void test_insert_keeps_folding(void **state)
{
	static const char in[] = "From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
	struct message *m = message_parse(in, sizeof(in) - 1);

	(void)state;
	assert_int_equal(message_field_insert_raw(m, 0, "DKIM-Signature", " ",
						  "v=1; a=rsa-sha256;\n\tb=abc"), 0);
	assert_int_equal(message_field_insert_raw(m, 2, "X-Mid", "", " in\r\n the middle"), 0);
	assert_int_equal(message_field_insert_raw(m, 99, "X-Last", " ", "end"), 0);
	assert_message(m, "DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\n"
			  "From: a@example.org\r\n"
			  "X-Mid: in\r\n the middle\r\n"
			  "Subject: hi\r\n"
			  "X-Last: end\r\n\r\nbody\r\n");
	assert_true(message_modified(m));
	message_free(m);
}

static void test_set_raw_and_refusals(void **state)
{
	static const char in[] = "Subject: old\nX: 1\n\nbody\n";
	struct message *m = message_parse(in, sizeof(in) - 1);
	char *line = malloc(1200);

	(void)state;
	assert_int_equal(message_field_set_raw(m, 0, " ", "new\r\n\tvalue"), 0);
	assert_message(m, "Subject: new\n\tvalue\nX: 1\n\nbody\n");
	assert_int_equal(message_field_set_raw(m, 5, " ", "x"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(message_field_set_raw(m, 0, " ", "a\nb"), -1); /* a second field */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(message_field_set_raw(m, 0, " ", "a\rb"), -1);
	assert_int_equal(message_field_insert_raw(m, 0, "Bad Name", " ", "x"), -1);
	assert_int_equal(message_field_insert_raw(m, 0, "", " ", "x"), -1);
	memset(line, 'x', 1199);
	line[1199] = '\0';
	assert_int_equal(message_field_insert_raw(m, 0, "Long", " ", line), -1);
	assert_message(m, "Subject: new\n\tvalue\nX: 1\n\nbody\n");
	free(line);
	message_free(m);
}

static void test_body_replace(void **state)
{
	static const char in[] = "Subject: s\r\n\r\nold body\r\n";
	static const char bare[] = "Subject: s\r\n";
	struct message *m = message_parse(in, sizeof(in) - 1);
	const char *body;
	size_t len;

	(void)state;
	assert_int_equal(message_body_replace(m, "new\r\nbody\r\n", 11), 0);
	body = message_body(m, &len);
	assert_int_equal(len, 11);
	assert_memory_equal(body, "new\r\nbody\r\n", 11);
	assert_message(m, "Subject: s\r\n\r\nnew\r\nbody\r\n");
	assert_int_equal(message_body_replace(m, "", 0), 0);
	assert_message(m, "Subject: s\r\n\r\n");
	message_free(m);
	m = message_parse(bare, sizeof(bare) - 1);
	assert_int_equal(message_body_replace(m, "b\r\n", 3), 0);
	assert_message(m, "Subject: s\r\n\r\nb\r\n");
	message_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_keeps_folding),
		cmocka_unit_test(test_set_raw_and_refusals),
		cmocka_unit_test(test_body_replace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
