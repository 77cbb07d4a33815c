/*
 * smtpd_session.c - the SMTP server side of one connection (RFC 5321).
 *
 * One process per connection, forked by the master, confined by the sandbox
 * and holding nothing of the spool but the descriptor of the message it is
 * receiving. A command table maps each verb to its handler; the session
 * state (HELO, counters, limits) outlives transactions, the transaction state
 * (struct smtpd_tx) is reset by RSET, HELO/EHLO and the end of a message.
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

#include "io.h"
#include "data_filter.h"
#include "envelope.h"
#include "evloop.h"
#include "ipc.h"
#include "log.h"
#include "message.h"
#include "rules.h"
#include "netaddr.h"
#include "sigevent.h"
#include "smtpd_auth.h"
#include "smtp_parse.h"
#include "smtpd_session.h"
#include "send_mail.h"
#include "queue_client.h"
#include "tls_server.h"

#define SMTPD_INPUT_HIGH_WATER (256u * 1024)
#define SMTPD_OUTPUT_HIGH_WATER (256u * 1024) /* replies a client has not read */
#define SMTPD_WRITE_BUFFER (64u * 1024)
#define SMTPD_IDS_LOG_MAX 512
#define SMTPD_TLS_FLUSH_MS 5000 /* for the last encrypted bytes of a closing session */

enum smtpd_state {
	SMTPD_STATE_INIT,  /* greeted, waiting for HELO / EHLO */
	SMTPD_STATE_READY, /* no transaction */
	SMTPD_STATE_MAIL,  /* MAIL accepted */
	SMTPD_STATE_RCPT,  /* at least one recipient */
	SMTPD_STATE_DATA,  /* reading DATA content */
	SMTPD_STATE_BDAT,  /* reading the bytes of a BDAT chunk */
};

enum smtpd_wait {
	SMTPD_WAIT_NONE,
	SMTPD_WAIT_CREATE, /* the queue is creating the message file */
	SMTPD_WAIT_COMMIT, /* the queue is committing the message */
	SMTPD_WAIT_DELAY,  /* error delay past the soft limit */
};

/* The transaction: from MAIL to the reply to the end of the message. */
struct smtpd_tx {
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
	char wbuf[SMTPD_WRITE_BUFFER]; /* last: not zeroed by smtpd_tx_new */
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

	enum smtpd_state state;
	enum smtpd_wait wait;
	struct smtpd_tx *tx;

	/* BDAT chunk being read */
	uint64_t bdat_left;
	int bdat_last;
	enum smtpd_state bdat_prev; /* where a refused chunk returns to */
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
	char ids[SMTPD_IDS_LOG_MAX];
};

static void smtpd_input_process(struct smtp_session *s);
static void smtpd_close(struct smtp_session *s, const char *result);
static const char *smtpd_lost_result(const struct smtp_session *s);
static void smtpd_greet(struct smtp_session *s);
static void smtpd_read_cb(struct bufferevent *bev, void *arg);
static void smtpd_write_cb(struct bufferevent *bev, void *arg);
static void smtpd_event_cb(struct bufferevent *bev, short what, void *arg);
static void smtpd_finish(struct smtp_session *s);

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
static void smtpd_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void smtpd_reply(struct smtp_session *s, const char *fmt, ...)
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

/* smtpd_tx_flush - write the buffered content to the message file. */
static void smtpd_tx_flush(struct smtpd_tx *tx)
{
	size_t off = 0;

	if (tx->write_error == 0)
		tx->write_error = io_write_all(tx->fd, tx->wbuf, tx->wlen, -1, &off);
	tx->written += off;
	tx->wlen = 0;
}

/* smtpd_tx_write - append content bytes (the data filter's sink). */
static void smtpd_tx_write(void *arg, const char *buf, size_t len)
{
	struct smtpd_tx *tx = arg;
	size_t n;

	while (len > 0 && tx->write_error == 0) {
		if (tx->wlen == sizeof(tx->wbuf))
			smtpd_tx_flush(tx);
		n = sizeof(tx->wbuf) - tx->wlen;
		if (n > len)
			n = len;
		memcpy(tx->wbuf + tx->wlen, buf, n);
		tx->wlen += n;
		buf += n;
		len -= n;
	}
}

/* smtpd_queue_send - a request to the queue; 0 or -1 when it has gone. */
static int smtpd_queue_send(struct smtp_session *s, uint32_t type, const char *id, uint64_t a,
			   uint64_t b)
{
	struct ipc_msg m = {.type = type, .a = a, .b = b};

	if (id != NULL)
		memcpy(m.id, id, sizeof(m.id));
	if (s->queue_fd < 0)
		return -1;
	return ipc_send(s->queue_fd, &m, -1);
}

