/*
 * smtp_session.c - the SMTP server side of one connection (RFC 5321).
 *
 * One process per connection, forked by the master, confined by the sandbox
 * and holding nothing of the spool but the descriptor of the message it is
 * receiving. A command table maps each verb to its handler; the session
 * state (HELO, counters, limits) outlives transactions, the transaction state
 * (struct smtp_tx) is reset by RSET, HELO/EHLO and the end of a message.
 *
 * Input is handled line by line from the bufferevent. Pipelined commands are
 * all answered into the output buffer before it is flushed; a command that
 * has to ask the queue (MAIL, the end of a message) suspends input processing
 * until the answer comes, which keeps replies in order.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "data_filter.h"
#include "envelope.h"
#include "evloop.h"
#include "ipc.h"
#include "log.h"
#include "message.h"
#include "rules.h"
#include "netaddr.h"
#include "sigevent.h"
#include "smtp_auth.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "send_mail.h"
#include "spool_client.h"
#include "tls_server.h"

#define SMTP_INPUT_HIGH_WATER (256u * 1024)
#define SMTP_OUTPUT_HIGH_WATER (256u * 1024) /* replies a client has not read */
#define SMTP_WRITE_BUFFER (64u * 1024)
#define SMTP_IDS_LOG_MAX 512
#define SMTP_TLS_FLUSH_MS 5000 /* for the last encrypted bytes of a closing session */

enum smtp_state {
	SMTP_STATE_INIT,  /* greeted, waiting for HELO / EHLO */
	SMTP_STATE_READY, /* no transaction */
	SMTP_STATE_MAIL,  /* MAIL accepted */
	SMTP_STATE_RCPT,  /* at least one recipient */
	SMTP_STATE_DATA,  /* reading DATA content */
	SMTP_STATE_BDAT,  /* reading the bytes of a BDAT chunk */
};

enum smtp_wait {
	SMTP_WAIT_NONE,
	SMTP_WAIT_CREATE, /* the queue is creating the message file */
	SMTP_WAIT_COMMIT, /* the queue is committing the message */
	SMTP_WAIT_DELAY,  /* error delay past the soft limit */
};

/* The transaction: from MAIL to the reply to the end of the message. */
struct smtp_tx {
	struct envelope env;
	int fd;                   /* the message file, from the queue */
	int utf8;                 /* MAIL carried SMTPUTF8 */
	int chunking;             /* BDAT has started the content */
	struct data_filter df;
	uint64_t written;         /* content bytes written to fd */
	int write_error;          /* errno of the first failed write */
	int has_mail_reply, has_final_reply; /* a rule's accept code replaces ours */
	struct rule_reply mail_reply, final_reply;
	size_t wlen;
	char wbuf[SMTP_WRITE_BUFFER]; /* last: not zeroed by smtp_tx_new */
};

struct smtp_session {
	const struct config *cfg;
	const struct listener_config *listener;
	struct event_base *base;
	struct bufferevent *bev;
	int queue_fd;
	struct event *queue_ev, *delay_ev, *term_ev;

	struct rules *rules;
	struct rule_ctx rctx;
	int conn_skip_all;   /* rctx.skip_all as the connection stages left it */
	char conn_quarantine[RULE_QUARANTINE_MAX];
	int connect_skip_all; /* the same after the connect stage alone: STARTTLS */
	char connect_quarantine[RULE_QUARANTINE_MAX];

	struct tls_server *tls; /* NULL when no certificate is configured */
	int tls_pending;        /* STARTTLS answered: the handshake starts after this read */
	int tls_handshaking;
	int tls_active;
	struct tls_info tls_info;

	struct smtp_auth *sasl; /* NULL when the listener offers no AUTH */
	int auth_pending;       /* inside an AUTH exchange: lines are responses */
	char auth_mech[24];
	int authenticated;
	char authid[256];
	unsigned auth_failures;

	char client_ip[INET6_ADDRSTRLEN];
	unsigned client_port;
	char server_ip[INET6_ADDRSTRLEN];
	unsigned server_port;
	char helo[SMTP_DOMAIN_MAX + 1];
	int esmtp;

	enum smtp_state state;
	enum smtp_wait wait;
	struct smtp_tx *tx;

	/* BDAT chunk being read */
	uint64_t bdat_left;
	int bdat_last;
	enum smtp_state bdat_prev; /* where a refused chunk returns to */
	const char *bdat_refusal; /* the chunk is read only to be refused */

	int discarding;      /* inside an overlong command line */
	int last_code;       /* of the latest reply */
	unsigned errors;
	int shutdown;        /* SIGTERM: leave at the next idle point */
	int eof;             /* the client has sent all it will send */
	int closing;
	int finished;        /* the summary is logged, the loop told to stop */
	const char *result;  /* for the summary line */

	unsigned cmd_total[SMTP_VERB_COUNT];
	unsigned cmd_ok[SMTP_VERB_COUNT];
	unsigned queued;
	char ids[SMTP_IDS_LOG_MAX];
};

static void smtp_input_process(struct smtp_session *s);
static void smtp_close(struct smtp_session *s, const char *result);
static const char *smtp_lost_result(const struct smtp_session *s);
static void smtp_greet(struct smtp_session *s);
static void smtp_read_cb(struct bufferevent *bev, void *arg);
static void smtp_write_cb(struct bufferevent *bev, void *arg);
static void smtp_event_cb(struct bufferevent *bev, short what, void *arg);
static void smtp_finish(struct smtp_session *s);

/* What a session says when a rule overruns its CPU time: prepared in
 * advance, since the signal handler may only write(). -1 once TLS is on. */
static int smtp_overrun_fd = -1;
static char smtp_overrun_reply[300];

/* smtp_input_high_water - room for the longest command line allowed, so an
 * overlong one is always seen whole and refused rather than stalling. */
static size_t smtp_input_high_water(const struct config *cfg)
{
	return cfg->max_command_line + 1 > SMTP_INPUT_HIGH_WATER ? cfg->max_command_line + 1
								 : SMTP_INPUT_HIGH_WATER;
}

/* smtp_reply - send one reply line (printf style, CRLF added). */
static void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void smtp_reply(struct smtp_session *s, const char *fmt, ...)
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
	if (s->last_code >= 400 && s->last_code != 421)
		s->errors++;
	log_debug("%s: >>> %s", s->client_ip, line);
	evbuffer_add(out, line, (size_t)n);
	evbuffer_add(out, "\r\n", 2);
}

