/*
 * mta_reply.c - reading the peer's replies, and the connection's events.
 *
 * Input is taken a line at a time (at most MTA_LINE_MAX bytes, a reply at
 * most MTA_REPLY_LINES lines) and joined into c->reply; a whole reply goes
 * to the state it answers. The bufferevent's write, event and the deadline
 * callbacks are here too: what a drained output, a closed connection or a
 * timeout means depends on what was under way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "mta.h"
#include "mta_internal.h"
#include "smtp_parse.h"
#include "tls_server.h"

/* ---- reading replies ---------------------------------------------------- */

/* mta_line_get - the next line of input into buf; 1 got one, 0 needs more, -1 too long. */
static int mta_line_get(struct evbuffer *in, char *buf, size_t *len)
{
	struct evbuffer_ptr p;
	size_t eol_len = 0, i;

	p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (p.pos < 0)
		return evbuffer_get_length(in) > MTA_LINE_MAX ? -1 : 0;
	if ((size_t)p.pos > MTA_LINE_MAX)
		return -1;
	evbuffer_remove(in, buf, (size_t)p.pos);
	evbuffer_drain(in, eol_len);
	*len = (size_t)p.pos;
	buf[*len] = '\0';
	/* Replies end up in logs and bounces: printable ASCII only. */
	for (i = 0; i < *len; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (ch < 0x20 || ch == 0x7f)
			buf[i] = ' ';
		else if (ch >= 0x80)
			buf[i] = '?';
	}
	return 1;
}

/* mta_enhanced_parse - "5.1.1" at the start of text when its class matches code. */
static size_t mta_enhanced_parse(const char *text, int code, char *out, size_t outlen)
{
	const char *p = text;
	int part;

	if (*p != '0' + code / 100)
		return 0;
	p++;
	for (part = 0; part < 2; part++) {
		size_t n = 0;

		if (*p++ != '.')
			return 0;
		while (p[n] >= '0' && p[n] <= '9')
			n++;
		if (n < 1 || n > 3)
			return 0;
		p += n;
	}
	if (*p != '\0' && *p != ' ')
		return 0;
	if (out != NULL)
		snprintf(out, outlen, "%.*s", (int)(p - text), text);
	return (size_t)(p - text);
}

/* mta_reply_append - add s to the joined text of the reply, as room allows. */
static void mta_reply_append(struct mta_reply *r, const char *s)
{
	size_t n = strlen(s), room = sizeof(r->text) - 1 - r->len;

	if (n > room)
		n = room;
	memcpy(r->text + r->len, s, n);
	r->len += n;
	r->text[r->len] = '\0';
}

/* mta_reply_line - take one line of a reply; 1 when it was the last, -1 on a protocol error. */
static int mta_reply_line(struct mta_conn *c, const char *line, size_t len)
{
	struct mta_reply *r = &c->reply;
	const char *text = len > 4 ? line + 4 : "";
	int code;

	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-'))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines == 0) {
		r->code = code;
		r->enhanced[0] = '\0';
		r->len = 0;
		snprintf(r->text, sizeof(r->text), "%d", code);
		r->len = 3;
		mta_enhanced_parse(text, code, r->enhanced, sizeof(r->enhanced));
	} else {
		size_t skip;

		if (code != r->code)
			return -1;
		/* A continuation repeats the enhanced code: once is enough. */
		skip = mta_enhanced_parse(text, code, NULL, 0);
		if (skip > 0 && strncmp(text, r->enhanced, skip) == 0)
			text += skip + (text[skip] == ' ');
	}
	if (++r->nlines > MTA_REPLY_LINES)
		return -1;
	if (*text != '\0') {
		mta_reply_append(r, " ");
		mta_reply_append(r, text);
	}
	if (c->state == MTA_S_EHLO && r->nlines > 1 && code / 100 == 2)
		mta_ext_line(&c->ext_new, text);
	return len == 3 || line[3] == ' ';
}

