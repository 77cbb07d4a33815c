/*
 * smtpd_session.c - the SMTP server side of one connection (RFC 5321).
 *
 * Served in a session process of the master's pool (smtpd_worker.c), one
 * connection at a time, confined by the sandbox and holding nothing of the
 * spool but the descriptor of the message it is receiving. Everything of a
 * connection lives in its struct smtp_session and is freed when it ends, so
 * the next connection the process serves starts from nothing. This file is
 * the connection: the accepted socket, its I/O
 * callbacks, replies, idle timeouts, the error limits, TLS, and the end of
 * the session with its summary line. The session state (HELO, counters,
 * limits) outlives transactions; the commands are in smtpd_commands.c, the
 * transaction in smtpd_transaction.c, the deadlines in smtpd_deadline.c.
 *
 * Input is handled line by line from the bufferevent. Pipelined commands are
 * all answered into the output buffer before it is flushed; a command that
 * has to ask the queue (MAIL, the end of a message) suspends input processing
 * until the answer comes, which keeps replies in order.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "evloop.h"
#include "log.h"
#include "rules.h"
#include "smtpd_auth.h"
#include "smtpd_internal.h"
#include "smtp_parse.h"
#include "smtpd_session.h"
#include "send_mail.h"
#include "queue_client.h"
#include "tls_server.h"

#define SMTPD_INPUT_HIGH_WATER (256u * 1024)
#define SMTPD_OUTPUT_HIGH_WATER (256u * 1024) /* replies a client has not read */
#define SMTPD_TLS_FLUSH_MS 5000 /* for the last encrypted bytes of a closing session */

static const char *smtpd_lost_result(const struct smtp_session *s);
static void smtpd_greet(struct smtp_session *s);
static void smtpd_read_cb(struct bufferevent *bev, void *arg);
static void smtpd_write_cb(struct bufferevent *bev, void *arg);
static void smtpd_event_cb(struct bufferevent *bev, short what, void *arg);

/* What a session says when a rule overruns its CPU time: prepared in
 * advance, since the signal handler may only write(). -1 once TLS is on. */
static int smtpd_overrun_fd = -1;
static char smtpd_overrun_reply[300];

/* smtpd_input_high_water - room for the longest command line allowed, so an
 * overlong one is always seen whole and refused rather than stalling. */
static size_t smtpd_input_high_water(const struct config *cfg)
{
	return cfg->max_command_line + 1 > SMTPD_INPUT_HIGH_WATER ? cfg->max_command_line + 1
								 : SMTPD_INPUT_HIGH_WATER;
}

/* smtpd_reply - send one reply line (printf style, CRLF added). */
void smtpd_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	s->last_code = atoi(line);
	s->last_uncounted = 0;
	if (s->last_code >= 400 && s->last_code != 421)
		s->errors++;
	log_debug("%s: >>> %s", s->client_ip, line);
	evbuffer_add(out, line, (size_t)n);
	evbuffer_add(out, "\r\n", 2);
}

