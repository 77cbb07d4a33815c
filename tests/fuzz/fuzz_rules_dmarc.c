/*
 * fuzz_rules_dmarc.c - the rewriting of a DMARC record with a bad policy
 * into p=none (rules_dmarc_p_none) on arbitrary records: it must never
 * read or write out of bounds, and what it gives starts with
 * "v=DMARC1; p=none" and names a mailto: rua=.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rules_dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *rec = malloc(size + 1), *out;

	if (rec == NULL)
		return 0;
	memcpy(rec, data, size);
	rec[size] = '\0';
	out = rules_dmarc_p_none(rec);
	if (out != NULL && (strncmp(out, "v=DMARC1; p=none", 16) != 0 || strchr(out, '@') == NULL))
		abort();
	free(out);
	free(rec);
	return 0;
}
