/*
 * test_data_filter.c - unit tests of the DATA / BDAT content decoder: end
 * marker, dot-unstuffing, the SMTP smuggling variants, bare CR / LF policy,
 * NUL, line length and size limits, and independence from chunking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data_filter.h"

#define OUT_MAX (256 * 1024)

/* What the sink received. */
struct capture {
	char buf[OUT_MAX];
	size_t len;
	size_t calls;
};

/* The outcome of decoding one input. */
struct result {
	struct capture out;
	size_t consumed;
	unsigned problems;
	int done;
	uint64_t size;
};

/* capture_sink - append what the filter hands on. */
static void capture_sink(void *arg, const char *buf, size_t len)
{
	struct capture *c = arg;

	assert_true(len > 0);
	assert_true(c->len + len <= sizeof(c->buf));
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	c->calls++;
}

/* A decoding setup. */
struct setup {
	enum data_filter_mode mode;
	enum bare_eol_policy bare_eol;
	size_t max_line;
	uint64_t max_size;
};

static const struct setup data_reject = {DATA_FILTER_DATA, BARE_EOL_REJECT, 1000, 0};
static const struct setup data_normalize = {DATA_FILTER_DATA, BARE_EOL_NORMALIZE, 1000, 0};
static const struct setup bdat_reject = {DATA_FILTER_BDAT, BARE_EOL_REJECT, 1000, 0};
static const struct setup bdat_normalize = {DATA_FILTER_BDAT, BARE_EOL_NORMALIZE, 1000, 0};

/*
 * decode_split - decode in[0..len) fed in pieces whose sizes come from
 * next_piece (whole when NULL), finishing BDAT when finish is set.
 */
static struct result *decode_split(const struct setup *s, const char *in, size_t len,
                                   size_t (*next_piece)(void), int finish)
{
	static struct result r;
	struct data_filter df;
	size_t off = 0;

	memset(&r, 0, sizeof(r));
	data_filter_init(&df, s->mode, s->bare_eol, s->max_line, s->max_size, capture_sink, &r.out);
	while (off < len) {
		size_t piece = next_piece ? next_piece() : len;
		size_t n;

		if (piece > len - off)
			piece = len - off;
		n = data_filter_feed(&df, in + off, piece);
		assert_true(n <= piece);
		off += n;
		if (n < piece)
			break;
	}
	if (finish)
		data_filter_finish(&df);
	r.consumed = off;
	r.problems = df.problems;
	r.done = df.done;
	r.size = df.size;
	assert_int_equal(df.size, r.out.len);
	return &r;
}

/* decode - decode a NUL-terminated input in one piece. */
static struct result *decode(const struct setup *s, const char *in)
{
	return decode_split(s, in, strlen(in), NULL, s->mode == DATA_FILTER_BDAT);
}

/* one_byte - piece size for byte-by-byte feeding. */
static size_t one_byte(void)
{
	return 1;
}

/* random_piece - piece size for random splits, 0 (an empty feed) included. */
static size_t random_piece(void)
{
	return (size_t)(rand() % 7);
}

/* assert_output - the decoded output is exactly want. */
static void assert_output(const struct result *r, const char *want)
{
	assert_int_equal(r->out.len, strlen(want));
	assert_memory_equal(r->out.buf, want, r->out.len);
}

/* assert_same_any_chunking - byte-by-byte and random splits decode like one piece. */
static void assert_same_any_chunking(const struct setup *s, const char *in, size_t len, int finish)
{
	static struct result whole;
	struct result *r;
	int round;

	whole = *decode_split(s, in, len, NULL, finish);
	for (round = 0; round < 40; round++) {
		r = decode_split(s, in, len, round == 0 ? one_byte : random_piece, finish);
		assert_int_equal(r->consumed, whole.consumed);
		assert_int_equal(r->problems, whole.problems);
		assert_int_equal(r->done, whole.done);
		assert_int_equal(r->out.len, whole.out.len);
		assert_memory_equal(r->out.buf, whole.out.buf, whole.out.len);
	}
}

