/*
 * rules_arc_seal.c - ctx:arc_seal(name [, authres]): one ARC set (RFC 8617
 * 5.1) on top of the message, made with the RSA key of the [dkim:NAME]
 * section (rules_dkim_sign.c lends it; Ed25519 is not defined for ARC).
 *
 * The chain as ctx:arc() found it (rules_arc.c, checked now when no call
 * did it yet) decides the set: instance i = N + 1 and the seal's cv= —
 * none without ARC, pass for a passing chain, fail for a failing one, in
 * which case the seal signs only the new set (RFC 8617 5.1.2). The method
 * raises instead when the newest seal already says cv=fail (5.1 step 1:
 * such a chain is not sealed again), when there are 50 sets already
 * (4.2.1), when the ARC fields cannot be read at all (no instance to
 * follow), and when the chain's result is temperror (a key could not be
 * looked up: the rule may defer).
 *
 * The set is ARC-Authentication-Results (i=; the text given, else the
 * value ctx:add_authentication_results() would add, rules_auth_results.c),
 * ARC-Message-Signature (rsa-sha256, relaxed/relaxed, over the header
 * fields DKIM signing signs, rules_dkim.c's list, From once more than
 * present) and ARC-Seal, signed with OpenSSL over rules_arc.c's hashing of
 * the canonical fields. The three are computed before any goes on the
 * message, and added together: a failure leaves the message as it was.
 * Afterwards the kept ctx:arc() result is dropped, so that a later call
 * checks the chain with the new set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "rules_arc.h"
#include "rules_auth_results.h"
#include "rules_dkim.h"
#include "rules_internal.h"

/* The new set: each field's name and value (b= filled in once signed). */
struct arc_seal_set {
	int instance, last; /* last: the older sets the seal signs (0: none) */
	const char *cv, *domain, *selector;
	char *value[3]; /* ARC-Authentication-Results, -Message-Signature, -Seal */
};

static const char *const seal_names[3] = {"ARC-Authentication-Results",
					  "ARC-Message-Signature", "ARC-Seal"};

/* seal_append_b - value with the base64 of what md signed appended; -1
 * when signing fails or out of memory. */
static int seal_append_b(EVP_MD_CTX *md, char **value)
{
	size_t siglen = 0;
	unsigned char *sig = NULL, *b64 = NULL;
	char *out = NULL;
	int rc = -1;

	if (EVP_DigestSignFinal(md, NULL, &siglen) == 1 && (sig = malloc(siglen)) != NULL &&
	    EVP_DigestSignFinal(md, sig, &siglen) == 1 &&
	    (b64 = malloc(4 * ((siglen + 2) / 3) + 1)) != NULL) {
		EVP_EncodeBlock(b64, sig, (int)siglen);
		if (asprintf(&out, "%s%s", *value, b64) > 0) {
			free(*value);
			*value = out;
			rc = 0;
		}
	}
	free(sig);
	free(b64);
	return rc;
}

/* seal_raw - "Name: value" of field kind of s, malloc'ed; NULL out of memory. */
static char *seal_raw(const struct arc_seal_set *s, int kind)
{
	char *raw;

	return asprintf(&raw, "%s: %s", seal_names[kind], s->value[kind]) < 0 ? NULL : raw;
}

/* seal_sign - the AMS, then the AS of s signed with pkey over msg; NULL,
 * or what failed. */
static const char *seal_sign(struct arc_seal_set *s, EVP_PKEY *pkey, const struct message *msg,
			     const char *h)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char *raw[3] = {NULL, NULL, NULL};
	size_t len[3] = {0, 0, 0};
	const char *err = NULL;
	int kind;

	if (md == NULL || (raw[1] = seal_raw(s, 1)) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    arc_hash_ams(md, 0, msg, h, raw[1], strlen(raw[1])) < 0 ||
	    seal_append_b(md, &s->value[1]) < 0) {
		err = "the ARC-Message-Signature cannot be made";
		goto out;
	}
	free(raw[1]);
	raw[1] = NULL;
	for (kind = 0; kind < 3; kind++) {
		if ((raw[kind] = seal_raw(s, kind)) == NULL) {
			err = "out of memory";
			goto out;
		}
		len[kind] = strlen(raw[kind]);
	}
	if (EVP_MD_CTX_reset(md) != 1 || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    arc_hash_seal(md, msg, s->last, (const char *const *)raw, len) < 0 ||
	    seal_append_b(md, &s->value[2]) < 0)
		err = "the ARC-Seal cannot be made";
out:
	for (kind = 0; kind < 3; kind++)
		free(raw[kind]);
	EVP_MD_CTX_free(md);
	return err;
}

/* seal_make - the AMS and AS values of s, without b='s value yet, and
 * sign them; NULL, or what failed. */
