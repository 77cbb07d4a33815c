/*
 * delegation.h - the token of a delegate rule's round trip.
 *
 * A postq or delivery delegate rule sends the message to a content filter
 * over SMTP with a header field naming the queued original and the rule:
 *
 *   X-Vsmtpd-Delegation: 1.000660CD977706E6.p3.<32 hex digits>
 *
 * (version, queue id, the stage, p for postq or d for delivery, with the
 * rule's index in it, and the first 128 bits of an HMAC-SHA256 of the rest
 * under the spool's delegation key).
 * The filter sends it back to a listener of kind delegation; its session
 * checks the token's form and hands it to the queue with the message, and
 * the queue takes the message only when the MAC verifies: nobody without
 * the key, a session process included (it wipes the key it inherited),
 * can make vsmtpd take mail as "returned". The key is 32 random bytes the master reads
 * from (or writes once to) <spool>/delegation.key at start, before it
 * forks, so a restart between the send and the return changes nothing.
 */
#ifndef VSMTPD_DELEGATION_H
#define VSMTPD_DELEGATION_H

#include <stddef.h>

#include "spool.h"

#define DELEGATION_HEADER "X-Vsmtpd-Delegation"
#define DELEGATION_KEY_FILE "delegation.key"
#define DELEGATION_KEY_LEN 32
#define DELEGATION_RULE_MAX 100000 /* the largest rule index a token carries */
/* "1." id "." stage rule "." mac, NUL included */
#define DELEGATION_TOKEN_MAX (2 + SPOOL_ID_LEN + 1 + 1 + 6 + 1 + 32 + 1)
#define DELEGATION_POSTQ 'p'
#define DELEGATION_DELIVERY 'd'

/* What a token says. */
struct delegation_token {
	char id[SPOOL_ID_LEN + 1]; /* the original's queue id */
	char stage;                /* DELEGATION_POSTQ or DELEGATION_DELIVERY */
	unsigned rule;             /* the delegate rule's index in that stage, from 1 */
};

/*
 * delegation_key_load - read the spool's key, making it (mode 0600, synced)
 * when the file does not exist; the key stays in this process and those it
 * forks. 0, or -1 with the reason in err.
 */
int delegation_key_load(const char *spool_dir, char *err, size_t errlen);

/* delegation_key_set - use key (DELEGATION_KEY_LEN bytes): for tests and vsmtpctl. */
void delegation_key_set(const unsigned char key[DELEGATION_KEY_LEN]);

/* delegation_key_ready - 1 once a key was loaded or set. */
int delegation_key_ready(void);

/*
 * delegation_token_make - the token for t into buf (DELEGATION_TOKEN_MAX
 * bytes). 0, or -1 without a key or with an invalid id or rule.
 */
int delegation_token_make(const struct delegation_token *t, char *buf, size_t len);

/*
 * delegation_token_parse - read the field value text (len bytes; blanks
 * around it and folding are allowed) into *t, and its canonical form (the
 * token without blanks) into buf (DELEGATION_TOKEN_MAX bytes). 0 when it is
 * well-formed, -1 when not. The MAC is not checked: no key needed.
 */
int delegation_token_parse(const char *text, size_t len, struct delegation_token *t, char *buf);

/*
 * delegation_token_verify - delegation_token_parse, then the MAC under the
 * key. 0, or -1 with why ("malformed", "bad signature", "no key").
 */
int delegation_token_verify(const char *text, size_t len, struct delegation_token *t,
                            const char **why);

/* delegation_key_forget - wipe the key from this process (a session holds none). */
void delegation_key_forget(void);

#endif