/* smtpd_set_read_timeout - the inactivity limit for what we wait for now. */
void smtpd_set_read_timeout(struct smtp_session *s, unsigned seconds)
{
	struct timeval tv = {.tv_sec = seconds};

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* smtpd_reply_rule - send a reply a rule chose. */
void smtpd_reply_rule(struct smtp_session *s, const struct rule_reply *r)
{
	smtpd_reply(s, "%d%s%s%s%s", r->code, r->enhanced[0] ? " " : "", r->enhanced,
		   r->text[0] ? " " : "", r->text);
}

/* smtpd_rules - run a stage's rules for the session. */
enum rule_status smtpd_rules(struct smtp_session *s, enum rule_stage stage,
			     struct rule_verdict *v)
{
	/* Mail back from a filter went through the rules before it went out. */
	if (s->rules == NULL || s->listener->kind_id == LISTENER_DELEGATION) {
		memset(v, 0, sizeof(*v));
		return v->status = RULE_NEXT;
	}
	if (s->listener->milters != NULL &&
	    rules_run_milters(s->rules, stage, &s->rctx, s->listener->milters, v) != RULE_NEXT)
		return v->status;
	return rules_run(s->rules, stage, &s->rctx, v);
}

/* smtpd_rules_used - whether anything runs at stage: rules, or the
 * listener's milters. */
int smtpd_rules_used(const struct smtp_session *s, enum rule_stage stage)
{
	return s->rules != NULL && (rules_stage_used(s->rules, stage) ||
				    (s->listener->milters != NULL && stage <= RULE_STAGE_PREQ));
}

/*
 * smtpd_rules_refused - act on a verdict that refuses: send its reply (and
 * for deny, close). Returns 1 when the command is refused, 0 when it goes on.
 */
int smtpd_rules_refused(struct smtp_session *s, enum rule_stage stage,
			const struct rule_verdict *v)
{
	if (v->status != RULE_DENY && v->status != RULE_REJECT && v->status != RULE_INFO &&
	    v->status != RULE_ERROR)
		return 0;
	log_notice("%s: %s %s[%s]: %s by rule \"%s\": %d %s %s",
		   s->tx && s->tx->env.id[0] ? s->tx->env.id : "NOQUEUE", rules_stage_name(stage),
		   s->helo[0] ? s->helo : "unknown", s->client_ip, rules_status_name(v->status),
		   v->rule, v->reply.code, v->reply.enhanced, v->reply.text);
	smtpd_reply_rule(s, &v->reply);
	if (v->status == RULE_DENY || stage == RULE_STAGE_CONNECT)
		smtpd_close(s, v->status == RULE_DENY ? "denied by rules" : "refused by rules");
	return 1;
}

/* smtpd_rules_accept_reply - whether the verdict's accept code replaces ours. */
int smtpd_rules_accept_reply(const struct rule_verdict *v)
{
	return (v->status == RULE_ACCEPT || v->status == RULE_FACCEPT) && v->has_reply;
}

/* smtpd_delay_cb - the error delay is over: let the reply go and read on. */
static void smtpd_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	s->wait = SMTPD_WAIT_NONE;
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	smtpd_input_process(s);
}

/* smtpd_reply_uncounted - the reply just sent is a refusal the client is
 * expected to meet in normal use (a 452 for recipients past the limit, which
 * RFC 5321 4.5.3.1.10 has it send again in a later transaction): it counts
 * toward neither error limit, nor is it delayed. */
void smtpd_reply_uncounted(struct smtp_session *s)
{
	if (s->last_code >= 400 && s->last_code != 421 && !s->last_uncounted && s->errors > 0)
		s->errors--;
	s->last_uncounted = 1;
}

/* smtpd_error_limits - after a failed command: slow down or hang up. */
void smtpd_error_limits(struct smtp_session *s)
{
	struct timeval tv;

	if (s->closing || s->last_code < 400 || s->last_uncounted)
		return;
	if (s->errors >= s->cfg->hard_error_limit) {
		smtpd_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
		smtpd_close(s, "too many errors");
		return;
	}
	if (s->errors > s->cfg->soft_error_limit && s->wait == SMTPD_WAIT_NONE) {
		/* Hold the reply back, like Postfix's smtpd_error_sleep_time. */
		tv.tv_sec = s->cfg->error_delay_ms / 1000;
		tv.tv_usec = (s->cfg->error_delay_ms % 1000) * 1000;
		bufferevent_disable(s->bev, EV_WRITE);
		s->wait = SMTPD_WAIT_DELAY;
		evtimer_add(s->delay_ev, &tv);
	}
}

/* smtpd_line_too_long - refuse a line past the limit, once. */
static void smtpd_line_too_long(struct smtp_session *s)
{
	if (s->auth_pending) {
		smtpd_auth_too_long(s);
	} else {
		s->cmd_total[SMTP_VERB_UNKNOWN]++;
		smtpd_reply(s, "500 5.5.2 Error: line too long");
	}
	smtpd_error_limits(s);
}