/* test_data_message_ends_at_marker - CRLF.CRLF ends the message; its first CRLF is content. */
static void test_data_message_ends_at_marker(void **state)
{
	const char *in = "Subject: x\r\n\r\nHello\r\n.\r\n";
	struct result *r = decode(&data_reject, in);

	assert_int_equal(r->done, 1);
	assert_int_equal(r->consumed, strlen(in));
	assert_int_equal(r->problems, 0);
	assert_output(r, "Subject: x\r\n\r\nHello\r\n");
}

/* test_data_lone_marker_is_empty_message - the DATA command's CRLF counts as a line start. */
static void test_data_lone_marker_is_empty_message(void **state)
{
	struct result *r = decode(&data_reject, ".\r\n");

	assert_int_equal(r->done, 1);
	assert_int_equal(r->consumed, 3);
	assert_output(r, "");
}

/* test_data_empty_first_line_then_marker - an empty line before the marker is kept. */
static void test_data_empty_first_line_then_marker(void **state)
{
	struct result *r = decode(&data_reject, "\r\n.\r\n");

	assert_int_equal(r->done, 1);
	assert_output(r, "\r\n");
}

/* test_data_bytes_after_marker_left_for_next_command - consumption stops after the marker. */
static void test_data_bytes_after_marker_left_for_next_command(void **state)
{
	const char *in = "a\r\n.\r\nQUIT\r\n";
	struct result *r = decode(&data_reject, in);

	assert_int_equal(r->done, 1);
	assert_int_equal(r->consumed, strlen("a\r\n.\r\n"));
	assert_output(r, "a\r\n");
}

/* test_data_feed_after_done_consumes_nothing - nothing is taken once the message ended. */
static void test_data_feed_after_done_consumes_nothing(void **state)
{
	struct data_filter df;
	struct capture c = {.len = 0};

	data_filter_init(&df, DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 0, capture_sink, &c);
	assert_int_equal(data_filter_feed(&df, ".\r\n", 3), 3);
	assert_int_equal(data_filter_feed(&df, "more\r\n", 6), 0);
	assert_int_equal(c.len, 0);
}

/* test_data_leading_dot_removed - only a dot at the start of a line is removed. */
static void test_data_leading_dot_removed(void **state)
{
	struct result *r = decode(&data_reject, "..\r\n.x\r\n..y\r\na.b\r\n.\r\n");

	assert_int_equal(r->done, 1);
	assert_output(r, ".\r\nx\r\n.y\r\na.b\r\n");
}

/* test_data_dot_space_line_is_not_marker - ". " is an unstuffed line, not the end. */
static void test_data_dot_space_line_is_not_marker(void **state)
{
	struct result *r = decode(&data_reject, ". \r\n.\r\n");

	assert_int_equal(r->done, 1);
	assert_output(r, " \r\n");
}

/* test_data_smuggling_variants_do_not_end_message - bare CR / LF never make an end marker. */
static void test_data_smuggling_variants_do_not_end_message(void **state)
{
	static const char *const variants[] = {
	    "a\n.\nMAIL FROM:<x@y>\r\n",
	    "a\r.\rMAIL FROM:<x@y>\r\n",
	    "a\n.\r\nMAIL FROM:<x@y>\r\n",
	    "a\r\n.\nMAIL FROM:<x@y>\r\n",
	    "a\r\n.\rMAIL FROM:<x@y>\r\n",
	    ".\nMAIL FROM:<x@y>\r\n",
	    "a\r\n.\r\r\nMAIL FROM:<x@y>",
	    "a\r\r\n.\n\r\n",
	    "a\r\n\n.\r\n",
	    "a\n\r.\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		struct result *r = decode(&data_reject, variants[i]);

		assert_int_equal(r->done, 0);
		assert_int_equal(r->consumed, strlen(variants[i]));
		r = decode(&data_normalize, variants[i]);
		assert_int_equal(r->done, 0);
		assert_int_equal(r->consumed, strlen(variants[i]));
	}
}

