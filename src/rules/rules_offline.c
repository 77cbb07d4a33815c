/*
 * rules_offline.c - run one transaction through the rules without a client.
 *
 * Mirrors smtpd_session.c: the same order of stages, the same rule context
 * and the same replies, so `vsmtpctl rules run` tells the truth about what
 * a client would see. Refusals stop where the session would stop them: a
 * refused MAIL ends the transaction, a refused RCPT only drops that
 * recipient, a deny anywhere ends the connection.
 *
 * A message the session would queue then goes through postq and delivery
 * as the delivery process (delivery.c) runs them: no client is there any
 * more, so deny and reject fail the recipients (a 5xx code: the sender gets
 * a bounce) or defer them (a 4xx code, or a rule error), info changes
 * nothing, the delivery stage cannot change the recipients, and its
 * transport choices (ctx:forward, ctx:maildir, ...) are collected per
 * recipient. A message ctx:hold() keeps in hold/ goes no further at preq
 * (its release skips postq), and stops after postq there.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "rules_auth_results.h"
#include "rules_offline.h"
#include "send_mail.h"
#include "smtp_parse.h"

#define OFFLINE_ID "OFFLINE"

/* rules_offline_outcome_name - the outcome's name. */
const char *rules_offline_outcome_name(enum offline_outcome o)
{
	static const char *const names[] = {
		[OFFLINE_QUEUED] = "queued",       [OFFLINE_QUARANTINED] = "quarantined",
		[OFFLINE_DISCARDED] = "discarded", [OFFLINE_REFUSED] = "refused",
		[OFFLINE_DEFERRED] = "deferred",   [OFFLINE_HELD] = "held",
	};

	return o <= OFFLINE_HELD ? names[o] : "?";
}

/* rules_offline_after_name - what became of a queued message. */
const char *rules_offline_after_name(enum offline_after a)
{
	static const char *const names[] = {
		[OFFLINE_AFTER_NONE] = "none",
		[OFFLINE_AFTER_DELIVERED] = "delivered",
		[OFFLINE_AFTER_QUARANTINED] = "quarantined",
		[OFFLINE_AFTER_BOUNCED] = "bounced",
		[OFFLINE_AFTER_DEFERRED] = "deferred",
		[OFFLINE_AFTER_DISCARDED] = "discarded",
		[OFFLINE_AFTER_HELD] = "held",
	};

	return a <= OFFLINE_AFTER_HELD ? names[a] : "?";
}

/* rules_offline_route_format - a route's name, and its target when it has one. */
void rules_offline_route_format(enum rule_route kind, const char *target, char *buf, size_t len)
{
	static const char *const names[] = {
		[ROUTE_DEFAULT] = "default", [ROUTE_DELIVER] = "deliver",
		[ROUTE_FORWARD] = "forward", [ROUTE_MAILDIR] = "maildir",
		[ROUTE_MBOX] = "mbox",       [ROUTE_LMTP] = "lmtp",
		[ROUTE_NONE] = "disabled",
	};
	const char *name = kind <= ROUTE_NONE ? names[kind] : "?";

	if (target != NULL && target[0] != '\0')
		snprintf(buf, len, "%s %s", name, target);
	else
		snprintf(buf, len, "%s", name);
}

/* offline_code_text - a verdict's code as a reply line into step->reply. */
static void offline_code_text(struct offline_step *step)
{
	const struct rule_reply *reply = &step->v.reply;

	snprintf(step->reply, sizeof(step->reply), "%d%s%s%s%s", reply->code,
		 reply->enhanced[0] ? " " : "", reply->enhanced, reply->text[0] ? " " : "",
		 reply->text);
}

