/*
 * runner_proto.c - the request and the answer of the command runner
 * (include/runner_proto.h): the socket end sessions and the delivery
 * worker inherit, the check of a request record the runner reads from a
 * possibly compromised process, and the check of an answer a rule reads.
 */
#include <string.h>

#include "runner_proto.h"

const char *const runner_env_names[] = {
    "SENDER",    "RECIPIENTS", "CLIENT_ADDRESS", "HELO",        "QUEUE_ID",
    "AUTH_USER", "LISTENER",   "STAGE",          "SERVER_NAME", NULL,
};

static int runner_fd = -1;

/* runner_proto_set_fd - see runner_proto.h. */
void runner_proto_set_fd(int fd)
{
	runner_fd = fd;
}

/* runner_proto_fd - see runner_proto.h. */
int runner_proto_fd(void)
{
	return runner_fd;
}

/* runner_env_index - the index of name in runner_env_names, or -1. */
int runner_env_index(const char *name)
{
	int i;

	for (i = 0; runner_env_names[i] != NULL; i++)
		if (strcmp(runner_env_names[i], name) == 0)
			return i;
	return -1;
}

/* runner_name_ok - 1 to 32 of a-z, 0-9, _ and -, as a service's name. */
static int runner_name_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-");

	return n > 0 && n <= 32 && s[n] == '\0';
}

/* runner_value_ok - no control character, at most RUNNER_VALUE_MAX bytes. */
static int runner_value_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || i >= RUNNER_VALUE_MAX)
			return 0;
	return 1;
}

/* runner_fail - why into err; -1. */
static int runner_fail(char *err, size_t errlen, const char *why)
{
	strncpy(err, why, errlen - 1);
	err[errlen - 1] = '\0';
	return -1;
}

/* runner_request_check - see runner_proto.h. */
int runner_request_check(const cJSON *obj, struct runner_request *req, char *err, size_t errlen)
{
	const cJSON *service = cJSON_GetObjectItemCaseSensitive(obj, "service");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(obj, "env"), *v;
	int i;

	memset(req, 0, sizeof(*req));
	if (!cJSON_IsObject(obj))
		return runner_fail(err, errlen, "the request is not an object");
	if (!cJSON_IsString(service) || !runner_name_ok(service->valuestring))
		return runner_fail(err, errlen, "the request names no service");
	req->service = service->valuestring;
	if (env == NULL)
		return 0;
	if (!cJSON_IsObject(env))
		return runner_fail(err, errlen, "env is not an object");
	cJSON_ArrayForEach(v, env) {
		if ((i = runner_env_index(v->string)) < 0)
			return runner_fail(err, errlen, "a variable the runner does not set");
		if (req->env[i] != NULL)
			return runner_fail(err, errlen, "a variable given twice");
		if (!cJSON_IsString(v) || !runner_value_ok(v->valuestring))
			return runner_fail(err, errlen, "a value that is no printable text");
		req->env[i] = v->valuestring;
	}
	return 0;
}

/* runner_reply_check - see runner_proto.h. */
int runner_reply_check(const struct runner_reply *r)
{
	if (r->status > RUNNER_FAILED || r->out_len > RUNNER_OUTPUT_MAX ||
	    memchr(r->error, '\0', sizeof(r->error)) == NULL)
		return -1;
	if (r->status != RUNNER_RAN && r->out_len != 0)
		return -1;
	return 0;
}
