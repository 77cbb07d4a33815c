/*
 * rules_dns_cache.h - the DNS answers of the rules kept for their TTL
 * (rules_dns_cache.c), within one process. Private to the rule engine:
 * rules_dns.c asks it before it asks a server; the fuzz target reaches the
 * TTL reader through it.
 */
#ifndef VSMTPD_RULES_DNS_CACHE_H
#define VSMTPD_RULES_DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "rules_dns.h" /* enum rules_dns_result */

#define RULES_DNS_CACHE_SIZE 512             /* entries */
#define RULES_DNS_CACHE_BYTES (1u << 20)     /* of answers, in all */
#define RULES_DNS_CACHE_TTL_MAX 3600         /* seconds */
#define RULES_DNS_NAME_MAX 253

struct rules_dns_cache;

/* What a cache did since it was made, for the tests and the logs. */
struct rules_dns_cache_stats {
	uint64_t hits, misses, stored;
};

/* rules_dns_cache_new - an empty cache, or NULL when out of memory. */
struct rules_dns_cache *rules_dns_cache_new(void);

/* rules_dns_cache_free - the cache and what it holds (NULL is fine). */
void rules_dns_cache_free(struct rules_dns_cache *c);

/*
 * rules_dns_cache_get - the kept outcome of name and type at now_ms (a
 * monotonic clock): 1 with *result and, for RULES_DNS_ANSWER, a malloc'ed
 * copy of the message in *answer (*len bytes, the caller frees it); 0 when
 * nothing live is kept (or c is NULL, or no memory for the copy).
 */
int rules_dns_cache_get(struct rules_dns_cache *c, const char *name, int type, uint64_t now_ms,
			enum rules_dns_result *result, unsigned char **answer, size_t *len);

/*
 * rules_dns_cache_put - keep what a server answered to name and type: msg
 * is the whole DNS message (also for NXDOMAIN and NODATA, whose SOA gives
 * the negative TTL). Nothing is kept for other results, a message whose
 * TTLs cannot be read, a TTL of 0, or a message over an eighth of
 * RULES_DNS_CACHE_BYTES.
 */
void rules_dns_cache_put(struct rules_dns_cache *c, const char *name, int type, uint64_t now_ms,
			 enum rules_dns_result result, const unsigned char *msg, size_t len);

/* rules_dns_cache_stats - the cache's counts (zeros for NULL). */
struct rules_dns_cache_stats rules_dns_cache_stats(const struct rules_dns_cache *c);

/*
 * dns_cache_ttl - how long the message m (len bytes) may be kept for
 * result: for RULES_DNS_ANSWER the smallest TTL of its answer section; for
 * NXDOMAIN and NODATA the smaller of the authority section's SOA TTL and
 * its MINIMUM. -1 when the message is malformed or has no such record.
 */
long dns_cache_ttl(const unsigned char *m, size_t len, enum rules_dns_result result);

#endif