/* smtp_tx_flush - write the buffered content to the message file. */
static void smtp_tx_flush(struct smtp_tx *tx)
{
	size_t off = 0;
	ssize_t n;

	while (off < tx->wlen && tx->write_error == 0) {
		n = write(tx->fd, tx->wbuf + off, tx->wlen - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			tx->write_error = n < 0 ? errno : EIO;
		else
			off += (size_t)n;
	}
	tx->written += off;
	tx->wlen = 0;
}

/* smtp_tx_write - append content bytes (the data filter's sink). */
static void smtp_tx_write(void *arg, const char *buf, size_t len)
{
	struct smtp_tx *tx = arg;
	size_t n;

	while (len > 0 && tx->write_error == 0) {
		if (tx->wlen == sizeof(tx->wbuf))
			smtp_tx_flush(tx);
		n = sizeof(tx->wbuf) - tx->wlen;
		if (n > len)
			n = len;
		memcpy(tx->wbuf + tx->wlen, buf, n);
		tx->wlen += n;
		buf += n;
		len -= n;
	}
}

/* smtp_queue_send - a request to the queue; 0 or -1 when it has gone. */
static int smtp_queue_send(struct smtp_session *s, uint32_t type, const char *id, uint64_t a,
			   uint64_t b)
{
	struct ipc_msg m = {.type = type, .a = a, .b = b};

	if (id != NULL)
		memcpy(m.id, id, sizeof(m.id));
	if (s->queue_fd < 0)
		return -1;
	return ipc_send(s->queue_fd, &m, -1);
}

/* smtp_tx_free - end the transaction; the queue drops an uncommitted file. */
static void smtp_tx_free(struct smtp_session *s, int tell_queue)
{
	struct smtp_tx *tx = s->tx;

	if (tx == NULL)
		return;
	if (tx->fd >= 0) {
		if (tell_queue)
			smtp_queue_send(s, IPC_MSG_ABORT, tx->env.id, 0, 0);
		close(tx->fd);
	}
	envelope_clear(&tx->env);
	free(tx);
	s->tx = NULL;
	/* A faccept or quarantine decided inside a transaction lasts as long
	 * as the transaction; one decided at connect or helo, the connection. */
	s->rctx.env = NULL;
	s->rctx.rcpt = NULL;
	s->rctx.msg = NULL;
	s->rctx.skip_all = s->conn_skip_all;
	memcpy(s->rctx.quarantine, s->conn_quarantine, sizeof(s->rctx.quarantine));
	rules_tx_end(&s->rctx);
}

/* smtp_tx_reset - abandon any transaction and go back to the ready state. */
static void smtp_tx_reset(struct smtp_session *s)
{
	smtp_tx_free(s, 1);
	s->state = s->helo[0] ? SMTP_STATE_READY : SMTP_STATE_INIT;
}

/* smtp_set_read_timeout - the inactivity limit for what we wait for now. */
static void smtp_set_read_timeout(struct smtp_session *s, unsigned seconds)
{
	struct timeval tv = {.tv_sec = seconds};

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* smtp_log_id - remember a queue id for the summary line. */
static void smtp_log_id(struct smtp_session *s, const char *id)
{
	size_t len = strlen(s->ids);

	if (len + SPOOL_ID_LEN + 5 >= sizeof(s->ids)) {
		if (len + 4 < sizeof(s->ids) && (len < 3 || strcmp(s->ids + len - 3, "...") != 0))
			strcat(s->ids, ",...");
		return;
	}
	if (len > 0)
		strcat(s->ids, ",");
	strcat(s->ids, id);
}

/* smtp_protocol - the protocol name for Received: (RFC 3848, RFC 6531):
 * ESMTP, then S for TLS and A for AUTH; UTF8SMTP the same way. */
static const char *smtp_protocol(const struct smtp_session *s)
{
	static const char *const names[2][4] = {
	    {"ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"},
	    {"UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA"},
	};
	int utf8 = s->tx != NULL && s->tx->utf8;

	if (!s->esmtp && !utf8)
		return "SMTP";
	return names[utf8][(s->tls_active ? 1 : 0) + (s->authenticated ? 2 : 0)];
}

/* smtp_tx_received - write the Received: header (RFC 5321 4.4). */
static void smtp_tx_received(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	char date[64], line[1024];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	n = snprintf(line, sizeof(line), "Received: from %s ([%s%s])\r\n", s->helo,
		     strchr(s->client_ip, ':') ? "IPv6:" : "", s->client_ip);
	if (n > 0 && (size_t)n < sizeof(line) && s->tls_active)
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      "\t(using %s with cipher %s (%d/%d bits))\r\n", s->tls_info.version,
			      s->tls_info.cipher, s->tls_info.bits, s->tls_info.alg_bits);
	if (n > 0 && (size_t)n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, "\tby %s (vsmtpd) with %s id %s",
			      s->cfg->hostname, smtp_protocol(s), tx->env.id);
	if (n > 0 && (size_t)n < sizeof(line) && tx->env.nrcpts == 1)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n\tfor <%s>",
			      tx->env.rcpts[0].address);
	if (n > 0 && (size_t)n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, "; %s\r\n", date);
	if (n < 0 || (size_t)n >= sizeof(line))
		return; /* cannot happen with bounded helo, host and address */
	smtp_tx_write(tx, line, (size_t)n);
}

/* smtp_content_start - DATA or the first BDAT: prepare to receive content. */
static void smtp_content_start(struct smtp_session *s, enum data_filter_mode mode)
{
	struct smtp_tx *tx = s->tx;

	data_filter_init(&tx->df, mode, s->cfg->bare_eol, s->cfg->max_text_line,
			 s->cfg->max_message_size, smtp_tx_write, tx);
	smtp_tx_received(s);
	smtp_set_read_timeout(s, s->cfg->timeout_data);
}

/* smtp_storage_reply - the reply for a failed write or commit. */
static void smtp_storage_reply(struct smtp_session *s, int err)
{
	if (err == EFBIG)
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
	else if (err == ENOSPC || err == EDQUOT)
		smtp_reply(s, "452 4.3.1 Insufficient system storage");
	else
		smtp_reply(s, "451 4.3.0 Error: queue file write error");
}

/* smtp_reply_rule - send a reply a rule chose. */
static void smtp_reply_rule(struct smtp_session *s, const struct rule_reply *r)
{
	smtp_reply(s, "%d%s%s%s%s", r->code, r->enhanced[0] ? " " : "", r->enhanced,
		   r->text[0] ? " " : "", r->text);
}

/* smtp_rules - run a stage's rules for the session. */
static enum rule_status smtp_rules(struct smtp_session *s, enum rule_stage stage,
				   struct rule_verdict *v)
{
	if (s->rules == NULL) {
		memset(v, 0, sizeof(*v));
		return v->status = RULE_NEXT;
	}
	return rules_run(s->rules, stage, &s->rctx, v);
}

/*
 * smtp_rules_refused - act on a verdict that refuses: send its reply (and
 * for deny, close). Returns 1 when the command is refused, 0 when it goes on.
 */
static int smtp_rules_refused(struct smtp_session *s, enum rule_stage stage,
			      const struct rule_verdict *v)
{
	if (v->status != RULE_DENY && v->status != RULE_REJECT && v->status != RULE_INFO &&
	    v->status != RULE_ERROR)
		return 0;
	log_notice("%s: %s %s[%s]: %s by rule \"%s\": %d %s %s",
		   s->tx && s->tx->env.id[0] ? s->tx->env.id : "NOQUEUE", rules_stage_name(stage),
		   s->helo[0] ? s->helo : "unknown", s->client_ip, rules_status_name(v->status),
		   v->rule, v->reply.code, v->reply.enhanced, v->reply.text);
	smtp_reply_rule(s, &v->reply);
	if (v->status == RULE_DENY || stage == RULE_STAGE_CONNECT)
		smtp_close(s, v->status == RULE_DENY ? "denied by rules" : "refused by rules");
	return 1;
}

/* smtp_rules_accept_reply - whether the verdict's accept code replaces ours. */
static int smtp_rules_accept_reply(const struct rule_verdict *v)
{
	return (v->status == RULE_ACCEPT || v->status == RULE_FACCEPT) && v->has_reply;
}

/* smtp_preq_load - read the message back from its file for the preq rules. */
static struct message *smtp_preq_load(struct smtp_tx *tx)
{
	struct message *msg;
	size_t off = 0, len = (size_t)tx->written;
	char *buf = malloc(len + 1);
	ssize_t n;

	if (buf == NULL)
		return NULL;
	while (off < len) {
		n = pread(tx->fd, buf + off, len - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return NULL;
		}
		off += (size_t)n;
	}
	if ((msg = message_parse_take(buf, len)) == NULL)
		free(buf);
	return msg;
}

/* smtp_preq_store - write a message the rules changed over the file's content. */
static int smtp_preq_store(struct smtp_tx *tx, const struct message *msg)
{
	size_t len, off = 0;
	char *buf = message_serialize(msg, &len);
	ssize_t n;

	if (buf == NULL)
		return ENOMEM;
	while (off < len) {
		n = pwrite(tx->fd, buf + off, len - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? errno : EIO;
		}
		off += (size_t)n;
	}
	free(buf);
	if (ftruncate(tx->fd, (off_t)len) < 0 || lseek(tx->fd, (off_t)len, SEEK_SET) < 0)
		return errno;
	tx->written = len;
	return 0;
}

/*
 * smtp_preq - run the preq rules on the complete message; 1 when the
 * message is refused (the reply is sent), 0 when it goes on to the queue.
 */
