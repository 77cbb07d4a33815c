/*
 * smtpd_transaction.c - the transaction of an SMTP session: from MAIL to
 * the reply to the end of the message.
 *
 * MAIL asks the queue for a message file and RCPT adds recipients; the
 * transaction state (struct smtpd_tx) is reset by RSET, HELO/EHLO and the
 * end of a message. DATA or BDAT content goes through the data filter into
 * a write buffer and the file, after our Received: header; the preq rules
 * see the whole message, then the envelope is appended and the queue asked
 * to commit; DATA and BDAT start the transfer's rate clock and its end
 * stops it (smtpd_deadline.c). The requests that wait for the queue (MAIL,
 * the end of a message, and DATA or the first BDAT, which ask whether the
 * spool still keeps its free space reserve) suspend the session's input
 * until the answer comes. The command table (smtpd_commands.c) has checked
 * the state, TLS and AUTH before MAIL, RCPT and DATA run; BDAT asks it too,
 * and answers once its chunk is read.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "data_filter.h"
#include "envelope.h"
#include "io.h"
#include "ipc.h"
#include "log.h"
#include "message.h"
#include "rules.h"
#include "smtp_parse.h"
#include "smtpd_internal.h"

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

/*
 * smtpd_dmarc_refused - the preq rules refused the message for good (5xx):
 * its ctx:dmarc() record, when the rules asked for one, goes to the queue
 * all the same (in a memfd; no answer), for the aggregate reports.
 */
static void smtpd_dmarc_refused(struct smtp_session *s, const struct rule_verdict *v)
{
	struct ipc_msg m = {.type = IPC_DMARC_RECORD};
	char *record;
	int fd;

	if ((v->status != RULE_DENY && v->status != RULE_REJECT) || v->reply.code < 500 ||
	    s->queue_fd < 0 || (record = rules_dmarc_record(&s->rctx)) == NULL)
		return;
	memcpy(m.id, s->tx->env.id, sizeof(m.id));
	if ((fd = memfd_create("vsmtpd-dmarc", MFD_CLOEXEC)) < 0 ||
	    io_write_all(fd, record, strlen(record), 0, NULL) != 0 ||
	    ipc_send(s->queue_fd, &m, fd) < 0)
		log_warn("%s: cannot send the DMARC record to the queue: %s", s->tx->env.id,
			 strerror(errno));
	if (fd >= 0)
		close(fd);
	free(record);
}

