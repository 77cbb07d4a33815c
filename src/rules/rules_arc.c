/*
 * rules_arc.c - ctx:arc(): the ARC chain of the message (RFC 8617 5.2),
 * checked with OpenSSL over the canonicalization of rules_arc_canon.c, the
 * keys looked up through the rules' c-ares channel (rules_dns_query).
 *
 * The chain is checked in the RFC's order: every ARC field's instance is
 * read and the sets 1..N must each have exactly one
 * ARC-Authentication-Results, ARC-Message-Signature and ARC-Seal; the
 * newest seal must not say cv=fail, the first must say cv=none and every
 * later one cv=pass; the newest AMS must verify over the message and every
 * AS over the sets up to its own. The older AMSs are checked too, for each
 * set's result and the oldest instance from which all AMSs verify
 * (oldest_pass). Only rsa-sha256 and relaxed/relaxed are accepted.
 *
 * A key that cannot be looked up (a DNS timeout or failure) makes the
 * result "temperror", an addition to RFC 8617's none/pass/fail: the chain
 * could not be checked now, a rule can defer. A definite failure found
 * elsewhere in the chain wins over it. Keys are asked once per check.
 *
 * The result is computed at the first call of the transaction, on the
 * message as it is then, and kept as plain C data (rule_ctx.arc) until
 * rules_tx_end(); every call returns a fresh table made from it.
 */
#include <arpa/nameser.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "rules_arc.h"
#include "rules_dns.h"
#include "rules_internal.h"

#define ARC_KEYS_MAX 16
#define ARC_RSA_BITS_MIN 1024 /* RFC 8301 */

/* The three fields of a set, by their place in the header (-1: none). */
enum { ARC_AAR, ARC_AMS, ARC_AS, ARC_KINDS };
static const char *const arc_names[ARC_KINDS] = {
    "ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal"};

/* A key looked up during one check. */
struct arc_key {
	char name[512];
	EVP_PKEY *pkey;     /* NULL: status says why */
	const char *status; /* "temperror", "permerror" */
	const char *reason;
};

/* One check in progress. */
struct arc_check {
	lua_State *L;
	const struct message *msg;
	long field[ARC_INSTANCES_MAX + 1][ARC_KINDS];
	struct arc_tags ams[ARC_INSTANCES_MAX + 1], as[ARC_INSTANCES_MAX + 1];
	struct arc_key key[ARC_KEYS_MAX];
	size_t nkeys;
};

/* An outcome of one signature: a result and, but for "pass", a reason. */
struct arc_outcome {
	const char *result, *reason;
};

/* ---- keys ---------------------------------------------------------------- */

/* arc_txt_first_key - the first TXT record of answer that reads as a key
 * record, parsed into t; -1 when none does. */
static int arc_txt_key_record(const unsigned char *answer, size_t len, struct arc_tags *t)
{
	struct ares_txt_ext *txt = NULL;
	const struct ares_txt_ext *p, *next;
	char err[64], *rec;
	size_t n;
	int rc = -1;

	if (ares_parse_txt_reply_ext(answer, (int)len, &txt) != ARES_SUCCESS)
		return -1;
	for (p = txt; p != NULL && rc < 0; p = next) {
		if ((rec = rules_dns_txt_join(p, &next, &n)) == NULL)
			break;
		if (strlen(rec) == n && arc_tags_parse(rec, n, t, err, sizeof(err)) == 0) {
			if (arc_tag(t, "p") != NULL)
				rc = 0;
			else
				arc_tags_free(t);
		}
		free(rec);
	}
	ares_free_data(txt);
	return rc;
}

/* arc_list_has - whether the colon-separated list holds item (or "*" when
 * star). */
