/*
 * rules_offline.h - one SMTP transaction through the rules, without a
 * client: what `vsmtpctl rules run` and `vsmtpctl rules test` show an
 * administrator before a policy goes live.
 *
 * The stages run as the session runs them (connect, helo, authenticate when
 * the transaction says the client authenticated, mail, each rcpt, preq),
 * with the same default replies, so the outcome printed is the outcome a
 * client would see. A message the session would queue then goes through
 * the stages of the delivery process, postq and delivery, which tell what
 * becomes of it after queueing and the transport each recipient takes.
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
	int returned; /* delegate rules' filters send the message back as it is: postq goes on */
};

/* What became of a queued message in postq and delivery. */
enum offline_after {
	OFFLINE_AFTER_NONE,        /* not decided here: the next stage runs */
	OFFLINE_AFTER_DELIVERED,   /* delivered, each recipient by its route */
	OFFLINE_AFTER_QUARANTINED, /* moved to quarantine/<name>, not delivered */
	OFFLINE_AFTER_BOUNCED,     /* refused with a 5xx: the recipients fail, a bounce */
	OFFLINE_AFTER_DEFERRED,    /* a 4xx or a rule error: tried again later */
	OFFLINE_AFTER_DISCARDED,   /* the rules removed every recipient */
	OFFLINE_AFTER_HELD,        /* ctx:hold() at postq: moved to hold/, not delivered */
};

/* The transport the delivery stage chose for one recipient. */
struct offline_route {
	const char *rcpt;                   /* an address of the envelope */
	enum rule_route kind;               /* ROUTE_DEFAULT when no rule chose */
	char target[RULE_ROUTE_TARGET_MAX]; /* forward's, lmtp's; "" for the others */
};

/*
 * The mail authentication results the rules obtained in the transaction so
 * far (ctx:spf(), ctx:spf_helo(), ctx:dkim(), ctx:dmarc(), ctx:arc()), as
 * `rules run` prints them and test cases check them. A field is "" when
 * its method did not run.
 */
#define OFFLINE_AUTH_TEXT_MAX 1024
struct offline_auth {
	char spf[16];      /* MAIL FROM: "pass", "fail", ... */
	char spf_helo[16];
	char dkim[128];    /* each signature's result, comma-separated; "none" unsigned */
	char dmarc[16];
	char arc[16];
	char text[OFFLINE_AUTH_TEXT_MAX]; /* as Authentication-Results lists them,
					   * without the authserv-id: "spf=pass
					   * smtp.mailfrom=example.org; dkim=..." */
};

/* What one stage (or one recipient's rcpt stage) came to. */
struct offline_step {
	enum rule_stage stage;
	const char *rcpt;          /* the rcpt stage's recipient */
	struct rule_verdict v;
	char reply[RULE_TEXT_MAX + 32]; /* what the client would read; at postq and
					 * delivery the refusal's code, quarantine/<name>,
					 * or "" */
	int refused;               /* the command was refused */
	enum offline_after after;  /* postq, delivery: what it decided */
	char hold[RULE_HOLD_MAX];  /* preq and postq: the hold's reason when the
				    * message would go into hold/, else "" */
	const struct offline_route *routes; /* delivery: every recipient's route, */
	size_t nroutes;                     /* valid during the report call only */
	struct offline_auth auth; /* mail to preq: the results so far */
};

enum offline_outcome {
	OFFLINE_QUEUED,      /* the message would be queued */
	OFFLINE_QUARANTINED, /* it would be kept in quarantine/<name> */
	OFFLINE_DISCARDED,   /* accepted, but the rules removed every recipient */
	OFFLINE_REFUSED,     /* a 5xx ended it */
	OFFLINE_DEFERRED,    /* a 4xx ended it: the client would try again */
	OFFLINE_HELD,        /* accepted into hold/ (ctx:hold()), not delivered until released */
};

typedef void (*offline_report_fn)(void *arg, const struct offline_step *step);

/*
 * rules_offline_run - run tx through r, calling report after each stage.
 * Returns the outcome of the session; *final (when not NULL) gets its last
 * step. A bad address in tx gives OFFLINE_REFUSED with the parser's reply,
 * as a real session would. When the outcome is OFFLINE_QUEUED, postq and
 * delivery run too and are reported (their steps say in .after what became
 * of the message); the outcome stays what the client saw. A message held
 * on accept (OFFLINE_HELD) goes no further: a release skips the postq rules.
 */
enum offline_outcome rules_offline_run(struct rules *r, const struct offline_tx *tx,
				       offline_report_fn report, void *arg,
				       struct offline_step *final);

/* rules_offline_outcome_name - "queued", "quarantined", "held", ... */
const char *rules_offline_outcome_name(enum offline_outcome o);

/* rules_offline_after_name - "delivered", "quarantined", "held", "bounced", ... */
const char *rules_offline_after_name(enum offline_after a);

/*
 * rules_offline_route_format - a route as vsmtpctl shows it and test cases
 * name it: "default", "deliver", "forward [relay.example.net]:587",
 * "maildir", "mbox", "lmtp", "lmtp unix:/run/lmtp", "disabled".
 */
void rules_offline_route_format(enum rule_route kind, const char *target, char *buf,
				size_t len);

/*
 * rules_offline_route_find - the route of rcpt in a delivery step's list
 * (addresses compared as the rules compare them: the local part exactly,
 * the domain in any case), or NULL when rcpt is no recipient there.
 */
const struct offline_route *rules_offline_route_find(const struct offline_step *step,
						     const char *rcpt);

#endif