/* smtpd_line_process - take one command line from in; 0 when more is needed. */
static int smtpd_line_process(struct smtp_session *s, struct evbuffer *in)
{
	size_t eol_len, len, max = s->cfg->max_command_line;
	struct evbuffer_ptr pos = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	char *line;

	if (s->auth_pending)
		max = SMTPD_AUTH_LINE_MAX + 2;
	if (pos.pos < 0) {
		if (evbuffer_get_length(in) < max)
			return 0;
		/* No end of line within the limit: refuse once, skip to the LF. */
		if (!s->discarding) {
			s->discarding = 1;
			smtpd_line_too_long(s);
		}
		evbuffer_drain(in, evbuffer_get_length(in));
		return 0;
	}
	len = (size_t)pos.pos;
	s->dl.line_taken = 1;
	if (s->discarding || len + 1 > max) {
		evbuffer_drain(in, len + 1);
		if (!s->discarding)
			smtpd_line_too_long(s);
		s->discarding = 0;
		return 1;
	}
	line = (char *)evbuffer_pullup(in, (ssize_t)(len + 1));
	line[len] = '\0'; /* replaces the LF: the line is drained below */
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (s->auth_pending) {
		smtpd_auth_response(s, line);
		smtpd_error_limits(s);
	} else {
		smtpd_command(s, line, len);
	}
	evbuffer_drain(in, (size_t)pos.pos + 1);
	return 1;
}

