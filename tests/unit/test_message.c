/*
 * test_message.c - unit tests of the in-memory message: exact round trip of
 * every header shape, lookups and unfolding, field edits and their folding,
 * refusal of bad names and values, the To address-list helpers, and what
 * edits leave alone (body, modified flag).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "message.h"

/* parse_n - parse len bytes; the parse must succeed. */
static struct message *parse_n(const char *in, size_t len)
{
	struct message *m = message_parse(in, len);

	assert_non_null(m);
	return m;
}

/* parse - parse a NUL-terminated message. */
static struct message *parse(const char *in)
{
	return parse_n(in, strlen(in));
}

/* assert_serialized_n - m serializes to exactly want (len bytes), by every route. */
static void assert_serialized_n(const struct message *m, const char *want, size_t len)
{
	size_t out_len = 0, body_len;
	char *out = message_serialize(m, &out_len);
	const char *body = message_body(m, &body_len);

	assert_non_null(out);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, want, len);
	assert_int_equal(out[len], '\0');
	assert_int_equal(message_size(m), len);
	assert_int_equal(message_header_size(m) + body_len, len);
	assert_memory_equal(out + message_header_size(m), body, body_len);
	free(out);
}

/* assert_serialized - m serializes to the NUL-terminated want. */
static void assert_serialized(const struct message *m, const char *want)
{
	assert_serialized_n(m, want, strlen(want));
}

/* assert_roundtrip - in parses into count fields and serializes back unchanged. */
static void assert_roundtrip(const char *in, size_t count)
{
	struct message *m = parse(in);

	assert_int_equal(message_field_count(m), count);
	assert_serialized(m, in);
	assert_int_equal(message_modified(m), 0);
	message_free(m);
}

/* assert_body - the body is exactly want. */
static void assert_body(const struct message *m, const char *want)
{
	size_t len;
	const char *body = message_body(m, &len);

	assert_int_equal(len, strlen(want));
	assert_memory_equal(body, want, len);
}

/* assert_header - the nth field called name has the unfolded value want. */
static void assert_header(const struct message *m, const char *name, size_t nth, const char *want)
{
	size_t len = 0;
	char *v = message_header_get(m, name, nth, &len);

	assert_non_null(v);
	assert_string_equal(v, want);
	assert_int_equal(len, strlen(want));
	free(v);
}

/* assert_no_header - there is no nth field called name. */
static void assert_no_header(const struct message *m, const char *name, size_t nth)
{
	errno = 0;
	assert_null(message_header_get(m, name, nth, NULL));
	assert_int_equal(errno, ENOENT);
}

/* longest_line - the longest line of buf, line endings left out. */
static size_t longest_line(const char *buf, size_t len)
{
	size_t i, start = 0, longest = 0;

	for (i = 0; i <= len; i++) {
		if (i < len && buf[i] != '\n')
			continue;
		size_t line = i - start - (i > start && buf[i - 1] == '\r');

		if (line > longest)
			longest = line;
		start = i + 1;
	}
	return longest;
}

/* field_raw - field index's raw text as a new string. */
static char *field_raw(const struct message *m, size_t index)
{
	size_t len;
	const char *raw = message_field_raw(m, index, &len);
	char *s;

	assert_non_null(raw);
	s = malloc(len + 1);
	assert_non_null(s);
	memcpy(s, raw, len);
	s[len] = '\0';
	return s;
}

/* assert_field_raw - field index is exactly want. */
static void assert_field_raw(const struct message *m, size_t index, const char *want)
{
	char *raw = field_raw(m, index);

	assert_string_equal(raw, want);
	free(raw);
}

/* ---- Parsing and round trip ---- */

/* test_roundtrip_normal_message - header, empty line and body come back byte for byte. */
static void test_roundtrip_normal_message(void **state)
{
	const char *in = "Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	                 "From: a@example.com\r\n"
	                 "To: b@example.com\r\n"
	                 "Subject: hello\r\n"
	                 "\r\n"
	                 "Body line\r\n"
	                 "\r\n"
	                 "Header-Like: in body\r\n";
	struct message *m = parse(in);

	assert_int_equal(message_field_count(m), 4);
	assert_body(m, "Body line\r\n\r\nHeader-Like: in body\r\n");
	assert_int_equal(message_header_size(m),
	                 strlen(in) - strlen("Body line\r\n\r\nHeader-Like: in body\r\n"));
	assert_serialized(m, in);
	message_free(m);
}

/* test_roundtrip_folded_fields - continuation lines belong to their field. */
static void test_roundtrip_folded_fields(void **state)
{
	const char *in = "Subject: a\r\n b\r\n\tc\r\n"
	                 "X-Long:\r\n  first\r\n second \r\n"
	                 "\r\n"
	                 "body\r\n";
	struct message *m = parse(in);

	assert_int_equal(message_field_count(m), 2);
	assert_field_raw(m, 0, "Subject: a\r\n b\r\n\tc\r\n");
	assert_field_raw(m, 1, "X-Long:\r\n  first\r\n second \r\n");
	assert_serialized(m, in);
	message_free(m);
}

/* test_roundtrip_bare_lf - bare LF line endings are accepted and kept. */
static void test_roundtrip_bare_lf(void **state)
{
	const char *in = "From: a@example.com\nSubject: x\n y\n\nbody\n";
	struct message *m = parse(in);

	assert_int_equal(message_field_count(m), 2);
	assert_header(m, "Subject", 0, "x y");
	assert_body(m, "body\n");
	assert_serialized(m, in);
	message_free(m);
	assert_roundtrip("A: b\r\nC: d\n\nmixed\r\n", 2);
}