static int smtp_preq(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct rule_verdict v;
	struct message *msg = NULL;
	int err = 0;

	if (s->rules != NULL && rules_stage_used(s->rules, RULE_STAGE_PREQ) && !s->rctx.skip_all) {
		if ((msg = smtp_preq_load(tx)) == NULL) {
			log_err("%s: cannot read the message back for the rules", tx->env.id);
			smtp_reply(s, "451 4.3.0 Error: queue file read error");
			return 1;
		}
		s->rctx.msg = msg;
	}
	smtp_rules(s, RULE_STAGE_PREQ, &v);
	s->rctx.msg = NULL;
	if (msg != NULL && message_modified(msg) && v.status != RULE_DENY &&
	    v.status != RULE_REJECT && v.status != RULE_INFO && v.status != RULE_ERROR)
		err = smtp_preq_store(tx, msg);
	message_free(msg);
	if (smtp_rules_refused(s, RULE_STAGE_PREQ, &v))
		return 1;
	if (err != 0) {
		log_err("%s: cannot write the message the rules changed: %s", tx->env.id,
			strerror(err));
		smtp_storage_reply(s, err);
		return 1;
	}
	if (smtp_rules_accept_reply(&v)) {
		tx->has_final_reply = 1;
		tx->final_reply = v.reply;
	}
	if (v.status == RULE_QUARANTINE && envelope_set(&tx->env.quarantine, v.quarantine) < 0) {
		smtp_reply(s, "451 4.3.0 Error: out of memory");
		return 1;
	}
	/* A faccept skips every later rule: the postq and delivery ones too. */
	tx->env.faccept = s->rctx.skip_all && tx->env.quarantine == NULL;
	return 0;
}

/* smtp_message_end - the content is complete: check it and ask for the commit. */
static void smtp_message_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const char *refusal = data_filter_reply(&tx->df);
	char *json;
	size_t jlen;
	uint64_t content_len;

	smtp_set_read_timeout(s, s->cfg->timeout_command);
	s->state = SMTP_STATE_READY;
	if (refusal != NULL) {
		log_notice("%s: refused message from %s[%s]: %s", tx->env.id, s->helo, s->client_ip,
			   refusal);
		smtp_reply(s, "%s", refusal);
		smtp_tx_reset(s);
		return;
	}
	smtp_tx_flush(tx);
	if (tx->write_error == 0 && smtp_preq(s)) {
		smtp_tx_reset(s);
		return;
	}
	if (tx->env.nrcpts == 0) {
		/* The rules took every recipient away: nothing is left to deliver. */
		log_notice("%s: discarded: the rules removed every recipient", tx->env.id);
		smtp_reply(s, "250 2.0.0 Ok: discarded");
		smtp_tx_reset(s);
		return;
	}
	content_len = tx->written;
	tx->env.received_at = time(NULL);
	free(tx->env.vars);
	tx->env.vars = rules_tx_vars(&s->rctx);
	if (envelope_set(&tx->env.protocol, smtp_protocol(s)) < 0 ||
	    (json = envelope_to_json(&tx->env)) == NULL) {
		smtp_reply(s, "451 4.3.0 Error: out of memory");
		smtp_tx_reset(s);
		return;
	}
	jlen = strlen(json);
	smtp_tx_write(tx, json, jlen);
	free(json);
	smtp_tx_flush(tx);
	if (tx->write_error != 0) {
		log_err("%s: cannot write message file: %s", tx->env.id, strerror(tx->write_error));
		smtp_storage_reply(s, tx->write_error);
		smtp_tx_reset(s);
		return;
	}
	if (smtp_queue_send(s, IPC_MSG_COMMIT, tx->env.id, content_len, jlen) < 0) {
		smtp_reply(s, "451 4.3.0 Error: queue unavailable");
		smtp_tx_reset(s);
		return;
	}
	s->wait = SMTP_WAIT_COMMIT;
}

/* smtp_committed - the queue's answer to a commit. */
static void smtp_committed(struct smtp_session *s, const struct ipc_msg *m)
{
	struct smtp_tx *tx = s->tx;

	if (tx == NULL || s->wait != SMTP_WAIT_COMMIT || strcmp(m->id, tx->env.id) != 0)
		fatal("commit answer for %s that no transaction waits for", m->id);
	s->wait = SMTP_WAIT_NONE;
	if (m->status != 0) {
		smtp_storage_reply(s, m->status);
		smtp_tx_free(s, 0);
		return;
	}
	log_info("%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu, client=%s[%s], proto=%s%s%s", tx->env.id,
		 tx->env.mail_from, tx->written, tx->env.nrcpts, s->helo, s->client_ip,
		 tx->env.protocol, s->authenticated ? ", sasl_username=" : "",
		 s->authenticated ? s->authid : "");
	if (tx->env.quarantine != NULL)
		log_notice("%s: quarantined in %s", tx->env.id, tx->env.quarantine);
	if (tx->has_final_reply)
		smtp_reply_rule(s, &tx->final_reply);
	else
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", tx->env.id);
	s->cmd_ok[tx->chunking ? SMTP_VERB_BDAT : SMTP_VERB_DATA]++;
	s->queued++;
	smtp_log_id(s, tx->env.id);
	smtp_tx_free(s, 0);
}

/* smtp_created - the queue's answer to MAIL's request for a message file. */
static void smtp_created(struct smtp_session *s, const struct ipc_msg *m, int fd)
{
	struct smtp_tx *tx = s->tx;

	if (tx == NULL || s->wait != SMTP_WAIT_CREATE)
		fatal("message file %s that no transaction waits for", m->id);
	s->wait = SMTP_WAIT_NONE;
	if (m->status != 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		if (m->status == ENOSPC)
			smtp_reply(s, "452 4.3.1 Insufficient system storage");
		else
			smtp_reply(s, "451 4.3.0 Error: queue unavailable, try again later");
		smtp_tx_free(s, 0);
		return;
	}
	tx->fd = fd;
	memcpy(tx->env.id, m->id, SPOOL_ID_LEN + 1);
	s->state = SMTP_STATE_MAIL;
	s->cmd_ok[SMTP_VERB_MAIL]++;
	if (tx->has_mail_reply)
		smtp_reply_rule(s, &tx->mail_reply);
	else
		smtp_reply(s, "250 2.1.0 Ok");
}

/* smtp_queue_cb - answers from the queue process. */
static void smtp_queue_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct ipc_msg m;
	int passfd, n;

	while ((n = ipc_recv((int)fd, &m, &passfd)) > 0) {
		if (m.type == IPC_MSG_CREATED)
			smtp_created(s, &m, passfd);
		else if (m.type == IPC_MSG_COMMITTED)
			smtp_committed(s, &m);
		else if (m.type == IPC_RULE_DONE && passfd >= 0)
			close(passfd); /* late: spool_client has shut the channel */
		else if (m.type != IPC_RULE_DONE)
			fatal("unexpected message type %u from the queue", m.type);
	}
	if (n == 0 || errno != EAGAIN) {
		log_err("queue channel lost");
		event_del(s->queue_ev);
		close(s->queue_fd);
		s->queue_fd = -1;
		if (s->wait == SMTP_WAIT_CREATE || s->wait == SMTP_WAIT_COMMIT) {
			s->wait = SMTP_WAIT_NONE;
			smtp_reply(s, "421 4.3.0 %s Error: queue unavailable, closing connection",
				   s->cfg->hostname);
			smtp_close(s, "queue unavailable");
			return;
		}
	}
	smtp_input_process(s);
}

/* smtp_starttls_offered - whether STARTTLS may be used now. */
static int smtp_starttls_offered(const struct smtp_session *s)
{
	return s->tls != NULL && s->listener->tls != LISTENER_TLS_NONE && !s->tls_active;
}

/* smtp_auth_plaintext_ok - whether this client may authenticate without
 * TLS: never on a listener that requires TLS first. */
static int smtp_auth_plaintext_ok(const struct smtp_session *s)
{
	return s->cfg->auth_allow_plaintext && s->listener->tls != LISTENER_TLS_ENCRYPT &&
	       netaddr_list_contains(s->cfg->auth_plaintext_networks, s->client_ip);
}

