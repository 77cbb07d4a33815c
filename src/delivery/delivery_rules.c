/*
 * delivery_rules.c - the rules the delivery worker runs.
 *
 * The postq stage runs once per message: its changes to the message, the
 * envelope or the variables are kept by queueing a changed copy (marked
 * postq done) and dropping the original. The delivery stage runs at every
 * attempt and chooses a transport per recipient (ctx:deliver() and
 * friends); its edits to the message are delivered, not kept. A refusing
 * verdict gives the recipients still to deliver their outcome, a failing
 * rule defers them, and a quarantine moves the message away. A hold the
 * postq rules put on it (ctx:hold) sets it aside in hold/ once the stage
 * is over, with its state saved first (postq done), so that a release
 * delivers it without running postq again. While a stage runs, the
 * scoreboard says so (see delivery.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "delivery_internal.h"
#include "log.h"
#include "message.h"
#include "queue_client.h"
#include "send_mail.h"

/* dlv_rules_service - a rule's request: answered by the queue, as for a session. */
static int dlv_rules_service(void *arg, enum queue_service kind, const char *name,
			     const char *file, const char *data, size_t len)
{
	struct dlv_attempt *a = arg;

	return queue_client_service(a->m->w->sess_fd, kind, name, file[0] ? file : a->m->id, data,
				    len);
}

/* dlv_rules_send_mail - send_mail() from a rule: queued through the queue. */
static int dlv_rules_send_mail(void *arg, const struct rule_mail *mail, char *id)
{
	struct dlv_attempt *a = arg;
	const struct config *cfg = a->m->w->cfg;
	int err = send_mail_queue(a->m->w->sess_fd, mail, cfg->hostname, cfg->max_message_size, id);

	if (err == 0)
		log_info("%s: rules: send_mail %s: %s", a->m->id, mail->path, id);
	return err;
}

/* dlv_rules_route - ctx:deliver() and friends: note the choice. */
static int dlv_rules_route(void *arg, const char *rcpt, enum rule_route kind, const char *target)
{
	struct dlv_attempt *a = arg;
	char host[256];
	unsigned port;
	const char *path;
	int bracketed, found = 0;
	size_t i;

	if (target != NULL && target[0] != '\0' &&
	    config_target_split(target, host, sizeof(host), &port, &path, &bracketed) < 0)
		return EINVAL;
	/* Recipients a rule added in this stage are not delivered (their
	 * statuses have no room): only the envelope as queued is routed. */
	for (i = 0; i < a->env.nrcpts && i < a->nrcpts; i++) {
		if (rcpt != NULL && strcasecmp(rcpt, a->env.rcpts[i].address) != 0)
			continue;
		a->rcpts[i].route = kind;
		snprintf(a->rcpts[i].target, sizeof(a->rcpts[i].target), "%s", target ? target : "");
		found = 1;
	}
	return found || rcpt == NULL ? 0 : ENOENT;
}

/* dlv_ctx_init - the context the offline stages see, from the envelope. */
void dlv_ctx_init(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg)
{
	const struct envelope *env = &a->env;

	memset(ctx, 0, sizeof(*ctx));
	ctx->client_ip = env->client_ip ? env->client_ip : "";
	ctx->client_port = env->client_port;
	ctx->server_ip = "";
	ctx->server_name = a->m->w->cfg->hostname;
	ctx->listener = env->listener ? env->listener : "";
	ctx->listener_kind = "";
	ctx->connection_timestamp = env->received_at;
	ctx->is_secured = env->tls_version != NULL;
	ctx->tls_version = env->tls_version;
	ctx->tls_cipher = env->tls_cipher;
	ctx->tls_sni = "";
	ctx->is_authenticated = env->authid != NULL;
	ctx->auth_mechanism = env->auth_mechanism;
	ctx->auth_authid = env->authid;
	ctx->helo = env->helo ? env->helo : "";
	ctx->env = &a->env;
	ctx->mail_timestamp = env->received_at;
	ctx->msg = msg;
	ctx->service = dlv_rules_service;
	ctx->send_mail = dlv_rules_send_mail;
	ctx->service_arg = a;
	if (env->vars != NULL)
		ctx->tx_vars = cJSON_Parse(env->vars);
	ctx->postq_start = env->postq_start;
	ctx->delegated_rule = env->delegated_rule;
	ctx->delegated_delivery = env->delegated_delivery;
}

