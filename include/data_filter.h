/*
 * data_filter.h - streaming decoder for message content (DATA and BDAT).
 *
 * Bytes arrive in chunks of any size; the filter keeps its state across
 * chunks. In DATA mode it removes dot-stuffing and finds the end of the
 * message, which is only ever CR LF "." CR LF with real CRLF pairs: a bare CR
 * or bare LF never starts or ends a line (the SMTP smuggling class,
 * CVE-2023-51764). In BDAT mode the caller feeds exactly the chunk's bytes and
 * nothing is unstuffed.
 *
 * In both modes it checks the content: bare CR / bare LF, NUL bytes, lines
 * longer than max_line (CRLF included), more than max_size decoded bytes.
 * The first problem sets a flag and from then on output stops, but DATA
 * input is still consumed up to the end marker so the session stays in step
 * with the client.
 */
#ifndef VSMTPD_DATA_FILTER_H
#define VSMTPD_DATA_FILTER_H

#include <stddef.h>
#include <stdint.h>

enum data_filter_mode { DATA_FILTER_DATA, DATA_FILTER_BDAT };

/* What to do with a message whose DATA holds a bare CR or bare LF. */
enum bare_eol_policy {
	BARE_EOL_REJECT,    /* refuse the message with 550 5.6.0 (default) */
	BARE_EOL_NORMALIZE, /* store it with every bare CR / LF turned into CRLF */
};

/* Problems found; several may be set. */
#define DATA_FILTER_BARE_CR 0x01
#define DATA_FILTER_BARE_LF 0x02
#define DATA_FILTER_NUL 0x04
#define DATA_FILTER_LONG_LINE 0x08
#define DATA_FILTER_TOO_BIG 0x10

/* Called with decoded bytes, in order; arg is the one given to init. */
typedef void (*data_filter_sink)(void *arg, const char *buf, size_t len);

struct data_filter {
	/* set by data_filter_init */
	enum data_filter_mode mode;
	enum bare_eol_policy bare_eol;
	size_t max_line;
	uint64_t max_size;
	data_filter_sink sink;
	void *sink_arg;

	/* results */
	unsigned problems; /* DATA_FILTER_* bits */
	int done;          /* DATA: the end marker was seen */
	uint64_t size;     /* decoded bytes handed to the sink */

	/* decoder state, private */
	int state;
	size_t line_len;
	uint64_t decoded; /* decoded bytes, counted on past a problem */
};

/* data_filter_init - ready df for a new message. */
void data_filter_init(struct data_filter *df, enum data_filter_mode mode,
		      enum bare_eol_policy bare_eol, size_t max_line, uint64_t max_size,
		      data_filter_sink sink, void *sink_arg);

/*
 * data_filter_feed - decode len bytes from in.
 *
 * Returns how many bytes were consumed: all of them, except in DATA mode when
 * the end marker is reached, where it stops right after the marker's LF and
 * sets done. Bytes after that belong to the next command.
 */
size_t data_filter_feed(struct data_filter *df, const char *in, size_t len);

/*
 * data_filter_finish - the content is complete (BDAT LAST). A pending CR is a
 * bare CR; a last line without CRLF gets one, as RFC 5322 requires.
 */
void data_filter_finish(struct data_filter *df);

/* data_filter_reply - the reply for df->problems (NULL when there is none). */
const char *data_filter_reply(const struct data_filter *df);

#endif