/* smtp_auth_offered - whether EHLO lists AUTH now. */
static int smtp_auth_offered(const struct smtp_session *s)
{
	return s->sasl != NULL && !s->authenticated &&
	       (s->tls_active || smtp_auth_plaintext_ok(s));
}

/* smtp_cmd_helo - HELO and EHLO: identify the client, reset the transaction. */
static void smtp_cmd_helo(struct smtp_session *s, const char *args, int esmtp)
{
	const char *err = smtp_helo_parse(args);
	char helo[sizeof(s->helo)];
	const char *greeting = s->cfg->hostname, *auth;
	struct rule_verdict v;
	int starttls;
	size_t len;

	if (err != NULL) {
		smtp_reply(s, "%s", err);
		return;
	}
	args += strspn(args, " \t");
	len = strlen(args);
	while (len > 0 && (args[len - 1] == ' ' || args[len - 1] == '\t'))
		len--;
	snprintf(helo, sizeof(helo), "%.*s", (int)len, args);
	smtp_tx_reset(s);
	s->rctx.helo = helo;
	smtp_rules(s, RULE_STAGE_HELO, &v);
	s->rctx.helo = s->helo;
	if (smtp_rules_refused(s, RULE_STAGE_HELO, &v))
		return;
	memcpy(s->helo, helo, sizeof(s->helo));
	s->conn_skip_all = s->rctx.skip_all;
	memcpy(s->conn_quarantine, s->rctx.quarantine, sizeof(s->conn_quarantine));
	s->esmtp = esmtp;
	s->state = SMTP_STATE_READY;
	if (smtp_rules_accept_reply(&v) && v.reply.text[0])
		greeting = v.reply.text;
	if (!esmtp) {
		smtp_reply(s, "250 %s", greeting);
		return;
	}
	smtp_reply(s, "250-%s", greeting);
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-SIZE %" PRIu64, s->cfg->max_message_size);
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-SMTPUTF8");
	smtp_reply(s, "250-ENHANCEDSTATUSCODES");
	smtp_reply(s, "250-CHUNKING");
	starttls = smtp_starttls_offered(s);
	auth = smtp_auth_offered(s) ? smtp_auth_mechanisms(s->sasl) : "";
	smtp_reply(s, "250%sDSN", starttls || auth[0] ? "-" : " ");
	if (starttls)
		smtp_reply(s, "250%sSTARTTLS", auth[0] ? "-" : " ");
	if (auth[0])
		smtp_reply(s, "250 AUTH %s", auth);
}

/* smtp_cmd_ehlo - EHLO. */
static void smtp_cmd_ehlo(struct smtp_session *s, const char *args)
{
	smtp_cmd_helo(s, args, 1);
}

/* smtp_cmd_helo_plain - HELO. */
static void smtp_cmd_helo_plain(struct smtp_session *s, const char *args)
{
	smtp_cmd_helo(s, args, 0);
}

/* smtp_tx_new - a transaction for an accepted MAIL command. */
static struct smtp_tx *smtp_tx_new(struct smtp_session *s, const struct smtp_mail *mail)
{
	struct smtp_tx *tx = malloc(sizeof(*tx));
	char from[SMTP_PATH_MAX + 1];

	if (tx == NULL)
		return NULL;
	/* The write buffer is filled before it is read: zeroing its 64 KiB for
	 * every transaction would only cost page faults. */
	memset(tx, 0, offsetof(struct smtp_tx, wbuf));
	tx->fd = -1;
	tx->utf8 = mail->smtputf8;
	tx->env.client_port = s->client_port;
	tx->env.body = mail->body;
	tx->env.smtputf8 = mail->smtputf8;
	tx->env.ret = mail->ret;
	smtp_address_format(&mail->from, from, sizeof(from));
	if (envelope_set(&tx->env.mail_from, from) < 0 ||
	    envelope_set(&tx->env.listener, s->listener->name) < 0 ||
	    envelope_set(&tx->env.client_ip, s->client_ip) < 0 ||
	    envelope_set(&tx->env.helo, s->helo) < 0 ||
	    envelope_set(&tx->env.envid, mail->envid[0] ? mail->envid : NULL) < 0 ||
	    /* RFC 4954 5: AUTH= from a client we do not know stands for nobody. */
	    envelope_set(&tx->env.auth, !mail->auth[0]     ? NULL
					: s->authenticated ? mail->auth
							   : "<>") < 0 ||
	    envelope_set(&tx->env.authid, s->authenticated ? s->authid : NULL) < 0 ||
	    envelope_set(&tx->env.auth_mechanism, s->authenticated ? s->auth_mech : NULL) < 0 ||
	    envelope_set(&tx->env.tls_version, s->tls_active ? s->tls_info.version : NULL) < 0 ||
	    envelope_set(&tx->env.tls_cipher, s->tls_active ? s->tls_info.cipher : NULL) < 0) {
		envelope_clear(&tx->env);
		free(tx);
		return NULL;
	}
	return tx;
}

