/*
 * rules_rspamd.h - rspamd from the rules: ctx:rspamd(name [, opts])
 * (rules_rspamd.c) posts the message to rspamd's HTTP protocol with
 * libevent's HTTP client; rules_rspamd_reply.c turns rspamd's JSON reply
 * into struct rspamd_reply (pure, unit tested and fuzzed). Private to the
 * rule engine.
 */
#ifndef VSMTPD_RULES_RSPAMD_H
#define VSMTPD_RULES_RSPAMD_H

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>

/* What rspamd says to do with the message. */
enum rspamd_action {
	RSPAMD_NO_ACTION,
	RSPAMD_GREYLIST,
	RSPAMD_ADD_HEADER,
	RSPAMD_REWRITE_SUBJECT,
	RSPAMD_SOFT_REJECT,
	RSPAMD_REJECT,
};

/* One symbol that matched: its name, its score, its options. */
struct rspamd_symbol {
	char *name;
	double score;
	char **options;
	size_t noptions;
};

/* A header field rspamd asks to add (milter.add_headers). */
struct rspamd_header {
	char *name;
	char *value; /* unfolded: no CR or LF */
	long order;  /* rspamd's "order"; -1 when none was given */
};

/* A header field rspamd asks to remove (milter.remove_headers). */
struct rspamd_remove {
	char *name;
	long nth; /* 0: every such field; n > 0: the nth; n < 0: the nth from the end */
};

/* rspamd's reply. */
struct rspamd_reply {
	enum rspamd_action action;
	double score, required_score;
	struct rspamd_symbol *symbols; /* in the reply's order */
	size_t nsymbols;
	struct rspamd_header *add;
	size_t nadd;
	struct rspamd_remove *remove;
	size_t nremove;
	char *subject; /* the new Subject (unfolded), NULL when none */
};

/* rspamd_action_name - "no action", "greylist", ..., as rspamd spells them. */
const char *rspamd_action_name(enum rspamd_action action);

/*
 * rspamd_reply_parse - read rspamd's JSON reply (len bytes of json, no NUL
 * needed) into r (zeroed first). 0, or -1 with why in err: not JSON, no
 * action or score, an unknown action, a header name that is not printable
 * ASCII without ':', a value with a control character other than a tab or
 * a line break (line breaks are dropped: values come unfolded). r holds
 * nothing to free on -1.
 */
int rspamd_reply_parse(const char *json, size_t len, struct rspamd_reply *r, char *err,
		       size_t errlen);

/* rspamd_reply_free - free what r holds and zero it. */
void rspamd_reply_free(struct rspamd_reply *r);

/* The ctx method ctx:rspamd() (rules_ctx_open adds it). */
extern const luaL_Reg ctx_rspamd_methods[];

#endif