static int arc_list_has(const char *list, const char *item, int star)
{
	const char *p = list, *e;
	size_t n;

	while (*p != '\0') {
		while (*p == ' ' || *p == ':')
			p++;
		for (e = p; *e != '\0' && *e != ':' && *e != ' '; e++)
			;
		n = (size_t)(e - p);
		if ((star && n == 1 && *p == '*') || (n == strlen(item) && strncasecmp(p, item, n) == 0))
			return 1;
		p = e;
	}
	return 0;
}

/* arc_key_parse - the key of record t into k, or k's status and reason. */
static void arc_key_parse(struct arc_key *k, const struct arc_tags *t)
{
	const char *v = arc_tag(t, "v"), *kt = arc_tag(t, "k"), *h = arc_tag(t, "h"),
		   *s = arc_tag(t, "s"), *p = arc_tag(t, "p");
	const unsigned char *der;
	unsigned char *raw;
	size_t len;

	k->status = "permerror";
	if ((v != NULL && strcmp(v, "DKIM1") != 0) || (kt != NULL && strcmp(kt, "rsa") != 0) ||
	    (h != NULL && !arc_list_has(h, "sha256", 0)) || (s != NULL && !arc_list_has(s, "email", 1))) {
		k->reason = "key not usable for rsa-sha256 mail signatures";
		return;
	}
	if (p[0] == '\0') {
		k->reason = "key revoked";
		return;
	}
	if ((raw = arc_base64_decode(p, &len)) == NULL || len > INT32_MAX) {
		free(raw);
		k->reason = "malformed key";
		return;
	}
	der = raw;
	k->pkey = d2i_PUBKEY(NULL, &der, (long)len);
	if (k->pkey == NULL) {
		der = raw;
		k->pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &der, (long)len);
	}
	free(raw);
	if (k->pkey == NULL || EVP_PKEY_get_id(k->pkey) != EVP_PKEY_RSA) {
		k->reason = "malformed key";
	} else if (EVP_PKEY_get_bits(k->pkey) < ARC_RSA_BITS_MIN) {
		k->reason = "key too small";
	} else {
		k->status = NULL;
		return;
	}
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

/* arc_key_get - the key of selector s at domain d, looked up at most once
 * per check; NULL when out of memory or keys. */
static struct arc_key *arc_key_get(struct arc_check *c, const char *s, const char *d)
{
	char name[sizeof(c->key[0].name)];
	struct arc_key *k;
	struct arc_tags t;
	unsigned char *answer = NULL;
	size_t len = 0, i;
	enum rules_dns_result res;

	if ((size_t)snprintf(name, sizeof(name), "%s._domainkey.%s", s, d) >= sizeof(name) ||
	    strlen(name) > 253)
		name[0] = '\0';
	for (i = 0; i < c->nkeys; i++)
		if (strcasecmp(c->key[i].name, name) == 0)
			return &c->key[i];
	if (c->nkeys == ARC_KEYS_MAX)
		return NULL;
	k = &c->key[c->nkeys++];
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->status = "permerror";
	k->reason = "no key";
	if (name[0] == '\0' || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "0123456789-_.") != strlen(name))
		return k;
	res = rules_dns_query(c->L, name, ns_t_txt, 0, &answer, &len);
	if (res == RULES_DNS_TIMEOUT || res == RULES_DNS_FAIL || res == RULES_DNS_NOMEM) {
		k->status = "temperror";
		k->reason = res == RULES_DNS_TIMEOUT ? "key lookup timed out" : "key lookup failed";
	} else if (res == RULES_DNS_ANSWER) {
		if (arc_txt_key_record(answer, len, &t) == 0) {
			arc_key_parse(k, &t);
			arc_tags_free(&t);
		}
	}
	free(answer);
	return k;
}

/* ---- hashing ------------------------------------------------------------- */

/* arc_update - data into md, signing or verifying. */
static int arc_update(EVP_MD_CTX *md, int verify, const void *data, size_t len)
{
	return (verify ? EVP_DigestVerifyUpdate(md, data, len) : EVP_DigestSignUpdate(md, data, len)) ==
		       1
		   ? 0
		   : -1;
}