/* dlv_verdict_reply - the reply a refusing verdict carries, as text. */
static void dlv_verdict_reply(const struct rule_verdict *v, int def_code, const char *def_enh,
			      char *buf, size_t len, char *enh, size_t enhlen, int *code)
{
	*code = v->has_reply ? v->reply.code : def_code;
	snprintf(enh, enhlen, "%s", v->has_reply && v->reply.enhanced[0] ? v->reply.enhanced : def_enh);
	snprintf(buf, len, "%d %.15s %.480s", *code, enh,
		 v->has_reply && v->reply.text[0] ? v->reply.text : "Delivery refused by policy");
}

/* dlv_refuse_pending - every recipient still to deliver gets the verdict's outcome. */
static void dlv_refuse_pending(struct dlv_attempt *a, const struct rule_verdict *v,
			       const char *stage)
{
	char reply[MTA_REPLY_MAX], enh[16];
	int code;
	size_t i;

	dlv_verdict_reply(v, 554, "5.7.1", reply, sizeof(reply), enh, sizeof(enh), &code);
	log_info("%s: %s rules (%s) refused delivery: %s", a->m->id, stage,
		 v->rule[0] ? v->rule : "no rule", reply);
	for (i = 0; i < a->env.nrcpts; i++) {
		struct dlv_rcpt *dr = &a->rcpts[i];

		if (dr->status != RCPT_PENDING && dr->status != RCPT_DEFERRED)
			continue;
		dr->status = code >= 500 ? RCPT_FAILED : RCPT_DEFERRED;
		snprintf(dr->reply, sizeof(dr->reply), "%s", reply);
		snprintf(dr->enhanced, sizeof(dr->enhanced), "%s", enh);
		dr->remote[0] = '\0';
		dr->at = a->started;
	}
}

/* dlv_rule_error - a rule failed: defer, never deliver by accident. */
static void dlv_rule_error(struct dlv_attempt *a, const char *stage)
{
	struct rule_verdict v = {.status = RULE_DENY, .has_reply = 1};

	v.reply.code = 451;
	snprintf(v.reply.enhanced, sizeof(v.reply.enhanced), "4.3.0");
	snprintf(v.reply.text, sizeof(v.reply.text), "error in the %s rules", stage);
	dlv_refuse_pending(a, &v, stage);
}

/* dlv_quarantine - the rules kept the message: move it, forget it. */
void dlv_quarantine(struct dlv_attempt *a, const char *name, const char *stage)
{
	/* The move takes the state along: a success notice still owed from an
	 * earlier attempt goes now or never. */
	if (dlv_notify_success(a) != 0)
		log_warn("%s: a success notice owed is lost with the quarantine", a->m->id);
	log_info("%s: quarantined by the %s rules in %s", a->m->id, stage, name);
	dlv_send(a->m->w, "move", a->m->id, "to", "quarantine", "name", name, -1);
}

/* dlv_hold - the postq rules held the message: its state, then hold/ with the reason. */
static void dlv_hold(struct dlv_attempt *a, const struct rule_hold *hold)
{
	if (dlv_notify_success(a) != 0)
		log_warn("%s: a success notice owed is lost with the hold", a->m->id);
	a->postq = 1;
	dlv_state_save(a, 0);
	log_notice("%s: held by rule \"%s\" at %s: %s", a->m->id, hold->rule,
		   rules_stage_name(hold->stage), hold->reason);
	dlv_send(a->m->w, "move", a->m->id, "to", "hold", "reason", hold->reason, -1);
}

/*
 * dlv_rewrite - the postq rules changed the message or its envelope: queue
 * the changed copy (marked postq done, or to start postq at delegate rule
 * start when not 0) and drop this one. 0 when done.
 */
