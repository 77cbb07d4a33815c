/*
 * fuzz_data_filter.c - libFuzzer target for the DATA / BDAT content decoder.
 *
 * The first four input bytes choose the mode, the bare CR / LF policy, the
 * limits and the chunking; the rest is the content. The streaming decoder
 * is run on it whole, byte by byte and in random pieces, and each run must
 * agree exactly with a plain reference decoder that sees the whole input at
 * once: same bytes consumed, same end-of-data decision, same problems and
 * same output. Independent checks follow from the RFC directly: the end is
 * only ever a CRLF "." CRLF, and normalised output has no bare CR or LF.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_filter.h"

#define CONTENT_MAX 4096
#define OUT_MAX (2 * CONTENT_MAX + 8)

/* check - abort (so libFuzzer reports it) when an invariant does not hold. */
static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

/* The decoding parameters drawn from the input's first bytes. */
struct params {
	enum data_filter_mode mode;
	enum bare_eol_policy bare_eol;
	size_t max_line;
	uint64_t max_size;
	uint32_t seed;
};

/* What a decoder produced. */
struct outcome {
	char out[OUT_MAX];
	size_t out_len;
	size_t consumed;
	unsigned problems;
	int done;
};

/* sink - append decoded bytes to an outcome. */
static void sink(void *arg, const char *buf, size_t len)
{
	struct outcome *o = arg;

	check(len > 0, "empty sink call");
	check(o->out_len + len <= sizeof(o->out), "output larger than possible");
	memcpy(o->out + o->out_len, buf, len);
	o->out_len += len;
}

/* The reference decoder's running state. */
struct ref {
	const struct params *p;
	struct outcome *o;
	size_t line_len;
	uint64_t total;
};

/* ref_byte - one decoded byte: size limit first, then output if no problem yet. */
static void ref_byte(struct ref *r, char c)
{
	if (r->o->problems == 0 && (r->p->max_size == 0 || r->total < r->p->max_size))
		r->o->out[r->o->out_len++] = c;
	r->total++;
	if (r->p->max_size && r->total > r->p->max_size)
		r->o->problems |= DATA_FILTER_TOO_BIG;
}

/* ref_content - one byte of a line. */
static void ref_content(struct ref *r, char c)
{
	if (c == '\0')
		r->o->problems |= DATA_FILTER_NUL;
	if (r->p->max_line && r->line_len + 3 > r->p->max_line)
		r->o->problems |= DATA_FILTER_LONG_LINE;
	ref_byte(r, c);
	r->line_len++;
}

/* ref_line_end - a CRLF goes out, real or normalised. */
static void ref_line_end(struct ref *r)
{
	if (r->p->max_line && r->line_len + 2 > r->p->max_line)
		r->o->problems |= DATA_FILTER_LONG_LINE;
	ref_byte(r, '\r');
	ref_byte(r, '\n');
	r->line_len = 0;
}

/* ref_bare - a bare CR or LF under the policy. */
static void ref_bare(struct ref *r, unsigned problem)
{
	if (r->p->bare_eol == BARE_EOL_NORMALIZE) {
		ref_line_end(r);
	} else {
		r->o->problems |= problem;
		r->line_len = 0;
	}
}

/*
 * reference - decode the whole input at once, by the rules of RFC 5321
 * 4.1.1.4 and 2.3.8 as the header states them, one byte at a time.
 */
static void reference(const struct params *p, const char *in, size_t n, struct outcome *o)
{
	struct ref r = {p, o, 0, 0};
	size_t i = 0;
	int bol = 1, pending = 0, unterminated = 0;

	memset(o, 0, sizeof(*o));
	while (i < n) {
		if (p->mode == DATA_FILTER_DATA && bol && in[i] == '.') {
			if (n - i >= 3 && in[i + 1] == '\r' && in[i + 2] == '\n') {
				o->done = 1;
				i += 3;
				break;
			}
			i++;
			bol = 0;
			continue;
		}
		bol = 0;
		if (in[i] == '\r') {
			if (i + 1 == n) {
				pending = 1;
				i++;
				break;
			}
			if (in[i + 1] == '\n') {
				ref_line_end(&r);
				unterminated = 0;
				i += 2;
				bol = 1;
				continue;
			}
			ref_bare(&r, DATA_FILTER_BARE_CR);
			unterminated = 0;
		} else if (in[i] == '\n') {
			ref_bare(&r, DATA_FILTER_BARE_LF);
			unterminated = 0;
		} else {
			ref_content(&r, in[i]);
			unterminated = 1;
		}
		i++;
	}
	o->consumed = i;
	if (p->mode != DATA_FILTER_BDAT)
		return;
	if (pending) {
		ref_bare(&r, DATA_FILTER_BARE_CR);
		unterminated = 0;
	}
	if (unterminated)
		ref_line_end(&r);
}

