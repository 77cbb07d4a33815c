/*
 * mta_transaction.c - what the SMTP and LMTP client says, and the results.
 *
 * After the greeting: EHLO (LHLO), STARTTLS when the policy wants it, AUTH
 * PLAIN or LOGIN, then the transaction: RSET when the connection carried
 * one already, MAIL, one RCPT per recipient and DATA, all in one write with
 * PIPELINING, their replies matched by order; then the content, and the
 * reply to the final dot (one per accepted recipient with LMTP). Every
 * recipient's outcome is set once, from the reply about it or from the
 * local reason the transaction failed.
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

static void mta_session_next(struct mta_conn *c);

/* ---- command helpers ----------------------------------------------------- */

/* mta_safe - whether s can go on a command line: no control characters. */
static int mta_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* mta_xtext - s encoded as RFC 3461 xtext; the caller frees it. */
static char *mta_xtext(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *p = out;

	if (out == NULL)
		fatal("smtp client: out of memory");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch >= 33 && ch <= 126 && ch != '+' && ch != '=') {
			*p++ = (char)ch;
		} else {
			*p++ = '+';
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 15];
		}
	}
	*p = '\0';
	return out;
}

/* mta_base64 - s (n bytes) in base64; the caller frees it. */
static char *mta_base64(const char *s, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out == NULL || n > INT_MAX / 2)
		fatal("smtp client: out of memory");
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	return out;
}

/* ---- results ------------------------------------------------------------ */

/* mta_outcome_of - what a reply code means for a recipient. */
enum mta_outcome mta_outcome_of(int code)
{
	if (code >= 200 && code < 300)
		return MTA_SENT;
	if (code >= 500 && code < 600)
		return MTA_FAILED;
	return MTA_DEFERRED;
}

/* mta_result_fix - the enhanced code's class follows the outcome ("x.0.0" when none came). */
void mta_result_fix(struct mta_result *r)
{
	char cls = r->outcome == MTA_SENT       ? '2'
	           : r->outcome == MTA_DEFERRED ? '4'
	                                                : '5';

	if (r->enhanced[0] == '\0')
		snprintf(r->enhanced, sizeof(r->enhanced), "%c.0.0", cls);
	else
		r->enhanced[0] = cls;
}

/* mta_result_local - r as a local reason: no reply from the peer. */
void mta_result_local(struct mta_result *r, enum mta_outcome outcome, const char *enhanced,
		      const char *fmt, va_list ap)
{
	memset(r, 0, sizeof(*r));
	r->outcome = outcome;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	vsnprintf(r->reply, sizeof(r->reply), fmt, ap);
	mta_result_fix(r);
}

/* mta_result_reply - r from the reply just read, enhanced replacing the peer's when given. */
void mta_result_reply(const struct mta_conn *c, struct mta_result *r,
                              enum mta_outcome outcome, const char *enhanced)
{
	memset(r, 0, sizeof(*r));
	r->outcome = outcome;
	r->code = c->reply.code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s",
	         enhanced != NULL ? enhanced : c->reply.enhanced);
	snprintf(r->reply, sizeof(r->reply), "%s", c->reply.text);
	r->remote_said = 1;
	mta_result_fix(r);
}

/* mta_rcpt_set - recipient i's outcome, unless it has one already. */
void mta_rcpt_set(struct mta_conn *c, size_t i, const struct mta_result *r)
{
	if (c->rstate[i] & MTA_R_SET)
		return;
	c->results[i] = *r;
	c->rstate[i] |= MTA_R_SET;
}

/* mta_rcpt_set_all - every recipient without an outcome gets r. */
void mta_rcpt_set_all(struct mta_conn *c, const struct mta_result *r)
{
	size_t i;

	for (i = 0; i < c->job->nrcpts; i++)
		mta_rcpt_set(c, i, r);
}