/* smtp_cmd_mail - MAIL: start a transaction; the queue creates its file. */
static void smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	struct smtp_mail mail;
	struct rule_verdict v;
	const char *err;

	if (s->state == SMTP_STATE_INIT) {
		smtp_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->state != SMTP_STATE_READY) {
		smtp_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->listener->tls == LISTENER_TLS_ENCRYPT && !s->tls_active) {
		smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->listener->auth == LISTENER_AUTH_REQUIRED && !s->authenticated) {
		smtp_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if ((err = smtp_mail_parse(args, &mail)) != NULL) {
		smtp_reply(s, "%s", err);
		return;
	}
	if (mail.size_given && mail.size > s->cfg->max_message_size) {
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	if ((s->tx = smtp_tx_new(s, &mail)) == NULL) {
		smtp_reply(s, "451 4.3.0 Error: out of memory");
		return;
	}
	s->rctx.env = &s->tx->env;
	s->rctx.mail_timestamp = time(NULL);
	smtp_rules(s, RULE_STAGE_MAIL, &v);
	if (smtp_rules_refused(s, RULE_STAGE_MAIL, &v)) {
		smtp_tx_free(s, 0);
		return;
	}
	if (smtp_rules_accept_reply(&v)) {
		s->tx->has_mail_reply = 1;
		s->tx->mail_reply = v.reply;
	}
	if (smtp_queue_send(s, IPC_MSG_CREATE, NULL, mail.size, 0) < 0) {
		smtp_tx_free(s, 0);
		smtp_reply(s, "451 4.3.0 Error: queue unavailable, try again later");
		return;
	}
	s->wait = SMTP_WAIT_CREATE;
}

/* smtp_cmd_rcpt - RCPT: add a recipient. */
static void smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_rcpt rcpt;
	char to[SMTP_PATH_MAX + 1];
	struct envelope before = {0};
	struct rule_verdict v;
	const char *err;

	if (s->state != SMTP_STATE_MAIL && s->state != SMTP_STATE_RCPT) {
		smtp_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->tx->chunking) {
		smtp_reply(s, "503 5.5.1 Error: RCPT after BDAT");
		return;
	}
	if ((err = smtp_rcpt_parse(args, s->tx->utf8, &rcpt)) != NULL) {
		smtp_reply(s, "%s", err);
		return;
	}
	if (s->tx->env.nrcpts >= s->cfg->max_recipients) {
		smtp_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	smtp_address_format(&rcpt.to, to, sizeof(to));
	/* A refused RCPT leaves the envelope as it was, whatever the rules
	 * changed before refusing: keep a copy to go back to. */
	if (s->rules != NULL && rules_stage_used(s->rules, RULE_STAGE_RCPT) &&
	    envelope_copy_rcpts(&before, &s->tx->env) < 0) {
		envelope_clear(&before);
		smtp_reply(s, "451 4.3.0 Error: out of memory");
		return;
	}
	if (envelope_add_rcpt(&s->tx->env, to, rcpt.notify,
			      rcpt.orcpt_type[0] ? rcpt.orcpt_type : NULL,
			      rcpt.orcpt_type[0] ? rcpt.orcpt : NULL) < 0) {
		envelope_clear(&before);
		smtp_reply(s, "451 4.3.0 Error: out of memory");
		return;
	}
	/* The rules see the recipient in rcpt_list already. */
	s->rctx.rcpt = to;
	smtp_rules(s, RULE_STAGE_RCPT, &v);
	s->rctx.rcpt = NULL;
	if (smtp_rules_refused(s, RULE_STAGE_RCPT, &v)) {
		envelope_swap_rcpts(&s->tx->env, &before);
		envelope_clear(&before);
		return;
	}
	envelope_clear(&before);
	/* Even when the rules took every recipient away: the client was told
	 * 250, so DATA goes on, and the end of the message says "discarded". */
	s->state = SMTP_STATE_RCPT;
	if (smtp_rules_accept_reply(&v))
		smtp_reply_rule(s, &v.reply);
	else
		smtp_reply(s, "250 2.1.5 Ok");
}

/* smtp_tx_refusal - why DATA / BDAT cannot start now, or NULL. */
static const char *smtp_tx_refusal(const struct smtp_session *s)
{
	if (s->state == SMTP_STATE_INIT || s->state == SMTP_STATE_READY)
		return "503 5.5.1 Error: need MAIL command";
	if (s->state == SMTP_STATE_MAIL)
		return "503 5.5.1 Error: need RCPT command";
	return NULL;
}

/* smtp_cmd_data - DATA: receive dot-terminated content. */
static void smtp_cmd_data(struct smtp_session *s, const char *args)
{
	const char *err = smtp_tx_refusal(s);

	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (err == NULL && s->tx->chunking)
		err = "503 5.5.1 Error: DATA after BDAT";
	if (err != NULL) {
		smtp_reply(s, "%s", err);
		return;
	}
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtp_content_start(s, DATA_FILTER_DATA);
	s->state = SMTP_STATE_DATA;
}

/* smtp_cmd_bdat - BDAT (RFC 3030): a chunk of exactly the given size. */
static void smtp_cmd_bdat(struct smtp_session *s, const char *args)
{
	const char *err;
	uint64_t size;
	int last;

	if ((err = smtp_bdat_parse(args, &size, &last)) != NULL) {
		smtp_reply(s, "%s", err);
		return;
	}
	/* Whatever the answer, the chunk's bytes follow: read them first. */
	s->bdat_left = size;
	s->bdat_last = last;
	s->bdat_refusal = smtp_tx_refusal(s);
	s->bdat_prev = s->state;
	s->state = SMTP_STATE_BDAT;
	if (s->bdat_refusal == NULL && !s->tx->chunking) {
		s->tx->chunking = 1;
		smtp_content_start(s, DATA_FILTER_BDAT);
	}
	smtp_set_read_timeout(s, s->cfg->timeout_data);
}

/* smtp_bdat_end - all bytes of a chunk are in: answer it. */
static void smtp_bdat_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	const char *refusal = s->bdat_refusal;

	s->bdat_refusal = NULL;
	if (refusal != NULL) {
		s->state = s->bdat_prev;
		smtp_set_read_timeout(s, s->cfg->timeout_command);
		smtp_reply(s, "%s", refusal);
		return;
	}
	if (s->bdat_last) {
		data_filter_finish(&tx->df);
		smtp_message_end(s);
		return;
	}
	s->state = SMTP_STATE_RCPT;
	smtp_set_read_timeout(s, s->cfg->timeout_command);
	if ((refusal = data_filter_reply(&tx->df)) != NULL) {
		/* RFC 3030: after an error the client sends no more chunks. */
		smtp_reply(s, "%s", refusal);
		smtp_tx_reset(s);
		return;
	}
	s->cmd_ok[SMTP_VERB_BDAT]++;
	smtp_reply(s, "250 2.0.0 %" PRIu64 " octets received", tx->df.size);
}

