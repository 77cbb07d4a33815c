/*
 * data_filter.c - streaming decoder of message content for DATA and BDAT:
 * dot-unstuffing, the end-of-data marker, and the checks on bare CR / LF,
 * NUL, line length and size.
 *
 * Only a CR immediately followed by LF ends a line. Everything else about a
 * line break (bare CR, bare LF, a CR waiting at the end of a chunk) is
 * decided by the same rules whatever the chunking, so that the decoded
 * output and the problems found never depend on how the bytes arrived.
 * Output goes to the sink as runs of contiguous input bytes; only dropped
 * bytes (stuffing dots, held CRs) and inserted ones (normalised line breaks)
 * break a run.
 *
 * max_line and max_size of 0 mean no limit.
 */
#include <string.h>

#include "data_filter.h"

enum df_state {
	DF_BOL,    /* at the start of a line: data start or after a real CRLF */
	DF_MID,    /* inside a line */
	DF_CR,     /* a CR ended the last chunk; the next byte tells if it is bare */
	DF_DOT,    /* a '.' began the line (DATA); it has been dropped */
	DF_DOT_CR, /* ".\r" began the line and ended the last chunk */
	DF_DONE,   /* the end marker has been consumed */
};

/* One call of data_filter_feed: the chunk, and where its pending run starts. */
struct df_pass {
	struct data_filter *df;
	const char *in;
	size_t len;
	size_t run; /* in[run..] up to the scan position is still to be emitted */
};

/* data_filter_init - ready df for a new message. */
void data_filter_init(struct data_filter *df, enum data_filter_mode mode,
                      enum bare_eol_policy bare_eol, size_t max_line, uint64_t max_size,
                      data_filter_sink sink, void *sink_arg)
{
	memset(df, 0, sizeof(*df));
	df->mode = mode;
	df->bare_eol = bare_eol;
	df->max_line = max_line;
	df->max_size = max_size;
	df->sink = sink;
	df->sink_arg = sink_arg;
	df->state = DF_BOL;
}

/*
 * df_emit - hand n decoded bytes to the sink. Past a problem they are only
 * counted, so that an oversized message is still reported as such; a run
 * that crosses max_size is cut exactly at it, which keeps the output
 * independent of where the runs happened to break.
 */
static void df_emit(struct data_filter *df, const char *buf, size_t n)
{
	size_t allowed = n;

	if (n == 0)
		return;
	if (df->max_size) {
		uint64_t room = df->decoded < df->max_size ? df->max_size - df->decoded : 0;

		if (room < n)
			allowed = (size_t)room;
	}
	if (df->problems == 0 && allowed > 0) {
		if (df->sink)
			df->sink(df->sink_arg, buf, allowed);
		df->size += allowed;
	}
	df->decoded += n;
	if (allowed < n)
		df->problems |= DATA_FILTER_TOO_BIG;
}

/*
 * df_flush - emit the pending run up to (not including) in[to]. A problem
 * at a byte that was already left out (a bare CR / LF) finds the run
 * starting past it, with nothing to emit.
 */
static void df_flush(struct df_pass *ps, size_t to)
{
	if (to <= ps->run)
		return;
	df_emit(ps->df, ps->in + ps->run, to - ps->run);
	ps->run = to;
}

/* df_drop - emit the run before in[pos] and leave in[pos] out of the output. */
static void df_drop(struct df_pass *ps, size_t pos)
{
	df_flush(ps, pos);
	ps->run = pos + 1;
}

/* df_problem - record a problem found at in[pos]; output stops right there. */
static void df_problem(struct df_pass *ps, size_t pos, unsigned problem)
{
	df_flush(ps, pos);
	ps->df->problems |= problem;
}

/* df_content - account for n line bytes at in[pos], checking the line length. */
static void df_content(struct df_pass *ps, size_t pos, size_t n)
{
	struct data_filter *df = ps->df;

	if (df->max_line) {
		size_t room = df->max_line > df->line_len + 2 ? df->max_line - 2 - df->line_len : 0;

		if (n > room)
			df_problem(ps, pos + room, DATA_FILTER_LONG_LINE);
	}
	df->line_len += n;
}

/* df_line_end - a line ends at in[pos]; its CRLF counts towards max_line. */
static void df_line_end(struct df_pass *ps, size_t pos)
{
	struct data_filter *df = ps->df;

	if (df->max_line && df->line_len + 2 > df->max_line)
		df_problem(ps, pos, DATA_FILTER_LONG_LINE);
	df->line_len = 0;
}

/*
 * df_bare - a bare CR or LF at in[pos], already left out of the run. When
 * normalised it ends the stored line, but it never starts a line for the
 * purpose of unstuffing or of the end marker: that is what keeps "\n.\n"
 * and its kin from ending the message here when a downstream parser might
 * not agree (SMTP smuggling).
 */
static void df_bare(struct df_pass *ps, size_t pos, unsigned problem)
{
	struct data_filter *df = ps->df;

	if (df->bare_eol == BARE_EOL_NORMALIZE) {
		df_line_end(ps, pos);
		df_emit(df, "\r\n", 2);
	} else {
		df->problems |= problem;
		df->line_len = 0;
	}
}

/* df_plain_len - how many bytes at p need no attention: not CR, LF or NUL. */
static size_t df_plain_len(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] != '\r' && p[i] != '\n' && p[i] != '\0')
		i++;
	return i;
}