/* test_roundtrip_without_body - all header, with or without the empty line. */
static void test_roundtrip_without_body(void **state)
{
	struct message *m = parse("A: b\r\nC: d\r\n");

	assert_int_equal(message_field_count(m), 2);
	assert_body(m, "");
	message_free(m);
	assert_roundtrip("A: b\r\nC: d\r\n", 2);
	assert_roundtrip("A: b\r\nC: d\r\n\r\n", 2);
	assert_roundtrip("A: b\r\nC: d", 2);
	assert_roundtrip("A: b\r\nC: d\r", 2);
}

/* test_roundtrip_without_separator - a non-field line ends the header section and is body. */
static void test_roundtrip_without_separator(void **state)
{
	const char *in = "A: b\r\nnot a field\r\nC: d\r\n\r\nmore\r\n";
	struct message *m = parse(in);

	assert_int_equal(message_field_count(m), 1);
	assert_body(m, "not a field\r\nC: d\r\n\r\nmore\r\n");
	assert_int_equal(message_header_size(m), strlen("A: b\r\n"));
	assert_serialized(m, in);
	message_free(m);
	assert_roundtrip("A: b\r\nBad Name: x\r\n", 1);
	assert_roundtrip("A: b\r\n: no name\r\n", 1);
}

/* test_roundtrip_starting_with_non_field_line - no field at all: everything is body. */
static void test_roundtrip_starting_with_non_field_line(void **state)
{
	struct message *m = parse(" continued\r\nA: b\r\n\r\nx\r\n");

	assert_int_equal(message_field_count(m), 0);
	assert_body(m, " continued\r\nA: b\r\n\r\nx\r\n");
	message_free(m);
	assert_roundtrip("From someone Mon Jan  1 00:00:00 2024\r\nA: b\r\n", 0);
	assert_roundtrip("\r\nA: b\r\n", 0);
	assert_roundtrip("\nbody only\n", 0);
}

/* test_roundtrip_empty_message - an empty message has no field and no body. */
static void test_roundtrip_empty_message(void **state)
{
	struct message *m = message_parse(NULL, 0);
	size_t len = 1;
	char *out;

	assert_non_null(m);
	assert_int_equal(message_field_count(m), 0);
	assert_int_equal(message_size(m), 0);
	out = message_serialize(m, &len);
	assert_non_null(out);
	assert_int_equal(len, 0);
	free(out);
	message_free(m);
	assert_roundtrip("", 0);
}

/* test_roundtrip_odd_bytes - 8-bit, NUL, bare CR and blanks before the colon survive. */
static void test_roundtrip_odd_bytes(void **state)
{
	static const char in[] = "Subject: caf\xc3\xa9 \x00 x\r\n"
	                         "Subject\t : obsolete\r\n"
	                         "X: a\rb\r\n"
	                         "\r\n"
	                         "\x00\xff\r\n";
	struct message *m = parse_n(in, sizeof(in) - 1);
	size_t len;
	const char *name;

	assert_int_equal(message_field_count(m), 3);
	name = message_field_name(m, 1, &len);
	assert_int_equal(len, 7);
	assert_memory_equal(name, "Subject", 7);
	assert_header(m, "subject", 1, "obsolete");
	assert_header(m, "X", 0, "a\rb");
	assert_serialized_n(m, in, sizeof(in) - 1);
	message_free(m);
}

/* test_parse_separator_is_first_empty_line - later empty lines and fields are body. */
static void test_parse_separator_is_first_empty_line(void **state)
{
	struct message *m = parse("A: b\r\n\r\nC: d\r\n\r\n");

	assert_int_equal(message_field_count(m), 1);
	assert_body(m, "C: d\r\n\r\n");
	assert_int_equal(message_header_count(m, "C"), 0);
	message_free(m);
}

/* test_parse_copies_input - the message does not depend on the caller's buffer. */
static void test_parse_copies_input(void **state)
{
	char buf[] = "A: b\r\n\r\nbody\r\n";
	struct message *m = parse(buf);

	memset(buf, 'x', sizeof(buf) - 1);
	assert_serialized(m, "A: b\r\n\r\nbody\r\n");
	message_free(m);
}

/* test_parse_take_owns_buffer - message_parse_take frees the buffer it was given. */
static void test_parse_take_owns_buffer(void **state)
{
	char *buf = strdup("A: b\r\n\r\nbody\r\n");
	struct message *m;

	assert_non_null(buf);
	m = message_parse_take(buf, strlen(buf));
	assert_non_null(m);
	assert_header(m, "A", 0, "b");
	message_free(m);
}

/* test_parse_many_fields_is_linear - 100000 short fields parse, count and remove quickly. */
static void test_parse_many_fields_is_linear(void **state)
{
	const size_t n = 100000;
	size_t len = n * 6 + 2 + 4, i;
	char *in = malloc(len);
	struct message *m;

	assert_non_null(in);
	for (i = 0; i < n; i++)
		memcpy(in + 6 * i, i % 2 ? "A: b\r\n" : "C: d\r\n", 6);
	memcpy(in + 6 * n, "\r\nxy\r\n", 6);
	m = parse_n(in, len);
	assert_int_equal(message_field_count(m), n);
	assert_int_equal(message_header_count(m, "a"), n / 2);
	assert_int_equal(message_header_remove(m, "A"), n / 2);
	assert_int_equal(message_field_count(m), n / 2);
	assert_int_equal(message_header_append(m, "A", "last"), 0);
	assert_header(m, "A", 0, "last");
	assert_body(m, "xy\r\n");
	message_free(m);
	free(in);
}

/* ---- Queries ---- */