/* arc_hash_field - the canonical raw field into md (b= emptied and no line
 * end when strip_b). */
static int arc_hash_field(EVP_MD_CTX *md, int verify, const char *raw, size_t len, int strip_b)
{
	size_t clen;
	char *canon = arc_canon_header(raw, len, &clen);
	int rc = -1;

	if (canon != NULL && (!strip_b || arc_canon_strip_b(canon, &clen) == 0))
		rc = arc_update(md, verify, canon, clen);
	free(canon);
	return rc;
}

/* arc_hash_ams - see rules_arc.h. */
int arc_hash_ams(EVP_MD_CTX *md, int verify, const struct message *msg, const char *h,
		 const char *ams, size_t ams_len)
{
	size_t nf = message_field_count(msg), nlen, flen, k;
	unsigned char *used = calloc(nf + 1, 1);
	const char *p = h, *e, *name, *raw;
	int rc = 0;

	if (used == NULL)
		return -1;
	while (*p != '\0' && rc == 0) {
		while (*p == ' ' || *p == ':')
			p++;
		for (e = p; *e != '\0' && *e != ':'; e++)
			;
		nlen = (size_t)(e - p);
		while (nlen > 0 && p[nlen - 1] == ' ')
			nlen--;
		for (k = nf; nlen > 0 && k-- > 0;) {
			name = message_field_name(msg, k, &flen);
			if (used[k] || flen != nlen || strncasecmp(name, p, nlen) != 0)
				continue;
			used[k] = 1;
			raw = message_field_raw(msg, k, &flen);
			rc = arc_hash_field(md, verify, raw, flen, 0);
			break;
		}
		p = e;
	}
	free(used);
	return rc == 0 ? arc_hash_field(md, verify, ams, ams_len, 1) : -1;
}

/* arc_body_hash - see rules_arc.h. */
int arc_body_hash(const struct message *msg, size_t limit, char *out, size_t outlen)
{
	size_t len, clen;
	const char *body = message_body(msg, &len);
	char *canon = arc_canon_body(body, len, &clen);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int rc = -1;

	if (canon == NULL || outlen < 48)
		return -1;
	if (limit != SIZE_MAX && limit > clen)
		rc = -2;
	else if (EVP_Digest(canon, limit < clen ? limit : clen, md, &mdlen, EVP_sha256(), NULL) ==
		 1) {
		EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
		rc = 0;
	}
	free(canon);
	return rc;
}

/* ---- signatures -------------------------------------------------------- */

/* arc_raw - the raw bytes of the header's field number idx. */
static const char *arc_raw(const struct arc_check *c, long idx, size_t *len)
{
	return message_field_raw(c->msg, (size_t)idx, len);
}

/* arc_check_rsa - whether sig (base64) signs what fill hashes, by the key
 * of t's s= and d=. */
static struct arc_outcome arc_check_rsa(struct arc_check *c, const struct arc_tags *t,
					int (*fill)(struct arc_check *, EVP_MD_CTX *, int), int inst)
{
	const char *a = arc_tag(t, "a"), *b = arc_tag(t, "b");
	struct arc_key *k = arc_key_get(c, arc_tag(t, "s"), arc_tag(t, "d"));
	struct arc_outcome o = {"permerror", NULL};
	EVP_MD_CTX *md;
	unsigned char *sig;
	size_t siglen;

	if (strcmp(a, "rsa-sha256") != 0)
		return (struct arc_outcome){"permerror", "unsupported algorithm"};
	if (k == NULL)
		return (struct arc_outcome){"temperror", "too many keys"};
	if (k->pkey == NULL)
		return (struct arc_outcome){k->status, k->reason};
	if ((sig = arc_base64_decode(b, &siglen)) == NULL)
		return (struct arc_outcome){"permerror", "malformed signature"};
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
	    fill(c, md, inst) < 0)
		o = (struct arc_outcome){"temperror", "out of memory"};
	else if (EVP_DigestVerifyFinal(md, sig, siglen) == 1)
		o = (struct arc_outcome){"pass", NULL};
	else
		o = (struct arc_outcome){"fail", "signature did not verify"};
	EVP_MD_CTX_free(md);
	free(sig);
	return o;
}