/* mta_reply_dispatch - a whole reply came: to the state it answers; 1 when c may be gone. */
static int mta_reply_dispatch(struct mta_conn *c)
{
	log_debug("%s: < %s", c->remote, c->reply.text);
	memcpy(c->said, c->remote, sizeof(c->said));
	evtimer_del(c->timer);
	if (c->reply.code == 421)
		c->peer_closing = 1;
	switch (c->state) {
	case MTA_S_GREETING:
		mta_on_greeting(c);
		break;
	case MTA_S_EHLO:
		mta_on_ehlo(c);
		break;
	case MTA_S_HELO:
		mta_on_helo(c);
		break;
	case MTA_S_STARTTLS:
		mta_on_starttls(c);
		break;
	case MTA_S_AUTH:
		mta_on_auth(c);
		break;
	case MTA_S_TX:
		mta_on_tx(c);
		break;
	case MTA_S_CONTENT:
		mta_on_early(c);
		break;
	case MTA_S_DOT:
		mta_on_dot(c);
		break;
	case MTA_S_DOT_ABORT:
		mta_job_finish(c, 1);
		break;
	case MTA_S_QUIT:
		mta_conn_free(c);
		return 1;
	default:
		/* Nothing was asked: an idle peer talking is going away. */
		mta_idle_broken(c);
		return 1;
	}
	return 0;
}

/*
 * mta_read_cb - read whole replies while the same connection lasts. The
 * paths that may free c (QUIT, the idle callback) return at once; the
 * others stop the loop when the connection changed (TLS, a new address).
 */
void mta_read_cb(struct bufferevent *bev, void *arg)
{
	struct mta_conn *c = arg;
	char line[MTA_LINE_MAX + 1];
	unsigned gen = c->gen;
	size_t len;
	int got;

	if (c->state == MTA_S_HANDSHAKE || c->state == MTA_S_CONNECTING)
		return;
	for (;;) {
		struct evbuffer *in = bufferevent_get_input(c->bev);

		if ((got = mta_line_get(in, line, &len)) == 0)
			return;
		if (got < 0) {
			mta_fail(c, "4.5.0", "protocol error from %s: reply line too long",
			          c->remote);
			return;
		}
		if (c->reply.nlines == 0 && c->state == MTA_S_READY) {
			mta_idle_broken(c);
			return;
		}
		if ((got = mta_reply_line(c, line, len)) < 0) {
			c->reply.nlines = 0;
			mta_fail(c, "4.5.0", "protocol error from %s: malformed reply", c->remote);
			return;
		}
		if (got == 0)
			continue;
		c->reply.nlines = 0;
		if (mta_reply_dispatch(c) || c->gen != gen || c->bev == NULL)
			return;
	}
}

/* mta_write_cb - the output drained: queue more of the message, or wait for its reply. */
void mta_write_cb(struct bufferevent *bev, void *arg)
{
	struct mta_conn *c = arg;

	if (c->state != MTA_S_CONTENT)
		return;
	if (!c->feed_done) {
		mta_content_feed(c);
		mta_wait(c, c->dest.data_timeout);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		mta_content_sent(c);
}

/* mta_lost - the connection closed or broke: what it means depends on what was under way. */
static void mta_lost(struct mta_conn *c)
{
	if (c->state == MTA_S_QUIT) {
		mta_conn_free(c);
		return;
	}
	if (c->state == MTA_S_READY) {
		mta_idle_broken(c);
		return;
	}
	if (c->state == MTA_S_CONTENT)
		mta_fail(c, "4.4.2", "lost connection with %s while sending the message",
		          c->remote);
	else
		mta_fail(c, "4.4.2", "lost connection with %s while waiting for %s", c->remote,
		          mta_wait_name(c));
}

/* mta_event_cb - handshake done, end of file or error. */
void mta_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mta_conn *c = arg;
	unsigned gen = c->gen;
	char why[256];

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == MTA_S_HANDSHAKE)
			mta_tls_done(c);
		return;
	}
	if (c->state == MTA_S_HANDSHAKE) {
		mta_tls_failed_text(c, why, sizeof(why));
		mta_tls_fail(c, "TLS handshake with %s failed: %s", c->remote, why);
		return;
	}
	/* A last reply ("421 ... closing") may sit in the input still. */
	if (c->state != MTA_S_QUIT && c->state != MTA_S_READY) {
		mta_read_cb(bev, c);
		if (c->gen != gen || c->bev == NULL)
			return;
	}
	mta_lost(c);
}

/* mta_timer_cb - the current wait took too long. */
void mta_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mta_conn *c = arg;

	switch (c->state) {
	case MTA_S_QUIT:
		mta_conn_free(c);
		break;
	case MTA_S_HANDSHAKE:
		mta_tls_fail(c, "timeout during the TLS handshake with %s", c->remote);
		break;
	case MTA_S_CONTENT:
		mta_fail(c, "4.4.2", "timeout sending the message to %s", c->remote);
		break;
	default:
		mta_fail(c, "4.4.2", "timeout waiting for %s from %s", mta_wait_name(c),
		          c->remote);
		break;
	}
}

