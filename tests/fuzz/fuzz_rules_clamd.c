/*
 * fuzz_rules_clamd.c - the parser of clamd's answers on arbitrary bytes:
 * it must never read or write out of bounds, and what it puts in the virus
 * name (a name, or a description for the log) is NUL-terminated, fits,
 * and is printable ASCII; a virus name is never empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_clamd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char virus[RULES_CLAMD_VIRUS_MAX];
	enum rules_clamd_verdict v = rules_clamd_parse((const char *)data, size, virus);
	size_t i, n = strnlen(virus, sizeof(virus));

	if (n == sizeof(virus))
		abort();
	for (i = 0; i < n; i++)
		if (virus[i] < 0x20 || virus[i] > 0x7e)
			abort();
	if ((v == RULES_CLAMD_INFECTED || v == RULES_CLAMD_GARBAGE) && n == 0)
		abort();
	if (v == RULES_CLAMD_CLEAN && n != 0)
		abort();
	return 0;
}
