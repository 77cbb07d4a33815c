/*
 * queue_delegation.c - the copy a delegate rule's filter sends back.
 *
 * The delivery worker sent a message to a content filter and left it in
 * queue/; the filter sent it back to a delegation listener, whose session
 * checked the form of its token and passes it in the envelope it wrote
 * (delegation_token). Here, at the commit:
 *
 * - the token's MAC is checked under the spool's key (sessions hold no
 *   key): a token that does not verify is refused (EACCES: the filter gets
 *   550 5.7.1).
 * - the envelope is the original's, not the filter's: the filter gives
 *   the message (with its header fields), while the sender, the recipients
 *   with their DSN parameters, the client and the rules' variables stay as
 *   vsmtpd received them. The queue reads the original's envelope and
 *   writes it over the session's, with the delegation marks.
 * - a copy whose original is no longer in queue/, or is being replaced by
 *   another returned copy right now, is a second return of the same
 *   delegation (the worker sent it again after a timeout, and both came
 *   back): it is dropped, and the filter told it went well.
 * - once the returned copy is durable in queue/, the original and its
 *   state are removed and the worker told to forget it. A crash in
 *   between leaves both: at recovery, an original whose returned copy is
 *   in queue/ is removed then. So the message is neither lost nor
 *   delivered twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delegation.h"
#include "log.h"
#include "queue_internal.h"
#include "spool.h"

/* An original a returned copy is being committed for. */
struct queue_claim {
	char id[SPOOL_ID_LEN + 1];
	struct queue_claim *next;
};

static struct queue_claim *queue_claims;

/* queue_delegation_claimed - whether a returned copy of id is being committed. */
static int queue_delegation_claimed(const char *id)
{
	const struct queue_claim *c;

	for (c = queue_claims; c != NULL; c = c->next)
		if (strcmp(c->id, id) == 0)
			return 1;
	return 0;
}

/* queue_delegation_claim - note that m replaces its original; 0 or ENOMEM. */
static int queue_delegation_claim(struct queue_msg *m, const char *from)
{
	struct queue_claim *c = calloc(1, sizeof(*c));

	if (c == NULL || (m->delegated_from = strdup(from)) == NULL) {
		free(c);
		return ENOMEM;
	}
	snprintf(c->id, sizeof(c->id), "%s", from);
	c->next = queue_claims;
	queue_claims = c;
	return 0;
}

/* queue_delegation_forget - m is committed or dropped: its claim goes. */
void queue_delegation_forget(struct queue_msg *m)
{
	struct queue_claim **pp, *c;

	if (m->delegated_from == NULL)
		return;
	for (pp = &queue_claims; (c = *pp) != NULL; pp = &c->next)
		if (strcmp(c->id, m->delegated_from) == 0) {
			*pp = c->next;
			free(c);
			break;
		}
	free(m->delegated_from);
	m->delegated_from = NULL;
}

/* queue_delegation_merge - the original's envelope, marked, over m's. */
int queue_delegation_merge(struct queue *q, struct queue_msg *m, const struct envelope *env,
                           uint64_t clen, uint64_t *elen)
{
	struct envelope orig = {0};
	struct delegation_token t;
	const char *why;
	uint64_t olen;
	char *json;
	size_t jlen;
	int fd, err;

	if (delegation_token_verify(env->delegation_token, strlen(env->delegation_token), &t,
	                            &why) < 0) {
		log_notice("%s: refused: its %s token: %s", m->id, DELEGATION_HEADER, why);
		return EACCES;
	}
	if (queue_delegation_claimed(t.id))
		return ENOENT;
	fd = openat(q->queue_fd, t.id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? ENOENT : EIO;
	err = spool_message_read(fd, &orig, &olen) < 0 ? EIO : 0;
	close(fd);
	if (err == 0) {
		snprintf(orig.id, sizeof(orig.id), "%s", m->id);
		/* a hold the original was released from is over */
		free(orig.hold);
		orig.hold = NULL;
		orig.delegated_rule = t.rule;
		orig.delegated_delivery = t.stage == DELEGATION_DELIVERY;
		/* back at postq: its run starts at the rule; at delivery: postq is over */
		orig.postq_done = orig.delegated_delivery;
		orig.postq_start = orig.delegated_delivery ? 0 : t.rule;
		if (envelope_set(&orig.delegated_from, t.id) < 0 ||
		    (json = envelope_to_json(&orig)) == NULL) {
			err = ENOMEM;
		} else {
			jlen = strlen(json);
			if (ftruncate(m->fd, (off_t)clen) < 0 ||
			    pwrite(m->fd, json, jlen, (off_t)clen) != (ssize_t)jlen)
				err = errno ? errno : EIO;
			else
				*elen = jlen;
			free(json);
		}
	}
	envelope_clear(&orig);
	if (err == 0)
		err = queue_delegation_claim(m, t.id);
	return err;
}

/* queue_delegation_committed - the returned copy m is durable: the original goes. */
void queue_delegation_committed(struct queue *q, struct queue_msg *m)
{
	if (unlinkat(q->queue_fd, m->delegated_from, 0) < 0 && errno != ENOENT)
		log_err("%s: cannot remove from %s/: %s", m->delegated_from, SPOOL_QUEUE,
		        strerror(errno));
	queue_state_remove(q, m->delegated_from);
	queue_dlv_withdraw(q, m->delegated_from);
	log_info("%s: came back from the filter as %s: removed", m->delegated_from, m->id);
	queue_delegation_forget(m);
}

/* queue_delegation_recover - at start: env (queue/<id>) came back; its original goes. */
void queue_delegation_recover(int queue_fd, const struct envelope *env)
{
	if (env->delegated_from == NULL || !spool_id_valid(env->delegated_from))
		return;
	if (unlinkat(queue_fd, env->delegated_from, 0) == 0)
		log_notice("%s: came back from the filter as %s before a restart: removed",
		           env->delegated_from, env->id);
	else if (errno != ENOENT)
		log_err("%s: cannot remove from %s/: %s", env->delegated_from, SPOOL_QUEUE,
		        strerror(errno));
}