/* offline_reply - the reply text of a verdict, or of the normal answer. */
static void offline_reply(struct offline_step *step, const char *normal, const char *host)
{
	const struct rule_verdict *v = &step->v;
	int positive = v->status == RULE_ACCEPT || v->status == RULE_FACCEPT;

	step->refused = v->status == RULE_DENY || v->status == RULE_REJECT ||
			v->status == RULE_INFO || v->status == RULE_ERROR;
	/* As smtpd_auth_accepted: the rules choose whether, not what, to answer. */
	if (step->stage == RULE_STAGE_AUTHENTICATE) {
		snprintf(step->reply, sizeof(step->reply), "%s",
			 !step->refused		    ? normal
			 : v->status == RULE_ERROR ? "454 4.7.0 Temporary authentication failure"
						   : "535 5.7.8 Error: authentication failed");
		return;
	}
	/* As smtpd_greet and smtpd_cmd_helo: an accept code's text goes into
	 * the greeting or the HELO reply, whose codes are fixed. */
	if (!step->refused && positive && v->has_reply && v->reply.text[0] &&
	    step->stage == RULE_STAGE_CONNECT)
		snprintf(step->reply, sizeof(step->reply), "220 %s %s", host, v->reply.text);
	else if (!step->refused && positive && v->has_reply && v->reply.text[0] &&
		 step->stage == RULE_STAGE_HELO)
		snprintf(step->reply, sizeof(step->reply), "250 %s", v->reply.text);
	else if (step->refused || (positive && v->has_reply &&
				   step->stage != RULE_STAGE_CONNECT && step->stage != RULE_STAGE_HELO))
		offline_code_text(step);
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
	if (ctx->env != NULL)
		rules_ar_summary(r, ctx, &step->auth);
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

/* ---- after queueing: postq and delivery ------------------------------ */

/* A transport the delivery stage chose for one recipient. */
struct offline_choice {
	char *rcpt;
	enum rule_route kind;
	char target[RULE_ROUTE_TARGET_MAX];
};

/* The delivery stage's choices so far: an _all form, then single ones. */
struct offline_routes {
	const struct envelope *env;
	int has_all;
	enum rule_route all_kind;
	char all_target[RULE_ROUTE_TARGET_MAX];
	struct offline_choice *choices;
	size_t n;
};

/* offline_addr_equal - the same mailbox, as the rules compare them: the
 * local part exactly, the domain in any case. */
static int offline_addr_equal(const char *a, const char *b)
{
	const char *at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');

	if (at_a == NULL || at_b == NULL)
		return at_a == at_b && strcasecmp(a, b) == 0;
	return at_a - a == at_b - b && strncmp(a, b, (size_t)(at_a - a)) == 0 &&
	       strcasecmp(at_a, at_b) == 0;
}

/* offline_routes_forget - drop the single choices. */
static void offline_routes_forget(struct offline_routes *rt)
{
	size_t i;

	for (i = 0; i < rt->n; i++)
		free(rt->choices[i].rcpt);
	free(rt->choices);
	rt->choices = NULL;
	rt->n = 0;
}

/* offline_target_ok - whether target suits kind: forward needs a TCP
 * destination, lmtp takes one or "" (the configured), the rest take "". */
static int offline_target_ok(enum rule_route kind, const char *target)
{
	char host[RULE_ROUTE_TARGET_MAX];
	const char *path;
	unsigned port;
	int bracketed;

	if (kind != ROUTE_FORWARD && kind != ROUTE_LMTP)
		return target[0] == '\0';
	if (kind == ROUTE_LMTP && target[0] == '\0')
		return 1;
	if (strlen(target) >= RULE_ROUTE_TARGET_MAX ||
	    config_target_split(target, host, sizeof(host), &port, &path, &bracketed) < 0)
		return 0;
	return kind == ROUTE_LMTP || path == NULL;
}

/* offline_route_choose - rule_ctx.route for the delivery stage: keep the
 * choice, the last one for a recipient winning. */
static int offline_route_choose(void *arg, const char *rcpt, enum rule_route kind,
				const char *target)
{
	struct offline_routes *rt = arg;
	struct offline_choice *grown, *c = NULL;
	size_t i;

	if (!offline_target_ok(kind, target))
		return EINVAL;
	if (rcpt == NULL) {
		offline_routes_forget(rt); /* every earlier choice is overridden */
		rt->has_all = 1;
		rt->all_kind = kind;
		snprintf(rt->all_target, sizeof(rt->all_target), "%s", target);
		return 0;
	}
	for (i = 0; i < rt->env->nrcpts; i++)
		if (offline_addr_equal(rt->env->rcpts[i].address, rcpt))
			break;
	if (i == rt->env->nrcpts)
		return ENOENT;
	for (i = 0; i < rt->n && c == NULL; i++)
		if (offline_addr_equal(rt->choices[i].rcpt, rcpt))
			c = &rt->choices[i];
	if (c == NULL) {
		if ((grown = realloc(rt->choices, (rt->n + 1) * sizeof(*grown))) == NULL)
			return ENOMEM;
		rt->choices = grown;
		c = &rt->choices[rt->n];
		if ((c->rcpt = strdup(rcpt)) == NULL)
			return ENOMEM;
		rt->n++;
	}
	c->kind = kind;
	snprintf(c->target, sizeof(c->target), "%s", target);
	return 0;
}

/* offline_routes_list - every recipient of the envelope with its route, in
 * envelope order; malloc'ed, NULL when out of memory. */
static struct offline_route *offline_routes_list(const struct offline_routes *rt)
{
	const struct envelope *env = rt->env;
	struct offline_route *list = calloc(env->nrcpts ? env->nrcpts : 1, sizeof(*list));
	size_t i, j;

	if (list == NULL)
		return NULL;
	for (i = 0; i < env->nrcpts; i++) {
		list[i].rcpt = env->rcpts[i].address;
		if (rt->has_all) {
			list[i].kind = rt->all_kind;
			snprintf(list[i].target, sizeof(list[i].target), "%s", rt->all_target);
		}
		for (j = 0; j < rt->n; j++) {
			if (offline_addr_equal(rt->choices[j].rcpt, env->rcpts[i].address)) {
				list[i].kind = rt->choices[j].kind;
				snprintf(list[i].target, sizeof(list[i].target), "%s",
					 rt->choices[j].target);
			}
		}
	}
	return list;
}

/* rules_offline_route_find - rcpt's entry in the step's routes. */
const struct offline_route *rules_offline_route_find(const struct offline_step *step,
						     const char *rcpt)
{
	size_t i;

	for (i = 0; i < step->nroutes; i++)
		if (offline_addr_equal(step->routes[i].rcpt, rcpt))
			return &step->routes[i];
	return NULL;
}

/* offline_after_verdict - what a postq or delivery verdict makes of the
 * queued message: no client to answer, so the code's class decides. */
static void offline_after_verdict(struct offline_step *step, const struct envelope *env)
{
	const struct rule_verdict *v = &step->v;

	step->refused = v->status == RULE_DENY || v->status == RULE_REJECT ||
			v->status == RULE_ERROR;
	if (v->status == RULE_ERROR) {
		/* The delivery process's words: the rule's error is in the log. */
		snprintf(step->reply, sizeof(step->reply), "451 4.3.0 error in the %s rules",
			 rules_stage_name(step->stage));
		step->after = OFFLINE_AFTER_DEFERRED;
	} else if (step->refused) {
		offline_code_text(step);
		step->after = v->reply.code >= 500 ? OFFLINE_AFTER_BOUNCED : OFFLINE_AFTER_DEFERRED;
	} else if (v->status == RULE_DELEGATE) {
		/* The worker would send it to the filter; it stays queued till it is back. */
		snprintf(step->reply, sizeof(step->reply), "sent to service %s; %s goes on at rule %u "
							  "when it comes back",
			 v->delegate_service, rules_stage_name(step->stage), v->delegate_rule);
		step->after = OFFLINE_AFTER_DEFERRED;
	} else if (v->status == RULE_QUARANTINE) {
		snprintf(step->reply, sizeof(step->reply), "quarantine/%s", v->quarantine);
		step->after = OFFLINE_AFTER_QUARANTINED;
	} else if (env->nrcpts == 0) {
		snprintf(step->reply, sizeof(step->reply), "every recipient removed");
		step->after = OFFLINE_AFTER_DISCARDED;
	} else {
		step->after = step->stage == RULE_STAGE_DELIVERY ? OFFLINE_AFTER_DELIVERED
								 : OFFLINE_AFTER_NONE;
	}
}

/* offline_same_rcpts - whether a and b have the same sender and recipients. */
static int offline_same_rcpts(const struct envelope *a, const struct envelope *b)
{
	size_t i;

	if (a->nrcpts != b->nrcpts || strcmp(a->mail_from ? a->mail_from : "",
					     b->mail_from ? b->mail_from : "") != 0)
		return 0;
	for (i = 0; i < a->nrcpts; i++)
		if (strcmp(a->rcpts[i].address, b->rcpts[i].address) != 0)
			return 0;
	return 1;
}

/* offline_delivery - the delivery stage, with the transport choices. */
static void offline_delivery(struct rules *r, struct rule_ctx *ctx, int returned,
			     offline_report_fn report, void *arg)
{
	struct offline_routes rt = {.env = ctx->env};
	struct offline_route *list = NULL;
	struct envelope before = {0};
	struct offline_step step;

	memset(&step, 0, sizeof(step));
	step.stage = RULE_STAGE_DELIVERY;
	if (envelope_copy_rcpts(&before, ctx->env) < 0) {
		envelope_clear(&before);
		snprintf(step.reply, sizeof(step.reply), "451 4.3.0 error in the delivery rules");
		step.after = OFFLINE_AFTER_DEFERRED;
		if (report != NULL)
			report(arg, &step);
		return;
	}
	ctx->route = offline_route_choose;
	ctx->route_arg = &rt;
	rules_run(r, RULE_STAGE_DELIVERY, ctx, &step.v);
	/* The copy back from a delegate rule's filter runs the whole stage again. */
	while (returned && step.v.status == RULE_DELEGATE) {
		offline_routes_forget(&rt);
		rt = (struct offline_routes){.env = ctx->env};
		ctx->delegated_rule = step.v.delegate_rule;
		ctx->delegated_delivery = 1;
		rules_run(r, RULE_STAGE_DELIVERY, ctx, &step.v);
	}
	ctx->route = NULL;
	ctx->route_arg = NULL;
	/* As the delivery process: recipients are changed at postq, not here. */
	if (!offline_same_rcpts(&before, ctx->env)) {
		log_warn("%s: the delivery rules changed the sender or the recipients: ignored "
			 "(make such changes at postq)",
			 OFFLINE_ID);
		envelope_swap_rcpts(ctx->env, &before);
	}
	envelope_clear(&before);
	offline_after_verdict(&step, ctx->env);
	if (step.after == OFFLINE_AFTER_DELIVERED && (list = offline_routes_list(&rt)) == NULL) {
		/* As the delivery process would: nothing lost, try again later. */
		snprintf(step.reply, sizeof(step.reply), "451 4.3.0 out of memory");
		step.after = OFFLINE_AFTER_DEFERRED;
	}
	step.routes = list;
	step.nroutes = list != NULL ? ctx->env->nrcpts : 0;
	if (report != NULL)
		report(arg, &step);
	free(list);
	offline_routes_forget(&rt);
}

/* offline_after_queue - postq (past delegate rules when their filters
 * send the message back), then delivery unless postq decided. */
static void offline_after_queue(struct rules *r, struct rule_ctx *ctx, int returned,
				offline_report_fn report, void *arg)
{
	struct offline_step step;

	memset(&step, 0, sizeof(step));
	step.stage = RULE_STAGE_POSTQ;
	rules_run(r, RULE_STAGE_POSTQ, ctx, &step.v);
	/* Each delegate rule's filter sends it back as it is: postq goes on there. */
	while (returned && step.v.status == RULE_DELEGATE) {
		ctx->postq_start = ctx->delegated_rule = step.v.delegate_rule;
		rules_run(r, RULE_STAGE_POSTQ, ctx, &step.v);
	}
	offline_after_verdict(&step, ctx->env);
	/* As the delivery process: held once the stage went on, with its changes. */
	if (step.after == OFFLINE_AFTER_NONE && rules_hold(ctx) != NULL) {
		snprintf(step.hold, sizeof(step.hold), "%s", rules_hold(ctx)->reason);
		snprintf(step.reply, sizeof(step.reply), "hold: %s", step.hold);
		step.after = OFFLINE_AFTER_HELD;
	}
	if (report != NULL)
		report(arg, &step);
	if (step.after == OFFLINE_AFTER_NONE)
		offline_delivery(r, ctx, returned, report, arg);
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
	offline_reply(step, "250 2.0.0 Ok: queued as " OFFLINE_ID, ctx->server_name);
	rules_ar_summary(r, ctx, &step->auth);
	if (step->refused) {
		out = offline_refusal(step);
	} else if (ctx->env->nrcpts == 0) {
		snprintf(step->reply, sizeof(step->reply), "250 2.0.0 Ok: discarded");
		out = OFFLINE_DISCARDED;
	} else if (step->v.status == RULE_QUARANTINE) {
		out = OFFLINE_QUARANTINED; /* a quarantine wins over a hold, as in the session */
	} else if (rules_hold(ctx) != NULL) {
		snprintf(step->hold, sizeof(step->hold), "%s", rules_hold(ctx)->reason);
		out = OFFLINE_HELD;
	} else {
		out = OFFLINE_QUEUED;
	}
	if (report != NULL)
		report(arg, step);
	/* The queued message, with what preq changed, goes on offline. */
	if (out == OFFLINE_QUEUED)
		offline_after_queue(r, ctx, tx->returned, report, arg);
	ctx->msg = NULL;
	message_free(msg);
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
static int offline_service(void *arg, enum queue_service kind, const char *name, const char *file,
			   const char *data, size_t len)
{
	if (kind == QUEUE_SERVICE_USER_EXIST)
		return getpwnam(name) != NULL ? 0 : ENOENT;
	log_info("rules: would save %zu bytes as %s/%s.%s in [rules] app_dir", len, name,
		 file[0] ? file : OFFLINE_ID, kind == QUEUE_SERVICE_DUMP ? "json" : "eml");
	return 0;
}

/* What offline_send_mail needs: where the files are, who writes. */
struct offline_services {
	struct rules *r;
	const char *host;
};

/* OFFLINE_SEND_MAIL_MAX - the size bound offline (the daemon applies
 * [limits] max_message_size). */
#define OFFLINE_SEND_MAIL_MAX (64u << 20)

/* offline_send_mail - send_mail() offline: the file is checked as the
 * daemon would check it, the message announced, nothing queued. */
static int offline_send_mail(void *arg, const struct rule_mail *mail, char *id)
{
	const struct offline_services *sv = arg;
	char *msg = NULL;
	size_t len = 0;
	int fd, err, eightbit;

	if ((fd = send_mail_open_rules(rules_path(sv->r), mail->path, OFFLINE_SEND_MAIL_MAX)) < 0)
		return errno;
	err = send_mail_build(fd, mail->from, sv->host, OFFLINE_SEND_MAIL_MAX, &msg, &len,
			      &eightbit);
	close(fd);
	free(msg);
	if (err != 0)
		return err;
	log_info("rules: would send %s (%zu bytes) from <%s> to %zu recipient(s) (<%s>%s)%s%s",
		 mail->path, len, mail->from, mail->nto, mail->to[0], mail->nto > 1 ? ", ..." : "",
		 mail->relay[0] ? " through " : "", mail->relay);
	snprintf(id, SPOOL_ID_LEN + 1, "%s", OFFLINE_ID);
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
	struct offline_services sv = {.r = r};

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
				.service = offline_service,
				.send_mail = offline_send_mail,
				.service_arg = &sv};
	sv.host = tx.server_name;
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
