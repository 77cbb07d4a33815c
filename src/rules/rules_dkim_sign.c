/*
 * rules_dkim_sign.c - DKIM signing keys of a ruleset and ctx:dkim_sign().
 *
 * The keys are the [dkim:NAME] sections of the configuration. Their files
 * are read when the rules are loaded, in the master, as the TLS keys are:
 * a session process has no path to them, only the copy in memory it
 * inherits. Each key is checked then with OpenSSL (an RSA key of at least
 * 2048 bits, RFC 8301, or an Ed25519 key, RFC 8463); a file that cannot
 * be read or holds anything else stops the load with a message naming the
 * file. The PEM text is kept (OpenDKIM's dkim_sign() takes it as it is)
 * and wiped when the ruleset is freed.
 *
 * ctx:dkim_sign(name) signs the message as it is at that moment with
 * relaxed/relaxed canonicalization, over the header fields RFC 6376 5.4
 * recommends (the list is the library's option, set in rules_dkim.c, From
 * signed once more than present so that none can be added), and puts the
 * DKIM-Signature field on top of the message. The field is asked of the
 * library unwrapped and folded by the message library: with relaxed
 * header canonicalization the folding is not part of what is signed.
 * Ed25519 signatures are made here instead (dkim_sign_ed25519), with the
 * canonicalization and hashing the ARC code has: OpenDKIM 2.11's
 * dkim_free() leaves every Ed25519 key state it loaded allocated, about
 * 1.2 KB a signature, which a long-lived process cannot afford.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <opendkim/dkim.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "config.h"
#include "rules_arc.h"
#include "rules_dkim.h"
#include "rules_internal.h"

#define DKIM_KEY_FILE_MAX (64u << 10)
#define DKIM_RSA_BITS_MIN 2048

/* One signing key. */
struct dkim_key {
	char *name, *domain, *selector;
	char *pem; /* NUL-terminated */
	size_t pem_len;
	dkim_alg_t alg;
};

/* The keys of a ruleset. */
struct rules_dkim_keys {
	size_t n;
	struct dkim_key key[];
};

