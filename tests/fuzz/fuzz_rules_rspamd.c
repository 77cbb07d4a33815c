/*
 * fuzz_rules_rspamd.c - rspamd's reply reader on arbitrary bytes: it must
 * never read or write out of bounds or leak, an error always says why, and
 * what it accepts holds only header names the message library takes and
 * values without line breaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_rspamd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rspamd_reply r;
	char err[256] = "";
	size_t i;

	if (rspamd_reply_parse((const char *)data, size, &r, err, sizeof(err)) < 0) {
		if (err[0] == '\0' || r.nsymbols + r.nadd + r.nremove != 0)
			abort();
		return 0;
	}
	if (strcmp(rspamd_action_name(r.action), "?") == 0)
		abort();
	for (i = 0; i < r.nadd; i++)
		if (r.add[i].name[0] == '\0' || strchr(r.add[i].name, ':') != NULL ||
		    strpbrk(r.add[i].value, "\r\n") != NULL)
			abort();
	for (i = 0; i < r.nremove; i++)
		if (r.remove[i].name[0] == '\0' || strchr(r.remove[i].name, ':') != NULL)
			abort();
	if (r.subject != NULL && strpbrk(r.subject, "\r\n") != NULL)
		abort();
	rspamd_reply_free(&r);
	return 0;
}