/* df_end - the end marker's last byte is in[next - 1]. */
static size_t df_end(struct df_pass *ps, size_t next)
{
	ps->run = next;
	ps->df->state = DF_DONE;
	ps->df->done = 1;
	return next;
}

/* df_mid_cr - a CR inside a line at in[i]: a line end, bare, or held. */
static size_t df_mid_cr(struct df_pass *ps, size_t i)
{
	struct data_filter *df = ps->df;

	if (i + 1 == ps->len) {
		df_drop(ps, i);
		df->state = DF_CR;
		return i + 1;
	}
	if (ps->in[i + 1] == '\n') {
		df_line_end(ps, i);
		df->state = DF_BOL;
		return i + 2;
	}
	df_drop(ps, i);
	df_bare(ps, i, DATA_FILTER_BARE_CR);
	return i + 1;
}

/* df_mid - scan inside a line from in[i]; returns where to go on. */
static size_t df_mid(struct df_pass *ps, size_t i)
{
	size_t n = df_plain_len(ps->in + i, ps->len - i);

	if (n) {
		df_content(ps, i, n);
		i += n;
		if (i == ps->len)
			return i;
	}
	switch (ps->in[i]) {
	case '\r':
		return df_mid_cr(ps, i);
	case '\n':
		df_drop(ps, i);
		df_bare(ps, i, DATA_FILTER_BARE_LF);
		return i + 1;
	default:
		df_problem(ps, i, DATA_FILTER_NUL);
		df_content(ps, i, 1);
		return i + 1;
	}
}

/* df_bol - at a line start: drop a stuffing dot in DATA mode. */
static size_t df_bol(struct df_pass *ps, size_t i)
{
	struct data_filter *df = ps->df;

	if (df->mode == DATA_FILTER_DATA && ps->in[i] == '.') {
		df_drop(ps, i);
		df->state = DF_DOT;
		return i + 1;
	}
	df->state = DF_MID;
	return i;
}

/* df_dot - after a line-starting dot: the end marker if CRLF follows. */
static size_t df_dot(struct df_pass *ps, size_t i)
{
	struct data_filter *df = ps->df;

	if (ps->in[i] != '\r') {
		df->state = DF_MID;
		return i;
	}
	if (i + 1 == ps->len) {
		df_drop(ps, i);
		df->state = DF_DOT_CR;
		return i + 1;
	}
	if (ps->in[i + 1] == '\n')
		return df_end(ps, i + 2);
	/* The dot was stuffing; the CR is bare and df_mid says so. */
	df->state = DF_MID;
	return i;
}

/* df_dot_cr - ".\r" ended the last chunk: an LF now ends the message. */
static size_t df_dot_cr(struct df_pass *ps, size_t i)
{
	if (ps->in[i] == '\n')
		return df_end(ps, i + 1);
	ps->df->state = DF_CR;
	return i;
}

/* df_held_cr - a CR ended the last chunk; in[i] tells what it was. */
static size_t df_held_cr(struct df_pass *ps, size_t i)
{
	struct data_filter *df = ps->df;

	if (ps->in[i] == '\n') {
		df_line_end(ps, i);
		df_emit(df, "\r\n", 2);
		ps->run = i + 1;
		df->state = DF_BOL;
		return i + 1;
	}
	df_bare(ps, i, DATA_FILTER_BARE_CR);
	df->state = DF_MID;
	return i;
}

/* data_filter_feed - decode len bytes from in. */
size_t data_filter_feed(struct data_filter *df, const char *in, size_t len)
{
	struct df_pass ps = {df, in, len, 0};
	size_t i = 0;

	while (i < len && df->state != DF_DONE) {
		switch (df->state) {
		case DF_BOL:
			i = df_bol(&ps, i);
			break;
		case DF_DOT:
			i = df_dot(&ps, i);
			break;
		case DF_DOT_CR:
			i = df_dot_cr(&ps, i);
			break;
		case DF_CR:
			i = df_held_cr(&ps, i);
			break;
		default:
			i = df_mid(&ps, i);
			break;
		}
	}
	df_flush(&ps, i);
	return i;
}

/* data_filter_finish - the BDAT content is complete: settle its last line. */
void data_filter_finish(struct data_filter *df)
{
	struct df_pass ps = {df, "", 0, 0};

	if (df->mode != DATA_FILTER_BDAT)
		return;
	if (df->state == DF_CR) {
		df_bare(&ps, 0, DATA_FILTER_BARE_CR);
		df->state = DF_MID;
	}
	/* line_len is 0 right after a normalised bare CR or LF: it is terminated. */
	if (df->state == DF_MID && df->line_len > 0) {
		df_line_end(&ps, 0);
		df_emit(df, "\r\n", 2);
	}
	df->state = DF_BOL;
}

/* data_filter_reply - the reply for df->problems (NULL when there is none). */
const char *data_filter_reply(const struct data_filter *df)
{
	if (df->problems & DATA_FILTER_TOO_BIG)
		return "552 5.3.4 Message size exceeds fixed maximum message size";
	if (df->problems & (DATA_FILTER_BARE_CR | DATA_FILTER_BARE_LF))
		return "550 5.6.0 Message contains bare CR or LF characters (see RFC 5321 2.3.8)";
	if (df->problems & DATA_FILTER_NUL)
		return "550 5.6.0 Message contains NUL characters";
	if (df->problems & DATA_FILTER_LONG_LINE)
		return "550 5.6.0 Message contains lines that are too long";
	return NULL;
}
