/*
 * fuzz_rules_dns_cache.c - the DNS cache's TTL reader on arbitrary
 * messages, as a server could send them: it must never read out of bounds,
 * and what it accepts is kept and given back byte for byte until the TTL
 * runs out, then no more.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_dns_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum rules_dns_result results[] = {RULES_DNS_ANSWER, RULES_DNS_NXDOMAIN,
							RULES_DNS_NODATA};
	struct rules_dns_cache *c = rules_dns_cache_new();
	enum rules_dns_result got;
	unsigned char *answer;
	size_t i, len;
	long ttl;

	if (c == NULL)
		return 0;
	for (i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
		ttl = dns_cache_ttl(data, size, results[i]);
		if (ttl < -1 || ttl > INT32_MAX)
			abort();
		rules_dns_cache_put(c, "fuzz.test", (int)i + 1, 1000, results[i], data, size);
		if (rules_dns_cache_get(c, "fuzz.test", (int)i + 1, 1000, &got, &answer, &len)) {
			if (ttl <= 0 || got != results[i] ||
			    (got == RULES_DNS_ANSWER && (len != size || memcmp(answer, data, size) != 0)))
				abort();
			free(answer);
			if (ttl > RULES_DNS_CACHE_TTL_MAX)
				ttl = RULES_DNS_CACHE_TTL_MAX;
			if (rules_dns_cache_get(c, "fuzz.test", (int)i + 1, 1000 + (uint64_t)ttl * 1000,
						&got, &answer, &len))
				abort();
		} else if (ttl > 0 && size <= RULES_DNS_CACHE_BYTES / 8) {
			abort();
		}
	}
	rules_dns_cache_free(c);
	return 0;
}