/* smtpd_tls_begin - put TLS between the socket and the session. */
static void smtpd_tls_begin(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tls_bev;
	size_t injected = evbuffer_get_length(in);
	SSL *ssl;

	s->tls_pending = 0;
	/* A client speaks again only after the handshake: anything it sent
	 * behind STARTTLS was meant for the plaintext session (an injection,
	 * CVE-2011-0411) and is never executed. */
	if (injected > 0) {
		log_notice("%s: discarded %zu bytes sent before the TLS handshake", s->client_ip,
			   injected);
		evbuffer_drain(in, injected);
	}
	/* Deferred callbacks: the TLS layer would otherwise call us back from
	 * inside a reply, in the middle of a command. On failure libevent has
	 * freed the SSL and perhaps the socket's bufferevent: nothing is left
	 * to talk through, least of all in plaintext. */
	if ((ssl = tls_server_connection(s->tls)) == NULL ||
	    (tls_bev = bufferevent_openssl_filter_new(s->base, s->bev, ssl,
						      BUFFEREVENT_SSL_ACCEPTING,
						      BEV_OPT_CLOSE_ON_FREE |
							  BEV_OPT_DEFER_CALLBACKS)) == NULL) {
		char why[256];

		fatal("%s: cannot start TLS: %s", s->client_ip,
		      tls_error_text(why, sizeof(why), "out of memory"));
	}
	/* Only the TLS layer's timeouts count: the socket's own would cut a
	 * session that waits for DATA as if it waited for a command. */
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	/* Clients that close without close_notify are common: that is an end
	 * of file, not an attack on the session. */
	bufferevent_openssl_set_allow_dirty_shutdown(tls_bev, 1);
	s->bev = tls_bev;
	s->tls_handshaking = 1;
	/* The rule overrun handler cannot write plaintext into TLS. */
	smtpd_overrun_fd = -1;
	bufferevent_setcb(s->bev, smtpd_read_cb, smtpd_write_cb, smtpd_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, smtpd_input_high_water(s->cfg));
	smtpd_set_read_timeout(s, s->cfg->tls_handshake_timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* smtpd_tls_ready - the handshake is done. */
static void smtpd_tls_ready(struct smtp_session *s)
{
	s->tls_handshaking = 0;
	s->tls_active = 1;
	tls_info_get(bufferevent_openssl_get_ssl(s->bev), &s->tls_info);
	log_info("TLS established from %s: %s with cipher %s (%d/%d bits)%s%s", s->client_ip,
		 s->tls_info.version, s->tls_info.cipher, s->tls_info.bits, s->tls_info.alg_bits,
		 s->tls_info.sni[0] ? ", SNI " : "", s->tls_info.sni);
	s->rctx.is_secured = 1;
	s->rctx.tls_version = s->tls_info.version;
	s->rctx.tls_cipher = s->tls_info.cipher;
	s->rctx.tls_bits = s->tls_info.bits;
	s->rctx.tls_sni = s->tls_info.sni;
	if (s->sasl != NULL)
		smtpd_auth_set_tls(s->sasl, (unsigned)s->tls_info.bits);
	smtpd_set_read_timeout(s, s->cfg->timeout_command);
	if (s->listener->kind_id == LISTENER_SUBMISSIONS && s->cmd_total[SMTP_VERB_STARTTLS] == 0) {
		smtpd_greet(s);
		return;
	}
	/* RFC 3207 4.2: forget what the client said before, AUTH included;
	 * the client starts again with EHLO, and the helo stage runs again. */
	smtpd_tx_reset(s);
	s->helo[0] = '\0';
	s->esmtp = 0;
	if (s->authenticated) {
		s->authenticated = 0;
		s->authid[0] = '\0';
		s->rctx.is_authenticated = 0;
		s->rctx.auth_mechanism = NULL;
		s->rctx.auth_authid = NULL;
		if (s->sasl != NULL && smtpd_auth_reset(s->sasl) == 0)
			smtpd_auth_set_tls(s->sasl, (unsigned)s->tls_info.bits);
	}
	s->state = SMTPD_STATE_INIT;
	s->conn_skip_all = s->connect_skip_all;
	memcpy(s->conn_quarantine, s->connect_quarantine, sizeof(s->conn_quarantine));
	s->rctx.skip_all = s->conn_skip_all;
	memcpy(s->rctx.quarantine, s->conn_quarantine, sizeof(s->rctx.quarantine));
	smtpd_input_process(s);
}

/* smtpd_input_run - handle whatever the client sent, as far as we may. */
static void smtpd_input_run(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer *out = bufferevent_get_output(s->bev);
	int more;

	while (!s->closing && s->wait == SMTPD_WAIT_NONE && !s->tls_pending &&
	       !s->tls_handshaking) {
		/* A client that pipelines without reading its replies waits until
		 * it has read them: the write callback resumes us. */
		if (evbuffer_get_length(out) > SMTPD_OUTPUT_HIGH_WATER)
			return;
		if (s->state == SMTPD_STATE_DATA || s->state == SMTPD_STATE_BDAT)
			more = smtpd_content_process(s, in);
		else
			more = smtpd_line_process(s, in);
		if (!more)
			break;
	}
	if (s->tls_pending && !s->closing) {
		smtpd_tls_begin(s);
		return;
	}
	if (s->closing || s->wait != SMTPD_WAIT_NONE || s->tls_handshaking)
		return;
	if (s->eof) {
		/* A half-closed client still reads: it got every reply it asked for. */
		smtpd_close(s, smtpd_lost_result(s));
		return;
	}
	if (s->shutdown && s->tx == NULL && evbuffer_get_length(in) == 0 &&
	    s->state != SMTPD_STATE_BDAT) {
		smtpd_reply(s, "421 4.3.2 %s Service shutting down, closing connection",
			   s->cfg->hostname);
		smtpd_close(s, "shutdown");
	}
}

/* smtpd_input_process - handle whatever the client sent, as far as we may;
 * then the command deadline runs if we wait for a command line. */
void smtpd_input_process(struct smtp_session *s)
{
	if (smtpd_deadline_session_due(s))
		return;
	smtpd_input_run(s);
	smtpd_deadline_update(s);
}

/* smtpd_read_cb - bytes from the client. */
static void smtpd_read_cb(struct bufferevent *bev, void *arg)
{
	smtpd_input_process(arg);
}

/* smtpd_counts - "ehlo=1 mail=1 rcpt=0/1 ... commands=3/4" for the summary. */
static void smtpd_counts(const struct smtp_session *s, char *buf, size_t len)
{
	unsigned total = 0, ok = 0;
	size_t off = 0;
	int v;

	buf[0] = '\0';
	for (v = 1; v <= SMTP_VERB_COUNT; v++) {
		int verb = v % SMTP_VERB_COUNT; /* UNKNOWN last */

		if (s->cmd_total[verb] == 0 || off >= len)
			continue;
		total += s->cmd_total[verb];
		ok += s->cmd_ok[verb];
		if (s->cmd_ok[verb] == s->cmd_total[verb])
			off += (size_t)snprintf(buf + off, len - off, "%s=%u ",
						smtp_verb_name(verb), s->cmd_total[verb]);
		else
			off += (size_t)snprintf(buf + off, len - off, "%s=%u/%u ",
						smtp_verb_name(verb), s->cmd_ok[verb],
						s->cmd_total[verb]);
	}
	if (off < len) {
		if (ok == total)
			snprintf(buf + off, len - off, "commands=%u", total);
		else
			snprintf(buf + off, len - off, "commands=%u/%u", ok, total);
	}
}

/*
 * smtpd_tls_flush - with TLS, the last reply may still sit encrypted in the
 * socket's buffer when the session's own buffer is empty: send it, with a
 * close_notify after it, before the process exits.
 */
static void smtpd_tls_flush(struct smtp_session *s)
{
	struct bufferevent *raw = bufferevent_get_underlying(s->bev);
	struct timespec start, now;
	struct evbuffer *out;
	struct pollfd pfd;
	long left;

	if (raw == NULL || !s->tls_active)
		return;
	if (s->result == NULL || strncmp(s->result, "lost connection", 15) != 0)
		SSL_shutdown(bufferevent_openssl_get_ssl(s->bev));
	ERR_clear_error();
	out = bufferevent_get_output(raw);
	pfd.fd = bufferevent_getfd(raw);
	pfd.events = POLLOUT;
	clock_gettime(CLOCK_MONOTONIC, &start);
	/* A socket bufferevent keeps the start of its output frozen but for
	 * its own writes: the loop is done, so the bytes are ours to send. */
	evbuffer_unfreeze(out, 1);
	while (evbuffer_get_length(out) > 0) {
		if (evbuffer_write(out, pfd.fd) >= 0)
			continue;
		if (errno != EAGAIN && errno != EINTR)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = SMTPD_TLS_FLUSH_MS - ((now.tv_sec - start.tv_sec) * 1000 +
					    (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int)left) < 0)
			return;
	}
}

/* smtpd_finish - write the summary line (the worker logs it once the
 * process is ready for the next connection) and stop the loop. */
void smtpd_finish(struct smtp_session *s)
{
	char counts[512];
	char *p;

	if (s->finished)
		return;
	s->finished = 1;
	smtpd_tls_flush(s);
	smtpd_counts(s, counts, sizeof(counts));
	for (p = counts; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	snprintf(s->summary, s->summary_len, "disconnect from %s[%s]:%u %s queued=%u%s%s result=%s",
		 s->helo[0] ? s->helo : "unknown", s->client_ip, s->client_port, counts, s->queued,
		 s->ids[0] ? " ids=" : "", s->ids, s->result ? s->result : "ok");
	event_base_loopbreak(s->base);
}

/* smtpd_write_cb - output drained: a closing session is done, another reads on. */
static void smtpd_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->closing)
		smtpd_finish(s);
	else if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		smtpd_input_process(s);
}