/* test_lookup_is_case_insensitive - names match whatever their case. */
static void test_lookup_is_case_insensitive(void **state)
{
	struct message *m = parse("SUBJECT: one\r\nsubject: two\r\nX-Other: three\r\n\r\n");

	assert_header(m, "Subject", 0, "one");
	assert_header(m, "subJECT", 1, "two");
	assert_header(m, "x-other", 0, "three");
	assert_int_equal(message_header_index(m, "x-OTHER", 0), 2);
	assert_int_equal(message_header_index(m, "Subject", 2), -1);
	assert_no_header(m, "Subject", 2);
	assert_no_header(m, "Subjec", 0);
	assert_no_header(m, "Subjects", 0);
	message_free(m);
}

/* test_unfolding_removes_line_breaks_and_trims - RFC 5322 3.2.2, blanks kept inside. */
static void test_unfolding_removes_line_breaks_and_trims(void **state)
{
	struct message *m = parse("Subject:   a  \r\n b\r\n\t\tc  \r\n"
	                          "Empty:\r\n"
	                          "Blank:   \r\n   \r\n"
	                          "Lf: x\n y\n\n");

	assert_header(m, "Subject", 0, "a   b\t\tc");
	assert_header(m, "Empty", 0, "");
	assert_header(m, "Blank", 0, "");
	assert_header(m, "Lf", 0, "x y");
	message_free(m);
}

/* test_value_with_nul_has_length - a value holding NUL comes with its full length. */
static void test_value_with_nul_has_length(void **state)
{
	static const char in[] = "X: a\x00z\r\n\r\n";
	struct message *m = parse_n(in, sizeof(in) - 1);
	size_t len = 0;
	char *v = message_header_get(m, "X", 0, &len);

	assert_non_null(v);
	assert_int_equal(len, 3);
	assert_memory_equal(v, "a\0z", 4);
	free(v);
	message_free(m);
}

/* test_count_fields_by_name - how many fields have a name, and in total. */
static void test_count_fields_by_name(void **state)
{
	struct message *m = parse("Received: 1\r\nReceived: 2\r\nreceived: 3\r\nTo: x\r\n\r\n");

	assert_int_equal(message_header_count(m, "Received"), 3);
	assert_int_equal(message_header_count(m, "To"), 1);
	assert_int_equal(message_header_count(m, "Cc"), 0);
	assert_int_equal(message_field_count(m), 4);
	assert_header(m, "Received", 2, "3");
	message_free(m);
}

/* test_iteration_in_order - every field by position, name as written and value. */
static void test_iteration_in_order(void **state)
{
	static const char *const names[] = {"Received", "from", "X-Y"};
	static const char *const values[] = {"r", "f", "folded value"};
	struct message *m = parse("Received: r\r\nfrom : f\r\nX-Y: folded\r\n value\r\n\r\n");
	size_t i, len;

	assert_int_equal(message_field_count(m), 3);
	for (i = 0; i < 3; i++) {
		const char *name = message_field_name(m, i, &len);
		char *v = message_field_value(m, i, NULL);

		assert_int_equal(len, strlen(names[i]));
		assert_memory_equal(name, names[i], len);
		assert_string_equal(v, values[i]);
		free(v);
	}
	assert_null(message_field_name(m, 3, &len));
	assert_null(message_field_raw(m, 3, &len));
	errno = 0;
	assert_null(message_field_value(m, 3, NULL));
	assert_int_equal(errno, ENOENT);
	message_free(m);
}

/* ---- Field edits ---- */

/* test_append_adds_after_last_field - before the separator, body untouched. */
static void test_append_adds_after_last_field(void **state)
{
	struct message *m = parse("A: 1\r\nB: 2\r\n\r\nbody\r\n");

	assert_int_equal(message_header_append(m, "X-Spam", "yes"), 0);
	assert_serialized(m, "A: 1\r\nB: 2\r\nX-Spam: yes\r\n\r\nbody\r\n");
	assert_int_equal(message_modified(m), 1);
	message_free(m);
}

/* test_append_uses_bare_lf_of_message - new lines end like the message's lines. */
static void test_append_uses_bare_lf_of_message(void **state)
{
	struct message *m = parse("A: 1\n\nbody\n");

	assert_int_equal(message_header_append(m, "X", "y"), 0);
	assert_int_equal(message_header_prepend(m, "P", "q"), 0);
	assert_serialized(m, "P: q\nA: 1\nX: y\n\nbody\n");
	message_free(m);
}

/* test_append_after_unterminated_last_field - the field gets its line ending first. */
static void test_append_after_unterminated_last_field(void **state)
{
	struct message *m = parse("A: 1");

	assert_int_equal(message_header_append(m, "B", "2"), 0);
	assert_serialized(m, "A: 1\r\nB: 2\r\n");
	message_free(m);
}

/* test_append_after_header_ended_by_non_field - the body line stays body. */
static void test_append_after_header_ended_by_non_field(void **state)
{
	struct message *m = parse("A: 1\r\nno colon\r\n");

	assert_int_equal(message_header_append(m, "B", "2"), 0);
	assert_serialized(m, "A: 1\r\nB: 2\r\nno colon\r\n");
	message_free(m);
}

/* test_append_before_blank_body_adds_separator - else the body would continue the field. */
static void test_append_before_blank_body_adds_separator(void **state)
{
	struct message *m = parse(" indented body\r\n");
	struct message *again;
	size_t len;
	char *out;

	assert_int_equal(message_header_append(m, "A", "1"), 0);
	assert_serialized(m, "A: 1\r\n\r\n indented body\r\n");
	out = message_serialize(m, &len);
	again = parse_n(out, len);
	assert_header(again, "A", 0, "1");
	assert_body(again, " indented body\r\n");
	message_free(again);
	free(out);
	message_free(m);
}

