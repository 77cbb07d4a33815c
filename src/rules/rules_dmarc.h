/*
 * rules_dmarc.h - DMARC (RFC 7489) in the rules: ctx:dmarc() (rules_dmarc.c)
 * over OpenDMARC's library, with the public suffix list read when the rules
 * load and the _dmarc records fetched through the rules' c-ares channel.
 * Private to the rule engine.
 */
#ifndef VSMTPD_RULES_DMARC_H
#define VSMTPD_RULES_DMARC_H

#include <lauxlib.h>
#include <lua.h>

#include "rules.h"

#ifndef RULES_DMARC_PUBLIC_SUFFIX_LIST
#define RULES_DMARC_PUBLIC_SUFFIX_LIST "/usr/share/publicsuffix/public_suffix_list.dat"
#endif

/*
 * rules_dmarc_open - read the public suffix list into OpenDMARC's library,
 * for this process and those it forks (called where files can be read:
 * when the rules are loaded). A list that cannot be read is no load error:
 * ctx:dmarc() then raises naming the file.
 */
void rules_dmarc_open(void);

/* rules_dmarc_forget - free the transaction's ctx:dmarc() result. */
void rules_dmarc_forget(struct rule_ctx *ctx);

/* rules_dmarc_kept - the transaction's ctx:dmarc() result and its From
 * domain ("" when none), for Authentication-Results: 1, or 0 when
 * ctx:dmarc() has not run in this transaction. */
int rules_dmarc_kept(const struct rule_ctx *ctx, const char **result, const char **domain,
		     const char **reason);

/*
 * rules_dmarc_p_none - RFC 7489 §6.6.3 step 6: a record whose p= or sp= is
 * not valid but whose rua= names a mailto: address counts as p=none. The
 * record rewritten so: "v=DMARC1; p=none" and its tags but v=, p= and sp=
 * (malloc'ed), or NULL when it has no such rua= (then nothing of DMARC
 * applies) or memory ran out.
 */
char *rules_dmarc_p_none(const char *record);

/* The ctx method ctx:dmarc() (rules_ctx_open adds it). */
extern const luaL_Reg ctx_dmarc_methods[];

#endif