/* test_data_real_marker_after_smuggling_attempt - the real marker still ends the message. */
static void test_data_real_marker_after_smuggling_attempt(void **state)
{
	struct result *r = decode(&data_normalize, "a\n.\nb\r\n.\r\n");

	assert_int_equal(r->done, 1);
	assert_int_equal(r->problems, 0);
	assert_output(r, "a\r\n.\r\nb\r\n");
}

/* test_data_bare_lf_rejected - a bare LF is flagged and stops the output. */
static void test_data_bare_lf_rejected(void **state)
{
	struct result *r = decode(&data_reject, "ab\ncd\r\n.\r\n");

	assert_int_equal(r->problems, DATA_FILTER_BARE_LF);
	assert_int_equal(r->done, 1);
	assert_output(r, "ab");
}

/* test_data_bare_cr_rejected - a bare CR is flagged and stops the output. */
static void test_data_bare_cr_rejected(void **state)
{
	struct result *r = decode(&data_reject, "ab\rcd\r\n.\r\n");

	assert_int_equal(r->problems, DATA_FILTER_BARE_CR);
	assert_int_equal(r->done, 1);
	assert_output(r, "ab");
}

/* test_data_bare_cr_before_crlf_rejected - CR CR LF holds a bare CR. */
static void test_data_bare_cr_before_crlf_rejected(void **state)
{
	struct result *r = decode(&data_reject, "ab\r\r\n.\r\n");

	assert_int_equal(r->problems, DATA_FILTER_BARE_CR);
	assert_int_equal(r->done, 1);
}

/* test_data_bare_eol_normalized_to_crlf - each bare CR and LF becomes CRLF. */
static void test_data_bare_eol_normalized_to_crlf(void **state)
{
	struct result *r = decode(&data_normalize, "a\nb\rc\r\r\nd\n\r\n.\r\n");

	assert_int_equal(r->problems, 0);
	assert_int_equal(r->done, 1);
	assert_output(r, "a\r\nb\r\nc\r\n\r\nd\r\n\r\n");
}

/* test_data_normalized_bare_eol_does_not_start_line - no unstuffing after a bare LF. */
static void test_data_normalized_bare_eol_does_not_start_line(void **state)
{
	struct result *r = decode(&data_normalize, "a\n..b\r\n.\r\n");

	assert_int_equal(r->done, 1);
	assert_output(r, "a\r\n..b\r\n");
}

/* test_data_dot_then_bare_cr_is_unstuffed - ".\r" then other text is no marker. */
static void test_data_dot_then_bare_cr_is_unstuffed(void **state)
{
	struct result *r = decode(&data_normalize, "a\r\n.\rb\r\n.\r\n");

	assert_int_equal(r->done, 1);
	assert_output(r, "a\r\n\r\nb\r\n");
}

/* test_data_nul_flagged - a NUL is flagged and stops the output. */
static void test_data_nul_flagged(void **state)
{
	struct result *r = decode_split(&data_reject, "ab\0cd\r\n.\r\n", 10, NULL, 0);

	assert_int_equal(r->problems, DATA_FILTER_NUL);
	assert_int_equal(r->done, 1);
	assert_output(r, "ab");
}

/* test_data_line_at_max_length_accepted - max_line counts the CRLF but not a stuffing dot. */
static void test_data_line_at_max_length_accepted(void **state)
{
	struct setup s = {DATA_FILTER_DATA, BARE_EOL_REJECT, 10, 0};
	struct result *r = decode(&s, "12345678\r\n..345678\r\n.\r\n");

	assert_int_equal(r->problems, 0);
	assert_output(r, "12345678\r\n.345678\r\n");
}

