/*
 * fuzz_milter_reply.c - the milter reply parser on arbitrary bytes, read
 * as a stream of packets the way the conversation reads them: it must
 * never read out of bounds nor loop; a reply it accepts used at least its
 * 5-byte frame and no more than it was given, and its strings end inside
 * the packet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct milter_reply r;
	char err[128];
	size_t off = 0, used;
	int rc;

	while ((rc = milter_reply_next(p + off, size - off, &used, &r, err, sizeof(err))) == 1) {
		if (used < 5 || used > size - off)
			abort();
		if (r.name != NULL && strlen(r.name) + strlen(r.value) > used)
			abort();
		if (r.code == MILTER_R_REPLYCODE &&
		    (r.smtp < 400 || r.smtp > 599 || strlen(r.text) >= sizeof(r.text)))
			abort();
		off += used;
	}
	if (rc == -1 && err[0] == '\0')
		abort();
	return 0;
}
