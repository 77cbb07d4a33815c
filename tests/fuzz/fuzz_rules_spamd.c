/*
 * fuzz_rules_spamd.c - the parsers of spamd's answers on arbitrary bytes:
 * the answer and, when it parses, the rule names of its body read both as
 * a SYMBOLS list and as a REPORT. They must never read out of bounds nor
 * loop; the body lies within the input; every name is within the body,
 * not empty and at most RULES_SPAMD_SYMBOL_MAX bytes; an error is a
 * NUL-terminated message.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_spamd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *name;
	struct rules_spamd_reply r;
	char err[256];
	size_t pos, n, count;
	int report;

	if (rules_spamd_parse(buf, size, &r, err, sizeof(err)) < 0) {
		if (strnlen(err, sizeof(err)) == sizeof(err) || err[0] == '\0')
			abort();
		return 0;
	}
	if (r.body < buf || r.body + r.body_len > buf + size || !isfinite(r.score) ||
	    !isfinite(r.threshold))
		abort();
	for (report = 0; report < 2; report++) {
		pos = 0;
		count = 0;
		while (rules_spamd_symbol(r.body, r.body_len, report, &pos, &name, &n)) {
			if (n == 0 || n > RULES_SPAMD_SYMBOL_MAX || name < r.body ||
			    name + n > r.body + r.body_len || pos > r.body_len || ++count > r.body_len)
				abort();
		}
	}
	return 0;
}