/* smtpd_tx_free - end the transaction; the queue drops an uncommitted file. */
void smtpd_tx_free(struct smtp_session *s, int tell_queue)
{
	struct smtpd_tx *tx = s->tx;

	if (tx == NULL)
		return;
	smtpd_deadline_transfer_end(s);
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
void smtpd_tx_reset(struct smtp_session *s)
{
	smtpd_tx_free(s, 1);
	s->state = s->helo[0] ? SMTPD_STATE_READY : SMTPD_STATE_INIT;
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
	else if (err == EACCES) /* a delegation token the queue did not verify */
		smtpd_reply(s, "550 5.7.1 Not a message this server delegated (bad signature)");
	else if (err == ENOSPC || err == EDQUOT)
		smtpd_reply(s, "452 4.3.1 Insufficient system storage");
	else
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
}

/* smtpd_preq_load - read the message back from its file for the preq rules. */
struct message *smtpd_preq_load(struct smtpd_tx *tx)
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

/* smtpd_header_sink - message_write_header into a buffer of the right size. */
static void smtpd_header_sink(void *arg, const char *data, size_t len)
{
	char **p = arg;

	memcpy(*p, data, len);
	*p += len;
}

/* smtpd_preq_store - write a message the rules changed over the file's
 * content: its new header section, then its body straight from where it
 * was read (no copy of a body that may be megabytes). */
int smtpd_preq_store(struct smtpd_tx *tx, const struct message *msg)
{
	size_t hlen = message_header_size(msg), blen;
	const char *body = message_body(msg, &blen);
	char *head = malloc(hlen + 1), *p = head;
	int err;

	if (head == NULL)
		return ENOMEM;
	message_write_header(msg, smtpd_header_sink, &p);
	err = io_write_all(tx->fd, head, hlen, 0, NULL);
	free(head);
	if (err == 0)
		err = io_write_all(tx->fd, body, blen, (off_t)hlen, NULL);
	if (err != 0)
		return err;
	if (ftruncate(tx->fd, (off_t)(hlen + blen)) < 0 ||
	    lseek(tx->fd, (off_t)(hlen + blen), SEEK_SET) < 0)
		return errno;
	tx->written = hlen + blen;
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

	if (s->listener->kind_id == LISTENER_DELEGATION)
		return smtpd_delegation_check(s);
	if (smtpd_rules_used(s, RULE_STAGE_PREQ) && !s->rctx.skip_all) {
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
	smtpd_dmarc_refused(s, &v);
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
	/* A hold is a mark the rules leave; a quarantine, kept apart already, wins. */
	if (rules_hold(&s->rctx) != NULL && tx->env.quarantine == NULL) {
		tx->hold = *rules_hold(&s->rctx);
		if (envelope_set(&tx->env.hold, tx->hold.reason) < 0) {
			smtpd_reply(s, "451 4.3.0 Error: out of memory");
			return 1;
		}
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
	smtpd_deadline_transfer_end(s);
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
	free(tx->env.dmarc);
	tx->env.dmarc = rules_dmarc_record(&s->rctx);
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
	if (tx->env.hold != NULL)
		log_notice("%s: held on accept by rule \"%s\" at %s: %s", tx->env.id, tx->hold.rule,
			   rules_stage_name(tx->hold.stage), tx->env.hold);
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

/* smtpd_space_answer - the queue's answer at DATA or the first BDAT: start
 * the content, or refuse it (a BDAT chunk is read all the same). */
static void smtpd_space_answer(struct smtp_session *s, const struct ipc_msg *m)
{
	const char *refusal = NULL;

	if (s->tx == NULL || s->wait != SMTPD_WAIT_SPACE || strcmp(m->id, s->tx->env.id) != 0)
		fatal("space answer for %s that no transaction waits for", m->id);
	s->wait = SMTPD_WAIT_NONE;
	if (m->status == ENOSPC || m->status == EDQUOT)
		refusal = "452 4.3.1 Insufficient system storage";
	else if (m->status != 0)
		refusal = "451 4.3.0 Error: queue unavailable, try again later";
	if (s->state == SMTPD_STATE_BDAT) {
		s->bdat_refusal = refusal;
		if (refusal == NULL) {
			s->tx->chunking = 1;
			smtpd_content_start(s, DATA_FILTER_BDAT);
		}
		return;
	}
	if (refusal != NULL) {
		smtpd_reply(s, "%s", refusal);
		smtpd_error_limits(s);
		return;
	}
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtpd_content_start(s, DATA_FILTER_DATA);
	smtpd_deadline_transfer_start(s);
	s->state = SMTPD_STATE_DATA;
}

/* smtpd_queue_cb - answers from the queue process. */
void smtpd_queue_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct ipc_msg m;
	int passfd, n;

	while ((n = ipc_recv((int)fd, &m, &passfd)) > 0) {
		if (m.type == IPC_MSG_CREATED)
			smtpd_created(s, &m, passfd);
		else if (m.type == IPC_MSG_COMMITTED)
			smtpd_committed(s, &m);
		else if (m.type == IPC_MSG_SPACE_ANSWER)
			smtpd_space_answer(s, &m);
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
		if (s->wait == SMTPD_WAIT_CREATE || s->wait == SMTPD_WAIT_COMMIT ||
		    s->wait == SMTPD_WAIT_SPACE) {
			s->wait = SMTPD_WAIT_NONE;
			smtpd_reply(s, "421 4.3.0 %s Error: queue unavailable, closing connection",
				   s->cfg->hostname);
			smtpd_close(s, "queue unavailable");
			return;
		}
	}
	smtpd_input_process(s);
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
	tx->size_hint = mail->size;
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
void smtpd_cmd_mail(struct smtp_session *s, const char *args)
{
	struct smtp_mail mail;
	struct rule_verdict v;
	const char *err;

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
void smtpd_cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_rcpt rcpt;
	char to[SMTP_PATH_MAX + 1];
	struct envelope before = {0};
	struct rule_verdict v;
	const char *err;

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
		smtpd_reply_uncounted(s);
		return;
	}
	smtp_address_format(&rcpt.to, to, sizeof(to));
	/* A refused RCPT leaves the envelope as it was, whatever the rules
	 * changed before refusing: keep a copy to go back to. */
	if (smtpd_rules_used(s, RULE_STAGE_RCPT) &&
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

/* smtpd_cmd_data - DATA: receive dot-terminated content, once the queue
 * says there is room for it. */
void smtpd_cmd_data(struct smtp_session *s, const char *args)
{
	if (s->tx->chunking) {
		smtpd_reply(s, "503 5.5.1 Error: DATA after BDAT");
		return;
	}
	if (smtpd_queue_send(s, IPC_MSG_SPACE, s->tx->env.id, s->tx->size_hint, 0) < 0) {
		smtpd_reply(s, "451 4.3.0 Error: queue unavailable, try again later");
		return;
	}
	s->wait = SMTPD_WAIT_SPACE;
}

/* smtpd_cmd_bdat - BDAT (RFC 3030): a chunk of exactly the given size. */
void smtpd_cmd_bdat(struct smtp_session *s, const char *args)
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
	s->bdat_refusal = smtpd_state_refusal(s, SMTP_VERB_BDAT);
	s->bdat_prev = s->state;
	s->state = SMTPD_STATE_BDAT;
	/* The chunks of a message are one transfer; a refused chunk is one. */
	smtpd_deadline_transfer_start(s);
	smtpd_set_read_timeout(s, s->cfg->timeout_data);
	if (s->bdat_refusal == NULL && !s->tx->chunking) {
		/* The chunk is read once the queue says whether there is room. */
		if (smtpd_queue_send(s, IPC_MSG_SPACE, s->tx->env.id, s->tx->size_hint, 0) < 0)
			s->bdat_refusal = "451 4.3.0 Error: queue unavailable, try again later";
		else
			s->wait = SMTPD_WAIT_SPACE;
	}
}

/* smtpd_bdat_end - all bytes of a chunk are in: answer it. */
static void smtpd_bdat_end(struct smtp_session *s)
{
	struct smtpd_tx *tx = s->tx;
	const char *refusal = s->bdat_refusal;

	s->bdat_refusal = NULL;
	if (refusal != NULL) {
		s->state = s->bdat_prev;
		if (tx == NULL || !tx->chunking)
			smtpd_deadline_transfer_end(s);
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

/* smtpd_content_process - feed DATA or BDAT bytes; 0 when more is needed. */
int smtpd_content_process(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec vec;
	size_t avail, take, used;

	while (evbuffer_peek(in, -1, NULL, &vec, 1) > 0 && (avail = vec.iov_len) > 0) {
		if (s->state == SMTPD_STATE_BDAT) {
			take = avail < s->bdat_left ? avail : (size_t)s->bdat_left;
			if (s->bdat_refusal == NULL)
				data_filter_feed(&s->tx->df, vec.iov_base, take);
			evbuffer_drain(in, take);
			s->dl.transfer_bytes += take;
			s->bdat_left -= take;
			if (s->bdat_left == 0)
				break;
			continue;
		}
		used = data_filter_feed(&s->tx->df, vec.iov_base, avail);
		evbuffer_drain(in, used);
		s->dl.transfer_bytes += used;
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