/* mta_rcpt_fail_all - every recipient without an outcome: a local reason. */
__attribute__((format(printf, 4, 5))) static void
mta_rcpt_fail_all(struct mta_conn *c, enum mta_outcome outcome, const char *enhanced,
                   const char *fmt, ...)
{
	struct mta_result r;
	va_list ap;

	va_start(ap, fmt);
	mta_result_local(&r, outcome, enhanced, fmt, ap);
	va_end(ap);
	mta_rcpt_set_all(c, &r);
}

/* ---- the session -------------------------------------------------------- */

/* mta_send_ehlo - EHLO, or LHLO for LMTP. */
static void mta_send_ehlo(struct mta_conn *c)
{
	memset(&c->ext_new, 0, sizeof(c->ext_new));
	mta_cmd(c, 0, "%s %s", c->dest.lmtp ? "LHLO" : "EHLO", c->dest.helo_name);
	c->state = MTA_S_EHLO;
	mta_wait(c, c->dest.command_timeout);
}

/* mta_ext_line - note the extension that one line of the EHLO reply names. */
void mta_ext_line(struct mta_ext *e, const char *text)
{
	char kw[32];
	size_t n = strcspn(text, " =");
	const char *arg = text[n] != '\0' ? text + n + 1 : text + n;

	if (n == 0 || n >= sizeof(kw))
		return;
	memcpy(kw, text, n);
	kw[n] = '\0';
	if (strcasecmp(kw, "PIPELINING") == 0)
		e->pipelining = 1;
	else if (strcasecmp(kw, "STARTTLS") == 0)
		e->starttls = 1;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		e->eightbitmime = 1;
	else if (strcasecmp(kw, "SMTPUTF8") == 0)
		e->smtputf8 = 1;
	else if (strcasecmp(kw, "DSN") == 0)
		e->dsn = 1;
	else if (strcasecmp(kw, "ENHANCEDSTATUSCODES") == 0)
		e->enhancedstatuscodes = 1;
	else if (strcasecmp(kw, "SIZE") == 0) {
		char *end;
		unsigned long long v;

		e->size = 1;
		errno = 0;
		v = strtoull(arg, &end, 10);
		e->size_max = (errno == 0 && end != arg && *arg >= '0' && *arg <= '9') ? v : 0;
	} else if (strcasecmp(kw, "AUTH") == 0) {
		char mechs[MTA_LINE_MAX + 1], *tok, *save = NULL;

		snprintf(mechs, sizeof(mechs), "%s", arg);
		for (tok = strtok_r(mechs, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
			if (strcasecmp(tok, "PLAIN") == 0)
				e->auth_plain = 1;
			else if (strcasecmp(tok, "LOGIN") == 0)
				e->auth_login = 1;
		}
	}
}

/* mta_on_greeting - the peer's first reply: 2xx says go on. */
void mta_on_greeting(struct mta_conn *c)
{
	if (c->reply.code / 100 != 2) {
		mta_fail_reply(c, NULL);
		return;
	}
	mta_send_ehlo(c);
}

/* mta_on_ehlo - extensions known, or HELO after a 5xx (not with LMTP). */
void mta_on_ehlo(struct mta_conn *c)
{
	if (c->reply.code / 100 == 2) {
		c->ext = c->ext_new;
		mta_session_next(c);
		return;
	}
	if (c->reply.code / 100 == 5 && !c->dest.lmtp) {
		memset(&c->ext, 0, sizeof(c->ext));
		mta_cmd(c, 0, "HELO %s", c->dest.helo_name);
		c->state = MTA_S_HELO;
		mta_wait(c, c->dest.command_timeout);
		return;
	}
	mta_fail_reply(c, NULL);
}

/* mta_on_helo - the plain SMTP greeting is done, or not. */
void mta_on_helo(struct mta_conn *c)
{
	if (c->reply.code / 100 != 2) {
		mta_fail_reply(c, NULL);
		return;
	}
	mta_session_next(c);
}

/* mta_on_starttls - 220: the handshake; otherwise MAY goes on in plaintext. */
void mta_on_starttls(struct mta_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t injected = evbuffer_get_length(in);

	if (c->reply.code / 100 == 2) {
		/* Nothing the peer sent behind its 220 may count once TLS is
		 * up: that would be an injection (CVE-2011-0411 turned around). */
		if (injected > 0) {
			log_notice("%s: discarded %zu bytes sent before the TLS handshake",
			           c->remote, injected);
			evbuffer_drain(in, injected);
		}
		mta_tls_start(c);
		return;
	}
	if (c->dest.tls == CLIENT_TLS_MAY) {
		log_info("%s: STARTTLS refused (%s), going on without TLS", c->remote,
		         c->reply.text);
		c->ext.starttls = 0;
		mta_session_next(c);
		return;
	}
	mta_fail_reply(c, "4.7.5");
}

/* mta_tls_done - the handshake finished: log it, then greet or say EHLO again. */
void mta_tls_done(struct mta_conn *c)
{
	struct tls_info info;

	evtimer_del(c->timer);
	tls_info_get(bufferevent_openssl_get_ssl(c->bev), &info);
	log_info("TLS established to %s: %s %s", c->remote, info.version, info.cipher);
	c->tls_active = 1;
	if (c->dest.tls == CLIENT_TLS_IMPLICIT) {
		c->state = MTA_S_GREETING;
		mta_wait(c, c->dest.command_timeout);
		/* The greeting may have come with the end of the handshake. */
		mta_read_cb(c->bev, c);
		return;
	}
	/* RFC 3207 4.2: what the peer said before TLS counts no more. */
	mta_send_ehlo(c);
}

/* mta_auth_plain - the PLAIN response (RFC 4616) in base64; the caller cleanses and frees it. */
static char *mta_auth_plain(const struct mta_conn *c)
{
	const char *user = c->dest.auth_user;
	const char *pass = c->dest.auth_password != NULL ? c->dest.auth_password : "";
	size_t ul = strlen(user), pl = strlen(pass);
	char *raw = malloc(ul + pl + 2), *b64;

	if (raw == NULL)
		fatal("smtp client: out of memory");
	raw[0] = '\0';
	memcpy(raw + 1, user, ul);
	raw[ul + 1] = '\0';
	memcpy(raw + ul + 2, pass, pl);
	b64 = mta_base64(raw, ul + pl + 2);
	OPENSSL_cleanse(raw, ul + pl + 2);
	free(raw);
	return b64;
}

/* mta_auth_begin - AUTH PLAIN (preferred) or LOGIN. */
static void mta_auth_begin(struct mta_conn *c)
{
	if (!c->tls_active && !mta_is_local(c)) {
		mta_fail(c, "4.7.8", "not sending credentials to %s without TLS", c->remote);
		return;
	}
	c->auth_step = 0;
	c->state = MTA_S_AUTH;
	if (c->ext.auth_plain) {
		char *b64 = mta_auth_plain(c);

		c->auth_login = 0;
		mta_cmd(c, 1, "AUTH PLAIN %s", b64);
		OPENSSL_cleanse(b64, strlen(b64));
		free(b64);
	} else if (c->ext.auth_login) {
		c->auth_login = 1;
		mta_cmd(c, 0, "AUTH LOGIN");
	} else {
		mta_fail(c, "4.7.8", "no usable AUTH mechanism offered by %s (PLAIN or LOGIN)",
		          c->remote);
		return;
	}
	mta_wait(c, c->dest.command_timeout);
}

/* mta_auth_send - one base64 line: the PLAIN response (part NULL) or a LOGIN part. */
static void mta_auth_send(struct mta_conn *c, const char *part)
{
	char *b64 = part == NULL ? mta_auth_plain(c) : mta_base64(part, strlen(part));

	mta_cmd(c, 1, "%s", b64);
	OPENSSL_cleanse(b64, strlen(b64));
	free(b64);
	c->auth_step++;
	mta_wait(c, c->dest.command_timeout);
}

/* mta_on_auth - the reply to AUTH or to one of its lines. */
void mta_on_auth(struct mta_conn *c)
{
	struct mta_result r;
	int code = c->reply.code;
	const char *pass = c->dest.auth_password != NULL ? c->dest.auth_password : "";

	if (code / 100 == 2) {
		c->authed = 1;
		log_debug("%s: authenticated as %s", c->remote, c->dest.auth_user);
		mta_session_next(c);
		return;
	}
	if (code == 334 && !c->auth_login && c->auth_step == 0) {
		mta_auth_send(c, NULL);
		return;
	}
	if (code == 334 && c->auth_login && c->auth_step < 2) {
		mta_auth_send(c, c->auth_step == 0 ? c->dest.auth_user : pass);
		return;
	}
	/* Wrong credentials are for an administrator to fix: the mail waits. */
	log_warn("%s: authentication as %s failed: %s", c->remote, c->dest.auth_user,
	         c->reply.text);
	mta_result_reply(c, &r, MTA_DEFERRED, "4.7.8");
	mta_fail_result(c, &r, 0);
}

/* mta_want_starttls - whether this session should say STARTTLS now. */
static int mta_want_starttls(const struct mta_conn *c)
{
	if (c->tls_active)
		return 0;
	return c->dest.tls == CLIENT_TLS_ENCRYPT ||
	       (c->dest.tls == CLIENT_TLS_MAY && c->plain_retry != 2);
}

/* mta_session_next - after EHLO: STARTTLS, AUTH, then the transaction. */
static void mta_session_next(struct mta_conn *c)
{
	char err[256];

	if (mta_want_starttls(c)) {
		if (c->ext.starttls && mta_conn_ctx(c, err, sizeof(err)) != NULL) {
			mta_cmd(c, 0, "STARTTLS");
			c->state = MTA_S_STARTTLS;
			mta_wait(c, c->dest.command_timeout);
			return;
		}
		if (c->dest.tls == CLIENT_TLS_ENCRYPT) {
			if (c->ext.starttls)
				mta_fail(c, "4.7.5", "cannot use TLS with %s: %s", c->remote, err);
			else
				mta_fail(c, "4.7.5", "TLS is required, but was not offered by %s",
				          c->remote);
			return;
		}
		if (c->ext.starttls)
			log_warn("%s: STARTTLS offered but unusable: %s", c->remote, err);
	}
	if (mta_set(c->dest.auth_user) && !c->authed) {
		mta_auth_begin(c);
		return;
	}
	c->state = MTA_S_READY;
	evtimer_del(c->timer);
	if (c->job != NULL)
		mta_tx_begin(c);
}

/* ---- the transaction ---------------------------------------------------- */

/* mta_tx_write_mail - MAIL FROM with the parameters the peer understands. */
static void mta_tx_write_mail(struct mta_conn *c)
{
	const struct mta_job *j = c->job;
	char size[32] = "", *envid = NULL;
	const char *ret = "";

	if (c->ext.size)
		snprintf(size, sizeof(size), " SIZE=%zu", j->content_len);
	if (c->ext.dsn && j->ret == SMTP_RET_FULL)
		ret = " RET=FULL";
	else if (c->ext.dsn && j->ret == SMTP_RET_HDRS)
		ret = " RET=HDRS";
	if (c->ext.dsn && mta_set(j->envid))
		envid = mta_xtext(j->envid);
	mta_cmd(c, 0, "MAIL FROM:<%s>%s%s%s%s%s%s", j->mail_from != NULL ? j->mail_from : "", size,
	         j->body == SMTP_BODY_8BITMIME && c->ext.eightbitmime ? " BODY=8BITMIME" : "",
	         j->smtputf8 ? " SMTPUTF8" : "", ret, envid != NULL ? " ENVID=" : "",
	         envid != NULL ? envid : "");
	free(envid);
}

/* mta_tx_write_rcpt - RCPT TO for one recipient, with its DSN parameters when offered. */
static void mta_tx_write_rcpt(struct mta_conn *c, const struct mta_rcpt *r)
{
	char notify[64] = "", *orcpt = NULL;

	if (c->ext.dsn && r->notify != 0) {
		if (r->notify & SMTP_NOTIFY_NEVER)
			snprintf(notify, sizeof(notify), " NOTIFY=NEVER");
		else
			snprintf(notify, sizeof(notify), " NOTIFY=%s%s%s%s%s",
			         r->notify & SMTP_NOTIFY_SUCCESS ? "SUCCESS" : "",
			         (r->notify & SMTP_NOTIFY_SUCCESS) &&
			                 (r->notify & (SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY))
			             ? ","
			             : "",
			         r->notify & SMTP_NOTIFY_FAILURE ? "FAILURE" : "",
			         (r->notify & SMTP_NOTIFY_FAILURE) &&
			                 (r->notify & SMTP_NOTIFY_DELAY)
			             ? ","
			             : "",
			         r->notify & SMTP_NOTIFY_DELAY ? "DELAY" : "");
	}
	if (c->ext.dsn && mta_set(r->orcpt_type) && mta_set(r->orcpt))
		orcpt = mta_xtext(r->orcpt);
	mta_cmd(c, 0, "RCPT TO:<%s>%s%s%s%s%s", r->address, notify, orcpt != NULL ? " ORCPT=" : "",
	         orcpt != NULL ? r->orcpt_type : "", orcpt != NULL ? ";" : "",
	         orcpt != NULL ? orcpt : "");
	free(orcpt);
}

/* mta_step_of - what the reply to transaction step s answers, and for which recipient. */
static enum mta_step mta_step_of(const struct mta_conn *c, size_t s, size_t *rcpt)
{
	if (c->tx_rset) {
		if (s == 0)
			return MTA_STEP_RSET;
		s--;
	}
	if (s == 0)
		return MTA_STEP_MAIL;
	if (s <= c->nsent) {
		*rcpt = s - 1;
		return MTA_STEP_RCPT;
	}
	return MTA_STEP_DATA;
}

/* mta_tx_write_step - the command of transaction step s. */
static void mta_tx_write_step(struct mta_conn *c, size_t s)
{
	size_t k = 0;

	switch (mta_step_of(c, s, &k)) {
	case MTA_STEP_RSET:
		mta_cmd(c, 0, "RSET");
		break;
	case MTA_STEP_MAIL:
		mta_tx_write_mail(c);
		break;
	case MTA_STEP_RCPT:
		if (c->ext.dsn)
			c->rstate[c->sent[k]] |= MTA_R_DSN;
		mta_tx_write_rcpt(c, &c->job->rcpts[c->sent[k]]);
		break;
	case MTA_STEP_DATA:
		mta_cmd(c, 0, "DATA");
		break;
	}
}

/* mta_tx_write - the next command, or with PIPELINING all that are left, in one write. */
static void mta_tx_write(struct mta_conn *c)
{
	do
		mta_tx_write_step(c, c->tx_written++);
	while (c->ext.pipelining && c->tx_written < c->tx_steps);
	mta_wait(c, c->dest.command_timeout);
}

/* mta_tx_refuse - the job cannot go to this peer: every recipient fails, no MAIL is sent. */
static int mta_tx_refuse(struct mta_conn *c)
{
	const struct mta_job *j = c->job;

	if (j->smtputf8 && !c->ext.smtputf8) {
		mta_rcpt_fail_all(c, MTA_FAILED, "5.6.7", "SMTPUTF8 not supported by %s",
		                   c->remote);
		return 1;
	}
	if (c->ext.size && c->ext.size_max > 0 && j->content_len > c->ext.size_max) {
		mta_rcpt_fail_all(c, MTA_FAILED, "5.3.4",
		                   "message size %zu exceeds size limit %llu of %s", j->content_len,
		                   c->ext.size_max, c->remote);
		return 1;
	}
	if ((j->mail_from != NULL && !mta_safe(j->mail_from)) ||
	    (mta_set(j->envid) && !mta_safe(j->envid))) {
		mta_rcpt_fail_all(c, MTA_FAILED, "5.1.7", "bad sender address syntax");
		return 1;
	}
	return 0;
}

/* mta_tx_begin - the session is ready: start the job's transaction. */
void mta_tx_begin(struct mta_conn *c)
{
	const struct mta_job *j = c->job;
	struct mta_result bad;
	size_t i;

	if (mta_tx_refuse(c)) {
		mta_job_finish(c, 1);
		return;
	}
	memset(&bad, 0, sizeof(bad));
	bad.outcome = MTA_FAILED;
	snprintf(bad.enhanced, sizeof(bad.enhanced), "5.1.3");
	snprintf(bad.reply, sizeof(bad.reply), "bad recipient address syntax");
	c->nsent = c->naccepted = 0;
	for (i = 0; i < j->nrcpts; i++) {
		const struct mta_rcpt *r = &j->rcpts[i];

		if (r->address == NULL || !mta_safe(r->address) ||
		    (r->orcpt_type != NULL && !mta_safe(r->orcpt_type)) ||
		    (r->orcpt != NULL && !mta_safe(r->orcpt)))
			mta_rcpt_set(c, i, &bad);
		else
			c->sent[c->nsent++] = i;
	}
	if (c->nsent == 0) {
		mta_job_finish(c, 1);
		return;
	}
	c->tx_rset = c->used;
	c->used = 1;
	c->mail_ok = 0;
	c->tx_steps = (size_t)c->tx_rset + 1 + c->nsent + 1;
	c->tx_written = c->tx_replied = 0;
	c->state = MTA_S_TX;
	mta_tx_write(c);
}

/* mta_content_feed - queue the next piece of the message, dot-stuffed, by reference. */
void mta_content_feed(struct mta_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const char *m = c->job->content;
	size_t len = c->job->content_len, off = c->feed_off, seg = off;
	size_t end = len - off > MTA_FEED_CHUNK ? off + MTA_FEED_CHUNK : len;
	const char *nl;

	while (off < end) {
		if (c->feed_bol && m[off] == '.') {
			if (off > seg)
				evbuffer_add_reference(out, m + seg, off - seg, NULL, NULL);
			evbuffer_add(out, ".", 1);
			seg = off;
		}
		if ((nl = memchr(m + off, '\n', end - off)) == NULL) {
			c->feed_bol = 0;
			off = end;
			break;
		}
		off = (size_t)(nl - m) + 1;
		c->feed_bol = 1;
	}
	if (end > seg)
		evbuffer_add_reference(out, m + seg, end - seg, NULL, NULL);
	c->feed_off = end;
	if (end < len)
		return;
	if (len > 0 && !(len >= 2 && m[len - 2] == '\r' && m[len - 1] == '\n'))
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
	c->feed_done = 1;
	/* Called back once all of it is out: then the wait for the reply begins. */
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

/* mta_content_start - the peer said 354: send the message. */
static void mta_content_start(struct mta_conn *c)
{
	c->state = MTA_S_CONTENT;
	c->feed_off = 0;
	c->feed_bol = 1;
	c->feed_done = 0;
	log_debug("%s: > (message, %zu bytes)", c->remote, c->job->content_len);
	bufferevent_setwatermark(c->bev, EV_WRITE, MTA_WRITE_LOW, 0);
	mta_content_feed(c);
	mta_wait(c, c->dest.data_timeout);
}

/* mta_content_sent - the message is out: wait for the dot's reply (one per recipient, LMTP). */
void mta_content_sent(struct mta_conn *c)
{
	c->state = MTA_S_DOT;
	c->dot_next = 0;
	c->dot_left = c->dest.lmtp ? c->naccepted : 1;
	mta_wait(c, c->dest.data_timeout);
}

/* mta_tx_data_reply - the reply to DATA: 354 sends the message, anything else ends it. */
static void mta_tx_data_reply(struct mta_conn *c)
{
	struct mta_result r;
	size_t i;

	if (c->reply.code == 354 && c->naccepted > 0) {
		mta_content_start(c);
		return;
	}
	if (c->reply.code == 354) {
		/* No recipient to take the message, yet the peer waits for it:
		 * an empty message with no recipient ends the transaction. */
		mta_cmd(c, 0, ".");
		c->state = MTA_S_DOT_ABORT;
		mta_wait(c, c->dest.command_timeout);
		return;
	}
	mta_result_reply(c, &r, c->reply.code >= 500 ? MTA_FAILED : MTA_DEFERRED,
	                  NULL);
	for (i = 0; i < c->nsent; i++)
		if (c->rstate[c->sent[i]] & MTA_R_ACCEPTED)
			mta_rcpt_set(c, c->sent[i], &r);
	mta_job_finish(c, 1);
}

/* mta_on_tx - a reply to RSET, MAIL, RCPT or DATA, in the order they were sent. */
void mta_on_tx(struct mta_conn *c)
{
	struct mta_result r;
	size_t k = 0, s = c->tx_replied++;
	int ok = c->reply.code / 100 == 2;

	switch (mta_step_of(c, s, &k)) {
	case MTA_STEP_RSET:
		break;
	case MTA_STEP_MAIL:
		c->mail_ok = ok;
		if (!ok) {
			mta_result_reply(c, &r, mta_outcome_of(c->reply.code), NULL);
			mta_rcpt_set_all(c, &r);
		}
		break;
	case MTA_STEP_RCPT:
		if (ok && c->mail_ok && !(c->rstate[c->sent[k]] & MTA_R_SET)) {
			c->rstate[c->sent[k]] |= MTA_R_ACCEPTED;
			c->naccepted++;
		} else if (!ok) {
			mta_result_reply(c, &r, mta_outcome_of(c->reply.code), NULL);
			mta_rcpt_set(c, c->sent[k], &r);
		}
		break;
	case MTA_STEP_DATA:
		mta_tx_data_reply(c);
		return;
	}
	if (c->tx_replied < c->tx_written) {
		mta_wait(c, c->dest.command_timeout);
		return;
	}
	/* Without PIPELINING: stop as soon as nothing can come of it. */
	if (!c->mail_ok && mta_step_of(c, s, &k) != MTA_STEP_RSET) {
		mta_job_finish(c, 1);
		return;
	}
	if (c->tx_written == c->tx_steps - 1 && c->naccepted == 0) {
		mta_job_finish(c, 1);
		return;
	}
	mta_tx_write(c);
}

/* mta_on_dot - the reply to the final dot: for all (SMTP) or the next recipient (LMTP). */
void mta_on_dot(struct mta_conn *c)
{
	struct mta_result r;
	enum mta_outcome o = mta_outcome_of(c->reply.code);

	mta_result_reply(c, &r, o, NULL);
	if (!c->dest.lmtp) {
		size_t i;

		for (i = 0; i < c->nsent; i++)
			if (c->rstate[c->sent[i]] & MTA_R_ACCEPTED)
				mta_rcpt_set(c, c->sent[i], &r);
	} else {
		while (c->dot_next < c->nsent &&
		       !(c->rstate[c->sent[c->dot_next]] & MTA_R_ACCEPTED))
			c->dot_next++;
		if (c->dot_next < c->nsent)
			mta_rcpt_set(c, c->sent[c->dot_next++], &r);
	}
	if (--c->dot_left > 0) {
		mta_wait(c, c->dest.data_timeout);
		return;
	}
	mta_job_finish(c, 1);
}

/* mta_on_early - a reply while the message is still going out: the peer gave up on it. */
void mta_on_early(struct mta_conn *c)
{
	struct mta_result r;
	size_t i;

	if (c->feed_done && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		/* All of it was out; the write callback is still to come. */
		mta_content_sent(c);
		mta_on_dot(c);
		return;
	}
	mta_result_reply(c, &r, c->reply.code >= 500 ? MTA_FAILED : MTA_DEFERRED,
	                  NULL);
	for (i = 0; i < c->nsent; i++)
		if (c->rstate[c->sent[i]] & MTA_R_ACCEPTED)
			mta_rcpt_set(c, c->sent[i], &r);
	/* The rest of the message cannot be taken back: the connection goes. */
	mta_job_finish(c, 0);
}

/* mta_tx_fail - the connection failed during a transaction. */
void mta_tx_fail(struct mta_conn *c, const struct mta_result *r)
{
	mta_rcpt_set_all(c, r);
	mta_job_finish(c, 0);
}

