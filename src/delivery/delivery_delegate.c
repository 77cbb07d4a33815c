/*
 * delivery_delegate.c - sending a message to a delegate rule's filter.
 *
 * When the postq rules stop at a delegate rule (RULE_DELEGATE), the worker
 * sends the message, as the rules before it left it, over SMTP to the
 * address of the rule's [service:NAME] (kind delegate), with the envelope's
 * sender and recipients (NOTIFY=NEVER: the filter must not bounce what
 * vsmtpd still holds) and, first in the header, an X-Vsmtpd-Delegation
 * field whose token names this message and the rule (include/delegation.h;
 * any such field the message had is dropped first). The original stays in
 * queue/: once the filter took it, its state says so (delegated: service,
 * rule, sent_at) and its next attempt is due after the service's timeout.
 * When the filter's copy comes back in time, the queue removes the
 * original and the worker forgets it (withdraw); when it does not, that
 * next attempt runs postq again and sends it again: at least once. A
 * duplicate return is dropped by the queue.
 *
 * A filter that refuses or cannot be reached is a failed service call:
 * the recipients are deferred (on_failure tempfail or accept: a delegate
 * rule cannot go on without the filter's copy) or fail (reject), and the
 * usual retries and queue lifetime apply. Past the queue lifetime, a
 * message still waiting for its filter is deferred with 4.4.7, which the
 * end of the attempt turns into a bounce.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delegation.h"
#include "delivery_internal.h"
#include "log.h"
#include "message.h"
#include "smtp_parse.h"

/* dlv_delegate_ms - milliseconds since the filter call started. */
static unsigned long dlv_delegate_ms(const struct dlv_attempt *a)
{
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return now > a->delegate_start_ms ? (unsigned long)(now - a->delegate_start_ms) : 0;
}

/* dlv_delegate_service - the [service:NAME] of kind delegate, or NULL. */
static const struct service_config *dlv_delegate_service(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nservice; i++)
		if (strcmp(cfg->service[i].name, name) == 0)
			return cfg->service[i].kind == SERVICE_DELEGATE ? &cfg->service[i] : NULL;
	return NULL;
}

/* dlv_delegate_defer - every recipient still to deliver gets reply (deferred or failed). */
static void dlv_delegate_defer(struct dlv_attempt *a, int failed, const char *enhanced,
                               const char *reply)
{
	size_t i;

	for (i = 0; i < a->env.nrcpts; i++) {
		struct dlv_rcpt *dr = &a->rcpts[i];

		if (dr->status != RCPT_PENDING && dr->status != RCPT_DEFERRED)
			continue;
		dr->status = failed ? RCPT_FAILED : RCPT_DEFERRED;
		snprintf(dr->reply, sizeof(dr->reply), "%.*s", (int)sizeof(dr->reply) - 1, reply);
		snprintf(dr->enhanced, sizeof(dr->enhanced), "%s", enhanced);
		dr->remote[0] = '\0';
		dr->remote_said = 0;
		dr->at = time(NULL);
	}
}

/*
 * dlv_delegate_delivery - RULE_DELEGATE at delivery: send the message as it
 * is queued (this attempt's edits are not kept, and would come back baked
 * in). Only when no recipient has a final outcome yet: the copy that comes
 * back replaces the original with all its recipients. As dlv_run_delivery.
 */
int dlv_delegate_delivery(struct dlv_attempt *a, const struct rule_verdict *v)
{
	struct message *msg;
	size_t i;
	int rc;

	for (i = 0; i < a->env.nrcpts; i++)
		if (a->rcpts[i].status != RCPT_PENDING && a->rcpts[i].status != RCPT_DEFERRED)
			break;
	if (i < a->env.nrcpts) {
		log_err(
		    "%s: delegate rule \"%s\" at delivery: <%s> has its outcome already, from "
		    "an attempt that did not reach the rule: the message cannot go to the filter",
		    a->m->id, v->rule, a->env.rcpts[i].address);
		return -1;
	}
	if ((msg = message_parse(a->content, a->content_len)) == NULL)
		return -1;
	rc = dlv_delegate_send(a, msg, v, RULE_STAGE_DELIVERY);
	message_free(msg);
	return rc;
}