/* test_append_to_empty_message - the message is just the new field. */
static void test_append_to_empty_message(void **state)
{
	struct message *m = parse("");

	assert_int_equal(message_header_append(m, "A", "1"), 0);
	assert_serialized(m, "A: 1\r\n");
	message_free(m);
}

/* test_prepend_adds_at_top - above the first field, even the server's Received:. */
static void test_prepend_adds_at_top(void **state)
{
	struct message *m = parse("Received: by us\r\nA: 1\r\n\r\nbody\r\n");

	assert_int_equal(message_header_prepend(m, "X-First", "top"), 0);
	assert_serialized(m, "X-First: top\r\nReceived: by us\r\nA: 1\r\n\r\nbody\r\n");
	message_free(m);
}

/* test_set_existing_keeps_spelling_and_position - only the first of the name changes. */
static void test_set_existing_keeps_spelling_and_position(void **state)
{
	struct message *m =
	    parse("A: 1\r\nsUBJECT : old\r\n folded\r\nB: 2\r\nSubject: second\r\n\r\nb\r\n");

	assert_int_equal(message_header_set(m, "Subject", "new value"), 0);
	assert_serialized(m, "A: 1\r\nsUBJECT: new value\r\nB: 2\r\nSubject: second\r\n\r\nb\r\n");
	assert_header(m, "subject", 0, "new value");
	assert_header(m, "subject", 1, "second");
	message_free(m);
}

/* test_set_absent_appends - without such a field, set is append. */
static void test_set_absent_appends(void **state)
{
	struct message *m = parse("A: 1\r\n\r\nb\r\n");

	assert_int_equal(message_header_set(m, "Subject", "s"), 0);
	assert_serialized(m, "A: 1\r\nSubject: s\r\n\r\nb\r\n");
	message_free(m);
}

/* test_set_trims_value_and_writes_empty_value - blanks at the ends are not kept. */
static void test_set_trims_value_and_writes_empty_value(void **state)
{
	struct message *m = parse("A: 1\r\n\r\n");

	assert_int_equal(message_header_set(m, "A", "  x y \t"), 0);
	assert_int_equal(message_header_append(m, "E", ""), 0);
	assert_int_equal(message_header_append(m, "F", "   "), 0);
	assert_serialized(m, "A: x y\r\nE:\r\nF:\r\n\r\n");
	assert_header(m, "E", 0, "");
	message_free(m);
}

/* test_rename_every_occurrence_keeps_values - name replaced, value bytes untouched. */
static void test_rename_every_occurrence_keeps_values(void **state)
{
	struct message *m = parse("X-Old: a\r\n b\r\nY: c\r\nx-old :d\r\n\r\nbody\r\n");

	assert_int_equal(message_header_rename(m, "X-OLD", "X-New"), 2);
	assert_serialized(m, "X-New: a\r\n b\r\nY: c\r\nX-New:d\r\n\r\nbody\r\n");
	assert_int_equal(message_header_count(m, "X-Old"), 0);
	assert_header(m, "X-New", 0, "a b");
	message_free(m);
}

/* test_rename_absent_changes_nothing - 0 renamed, not modified. */
static void test_rename_absent_changes_nothing(void **state)
{
	struct message *m = parse("A: 1\r\n");

	assert_int_equal(message_header_rename(m, "B", "C"), 0);
	assert_int_equal(message_modified(m), 0);
	assert_serialized(m, "A: 1\r\n");
	message_free(m);
}

/* test_remove_every_occurrence_returns_count - all fields of the name go, others stay. */
static void test_remove_every_occurrence_returns_count(void **state)
{
	struct message *m =
	    parse("DKIM: 1\r\n x\r\nA: 2\r\ndkim: 3\r\nB: 4\r\nDKIM: 5\r\n\r\nbody\r\n");

	assert_int_equal(message_header_remove(m, "Dkim"), 3);
	assert_serialized(m, "A: 2\r\nB: 4\r\n\r\nbody\r\n");
	assert_int_equal(message_header_count(m, "DKIM"), 0);
	assert_int_equal(message_modified(m), 1);
	message_free(m);
}

/* test_remove_absent_returns_zero - nothing removed, not modified. */
static void test_remove_absent_returns_zero(void **state)
{
	struct message *m = parse("A: 1\r\n\r\n");

	assert_int_equal(message_header_remove(m, "B"), 0);
	assert_int_equal(message_modified(m), 0);
	message_free(m);
}

/* test_remove_all_fields_keeps_separator - the empty line still separates the body. */
static void test_remove_all_fields_keeps_separator(void **state)
{
	struct message *m = parse("A: 1\r\nA: 2\r\n\r\nB: body\r\n");

	assert_int_equal(message_header_remove(m, "A"), 2);
	assert_serialized(m, "\r\nB: body\r\n");
	message_free(m);
}

/* test_field_remove_by_index - one field goes, the others keep their order and bytes. */
static void test_field_remove_by_index(void **state)
{
	struct message *m = parse("A: 1\r\n x\r\nB: 2\r\nA: 3\r\n\r\nbody\r\n");

	assert_int_equal(message_field_remove(m, 1), 0);
	assert_serialized(m, "A: 1\r\n x\r\nA: 3\r\n\r\nbody\r\n");
	assert_int_equal(message_modified(m), 1);
	assert_int_equal(message_field_remove(m, 1), 0);
	assert_int_equal(message_field_remove(m, 0), 0);
	assert_serialized(m, "\r\nbody\r\n");
	errno = 0;
	assert_int_equal(message_field_remove(m, 0), -1);
	assert_int_equal(errno, ENOENT);
	message_free(m);
}

