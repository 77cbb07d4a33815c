/*
 * smtpd_delegation.c - a delegation listener: mail coming back from the
 * content filters of delegate rules.
 *
 * The filter is a client like any other, but what it sends is not new
 * mail: it is a queued message on its way through the postq rules. So no
 * rule runs on this listener (the rules ran on the message before it went
 * out, and go on from the delegate rule once it is back), and a message is
 * taken only with one well-formed X-Vsmtpd-Delegation field (see
 * include/delegation.h). The field is removed and its token goes to the
 * queue in the envelope; the queue checks its MAC (a session holds no key),
 * gives the copy the original's envelope and removes the original once the
 * copy is committed (src/queue/queue_delegation.c). A token that does not
 * verify is refused with EACCES, and the filter gets 550 5.7.1: nobody can
 * inject mail past the rules through this port.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "delegation.h"
#include "log.h"
#include "message.h"
#include "smtpd_internal.h"

/* smtpd_delegation_token - the message's one token field, checked; 0 or -1 with why. */
static int smtpd_delegation_token(const struct message *msg, struct delegation_token *t,
                                  char *canon, const char **why)
{
	size_t len;
	char *value;
	int rc;

	if (message_header_count(msg, DELEGATION_HEADER) != 1) {
		*why = message_header_count(msg, DELEGATION_HEADER) == 0
		           ? "no " DELEGATION_HEADER " field"
		           : "more than one " DELEGATION_HEADER " field";
		return -1;
	}
	if ((value = message_header_get(msg, DELEGATION_HEADER, 0, &len)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	if ((rc = delegation_token_parse(value, len, t, canon)) < 0)
		*why = "malformed " DELEGATION_HEADER " field";
	free(value);
	return rc;
}

/*
 * smtpd_delegation_check - the content of a delegation listener's
 * transaction is complete: check its token, drop the field and mark the
 * envelope. 0 when it goes on to the queue, 1 when refused (replied).
 */
int smtpd_delegation_check(struct smtp_session *s)
{
	struct smtpd_tx *tx = s->tx;
	struct delegation_token t;
	char canon[DELEGATION_TOKEN_MAX];
	struct message *msg;
	const char *why = NULL;
	int err;

	if ((msg = smtpd_preq_load(tx)) == NULL) {
		log_err("%s: cannot read the message back", tx->env.id);
		smtpd_reply(s, "451 4.3.0 Error: queue file read error");
		return 1;
	}
	if (smtpd_delegation_token(msg, &t, canon, &why) < 0) {
		message_free(msg);
		log_notice("%s: refused on delegation listener %s from %s: %s", tx->env.id,
		           s->listener->name, s->client_ip, why);
		smtpd_reply(s, "550 5.7.1 Not a message this server delegated (%s)", why);
		return 1;
	}
	if (message_header_remove(msg, DELEGATION_HEADER) < 0 ||
	    (err = smtpd_preq_store(tx, msg)) != 0 ||
	    envelope_set(&tx->env.delegation_token, canon) < 0) {
		message_free(msg);
		log_err("%s: cannot store the returned message", tx->env.id);
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
		return 1;
	}
	message_free(msg);
	log_info("%s: returned by a filter for %s (%s rule %u), if its token verifies",
	         tx->env.id, t.id, t.stage == DELEGATION_DELIVERY ? "delivery" : "postq", t.rule);
	return 0;
}
