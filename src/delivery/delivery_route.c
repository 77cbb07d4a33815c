/*
 * delivery_route.c - which way each recipient travels, and the jobs.
 *
 * A recipient goes where the delivery rules sent it, else to send_mail()'s
 * relay, to the local transport for our own domains, to the relay host
 * when one is set, or to its domain's MX hosts. The recipients still to
 * deliver are grouped by kind and target into jobs for
 * delivery_transport.c; as each job comes back its results become the
 * recipients' statuses, and the last one ends the attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "delivery_internal.h"
#include "dsn.h"
#include "log.h"

/*
 * dlv_domain_local - whether domain is ours: one of [rules] local_domains,
 * the host name or localhost (which the shipped rules accept as well).
 */
static int dlv_domain_local(const struct config *cfg, const char *domain)
{
	size_t len = strlen(domain);
	const char *p = cfg->local_domains;

	if (strcasecmp(domain, cfg->hostname) == 0 || strcasecmp(domain, "localhost") == 0)
		return 1;
	while (*p != '\0') {
		const char *end = strchr(p, ' ');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n == len && strncasecmp(p, domain, n) == 0)
			return 1;
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
}

/* dlv_route_local - the configured local transport. */
static void dlv_route_local(const struct config *cfg, enum dlv_kind *kind, char *target,
			    size_t len)
{
	target[0] = '\0';
	switch (cfg->local_transport) {
	case LOCAL_MBOX:
		*kind = DLV_MBOX;
		break;
	case LOCAL_LMTP:
		*kind = DLV_LMTP;
		snprintf(target, len, "%s", cfg->lmtp_target);
		break;
	default:
		*kind = DLV_MAILDIR;
		break;
	}
}

/*
 * dlv_route - how recipient i travels: kind and target (a domain, a host,
 * an LMTP server). Returns 0, or -1 when it goes nowhere (disable_delivery).
 */
static int dlv_route(const struct dlv_attempt *a, size_t i, enum dlv_kind *kind, char *target,
		     size_t len)
{
	const struct config *cfg = a->m->w->cfg;
	const struct dlv_rcpt *dr = &a->rcpts[i];
	const char *addr = a->env.rcpts[i].address;
	const char *at = strrchr(addr, '@');
	const char *domain = at ? at + 1 : cfg->hostname; /* "postmaster" alone is ours */

	target[0] = '\0';
	switch (dr->route) {
	case ROUTE_NONE:
		return -1;
	case ROUTE_FORWARD:
		*kind = DLV_RELAY;
		snprintf(target, len, "%s", dr->target);
		return 0;
	case ROUTE_MAILDIR:
		*kind = DLV_MAILDIR;
		return 0;
	case ROUTE_MBOX:
		*kind = DLV_MBOX;
		return 0;
	case ROUTE_LMTP:
		*kind = DLV_LMTP;
		snprintf(target, len, "%s", dr->target[0] ? dr->target : cfg->lmtp_target);
		return 0;
	default:
		break;
	}
	if (a->env.relay != NULL) { /* send_mail()'s relay */
		*kind = DLV_RELAY;
		snprintf(target, len, "%s", a->env.relay);
		return 0;
	}
	if (at == NULL || dlv_domain_local(cfg, domain)) {
		dlv_route_local(cfg, kind, target, len);
		return 0;
	}
	if (cfg->relay_host[0] != '\0') {
		*kind = DLV_RELAY;
		snprintf(target, len, "%s", cfg->relay_host);
		return 0;
	}
	*kind = DLV_MX;
	snprintf(target, len, "%s", domain);
	for (; *target; target++)
		if (*target >= 'A' && *target <= 'Z')
			*target = (char)(*target - 'A' + 'a');
	return 0;
}

/* dlv_log_rcpt - one line per recipient and attempt, as administrators grep for. */
static void dlv_log_rcpt(const struct dlv_attempt *a, size_t i, const char *via)
{
	const struct dlv_rcpt *dr = &a->rcpts[i];

	log_info("%s: to=<%s>, relay=%s, delay=%lds, status=%s (%s)", a->m->id,
		 a->env.rcpts[i].address, dr->remote[0] ? dr->remote : via,
		 (long)(time(NULL) - a->env.received_at), dlv_status_names[dr->status], dr->reply);
}

/* dlv_kind_name - how a job travels, for the log. */
static const char *dlv_kind_name(enum dlv_kind kind)
{
	static const char *const names[] = {"smtp", "smtp", "lmtp", "maildir", "mbox"};

	return names[kind];
}

/*
 * dlv_notice_owed - the success notice recipient i is owed by the result r
 * of a job of kind (RFC 3461 5.2.2, 6.2): none unless it was sent and asked
 * for one; none when a peer offering DSN took its NOTIFY, as that peer
 * reports then; "delivered" for our own mailboxes and for an LMTP server,
 * the final delivery; "relayed" to an SMTP peer without DSN.
 */
static enum dlv_notice dlv_notice_owed(const struct dlv_attempt *a, size_t i, enum dlv_kind kind,
				       const struct mta_result *r)
{
	if (r->outcome != MTA_SENT || r->dsn_passed ||
	    !dsn_wanted(&a->env, &a->env.rcpts[i], DSN_DELIVERED))
		return NOTICE_NONE;
	return kind == DLV_MX || kind == DLV_RELAY ? NOTICE_RELAYED : NOTICE_DELIVERED;
}