/* dkim_read_pem - the file at path, NUL-terminated; NULL with err. */
static char *dkim_read_pem(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	size_t n;

	if (fp == NULL) {
		snprintf(err, errlen, "%s: cannot read the DKIM key: %m", path);
		return NULL;
	}
	if ((buf = malloc(DKIM_KEY_FILE_MAX + 1)) == NULL) {
		fclose(fp);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	n = fread(buf, 1, DKIM_KEY_FILE_MAX + 1, fp);
	fclose(fp);
	if (n == 0 || n > DKIM_KEY_FILE_MAX) {
		OPENSSL_cleanse(buf, n > DKIM_KEY_FILE_MAX ? DKIM_KEY_FILE_MAX : n);
		free(buf);
		snprintf(err, errlen, "%s: %s", path,
			 n == 0 ? "the DKIM key file is empty" : "too big for a DKIM key");
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* dkim_key_alg - the signing algorithm of the PEM key, after checking it;
 * DKIM_SIGN_UNKNOWN with err. */
static dkim_alg_t dkim_key_alg(const char *path, const char *pem, size_t len, char *err,
			       size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	dkim_alg_t alg = DKIM_SIGN_UNKNOWN;

	BIO_free(bio);
	if (pkey == NULL)
		snprintf(err, errlen, "%s: not a PEM private key (an RSA or Ed25519 key, unencrypted)",
			 path);
	else if (EVP_PKEY_get_id(pkey) == EVP_PKEY_ED25519)
		alg = DKIM_SIGN_ED25519SHA256;
	else if (EVP_PKEY_get_id(pkey) != EVP_PKEY_RSA)
		snprintf(err, errlen, "%s: a DKIM key is RSA or Ed25519, not %s", path,
			 OBJ_nid2sn(EVP_PKEY_get_id(pkey)));
	else if (EVP_PKEY_get_bits(pkey) < DKIM_RSA_BITS_MIN)
		snprintf(err, errlen, "%s: an RSA key of %d bits; DKIM needs %d or more (RFC 8301)",
			 path, EVP_PKEY_get_bits(pkey), DKIM_RSA_BITS_MIN);
	else
		alg = DKIM_SIGN_RSASHA256;
	EVP_PKEY_free(pkey);
	return alg;
}

/* rules_dkim_keys_free - see rules_dkim.h. */
void rules_dkim_keys_free(struct rules_dkim_keys *keys)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < keys->n; i++) {
		free(keys->key[i].name);
		free(keys->key[i].domain);
		free(keys->key[i].selector);
		if (keys->key[i].pem != NULL)
			OPENSSL_cleanse(keys->key[i].pem, keys->key[i].pem_len);
		free(keys->key[i].pem);
	}
	free(keys);
}

/* rules_dkim_keys_load - see rules_dkim.h. */
int rules_dkim_keys_load(const struct dkim_config *conf, size_t n, struct rules_dkim_keys **out,
			 char *err, size_t errlen)
{
	struct rules_dkim_keys *keys = calloc(1, sizeof(*keys) + n * sizeof(keys->key[0]));
	struct dkim_key *k;
	size_t i;

	*out = NULL;
	if (keys == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		k = &keys->key[i];
		keys->n = i + 1;
		if ((k->pem = dkim_read_pem(conf[i].key.path, &k->pem_len, err, errlen)) == NULL ||
		    (k->alg = dkim_key_alg(conf[i].key.path, k->pem, k->pem_len, err, errlen)) ==
			DKIM_SIGN_UNKNOWN) {
			rules_dkim_keys_free(keys);
			return -1;
		}
		k->name = strdup(conf[i].name);
		k->domain = strdup(conf[i].domain);
		k->selector = strdup(conf[i].selector);
		if (k->name == NULL || k->domain == NULL || k->selector == NULL) {
			snprintf(err, errlen, "out of memory");
			rules_dkim_keys_free(keys);
			return -1;
		}
	}
	*out = keys;
	return 0;
}

/* dkim_key_pkey - k's private key, parsed; NULL when it cannot be. */
static EVP_PKEY *dkim_key_pkey(const struct dkim_key *k)
{
	BIO *bio = BIO_new_mem_buf(k->pem, (int)k->pem_len);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return pkey;
}

/* dkim_find_key - the key called name, or NULL. */
static const struct dkim_key *dkim_find_key(const struct rules_dkim_keys *keys, const char *name)
{
	size_t i;

	for (i = 0; keys != NULL && i < keys->n; i++)
		if (strcmp(keys->key[i].name, name) == 0)
			return &keys->key[i];
	return NULL;
}

/* rules_dkim_key - see rules_dkim.h. */
EVP_PKEY *rules_dkim_key(const struct rules_dkim_keys *keys, const char *name,
			 const char **domain, const char **selector)
{
	const struct dkim_key *k = dkim_find_key(keys, name);

	if (k == NULL)
		return NULL;
	*domain = k->domain;
	*selector = k->selector;
	return dkim_key_pkey(k);
}

/* rules_dkim_h_list - see rules_dkim.h: the h= list: the names of rules_dkim_sign_headers present
 * in msg, once per field, "from" once more; malloc'ed, NULL when out of
 * memory. */
char *rules_dkim_h_list(const struct message *msg)
{
	size_t i, cap = 64, used = 0, n, k;
	const char *name;
	char *out = malloc(cap), *grown;

	for (i = 0; out != NULL && rules_dkim_sign_headers[i] != NULL; i++) {
		name = rules_dkim_sign_headers[i];
		n = message_header_count(msg, name) + (strcmp(name, "from") == 0);
		for (k = 0; k < n; k++) {
			if (used + strlen(name) + 2 > cap) {
				cap = 2 * cap + strlen(name);
				if ((grown = realloc(out, cap)) == NULL) {
					free(out);
					return NULL;
				}
				out = grown;
			}
			used += (size_t)sprintf(out + used, "%s%s", used ? ":" : "", name);
		}
	}
	if (out != NULL)
		out[used] = '\0';
	return out;
}


/*
 * dkim_sign_ed25519 - the DKIM-Signature value for msg signed with the
 * Ed25519 key k (RFC 8463: Ed25519 over the SHA-256 hash RFC 6376 defines),
 * made here rather than by OpenDKIM's library, whose 2.11 keeps every
 * Ed25519 key state it loads: the relaxed canonicalization and hashing
 * are the ARC code's (rules_arc_canon.c, rules_arc.c), which signs the
 * same way. NULL with err.
 */
static char *dkim_sign_ed25519(const struct dkim_key *k, const struct message *msg, char *err,
			       size_t errlen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new(), *sctx = EVP_MD_CTX_new();
	EVP_PKEY *pkey = dkim_key_pkey(k);
	unsigned char digest[EVP_MAX_MD_SIZE], sig[EVP_MAX_MD_SIZE * 2], b64[EVP_MAX_MD_SIZE * 4];
	char bh[64], *h = rules_dkim_h_list(msg), *value = NULL, *raw = NULL, *signed_value = NULL;
	unsigned dlen = 0;
	size_t siglen = sizeof(sig);

	if (md == NULL || sctx == NULL || pkey == NULL || h == NULL ||
	    arc_body_hash(msg, SIZE_MAX, bh, sizeof(bh)) < 0 ||
	    asprintf(&value, "v=1; a=ed25519-sha256; c=relaxed/relaxed; d=%s; s=%s; t=%lld; "
			     "h=%s; bh=%s; b=",
		     k->domain, k->selector, (long long)time(NULL), h, bh) < 0 ||
	    asprintf(&raw, "%s: %s", DKIM_SIGNHEADER, value) < 0) {
		snprintf(err, errlen, "out of memory");
		raw = NULL;
	} else if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
		   arc_hash_ams(md, 1, msg, h, raw, strlen(raw)) < 0 ||
		   EVP_DigestFinal_ex(md, digest, &dlen) != 1 ||
		   EVP_DigestSignInit(sctx, NULL, NULL, NULL, pkey) != 1 ||
		   EVP_DigestSign(sctx, sig, &siglen, digest, dlen) != 1) {
		snprintf(err, errlen, "the Ed25519 signature cannot be made");
	} else {
		EVP_EncodeBlock(b64, sig, (int)siglen);
		if (asprintf(&signed_value, "%s%s", value, b64) < 0) {
			snprintf(err, errlen, "out of memory");
			signed_value = NULL;
		}
	}
	free(raw);
	free(value);
	free(h);
	EVP_PKEY_free(pkey);
	EVP_MD_CTX_free(md);
	EVP_MD_CTX_free(sctx);
	return signed_value;
}

