/*
 * fuzz_rules_spf_syntax.c - the SPF record grammar checker on arbitrary
 * records: it must never read past the record, and a refusal always comes
 * with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *rec = malloc(size + 1), why[128] = "";
	int rc;

	if (rec == NULL)
		return 0;
	memcpy(rec, data, size);
	rec[size] = 'x'; /* past the end: never read */
	rc = rules_spf_syntax_check(rec, size, why, sizeof(why));
	if (rc != 0 && (rc != -1 || why[0] == '\0'))
		abort();
	free(rec);
	return 0;
}