/* smtp_cmd_rset - RSET. */
static void smtp_cmd_rset(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtp_tx_reset(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

/* smtp_cmd_noop - NOOP (an argument is allowed and ignored). */
static void smtp_cmd_noop(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

/* smtp_cmd_quit - QUIT. */
static void smtp_cmd_quit(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: QUIT");
		return;
	}
	smtp_reply(s, "221 2.0.0 Bye");
	smtp_close(s, "ok");
}

/* smtp_cmd_help - HELP. */
static void smtp_cmd_help(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT");
	smtp_reply(s, "214 2.0.0 HELP VRFY EXPN STARTTLS AUTH; see RFC 5321");
}

/* smtp_cmd_vrfy - VRFY: never tells whether a user exists. */
static void smtp_cmd_vrfy(struct smtp_session *s, const char *args)
{
	if (*args == '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	smtp_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

/* smtp_cmd_expn - EXPN: lists are not disclosed. */
static void smtp_cmd_expn(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "502 5.5.1 Error: EXPN not supported");
}

/* smtp_cmd_unknown - anything else. */
static void smtp_cmd_unknown(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "500 5.5.2 Error: command not recognized");
}

/* smtp_cmd_starttls - STARTTLS (RFC 3207): the handshake follows this read. */
static void smtp_cmd_starttls(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls_active) {
		smtp_reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (!smtp_starttls_offered(s)) {
		smtp_reply(s, "502 5.5.1 Error: STARTTLS not available");
		return;
	}
	if (s->state == SMTP_STATE_INIT) {
		smtp_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->tx != NULL) {
		smtp_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	s->tls_pending = 1;
}

/* smtp_auth_failed - count a failed AUTH; past the limit, hang up. */
static void smtp_auth_failed(struct smtp_session *s)
{
	if (++s->auth_failures < s->cfg->auth_max_failures)
		return;
	log_notice("%s: too many failed authentication attempts (%u)", s->client_ip,
		   s->auth_failures);
	smtp_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts",
		   s->cfg->hostname);
	smtp_close(s, "too many failed authentication attempts");
}

/* smtp_auth_end - an exchange is over without success: a fresh start for the next. */
static void smtp_auth_end(struct smtp_session *s)
{
	s->auth_pending = 0;
	if (smtp_auth_reset(s->sasl) < 0)
		log_err("%s: cannot reset the SASL state", s->client_ip);
}

/* smtp_auth_accepted - Cyrus accepted the credentials: now the rules decide. */
static void smtp_auth_accepted(struct smtp_session *s)
{
	struct rule_verdict v;

	s->auth_pending = 0;
	snprintf(s->authid, sizeof(s->authid), "%s", smtp_auth_user(s->sasl));
	s->rctx.is_authenticated = 1;
	s->rctx.auth_mechanism = s->auth_mech;
	s->rctx.auth_authid = s->authid;
	smtp_rules(s, RULE_STAGE_AUTHENTICATE, &v);
	if (v.status == RULE_DENY || v.status == RULE_REJECT || v.status == RULE_INFO ||
	    v.status == RULE_ERROR) {
		s->rctx.is_authenticated = 0;
		s->rctx.auth_mechanism = NULL;
		s->rctx.auth_authid = NULL;
		log_notice("%s: authentication of %s with %s refused by rule \"%s\": %s",
			   s->client_ip, s->authid, s->auth_mech, v.rule,
			   rules_status_name(v.status));
		s->authid[0] = '\0';
		smtp_auth_end(s);
		if (v.status == RULE_ERROR) {
			smtp_reply(s, "454 4.7.0 Temporary authentication failure");
			return;
		}
		smtp_reply(s, "535 5.7.8 Error: authentication failed");
		if (v.status == RULE_DENY)
			smtp_close(s, "denied by rules");
		else
			smtp_auth_failed(s);
		return;
	}
	s->authenticated = 1;
	/* Decided outside a transaction: a faccept or quarantine here lasts
	 * for the connection, as one at connect or helo does. */
	s->conn_skip_all = s->rctx.skip_all;
	memcpy(s->conn_quarantine, s->rctx.quarantine, sizeof(s->conn_quarantine));
	s->cmd_ok[SMTP_VERB_AUTH]++;
	log_info("%s: authenticated as %s with %s", s->client_ip, s->authid, s->auth_mech);
	smtp_reply(s, "235 2.7.0 Authentication successful");
}

/* smtp_auth_outcome - answer one step of the exchange. */
static void smtp_auth_outcome(struct smtp_session *s, enum smtp_auth_result r,
			      const char *challenge, const char *why)
{
	switch (r) {
	case SMTP_AUTH_CONTINUE:
		/* Not through smtp_reply: a challenge may be longer than its line. */
		s->auth_pending = 1;
		s->last_code = 334;
		log_debug("%s: >>> 334 (challenge, %zu bytes)", s->client_ip, strlen(challenge));
		evbuffer_add_printf(bufferevent_get_output(s->bev), "334 %s\r\n", challenge);
		return;
	case SMTP_AUTH_OK:
		smtp_auth_accepted(s);
		return;
	case SMTP_AUTH_NOMECH:
		smtp_auth_end(s);
		smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	case SMTP_AUTH_TEMP:
		log_warn("%s: authentication with %s could not be checked: %s", s->client_ip,
			 s->auth_mech, why);
		smtp_auth_end(s);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	case SMTP_AUTH_BAD_BASE64:
		log_notice("%s: authentication failed with %s: %s", s->client_ip, s->auth_mech,
			   why);
		smtp_auth_end(s);
		smtp_reply(s, "501 5.5.2 Error: cannot decode response");
		smtp_auth_failed(s);
		return;
	case SMTP_AUTH_FAIL:
		log_notice("%s: authentication failed with %s: %s", s->client_ip, s->auth_mech,
			   why);
		smtp_auth_end(s);
		smtp_reply(s, "535 5.7.8 Error: authentication failed");
		smtp_auth_failed(s);
		return;
	}
}

/* smtp_auth_response - a line of the client inside an AUTH exchange. */
static void smtp_auth_response(struct smtp_session *s, const char *line)
{
	char challenge[SMTP_AUTH_LINE_MAX + 4];
	const char *why = "";
	enum smtp_auth_result r;

	log_debug("%s: <<< (AUTH response, %zu bytes)", s->client_ip, strlen(line));
	s->last_code = 0;
	if (strcmp(line, "*") == 0) {
		log_notice("%s: authentication with %s cancelled by the client", s->client_ip,
			   s->auth_mech);
		smtp_auth_end(s);
		smtp_reply(s, "501 5.0.0 Authentication cancelled");
		smtp_auth_failed(s);
		return;
	}
	r = smtp_auth_step(s->sasl, line, challenge, sizeof(challenge), &why);
	smtp_auth_outcome(s, r, challenge, why);
}

/* smtp_auth_too_long - a response past SMTP_AUTH_LINE_MAX ends the exchange. */
static void smtp_auth_too_long(struct smtp_session *s)
{
	log_notice("%s: authentication with %s: response line too long", s->client_ip,
		   s->auth_mech);
	smtp_auth_end(s);
	smtp_reply(s, "500 5.5.6 Authentication exchange line is too long");
	smtp_auth_failed(s);
}

/* smtp_cmd_auth - AUTH mechanism [initial-response] (RFC 4954). */
static void smtp_cmd_auth(struct smtp_session *s, const char *args)
{
	char challenge[SMTP_AUTH_LINE_MAX + 4], mech[sizeof(s->auth_mech)];
	const char *response = NULL, *why = "", *sp;
	enum smtp_auth_result r;
	size_t n;

	if (s->listener->auth == LISTENER_AUTH_NO) {
		smtp_reply(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (s->sasl == NULL) {
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	if (s->state == SMTP_STATE_INIT) {
		smtp_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->authenticated) {
		smtp_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->tx != NULL) {
		smtp_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (!s->tls_active && !smtp_auth_plaintext_ok(s)) {
		if (s->listener->tls == LISTENER_TLS_ENCRYPT)
			smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		else
			smtp_reply(s, "538 5.7.11 Encryption required for requested "
				      "authentication mechanism");
		return;
	}
	n = strcspn(args, " ");
	sp = args + n;
	if (n == 0 || n >= sizeof(mech) || (*sp == ' ' && (sp[1] == '\0' || strchr(sp + 1, ' ')))) {
		smtp_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	memcpy(mech, args, n);
	mech[n] = '\0';
	for (char *p = mech; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	if (*sp == ' ')
		response = sp + 1;
	memcpy(s->auth_mech, mech, sizeof(mech));
	r = smtp_auth_start(s->sasl, mech, response, challenge, sizeof(challenge), &why);
	smtp_auth_outcome(s, r, challenge, why);
}

static void (*const smtp_commands[SMTP_VERB_COUNT])(struct smtp_session *, const char *) = {
	[SMTP_VERB_UNKNOWN] = smtp_cmd_unknown, [SMTP_VERB_HELO] = smtp_cmd_helo_plain,
	[SMTP_VERB_EHLO] = smtp_cmd_ehlo,       [SMTP_VERB_MAIL] = smtp_cmd_mail,
	[SMTP_VERB_RCPT] = smtp_cmd_rcpt,       [SMTP_VERB_DATA] = smtp_cmd_data,
	[SMTP_VERB_BDAT] = smtp_cmd_bdat,       [SMTP_VERB_RSET] = smtp_cmd_rset,
	[SMTP_VERB_NOOP] = smtp_cmd_noop,       [SMTP_VERB_QUIT] = smtp_cmd_quit,
	[SMTP_VERB_HELP] = smtp_cmd_help,       [SMTP_VERB_VRFY] = smtp_cmd_vrfy,
	[SMTP_VERB_EXPN] = smtp_cmd_expn,       [SMTP_VERB_STARTTLS] = smtp_cmd_starttls,
	[SMTP_VERB_AUTH] = smtp_cmd_auth,
};

/* smtp_delay_cb - the error delay is over: let the reply go and read on. */
static void smtp_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	s->wait = SMTP_WAIT_NONE;
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	smtp_input_process(s);
}

/* smtp_error_limits - after a failed command: slow down or hang up. */
static void smtp_error_limits(struct smtp_session *s)
{
	struct timeval tv;

	if (s->closing || s->last_code < 400)
		return;
	if (s->errors >= s->cfg->hard_error_limit) {
		smtp_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
		smtp_close(s, "too many errors");
		return;
	}
	if (s->errors > s->cfg->soft_error_limit && s->wait == SMTP_WAIT_NONE) {
		/* Hold the reply back, like Postfix's smtpd_error_sleep_time. */
		tv.tv_sec = s->cfg->error_delay_ms / 1000;
		tv.tv_usec = (s->cfg->error_delay_ms % 1000) * 1000;
		bufferevent_disable(s->bev, EV_WRITE);
		s->wait = SMTP_WAIT_DELAY;
		evtimer_add(s->delay_ev, &tv);
	}
}

/* smtp_command - run one command line. */
static void smtp_command(struct smtp_session *s, const char *line, size_t len)
{
	const char *err, *args;
	enum smtp_verb verb;

	if (s->shutdown && s->tx == NULL) {
		smtp_reply(s, "421 4.3.2 %s Service shutting down, closing connection",
			   s->cfg->hostname);
		smtp_close(s, "shutdown");
		return;
	}
	/* An AUTH line may carry a password, and so may a line that is no
	 * command (a response pipelined behind a refused AUTH): log the
	 * mechanism, or the length, only. */
	switch (smtp_verb_parse(line, &args)) {
	case SMTP_VERB_AUTH:
		log_debug("%s: <<< AUTH %.*s ...", s->client_ip, (int)strcspn(args, " \t"), args);
		break;
	case SMTP_VERB_UNKNOWN:
		log_debug("%s: <<< (not a command, %zu bytes)", s->client_ip, len);
		break;
	default:
		log_debug("%s: <<< %.*s", s->client_ip, (int)len, line);
	}
	s->last_code = 0;
	if ((err = smtp_line_check(line, len, 1)) != NULL) {
		s->cmd_total[SMTP_VERB_UNKNOWN]++;
		smtp_reply(s, "%s", err);
	} else {
		verb = smtp_verb_parse(line, &args);
		s->cmd_total[verb]++;
		smtp_commands[verb](s, args);
		/* MAIL, DATA, BDAT and AUTH succeed when their last reply is positive:
		 * they count themselves then. */
		if (s->last_code != 0 && s->last_code < 400 && verb != SMTP_VERB_MAIL &&
		    verb != SMTP_VERB_DATA && verb != SMTP_VERB_BDAT && verb != SMTP_VERB_AUTH)
			s->cmd_ok[verb]++;
	}
	smtp_error_limits(s);
}

/* smtp_line_too_long - refuse a line past the limit, once. */
static void smtp_line_too_long(struct smtp_session *s)
{
	if (s->auth_pending) {
		smtp_auth_too_long(s);
	} else {
		s->cmd_total[SMTP_VERB_UNKNOWN]++;
		smtp_reply(s, "500 5.5.2 Error: line too long");
	}
	smtp_error_limits(s);
}

/* smtp_line_process - take one command line from in; 0 when more is needed. */
static int smtp_line_process(struct smtp_session *s, struct evbuffer *in)
{
	size_t eol_len, len, max = s->cfg->max_command_line;
	struct evbuffer_ptr pos = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	char *line;

	if (s->auth_pending)
		max = SMTP_AUTH_LINE_MAX + 2;
	if (pos.pos < 0) {
		if (evbuffer_get_length(in) < max)
			return 0;
		/* No end of line within the limit: refuse once, skip to the LF. */
		if (!s->discarding) {
			s->discarding = 1;
			smtp_line_too_long(s);
		}
		evbuffer_drain(in, evbuffer_get_length(in));
		return 0;
	}
	len = (size_t)pos.pos;
	if (s->discarding || len + 1 > max) {
		evbuffer_drain(in, len + 1);
		if (!s->discarding)
			smtp_line_too_long(s);
		s->discarding = 0;
		return 1;
	}
	line = (char *)evbuffer_pullup(in, (ssize_t)(len + 1));
	line[len] = '\0'; /* replaces the LF: the line is drained below */
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (s->auth_pending) {
		smtp_auth_response(s, line);
		smtp_error_limits(s);
	} else {
		smtp_command(s, line, len);
	}
	evbuffer_drain(in, (size_t)pos.pos + 1);
	return 1;
}

/* smtp_content_process - feed DATA or BDAT bytes; 0 when more is needed. */
static int smtp_content_process(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec vec;
	size_t avail, take, used;

	while (evbuffer_peek(in, -1, NULL, &vec, 1) > 0 && (avail = vec.iov_len) > 0) {
		if (s->state == SMTP_STATE_BDAT) {
			take = avail < s->bdat_left ? avail : (size_t)s->bdat_left;
			if (s->bdat_refusal == NULL)
				data_filter_feed(&s->tx->df, vec.iov_base, take);
			evbuffer_drain(in, take);
			s->bdat_left -= take;
			if (s->bdat_left == 0)
				break;
			continue;
		}
		used = data_filter_feed(&s->tx->df, vec.iov_base, avail);
		evbuffer_drain(in, used);
		if (s->tx->df.done)
			break;
	}
	if (s->state == SMTP_STATE_BDAT && s->bdat_left == 0) {
		smtp_bdat_end(s);
		smtp_error_limits(s);
		return 1;
	}
	if (s->state == SMTP_STATE_DATA && s->tx->df.done) {
		s->last_code = 0;
		smtp_message_end(s);
		smtp_error_limits(s);
		return 1;
	}
	return 0;
}

/* smtp_tls_begin - put TLS between the socket and the session. */
static void smtp_tls_begin(struct smtp_session *s)
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
	smtp_overrun_fd = -1;
	bufferevent_setcb(s->bev, smtp_read_cb, smtp_write_cb, smtp_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, smtp_input_high_water(s->cfg));
	smtp_set_read_timeout(s, s->cfg->tls_handshake_timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* smtp_tls_ready - the handshake is done. */
static void smtp_tls_ready(struct smtp_session *s)
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
		smtp_auth_set_tls(s->sasl, (unsigned)s->tls_info.bits);
	smtp_set_read_timeout(s, s->cfg->timeout_command);
	if (s->listener->kind_id == LISTENER_SUBMISSIONS && s->cmd_total[SMTP_VERB_STARTTLS] == 0) {
		smtp_greet(s);
		return;
	}
	/* RFC 3207 4.2: forget what the client said before, AUTH included;
	 * the client starts again with EHLO, and the helo stage runs again. */
	smtp_tx_reset(s);
	s->helo[0] = '\0';
	s->esmtp = 0;
	if (s->authenticated) {
		s->authenticated = 0;
		s->authid[0] = '\0';
		s->rctx.is_authenticated = 0;
		s->rctx.auth_mechanism = NULL;
		s->rctx.auth_authid = NULL;
		if (s->sasl != NULL && smtp_auth_reset(s->sasl) == 0)
			smtp_auth_set_tls(s->sasl, (unsigned)s->tls_info.bits);
	}
	s->state = SMTP_STATE_INIT;
	s->conn_skip_all = s->connect_skip_all;
	memcpy(s->conn_quarantine, s->connect_quarantine, sizeof(s->conn_quarantine));
	s->rctx.skip_all = s->conn_skip_all;
	memcpy(s->rctx.quarantine, s->conn_quarantine, sizeof(s->rctx.quarantine));
	smtp_input_process(s);
}

/* smtp_input_process - handle whatever the client sent, as far as we may. */
static void smtp_input_process(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer *out = bufferevent_get_output(s->bev);
	int more;

	while (!s->closing && s->wait == SMTP_WAIT_NONE && !s->tls_pending &&
	       !s->tls_handshaking) {
		/* A client that pipelines without reading its replies waits until
		 * it has read them: the write callback resumes us. */
		if (evbuffer_get_length(out) > SMTP_OUTPUT_HIGH_WATER)
			return;
		if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT)
			more = smtp_content_process(s, in);
		else
			more = smtp_line_process(s, in);
		if (!more)
			break;
	}
	if (s->tls_pending && !s->closing) {
		smtp_tls_begin(s);
		return;
	}
	if (s->closing || s->wait != SMTP_WAIT_NONE || s->tls_handshaking)
		return;
	if (s->eof) {
		/* A half-closed client still reads: it got every reply it asked for. */
		smtp_close(s, smtp_lost_result(s));
		return;
	}
	if (s->shutdown && s->tx == NULL && evbuffer_get_length(in) == 0 &&
	    s->state != SMTP_STATE_BDAT) {
		smtp_reply(s, "421 4.3.2 %s Service shutting down, closing connection",
			   s->cfg->hostname);
		smtp_close(s, "shutdown");
	}
}

/* smtp_read_cb - bytes from the client. */
static void smtp_read_cb(struct bufferevent *bev, void *arg)
{
	smtp_input_process(arg);
}

/* smtp_counts - "ehlo=1 mail=1 rcpt=0/1 ... commands=3/4" for the summary. */
static void smtp_counts(const struct smtp_session *s, char *buf, size_t len)
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
 * smtp_tls_flush - with TLS, the last reply may still sit encrypted in the
 * socket's buffer when the session's own buffer is empty: send it, with a
 * close_notify after it, before the process exits.
 */
static void smtp_tls_flush(struct smtp_session *s)
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
		left = SMTP_TLS_FLUSH_MS - ((now.tv_sec - start.tv_sec) * 1000 +
					    (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int)left) < 0)
			return;
	}
}

/* smtp_finish - log the summary line and stop the loop. */
static void smtp_finish(struct smtp_session *s)
{
	char counts[512];
	char *p;

	if (s->finished)
		return;
	s->finished = 1;
	smtp_tls_flush(s);
	smtp_counts(s, counts, sizeof(counts));
	for (p = counts; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	log_info("disconnect from %s[%s]:%u %s queued=%u%s%s result=%s",
		 s->helo[0] ? s->helo : "unknown", s->client_ip, s->client_port, counts, s->queued,
		 s->ids[0] ? " ids=" : "", s->ids, s->result ? s->result : "ok");
	event_base_loopbreak(s->base);
}

/* smtp_write_cb - output drained: a closing session is done, another reads on. */
static void smtp_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->closing)
		smtp_finish(s);
	else if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		smtp_input_process(s);
}

/* smtp_finish_cb - smtp_finish, from the event loop. */
static void smtp_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	smtp_finish(arg);
}

/* smtp_close - stop reading; finish once the last reply is out. */
static void smtp_close(struct smtp_session *s, const char *result)
{
	s->closing = 1;
	s->result = result;
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_enable(s->bev, EV_WRITE);
	/* From the loop, not from here: the command that closes is not done
	 * yet (its counts), and with TLS the output is never seen waiting. */
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
	    event_base_once(s->base, -1, EV_TIMEOUT, smtp_finish_cb, s, &(struct timeval){0}) < 0)
		smtp_finish(s);
}

