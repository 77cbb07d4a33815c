/*
 * fuzz_rules_auth_results.c - the authserv-id parser of
 * Authentication-Results fields on arbitrary values: it must never read
 * or write out of bounds nor loop, and an id it gives is NUL-terminated,
 * as long as it says, without NUL, and never empty; the same holds with a
 * buffer too small for most ids.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_auth_results.h"

/* check - one parse into outlen bytes, its promises checked. */
static void check(const uint8_t *data, size_t size, size_t outlen)
{
	char out[RULES_AR_ID_MAX];
	ssize_t n = rules_ar_authserv_id((const char *)data, size, out, outlen);

	if (n == -1)
		return;
	if (n <= 0 || (size_t)n >= outlen || out[n] != '\0' || strlen(out) != (size_t)n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, RULES_AR_ID_MAX);
	check(data, size, 8);
	return 0;
}