/* test_data_line_over_max_length_flagged - one more octet is too long. */
static void test_data_line_over_max_length_flagged(void **state)
{
	struct setup s = {DATA_FILTER_DATA, BARE_EOL_REJECT, 10, 0};
	struct result *r = decode(&s, "ok\r\n123456789\r\n.\r\n");

	assert_int_equal(r->problems, DATA_FILTER_LONG_LINE);
	assert_int_equal(r->done, 1);
	assert_output(r, "ok\r\n12345678");
}

/* test_data_unterminated_long_line_flagged_early - no need to wait for the CRLF. */
static void test_data_unterminated_long_line_flagged_early(void **state)
{
	struct setup s = {DATA_FILTER_DATA, BARE_EOL_REJECT, 10, 0};
	struct result *r = decode(&s, "12345678901234567890");

	assert_int_equal(r->problems, DATA_FILTER_LONG_LINE);
	assert_int_equal(r->done, 0);
}

/* test_data_normalized_bare_eol_ends_stored_line - line length restarts at a normalised break. */
static void test_data_normalized_bare_eol_ends_stored_line(void **state)
{
	struct setup s = {DATA_FILTER_DATA, BARE_EOL_NORMALIZE, 10, 0};
	struct result *r = decode(&s, "12345678\n12345678\r\n.\r\n");

	assert_int_equal(r->problems, 0);
}

/* test_data_long_line_ended_by_normalized_bare_lf - only LONG_LINE, no bogus size. */
static void test_data_long_line_ended_by_normalized_bare_lf(void **state)
{
	struct setup s = {DATA_FILTER_DATA, BARE_EOL_NORMALIZE, 3, 100};
	struct result *r = decode(&s, "ab\ncd\r\n.\r\n");

	assert_int_equal(r->problems, DATA_FILTER_LONG_LINE);
	assert_int_equal(r->done, 1);
	assert_output(r, "a");
}

/* test_data_too_big_flagged - output is cut exactly at max_size. */
static void test_data_too_big_flagged(void **state)
{
	struct setup s = {DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 8};
	struct result *r = decode(&s, "1234\r\n5678\r\n.\r\n");

	assert_int_equal(r->problems, DATA_FILTER_TOO_BIG);
	assert_int_equal(r->done, 1);
	assert_int_equal(r->size, 8);
	assert_output(r, "1234\r\n56");
}

/* test_data_exactly_max_size_accepted - max_size octets are allowed. */
static void test_data_exactly_max_size_accepted(void **state)
{
	struct setup s = {DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 6};
	struct result *r = decode(&s, "1234\r\n.\r\n");

	assert_int_equal(r->problems, 0);
	assert_int_equal(r->size, 6);
}

/* test_data_stuffing_dots_not_counted_in_size - size counts decoded octets. */
static void test_data_stuffing_dots_not_counted_in_size(void **state)
{
	struct setup s = {DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 6};
	struct result *r = decode(&s, "..234\r\n.\r\n");

	assert_int_equal(r->problems, 0);
	assert_output(r, ".234\r\n");
}

/* test_data_too_big_still_counted_past_other_problem - a large message is reported as such. */
static void test_data_too_big_still_counted_past_other_problem(void **state)
{
	struct setup s = {DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 10};
	struct result *r = decode(&s, "a\nbcdefghijklmnop\r\n.\r\n");

	assert_int_equal(r->problems, DATA_FILTER_BARE_LF | DATA_FILTER_TOO_BIG);
	assert_int_equal(r->done, 1);
}

/* test_data_problem_keeps_scanning_for_marker - after a problem, input is still consumed. */
static void test_data_problem_keeps_scanning_for_marker(void **state)
{
	const char *in = "x\0y\n\r\n..\r\n.\r\nRSET\r\n";
	struct result *r = decode_split(&data_reject, in, 19, NULL, 0);

	assert_int_equal(r->problems, DATA_FILTER_NUL | DATA_FILTER_BARE_LF);
	assert_int_equal(r->done, 1);
	assert_int_equal(r->consumed, 13);
}