/* smtp_lost_result - how to describe a connection that ended under us. */
static const char *smtp_lost_result(const struct smtp_session *s)
{
	if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT)
		return "lost connection during message content";
	return s->tx ? "lost connection in a transaction" : "lost connection";
}

/* smtp_event_cb - end of file, errors and timeouts on the client socket. */
static void smtp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char why[256];

	if (what & BEV_EVENT_CONNECTED) {
		smtp_tls_ready(s);
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
		smtp_finish(s);
		return;
	}
	if (s->closing) {
		smtp_finish(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
		smtp_close(s, "timeout");
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		s->eof = 1;
		smtp_input_process(s);
		return;
	}
	s->result = smtp_lost_result(s);
	smtp_finish(s);
}

/* smtp_term_cb - SIGTERM: finish the transaction under way, then leave. */
static void smtp_term_cb(int signo, void *arg)
{
	struct smtp_session *s = arg;

	s->shutdown = 1;
	if (s->wait == SMTP_WAIT_NONE)
		smtp_input_process(s);
}

/* smtp_sockaddr - the text and port of an address. */
static void smtp_sockaddr(const struct sockaddr_storage *ss, char *ip, size_t iplen,
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

/* smtp_peer - fill in the client's and our own address. */
static void smtp_peer(struct smtp_session *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	strcpy(s->client_ip, "unknown");
	strcpy(s->server_ip, "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		smtp_sockaddr(&ss, s->client_ip, sizeof(s->client_ip), &s->client_port);
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		smtp_sockaddr(&ss, s->server_ip, sizeof(s->server_ip), &s->server_port);
}

/*
 * smtp_rules_service - a rule's request outside the sandbox, answered by the
 * queue process: whether an account exists, or saving a copy. Synchronous,
 * like the rule that asks; no other request of ours is outstanding while
 * rules run. Returns 0 or an errno value.
 */
static int smtp_rules_service(void *arg, enum rule_service kind, const char *name,
			      const char *file, const char *data, size_t len)
{
	struct smtp_session *s = arg;

	return spool_client_service(s->queue_fd, kind, name, file, data, len);
}

/* smtp_rules_send_mail - send_mail() from a rule: the queue opens the file,
 * the message is queued over our channel, synchronously like the rule. */
static int smtp_rules_send_mail(void *arg, const struct rule_mail *mail, char *id)
{
	struct smtp_session *s = arg;
	int err = send_mail_queue(s->queue_fd, mail, s->cfg->hostname, s->cfg->max_message_size,
				  id);

	if (err == 0)
		log_info("rules: send_mail %s: %s", mail->path, id);
	return err;
}


/* smtp_rules_overrun - a rule ran past [rules] time_limit: tell the client. */
static void smtp_rules_overrun(void)
{
	if (smtp_overrun_fd >= 0 &&
	    write(smtp_overrun_fd, smtp_overrun_reply, strlen(smtp_overrun_reply)) < 0)
		smtp_overrun_fd = -1;
}

/* smtp_rules_init - what the rules see of the connection. */
static void smtp_rules_init(struct smtp_session *s)
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
		.service = smtp_rules_service,
		.send_mail = smtp_rules_send_mail,
		.service_arg = s,
	};
	smtp_overrun_fd = bufferevent_getfd(s->bev);
	snprintf(smtp_overrun_reply, sizeof(smtp_overrun_reply),
		 "421 4.3.0 %s Error: local policy error, closing connection\r\n", s->cfg->hostname);
	rules_set_overrun(smtp_rules_overrun);
	rules_reseed(s->rules);
}

