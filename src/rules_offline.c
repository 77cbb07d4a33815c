/*
 * rules_offline.c - run one transaction through the rules without a client.
 *
 * Mirrors smtp_session.c: the same order of stages, the same rule context
 * and the same replies, so `vsmtpctl rules run` tells the truth about what
 * a client would see. Refusals stop where the session would stop them: a
 * refused MAIL ends the transaction, a refused RCPT only drops that
 * recipient, a deny anywhere ends the connection.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "rules_offline.h"
#include "smtp_parse.h"

#define OFFLINE_ID "OFFLINE"

/* rules_offline_outcome_name - the outcome's name. */
const char *rules_offline_outcome_name(enum offline_outcome o)
{
	static const char *const names[] = {
		[OFFLINE_QUEUED] = "queued",       [OFFLINE_QUARANTINED] = "quarantined",
		[OFFLINE_DISCARDED] = "discarded", [OFFLINE_REFUSED] = "refused",
		[OFFLINE_DEFERRED] = "deferred",
	};

	return o <= OFFLINE_DEFERRED ? names[o] : "?";
}

/* offline_reply - the reply text of a verdict, or of the normal answer. */
static void offline_reply(struct offline_step *step, const char *normal, const char *host)
{
	const struct rule_verdict *v = &step->v;
	int positive = v->status == RULE_ACCEPT || v->status == RULE_FACCEPT;

	step->refused = v->status == RULE_DENY || v->status == RULE_REJECT ||
			v->status == RULE_INFO || v->status == RULE_ERROR;
	/* As smtp_auth_accepted: the rules choose whether, not what, to answer. */
	if (step->stage == RULE_STAGE_AUTHENTICATE) {
		snprintf(step->reply, sizeof(step->reply), "%s",
			 !step->refused		    ? normal
			 : v->status == RULE_ERROR ? "454 4.7.0 Temporary authentication failure"
						   : "535 5.7.8 Error: authentication failed");
		return;
	}
	/* As smtp_greet and smtp_cmd_helo: an accept code's text goes into
	 * the greeting or the HELO reply, whose codes are fixed. */
	if (!step->refused && positive && v->has_reply && v->reply.text[0] &&
	    step->stage == RULE_STAGE_CONNECT)
		snprintf(step->reply, sizeof(step->reply), "220 %s %s", host, v->reply.text);
	else if (!step->refused && positive && v->has_reply && v->reply.text[0] &&
		 step->stage == RULE_STAGE_HELO)
		snprintf(step->reply, sizeof(step->reply), "250 %s", v->reply.text);
	else if (step->refused || (positive && v->has_reply &&
				   step->stage != RULE_STAGE_CONNECT && step->stage != RULE_STAGE_HELO))
		snprintf(step->reply, sizeof(step->reply), "%d%s%s%s%s", v->reply.code,
			 v->reply.enhanced[0] ? " " : "", v->reply.enhanced,
			 v->reply.text[0] ? " " : "", v->reply.text);
	else
		snprintf(step->reply, sizeof(step->reply), "%s", normal);
}

/* offline_stage - run a stage and report it; returns the step's refusal. */
static int offline_stage(struct rules *r, struct rule_ctx *ctx, enum rule_stage stage,
			 const char *rcpt, const char *normal, offline_report_fn report,
			 void *arg, struct offline_step *step)
{
	memset(step, 0, sizeof(*step));
	step->stage = stage;
	step->rcpt = rcpt;
	rules_run(r, stage, ctx, &step->v);
	offline_reply(step, normal, ctx->server_name);
	if (report != NULL)
		report(arg, step);
	return step->refused;
}

/* offline_refusal - the outcome of a refused step. */
static enum offline_outcome offline_refusal(const struct offline_step *step)
{
	return step->reply[0] == '4' ? OFFLINE_DEFERRED : OFFLINE_REFUSED;
}

/* offline_parse_failure - a malformed address: the parser's reply. */
static enum offline_outcome offline_parse_failure(struct offline_step *step,
						  enum rule_stage stage, const char *err,
						  offline_report_fn report, void *arg)
{
	memset(step, 0, sizeof(*step));
	step->stage = stage;
	step->refused = 1;
	step->v.status = RULE_NEXT;
	snprintf(step->reply, sizeof(step->reply), "%s", err);
	if (report != NULL)
		report(arg, step);
	return offline_refusal(step);
}

/* offline_message - the content preq sees: a Received: line like the
 * session's, then the given message or a minimal one. */