/* smtpd_finish_cb - smtpd_finish, from the event loop. */
static void smtpd_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	smtpd_finish(arg);
}

/* smtpd_close - stop reading; finish once the last reply is out. */
void smtpd_close(struct smtp_session *s, const char *result)
{
	s->closing = 1;
	s->result = result;
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_enable(s->bev, EV_WRITE);
	/* From the loop, not from here: the command that closes is not done
	 * yet (its counts), and with TLS the output is never seen waiting. */
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
	    event_base_once(s->base, -1, EV_TIMEOUT, smtpd_finish_cb, s, &(struct timeval){0}) < 0)
		smtpd_finish(s);
}

/* smtpd_idle_timeout - the client stayed silent too long: 421 and close. */
void smtpd_idle_timeout(struct smtp_session *s)
{
	smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
	smtpd_close(s, "timeout");
}

/* smtpd_lost_result - how to describe a connection that ended under us. */
static const char *smtpd_lost_result(const struct smtp_session *s)
{
	if (s->state == SMTPD_STATE_DATA || s->state == SMTPD_STATE_BDAT)
		return "lost connection during message content";
	return s->tx ? "lost connection in a transaction" : "lost connection";
}

/* smtpd_event_cb - end of file, errors and timeouts on the client socket. */
static void smtpd_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char why[256];

	if (what & BEV_EVENT_CONNECTED) {
		smtpd_tls_ready(s);
		return;
	}
	if (s->tls_handshaking) {
		unsigned long e = bufferevent_get_openssl_error(bev);

		if (e != 0)
			ERR_error_string_n(e, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "%s",
				 what & BEV_EVENT_TIMEOUT ? "timeout"
				 : what & BEV_EVENT_EOF   ? "connection closed by the client"
							  : "connection error");
		log_notice("TLS handshake failed from %s: %s", s->client_ip, why);
		s->result = "TLS handshake failed";
		smtpd_finish(s);
		return;
	}
	if (s->closing) {
		smtpd_finish(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		smtpd_idle_timeout(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		s->eof = 1;
		smtpd_input_process(s);
		return;
	}
	s->result = smtpd_lost_result(s);
	smtpd_finish(s);
}

/* smtpd_term_cb - SIGTERM (read from the process's signalfd): finish the
 * transaction under way, then leave. */
static void smtpd_term_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct signalfd_siginfo si;

	while (read((int)fd, &si, sizeof(si)) == sizeof(si))
		s->shutdown = 1;
	if (s->shutdown && s->wait == SMTPD_WAIT_NONE)
		smtpd_input_process(s);
}