/* test_data_crlf_split_across_chunks - CRLF and the marker may be split anywhere. */
static void test_data_crlf_split_across_chunks(void **state)
{
	struct data_filter df;
	struct capture c = {.len = 0};

	data_filter_init(&df, DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 0, capture_sink, &c);
	assert_int_equal(data_filter_feed(&df, "ab\r", 3), 3);
	assert_int_equal(data_filter_feed(&df, "\n.", 2), 2);
	assert_int_equal(data_filter_feed(&df, "\r", 1), 1);
	assert_int_equal(df.done, 0);
	assert_int_equal(data_filter_feed(&df, "\nNOOP", 5), 1);
	assert_int_equal(df.done, 1);
	assert_int_equal(df.problems, 0);
	assert_int_equal(c.len, 4);
	assert_memory_equal(c.buf, "ab\r\n", 4);
}

/* test_data_held_cr_then_other_byte_is_bare - a CR ending a chunk is bare if no LF follows. */
static void test_data_held_cr_then_other_byte_is_bare(void **state)
{
	struct data_filter df;
	struct capture c = {.len = 0};

	data_filter_init(&df, DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 0, capture_sink, &c);
	data_filter_feed(&df, "a\r\n.\r", 5);
	data_filter_feed(&df, "\r\n.\r\n", 5);
	assert_int_equal(df.done, 1);
	assert_int_equal(df.problems, DATA_FILTER_BARE_CR);
}

/* test_data_chunking_does_not_change_result - byte by byte and random splits match one piece. */
static void test_data_chunking_does_not_change_result(void **state)
{
	static const char *const inputs[] = {
	    "Subject: t\r\n\r\n..dot\r\nline\r\n.\r\nNEXT",
	    "a\r\rb\n\nc\r\n.\r\r\n.\n.\r\n",
	    "\r\n.\r\r\n.\r\n",
	    ".\r.\n..\r\n.\r\n",
	    "x\r\n.\r",
	    "12345678901234\r\n.\r\n",
	    "abcdefghij\r\nklm\r\n.\r\n",
	};
	static const struct setup setups[] = {
	    {DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 0},
	    {DATA_FILTER_DATA, BARE_EOL_NORMALIZE, 0, 0},
	    {DATA_FILTER_DATA, BARE_EOL_REJECT, 8, 12},
	    {DATA_FILTER_DATA, BARE_EOL_NORMALIZE, 6, 9},
	    {DATA_FILTER_BDAT, BARE_EOL_REJECT, 0, 0},
	    {DATA_FILTER_BDAT, BARE_EOL_NORMALIZE, 5, 10},
	};
	size_t i, j;

	srand(1);
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
		for (j = 0; j < sizeof(setups) / sizeof(setups[0]); j++)
			assert_same_any_chunking(&setups[j], inputs[i], strlen(inputs[i]),
			                         setups[j].mode == DATA_FILTER_BDAT);
}