static int dlv_rewrite(struct dlv_attempt *a, struct message *msg, struct rule_ctx *ctx,
		       unsigned start)
{
	struct envelope copy = a->env;
	char old[SPOOL_ID_LEN + 1], *text = NULL, *vars;
	size_t len = 0;
	int err;

	if (msg != NULL && message_modified(msg) && (text = message_serialize(msg, &len)) == NULL)
		return ENOMEM;
	vars = rules_tx_vars(ctx);
	copy.vars = vars;
	copy.postq_done = start == 0;
	copy.postq_start = start;
	copy.delegated_from = NULL; /* the queue's mark of a returned copy, never the worker's */
	copy.delegated_rule = 0;
	copy.delegation_token = NULL;
	copy.faccept = a->faccept;
	/* A held copy is committed straight into hold/. */
	copy.hold = rules_hold(ctx) != NULL ? (char *)rules_hold(ctx)->reason : NULL;
	snprintf(old, sizeof(old), "%s", a->m->id);
	err = queue_client_submit(a->m->w->sess_fd, &copy,
				  text ? text : a->map, text ? len : a->content_len);
	free(text);
	free(vars);
	if (err != 0) {
		log_err("%s: cannot queue the copy the postq rules changed: %s", old, strerror(err));
		return err;
	}
	log_info("%s: changed by the postq rules: queued again as %s", old, copy.id);
	if (copy.hold != NULL)
		log_notice("%s: held by rule \"%s\" at postq: %s", copy.id, rules_hold(ctx)->rule,
			   copy.hold);
	dlv_send(a->m->w, "done", old, NULL, NULL, NULL, NULL, -1);
	return 0;
}

/* dlv_rcpts_snapshot - the envelope's sender and recipients, to see changes. */
static char *dlv_rcpts_snapshot(const struct envelope *env)
{
	size_t i, len = strlen(env->mail_from ? env->mail_from : "") + 2;
	char *s, *p;

	for (i = 0; i < env->nrcpts; i++)
		len += strlen(env->rcpts[i].address) + 1;
	if ((s = malloc(len)) == NULL)
		return NULL;
	p = s + sprintf(s, "%s\n", env->mail_from ? env->mail_from : "");
	for (i = 0; i < env->nrcpts; i++)
		p += sprintf(p, "%s\n", env->rcpts[i].address);
	return s;
}

/* dlv_vars_changed - whether the rules' variables differ from the envelope's. */
static int dlv_vars_changed(const struct envelope *env, const struct rule_ctx *ctx)
{
	char *now = rules_tx_vars(ctx);
	int changed;

	if (now == NULL)
		return env->vars != NULL;
	changed = env->vars == NULL || strcmp(now, env->vars) != 0;
	free(now);
	return changed;
}

/*
 * dlv_postq_delegate - postq stopped at a delegate rule (v). The sender,
 * recipients, variables or a hold changed before it are kept by queueing
 * the copy to start at the rule (it is sent from there); otherwise the
 * message goes to the filter now. Returns as dlv_run_postq, 2 when the
 * filter job is under way.
 */
static int dlv_postq_delegate(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg,
			      const struct rule_verdict *v, struct envelope *snap, int changed)
{
	int rc;

	if (changed || dlv_vars_changed(&a->env, ctx) || rules_hold(ctx) != NULL) {
		if (dlv_rewrite(a, msg, ctx, v->delegate_rule) == 0) {
			envelope_clear(snap);
			return -1;
		}
	} else if ((rc = dlv_delegate_send(a, msg, v, RULE_STAGE_POSTQ)) >= 0) {
		envelope_clear(snap);
		return rc == 1 ? 2 : 0;
	}
	envelope_swap_rcpts(&a->env, snap);
	envelope_clear(snap);
	dlv_rule_error(a, "postq");
	return 0;
}

/*
 * dlv_run_postq - the postq stage, once per message. Returns 1 when the
 * attempt goes on, 0 when the recipients got their outcome from the rules
 * (refused, or deferred by a failing rule), -1 when the message is no longer
 * this worker's (quarantined, held, or queued again changed), 2 when it
 * went to a delegate rule's filter (delivery_delegate.c ends the attempt).
 */