/* smtpd_sockaddr - the text and port of an address. */
static void smtpd_sockaddr(const struct sockaddr_storage *ss, char *ip, size_t iplen,
			  unsigned *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, (socklen_t)iplen);
		*port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, (socklen_t)iplen);
		*port = ntohs(sin6->sin6_port);
	}
}

/* smtpd_peer - fill in the client's and our own address. */
static void smtpd_peer(struct smtp_session *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	strcpy(s->client_ip, "unknown");
	strcpy(s->server_ip, "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		smtpd_sockaddr(&ss, s->client_ip, sizeof(s->client_ip), &s->client_port);
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		smtpd_sockaddr(&ss, s->server_ip, sizeof(s->server_ip), &s->server_port);
}

/*
 * smtpd_rules_service - a rule's request outside the sandbox, answered by the
 * queue process: whether an account exists, or saving a copy. Synchronous,
 * like the rule that asks; no other request of ours is outstanding while
 * rules run. Returns 0 or an errno value.
 */
static int smtpd_rules_service(void *arg, enum queue_service kind, const char *name,
			      const char *file, const char *data, size_t len)
{
	struct smtp_session *s = arg;

	return queue_client_service(s->queue_fd, kind, name, file, data, len);
}

/* smtpd_rules_send_mail - send_mail() from a rule: the queue opens the file,
 * the message is queued over our channel, synchronously like the rule. */
static int smtpd_rules_send_mail(void *arg, const struct rule_mail *mail, char *id)
{
	struct smtp_session *s = arg;
	int err = send_mail_queue(s->queue_fd, mail, s->cfg->hostname, s->cfg->max_message_size,
				  id);

	if (err == 0)
		log_info("rules: send_mail %s: %s", mail->path, id);
	return err;
}


/* smtpd_rules_overrun - a rule ran past [rules] time_limit: tell the client. */
static void smtpd_rules_overrun(void)
{
	if (smtpd_overrun_fd >= 0 &&
	    write(smtpd_overrun_fd, smtpd_overrun_reply, strlen(smtpd_overrun_reply)) < 0)
		smtpd_overrun_fd = -1;
}

/* smtpd_rules_init - what the rules see of the connection. */
static void smtpd_rules_init(struct smtp_session *s)
{
	s->rctx = (struct rule_ctx){
		.client_ip = s->client_ip,
		.client_port = s->client_port,
		.server_ip = s->server_ip,
		.server_port = s->server_port,
		.server_name = s->cfg->hostname,
		.listener = s->listener->name,
		.listener_kind = s->listener->kind,
		.connection_timestamp = time(NULL),
		.helo = s->helo,
		.service = smtpd_rules_service,
		.send_mail = smtpd_rules_send_mail,
		.service_arg = s,
	};
	smtpd_overrun_fd = bufferevent_getfd(s->bev);
	snprintf(smtpd_overrun_reply, sizeof(smtpd_overrun_reply),
		 "421 4.3.0 %s Error: local policy error, closing connection\r\n", s->cfg->hostname);
	rules_set_overrun(smtpd_rules_overrun);
	rules_reseed(s->rules);
}

/* smtpd_greet - the connect stage, then the greeting (or a refusal). */
static void smtpd_greet(struct smtp_session *s)
{
	struct rule_verdict v;

	smtpd_rules(s, RULE_STAGE_CONNECT, &v);
	if (smtpd_rules_refused(s, RULE_STAGE_CONNECT, &v))
		return;
	s->conn_skip_all = s->connect_skip_all = s->rctx.skip_all;
	memcpy(s->conn_quarantine, s->rctx.quarantine, sizeof(s->conn_quarantine));
	memcpy(s->connect_quarantine, s->rctx.quarantine, sizeof(s->connect_quarantine));
	if (smtpd_rules_accept_reply(&v) && v.reply.text[0])
		smtpd_reply(s, "220 %s %s", s->cfg->hostname, v.reply.text);
	else
		smtpd_reply(s, "220 %s %s", s->cfg->hostname, s->cfg->banner);
	smtpd_deadline_update(s);
}

/* smtpd_session_free - everything of the connection: its socket (and TLS),
 * its queue channel, its timers, its event loop, AUTH and the rules' context. */
static void smtpd_session_free(struct smtp_session *s)
{
	struct event *evs[] = {s->queue_ev, s->delay_ev, s->term_ev, s->dl.command_ev,
			       s->dl.data_ev, s->dl.session_ev};
	size_t i;

	smtpd_tx_free(s, 1);
	smtpd_auth_free(s->sasl);
	rules_ctx_release(&s->rctx);
	smtpd_overrun_fd = -1;
	for (i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	/* A bufferevent is freed by a finalizer the loop runs (a TLS one,
	 * with its SSL and the socket's bufferevent below it, once its
	 * deferred callbacks are done): let it run before the loop goes. */
	if (s->base != NULL) {
		event_base_loop(s->base, EVLOOP_NONBLOCK);
		event_base_free(s->base);
	}
	close(s->queue_fd);
	ERR_clear_error();
}

/* smtpd_session_serve - one connection, from the greeting to the summary line. */
int smtpd_session_serve(const struct config *cfg, const struct listener_config *listener,
			struct rules *rules, struct tls_server *tls, int fd, int queue_fd,
			int term_fd, char *summary, size_t summary_len)
{
	struct smtp_session s = {.cfg = cfg,
				 .listener = listener,
				 .rules = rules,
				 .tls = tls,
				 .queue_fd = queue_fd,
				 .summary = summary,
				 .summary_len = summary_len};
	char local[64], remote[64];

	/* Both sockets come non-blocking from the master. Replies are
	 * gathered before each write, so Nagle's algorithm has nothing to
	 * merge; with TLS it would hold a reply behind the session ticket
	 * until the client's delayed ACK (40 ms on Linux). */
	smtpd_peer(&s, fd);
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) < 0)
		log_debug("TCP_NODELAY: %s", strerror(errno));
	if ((s.base = evloop_new()) == NULL ||
	    (s.bev = bufferevent_socket_new(s.base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
	    (s.queue_ev = event_new(s.base, queue_fd, EV_READ | EV_PERSIST, smtpd_queue_cb, &s)) ==
		    NULL ||
	    (s.delay_ev = evtimer_new(s.base, smtpd_delay_cb, &s)) == NULL ||
	    (s.term_ev = event_new(s.base, term_fd, EV_READ | EV_PERSIST, smtpd_term_cb, &s)) ==
		    NULL ||
	    event_add(s.term_ev, NULL) < 0 || smtpd_deadline_init(&s) < 0 ||
	    event_add(s.queue_ev, NULL) < 0)
		fatal("cannot set up the session event loop");
	log_info("connect from %s:%u on %s", s.client_ip, s.client_port, listener->name);
	bufferevent_setcb(s.bev, smtpd_read_cb, smtpd_write_cb, smtpd_event_cb, &s);
	bufferevent_setwatermark(s.bev, EV_READ, 0, smtpd_input_high_water(cfg));
	smtpd_set_read_timeout(&s, cfg->timeout_command);
	bufferevent_enable(s.bev, EV_READ | EV_WRITE);
	if (listener->auth != LISTENER_AUTH_NO) {
		snprintf(local, sizeof(local), "%s;%u", s.server_ip, s.server_port);
		snprintf(remote, sizeof(remote), "%s;%u", s.client_ip, s.client_port);
		/* Without it AUTH answers 454: the log says why. */
		s.sasl = smtpd_auth_new(cfg, local, remote);
	}
	smtpd_rules_init(&s);
	if (listener->kind_id == LISTENER_SUBMISSIONS) {
		/* TLS from the first byte: the greeting waits for the handshake. */
		if (tls == NULL)
			fatal("listener %s needs TLS, and no certificate is loaded", listener->name);
		smtpd_tls_begin(&s);
	} else {
		smtpd_greet(&s);
	}

	event_base_dispatch(s.base);
	smtpd_session_free(&s);
	return s.shutdown;
}