/* arc_fill_ams - what the AMS of instance inst signs. */
static int arc_fill_ams(struct arc_check *c, EVP_MD_CTX *md, int inst)
{
	size_t len;
	const char *raw = arc_raw(c, c->field[inst][ARC_AMS], &len);

	return arc_hash_ams(md, 1, c->msg, arc_tag(&c->ams[inst], "h"), raw, len);
}

/* arc_hash_sets - the fields of the sets 1..last of c into md, in the
 * order an ARC-Seal signs them (the b= of last's AS emptied when strip). */
static int arc_hash_sets(struct arc_check *c, EVP_MD_CTX *md, int verify, int last, int strip)
{
	const char *raw;
	size_t len;
	int i, kind;

	for (i = 1; i <= last; i++)
		for (kind = 0; kind < ARC_KINDS; kind++) {
			raw = arc_raw(c, c->field[i][kind], &len);
			if (arc_hash_field(md, verify, raw, len, strip && i == last && kind == ARC_AS) <
			    0)
				return -1;
		}
	return 0;
}

/* arc_fill_as - what the AS of instance inst signs: the sets 1..inst. */
static int arc_fill_as(struct arc_check *c, EVP_MD_CTX *md, int inst)
{
	return arc_hash_sets(c, md, 1, inst, 1);
}

/* arc_check_ams - the AMS of instance inst: body hash, then signature. */
static struct arc_outcome arc_check_ams(struct arc_check *c, int inst)
{
	const struct arc_tags *t = &c->ams[inst];
	const char *cn = arc_tag(t, "c"), *l = arc_tag(t, "l");
	unsigned char *want, *got;
	size_t wlen, glen, limit = SIZE_MAX;
	char bh[64], *end;
	int rc;

	if (arc_list_has(arc_tag(t, "h"), "arc-seal", 0))
		return (struct arc_outcome){"permerror", "signs ARC-Seal"};
	if (cn != NULL && strcmp(cn, "relaxed/relaxed") != 0)
		return (struct arc_outcome){"permerror", "only relaxed/relaxed is supported"};
	if (l != NULL && ((limit = strtoull(l, &end, 10)), *end != '\0' || l[0] < '0' || l[0] > '9'))
		return (struct arc_outcome){"permerror", "malformed l="};
	if ((rc = arc_body_hash(c->msg, limit, bh, sizeof(bh))) == -1)
		return (struct arc_outcome){"temperror", "out of memory"};
	if (rc == -2)
		return (struct arc_outcome){"fail", "body shorter than l="};
	want = arc_base64_decode(arc_tag(t, "bh"), &wlen);
	got = arc_base64_decode(bh, &glen);
	rc = want != NULL && got != NULL && wlen == glen && memcmp(want, got, glen) == 0;
	free(want);
	free(got);
	if (!rc)
		return (struct arc_outcome){"fail", "body hash did not verify"};
	return arc_check_rsa(c, t, arc_fill_ams, inst);
}

/* ---- the chain ----------------------------------------------------------- */

/* arc_result_new - a result of n sets, "none" so far; NULL out of memory. */
static struct rules_arc_result *arc_result_new(int n)
{
	struct rules_arc_result *r =
	    calloc(1, sizeof(*r) + (size_t)n * sizeof(r->set[0]));
	int i;

	if (r == NULL)
		return NULL;
	r->result = "none";
	r->instances = n;
	r->n = (size_t)n;
	for (i = 0; i < n; i++) {
		r->set[i].instance = i + 1;
		r->set[i].ams_result = r->set[i].as_result = "";
	}
	return r;
}