static struct message *offline_message(const struct offline_tx *tx, const struct envelope *env)
{
	char date[64], head[2048];
	time_t now = time(NULL);
	struct tm tm;
	struct message *msg;
	char *buf;
	size_t hlen, blen;
	int n;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	n = snprintf(head, sizeof(head),
		     "Received: from %s ([%s])\r\n\tby %s (vsmtpd) with ESMTP id %s; %s\r\n", tx->helo,
		     tx->client_ip, tx->server_name, OFFLINE_ID, date);
	if (n < 0 || (size_t)n >= sizeof(head))
		return NULL;
	hlen = (size_t)n;
	if (tx->message == NULL) {
		n = snprintf(head + hlen, sizeof(head) - hlen,
			     "From: <%s>\r\nTo: <%s>\r\nSubject: test\r\n\r\ntest\r\n", env->mail_from,
			     env->nrcpts > 0 ? env->rcpts[0].address : "");
		if (n < 0 || (size_t)n >= sizeof(head) - hlen)
			return NULL;
		return message_parse(head, hlen + (size_t)n);
	}
	blen = tx->message_len;
	if ((buf = malloc(hlen + blen + 1)) == NULL)
		return NULL;
	memcpy(buf, head, hlen);
	memcpy(buf + hlen, tx->message, blen);
	if ((msg = message_parse_take(buf, hlen + blen)) == NULL)
		free(buf);
	return msg;
}

/* offline_rcpts - the rcpt stage for each recipient; 0 when none is left. */
static int offline_rcpts(struct rules *r, struct rule_ctx *ctx, const struct offline_tx *tx,
			 offline_report_fn report, void *arg, struct offline_step *step,
			 int *denied)
{
	struct envelope *env = ctx->env, before = {0};
	size_t accepted = 0;
	struct smtp_rcpt rcpt;
	char line[SMTP_PATH_MAX + 8], to[SMTP_PATH_MAX + 1];
	const char *err;
	size_t i;

	for (i = 0; i < tx->nrcpts && !*denied; i++) {
		snprintf(line, sizeof(line), "TO:<%s>", tx->rcpts[i]);
		if ((err = smtp_rcpt_parse(line, env->smtputf8, &rcpt)) != NULL) {
			offline_parse_failure(step, RULE_STAGE_RCPT, err, report, arg);
			continue;
		}
		smtp_address_format(&rcpt.to, to, sizeof(to));
		/* As the session: a refused RCPT leaves the envelope as it was. */
		if (envelope_copy_rcpts(&before, env) < 0 ||
		    envelope_add_rcpt(env, to, 0, NULL, NULL) < 0) {
			envelope_clear(&before);
			return -1;
		}
		ctx->rcpt = to;
		offline_stage(r, ctx, RULE_STAGE_RCPT, tx->rcpts[i], "250 2.1.5 Ok", report, arg,
			      step);
		ctx->rcpt = NULL;
		if (step->refused)
			envelope_swap_rcpts(env, &before);
		else
			accepted++;
		envelope_clear(&before);
		*denied = step->v.status == RULE_DENY;
	}
	return accepted > 0;
}

/* offline_preq - the message stage and the final reply. */
static enum offline_outcome offline_preq(struct rules *r, struct rule_ctx *ctx,
					 const struct offline_tx *tx, offline_report_fn report,
					 void *arg, struct offline_step *step)
{
	struct message *msg = offline_message(tx, ctx->env);
	enum offline_outcome out;

	if (msg == NULL)
		return OFFLINE_DEFERRED;
	ctx->msg = msg;
	memset(step, 0, sizeof(*step));
	step->stage = RULE_STAGE_PREQ;
	rules_run(r, RULE_STAGE_PREQ, ctx, &step->v);
	ctx->msg = NULL;
	message_free(msg);
	offline_reply(step, "250 2.0.0 Ok: queued as " OFFLINE_ID, ctx->server_name);
	if (step->refused) {
		out = offline_refusal(step);
	} else if (ctx->env->nrcpts == 0) {
		snprintf(step->reply, sizeof(step->reply), "250 2.0.0 Ok: discarded");
		out = OFFLINE_DISCARDED;
	} else {
		out = step->v.status == RULE_QUARANTINE ? OFFLINE_QUARANTINED : OFFLINE_QUEUED;
	}
	if (report != NULL)
		report(arg, step);
	return out;
}

/* offline_transaction - MAIL to the end of the message. */
static enum offline_outcome offline_transaction(struct rules *r, struct rule_ctx *ctx,
						const struct offline_tx *tx,
						offline_report_fn report, void *arg,
						struct offline_step *step)
{
	struct envelope *env = ctx->env;
	struct smtp_mail mail;
	char line[SMTP_PATH_MAX + 32], from[SMTP_PATH_MAX + 1];
	const char *err;
	int denied = 0, left;

