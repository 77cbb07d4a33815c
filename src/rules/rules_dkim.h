/*
 * rules_dkim.h - DKIM in the rules (rules_dkim.c, rules_dkim_sign.c): the
 * OpenDKIM library handle of a ruleset, with every resolver hook going
 * through the rules' c-ares channel, and the results of ctx:dkim() kept
 * with the transaction.
 */
#ifndef VSMTPD_RULES_DKIM_H
#define VSMTPD_RULES_DKIM_H

#include <stddef.h>

#include <opendkim/dkim.h>
#include <openssl/evp.h>

struct rule_ctx;
struct lua_State;
struct message;
struct dkim_config;
struct rules_dkim_keys;

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

/* One signature's kept result, read by Authentication-Results
 * (rules_auth_results.c). Strings are "" when the signature lacks them. */
struct rules_dkim_view {
	const char *result, *reason, *domain, *selector, *algorithm;
	const char *b; /* the first RULES_DKIM_B_PREFIX characters of b= */
};

/* The characters of b= kept (RFC 6008 section 4: at least 8). */
#define RULES_DKIM_B_PREFIX 8

/* rules_dkim_kept - how many signatures ctx:dkim() found in this
 * transaction, or -1 when it has not run. */
long rules_dkim_kept(const struct rule_ctx *ctx);

/* rules_dkim_view - the result of signature i (< rules_dkim_kept()) into *out. */
void rules_dkim_view(const struct rule_ctx *ctx, size_t i, struct rules_dkim_view *out);

/*
 * rules_dkim_verified - the number of DKIM signatures of the transaction's
 * message, verified now when ctx:dkim() has not done it yet (the results
 * are kept as ctx:dkim() keeps them). Raises like ctx:dkim().
 */
size_t rules_dkim_verified(struct lua_State *L, struct rule_ctx *ctx);

/* rules_dkim_signature - the d= domain and the result ("pass", ...) of
 * the i-th verified signature (i below rules_dkim_verified()'s count). */
void rules_dkim_signature(const struct rule_ctx *ctx, size_t i, const char **domain,
			  const char **result);

/*
 * rules_dkim_feed - the header fields and body of msg into a signing or
 * verifying handle, then the end of the message: dkim_eom()'s status, or
 * the first failure (DKIM_STAT_NOSIG when a message to verify has no
 * signature).
 */
DKIM_STAT rules_dkim_feed(DKIM *d, const struct message *msg);

/*
 * rules_dkim_keys_load - read and check the n keys of conf (the
 * [dkim:NAME] sections) into *out (NULL when n is 0 too, then freed with
 * rules_dkim_keys_free). 0, or -1 with "path: reason" in err.
 */
int rules_dkim_keys_load(const struct dkim_config *conf, size_t n, struct rules_dkim_keys **out,
			 char *err, size_t errlen);

/*
 * rules_dkim_key - the private key of the [dkim:name] section (for
 * EVP_PKEY_free), its d= domain and s= selector; NULL when keys has no key
 * of that name, or out of memory. For ctx:arc_seal() (rules_arc_seal.c).
 */
EVP_PKEY *rules_dkim_key(const struct rules_dkim_keys *keys, const char *name,
			 const char **domain, const char **selector);

/* The header fields ctx:dkim_sign() and ctx:arc_seal() sign when present
 * (RFC 6376 5.4), NULL-terminated; From is signed once more than present. */
extern const char *rules_dkim_sign_headers[];

/* rules_dkim_h_list - the h= list of a signature of msg: the names of
 * rules_dkim_sign_headers present in msg, once per field, "from" once
 * more; malloc'ed, NULL when out of memory. */
char *rules_dkim_h_list(const struct message *msg);

/* rules_dkim_keys_free - wipe and free keys (NULL is fine). */
void rules_dkim_keys_free(struct rules_dkim_keys *keys);

#endif
