/*
 * fuzz_rules_zone.c - the DNS zone file parser on arbitrary text, and the
 * answers of what it accepts: it must never read or write out of bounds,
 * every error names the file and a line, and an answer to any query
 * of a name the input itself holds is a DNS message of the length told.
 */
#include <arpa/nameser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_zone.h"

/* fuzz_ask - query name with every type the zone knows, and one it does not. */
static void fuzz_ask(const struct rules_zone *z, const char *name)
{
	static const int types[] = {ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_txt, ns_t_ptr, ns_t_cname, 99};
	unsigned char *answer;
	size_t len, i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (rules_zone_query(z, name, types[i], &answer, &len) == RULES_DNS_ANSWER) {
			if (answer == NULL || len < 12 || answer[5] != 1)
				abort();
			answer[len - 1] ^= 1; /* the whole length is ours */
		} else if (answer != NULL) {
			abort();
		}
		free(answer);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct rules_zone *z;
	char err[512], name[300];
	size_t n;

	z = rules_zone_parse("fuzz.zone", text, size, err, sizeof(err));
	if (z == NULL) {
		if (strncmp(err, "fuzz.zone:", 10) != 0 || err[10] < '1' || err[10] > '9')
			abort();
		return 0;
	}
	/* the first word of the input, which a good zone holds as a name */
	for (n = 0; n < size && n < sizeof(name) - 1 && text[n] != ' ' && text[n] != '\t' &&
		    text[n] != '\n';
	     n++)
		name[n] = text[n];
	name[n] = '\0';
	fuzz_ask(z, name);
	fuzz_ask(z, "a.test");
	rules_zone_free(z);
	return 0;
}