/* dkim_sign_message - the DKIM-Signature value for msg signed with k, in
 * a malloc'ed string; NULL with err. */
static char *dkim_sign_message(DKIM_LIB *lib, const struct dkim_key *k,
			       const struct message *msg, char *err, size_t errlen)
{
	DKIM_STAT st;
	DKIM *d;
	unsigned char *hdr = NULL;
	size_t len = 0;
	char *value = NULL;

	if (k->alg == DKIM_SIGN_ED25519SHA256)
		return dkim_sign_ed25519(k, msg, err, errlen);
	d = dkim_sign(lib, (const unsigned char *)"rules", NULL, (dkim_sigkey_t)k->pem,
			    (const unsigned char *)k->selector, (const unsigned char *)k->domain,
			    DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, k->alg, -1, &st);

	if (d == NULL) {
		snprintf(err, errlen, "%s", dkim_getresultstr(st));
		return NULL;
	}
	st = dkim_set_margin(d, 0);
	if (st == DKIM_STAT_OK)
		st = rules_dkim_feed(d, msg);
	if (st == DKIM_STAT_OK)
		st = dkim_getsighdr_d(d, strlen(DKIM_SIGNHEADER) + 2, &hdr, &len);
	if (st != DKIM_STAT_OK)
		snprintf(err, errlen, "%s", dkim_geterror(d) ? dkim_geterror(d)
							       : dkim_getresultstr(st));
	else if ((value = strndup((const char *)hdr, len)) == NULL)
		snprintf(err, errlen, "out of memory");
	dkim_free(d);
	return value;
}

/* lua_ctx_dkim_sign - ctx:dkim_sign(name): sign with the key [dkim:name]. */
static int lua_ctx_dkim_sign(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct message *msg = ctx_need_msg(L, ctx, "dkim_sign");
	const char *name = luaL_checkstring(L, 2);
	struct rules *r = rules_from_state(L);
	const struct dkim_key *k = dkim_find_key(r->dkim_keys, name);
	char err[256] = "", *value;
	int rc;

	if (k == NULL)
		return luaL_error(L, "dkim_sign: no key \"%s\" (a [dkim:%s] section of the "
				     "configuration)",
				  name, name);
	if ((value = dkim_sign_message(r->dkim, k, msg, err, sizeof(err))) == NULL)
		return luaL_error(L, "dkim_sign(\"%s\"): %s", name, err);
	rc = message_header_prepend(msg, DKIM_SIGNHEADER, value);
	free(value);
	if (rc < 0)
		return luaL_error(L, "dkim_sign(\"%s\"): the signature cannot be added", name);
	lua_pushboolean(L, 1);
	return 1;
}

/* The ctx method of DKIM signing (rules_ctx_open adds it). */
const luaL_Reg ctx_dkim_sign_methods[] = {
    {"dkim_sign", lua_ctx_dkim_sign},
    {NULL, NULL},
};