int dlv_run_postq(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg)
{
	struct envelope snap = {0};
	struct rule_verdict v;
	char *before, *after;
	int changed;

	/* A copy held before a delegate rule still owes the rule its filter. */
	if (a->postq || (a->released && a->env.postq_start == 0) || a->env.postq_done ||
	    a->env.faccept ||
	    !rules_stage_used(a->m->w->rules, RULE_STAGE_POSTQ)) {
		a->postq = 1;
		return 1;
	}
	before = dlv_rcpts_snapshot(&a->env);
	if (before == NULL || envelope_copy_rcpts(&snap, &a->env) < 0) {
		free(before);
		envelope_clear(&snap);
		dlv_rule_error(a, "postq");
		return 0;
	}
	scoreboard_enter(a->m->w->board, a->m->id, SCOREBOARD_POSTQ);
	rules_run(a->m->w->rules, RULE_STAGE_POSTQ, ctx, &v);
	scoreboard_enter(a->m->w->board, a->m->id, SCOREBOARD_PREPARE);
	a->faccept = v.status == RULE_FACCEPT;
	if (v.status == RULE_QUARANTINE) {
		free(before);
		envelope_clear(&snap);
		dlv_quarantine(a, v.quarantine, "postq");
		return -1;
	}
	if (v.status == RULE_ERROR || v.status == RULE_DENY || v.status == RULE_REJECT) {
		/* The recipients the statuses are about are the envelope's as queued. */
		envelope_swap_rcpts(&a->env, &snap);
		envelope_clear(&snap);
		free(before);
		if (v.status == RULE_ERROR)
			dlv_rule_error(a, "postq");
		else
			dlv_refuse_pending(a, &v, "postq");
		return 0;
	}
	after = dlv_rcpts_snapshot(&a->env);
	changed = after == NULL || strcmp(before, after) != 0;
	free(after);
	free(before);
	if (a->env.nrcpts == 0) {
		log_info("%s: the postq rules removed every recipient: discarded", a->m->id);
		envelope_clear(&snap);
		dlv_send(a->m->w, "done", a->m->id, NULL, NULL, NULL, NULL, -1);
		return -1;
	}
	if (v.status == RULE_DELEGATE)
		return dlv_postq_delegate(a, ctx, msg, &v, &snap, changed);
	if (changed || message_modified(msg) || dlv_vars_changed(&a->env, ctx)) {
		if (dlv_rewrite(a, msg, ctx, 0) == 0) {
			envelope_clear(&snap);
			return -1;
		}
		envelope_swap_rcpts(&a->env, &snap);
		envelope_clear(&snap);
		dlv_rule_error(a, "postq");
		return 0;
	}
	envelope_clear(&snap);
	if (rules_hold(ctx) != NULL) {
		dlv_hold(a, rules_hold(ctx));
		return -1;
	}
	a->postq = 1;
	return 1;
}

/*
 * dlv_run_delivery - the delivery stage, at every attempt: the transports.
 * Same return values as dlv_run_postq. Changes to the message are delivered
 * (this attempt's copy); recipients cannot change here.
 */
int dlv_run_delivery(struct dlv_attempt *a, struct rule_ctx *ctx, struct message *msg)
{
	struct envelope snap = {0};
	struct rule_verdict v;
	char *before, *after;
	int changed, rc;

	if (!rules_stage_used(a->m->w->rules, RULE_STAGE_DELIVERY) || a->faccept ||
	    a->env.faccept)
		return 1;
	before = dlv_rcpts_snapshot(&a->env);
	if (before == NULL || envelope_copy_rcpts(&snap, &a->env) < 0) {
		free(before);
		envelope_clear(&snap);
		dlv_rule_error(a, "delivery");
		return 0;
	}
	ctx->route = dlv_rules_route;
	ctx->route_arg = a;
	scoreboard_enter(a->m->w->board, a->m->id, SCOREBOARD_DELIVERY);
	rules_run(a->m->w->rules, RULE_STAGE_DELIVERY, ctx, &v);
	scoreboard_enter(a->m->w->board, a->m->id, SCOREBOARD_PREPARE);
	ctx->route = NULL;
	after = dlv_rcpts_snapshot(&a->env);
	changed = after == NULL || strcmp(before, after) != 0;
	free(after);
	free(before);
	if (changed) {
		log_warn("%s: the delivery rules changed the sender or the recipients: ignored "
			 "(make such changes at postq)",
			 a->m->id);
		envelope_swap_rcpts(&a->env, &snap);
	}
	envelope_clear(&snap);
	switch (v.status) {
	case RULE_QUARANTINE:
		dlv_quarantine(a, v.quarantine, "delivery");
		return -1;
	case RULE_ERROR:
		dlv_rule_error(a, "delivery");
		return 0;
	case RULE_DENY:
	case RULE_REJECT:
		dlv_refuse_pending(a, &v, "delivery");
		return 0;
	case RULE_DELEGATE:
		if ((rc = dlv_delegate_delivery(a, &v)) >= 0)
			return rc == 1 ? 2 : 0;
		dlv_rule_error(a, "delivery");
		return 0;
	default:
		break;
	}
	if (message_modified(msg)) {
		if ((a->edited = message_serialize(msg, &a->content_len)) == NULL) {
			dlv_rule_error(a, "delivery");
			return 0;
		}
		a->content = a->edited;
	}
	return 1;
}
