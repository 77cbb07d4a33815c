/*
 * rules_dkim.h - DKIM in the rules (rules_dkim.c, rules_dkim_sign.c): the
 * OpenDKIM library handle of a ruleset, with every resolver hook going
 * through the rules' c-ares channel, and the results of ctx:dkim() kept
 * with the transaction.
 */
#ifndef VSMTPD_RULES_DKIM_H
#define VSMTPD_RULES_DKIM_H

#include <stddef.h>

struct rule_ctx;

/*
 * rules_dkim_open - a library handle for one ruleset, made where files can
 * still be read (the library's initialization reads the system resolver's
 * configuration, which is then never used). NULL with the reason in err.
 */
void *rules_dkim_open(char *err, size_t errlen);

/* rules_dkim_close - free a handle from rules_dkim_open (NULL is fine). */
void rules_dkim_close(void *lib);

/* rules_dkim_forget - free the transaction's ctx:dkim() results. */
void rules_dkim_forget(struct rule_ctx *ctx);

#endif
