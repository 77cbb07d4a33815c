/*
 * envelope.h - the envelope of a queued message: who sent it, to whom, how.
 *
 * The session builds it during the SMTP transaction; the spool stores it as
 * JSON after the message content (see docs/spool.md); the queue and, later,
 * the delivery worker read it back. Strings are owned by the envelope.
 */
#ifndef VSMTPD_ENVELOPE_H
#define VSMTPD_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_ID_MAX 32

struct envelope_rcpt {
	char *address;    /* "local@domain" (or "postmaster") */
	unsigned notify;  /* SMTP_NOTIFY_* bits, 0 when not given */
	char *orcpt_type; /* DSN ORCPT= address type, NULL when not given */
	char *orcpt;      /* DSN ORCPT= address, decoded */
};

struct envelope {
	char id[ENVELOPE_ID_MAX + 1];
	int64_t received_at;   /* Unix time of the final reply */
	char *listener;        /* the listener name */
	char *client_ip;
	unsigned client_port;
	char *helo;
	char *protocol;        /* "SMTP", "ESMTP", "UTF8SMTP" as in Received: */
	char *mail_from;       /* "" for the null reverse path */
	int body;              /* enum smtp_body */
	int smtputf8;
	int ret;               /* enum smtp_ret */
	char *envid;           /* DSN ENVID=, NULL when not given */
	char *auth;            /* MAIL AUTH=, NULL when not given, "<>" unless authenticated */
	char *authid;          /* the SMTP AUTH user, NULL when none */
	char *auth_mechanism;  /* the SASL mechanism it used */
	char *tls_version;     /* "TLSv1.3", NULL without TLS */
	char *tls_cipher;
	size_t nrcpts;
	struct envelope_rcpt *rcpts;
	char *quarantine;      /* the rules' quarantine queue name, NULL when none */
	char *hold;            /* ctx:hold()'s reason: committed into hold/; NULL when none */
	char *vars;            /* the rules' variables: a JSON object text, NULL when none */
	char *dmarc;           /* ctx:dmarc()'s report record: a JSON object text, NULL when none */
	int postq_done;        /* the postq rules already ran (a copy the worker rewrote) */
	int faccept;           /* a rule said faccept: the postq and delivery rules are skipped */
	char *relay;           /* send_mail()'s relay: every recipient goes there, NULL when none */
	char *delegated_from;  /* came back from a delegate rule's filter: the original's id */
	unsigned delegated_rule; /* that rule's index in its stage (from 1), 0 when none */
	int delegated_delivery; /* that rule is a delivery rule (else a postq one) */
	unsigned postq_start;  /* postq starts at this rule (from 1): a delegate rule; 0: at 1 */
	char *delegation_token; /* session to queue only: the token of a returned copy */
};

/* envelope_add_rcpt - append a recipient (copies the strings); 0 or -1. */
int envelope_add_rcpt(struct envelope *env, const char *address, unsigned notify,
		      const char *orcpt_type, const char *orcpt);

/*
 * envelope_copy_rcpts - make dst's sender and recipients copies of src's
 * (dst zeroed or cleared before); 0 or -1. With envelope_swap_rcpts, a
 * snapshot to go back to when a command that changed them is refused.
 */
int envelope_copy_rcpts(struct envelope *dst, const struct envelope *src);

/* envelope_swap_rcpts - exchange the senders and recipients of a and b. */
void envelope_swap_rcpts(struct envelope *a, struct envelope *b);

/* envelope_remove_rcpt - drop the recipient at index i, keeping the order. */
void envelope_remove_rcpt(struct envelope *env, size_t i);

/* envelope_set - replace *field with a copy of value (NULL clears); 0 or -1. */
int envelope_set(char **field, const char *value);

/*
 * envelope_init_local - make the zeroed env that of a message vsmtpd writes
 * itself (a notification, a rule's send_mail()): received now on listener
 * "local" from 127.0.0.1, helo host, ESMTP, from from ("" the null
 * sender), and past the postq rules (no policy applies to it). 0 or -1.
 */
int envelope_init_local(struct envelope *env, const char *host, const char *from);

/* envelope_to_json - serialize; returns a malloc'ed string or NULL. */
char *envelope_to_json(const struct envelope *env);

/*
 * envelope_from_json - parse what envelope_to_json wrote into a zeroed env.
 * Returns 0, or -1 when the text is not a valid envelope (then env holds
 * nothing that needs freeing beyond envelope_free).
 */
int envelope_from_json(struct envelope *env, const char *text, size_t len);

/* envelope_clear - free every string and recipient; env becomes zeroed. */
void envelope_clear(struct envelope *env);

#endif