/* arc_fail - r failed for the reason (printf-style); r. */
__attribute__((format(printf, 2, 3))) static struct rules_arc_result *
arc_fail(struct rules_arc_result *r, const char *fmt, ...)
{
	va_list ap;

	r->result = "fail";
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return r;
}

/* arc_collect - the ARC fields of the header into c->field; N, 0 without
 * any, or -1 (a field without a valid instance, a field twice) with the
 * reason in err. */
static int arc_collect(struct arc_check *c, char *err, size_t errlen)
{
	size_t nf = message_field_count(c->msg), i, nlen, rlen;
	const char *name, *raw, *colon;
	int kind, inst, n = 0;

	memset(c->field, 0xff, sizeof(c->field));
	for (i = 0; i < nf; i++) {
		name = message_field_name(c->msg, i, &nlen);
		for (kind = 0; kind < ARC_KINDS; kind++)
			if (strlen(arc_names[kind]) == nlen &&
			    strncasecmp(name, arc_names[kind], nlen) == 0)
				break;
		if (kind == ARC_KINDS)
			continue;
		raw = message_field_raw(c->msg, i, &rlen);
		colon = memchr(raw, ':', rlen);
		inst = arc_instance_of(colon + 1, rlen - (size_t)(colon + 1 - raw), kind == ARC_AAR);
		if (inst == 0) {
			snprintf(err, errlen, "an %s without a valid instance (i=1 to %d)",
				 arc_names[kind], ARC_INSTANCES_MAX);
			return -1;
		}
		if (c->field[inst][kind] >= 0) {
			snprintf(err, errlen, "two %s fields of instance %d", arc_names[kind], inst);
			return -1;
		}
		c->field[inst][kind] = (long)i;
		if (inst > n)
			n = inst;
	}
	return n;
}

/* arc_parse_sigs - the AMS and AS tag lists of every set, the sets'
 * domains and selectors into r; -1 after arc_fail. */
static int arc_parse_sigs(struct arc_check *c, struct rules_arc_result *r)
{
	static const char *const need_ams[] = {"a", "b", "bh", "d", "h", "s"};
	static const char *const need_as[] = {"a", "b", "cv", "d", "s"};
	const char *raw, *colon;
	char err[100];
	size_t len, k;
	int i;

	for (i = 1; i <= r->instances; i++) {
		raw = arc_raw(c, c->field[i][ARC_AMS], &len);
		colon = memchr(raw, ':', len);
		if (arc_tags_parse(colon + 1, len - (size_t)(colon + 1 - raw), &c->ams[i], err,
				   sizeof(err)) < 0)
			return arc_fail(r, "malformed ARC-Message-Signature %d: %s", i, err), -1;
		raw = arc_raw(c, c->field[i][ARC_AS], &len);
		colon = memchr(raw, ':', len);
		if (arc_tags_parse(colon + 1, len - (size_t)(colon + 1 - raw), &c->as[i], err,
				   sizeof(err)) < 0)
			return arc_fail(r, "malformed ARC-Seal %d: %s", i, err), -1;
		for (k = 0; k < sizeof(need_ams) / sizeof(need_ams[0]); k++)
			if (arc_tag(&c->ams[i], need_ams[k]) == NULL)
				return arc_fail(r, "ARC-Message-Signature %d lacks %s=", i, need_ams[k]), -1;
		for (k = 0; k < sizeof(need_as) / sizeof(need_as[0]); k++)
			if (arc_tag(&c->as[i], need_as[k]) == NULL)
				return arc_fail(r, "ARC-Seal %d lacks %s=", i, need_as[k]), -1;
		if (arc_tag(&c->as[i], "h") != NULL)
			return arc_fail(r, "ARC-Seal %d has an h= tag", i), -1;
		snprintf(r->set[i - 1].domain, sizeof(r->set[0].domain), "%s",
			 arc_tag(&c->as[i], "d"));
		snprintf(r->set[i - 1].selector, sizeof(r->set[0].selector), "%s",
			 arc_tag(&c->as[i], "s"));
	}
	return 0;
}

