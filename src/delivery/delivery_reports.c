/*
 * delivery_reports.c - what the delivery worker tells the sender.
 *
 * Bounces (failed recipients), delay warnings (deferred ones) and success
 * notices (NOTIFY=SUCCESS) are delivery status notifications (RFC 3464)
 * built by dsn_build from the recipients' statuses and queued through the
 * queue like any message, from the null sender to the message's sender.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery_internal.h"
#include "dsn.h"
#include "log.h"
#include "queue_client.h"
#include "smtp_parse.h"

/* The recipients one notification reports, with their Remote-MTA names. */
struct dlv_report {
	struct dsn_rcpt *list;
	char (*mta)[DLV_REMOTE_MAX];
	size_t n;
};

/* dlv_report_free - release a report's room. */
static void dlv_report_free(struct dlv_report *rep)
{
	free(rep->list);
	free(rep->mta);
	rep->list = NULL;
	rep->mta = NULL;
	rep->n = 0;
}

/* dlv_report_init - room for a report about at most max recipients; 0 or ENOMEM. */
static int dlv_report_init(struct dlv_report *rep, size_t max)
{
	rep->n = 0;
	rep->list = calloc(max ? max : 1, sizeof(*rep->list));
	rep->mta = calloc(max ? max : 1, sizeof(*rep->mta));
	if (rep->list == NULL || rep->mta == NULL) {
		dlv_report_free(rep);
		return ENOMEM;
	}
	return 0;
}

/* dlv_report_add - recipient i's block, reporting action. */
static void dlv_report_add(struct dlv_report *rep, const struct dlv_attempt *a, size_t i,
			   enum dsn_action action, int64_t retry_until)
{
	const struct dlv_rcpt *dr = &a->rcpts[i];
	struct dsn_rcpt *d = &rep->list[rep->n];
	char *mta = rep->mta[rep->n++];
	int success = action == DSN_DELIVERED || action == DSN_RELAYED;

	d->rcpt = &a->env.rcpts[i];
	d->action = action;
	d->status = dr->enhanced; /* dsn_build puts x.0.0 of the action's class for "" */
	/* Remote-MTA is a host name: "mx.example.org[192.0.2.1]" without the address. */
	snprintf(mta, DLV_REMOTE_MAX, "%.*s", (int)strcspn(dr->remote, "["), dr->remote);
	d->remote_mta = mta[0] ? mta : NULL;
	/* Our own "delivered to <file>" would show the sender where mailboxes live. */
	d->diagnostic = success && !dr->remote_said ? "delivered to the mailbox" : dr->reply;
	d->diagnostic_smtp = dr->remote_said;
	d->last_attempt = dr->at;
	d->will_retry_until = retry_until;
}

/*
 * dlv_report_send - build the notification about rep's recipients and
 * queue it for the sender; what names it in the log ("non-delivery
 * notification"). 0 when queued, else an errno value (nothing was queued).
 */
static int dlv_report_send(struct dlv_attempt *a, const struct dlv_report *rep, const char *what)
{
	const struct config *cfg = a->m->w->cfg;
	struct envelope notice = {0};
	size_t len;
	char *text;
	int err;

	text = dsn_build(cfg->hostname, &a->env, a->map, a->content_len, rep->list, rep->n,
			 cfg->dsn_attach_limit, time(NULL), &len);
	if (text == NULL)
		return ENOMEM;
	err = envelope_init_local(&notice, cfg->hostname, "") < 0 ||
		      envelope_add_rcpt(&notice, a->env.mail_from, 0, NULL, NULL) < 0
		  ? ENOMEM
		  : 0;
	notice.smtputf8 = a->env.smtputf8;
	notice.body = SMTP_BODY_8BITMIME;
	if (err == 0)
		err = queue_client_submit(a->m->w->sess_fd, &notice, text, len);
	if (err == 0)
		log_info("%s: sender %s: %s", a->m->id, what, notice.id);
	else
		log_err("%s: cannot queue the %s: %s", a->m->id, what, strerror(err));
	envelope_clear(&notice);
	free(text);
	return err;
}

/*
 * dlv_notify - send the sender a notification about the recipients whose
 * status is `which` and who want to hear of it (failures or delays). 0 when
 * sent or not wanted, else an errno value (nothing was queued: try again
 * later).
 */
int dlv_notify(struct dlv_attempt *a, enum dsn_action action, enum dlv_status which,
		      int64_t retry_until)
{
	struct dlv_report rep;
	size_t i;
	int err;

	if (dlv_report_init(&rep, a->env.nrcpts) != 0)
		return ENOMEM;
	for (i = 0; i < a->env.nrcpts; i++)
		if (a->rcpts[i].status == which && dsn_wanted(&a->env, &a->env.rcpts[i], action))
			dlv_report_add(&rep, a, i, action, retry_until);
	err = rep.n == 0 ? 0
			 : dlv_report_send(a, &rep,
					   action == DSN_DELAYED ? "delay notification"
								 : "non-delivery notification");
	dlv_report_free(&rep);
	return err;
}

/*
 * dlv_notify_success - one success notice about every recipient owed one
 * (NOTIFY=SUCCESS), apart from any bounce; they are marked sent once it is
 * queued. 0 when queued or none is owed, else an errno value: they stay
 * owed, for the next attempt.
 */
int dlv_notify_success(struct dlv_attempt *a)
{
	struct dlv_report rep;
	size_t i;
	int err;

	if (dlv_report_init(&rep, a->env.nrcpts) != 0)
		return ENOMEM;
	for (i = 0; i < a->env.nrcpts; i++) {
		enum dlv_notice owed = a->rcpts[i].notice;

		if (owed == NOTICE_DELIVERED || owed == NOTICE_RELAYED)
			dlv_report_add(&rep, a, i,
				       owed == NOTICE_DELIVERED ? DSN_DELIVERED : DSN_RELAYED, 0);
	}
	err = rep.n == 0 ? 0 : dlv_report_send(a, &rep, "delivery status notification");
	dlv_report_free(&rep);
	for (i = 0; err == 0 && i < a->env.nrcpts; i++)
		if (a->rcpts[i].notice == NOTICE_DELIVERED || a->rcpts[i].notice == NOTICE_RELAYED)
			a->rcpts[i].notice = NOTICE_SENT;
	return err;
}
