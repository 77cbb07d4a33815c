/*
 * rules_offline.h - one SMTP transaction through the rules, without a
 * client: what `vsmtpctl rules run` and `vsmtpctl rules test` show an
 * administrator before a policy goes live.
 *
 * The stages run as the session runs them (connect, helo, authenticate when
 * the transaction says the client authenticated, mail, each rcpt, preq),
 * with the same default replies, so the outcome printed is the outcome a
 * client would see.
 */
#ifndef VSMTPD_RULES_OFFLINE_H
#define VSMTPD_RULES_OFFLINE_H

#include <stddef.h>

#include "rules.h"

struct offline_tx {
	const char *client_ip;     /* default 127.0.0.1 */
	const char *helo;          /* default "client.example" */
	const char *mail_from;     /* "" for the null sender */
	const char *const *rcpts;
	size_t nrcpts;
	const char *message;       /* the content for preq, NULL for a minimal one */
	size_t message_len;
	const char *listener;      /* default "smtp" */
	const char *server_name;   /* default "localhost" */
	int tls;                   /* the session is encrypted (TLSv1.3) */
	const char *authid;        /* the client authenticated as this user; NULL: it did not */
	const char *auth_mechanism; /* with this mechanism, default "PLAIN" */
};

/* What one stage (or one recipient's rcpt stage) came to. */
struct offline_step {
	enum rule_stage stage;
	const char *rcpt;          /* the rcpt stage's recipient */
	struct rule_verdict v;
	char reply[RULE_TEXT_MAX + 32]; /* what the client would read */
	int refused;               /* the command was refused */
};

enum offline_outcome {
	OFFLINE_QUEUED,      /* the message would be queued */
	OFFLINE_QUARANTINED, /* it would be kept in quarantine/<name> */
	OFFLINE_DISCARDED,   /* accepted, but the rules removed every recipient */
	OFFLINE_REFUSED,     /* a 5xx ended it */
	OFFLINE_DEFERRED,    /* a 4xx ended it: the client would try again */
};

typedef void (*offline_report_fn)(void *arg, const struct offline_step *step);

/*
 * rules_offline_run - run tx through r, calling report after each stage.
 * Returns the outcome; *final (when not NULL) gets the last step. A bad
 * address in tx gives OFFLINE_REFUSED with the parser's reply, as a real
 * session would.
 */
enum offline_outcome rules_offline_run(struct rules *r, const struct offline_tx *tx,
				       offline_report_fn report, void *arg,
				       struct offline_step *final);

/* rules_offline_outcome_name - "queued", "quarantined", ... */
const char *rules_offline_outcome_name(enum offline_outcome o);

#endif