/* next_random - xorshift32, so a crash reproduces from its input alone. */
static uint32_t next_random(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/*
 * stream - run the real decoder over in, fed in pieces: whole when step is
 * 0, of step bytes otherwise, or of random sizes when step is (size_t)-1.
 */
static void stream(const struct params *p, const char *in, size_t n, size_t step, struct outcome *o)
{
	struct data_filter df;
	uint32_t rnd = p->seed | 1;
	size_t off = 0;

	memset(o, 0, sizeof(*o));
	data_filter_init(&df, p->mode, p->bare_eol, p->max_line, p->max_size, sink, o);
	while (off < n) {
		size_t piece = step == 0 ? n : step == (size_t)-1 ? next_random(&rnd) % 9 : step;
		size_t used;

		if (piece > n - off)
			piece = n - off;
		used = data_filter_feed(&df, in + off, piece);
		check(used <= piece, "consumed more than given");
		check(!df.done || p->mode == DATA_FILTER_DATA, "BDAT never ends by itself");
		check(used == piece || df.done, "stopped short without the end marker");
		off += used;
		if (df.done)
			break;
	}
	if (df.done)
		check(data_filter_feed(&df, in, n) == 0, "consumed after the end");
	if (p->mode == DATA_FILTER_BDAT)
		data_filter_finish(&df);
	check(df.size == o->out_len, "size counts what the sink got");
	check((df.problems == 0) == (data_filter_reply(&df) == NULL), "reply iff problem");
	o->consumed = off;
	o->problems = df.problems;
	o->done = df.done;
}

/* same_outcome - two runs agree on everything. */
static void same_outcome(const struct outcome *a, const struct outcome *b, const char *what)
{
	check(a->consumed == b->consumed, what);
	check(a->done == b->done, what);
	check(a->problems == b->problems, what);
	check(a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0, what);
}

/* check_end_marker - done means the consumed input ends with [CRLF] "." CRLF. */
static void check_end_marker(const char *in, const struct outcome *o)
{
	size_t c = o->consumed;

	if (!o->done)
		return;
	check(c >= 3 && memcmp(in + c - 3, ".\r\n", 3) == 0, "marker is .CRLF");
	check(c == 3 || (c >= 5 && in[c - 5] == '\r' && in[c - 4] == '\n'),
	      "marker follows a real CRLF");
}

/* check_normalized - a normalised output has every CR and LF in a CRLF pair. */
static void check_normalized(const struct params *p, const struct outcome *o)
{
	size_t i, n = o->out_len;

	if (p->bare_eol != BARE_EOL_NORMALIZE)
		return;
	/* A size cut may split the last CRLF. */
	if (o->problems && n > 0 && o->out[n - 1] == '\r')
		n--;
	for (i = 0; i < n; i++) {
		if (o->out[i] == '\r')
			check(i + 1 < n && o->out[i + 1] == '\n', "bare CR in normalised output");
		if (o->out[i] == '\n')
			check(i > 0 && o->out[i - 1] == '\r', "bare LF in normalised output");
	}
	check(!(o->problems & (DATA_FILTER_BARE_CR | DATA_FILTER_BARE_LF)),
	      "bare flag under normalisation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput - decode one content several ways and compare. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outcome want, got;
	struct params p;
	const char *in;
	size_t n;

	if (size < 4)
		return 0;
	p.mode = (data[0] & 1) ? DATA_FILTER_BDAT : DATA_FILTER_DATA;
	p.bare_eol = (data[0] & 2) ? BARE_EOL_NORMALIZE : BARE_EOL_REJECT;
	p.max_line = (data[0] & 4) ? data[1] : 0;
	p.max_size = (data[0] & 8) ? (uint64_t)data[2] * 4 : 0;
	p.seed = (uint32_t)data[3] * 2654435761u;
	in = (const char *)data + 4;
	n = size - 4 > CONTENT_MAX ? CONTENT_MAX : size - 4;

	reference(&p, in, n, &want);
	check_end_marker(in, &want);
	check_normalized(&p, &want);

	stream(&p, in, n, 0, &got);
	same_outcome(&want, &got, "whole feed differs from reference");
	stream(&p, in, n, 1, &got);
	same_outcome(&want, &got, "byte-by-byte feed differs from reference");
	stream(&p, in, n, (size_t)-1, &got);
	same_outcome(&want, &got, "random pieces differ from reference");
	stream(&p, in, n, 2, &got);
	same_outcome(&want, &got, "two-byte pieces differ from reference");
	return 0;
}