/* arc_structure - the sets complete and their cv= values consistent; -1
 * after arc_fail. */
static int arc_structure(struct arc_check *c, struct rules_arc_result *r)
{
	const char *cv;
	int i, kind;

	for (i = 1; i <= r->instances; i++)
		for (kind = 0; kind < ARC_KINDS; kind++)
			if (c->field[i][kind] < 0)
				return arc_fail(r, "ARC set %d has no %s", i, arc_names[kind]), -1;
	if (arc_parse_sigs(c, r) < 0)
		return -1;
	if (strcmp(arc_tag(&c->as[r->instances], "cv"), "fail") == 0) {
		r->sealed_fail = 1;
		return arc_fail(r, "ARC-Seal %d says the chain failed (cv=fail)", r->instances), -1;
	}
	for (i = 1; i <= r->instances; i++) {
		cv = arc_tag(&c->as[i], "cv");
		if (strcmp(cv, i == 1 ? "none" : "pass") != 0)
			return arc_fail(r, "ARC-Seal %d has cv=%s", i, cv), -1;
	}
	return 0;
}

/* arc_signatures - every AMS and AS checked; the chain's result. */
static void arc_signatures(struct arc_check *c, struct rules_arc_result *r)
{
	int n = r->instances, i, temp = 0;
	struct arc_outcome ams[ARC_INSTANCES_MAX + 1] = {{"none", ""}},
			   as[ARC_INSTANCES_MAX + 1] = {{"none", ""}};

	if (n < 1 || n > ARC_INSTANCES_MAX)
		return; /* the chain's structure was checked first: cannot happen */
	for (i = n; i >= 1; i--) {
		ams[i] = arc_check_ams(c, i);
		as[i] = arc_check_rsa(c, &c->as[i], arc_fill_as, i);
		r->set[i - 1].ams_result = ams[i].result;
		r->set[i - 1].as_result = as[i].result;
	}
	r->oldest_pass = 0;
	for (i = n; i >= 1; i--)
		if (strcmp(ams[i].result, "pass") != 0) {
			r->oldest_pass = i + 1;
			break;
		}
	if (strcmp(ams[n].result, "temperror") == 0)
		temp = n;
	else if (strcmp(ams[n].result, "pass") != 0) {
		arc_fail(r, "ARC-Message-Signature %d: %s", n, ams[n].reason);
		return;
	}
	for (i = n; i >= 1; i--) {
		if (strcmp(as[i].result, "temperror") == 0) {
			if (temp == 0)
				temp = -i;
		} else if (strcmp(as[i].result, "pass") != 0) {
			arc_fail(r, "ARC-Seal %d: %s", i, as[i].reason);
			return;
		}
	}
	if (temp != 0) {
		r->result = "temperror";
		snprintf(r->reason, sizeof(r->reason), "%s %d: %s",
			 temp > 0 ? "ARC-Message-Signature" : "ARC-Seal", temp > 0 ? temp : -temp,
			 temp > 0 ? ams[temp].reason : as[-temp].reason);
		return;
	}
	r->result = "pass";
}

/* arc_check_message - the chain of msg; NULL when out of memory. */
static struct rules_arc_result *arc_check_message(lua_State *L, const struct message *msg)
{
	struct arc_check *c = calloc(1, sizeof(*c));
	struct rules_arc_result *r = NULL;
	char err[160];
	size_t i;
	int n;