/* assert_name_refused - every edit refuses name with EINVAL and changes nothing. */
static void assert_name_refused(struct message *m, const char *name)
{
	errno = 0;
	assert_int_equal(message_header_append(m, name, "v"), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(message_header_prepend(m, name, "v"), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(message_header_set(m, name, "v"), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(message_header_rename(m, "A", name), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(message_header_rename(m, name, "A"), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(message_header_remove(m, name), -1);
	assert_int_equal(errno, EINVAL);
}

/* test_bad_names_refused - space, colon, empty, controls, DEL, 8-bit, NULL. */
static void test_bad_names_refused(void **state)
{
	static const char *const bad[] = {
	    "", "X Y", "X:", ":", "X\tY", "X\r", "X\nY", "\x01X", "X\x7f", "X\xc3\xa9", " X", NULL,
	};
	struct message *m = parse("A: 1\r\n\r\nbody\r\n");
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_name_refused(m, bad[i]);
	assert_int_equal(message_modified(m), 0);
	assert_serialized(m, "A: 1\r\n\r\nbody\r\n");
	message_free(m);
}

/* test_values_with_cr_or_lf_refused - no line break can be injected. */
static void test_values_with_cr_or_lf_refused(void **state)
{
	static const char *const bad[] = {"a\r\nB: injected", "a\n", "\r", "x\ry", NULL};
	struct message *m = parse("A: 1\r\n\r\n");
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(message_header_append(m, "X", bad[i]), -1);
		assert_int_equal(errno, EINVAL);
		errno = 0;
		assert_int_equal(message_header_prepend(m, "X", bad[i]), -1);
		assert_int_equal(errno, EINVAL);
		errno = 0;
		assert_int_equal(message_header_set(m, "A", bad[i]), -1);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(message_modified(m), 0);
	assert_serialized(m, "A: 1\r\n\r\n");
	message_free(m);
}

/* test_long_value_folded_within_78 - folded before blanks; unfolding gives it back. */
static void test_long_value_folded_within_78(void **state)
{
	char value[2000];
	struct message *m = parse("A: 1\r\n\r\nbody\r\n");
	size_t i, len;
	char *raw;

	for (i = 0; i + 1 < sizeof(value); i++)
		value[i] = (i % 11 == 10) ? ' ' : (i % 37 == 36 ? '\t' : (char)('a' + i % 26));
	value[sizeof(value) - 1] = '\0';
	assert_int_equal(message_header_append(m, "Subject", value), 0);
	raw = field_raw(m, 1);
	len = strlen(raw);
	assert_true(longest_line(raw, len) <= 78);
	assert_true(strstr(raw, "\r\n ") != NULL || strstr(raw, "\r\n\t") != NULL);
	for (i = 0; i + 2 < len; i++)
		if (raw[i] == '\n')
			assert_true(raw[i + 1] == ' ' || raw[i + 1] == '\t');
	assert_memory_equal(raw + len - 2, "\r\n", 2);
	free(raw);
	assert_header(m, "Subject", 0, value);
	assert_body(m, "body\r\n");
	message_free(m);
}

/* test_utf8_value_folded_at_blanks_only - multibyte characters are never split. */
static void test_utf8_value_folded_at_blanks_only(void **state)
{
	char value[600] = "";
	struct message *m = parse("");
	size_t i;

	for (i = 0; i < 40; i++)
		strcat(value, i ? " \xc3\xa9t\xc3\xa9" : "\xc3\xa9t\xc3\xa9");
	assert_int_equal(message_header_append(m, "Subject", value), 0);
	assert_header(m, "Subject", 0, value);
	message_free(m);
}

/* test_long_word_gets_a_line_of_its_own - over 78 but within 998 is accepted. */
static void test_long_word_gets_a_line_of_its_own(void **state)
{
	char value[400];
	struct message *m = parse("");
	char *raw;

	memset(value, 'w', sizeof(value));
	memcpy(value, "short ", 6);
	value[sizeof(value) - 1] = '\0';
	assert_int_equal(message_header_append(m, "X", value), 0);
	raw = field_raw(m, 0);
	assert_memory_equal(raw, "X: short\r\n w", 12);
	assert_int_equal(longest_line(raw, strlen(raw)), sizeof(value) - 1 - 5);
	free(raw);
	assert_header(m, "X", 0, value);
	message_free(m);
}

/* test_word_longer_than_998_refused - no line may exceed 998 characters. */
static void test_word_longer_than_998_refused(void **state)
{
	char value[1200];
	struct message *m = parse("A: 1\r\n\r\n");

	/* "X: " and 995 characters is exactly 998. */
	memset(value, 'w', 995);
	value[995] = '\0';
	assert_int_equal(message_header_append(m, "X", value), 0);
	assert_int_equal(message_header_remove(m, "X"), 1);
	value[995] = 'w';
	value[996] = '\0';
	errno = 0;
	assert_int_equal(message_header_append(m, "X", value), -1);
	assert_int_equal(errno, EINVAL);
	memset(value, 'w', 1100);
	memcpy(value, "a b ", 4);
	value[1100] = '\0';
	errno = 0;
	assert_int_equal(message_header_set(m, "A", value), -1);
	assert_int_equal(errno, EINVAL);
	assert_header(m, "A", 0, "1");
	assert_int_equal(message_field_count(m), 1);
	message_free(m);
}

/* test_body_unaffected_by_header_edits - every edit leaves the body bytes alone. */
static void test_body_unaffected_by_header_edits(void **state)
{
	static const char body[] = "To: not@header.example\r\n\r\n\xc3\xa9\r\n.\r\n";
	struct message *m = parse("To: a@example.com\r\nSubject: s\r\n\r\n"
	                          "To: not@header.example\r\n\r\n\xc3\xa9\r\n.\r\n");

	assert_int_equal(message_header_append(m, "X", "1"), 0);
	assert_int_equal(message_header_prepend(m, "Y", "2"), 0);
	assert_int_equal(message_header_set(m, "Subject", "t"), 0);
	assert_int_equal(message_header_rename(m, "X", "Z"), 1);
	assert_int_equal(message_header_remove(m, "Y"), 1);
	assert_int_equal(message_to_add(m, "b@example.com"), 0);
	assert_int_equal(message_to_rewrite(m, "a@example.com", "c@example.com"), 1);
	assert_int_equal(message_to_remove(m, "not@header.example"), 0);
	assert_body(m, body);
	assert_serialized(m, "To: c@example.com, b@example.com\r\nSubject: t\r\nZ: 1\r\n\r\n"
	                     "To: not@header.example\r\n\r\n\xc3\xa9\r\n.\r\n");
	message_free(m);
}

/* test_modified_flag - set by a change, not by lookups or edits that found nothing. */
static void test_modified_flag(void **state)
{
	struct message *m = parse("To: a@example.com\r\nA: 1\r\n\r\n");
	char *v;

	v = message_header_get(m, "A", 0, NULL);
	free(v);
	assert_int_equal(message_header_remove(m, "B"), 0);
	assert_int_equal(message_header_rename(m, "B", "C"), 0);
	assert_int_equal(message_to_remove(m, "b@example.com"), 0);
	assert_int_equal(message_to_rewrite(m, "b@example.com", "c@example.com"), 0);
	assert_int_equal(message_header_append(m, "A B", "x"), -1);
	assert_int_equal(message_modified(m), 0);
	assert_int_equal(message_header_set(m, "A", "1"), 0);
	assert_int_equal(message_modified(m), 1);
	message_free(m);
}

/* ---- The To helpers ---- */

/* to_message - a message whose To field is to. */
static struct message *to_message(const char *to)
{
	char buf[2048];

	snprintf(buf, sizeof(buf), "From: f@example.com\r\nTo: %s\r\nSubject: s\r\n\r\nbody\r\n",
	         to);
	return parse(buf);
}

/* assert_to - the first To field's unfolded value is want. */
static void assert_to(const struct message *m, const char *want)
{
	assert_header(m, "To", 0, want);
}

/* test_to_add_to_existing_list - ", addr" after the list. */
static void test_to_add_to_existing_list(void **state)
{
	struct message *m = to_message("\"Doe, J\" <j@example.com>");

	assert_int_equal(message_to_add(m, "new@example.org"), 0);
	assert_serialized(
	    m, "From: f@example.com\r\nTo: \"Doe, J\" <j@example.com>, new@example.org\r\n"
	       "Subject: s\r\n\r\nbody\r\n");
	message_free(m);
}

/* test_to_add_without_to_field_creates_it - "To: addr" after the last field. */
static void test_to_add_without_to_field_creates_it(void **state)
{
	struct message *m = parse("From: f@example.com\r\n\r\nbody\r\n");

	assert_int_equal(message_to_add(m, "new@example.org"), 0);
	assert_serialized(m, "From: f@example.com\r\nTo: new@example.org\r\n\r\nbody\r\n");
	message_free(m);
}

/* test_to_add_handles_empty_list_trailing_comma_and_open_group - the address stays its own. */
static void test_to_add_handles_empty_list_trailing_comma_and_open_group(void **state)
{
	struct message *m = to_message("");

	assert_int_equal(message_to_add(m, "n@example.org"), 0);
	assert_to(m, "n@example.org");
	message_free(m);
	m = to_message("a@example.com,");
	assert_int_equal(message_to_add(m, "n@example.org"), 0);
	assert_to(m, "a@example.com, n@example.org");
	message_free(m);
	m = to_message("undisclosed-recipients:");
	assert_int_equal(message_to_add(m, "n@example.org"), 0);
	assert_to(m, "undisclosed-recipients:;, n@example.org");
	message_free(m);
	m = to_message("G: a@example.com,");
	assert_int_equal(message_to_add(m, "n@example.org"), 0);
	assert_to(m, "G: a@example.com,;, n@example.org");
	assert_int_equal(message_to_rewrite(m, "n@example.org", "o@example.org"), 1);
	message_free(m);
}

/* test_to_add_folds_long_list - the refolded field keeps lines within 78. */
static void test_to_add_folds_long_list(void **state)
{
	struct message *m = to_message("a@example.com");
	char addr[32];
	size_t i;
	char *raw;

	for (i = 0; i < 30; i++) {
		snprintf(addr, sizeof(addr), "user%zu@example.com", i);
		assert_int_equal(message_to_add(m, addr), 0);
	}
	raw = field_raw(m, 1);
	assert_true(longest_line(raw, strlen(raw)) <= 78);
	assert_memory_equal(raw, "To: a@example.com, user0@example.com,", 37);
	free(raw);
	assert_int_equal(message_to_remove(m, "user17@example.com"), 1);
	assert_int_equal(message_to_remove(m, "user17@example.com"), 0);
	message_free(m);
}

/* test_to_add_refuses_broken_list - the address would vanish into an open quoted string. */
static void test_to_add_refuses_broken_list(void **state)
{
	struct message *m = to_message("\"Open <a@example.com>");

	errno = 0;
	assert_int_equal(message_to_add(m, "n@example.org"), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(message_modified(m), 0);
	message_free(m);
}

/* test_to_remove_one_of_three - display names, comments and quoted commas kept intact. */
static void test_to_remove_one_of_three(void **state)
{
	struct message *m =
	    to_message("\"Doe, John\" <john@example.com>, (team, lead) \"x<y@z>, w\" "
	               "<jane@example.com> (Jane, the \\) boss), bob@example.com (Bob, "
	               "\"<jane@example.com>\")");

	assert_int_equal(message_to_remove(m, "jane@example.com"), 1);
	assert_to(m, "\"Doe, John\" <john@example.com>, bob@example.com (Bob, "
	             "\"<jane@example.com>\")");
	assert_header(m, "Subject", 0, "s");
	assert_body(m, "body\r\n");
	message_free(m);
}

/* test_to_remove_first_and_last_mailbox - the separators around are tidied. */
static void test_to_remove_first_and_last_mailbox(void **state)
{
	struct message *m = to_message("a@example.com, b@example.com, c@example.com");

	assert_int_equal(message_to_remove(m, "a@example.com"), 1);
	assert_to(m, "b@example.com, c@example.com");
	assert_int_equal(message_to_remove(m, "c@example.com"), 1);
	assert_to(m, "b@example.com");
	message_free(m);
}

/* test_to_remove_every_occurrence - duplicates all go, and the count says so. */
static void test_to_remove_every_occurrence(void **state)
{
	struct message *m =
	    to_message("a@example.com, B <a@example.com>, c@example.com, a@EXAMPLE.com");

	assert_int_equal(message_to_remove(m, "a@example.com"), 3);
	assert_to(m, "c@example.com");
	message_free(m);
}

/* test_to_remove_last_mailbox_drops_field - an emptied To field goes. */
static void test_to_remove_last_mailbox_drops_field(void **state)
{
	struct message *m = to_message("\"Only\" <only@example.com> (comment)");

	assert_int_equal(message_to_remove(m, "only@example.com"), 1);
	assert_int_equal(message_header_count(m, "To"), 0);
	assert_serialized(m, "From: f@example.com\r\nSubject: s\r\n\r\nbody\r\n");
	message_free(m);
}

/* test_to_domain_case_insensitive_local_part_exact - RFC 5321 2.4 equality. */
static void test_to_domain_case_insensitive_local_part_exact(void **state)
{
	struct message *m = to_message("John@Example.COM, john@example.com");

	assert_int_equal(message_to_remove(m, "John@example.com"), 1);
	assert_to(m, "john@example.com");
	assert_int_equal(message_to_remove(m, "JOHN@example.com"), 0);
	message_free(m);
}

/* test_to_quoted_local_part - a quoted local part with '@' and ',' is one address. */
static void test_to_quoted_local_part(void **state)
{
	struct message *m = to_message("\"a@b, c\"@example.com, d@example.com");

	assert_int_equal(message_to_rewrite(m, "\"a@b, c\"@example.com", "q@example.com"), 1);
	assert_to(m, "q@example.com, d@example.com");
	message_free(m);
}

/* test_to_group_members - members are removed and rewritten; the group stays. */
static void test_to_group_members(void **state)
{
	struct message *m =
	    to_message("Team: a@example.com, \"B\" <b@example.com>;, c@example.com");

	assert_int_equal(message_to_rewrite(m, "b@example.com", "bb@example.com"), 1);
	assert_to(m, "Team: a@example.com, \"B\" <bb@example.com>;, c@example.com");
	assert_int_equal(message_to_remove(m, "a@example.com"), 1);
	assert_to(m, "Team: \"B\" <bb@example.com>;, c@example.com");
	assert_int_equal(message_to_remove(m, "bb@example.com"), 1);
	assert_to(m, "Team:;, c@example.com");
	assert_int_equal(message_to_remove(m, "c@example.com"), 1);
	assert_to(m, "Team:;");
	message_free(m);
}

/* test_to_rewrite_keeps_display_name - only the addr-spec changes. */
static void test_to_rewrite_keeps_display_name(void **state)
{
	struct message *m =
	    to_message("\"John\" <old@example.com>, old@example.com (Old), "
	               "Other <other@example.com>, <@relay.example:old@example.com>");

	assert_int_equal(message_to_rewrite(m, "old@EXAMPLE.com", "new@example.net"), 3);
	assert_to(m,
	          "\"John\" <new@example.net>, new@example.net (Old), Other <other@example.com>, "
	          "<@relay.example:new@example.net>");
	message_free(m);
}

/* test_to_several_fields_all_edited - duplicate To fields are each handled. */
static void test_to_several_fields_all_edited(void **state)
{
	struct message *m =
	    parse("To: a@example.com, b@example.com\r\nX: 1\r\nto: a@example.com\r\n\r\n");

	assert_int_equal(message_to_rewrite(m, "a@example.com", "z@example.com"), 2);
	assert_serialized(m,
	                  "To: z@example.com, b@example.com\r\nX: 1\r\nto: z@example.com\r\n\r\n");
	assert_int_equal(message_to_remove(m, "z@example.com"), 2);
	assert_serialized(m, "To: b@example.com\r\nX: 1\r\n\r\n");
	message_free(m);
}

/* test_to_malformed_lists_untouched - no crash, no loop, nothing changed. */
static void test_to_malformed_lists_untouched(void **state)
{
	static const char *const broken[] = {
	    "\"unterminated a@example.com",
	    "<a@example.com",
	    "x <a@example.com <b@example.com>",
	    "(open comment a@example.com",
	    "a@example.com (nested (comment)",
	    "a@[192.0.2.1",
	    "\"tail\\",
	};
	size_t i;

	for (i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		struct message *m = to_message(broken[i]);

		assert_int_equal(message_to_remove(m, "a@example.com"), 0);
		assert_int_equal(message_to_rewrite(m, "a@example.com", "b@example.com"), 0);
		assert_int_equal(message_modified(m), 0);
		assert_to(m, broken[i]);
		message_free(m);
	}
}

/* test_to_mailboxes_not_understood_left_alone - only clear mailboxes are touched. */
static void test_to_mailboxes_not_understood_left_alone(void **state)
{
	struct message *m =
	    to_message("a@example.com; b@example.com, a@example.com, "
	               "John Doe a@example.com, <a@example.com> trailing, a>b@example.com");

	assert_int_equal(message_to_remove(m, "a@example.com"), 1);
	assert_to(m, "a@example.com; b@example.com, John Doe a@example.com, "
	             "<a@example.com> trailing, a>b@example.com");
	message_free(m);
}

/* test_to_invalid_addresses_refused - only a bare addr-spec is accepted. */
static void test_to_invalid_addresses_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    "a",
	    "@example.com",
	    "a@",
	    "<a@example.com>",
	    "a@example.com, b@example.com",
	    "a b@example.com",
	    "a@example.com\r\nBcc: x@y",
	    "\"open@example.com",
	    NULL,
	};
	char longest[MESSAGE_ADDR_MAX + 2];
	struct message *m = to_message("a@example.com");
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(message_to_add(m, bad[i]), -1);
		assert_int_equal(errno, EINVAL);
		errno = 0;
		assert_int_equal(message_to_remove(m, bad[i]), -1);
		assert_int_equal(errno, EINVAL);
		errno = 0;
		assert_int_equal(message_to_rewrite(m, "a@example.com", bad[i]), -1);
		assert_int_equal(errno, EINVAL);
	}
	memset(longest, 'x', sizeof(longest) - 1);
	memcpy(longest, "a@", 2);
	longest[sizeof(longest) - 1] = '\0';
	assert_int_equal(message_to_add(m, longest), -1);
	longest[sizeof(longest) - 2] = '\0';
	assert_int_equal(message_to_add(m, longest), 0);
	message_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_normal_message),
	    cmocka_unit_test(test_roundtrip_folded_fields),
	    cmocka_unit_test(test_roundtrip_bare_lf),
	    cmocka_unit_test(test_roundtrip_without_body),
	    cmocka_unit_test(test_roundtrip_without_separator),
	    cmocka_unit_test(test_roundtrip_starting_with_non_field_line),
	    cmocka_unit_test(test_roundtrip_empty_message),
	    cmocka_unit_test(test_roundtrip_odd_bytes),
	    cmocka_unit_test(test_parse_separator_is_first_empty_line),
	    cmocka_unit_test(test_parse_copies_input),
	    cmocka_unit_test(test_parse_take_owns_buffer),
	    cmocka_unit_test(test_parse_many_fields_is_linear),
	    cmocka_unit_test(test_lookup_is_case_insensitive),
	    cmocka_unit_test(test_unfolding_removes_line_breaks_and_trims),
	    cmocka_unit_test(test_value_with_nul_has_length),
	    cmocka_unit_test(test_count_fields_by_name),
	    cmocka_unit_test(test_iteration_in_order),
	    cmocka_unit_test(test_append_adds_after_last_field),
	    cmocka_unit_test(test_append_uses_bare_lf_of_message),
	    cmocka_unit_test(test_append_after_unterminated_last_field),
	    cmocka_unit_test(test_append_after_header_ended_by_non_field),
	    cmocka_unit_test(test_append_before_blank_body_adds_separator),
	    cmocka_unit_test(test_append_to_empty_message),
	    cmocka_unit_test(test_prepend_adds_at_top),
	    cmocka_unit_test(test_set_existing_keeps_spelling_and_position),
	    cmocka_unit_test(test_set_absent_appends),
	    cmocka_unit_test(test_set_trims_value_and_writes_empty_value),
	    cmocka_unit_test(test_rename_every_occurrence_keeps_values),
	    cmocka_unit_test(test_rename_absent_changes_nothing),
	    cmocka_unit_test(test_remove_every_occurrence_returns_count),
	    cmocka_unit_test(test_remove_absent_returns_zero),
	    cmocka_unit_test(test_remove_all_fields_keeps_separator),
	    cmocka_unit_test(test_field_remove_by_index),
	    cmocka_unit_test(test_bad_names_refused),
	    cmocka_unit_test(test_values_with_cr_or_lf_refused),
	    cmocka_unit_test(test_long_value_folded_within_78),
	    cmocka_unit_test(test_utf8_value_folded_at_blanks_only),
	    cmocka_unit_test(test_long_word_gets_a_line_of_its_own),
	    cmocka_unit_test(test_word_longer_than_998_refused),
	    cmocka_unit_test(test_body_unaffected_by_header_edits),
	    cmocka_unit_test(test_modified_flag),
	    cmocka_unit_test(test_to_add_to_existing_list),
	    cmocka_unit_test(test_to_add_without_to_field_creates_it),
	    cmocka_unit_test(test_to_add_handles_empty_list_trailing_comma_and_open_group),
	    cmocka_unit_test(test_to_add_folds_long_list),
	    cmocka_unit_test(test_to_add_refuses_broken_list),
	    cmocka_unit_test(test_to_remove_one_of_three),
	    cmocka_unit_test(test_to_remove_first_and_last_mailbox),
	    cmocka_unit_test(test_to_remove_every_occurrence),
	    cmocka_unit_test(test_to_remove_last_mailbox_drops_field),
	    cmocka_unit_test(test_to_domain_case_insensitive_local_part_exact),
	    cmocka_unit_test(test_to_quoted_local_part),
	    cmocka_unit_test(test_to_group_members),
	    cmocka_unit_test(test_to_rewrite_keeps_display_name),
	    cmocka_unit_test(test_to_several_fields_all_edited),
	    cmocka_unit_test(test_to_malformed_lists_untouched),
	    cmocka_unit_test(test_to_mailboxes_not_understood_left_alone),
	    cmocka_unit_test(test_to_invalid_addresses_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