/* test_data_sink_gets_runs_not_bytes - a 100 KB message reaches the sink in a run. */
static void test_data_sink_gets_runs_not_bytes(void **state)
{
	static char msg[100 * 1024 + 8];
	struct result *r;
	size_t i;

	for (i = 0; i < 100 * 1024; i++)
		msg[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : 'x';
	memcpy(msg + 100 * 1024, ".\r\n", 4);
	r = decode(&data_reject, msg);
	assert_int_equal(r->done, 1);
	assert_int_equal(r->out.len, 100 * 1024);
	assert_true(r->out.calls <= 2);
}

/* test_bdat_passes_dots_and_marker_through - BDAT neither unstuffs nor ends at a marker. */
static void test_bdat_passes_dots_and_marker_through(void **state)
{
	struct result *r = decode_split(&bdat_reject, "..a\r\n.\r\nb\r\n", 12, NULL, 0);

	assert_int_equal(r->done, 0);
	assert_int_equal(r->consumed, 12);
	assert_output(r, "..a\r\n.\r\nb\r\n");
}

/* test_bdat_finish_terminates_last_line - an unterminated last line gets a CRLF. */
static void test_bdat_finish_terminates_last_line(void **state)
{
	struct result *r = decode(&bdat_reject, "a\r\nlast");

	assert_int_equal(r->problems, 0);
	assert_output(r, "a\r\nlast\r\n");
}

/* test_bdat_finish_leaves_terminated_content_alone - no CRLF added to terminated or empty content.
 */
static void test_bdat_finish_leaves_terminated_content_alone(void **state)
{
	assert_output(decode(&bdat_reject, "a\r\n"), "a\r\n");
	assert_output(decode(&bdat_reject, ""), "");
}

/* test_bdat_finish_pending_cr_is_bare - a final CR is bare: flagged, or normalised once. */
static void test_bdat_finish_pending_cr_is_bare(void **state)
{
	struct result *r = decode(&bdat_reject, "a\r");

	assert_int_equal(r->problems, DATA_FILTER_BARE_CR);
	r = decode(&bdat_normalize, "a\r");
	assert_int_equal(r->problems, 0);
	assert_output(r, "a\r\n");
}

/* test_bdat_normalized_bare_lf_at_end_gets_one_crlf - no second CRLF after a normalised LF. */
static void test_bdat_normalized_bare_lf_at_end_gets_one_crlf(void **state)
{
	struct result *r = decode(&bdat_normalize, "a\n");

	assert_int_equal(r->problems, 0);
	assert_output(r, "a\r\n");
}

/* test_bdat_bare_lf_rejected - BDAT checks bare LF too. */
static void test_bdat_bare_lf_rejected(void **state)
{
	struct result *r = decode(&bdat_reject, "a\nb\r\n");

	assert_int_equal(r->problems, DATA_FILTER_BARE_LF);
	assert_output(r, "a");
}

/* test_bdat_crlf_split_across_chunks - a CRLF split between chunks is a real one. */
static void test_bdat_crlf_split_across_chunks(void **state)
{
	struct data_filter df;
	struct capture c = {.len = 0};

	data_filter_init(&df, DATA_FILTER_BDAT, BARE_EOL_REJECT, 0, 0, capture_sink, &c);
	assert_int_equal(data_filter_feed(&df, "a\r", 2), 2);
	assert_int_equal(data_filter_feed(&df, "\nb", 2), 2);
	data_filter_finish(&df);
	assert_int_equal(df.problems, 0);
	assert_int_equal(c.len, 6);
	assert_memory_equal(c.buf, "a\r\nb\r\n", 6);
}

/* test_bdat_finish_line_counts_towards_size - the added CRLF counts towards max_size. */
static void test_bdat_finish_line_counts_towards_size(void **state)
{
	struct setup s = {DATA_FILTER_BDAT, BARE_EOL_REJECT, 0, 4};
	struct result *r = decode(&s, "abc");

	assert_int_equal(r->problems, DATA_FILTER_TOO_BIG);
}

/* test_reply_none_without_problem - a clean message has no reply. */
static void test_reply_none_without_problem(void **state)
{
	struct data_filter df;

	data_filter_init(&df, DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 0, NULL, NULL);
	assert_null(data_filter_reply(&df));
}

/* test_reply_for_each_problem - each problem maps to its code and enhanced code. */
static void test_reply_for_each_problem(void **state)
{
	struct data_filter df;

	data_filter_init(&df, DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 0, NULL, NULL);
	df.problems = DATA_FILTER_BARE_CR;
	assert_int_equal(strncmp(data_filter_reply(&df), "550 5.6.0 ", 10), 0);
	df.problems = DATA_FILTER_BARE_LF;
	assert_int_equal(strncmp(data_filter_reply(&df), "550 5.6.0 ", 10), 0);
	df.problems = DATA_FILTER_NUL;
	assert_int_equal(strncmp(data_filter_reply(&df), "550 5.6.0 ", 10), 0);
	df.problems = DATA_FILTER_LONG_LINE;
	assert_int_equal(strncmp(data_filter_reply(&df), "550 5.6.0 ", 10), 0);
	df.problems = DATA_FILTER_TOO_BIG;
	assert_int_equal(strncmp(data_filter_reply(&df), "552 5.3.4 ", 10), 0);
}

/* test_reply_too_big_takes_priority - 552 wins over content problems. */
static void test_reply_too_big_takes_priority(void **state)
{
	struct data_filter df;

	data_filter_init(&df, DATA_FILTER_DATA, BARE_EOL_REJECT, 0, 0, NULL, NULL);
	df.problems = DATA_FILTER_BARE_LF | DATA_FILTER_NUL | DATA_FILTER_TOO_BIG;
	assert_int_equal(strncmp(data_filter_reply(&df), "552 5.3.4 ", 10), 0);
}

/* main - run the tests. */
int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_data_message_ends_at_marker),
	    cmocka_unit_test(test_data_lone_marker_is_empty_message),
	    cmocka_unit_test(test_data_empty_first_line_then_marker),
	    cmocka_unit_test(test_data_bytes_after_marker_left_for_next_command),
	    cmocka_unit_test(test_data_feed_after_done_consumes_nothing),
	    cmocka_unit_test(test_data_leading_dot_removed),
	    cmocka_unit_test(test_data_dot_space_line_is_not_marker),
	    cmocka_unit_test(test_data_smuggling_variants_do_not_end_message),
	    cmocka_unit_test(test_data_real_marker_after_smuggling_attempt),
	    cmocka_unit_test(test_data_bare_lf_rejected),
	    cmocka_unit_test(test_data_bare_cr_rejected),
	    cmocka_unit_test(test_data_bare_cr_before_crlf_rejected),
	    cmocka_unit_test(test_data_bare_eol_normalized_to_crlf),
	    cmocka_unit_test(test_data_normalized_bare_eol_does_not_start_line),
	    cmocka_unit_test(test_data_dot_then_bare_cr_is_unstuffed),
	    cmocka_unit_test(test_data_nul_flagged),
	    cmocka_unit_test(test_data_line_at_max_length_accepted),
	    cmocka_unit_test(test_data_line_over_max_length_flagged),
	    cmocka_unit_test(test_data_unterminated_long_line_flagged_early),
	    cmocka_unit_test(test_data_normalized_bare_eol_ends_stored_line),
	    cmocka_unit_test(test_data_long_line_ended_by_normalized_bare_lf),
	    cmocka_unit_test(test_data_too_big_flagged),
	    cmocka_unit_test(test_data_exactly_max_size_accepted),
	    cmocka_unit_test(test_data_stuffing_dots_not_counted_in_size),
	    cmocka_unit_test(test_data_too_big_still_counted_past_other_problem),
	    cmocka_unit_test(test_data_problem_keeps_scanning_for_marker),
	    cmocka_unit_test(test_data_crlf_split_across_chunks),
	    cmocka_unit_test(test_data_held_cr_then_other_byte_is_bare),
	    cmocka_unit_test(test_data_chunking_does_not_change_result),
	    cmocka_unit_test(test_data_sink_gets_runs_not_bytes),
	    cmocka_unit_test(test_bdat_passes_dots_and_marker_through),
	    cmocka_unit_test(test_bdat_finish_terminates_last_line),
	    cmocka_unit_test(test_bdat_finish_leaves_terminated_content_alone),
	    cmocka_unit_test(test_bdat_finish_pending_cr_is_bare),
	    cmocka_unit_test(test_bdat_normalized_bare_lf_at_end_gets_one_crlf),
	    cmocka_unit_test(test_bdat_bare_lf_rejected),
	    cmocka_unit_test(test_bdat_crlf_split_across_chunks),
	    cmocka_unit_test(test_bdat_finish_line_counts_towards_size),
	    cmocka_unit_test(test_reply_none_without_problem),
	    cmocka_unit_test(test_reply_for_each_problem),
	    cmocka_unit_test(test_reply_too_big_takes_priority),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