/* smtp_greet - the connect stage, then the greeting (or a refusal). */
static void smtp_greet(struct smtp_session *s)
{
	struct rule_verdict v;

	smtp_rules(s, RULE_STAGE_CONNECT, &v);
	if (smtp_rules_refused(s, RULE_STAGE_CONNECT, &v))
		return;
	s->conn_skip_all = s->connect_skip_all = s->rctx.skip_all;
	memcpy(s->conn_quarantine, s->rctx.quarantine, sizeof(s->conn_quarantine));
	memcpy(s->connect_quarantine, s->rctx.quarantine, sizeof(s->connect_quarantine));
	if (smtp_rules_accept_reply(&v) && v.reply.text[0])
		smtp_reply(s, "220 %s %s", s->cfg->hostname, v.reply.text);
	else
		smtp_reply(s, "220 %s %s", s->cfg->hostname, s->cfg->banner);
}

/* smtp_session_main - the session process. */
void smtp_session_main(const struct config *cfg, const struct listener_config *listener,
		       struct rules *rules, struct tls_server *tls, int fd, int queue_fd)
{
	struct smtp_session s = {.cfg = cfg,
				 .listener = listener,
				 .rules = rules,
				 .tls = tls,
				 .queue_fd = queue_fd};
	static const int sigs[] = {SIGTERM};
	char local[64], remote[64];

	/* Both sockets come non-blocking from the master. Replies are
	 * gathered before each write, so Nagle's algorithm has nothing to
	 * merge; with TLS it would hold a reply behind the session ticket
	 * until the client's delayed ACK (40 ms on Linux). */
	smtp_peer(&s, fd);
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) < 0)
		log_debug("TCP_NODELAY: %s", strerror(errno));
	if ((s.base = evloop_new()) == NULL ||
	    (s.bev = bufferevent_socket_new(s.base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
	    (s.queue_ev = event_new(s.base, queue_fd, EV_READ | EV_PERSIST, smtp_queue_cb, &s)) ==
		    NULL ||
	    (s.delay_ev = evtimer_new(s.base, smtp_delay_cb, &s)) == NULL ||
	    (s.term_ev = sigevent_new(s.base, sigs, 1, smtp_term_cb, &s)) == NULL ||
	    event_add(s.queue_ev, NULL) < 0)
		fatal("cannot set up the session event loop");
	log_info("connect from %s:%u on %s", s.client_ip, s.client_port, listener->name);
	bufferevent_setcb(s.bev, smtp_read_cb, smtp_write_cb, smtp_event_cb, &s);
	bufferevent_setwatermark(s.bev, EV_READ, 0, smtp_input_high_water(cfg));
	smtp_set_read_timeout(&s, cfg->timeout_command);
	bufferevent_enable(s.bev, EV_READ | EV_WRITE);
	if (listener->auth != LISTENER_AUTH_NO) {
		snprintf(local, sizeof(local), "%s;%u", s.server_ip, s.server_port);
		snprintf(remote, sizeof(remote), "%s;%u", s.client_ip, s.client_port);
		/* Without it AUTH answers 454: the log says why. */
		s.sasl = smtp_auth_new(cfg, local, remote);
	}
	smtp_rules_init(&s);
	if (listener->kind_id == LISTENER_SUBMISSIONS) {
		/* TLS from the first byte: the greeting waits for the handshake. */
		if (tls == NULL)
			fatal("listener %s needs TLS, and no certificate is loaded", listener->name);
		smtp_tls_begin(&s);
	} else {
		smtp_greet(&s);
	}

	event_base_dispatch(s.base);
	smtp_tx_free(&s, 1);
	smtp_auth_free(s.sasl);
	rules_ctx_release(&s.rctx);
	exit(0);
}
