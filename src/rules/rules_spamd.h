/*
 * rules_spamd.h - ctx:spamd(name [, options]): the message checked by
 * SpamAssassin's spamd over the spamc protocol (rules_spamd.c), and the
 * parsers of spamd's answer, pure functions the unit tests and the fuzzer
 * call. Private to the rule engine.
 */
#ifndef VSMTPD_RULES_SPAMD_H
#define VSMTPD_RULES_SPAMD_H

#include <stddef.h>

#include <lauxlib.h>

#define RULES_SPAMD_SYMBOL_MAX 128 /* bytes of a rule name */

/* spamd's answer, parsed. */
struct rules_spamd_reply {
	int is_spam;
	double score, threshold;
	const char *body; /* into the answer: the symbols or the report */
	size_t body_len;
};

/*
 * rules_spamd_parse - read spamd's whole answer (len bytes at buf): the
 * status line "SPAMD/1.1 0 EX_OK", the headers (Spam: True ; 15.0 / 5.0,
 * Content-length: N) and the body. 0, or -1 with why in err (a status
 * other than 0, no Spam header, a malformed line).
 */
int rules_spamd_parse(const char *buf, size_t len, struct rules_spamd_reply *out, char *err,
                      size_t errlen);

/*
 * rules_spamd_symbol - the next rule name of a body from *pos on: for
 * SYMBOLS (report 0) the comma-separated names, for REPORT (report 1) the
 * name on each line of the report's table ("  1000 GTUBE  BODY: ...").
 * 1 with the name at *name (*namelen bytes, at most RULES_SPAMD_SYMBOL_MAX)
 * and *pos past it, 0 when there is none left.
 */
int rules_spamd_symbol(const char *body, size_t len, int report, size_t *pos, const char **name,
                       size_t *namelen);

/* The ctx method ctx:spamd(name [, options]) (rules_spamd.c). */
extern const luaL_Reg ctx_spamd_methods[];

#endif
