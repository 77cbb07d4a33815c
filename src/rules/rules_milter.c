/*
 * rules_milter.c - ctx:milter(name): vsmtpd as the MTA side of the milter
 * protocol (version 6, as Postfix speaks it) with a [service:NAME] of
 * kind milter.
 *
 * In a session, a milter gets one connection per SMTP connection, opened
 * at its first call and kept in rule_ctx.milter: the option negotiation,
 * then each call moves the conversation on to the stage the rules are at,
 * sending what the milter has not seen yet: CONNECT, HELO (again when the
 * client says it again with another name, or after STARTTLS), MAIL, the
 * recipients (at the rcpt stage the one being given, elsewhere all of
 * them), and at preq DATA, the header fields, EOH, the body in chunks and
 * the end of the message, whose modifications are applied
 * (rules_milter_apply.c). Each command goes with the macros Postfix sends
 * by default where vsmtpd knows their value, and the steps the milter
 * asked to skip or not to answer are honoured. A decision ends the
 * milter's part of the connection (at connect; accept or discard at
 * helo), of the transaction (from mail on), or refuses one command (a
 * reject or tempfail at helo or of a recipient); later calls give it again
 * without asking. rules_milter_tx_end() sends ABORT when the milter saw a
 * transaction begin but not end, rules_milter_release() QUIT.
 *
 * At postq and delivery (the delivery worker) a call has the whole
 * conversation over the queued message at once, on its own connection.
 *
 * Every call is one rules_service call: within the service's timeout,
 * one log line, and a failure (refused connection, timeout, a reply out of
 * place or malformed) handled by rules_service_failed() as the service's
 * on_failure says. A milter that failed once in a connection fails its
 * later calls in that connection the same way.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rule_objects.h"
#include "rules_internal.h"
#include "rules_milter.h"
#include "rules_service.h"

/* How far a conversation has gone. */
enum milter_step {
	STEP_CLOSED,    /* no connection */
	STEP_OPEN,      /* options negotiated */
	STEP_CONNECTED, /* CONNECT sent */
	STEP_MAIL,      /* MAIL sent */
	STEP_RCPT,      /* a recipient sent */
	STEP_DATA,      /* DATA or later sent */
	STEP_EOM,       /* the end of the message answered */
};

/* What a decision ends. */
enum milter_level {
	LEVEL_COMMAND,    /* the command only (HELO, one recipient) */
	LEVEL_TX,         /* the milter's part of the transaction */
	LEVEL_CONNECTION, /* the milter's part of the connection */
};

/* One milter's conversation over one SMTP connection. */
struct milter_conv {
	struct milter_conv *next;
	const struct service_config *svc;
	int fd;
	uint32_t actions, protocol; /* what the milter negotiated */
	enum milter_step step;
	char helo[256];  /* the HELO name sent, "" before HELO */
	int helo_tls;    /* whether the session had TLS then */
	int conn_over, tx_over;
	struct milter_outcome conn_outcome, tx_outcome;
	char last_rcpt[RULE_ADDRESS_TEXT_MAX]; /* the recipient sent last, and */
	size_t last_nrcpts;                    /* how many the envelope had then */
	char error[256];                       /* the failure that ended it */
};

/* One call under way. */
struct milter_run {
	lua_State *L;
	struct rule_ctx *ctx;
	enum rule_stage stage;
	struct milter_conv *conv;
	struct rules_service_call *c;
	struct milter_buf out; /* packets to send */
	char *pkt;             /* the reply being read */
	size_t pkt_cap;
	struct milter_outcome o;
	enum milter_level level;
	struct milter_edits edits;
};

/* ---- reading and writing -------------------------------------------- */

/* run_send - write the packets gathered in m->out. */
static int run_send(struct milter_run *m)
{
	int rc;

	if (m->out.failed) {
		snprintf(m->c->error, sizeof(m->c->error), "out of memory or a value too long");
		return -1;
	}
	rc = rules_service_write(m->c, m->out.p, m->out.len);
	m->out.len = 0;
	return rc;
}