/* dlv_delegate_done - the filter's answer to the message. */
static void dlv_delegate_done(struct dlv_job *job)
{
	struct dlv_attempt *a = job->owner;
	const struct service_config *svc = a->delegate_svc;
	char line[MTA_REPLY_MAX + 160];
	const struct mta_result *bad = NULL;
	int64_t next;
	size_t k;

	for (k = 0; k < job->msg.nrcpts && bad == NULL; k++)
		if (job->results[k].outcome != MTA_SENT)
			bad = &job->results[k];
	if (bad == NULL) {
		a->delegate_sent_at = time(NULL);
		next = a->delegate_sent_at + (int64_t)(svc->timeout_ms + 999) / 1000;
		log_info("%s: service %s (delegate): %lu ms: sent to %s (%s); waiting for it to "
		         "come back, else sent again in %u s",
		         a->m->id, svc->name, dlv_delegate_ms(a),
		         job->remote[0] ? job->remote : svc->address, job->results[0].reply,
		         (svc->timeout_ms + 999) / 1000);
		if (a->m->withdrawn) {
			/* it came back already: the queue has removed it */
			dlv_attempt_wait(a, 0);
			return;
		}
		dlv_state_save(a, next);
		dlv_attempt_wait(a, next);
		return;
	}
	snprintf(line, sizeof(line), "failed: %s; on_failure=%s", bad->reply,
	         config_service_failure_name(svc->on_failure));
	log_warn("%s: service %s (delegate): %lu ms: %s", a->m->id, svc->name, dlv_delegate_ms(a),
	         line);
	if (svc->on_failure == SERVICE_FAIL_REJECT) {
		snprintf(line, sizeof(line), "550 5.7.1 Rejected: %s is unavailable (%.400s)",
		         svc->name, bad->reply);
		dlv_delegate_defer(a, 1, "5.7.1", line);
	} else {
		snprintf(line, sizeof(line),
		         "451 4.7.1 %s is unavailable, try again later (%.400s)", svc->name,
		         bad->reply);
		dlv_delegate_defer(a, 0, "4.7.1", line);
	}
	dlv_attempt_end(a);
}

/* dlv_delegate_content - the message with the token field first, into a->edited. */
static int dlv_delegate_content(struct dlv_attempt *a, struct message *msg, char stage,
                                unsigned rule)
{
	struct delegation_token t = {.stage = stage, .rule = rule};
	char token[DELEGATION_TOKEN_MAX];

	snprintf(t.id, sizeof(t.id), "%s", a->m->id);
	if (delegation_token_make(&t, token, sizeof(token)) < 0) {
		log_err("%s: cannot make the delegation token (no key?)", a->m->id);
		return -1;
	}
	if (message_header_remove(msg, DELEGATION_HEADER) < 0 ||
	    message_header_prepend(msg, DELEGATION_HEADER, token) < 0 ||
	    (a->edited = message_serialize(msg, &a->content_len)) == NULL) {
		log_err("%s: out of memory making the message for the filter", a->m->id);
		return -1;
	}
	a->content = a->edited;
	return 0;
}

/* dlv_delegate_send - RULE_DELEGATE at stage: send the message to the rule's filter. */
int dlv_delegate_send(struct dlv_attempt *a, struct message *msg, const struct rule_verdict *v,
                      enum rule_stage stage)
{
	const struct config *cfg = a->m->w->cfg;
	const struct service_config *svc = dlv_delegate_service(cfg, v->delegate_service);
	int64_t life = a->env.mail_from && a->env.mail_from[0] ? cfg->max_queue_lifetime
	                                                       : cfg->bounce_queue_lifetime;
	struct timespec ts;
	struct dlv_job *job;
	size_t i, n = a->env.nrcpts;
	char reply[MTA_REPLY_MAX];

	if (svc == NULL) {
		log_err("%s: delegate rule \"%s\": no [service:%s] of kind delegate", a->m->id,
		        v->rule, v->delegate_service);
		return -1;
	}
	if (time(NULL) - a->env.received_at >= life) {
		snprintf(reply, sizeof(reply),
		         "451 4.4.7 service %s did not send the message back in time", svc->name);
		dlv_delegate_defer(a, 0, "4.4.7", reply);
		return 0;
	}
	if (dlv_delegate_content(
	        a, msg, stage == RULE_STAGE_DELIVERY ? DELEGATION_DELIVERY : DELEGATION_POSTQ,
	        v->delegate_rule) < 0)
		return -1;
	a->jobs = calloc(1, sizeof(*a->jobs));
	a->crcpts = calloc(n, sizeof(*a->crcpts));
	a->results = calloc(n, sizeof(*a->results));
	if (a->jobs == NULL || a->crcpts == NULL || a->results == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		a->crcpts[i].address = a->env.rcpts[i].address;
		a->crcpts[i].notify = SMTP_NOTIFY_NEVER;
	}
	job = &a->jobs[0];
	job->kind = DLV_RELAY;
	snprintf(job->target, sizeof(job->target), "%s%s",
	         config_service_is_unix(svc->address) ? "unix:" : "", svc->address);
	job->msg.mail_from = a->env.mail_from ? a->env.mail_from : "";
	job->msg.rcpts = a->crcpts;
	job->msg.nrcpts = n;
	job->msg.content = a->content;
	job->msg.content_len = a->content_len;
	job->msg.body = a->env.body;
	job->msg.smtputf8 = a->env.smtputf8;
	job->results = a->results;
	job->done = dlv_delegate_done;
	job->owner = a;
	a->njobs = a->jobs_left = 1;
	a->delegate_svc = svc;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	a->delegate_start_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	a->delegate_rule = v->delegate_rule;
	a->delegate_stage = stage;
	dlv_transport_submit(a->m->w->t, job);
	return 1;
}
