/*
 * rules_arc.h - ARC (RFC 8617) for the rules: ctx:arc() verifies the chain
 * (rules_arc.c), ctx:arc_seal() adds a set (rules_arc_seal.c), both over
 * the tag lists and relaxed canonicalization of rules_arc_canon.c and
 * OpenSSL. vsmtpd's own code: Debian packages no maintained ARC library,
 * and OpenDKIM's library keeps its canonicalization internal. rsa-sha256
 * only, the one algorithm RFC 8617 defines. Private to the rule engine.
 */
#ifndef VSMTPD_RULES_ARC_H
#define VSMTPD_RULES_ARC_H

#include <stddef.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/evp.h>

struct rule_ctx;
struct message;

#define ARC_TAGS_MAX 32
#define ARC_INSTANCES_MAX 50 /* RFC 8617 4.2.1 */

/* One tag of a tag list: its name and value, both NUL-terminated. */
struct arc_tag {
	const char *name;
	const char *value; /* without the blanks around it; inner folding kept as blanks */
};

/* A parsed tag list (RFC 6376 3.2); the strings live in buf. */
struct arc_tags {
	size_t n;
	struct arc_tag tag[ARC_TAGS_MAX];
	char *buf;
};

/*
 * arc_tags_parse - the tag list in value (len bytes, a header field's value,
 * folded or not) into out: tag names of a letter then letters, digits or
 * '_', values of the characters RFC 6376 3.2 allows, no tag twice. 0, or
 * -1 with the reason in err (out then holds nothing to free).
 */
int arc_tags_parse(const char *value, size_t len, struct arc_tags *out, char *err, size_t errlen);

/* arc_tags_free - free what arc_tags_parse kept (a zeroed out is fine). */
void arc_tags_free(struct arc_tags *t);

/* arc_tag - the value of tag name, or NULL. */
const char *arc_tag(const struct arc_tags *t, const char *name);

/*
 * arc_canon_header - the relaxed canonical form (RFC 6376 3.4.2) of the raw
 * header field raw ("Name: value" with its folding and line end):
 * "name:value\r\n", malloc'ed, *outlen bytes. NULL when raw has no colon,
 * or out of memory.
 */
char *arc_canon_header(const char *raw, size_t len, size_t *outlen);

/*
 * arc_canon_strip_b - in the canonical field c (*len bytes), the value of
 * its b= tag emptied, and the final CRLF dropped: the form in which a
 * signature field is hashed into its own signature. -1 without a b= tag.
 */
int arc_canon_strip_b(char *c, size_t *len);

/*
 * arc_canon_body - the relaxed canonical form (RFC 6376 3.4.4) of a body,
 * a bare LF taken as a line end: malloc'ed, *outlen bytes ("" for a body of
 * only blank lines). NULL when out of memory.
 */
char *arc_canon_body(const char *body, size_t len, size_t *outlen);

/*
 * arc_base64_decode - the base64 text s (blanks anywhere ignored) into a
 * malloc'ed buffer of *outlen bytes; NULL when s is not base64.
 */
unsigned char *arc_base64_decode(const char *s, size_t *outlen);

/*
 * arc_instance_of - the instance of an ARC field from its value: the i=
 * tag that ARC-Authentication-Results starts with, or that ARC-Seal and
 * ARC-Message-Signature hold; 0 when there is none or it is not 1 to
 * ARC_INSTANCES_MAX written in decimal.
 */
int arc_instance_of(const char *value, size_t len, int is_aar);

/* What ctx:arc() found, kept with the transaction (rule_ctx.arc). */
struct arc_set_result {
	int instance;
	char domain[256], selector[256];
	const char *ams_result, *as_result; /* "pass", "fail", "temperror", "permerror", "" */
};

struct rules_arc_result {
	const char *result; /* "none", "pass", "fail", "temperror" */
	char reason[200];
	int instances;      /* N, the newest instance; 0 without ARC */
	int oldest_pass;    /* with "pass": 0 when every AMS verifies, else the oldest that
			     * does with all after it */
	int sealed_fail;    /* with "fail": the newest ARC-Seal says cv=fail */
	size_t n;
	struct arc_set_result set[];
};

/* rules_arc_kept - the transaction's ctx:arc() result, or NULL when
 * ctx:arc() has not run in it (for Authentication-Results). */
const struct rules_arc_result *rules_arc_kept(const struct rule_ctx *ctx);

/* rules_arc_check - ctx:arc()'s result for the message (computed at the
 * first call in the transaction, then kept); raises on failure. */
const struct rules_arc_result *rules_arc_check(lua_State *L, struct rule_ctx *ctx,
					       const struct message *msg);

/*
 * arc_hash_ams - into md (initialized for sha256 signing or verifying), the
 * header fields h (a colon-separated list of names) picks from msg, bottom
 * up, then the canonical AMS field ams with its b= emptied. -1 on failure.
 */
int arc_hash_ams(EVP_MD_CTX *md, int verify, const struct message *msg, const char *h,
		 const char *ams, size_t ams_len);

/*
 * arc_hash_seal - into md (initialized for sha256 signing), what a new
 * ARC-Seal signs: the fields of msg's sets 1..last (0: none), oldest first,
 * then the new set's raw fields ("Name: value") ARC-Authentication-Results,
 * ARC-Message-Signature and ARC-Seal (its b= emptied). -1 when a set up to
 * last is incomplete or out of memory.
 */
int arc_hash_seal(EVP_MD_CTX *md, const struct message *msg, int last,
		  const char *const raw[3], const size_t len[3]);

/* arc_body_hash - the base64 sha256 of msg's canonical body, its first limit
 * bytes (SIZE_MAX: all; the l= tag), into out (at least 48 bytes). 0, -1
 * when out of memory, -2 when the body is shorter than limit. */
int arc_body_hash(const struct message *msg, size_t limit, char *out, size_t outlen);

/* rules_arc_forget - free the transaction's ctx:arc() result. */
void rules_arc_forget(struct rule_ctx *ctx);

/* The ctx methods of ARC (rules_arc.c, rules_arc_seal.c). */
extern const luaL_Reg ctx_arc_methods[];
extern const luaL_Reg ctx_arc_seal_methods[];

#endif