/* read_exact - len bytes, before the deadline. */
static int read_exact(struct rules_service_call *c, char *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		if ((n = rules_service_read(c, buf + off, len - off)) < 0)
			return -1;
		if (n == 0) {
			snprintf(c->error, sizeof(c->error), "the milter closed the connection");
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

/* run_read - the next reply that is not PROGRESS, into r (its strings in m->pkt). */
static int run_read(struct milter_run *m, struct milter_reply *r)
{
	char hdr[4], why[128], *p;
	uint32_t be, n;
	size_t used;
	int one = 1;

	for (;;) {
		/* A milter may write a reply in several pieces (a modification,
		 * then the decision): acknowledge at once, so that its Nagle does
		 * not wait out our delayed acknowledgement (40 ms) for each. */
		(void)setsockopt(m->c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		if (read_exact(m->c, hdr, 4) < 0)
			return -1;
		memcpy(&be, hdr, 4);
		n = ntohl(be);
		if (n == 0 || n > MILTER_PACKET_MAX) {
			snprintf(m->c->error, sizeof(m->c->error), "reply length %u out of range",
				 (unsigned)n);
			return -1;
		}
		if (m->pkt_cap < 4 + (size_t)n) {
			if ((p = realloc(m->pkt, 4 + (size_t)n)) == NULL) {
				snprintf(m->c->error, sizeof(m->c->error), "out of memory");
				return -1;
			}
			m->pkt = p;
			m->pkt_cap = 4 + (size_t)n;
		}
		memcpy(m->pkt, hdr, 4);
		if (read_exact(m->c, m->pkt + 4, n) < 0)
			return -1;
		if (milter_reply_next(m->pkt, 4 + (size_t)n, &used, r, why, sizeof(why)) != 1) {
			snprintf(m->c->error, sizeof(m->c->error), "bad reply: %s", why);
			return -1;
		}
		if (r->code != MILTER_R_PROGRESS)
			return 0;
	}
}

/* set_reply - a custom reply into o, its text made printable ASCII. */
static void set_reply(struct milter_outcome *o, const struct milter_reply *r)
{
	size_t i;

	o->action = r->smtp / 100 == 4 ? MILTER_TEMPFAIL : MILTER_REJECT;
	o->has_reply = 1;
	o->reply.code = r->smtp;
	snprintf(o->reply.enhanced, sizeof(o->reply.enhanced), "%s", r->enhanced);
	snprintf(o->reply.text, sizeof(o->reply.text), "%s", r->text);
	for (i = 0; o->reply.text[i]; i++)
		if ((unsigned char)o->reply.text[i] > 0x7e)
			o->reply.text[i] = '?';
}

/* The replies that decide the call by themselves, and their action. */
static const struct {
	char code; /* enum milter_reply_code */
	enum milter_action action;
} run_verdicts[] = {
	{MILTER_R_ACCEPT, MILTER_ACCEPT},
	{MILTER_R_REJECT, MILTER_REJECT},
	{MILTER_R_TEMPFAIL, MILTER_TEMPFAIL},
	{MILTER_R_DISCARD, MILTER_DISCARD},
};

/*
 * run_decide - what a reply to cmd says: 0 go on, 1 the milter decided
 * (m->o), 2 skip the rest of the body (when allowed), -1 a reply out of place.
 */
static int run_decide(struct milter_run *m, const struct milter_reply *r, const char *cmd,
		      int allow_skip)
{
	size_t i;

	for (i = 0; i < sizeof(run_verdicts) / sizeof(run_verdicts[0]); i++)
		if (run_verdicts[i].code == r->code) {
			m->o.action = run_verdicts[i].action;
			return 1;
		}
	switch (r->code) {
	case MILTER_R_CONTINUE:
		return 0;
	case MILTER_R_SKIP:
		if (!allow_skip)
			break;
		return 2;
	case MILTER_R_REPLYCODE:
		set_reply(&m->o, r);
		return 1;
	default:
		break;
	}
	snprintf(m->c->error, sizeof(m->c->error), "unexpected %s reply to %s",
		 milter_reply_name(r->code), cmd);
	return -1;
}

/* run_command - send m->out (macros and a command); unless noreply, read
 * the reply to cmd and decide. */
static int run_command(struct milter_run *m, uint32_t noreply, const char *cmd, int allow_skip)
{
	struct milter_reply r;

	if (run_send(m) < 0)
		return -1;
	if (noreply)
		return 0;
	if (run_read(m, &r) < 0)
		return -1;
	return run_decide(m, &r, cmd, allow_skip);
}

/* ---- the steps ------------------------------------------------------- */

/* run_open - connect and negotiate. */
static int run_open(struct milter_run *m)
{
	struct milter_reply r;

	if (rules_service_connect(m->c) < 0)
		return -1;
	m->conv->fd = m->c->fd;
	milter_put_optneg(&m->out, MILTER_F_ALL, MILTER_P_OFFER);
	if (run_send(m) < 0 || run_read(m, &r) < 0)
		return -1;
	if (r.code != MILTER_R_OPTNEG) {
		snprintf(m->c->error, sizeof(m->c->error), "unexpected %s reply to the negotiation",
			 milter_reply_name(r.code));
		return -1;
	}
	m->conv->actions = r.actions & MILTER_F_ALL;
	m->conv->protocol = r.protocol & MILTER_P_OFFER;
	m->conv->step = STEP_OPEN;
	return 0;
}

/* run_connect - the connect macros and CONNECT. */
static int run_connect(struct milter_run *m)
{
	const struct rule_ctx *ctx = m->ctx;
	const char *ip = ctx->client_ip != NULL && strcmp(ctx->client_ip, "unknown") != 0
			     ? ctx->client_ip
			     : NULL;
	char host[80], underscore[96], port[8];
	const char *macros[] = {
	    "j", ctx->server_name, "{daemon_name}", ctx->listener, "{daemon_addr}", ctx->server_ip,
	    "v", "vsmtpd", "_", underscore, "{client_addr}", ip, "{client_port}", port,
	};
	int rc = 0;

	snprintf(host, sizeof(host), "[%s]", ip ? ip : "unknown");
	snprintf(underscore, sizeof(underscore), "unknown [%s]", ip ? ip : "unknown");
	snprintf(port, sizeof(port), "%u", ctx->client_port);
	if (!(m->conv->protocol & MILTER_P_NOCONNECT)) {
		milter_put_macros(&m->out, MILTER_CONNECT, macros, 7);
		milter_put_connect(&m->out, ip ? host : "unknown", ip && strchr(ip, ':') ? '6' : '4',
				   ctx->client_port, ip);
		rc = run_command(m, m->conv->protocol & MILTER_P_NR_CONN, "connect", 0);
	}
	m->conv->step = STEP_CONNECTED;
	m->level = LEVEL_CONNECTION;
	return rc;
}

/* run_helo - the helo macros and HELO. */
static int run_helo(struct milter_run *m)
{
	const struct rule_ctx *ctx = m->ctx;
	char bits[16];
	const char *macros[] = {
	    "{tls_version}", ctx->is_secured ? ctx->tls_version : NULL,
	    "{cipher}",      ctx->is_secured ? ctx->tls_cipher : NULL,
	    "{cipher_bits}", ctx->is_secured ? bits : NULL,
	};
	int rc = 0;

	snprintf(bits, sizeof(bits), "%d", ctx->tls_bits);
	if (!(m->conv->protocol & MILTER_P_NOHELO)) {
		milter_put_macros(&m->out, MILTER_HELO, macros, 3);
		milter_put_strings(&m->out, MILTER_HELO, &ctx->helo, 1);
		rc = run_command(m, m->conv->protocol & MILTER_P_NR_HELO, "helo", 0);
	}
	if (rc == 0) {
		snprintf(m->conv->helo, sizeof(m->conv->helo), "%s", ctx->helo);
		m->conv->helo_tls = ctx->is_secured;
	}
	m->level = rc == 1 && (m->o.action == MILTER_ACCEPT || m->o.action == MILTER_DISCARD)
			   ? LEVEL_CONNECTION
			   : LEVEL_COMMAND;
	return rc;
}

/* angle - "<addr>" into buf. */
static const char *angle(char *buf, size_t len, const char *addr)
{
	snprintf(buf, len, "<%s>", addr ? addr : "");
	return buf;
}

/* run_mail - the mail macros and MAIL. */
static int run_mail(struct milter_run *m)
{
	const struct rule_ctx *ctx = m->ctx;
	const struct envelope *env = ctx->env;
	char from[RULE_ADDRESS_TEXT_MAX + 2];
	const char *arg = angle(from, sizeof(from), env->mail_from);
	const char *macros[] = {
	    "i", env->id[0] ? env->id : NULL,
	    "{auth_type}", ctx->is_authenticated ? ctx->auth_mechanism : NULL,
	    "{auth_authen}", ctx->is_authenticated ? ctx->auth_authid : NULL,
	    "{mail_addr}", env->mail_from,
	};
	int rc = 0;

	if (!(m->conv->protocol & MILTER_P_NOMAIL)) {
		milter_put_macros(&m->out, MILTER_MAIL, macros, 4);
		milter_put_strings(&m->out, MILTER_MAIL, &arg, 1);
		rc = run_command(m, m->conv->protocol & MILTER_P_NR_MAIL, "mail", 0);
	}
	m->conv->step = STEP_MAIL;
	m->level = LEVEL_TX;
	return rc;
}

/* run_rcpt - the rcpt macros and RCPT for addr. */
static int run_rcpt(struct milter_run *m, const char *addr)
{
	char to[RULE_ADDRESS_TEXT_MAX + 2];
	const char *arg = angle(to, sizeof(to), addr);
	const char *macros[] = {"{rcpt_addr}", addr};
	int rc = 0;

	if (!(m->conv->protocol & MILTER_P_NORCPT)) {
		milter_put_macros(&m->out, MILTER_RCPT, macros, 1);
		milter_put_strings(&m->out, MILTER_RCPT, &arg, 1);
		rc = run_command(m, m->conv->protocol & MILTER_P_NR_RCPT, "rcpt", 0);
	}
	snprintf(m->conv->last_rcpt, sizeof(m->conv->last_rcpt), "%s", addr);
	m->conv->last_nrcpts = m->ctx->env->nrcpts;
	if (rc == 0)
		m->conv->step = STEP_RCPT;
	m->level = rc == 1 && (m->o.action == MILTER_REJECT || m->o.action == MILTER_TEMPFAIL)
			   ? LEVEL_COMMAND
			   : LEVEL_TX;
	return rc;
}

/* run_rcpts - at the rcpt stage the recipient being given; elsewhere
 * every recipient, unless the milter saw recipients already. */
static int run_rcpts(struct milter_run *m)
{
	const struct envelope *env = m->ctx->env;
	size_t i;
	int rc;

	if (m->conv->step >= STEP_RCPT) {
		if (m->stage != RULE_STAGE_RCPT || m->ctx->rcpt == NULL ||
		    (strcmp(m->conv->last_rcpt, m->ctx->rcpt) == 0 &&
		     m->conv->last_nrcpts == env->nrcpts))
			return 0;
		return run_rcpt(m, m->ctx->rcpt);
	}
	for (i = 0; i < env->nrcpts; i++)
		if ((rc = run_rcpt(m, env->rcpts[i].address)) != 0)
			return rc;
	return 0;
}

/* run_header - one header field as the milter wants its value. */
static int run_header(struct milter_run *m, size_t i)
{
	size_t len, nlen, v, end, o = 0;
	const char *raw = message_field_raw(m->ctx->msg, i, &len);
	char *value;
	int rc;

	message_field_name(m->ctx->msg, i, &nlen);
	v = (size_t)((const char *)memchr(raw, ':', len) - raw) + 1;
	end = len;
	if (end > v && raw[end - 1] == '\n')
		end--;
	if (end > v && raw[end - 1] == '\r')
		end--;
	if (!(m->conv->protocol & MILTER_P_HDR_LEADSPC))
		while (v < end && (raw[v] == ' ' || raw[v] == '\t'))
			v++;
	if ((value = malloc(end - v + 1)) == NULL) {
		snprintf(m->c->error, sizeof(m->c->error), "out of memory");
		return -1;
	}
	for (; v < end; v++) /* folded lines end in LF alone, as Postfix sends them */
		if (!(raw[v] == '\r' && v + 1 < end && raw[v + 1] == '\n'))
			value[o++] = raw[v];
	milter_put_header(&m->out, raw, nlen, value, o);
	free(value);
	rc = run_command(m, m->conv->protocol & MILTER_P_NR_HDR, "header", 0);
	return rc;
}

/* run_eom - the end of the message: modifications until the decision. */
static int run_eom(struct milter_run *m)
{
	const char *macros[] = {"i", m->ctx->env->id[0] ? m->ctx->env->id : NULL};
	struct milter_reply r;
	int rc;

	milter_put_macros(&m->out, MILTER_BODYEOB, macros, 1);
	milter_put_empty(&m->out, MILTER_BODYEOB);
	if (run_send(m) < 0)
		return -1;
	for (;;) {
		if (run_read(m, &r) < 0)
			return -1;
		if (strchr("acdrty", r.code) != NULL)
			break;
		if (milter_apply(m->L, m->ctx, m->conv->actions,
				 (m->conv->protocol & MILTER_P_HDR_LEADSPC) != 0, &r, &m->edits, &m->o,
				 m->c->error, sizeof(m->c->error)) < 0)
			return -1;
	}
	m->conv->step = STEP_EOM;
	if ((rc = run_decide(m, &r, "the end of the message", 0)) != 0 &&
	    m->o.action != MILTER_ACCEPT)
		return rc;
	if (milter_apply_body(m->ctx, &m->edits, &m->o, m->c->error, sizeof(m->c->error)) < 0)
		return -1;
	if (m->o.reason[0] != '\0')
		m->o.action = MILTER_QUARANTINE;
	return 1;
}

/* run_message - DATA, the header, EOH, the body, the end of the message. */
static int run_message(struct milter_run *m)
{
	const struct message *msg = m->ctx->msg;
	const char *macros[] = {"i", m->ctx->env->id[0] ? m->ctx->env->id : NULL};
	uint32_t p = m->conv->protocol;
	size_t i, n, len, off;
	const char *body;
	int rc;

	m->level = LEVEL_TX;
	m->conv->step = STEP_DATA;
	if (!(p & MILTER_P_NODATA)) {
		milter_put_macros(&m->out, MILTER_DATA, macros, 1);
		milter_put_empty(&m->out, MILTER_DATA);
		if ((rc = run_command(m, p & MILTER_P_NR_DATA, "data", 0)) != 0)
			return rc;
	}
	for (i = 0; !(p & MILTER_P_NOHDRS) && i < message_field_count(msg); i++)
		if ((rc = run_header(m, i)) != 0)
			return rc;
	if (!(p & MILTER_P_NOEOH)) {
		milter_put_macros(&m->out, MILTER_EOH, macros, 1);
		milter_put_empty(&m->out, MILTER_EOH);
		if ((rc = run_command(m, p & MILTER_P_NR_EOH, "end of header", 0)) != 0)
			return rc;
	}
	body = message_body(msg, &len);
	for (off = 0; !(p & MILTER_P_NOBODY) && off < len; off += n) {
		n = len - off < MILTER_CHUNK_MAX ? len - off : MILTER_CHUNK_MAX;
		milter_put_body(&m->out, body + off, n);
		if ((rc = run_command(m, p & MILTER_P_NR_BODY, "body", 1)) == 2)
			break;
		if (rc != 0)
			return rc;
	}
	return run_eom(m);
}

/* run_advance - move the conversation on to m->stage. */
static int run_advance(struct milter_run *m)
{
	struct milter_conv *conv = m->conv;
	struct rule_ctx *ctx = m->ctx;
	int rc;

	if (conv->step == STEP_CLOSED && (rc = run_open(m)) != 0)
		return rc;
	if (conv->step == STEP_OPEN && (rc = run_connect(m)) != 0)
		return rc;
	/* HELO again when the client said it again differently or after STARTTLS */
	if (ctx->helo != NULL && ctx->helo[0] != '\0' && conv->step < STEP_MAIL &&
	    (strncmp(conv->helo, ctx->helo, sizeof(conv->helo) - 1) != 0 ||
	     conv->helo_tls != ctx->is_secured) &&
	    (rc = run_helo(m)) != 0)
		return rc;
	if (ctx->env == NULL || m->stage < RULE_STAGE_MAIL)
		return 0;
	m->level = LEVEL_TX;
	if (conv->tx_over) {
		m->o = conv->tx_outcome;
		return 1;
	}
	if (conv->step < STEP_MAIL && (rc = run_mail(m)) != 0)
		return rc;
	if (m->stage >= RULE_STAGE_RCPT && conv->step < STEP_DATA && (rc = run_rcpts(m)) != 0)
		return rc;
	if (m->stage >= RULE_STAGE_PREQ && conv->step < STEP_DATA)
		return run_message(m);
	return 0;
}

/* ---- the connection's conversations ---------------------------------- */

/* conv_quit - QUIT and close, when connected. */
static void conv_quit(struct milter_conv *conv)
{
	struct rules_service_call c;
	struct milter_buf b = {0};

	if (conv->fd < 0)
		return;
	rules_service_start(&c, conv->svc);
	c.fd = conv->fd;
	if (milter_put_empty(&b, MILTER_QUIT) == 0)
		rules_service_write(&c, b.p, b.len);
	milter_buf_free(&b);
	rules_service_close(&c);
	conv->fd = -1;
	conv->step = STEP_CLOSED;
}

/* conv_find - the session's conversation with svc, made when new. */
static struct milter_conv *conv_find(lua_State *L, struct rule_ctx *ctx,
				     const struct service_config *svc)
{
	struct milter_conv *conv;

	for (conv = ctx->milter; conv != NULL; conv = conv->next)
		if (conv->svc == svc)
			return conv;
	if ((conv = calloc(1, sizeof(*conv))) == NULL)
		luaL_error(L, "out of memory");
	conv->svc = svc;
	conv->fd = -1;
	conv->next = ctx->milter;
	ctx->milter = conv;
	return conv;
}

/* run_settle - what a decision ends, noted in the conversation. */
static void run_settle(struct milter_run *m, int rc)
{
	if (rc != 1)
		return;
	if (m->level == LEVEL_CONNECTION) {
		m->conv->conn_over = 1;
		m->conv->conn_outcome = m->o;
		conv_quit(m->conv);
		m->c->fd = -1;
	} else if (m->level == LEVEL_TX) {
		m->conv->tx_over = 1;
		m->conv->tx_outcome = m->o;
	}
}

/* run_free - what a call allocated. */
static void run_free(struct milter_run *m)
{
	milter_buf_free(&m->out);
	milter_buf_free(&m->edits.body);
	free(m->pkt);
}

/* outcome_text - the log line's outcome. */
static void outcome_text(const struct milter_outcome *o, int skipped, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s", skipped ? "skipped: larger than max_size"
						 : milter_action_name(o->action));

	if (o->has_reply)
		n += snprintf(buf + n, len - (size_t)n, ": %d %s%s%s", o->reply.code,
			      o->reply.enhanced, o->reply.enhanced[0] ? " " : "", o->reply.text);
	if (o->action == MILTER_QUARANTINE)
		n += snprintf(buf + n, len - (size_t)n, " (%s)", o->reason);
	if (o->changes > 0)
		snprintf(buf + n, len - (size_t)n, "; %u changes", o->changes);
}

/* push_result - the call's result table. */
static void push_result(lua_State *L, const struct rules_service_call *c,
			const struct milter_outcome *o, enum rule_stage stage, int failed,
			int skipped)
{
	rules_service_push_result(L, c, failed, skipped);
	lua_pushstring(L, failed ? "accept" : milter_action_name(o->action));
	lua_setfield(L, -2, "action");
	if (o->has_reply) {
		lua_createtable(L, 0, 3);
		lua_pushinteger(L, o->reply.code);
		lua_setfield(L, -2, "code");
		lua_pushstring(L, o->reply.enhanced);
		lua_setfield(L, -2, "enhanced");
		lua_pushstring(L, o->reply.text);
		lua_setfield(L, -2, "text");
		lua_setfield(L, -2, "reply");
	}
	if (o->action == MILTER_QUARANTINE) {
		lua_pushstring(L, o->reason);
		lua_setfield(L, -2, "reason");
	}
	lua_pushinteger(L, o->changes);
	lua_setfield(L, -2, "changes");
	milter_push_status(L, o, stage, c->svc->name);
	lua_setfield(L, -2, "status");
}

/* lua_ctx_milter - ctx:milter(name): see the file's comment. */
static int lua_ctx_milter(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	const struct service_config *svc = rules_service_find(L, 2, SERVICE_MILTER);
	int whole = ud->stage >= RULE_STAGE_POSTQ, skipped = 0, rc;
	struct milter_conv tmp = {.svc = svc, .fd = -1};
	struct rules_service_call c;
	struct milter_run m = {.L = L, .ctx = ctx, .stage = ud->stage, .c = &c};
	char outcome[RULE_TEXT_MAX + 64];

	if (ud->stage >= RULE_STAGE_PREQ)
		ctx_need_msg(L, ctx, "milter");
	m.conv = whole ? &tmp : conv_find(L, ctx, svc);
	rules_service_start(&c, svc);
	c.fd = m.conv->fd;
	if (m.conv->error[0] != '\0') {
		snprintf(c.error, sizeof(c.error), "%s", m.conv->error);
		rc = -1;
	} else if (m.conv->conn_over) {
		m.o = m.conv->conn_outcome;
		rc = 1;
	} else if (ud->stage >= RULE_STAGE_PREQ && !m.conv->tx_over &&
		   m.conv->step < STEP_DATA && rules_service_too_big(&c, ctx->msg)) {
		skipped = 1;
		m.conv->tx_over = 1; /* the transaction goes on without this milter */
		m.conv->tx_outcome = m.o;
		rc = 0;
	} else {
		rc = run_advance(&m);
		run_settle(&m, rc);
	}
	run_free(&m);
	if (rc < 0) {
		if (!whole)
			snprintf(m.conv->error, sizeof(m.conv->error), "%s", c.error);
		m.conv->fd = -1;
		rules_service_failed(L, &c); /* raises unless on_failure = accept */
		push_result(L, &c, &m.o, ud->stage, 1, 0);
		return 1;
	}
	if (whole)
		conv_quit(m.conv);
	else
		m.conv->fd = c.fd;
	if (!skipped) {
		outcome_text(&m.o, 0, outcome, sizeof(outcome));
		rules_service_log(&c, outcome);
	}
	push_result(L, &c, &m.o, ud->stage, 0, skipped);
	return 1;
}

/* rules_milter_tx_end - ABORT where a transaction was under way; the
 * milters are ready for the next one. */
void rules_milter_tx_end(struct rule_ctx *ctx)
{
	struct rules_service_call c;
	struct milter_buf b = {0};
	struct milter_conv *conv;

	for (conv = ctx->milter; conv != NULL; conv = conv->next) {
		if (conv->fd >= 0 && conv->step >= STEP_MAIL && conv->step < STEP_EOM) {
			rules_service_start(&c, conv->svc);
			c.fd = conv->fd;
			b.len = 0;
			if (milter_put_empty(&b, MILTER_ABORT) < 0 ||
			    rules_service_write(&c, b.p, b.len) < 0) {
				snprintf(conv->error, sizeof(conv->error), "%s",
					 c.error[0] ? c.error : "out of memory");
				rules_service_close(&c);
				conv->fd = -1;
			}
		}
		if (conv->step > STEP_CONNECTED)
			conv->step = STEP_CONNECTED;
		conv->tx_over = 0;
		conv->last_rcpt[0] = '\0';
	}
	milter_buf_free(&b);
}

/* rules_milter_release - QUIT every milter of the connection and forget them. */
void rules_milter_release(struct rule_ctx *ctx)
{
	struct milter_conv *conv, *next;

	for (conv = ctx->milter; conv != NULL; conv = next) {
		next = conv->next;
		conv_quit(conv);
		free(conv);
	}
	ctx->milter = NULL;
}

const luaL_Reg ctx_milter_methods[] = {
    {"milter", lua_ctx_milter},
    {NULL, NULL},
};
