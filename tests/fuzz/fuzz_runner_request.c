/*
 * fuzz_runner_request - the command runner's check of a request record on
 * arbitrary bytes, read as the runner reads them (JSON): it must never read
 * or write out of bounds, an error always says why, and what it accepts
 * names a service as services are named and sets only documented
 * variables, with printable values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runner_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *obj = cJSON_ParseWithLength((const char *)data, size);
	struct runner_request req;
	char err[128] = "";
	size_t i, j;

	if (obj == NULL)
		return 0;
	if (runner_request_check(obj, &req, err, sizeof(err)) < 0) {
		if (err[0] == '\0')
			abort();
	} else {
		if (req.service == NULL || req.service[0] == '\0' || strlen(req.service) > 32 ||
		    strspn(req.service, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
			strlen(req.service))
			abort();
		for (i = 0; runner_env_names[i] != NULL; i++)
			for (j = 0; req.env[i] != NULL && req.env[i][j] != '\0'; j++)
				if ((unsigned char)req.env[i][j] < 0x20 || j >= RUNNER_VALUE_MAX)
					abort();
		for (; i < RUNNER_ENV_MAX; i++)
			if (req.env[i] != NULL)
				abort();
	}
	cJSON_Delete(obj);
	return 0;
}