/* dlv_job_done - a job's results are in. */
static void dlv_job_done(struct dlv_job *job)
{
	struct dlv_attempt *a = job->owner;
	size_t k;

	for (k = 0; k < job->msg.nrcpts; k++) {
		const struct mta_result *r = &job->results[k];
		size_t i = a->index[&job->msg.rcpts[k] - a->crcpts];
		struct dlv_rcpt *dr = &a->rcpts[i];
		dr->status = r->outcome == MTA_SENT	    ? RCPT_SENT
			     : r->outcome == MTA_DEFERRED ? RCPT_DEFERRED
								  : RCPT_FAILED;
		snprintf(dr->reply, sizeof(dr->reply), "%s", r->reply);
		snprintf(dr->enhanced, sizeof(dr->enhanced), "%s", r->enhanced);
		snprintf(dr->remote, sizeof(dr->remote), "%s", job->remote);
		dr->remote_said = r->remote_said;
		dr->at = time(NULL);
		dr->notice = dlv_notice_owed(a, i, job->kind, r);
		dlv_log_rcpt(a, i, dlv_kind_name(job->kind));
	}
	if (--a->jobs_left == 0)
		dlv_attempt_end(a);
}

/* dlv_jobs_make - group the recipients still to deliver into jobs; submit them. */
int dlv_jobs_make(struct dlv_attempt *a)
{
	struct dlv_worker *w = a->m->w;
	size_t n = a->env.nrcpts, i, j, k;
	enum dlv_kind *kinds;
	char (*targets)[300];
	int *job_of;

	a->crcpts = calloc(n, sizeof(*a->crcpts));
	a->results = calloc(n, sizeof(*a->results));
	a->jobs = calloc(n, sizeof(*a->jobs));
	kinds = calloc(n, sizeof(*kinds));
	targets = calloc(n, sizeof(*targets));
	job_of = calloc(n, sizeof(*job_of));
	if (!a->crcpts || !a->results || !a->jobs || !kinds || !targets || !job_of) {
		free(kinds);
		free(targets);
		free(job_of);
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct dlv_rcpt *dr = &a->rcpts[i];

		job_of[i] = -1;
		a->crcpts[i].address = a->env.rcpts[i].address;
		a->crcpts[i].notify = a->env.rcpts[i].notify;
		a->crcpts[i].orcpt_type = a->env.rcpts[i].orcpt_type;
		a->crcpts[i].orcpt = a->env.rcpts[i].orcpt;
		if (dr->status != RCPT_PENDING && dr->status != RCPT_DEFERRED)
			continue;
		if (dlv_route(a, i, &kinds[i], targets[i], sizeof(targets[i])) < 0) {
			dr->status = RCPT_NONE;
			snprintf(dr->reply, sizeof(dr->reply), "delivery disabled by the rules");
			dr->at = a->started;
			dlv_log_rcpt(a, i, "none");
			continue;
		}
		for (j = 0; j < a->njobs; j++)
			if (a->jobs[j].kind == kinds[i] && strcmp(a->jobs[j].target, targets[i]) == 0)
				break;
		if (j == a->njobs) {
			a->jobs[j].kind = kinds[i];
			snprintf(a->jobs[j].target, sizeof(a->jobs[j].target), "%s", targets[i]);
			a->njobs++;
		}
		job_of[i] = (int)j;
	}
	/* Each job's recipients are a contiguous run of crcpts: reorder by job. */
	{
		struct mta_rcpt *sorted = calloc(n ? n : 1, sizeof(*sorted));
		size_t *index = calloc(n ? n : 1, sizeof(*index));

		if (sorted == NULL || index == NULL) {
			free(sorted);
			free(index);
			free(kinds);
			free(targets);
			free(job_of);
			return -1;
		}
		for (j = 0, k = 0; j < a->njobs; j++) {
			struct dlv_job *job = &a->jobs[j];

			job->msg.rcpts = &sorted[k];
			job->results = &a->results[k];
			for (i = 0; i < n; i++)
				if (job_of[i] == (int)j) {
					index[k] = i;
					sorted[k++] = a->crcpts[i];
				}
			job->msg.nrcpts = (size_t)(&sorted[k] - job->msg.rcpts);
		}
		/* crcpts now holds the jobs' order; index maps back. */
		free(a->crcpts);
		a->crcpts = sorted;
		a->index = index;
	}
	free(kinds);
	free(targets);
	free(job_of);
	a->jobs_left = a->njobs;
	for (j = 0; j < a->njobs; j++) {
		struct dlv_job *job = &a->jobs[j];

		job->msg.mail_from = a->env.mail_from ? a->env.mail_from : "";
		job->msg.content = a->content;
		job->msg.content_len = a->content_len;
		job->msg.body = a->env.body;
		job->msg.smtputf8 = a->env.smtputf8;
		job->msg.ret = a->env.ret;
		job->msg.envid = a->env.envid;
		job->done = dlv_job_done;
		job->owner = a;
	}
	for (j = 0; j < a->njobs; j++)
		dlv_transport_submit(w->t, &a->jobs[j]);
	return 0;
}