	if (c == NULL)
		return NULL;
	c->L = L;
	c->msg = msg;
	n = arc_collect(c, err, sizeof(err));
	if ((r = arc_result_new(n < 0 ? 0 : n)) != NULL) {
		if (n < 0)
			arc_fail(r, "%s", err);
		else if (n > 0 && arc_structure(c, r) == 0)
			arc_signatures(c, r);
	}
	for (i = 0; i <= ARC_INSTANCES_MAX; i++) {
		arc_tags_free(&c->ams[i]);
		arc_tags_free(&c->as[i]);
	}
	for (i = 0; i < c->nkeys; i++)
		EVP_PKEY_free(c->key[i].pkey);
	free(c);
	return r;
}

/* rules_arc_kept - see rules_arc.h. */
const struct rules_arc_result *rules_arc_kept(const struct rule_ctx *ctx)
{
	return ctx->arc;
}

/* arc_hash_seal - see rules_arc.h. */
int arc_hash_seal(EVP_MD_CTX *md, const struct message *msg, int last,
		  const char *const raw[3], const size_t len[3])
{
	struct arc_check *c = calloc(1, sizeof(*c));
	char err[160];
	int kind, rc = last == 0 ? 0 : -1, i;

	if (c == NULL)
		return -1;
	c->msg = msg;
	if (last > 0 && arc_collect(c, err, sizeof(err)) >= last) {
		for (rc = 0, i = 1; i <= last; i++)
			for (kind = 0; kind < ARC_KINDS; kind++)
				if (c->field[i][kind] < 0)
					rc = -1;
		if (rc == 0)
			rc = arc_hash_sets(c, md, 0, last, 0);
	}
	for (kind = 0; kind < ARC_KINDS && rc == 0; kind++)
		rc = arc_hash_field(md, 0, raw[kind], len[kind], kind == ARC_AS);
	free(c);
	return rc;
}

/* rules_arc_check - see rules_arc.h. */
const struct rules_arc_result *rules_arc_check(lua_State *L, struct rule_ctx *ctx,
					       const struct message *msg)
{
	if (ctx->arc == NULL && (ctx->arc = arc_check_message(L, msg)) == NULL)
		luaL_error(L, "arc: out of memory");
	return ctx->arc;
}

/* rules_arc_forget - see rules_arc.h. */
void rules_arc_forget(struct rule_ctx *ctx)
{
	free(ctx->arc);
	ctx->arc = NULL;
}

/* arc_push_string - t[key] = s unless s is empty. */
static void arc_push_string(lua_State *L, const char *key, const char *s)
{
	if (s[0] == '\0')
		return;
	lua_pushstring(L, s);
	lua_setfield(L, -2, key);
}

/* lua_ctx_arc - ctx:arc(): the chain's result, its sets oldest first. */
static int lua_ctx_arc(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	const struct rules_arc_result *r = rules_arc_check(L, ctx, ctx_need_msg(L, ctx, "arc"));
	size_t i;

	lua_createtable(L, 0, 5);
	arc_push_string(L, "result", r->result);
	arc_push_string(L, "reason", r->reason);
	lua_pushinteger(L, r->instances);
	lua_setfield(L, -2, "instances");
	if (strcmp(r->result, "pass") == 0) {
		lua_pushinteger(L, r->oldest_pass);
		lua_setfield(L, -2, "oldest_pass");
	}
	lua_createtable(L, (int)r->n, 0);
	for (i = 0; i < r->n; i++) {
		lua_createtable(L, 0, 5);
		lua_pushinteger(L, r->set[i].instance);
		lua_setfield(L, -2, "instance");
		arc_push_string(L, "domain", r->set[i].domain);
		arc_push_string(L, "selector", r->set[i].selector);
		arc_push_string(L, "ams_result", r->set[i].ams_result);
		arc_push_string(L, "as_result", r->set[i].as_result);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "sets");
	return 1;
}

/* The ctx method of ARC verification (rules_ctx_open adds it). */
const luaL_Reg ctx_arc_methods[] = {
    {"arc", lua_ctx_arc},
    {NULL, NULL},
};
