/*
 * rules_milter.h - ctx:milter(name): the conversation with a milter
 * (rules_milter.c) and what its answers do to the message, the envelope
 * and the rule's result (rules_milter_apply.c). Private to the rule engine.
 *
 * In a session, each milter has one connection per SMTP connection, kept
 * in rule_ctx.milter: each call moves its conversation on to the stage the
 * rules are at. rules_milter_tx_end() ends the transaction's part (ABORT
 * when the milter saw it start but not end) and rules_milter_release()
 * the connection's (QUIT). At postq and delivery a call has the whole
 * conversation at once, over its own connection.
 */
#ifndef VSMTPD_RULES_MILTER_H
#define VSMTPD_RULES_MILTER_H

#include <lauxlib.h>

#include "milter_proto.h"
#include "rules.h"

/* What a milter decided. */
enum milter_action {
	MILTER_CONTINUE,
	MILTER_ACCEPT,
	MILTER_REJECT,
	MILTER_TEMPFAIL,
	MILTER_DISCARD,
	MILTER_QUARANTINE,
};

#define MILTER_REASON_MAX 256

/* The outcome of a call, or of a milter done with the connection or the
 * transaction (later calls give it again). */
struct milter_outcome {
	enum milter_action action;
	int has_reply;            /* a custom reply (SMFIR_REPLYCODE) */
	struct rule_reply reply;
	char reason[MILTER_REASON_MAX]; /* MILTER_QUARANTINE: the milter's reason */
	unsigned changes;         /* modifications applied */
};

/* What one end of message may change: a milter that sends more fails. */
#define MILTER_CHANGES_MAX 10000
#define MILTER_CHANGE_BYTES_MAX (100u * 1024u * 1024u)

/* The changes of one end of message, gathered while the replies come in. */
struct milter_edits {
	struct milter_buf body;   /* REPLBODY pieces */
	int replace_body;
	size_t bytes;             /* of every change so far */
};

/* milter_action_name - "continue", "accept", ... */
const char *milter_action_name(enum milter_action a);

/*
 * milter_apply - apply one modification reply r to ctx's message and
 * envelope (the body is gathered in e, replaced by milter_apply_body);
 * actions the milter negotiated. 0, or -1 with why in err.
 */
int milter_apply(lua_State *L, struct rule_ctx *ctx, uint32_t actions, int leadspc,
		 const struct milter_reply *r, struct milter_edits *e, struct milter_outcome *o,
		 char *err, size_t errlen);

/* milter_apply_body - replace the body with what e gathered: 0 or -1 (err). */
int milter_apply_body(struct rule_ctx *ctx, struct milter_edits *e, struct milter_outcome *o,
		      char *err, size_t errlen);

/*
 * milter_push_status - push the status an outcome at stage means: next,
 * or reject / deny with the milter's custom reply or Postfix's default
 * one, or quarantine (discard: "discard"; quarantine: service).
 */
void milter_push_status(lua_State *L, const struct milter_outcome *o, enum rule_stage stage,
			const char *service);

/* The ctx method ctx:milter() (rules_ctx_open adds it). */
extern const luaL_Reg ctx_milter_methods[];

/* rules_milter_tx_end - the transaction is over: ABORT where it was under way. */
void rules_milter_tx_end(struct rule_ctx *ctx);

/* rules_milter_release - the connection is over: QUIT and close every milter. */
void rules_milter_release(struct rule_ctx *ctx);

#endif