static const char *seal_make(struct arc_seal_set *s, EVP_PKEY *pkey, const struct message *msg)
{
	char bh[64], *h = rules_dkim_h_list(msg);
	long long t = (long long)time(NULL);
	const char *err = NULL;

	if (h == NULL || arc_body_hash(msg, SIZE_MAX, bh, sizeof(bh)) < 0)
		err = "out of memory";
	else if (asprintf(&s->value[1], "i=%d; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=%s; "
					"t=%lld; h=%s; bh=%s; b=",
			  s->instance, s->domain, s->selector, t, h, bh) < 0)
		s->value[1] = NULL, err = "out of memory";
	else if (asprintf(&s->value[2], "i=%d; cv=%s; a=rsa-sha256; d=%s; s=%s; t=%lld; b=",
			  s->instance, s->cv, s->domain, s->selector, t) < 0)
		s->value[2] = NULL, err = "out of memory";
	else {
		err = seal_sign(s, pkey, msg, h);
	}
	free(h);
	return err;
}

/* seal_add - the three fields of s on top of msg, AS first; all or none. */
static int seal_add(struct arc_seal_set *s, struct message *msg)
{
	int kind;

	for (kind = 0; kind < 3; kind++)
		if (message_header_prepend(msg, seal_names[kind], s->value[kind]) < 0) {
			while (kind-- > 0)
				message_field_remove(msg, 0);
			return -1;
		}
	return 0;
}

/* seal_chain - the instance and cv= of the new set from ctx:arc()'s result;
 * raises when the chain may not be sealed now. */
static void seal_chain(lua_State *L, const char *name, const struct rules_arc_result *r,
		       struct arc_seal_set *s)
{
	if (strcmp(r->result, "temperror") == 0)
		luaL_error(L, "arc_seal(\"%s\"): the ARC chain could not be checked now (%s)", name,
			   r->reason);
	if (r->sealed_fail)
		luaL_error(L, "arc_seal(\"%s\"): %s; such a chain is not sealed again (RFC 8617 5.1)",
			   name, r->reason);
	if (strcmp(r->result, "fail") == 0 && r->instances == 0)
		luaL_error(L, "arc_seal(\"%s\"): the ARC fields cannot be read (%s)", name,
			   r->reason);
	if (r->instances >= ARC_INSTANCES_MAX)
		luaL_error(L, "arc_seal(\"%s\"): the message has %d ARC sets, the most RFC 8617 "
			      "allows",
			   name, ARC_INSTANCES_MAX);
	s->instance = r->instances + 1;
	s->cv = r->instances == 0 ? "none" : strcmp(r->result, "pass") == 0 ? "pass" : "fail";
	s->last = strcmp(s->cv, "pass") == 0 ? r->instances : 0;
}

/* lua_ctx_arc_seal - ctx:arc_seal(name [, authres]): seal with [dkim:name]. */
static int lua_ctx_arc_seal(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	const char *name = luaL_checkstring(L, 2), *authres = luaL_optstring(L, 3, NULL), *err;
	struct rules *r = rules_from_state(L);
	struct arc_seal_set s = {0};
	struct message *msg;
	EVP_PKEY *pkey;
	int kind, rc, id;

	if (ud->stage != RULE_STAGE_PREQ && ud->stage != RULE_STAGE_DELIVERY)
		return luaL_error(L, "ctx:arc_seal() works at the preq and delivery stages only, "
				     "not at %s",
				  rules_stage_name(ud->stage));
	msg = ctx_need_msg(L, ctx, "arc_seal");
	if ((pkey = rules_dkim_key(r->dkim_keys, name, &s.domain, &s.selector)) == NULL)
		return luaL_error(L, "arc_seal: no key \"%s\" (a [dkim:%s] section of the "
				     "configuration)",
				  name, name);
	id = EVP_PKEY_get_id(pkey);
	EVP_PKEY_free(pkey);
	if (id != EVP_PKEY_RSA)
		return luaL_error(L, "arc_seal(\"%s\"): the key is not RSA; ARC seals with "
				     "rsa-sha256 only (RFC 8617 defines no other algorithm)",
				  name);
	if (authres != NULL && authres[strspn(authres, " \t")] == '\0')
		return luaL_argerror(L, 3, "the authentication results may not be empty");
	seal_chain(L, name, rules_arc_check(L, ctx, msg), &s);
	if (authres == NULL)
		authres = rules_ar_push_value(L, ctx, r->hostname);
	if (asprintf(&s.value[0], "i=%d; %s", s.instance, authres) < 0) {
		s.value[0] = NULL;
		return luaL_error(L, "arc_seal(\"%s\"): out of memory", name);
	}
	if ((pkey = rules_dkim_key(r->dkim_keys, name, &s.domain, &s.selector)) == NULL)
		err = "out of memory";
	else
		err = seal_make(&s, pkey, msg);
	EVP_PKEY_free(pkey);
	rc = err == NULL ? seal_add(&s, msg) : -1;
	for (kind = 0; kind < 3; kind++)
		free(s.value[kind]);
	if (err != NULL)
		return luaL_error(L, "arc_seal(\"%s\"): %s", name, err);
	if (rc < 0)
		return luaL_error(L, "arc_seal(\"%s\"): the ARC set cannot be added to the message "
				     "(an authentication results text that is no header value?)",
				  name);
	rules_arc_forget(ctx);
	lua_pushboolean(L, 1);
	return 1;
}

/* The ctx method of ARC sealing (rules_ctx_open adds it). */
const luaL_Reg ctx_arc_seal_methods[] = {
    {"arc_seal", lua_ctx_arc_seal},
    {NULL, NULL},
};