/* smtpd_tx_free - end the transaction; the queue drops an uncommitted file. */
static void smtpd_tx_free(struct smtp_session *s, int tell_queue)
{
	struct smtpd_tx *tx = s->tx;

	if (tx == NULL)
		return;
	if (tx->fd >= 0) {
		if (tell_queue)
			smtpd_queue_send(s, IPC_MSG_ABORT, tx->env.id, 0, 0);
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

/* smtpd_tx_reset - abandon any transaction and go back to the ready state. */
static void smtpd_tx_reset(struct smtp_session *s)
{
	smtpd_tx_free(s, 1);
	s->state = s->helo[0] ? SMTPD_STATE_READY : SMTPD_STATE_INIT;
}

/* smtpd_set_read_timeout - the inactivity limit for what we wait for now. */
static void smtpd_set_read_timeout(struct smtp_session *s, unsigned seconds)
{
	struct timeval tv = {.tv_sec = seconds};

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* smtpd_log_id - remember a queue id for the summary line. */
static void smtpd_log_id(struct smtp_session *s, const char *id)
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

/* smtpd_protocol - the protocol name for Received: (RFC 3848, RFC 6531):
 * ESMTP, then S for TLS and A for AUTH; UTF8SMTP the same way. */
static const char *smtpd_protocol(const struct smtp_session *s)
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

/* smtpd_tx_received - write the Received: header (RFC 5321 4.4). */
static void smtpd_tx_received(struct smtp_session *s)
{
	struct smtpd_tx *tx = s->tx;
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
			      s->cfg->hostname, smtpd_protocol(s), tx->env.id);
	if (n > 0 && (size_t)n < sizeof(line) && tx->env.nrcpts == 1)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n\tfor <%s>",
			      tx->env.rcpts[0].address);
	if (n > 0 && (size_t)n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, "; %s\r\n", date);
	if (n < 0 || (size_t)n >= sizeof(line))
		return; /* cannot happen with bounded helo, host and address */
	smtpd_tx_write(tx, line, (size_t)n);
}

/* smtpd_content_start - DATA or the first BDAT: prepare to receive content. */
static void smtpd_content_start(struct smtp_session *s, enum data_filter_mode mode)
{
	struct smtpd_tx *tx = s->tx;

	data_filter_init(&tx->df, mode, s->cfg->bare_eol, s->cfg->max_text_line,
			 s->cfg->max_message_size, smtpd_tx_write, tx);
	smtpd_tx_received(s);
	smtpd_set_read_timeout(s, s->cfg->timeout_data);
}

/* smtpd_storage_reply - the reply for a failed write or commit. */
static void smtpd_storage_reply(struct smtp_session *s, int err)
{
	if (err == EFBIG)
		smtpd_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
	else if (err == ENOSPC || err == EDQUOT)
		smtpd_reply(s, "452 4.3.1 Insufficient system storage");
	else
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
}

/* smtpd_reply_rule - send a reply a rule chose. */
static void smtpd_reply_rule(struct smtp_session *s, const struct rule_reply *r)
{
	smtpd_reply(s, "%d%s%s%s%s", r->code, r->enhanced[0] ? " " : "", r->enhanced,
		   r->text[0] ? " " : "", r->text);
}

/* smtpd_rules - run a stage's rules for the session. */
static enum rule_status smtpd_rules(struct smtp_session *s, enum rule_stage stage,
				   struct rule_verdict *v)
{
	if (s->rules == NULL) {
		memset(v, 0, sizeof(*v));
		return v->status = RULE_NEXT;
	}
	return rules_run(s->rules, stage, &s->rctx, v);
}

/*
 * smtpd_rules_refused - act on a verdict that refuses: send its reply (and
 * for deny, close). Returns 1 when the command is refused, 0 when it goes on.
 */
static int smtpd_rules_refused(struct smtp_session *s, enum rule_stage stage,
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
static int smtpd_rules_accept_reply(const struct rule_verdict *v)
{
	return (v->status == RULE_ACCEPT || v->status == RULE_FACCEPT) && v->has_reply;
}

/* smtpd_preq_load - read the message back from its file for the preq rules. */
static struct message *smtpd_preq_load(struct smtpd_tx *tx)
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

/* smtpd_preq_store - write a message the rules changed over the file's content. */
static int smtpd_preq_store(struct smtpd_tx *tx, const struct message *msg)
{
	size_t len;
	char *buf = message_serialize(msg, &len);
	int err;

	if (buf == NULL)
		return ENOMEM;
	err = io_write_all(tx->fd, buf, len, 0, NULL);
	free(buf);
	if (err != 0)
		return err;
	if (ftruncate(tx->fd, (off_t)len) < 0 || lseek(tx->fd, (off_t)len, SEEK_SET) < 0)
		return errno;
	tx->written = len;
	return 0;
}

/*
 * smtpd_preq - run the preq rules on the complete message; 1 when the
 * message is refused (the reply is sent), 0 when it goes on to the queue.
 */
static int smtpd_preq(struct smtp_session *s)
{
	struct smtpd_tx *tx = s->tx;
	struct rule_verdict v;
	struct message *msg = NULL;
	int err = 0;

	if (s->rules != NULL && rules_stage_used(s->rules, RULE_STAGE_PREQ) && !s->rctx.skip_all) {
		if ((msg = smtpd_preq_load(tx)) == NULL) {
			log_err("%s: cannot read the message back for the rules", tx->env.id);
			smtpd_reply(s, "451 4.3.0 Error: queue file read error");
			return 1;
		}
		s->rctx.msg = msg;
	}
	smtpd_rules(s, RULE_STAGE_PREQ, &v);
	s->rctx.msg = NULL;
	if (msg != NULL && message_modified(msg) && v.status != RULE_DENY &&
	    v.status != RULE_REJECT && v.status != RULE_INFO && v.status != RULE_ERROR)
		err = smtpd_preq_store(tx, msg);
	message_free(msg);
	if (smtpd_rules_refused(s, RULE_STAGE_PREQ, &v))
		return 1;
	if (err != 0) {
		log_err("%s: cannot write the message the rules changed: %s", tx->env.id,
			strerror(err));
		smtpd_storage_reply(s, err);
		return 1;
	}
	if (smtpd_rules_accept_reply(&v)) {
		tx->has_final_reply = 1;
		tx->final_reply = v.reply;
	}
	if (v.status == RULE_QUARANTINE && envelope_set(&tx->env.quarantine, v.quarantine) < 0) {
		smtpd_reply(s, "451 4.3.0 Error: out of memory");
		return 1;
	}
	/* A faccept skips every later rule: the postq and delivery ones too. */
	tx->env.faccept = s->rctx.skip_all && tx->env.quarantine == NULL;
	return 0;
}

/* smtpd_message_end - the content is complete: check it and ask for the commit. */
static void smtpd_message_end(struct smtp_session *s)
{
	struct smtpd_tx *tx = s->tx;
	const char *refusal = data_filter_reply(&tx->df);
	char *json;
	size_t jlen;
	uint64_t content_len;

	smtpd_set_read_timeout(s, s->cfg->timeout_command);
	s->state = SMTPD_STATE_READY;
	if (refusal != NULL) {
		log_notice("%s: refused message from %s[%s]: %s", tx->env.id, s->helo, s->client_ip,
			   refusal);
		smtpd_reply(s, "%s", refusal);
		smtpd_tx_reset(s);
		return;
	}
	smtpd_tx_flush(tx);
	if (tx->write_error == 0 && smtpd_preq(s)) {
		smtpd_tx_reset(s);
		return;
	}
	if (tx->env.nrcpts == 0) {
		/* The rules took every recipient away: nothing is left to deliver. */
		log_notice("%s: discarded: the rules removed every recipient", tx->env.id);
		smtpd_reply(s, "250 2.0.0 Ok: discarded");
		smtpd_tx_reset(s);
		return;
	}
	content_len = tx->written;
	tx->env.received_at = time(NULL);
	free(tx->env.vars);
	tx->env.vars = rules_tx_vars(&s->rctx);
	if (envelope_set(&tx->env.protocol, smtpd_protocol(s)) < 0 ||
	    (json = envelope_to_json(&tx->env)) == NULL) {
		smtpd_reply(s, "451 4.3.0 Error: out of memory");
		smtpd_tx_reset(s);
		return;
	}
	jlen = strlen(json);
	smtpd_tx_write(tx, json, jlen);
	free(json);
	smtpd_tx_flush(tx);
	if (tx->write_error != 0) {
		log_err("%s: cannot write message file: %s", tx->env.id, strerror(tx->write_error));
		smtpd_storage_reply(s, tx->write_error);
		smtpd_tx_reset(s);
		return;
	}
	if (smtpd_queue_send(s, IPC_MSG_COMMIT, tx->env.id, content_len, jlen) < 0) {
		smtpd_reply(s, "451 4.3.0 Error: queue unavailable");
		smtpd_tx_reset(s);
		return;
	}
	s->wait = SMTPD_WAIT_COMMIT;
}

/* smtpd_committed - the queue's answer to a commit. */
static void smtpd_committed(struct smtp_session *s, const struct ipc_msg *m)
{
	struct smtpd_tx *tx = s->tx;

	if (tx == NULL || s->wait != SMTPD_WAIT_COMMIT || strcmp(m->id, tx->env.id) != 0)
		fatal("commit answer for %s that no transaction waits for", m->id);
	s->wait = SMTPD_WAIT_NONE;
	if (m->status != 0) {
		smtpd_storage_reply(s, m->status);
		smtpd_tx_free(s, 0);
		return;
	}
	log_info("%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu, client=%s[%s], proto=%s%s%s", tx->env.id,
		 tx->env.mail_from, tx->written, tx->env.nrcpts, s->helo, s->client_ip,
		 tx->env.protocol, s->authenticated ? ", sasl_username=" : "",
		 s->authenticated ? s->authid : "");
	if (tx->env.quarantine != NULL)
		log_notice("%s: quarantined in %s", tx->env.id, tx->env.quarantine);
	if (tx->has_final_reply)
		smtpd_reply_rule(s, &tx->final_reply);
	else
		smtpd_reply(s, "250 2.0.0 Ok: queued as %s", tx->env.id);
	s->cmd_ok[tx->chunking ? SMTP_VERB_BDAT : SMTP_VERB_DATA]++;
	s->queued++;
	smtpd_log_id(s, tx->env.id);
	smtpd_tx_free(s, 0);
}

/* smtpd_created - the queue's answer to MAIL's request for a message file. */
static void smtpd_created(struct smtp_session *s, const struct ipc_msg *m, int fd)
{
	struct smtpd_tx *tx = s->tx;

	if (tx == NULL || s->wait != SMTPD_WAIT_CREATE)
		fatal("message file %s that no transaction waits for", m->id);
	s->wait = SMTPD_WAIT_NONE;
	if (m->status != 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		if (m->status == ENOSPC)
			smtpd_reply(s, "452 4.3.1 Insufficient system storage");
		else
			smtpd_reply(s, "451 4.3.0 Error: queue unavailable, try again later");
		smtpd_tx_free(s, 0);
		return;
	}
	tx->fd = fd;
	memcpy(tx->env.id, m->id, SPOOL_ID_LEN + 1);
	s->state = SMTPD_STATE_MAIL;
	s->cmd_ok[SMTP_VERB_MAIL]++;
	if (tx->has_mail_reply)
		smtpd_reply_rule(s, &tx->mail_reply);
	else
		smtpd_reply(s, "250 2.1.0 Ok");
}

/* smtpd_queue_cb - answers from the queue process. */
static void smtpd_queue_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct ipc_msg m;
	int passfd, n;

	while ((n = ipc_recv((int)fd, &m, &passfd)) > 0) {
		if (m.type == IPC_MSG_CREATED)
			smtpd_created(s, &m, passfd);
		else if (m.type == IPC_MSG_COMMITTED)
			smtpd_committed(s, &m);
		else if (m.type == IPC_RULE_DONE && passfd >= 0)
			close(passfd); /* late: queue_client has shut the channel */
		else if (m.type != IPC_RULE_DONE)
			fatal("unexpected message type %u from the queue", m.type);
	}
	if (n == 0 || errno != EAGAIN) {
		log_err("queue channel lost");
		event_del(s->queue_ev);
		close(s->queue_fd);
		s->queue_fd = -1;
		if (s->wait == SMTPD_WAIT_CREATE || s->wait == SMTPD_WAIT_COMMIT) {
			s->wait = SMTPD_WAIT_NONE;
			smtpd_reply(s, "421 4.3.0 %s Error: queue unavailable, closing connection",
				   s->cfg->hostname);
			smtpd_close(s, "queue unavailable");
			return;
		}
	}
	smtpd_input_process(s);
}

/* smtpd_starttls_offered - whether STARTTLS may be used now. */
static int smtpd_starttls_offered(const struct smtp_session *s)
{
	return s->tls != NULL && s->listener->tls != LISTENER_TLS_NONE && !s->tls_active;
}

/* smtpd_auth_plaintext_ok - whether this client may authenticate without
 * TLS: never on a listener that requires TLS first. */
static int smtpd_auth_plaintext_ok(const struct smtp_session *s)
{
	return s->cfg->auth_allow_plaintext && s->listener->tls != LISTENER_TLS_ENCRYPT &&
	       netaddr_list_contains(s->cfg->auth_plaintext_networks, s->client_ip);
}

/* smtpd_auth_offered - whether EHLO lists AUTH now. */
static int smtpd_auth_offered(const struct smtp_session *s)
{
	return s->sasl != NULL && !s->authenticated &&
	       (s->tls_active || smtpd_auth_plaintext_ok(s));
}

/* smtpd_cmd_helo - HELO and EHLO: identify the client, reset the transaction. */
static void smtpd_cmd_helo(struct smtp_session *s, const char *args, int esmtp)
{
	const char *err = smtp_helo_parse(args);
	char helo[sizeof(s->helo)];
	const char *greeting = s->cfg->hostname, *auth;
	struct rule_verdict v;
	int starttls;
	size_t len;

	if (err != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	args += strspn(args, " \t");
	len = strlen(args);
	while (len > 0 && (args[len - 1] == ' ' || args[len - 1] == '\t'))
		len--;
	snprintf(helo, sizeof(helo), "%.*s", (int)len, args);
	smtpd_tx_reset(s);
	s->rctx.helo = helo;
	smtpd_rules(s, RULE_STAGE_HELO, &v);
	s->rctx.helo = s->helo;
	if (smtpd_rules_refused(s, RULE_STAGE_HELO, &v))
		return;
	memcpy(s->helo, helo, sizeof(s->helo));
	s->conn_skip_all = s->rctx.skip_all;
	memcpy(s->conn_quarantine, s->rctx.quarantine, sizeof(s->conn_quarantine));
	s->esmtp = esmtp;
	s->state = SMTPD_STATE_READY;
	if (smtpd_rules_accept_reply(&v) && v.reply.text[0])
		greeting = v.reply.text;
	if (!esmtp) {
		smtpd_reply(s, "250 %s", greeting);
		return;
	}
	smtpd_reply(s, "250-%s", greeting);
	smtpd_reply(s, "250-PIPELINING");
	smtpd_reply(s, "250-SIZE %" PRIu64, s->cfg->max_message_size);
	smtpd_reply(s, "250-8BITMIME");
	smtpd_reply(s, "250-SMTPUTF8");
	smtpd_reply(s, "250-ENHANCEDSTATUSCODES");
	smtpd_reply(s, "250-CHUNKING");
	starttls = smtpd_starttls_offered(s);
	auth = smtpd_auth_offered(s) ? smtpd_auth_mechanisms(s->sasl) : "";
	smtpd_reply(s, "250%sDSN", starttls || auth[0] ? "-" : " ");
	if (starttls)
		smtpd_reply(s, "250%sSTARTTLS", auth[0] ? "-" : " ");
	if (auth[0])
		smtpd_reply(s, "250 AUTH %s", auth);
}

/* smtpd_cmd_ehlo - EHLO. */
static void smtpd_cmd_ehlo(struct smtp_session *s, const char *args)
{
	smtpd_cmd_helo(s, args, 1);
}

/* smtpd_cmd_helo_plain - HELO. */
static void smtpd_cmd_helo_plain(struct smtp_session *s, const char *args)
{
	smtpd_cmd_helo(s, args, 0);
}

/* smtpd_tx_new - a transaction for an accepted MAIL command. */
static struct smtpd_tx *smtpd_tx_new(struct smtp_session *s, const struct smtp_mail *mail)
{
	struct smtpd_tx *tx = malloc(sizeof(*tx));
	char from[SMTP_PATH_MAX + 1];

	if (tx == NULL)
		return NULL;
	/* The write buffer is filled before it is read: zeroing its 64 KiB for
	 * every transaction would only cost page faults. */
	memset(tx, 0, offsetof(struct smtpd_tx, wbuf));
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

/* smtpd_cmd_mail - MAIL: start a transaction; the queue creates its file. */
static void smtpd_cmd_mail(struct smtp_session *s, const char *args)
{
	struct smtp_mail mail;
	struct rule_verdict v;
	const char *err;

	if (s->state == SMTPD_STATE_INIT) {
		smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->state != SMTPD_STATE_READY) {
		smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->listener->tls == LISTENER_TLS_ENCRYPT && !s->tls_active) {
		smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->listener->auth == LISTENER_AUTH_REQUIRED && !s->authenticated) {
		smtpd_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if ((err = smtp_mail_parse(args, &mail)) != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	if (mail.size_given && mail.size > s->cfg->max_message_size) {
		smtpd_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	if ((s->tx = smtpd_tx_new(s, &mail)) == NULL) {
		smtpd_reply(s, "451 4.3.0 Error: out of memory");
		return;
	}
	s->rctx.env = &s->tx->env;
	s->rctx.mail_timestamp = time(NULL);
	smtpd_rules(s, RULE_STAGE_MAIL, &v);
	if (smtpd_rules_refused(s, RULE_STAGE_MAIL, &v)) {
		smtpd_tx_free(s, 0);
		return;
	}
	if (smtpd_rules_accept_reply(&v)) {
		s->tx->has_mail_reply = 1;
		s->tx->mail_reply = v.reply;
	}
	if (smtpd_queue_send(s, IPC_MSG_CREATE, NULL, mail.size, 0) < 0) {
		smtpd_tx_free(s, 0);
		smtpd_reply(s, "451 4.3.0 Error: queue unavailable, try again later");
		return;
	}
	s->wait = SMTPD_WAIT_CREATE;
}

/* smtpd_cmd_rcpt - RCPT: add a recipient. */
static void smtpd_cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_rcpt rcpt;
	char to[SMTP_PATH_MAX + 1];
	struct envelope before = {0};
	struct rule_verdict v;
	const char *err;

	if (s->state != SMTPD_STATE_MAIL && s->state != SMTPD_STATE_RCPT) {
		smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->tx->chunking) {
		smtpd_reply(s, "503 5.5.1 Error: RCPT after BDAT");
		return;
	}
	if ((err = smtp_rcpt_parse(args, s->tx->utf8, &rcpt)) != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	if (s->tx->env.nrcpts >= s->cfg->max_recipients) {
		smtpd_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	smtp_address_format(&rcpt.to, to, sizeof(to));
	/* A refused RCPT leaves the envelope as it was, whatever the rules
	 * changed before refusing: keep a copy to go back to. */
	if (s->rules != NULL && rules_stage_used(s->rules, RULE_STAGE_RCPT) &&
	    envelope_copy_rcpts(&before, &s->tx->env) < 0) {
		envelope_clear(&before);
		smtpd_reply(s, "451 4.3.0 Error: out of memory");
		return;
	}
	if (envelope_add_rcpt(&s->tx->env, to, rcpt.notify,
			      rcpt.orcpt_type[0] ? rcpt.orcpt_type : NULL,
			      rcpt.orcpt_type[0] ? rcpt.orcpt : NULL) < 0) {
		envelope_clear(&before);
		smtpd_reply(s, "451 4.3.0 Error: out of memory");
		return;
	}
	/* The rules see the recipient in rcpt_list already. */
	s->rctx.rcpt = to;
	smtpd_rules(s, RULE_STAGE_RCPT, &v);
	s->rctx.rcpt = NULL;
	if (smtpd_rules_refused(s, RULE_STAGE_RCPT, &v)) {
		envelope_swap_rcpts(&s->tx->env, &before);
		envelope_clear(&before);
		return;
	}
	envelope_clear(&before);
	/* Even when the rules took every recipient away: the client was told
	 * 250, so DATA goes on, and the end of the message says "discarded". */
	s->state = SMTPD_STATE_RCPT;
	if (smtpd_rules_accept_reply(&v))
		smtpd_reply_rule(s, &v.reply);
	else
		smtpd_reply(s, "250 2.1.5 Ok");
}

/* smtpd_tx_refusal - why DATA / BDAT cannot start now, or NULL. */
static const char *smtpd_tx_refusal(const struct smtp_session *s)
{
	if (s->state == SMTPD_STATE_INIT || s->state == SMTPD_STATE_READY)
		return "503 5.5.1 Error: need MAIL command";
	if (s->state == SMTPD_STATE_MAIL)
		return "503 5.5.1 Error: need RCPT command";
	return NULL;
}

/* smtpd_cmd_data - DATA: receive dot-terminated content. */
static void smtpd_cmd_data(struct smtp_session *s, const char *args)
{
	const char *err = smtpd_tx_refusal(s);

	if (*args != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (err == NULL && s->tx->chunking)
		err = "503 5.5.1 Error: DATA after BDAT";
	if (err != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtpd_content_start(s, DATA_FILTER_DATA);
	s->state = SMTPD_STATE_DATA;
}

/* smtpd_cmd_bdat - BDAT (RFC 3030): a chunk of exactly the given size. */
static void smtpd_cmd_bdat(struct smtp_session *s, const char *args)
{
	const char *err;
	uint64_t size;
	int last;

	if ((err = smtp_bdat_parse(args, &size, &last)) != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	/* Whatever the answer, the chunk's bytes follow: read them first. */
	s->bdat_left = size;
	s->bdat_last = last;
	s->bdat_refusal = smtpd_tx_refusal(s);
	s->bdat_prev = s->state;
	s->state = SMTPD_STATE_BDAT;
	if (s->bdat_refusal == NULL && !s->tx->chunking) {
		s->tx->chunking = 1;
		smtpd_content_start(s, DATA_FILTER_BDAT);
	}
	smtpd_set_read_timeout(s, s->cfg->timeout_data);
}

/* smtpd_bdat_end - all bytes of a chunk are in: answer it. */
static void smtpd_bdat_end(struct smtp_session *s)
{
	struct smtpd_tx *tx = s->tx;
	const char *refusal = s->bdat_refusal;

	s->bdat_refusal = NULL;
	if (refusal != NULL) {
		s->state = s->bdat_prev;
		smtpd_set_read_timeout(s, s->cfg->timeout_command);
		smtpd_reply(s, "%s", refusal);
		return;
	}
	if (s->bdat_last) {
		data_filter_finish(&tx->df);
		smtpd_message_end(s);
		return;
	}
	s->state = SMTPD_STATE_RCPT;
	smtpd_set_read_timeout(s, s->cfg->timeout_command);
	if ((refusal = data_filter_reply(&tx->df)) != NULL) {
		/* RFC 3030: after an error the client sends no more chunks. */
		smtpd_reply(s, "%s", refusal);
		smtpd_tx_reset(s);
		return;
	}
	s->cmd_ok[SMTP_VERB_BDAT]++;
	smtpd_reply(s, "250 2.0.0 %" PRIu64 " octets received", tx->df.size);
}

/* smtpd_cmd_rset - RSET. */
static void smtpd_cmd_rset(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtpd_tx_reset(s);
	smtpd_reply(s, "250 2.0.0 Ok");
}

/* smtpd_cmd_noop - NOOP (an argument is allowed and ignored). */
static void smtpd_cmd_noop(struct smtp_session *s, const char *args)
{
	smtpd_reply(s, "250 2.0.0 Ok");
}

/* smtpd_cmd_quit - QUIT. */
static void smtpd_cmd_quit(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: QUIT");
		return;
	}
	smtpd_reply(s, "221 2.0.0 Bye");
	smtpd_close(s, "ok");
}

/* smtpd_cmd_help - HELP. */
static void smtpd_cmd_help(struct smtp_session *s, const char *args)
{
	smtpd_reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT");
	smtpd_reply(s, "214 2.0.0 HELP VRFY EXPN STARTTLS AUTH; see RFC 5321");
}

/* smtpd_cmd_vrfy - VRFY: never tells whether a user exists. */
static void smtpd_cmd_vrfy(struct smtp_session *s, const char *args)
{
	if (*args == '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	smtpd_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

/* smtpd_cmd_expn - EXPN: lists are not disclosed. */
static void smtpd_cmd_expn(struct smtp_session *s, const char *args)
{
	smtpd_reply(s, "502 5.5.1 Error: EXPN not supported");
}

/* smtpd_cmd_unknown - anything else. */
static void smtpd_cmd_unknown(struct smtp_session *s, const char *args)
{
	smtpd_reply(s, "500 5.5.2 Error: command not recognized");
}

/* smtpd_cmd_starttls - STARTTLS (RFC 3207): the handshake follows this read. */
static void smtpd_cmd_starttls(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls_active) {
		smtpd_reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (!smtpd_starttls_offered(s)) {
		smtpd_reply(s, "502 5.5.1 Error: STARTTLS not available");
		return;
	}
	if (s->state == SMTPD_STATE_INIT) {
		smtpd_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->tx != NULL) {
		smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	s->tls_pending = 1;
}

/* smtpd_auth_failed - count a failed AUTH; past the limit, hang up. */
static void smtpd_auth_failed(struct smtp_session *s)
{
	if (++s->auth_failures < s->cfg->auth_max_failures)
		return;
	log_notice("%s: too many failed authentication attempts (%u)", s->client_ip,
		   s->auth_failures);
	smtpd_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts",
		   s->cfg->hostname);
	smtpd_close(s, "too many failed authentication attempts");
}

/* smtpd_auth_end - an exchange is over without success: a fresh start for the next. */
static void smtpd_auth_end(struct smtp_session *s)
{
	s->auth_pending = 0;
	if (smtpd_auth_reset(s->sasl) < 0)
		log_err("%s: cannot reset the SASL state", s->client_ip);
}

/* smtpd_auth_accepted - Cyrus accepted the credentials: now the rules decide. */
static void smtpd_auth_accepted(struct smtp_session *s)
{
	struct rule_verdict v;

	s->auth_pending = 0;
	snprintf(s->authid, sizeof(s->authid), "%s", smtpd_auth_user(s->sasl));
	s->rctx.is_authenticated = 1;
	s->rctx.auth_mechanism = s->auth_mech;
	s->rctx.auth_authid = s->authid;
	smtpd_rules(s, RULE_STAGE_AUTHENTICATE, &v);
	if (v.status == RULE_DENY || v.status == RULE_REJECT || v.status == RULE_INFO ||
	    v.status == RULE_ERROR) {
		s->rctx.is_authenticated = 0;
		s->rctx.auth_mechanism = NULL;
		s->rctx.auth_authid = NULL;
		log_notice("%s: authentication of %s with %s refused by rule \"%s\": %s",
			   s->client_ip, s->authid, s->auth_mech, v.rule,
			   rules_status_name(v.status));
		s->authid[0] = '\0';
		smtpd_auth_end(s);
		if (v.status == RULE_ERROR) {
			smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
			return;
		}
		smtpd_reply(s, "535 5.7.8 Error: authentication failed");
		if (v.status == RULE_DENY)
			smtpd_close(s, "denied by rules");
		else
			smtpd_auth_failed(s);
		return;
	}
	s->authenticated = 1;
	/* Decided outside a transaction: a faccept or quarantine here lasts
	 * for the connection, as one at connect or helo does. */
	s->conn_skip_all = s->rctx.skip_all;
	memcpy(s->conn_quarantine, s->rctx.quarantine, sizeof(s->conn_quarantine));
	s->cmd_ok[SMTP_VERB_AUTH]++;
	log_info("%s: authenticated as %s with %s", s->client_ip, s->authid, s->auth_mech);
	smtpd_reply(s, "235 2.7.0 Authentication successful");
}

/* smtpd_auth_outcome - answer one step of the exchange. */
static void smtpd_auth_outcome(struct smtp_session *s, enum smtpd_auth_result r,
			      const char *challenge, const char *why)
{
	switch (r) {
	case SMTPD_AUTH_CONTINUE:
		/* Not through smtpd_reply: a challenge may be longer than its line. */
		s->auth_pending = 1;
		s->last_code = 334;
		log_debug("%s: >>> 334 (challenge, %zu bytes)", s->client_ip, strlen(challenge));
		evbuffer_add_printf(bufferevent_get_output(s->bev), "334 %s\r\n", challenge);
		return;
	case SMTPD_AUTH_OK:
		smtpd_auth_accepted(s);
		return;
	case SMTPD_AUTH_NOMECH:
		smtpd_auth_end(s);
		smtpd_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	case SMTPD_AUTH_TEMP:
		log_warn("%s: authentication with %s could not be checked: %s", s->client_ip,
			 s->auth_mech, why);
		smtpd_auth_end(s);
		smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	case SMTPD_AUTH_BAD_BASE64:
		log_notice("%s: authentication failed with %s: %s", s->client_ip, s->auth_mech,
			   why);
		smtpd_auth_end(s);
		smtpd_reply(s, "501 5.5.2 Error: cannot decode response");
		smtpd_auth_failed(s);
		return;
	case SMTPD_AUTH_FAIL:
		log_notice("%s: authentication failed with %s: %s", s->client_ip, s->auth_mech,
			   why);
		smtpd_auth_end(s);
		smtpd_reply(s, "535 5.7.8 Error: authentication failed");
		smtpd_auth_failed(s);
		return;
	}
}

/* smtpd_auth_response - a line of the client inside an AUTH exchange. */
static void smtpd_auth_response(struct smtp_session *s, const char *line)
{
	char challenge[SMTPD_AUTH_LINE_MAX + 4];
	const char *why = "";
	enum smtpd_auth_result r;

	log_debug("%s: <<< (AUTH response, %zu bytes)", s->client_ip, strlen(line));
	s->last_code = 0;
	if (strcmp(line, "*") == 0) {
		log_notice("%s: authentication with %s cancelled by the client", s->client_ip,
			   s->auth_mech);
		smtpd_auth_end(s);
		smtpd_reply(s, "501 5.0.0 Authentication cancelled");
		smtpd_auth_failed(s);
		return;
	}
	r = smtpd_auth_step(s->sasl, line, challenge, sizeof(challenge), &why);
	smtpd_auth_outcome(s, r, challenge, why);
}

/* smtpd_auth_too_long - a response past SMTPD_AUTH_LINE_MAX ends the exchange. */
static void smtpd_auth_too_long(struct smtp_session *s)
{
	log_notice("%s: authentication with %s: response line too long", s->client_ip,
		   s->auth_mech);
	smtpd_auth_end(s);
	smtpd_reply(s, "500 5.5.6 Authentication exchange line is too long");
	smtpd_auth_failed(s);
}

/* smtpd_cmd_auth - AUTH mechanism [initial-response] (RFC 4954). */
static void smtpd_cmd_auth(struct smtp_session *s, const char *args)
{
	char challenge[SMTPD_AUTH_LINE_MAX + 4], mech[sizeof(s->auth_mech)];
	const char *response = NULL, *why = "", *sp;
	enum smtpd_auth_result r;
	size_t n;

	if (s->listener->auth == LISTENER_AUTH_NO) {
		smtpd_reply(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (s->sasl == NULL) {
		smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	if (s->state == SMTPD_STATE_INIT) {
		smtpd_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->authenticated) {
		smtpd_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->tx != NULL) {
		smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (!s->tls_active && !smtpd_auth_plaintext_ok(s)) {
		if (s->listener->tls == LISTENER_TLS_ENCRYPT)
			smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		else
			smtpd_reply(s, "538 5.7.11 Encryption required for requested "
				      "authentication mechanism");
		return;
	}
	n = strcspn(args, " ");
	sp = args + n;
	if (n == 0 || n >= sizeof(mech) || (*sp == ' ' && (sp[1] == '\0' || strchr(sp + 1, ' ')))) {
		smtpd_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
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
	r = smtpd_auth_start(s->sasl, mech, response, challenge, sizeof(challenge), &why);
	smtpd_auth_outcome(s, r, challenge, why);
}

static void (*const smtpd_commands[SMTP_VERB_COUNT])(struct smtp_session *, const char *) = {
	[SMTP_VERB_UNKNOWN] = smtpd_cmd_unknown, [SMTP_VERB_HELO] = smtpd_cmd_helo_plain,
	[SMTP_VERB_EHLO] = smtpd_cmd_ehlo,       [SMTP_VERB_MAIL] = smtpd_cmd_mail,
	[SMTP_VERB_RCPT] = smtpd_cmd_rcpt,       [SMTP_VERB_DATA] = smtpd_cmd_data,
	[SMTP_VERB_BDAT] = smtpd_cmd_bdat,       [SMTP_VERB_RSET] = smtpd_cmd_rset,
	[SMTP_VERB_NOOP] = smtpd_cmd_noop,       [SMTP_VERB_QUIT] = smtpd_cmd_quit,
	[SMTP_VERB_HELP] = smtpd_cmd_help,       [SMTP_VERB_VRFY] = smtpd_cmd_vrfy,
	[SMTP_VERB_EXPN] = smtpd_cmd_expn,       [SMTP_VERB_STARTTLS] = smtpd_cmd_starttls,
	[SMTP_VERB_AUTH] = smtpd_cmd_auth,
};

/* smtpd_delay_cb - the error delay is over: let the reply go and read on. */
static void smtpd_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	s->wait = SMTPD_WAIT_NONE;
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	smtpd_input_process(s);
}

/* smtpd_error_limits - after a failed command: slow down or hang up. */
static void smtpd_error_limits(struct smtp_session *s)
{
	struct timeval tv;

	if (s->closing || s->last_code < 400)
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

/* smtpd_command - run one command line. */
static void smtpd_command(struct smtp_session *s, const char *line, size_t len)
{
	const char *err, *args;
	enum smtp_verb verb;

	if (s->shutdown && s->tx == NULL) {
		smtpd_reply(s, "421 4.3.2 %s Service shutting down, closing connection",
			   s->cfg->hostname);
		smtpd_close(s, "shutdown");
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
		smtpd_reply(s, "%s", err);
	} else {
		verb = smtp_verb_parse(line, &args);
		s->cmd_total[verb]++;
		smtpd_commands[verb](s, args);
		/* MAIL, DATA, BDAT and AUTH succeed when their last reply is positive:
		 * they count themselves then. */
		if (s->last_code != 0 && s->last_code < 400 && verb != SMTP_VERB_MAIL &&
		    verb != SMTP_VERB_DATA && verb != SMTP_VERB_BDAT && verb != SMTP_VERB_AUTH)
			s->cmd_ok[verb]++;
	}
	smtpd_error_limits(s);
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

/* smtpd_content_process - feed DATA or BDAT bytes; 0 when more is needed. */
static int smtpd_content_process(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec vec;
	size_t avail, take, used;

	while (evbuffer_peek(in, -1, NULL, &vec, 1) > 0 && (avail = vec.iov_len) > 0) {
		if (s->state == SMTPD_STATE_BDAT) {
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
	if (s->state == SMTPD_STATE_BDAT && s->bdat_left == 0) {
		smtpd_bdat_end(s);
		smtpd_error_limits(s);
		return 1;
	}
	if (s->state == SMTPD_STATE_DATA && s->tx->df.done) {
		s->last_code = 0;
		smtpd_message_end(s);
		smtpd_error_limits(s);
		return 1;
	}
	return 0;
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

/* smtpd_input_process - handle whatever the client sent, as far as we may. */
static void smtpd_input_process(struct smtp_session *s)
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

/* smtpd_finish - log the summary line and stop the loop. */
static void smtpd_finish(struct smtp_session *s)
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
	log_info("disconnect from %s[%s]:%u %s queued=%u%s%s result=%s",
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
static void smtpd_close(struct smtp_session *s, const char *result)
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
		smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
		smtpd_close(s, "timeout");
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

/* smtpd_term_cb - SIGTERM: finish the transaction under way, then leave. */
static void smtpd_term_cb(int signo, void *arg)
{
	struct smtp_session *s = arg;

	s->shutdown = 1;
	if (s->wait == SMTPD_WAIT_NONE)
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
static int smtpd_rules_service(void *arg, enum rule_service kind, const char *name,
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
}

/* smtpd_session_main - the session process. */
void smtpd_session_main(const struct config *cfg, const struct listener_config *listener,
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
	smtpd_peer(&s, fd);
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) < 0)
		log_debug("TCP_NODELAY: %s", strerror(errno));
	if ((s.base = evloop_new()) == NULL ||
	    (s.bev = bufferevent_socket_new(s.base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
	    (s.queue_ev = event_new(s.base, queue_fd, EV_READ | EV_PERSIST, smtpd_queue_cb, &s)) ==
		    NULL ||
	    (s.delay_ev = evtimer_new(s.base, smtpd_delay_cb, &s)) == NULL ||
	    (s.term_ev = sigevent_new(s.base, sigs, 1, smtpd_term_cb, &s)) == NULL ||
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
	smtpd_tx_free(&s, 1);
	smtpd_auth_free(s.sasl);
	rules_ctx_release(&s.rctx);
	exit(0);
}
