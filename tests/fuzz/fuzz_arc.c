/*
 * fuzz_arc.c - the text work of ARC (rules_arc_canon.c) on arbitrary
 * bytes: tag lists, relaxed header and body canonicalization, the b=
 * emptying, base64, instances. Nothing may read out of bounds, and the
 * outputs keep their forms: a canonical field's value is one line ending
 * in CRLF (its name is the input's, lowercased),
 * a canonical body is empty or ends in exactly one CRLF after text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_arc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct arc_tags t;
	char err[100], *c, *s, *nl, *colon;
	unsigned char *b;
	size_t len, i;

	if (arc_tags_parse(in, size, &t, err, sizeof(err)) == 0) {
		for (i = 0; i < t.n; i++)
			if (strchr(t.tag[i].value, ';') != NULL || arc_tag(&t, t.tag[i].name) == NULL)
				abort();
		arc_tags_free(&t);
	} else if (err[0] == '\0') {
		abort();
	}
	if ((c = arc_canon_header(in, size, &len)) != NULL) {
		if (len < 3 || memcmp(c + len - 2, "\r\n", 2) != 0 ||
		    (colon = memchr(c, ':', len)) == NULL ||
		    ((nl = memchr(colon, '\n', len - (size_t)(colon - c))) != NULL &&
		     nl != c + len - 1))
			abort();
		arc_canon_strip_b(c, &len);
		free(c);
	}
	if ((c = arc_canon_body(in, size, &len)) == NULL)
		abort();
	if (len > 0 && (len < 3 || memcmp(c + len - 2, "\r\n", 2) != 0 ||
			(len >= 4 && memcmp(c + len - 4, "\r\n\r\n", 4) == 0)))
		abort();
	free(c);
	if ((s = strndup(in, size)) != NULL) {
		free(b = arc_base64_decode(s, &len));
		free(s);
	}
	i = (size_t)arc_instance_of(in, size, 0) + (size_t)arc_instance_of(in, size, 1);
	if (i > 2 * ARC_INSTANCES_MAX)
		abort();
	return 0;
}