	snprintf(line, sizeof(line), "FROM:<%s>%s", tx->mail_from,
		 smtp_line_check(tx->mail_from, strlen(tx->mail_from), 0) ? " SMTPUTF8" : "");
	if ((err = smtp_mail_parse(line, &mail)) != NULL)
		return offline_parse_failure(step, RULE_STAGE_MAIL, err, report, arg);
	smtp_address_format(&mail.from, from, sizeof(from));
	env->smtputf8 = mail.smtputf8;
	if (envelope_set(&env->mail_from, from) < 0)
		return OFFLINE_DEFERRED;
	ctx->mail_timestamp = time(NULL);
	if (offline_stage(r, ctx, RULE_STAGE_MAIL, NULL, "250 2.1.0 Ok", report, arg, step))
		return offline_refusal(step);
	snprintf(env->id, sizeof(env->id), "%s", OFFLINE_ID);
	if ((left = offline_rcpts(r, ctx, tx, report, arg, step, &denied)) < 0)
		return OFFLINE_DEFERRED;
	if (denied || left == 0)
		return step->refused ? offline_refusal(step) : OFFLINE_REFUSED;
	return offline_preq(r, ctx, tx, report, arg, step);
}

/* offline_service - what the queue process does for a session, done here:
 * accounts are looked up; copies are only announced, nothing is written. */
static int offline_service(void *arg, enum rule_service kind, const char *name, const char *file,
			   const char *data, size_t len)
{
	if (kind == RULE_SERVICE_USER_EXIST)
		return getpwnam(name) != NULL ? 0 : ENOENT;
	log_info("rules: would save %zu bytes as %s/%s.%s in [rules] app_dir", len, name,
		 file[0] ? file : OFFLINE_ID, kind == RULE_SERVICE_DUMP ? "json" : "eml");
	return 0;
}

/* rules_offline_run - the whole transaction. */
enum offline_outcome rules_offline_run(struct rules *r, const struct offline_tx *txin,
				       offline_report_fn report, void *arg,
				       struct offline_step *final)
{
	struct offline_tx tx = *txin;
	struct envelope env = {0};
	struct offline_step step;
	struct rule_ctx ctx;
	enum offline_outcome out;
	char normal[300];

	if (tx.client_ip == NULL)
		tx.client_ip = "127.0.0.1";
	if (tx.helo == NULL)
		tx.helo = "client.example";
	if (tx.mail_from == NULL)
		tx.mail_from = "";
	if (tx.listener == NULL)
		tx.listener = "smtp";
	if (tx.server_name == NULL)
		tx.server_name = "localhost";
	ctx = (struct rule_ctx){.client_ip = tx.client_ip,
				.client_port = 40000,
				.server_ip = "127.0.0.1",
				.server_port = 25,
				.server_name = tx.server_name,
				.listener = tx.listener,
				.listener_kind = "smtp",
				.connection_timestamp = time(NULL),
				.helo = "",
				.is_secured = tx.tls,
				.tls_version = tx.tls ? "TLSv1.3" : NULL,
				.tls_cipher = tx.tls ? "TLS_AES_256_GCM_SHA384" : NULL,
				.tls_bits = tx.tls ? 256 : 0,
				.tls_sni = "",
				.service = offline_service};
	snprintf(normal, sizeof(normal), "220 %s ESMTP vsmtpd", tx.server_name);
	if (offline_stage(r, &ctx, RULE_STAGE_CONNECT, NULL, normal, report, arg, &step)) {
		out = offline_refusal(&step);
		goto done;
	}
	ctx.helo = tx.helo;
	snprintf(normal, sizeof(normal), "250 %s", tx.server_name);
	if (smtp_helo_parse(tx.helo) != NULL) {
		out = offline_parse_failure(&step, RULE_STAGE_HELO, smtp_helo_parse(tx.helo), report,
					    arg);
		goto done;
	}
	if (offline_stage(r, &ctx, RULE_STAGE_HELO, NULL, normal, report, arg, &step)) {
		out = offline_refusal(&step);
		goto done;
	}
	if (tx.authid != NULL) {
		/* As the session: the rules see the user, and a refusal is a 535. */
		ctx.is_authenticated = 1;
		ctx.auth_mechanism = tx.auth_mechanism != NULL ? tx.auth_mechanism : "PLAIN";
		ctx.auth_authid = tx.authid;
		/* deny closes the connection; after another refusal the client
		 * goes on without authentication, as in a session. */
		if (offline_stage(r, &ctx, RULE_STAGE_AUTHENTICATE, NULL,
				  "235 2.7.0 Authentication successful", report, arg, &step)) {
			if (step.v.status == RULE_DENY) {
				out = offline_refusal(&step);
				goto done;
			}
			ctx.is_authenticated = 0;
			ctx.auth_mechanism = NULL;
			ctx.auth_authid = NULL;
		}
	}
	ctx.env = &env;
	out = offline_transaction(r, &ctx, &tx, report, arg, &step);
done:
	if (final != NULL)
		*final = step;
	envelope_clear(&env);
	rules_ctx_release(&ctx);
	return out;
}
