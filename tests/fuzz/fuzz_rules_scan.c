/*
 * fuzz_rules_scan.c - the rules source scanner on arbitrary text: it must
 * never read out of bounds or loop, whatever comments, strings and
 * brackets it is given, and any error it reports names the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules_scan scan;
	char err[512];

	if (rules_scan_source("fuzz.lua", (const char *)data, size, &scan, err, sizeof(err)) < 0 &&
	    strncmp(err, "fuzz.lua:", 9) != 0)
		abort();
	return 0;
}
