/*
 * test_runner_proto.c - the command runner's check of a request record,
 * which a compromised session may have written: a good request read into
 * struct runner_request, and each thing the runner refuses (no service
 * name or a name no service can have, a variable it does not set or given
 * twice, a value with a control character or too long, an env that is not
 * an object of strings); and the check of an answer a rule reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "runner_proto.h"

/* check - runner_request_check on text: its result, why in err. */
static int check(const char *text, struct runner_request *req, char *err, size_t errlen)
{
	cJSON *obj = cJSON_Parse(text);
	int rc;

	assert_non_null(obj);
	err[0] = '\0';
	rc = runner_request_check(obj, req, err, errlen);
	cJSON_Delete(obj);
	return rc;
}

/* refused - text must be refused with why. */
static void refused(const char *text, const char *why)
{
	struct runner_request req;
	char err[128];

	assert_int_equal(check(text, &req, err, sizeof(err)), -1);
	if (strstr(err, why) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", err, why);
}

static void test_good_request(void **state)
{
	cJSON *obj = cJSON_Parse("{\"service\":\"spam-check_2\",\"env\":{\"SENDER\":\"a@b.example\","
				 "\"RECIPIENTS\":\"c@d.example e@f.example\",\"STAGE\":\"preq\","
				 "\"HELO\":\"h\\u00e9llo\"}}");
	struct runner_request req;
	char err[128];

	(void)state;
	assert_int_equal(runner_request_check(obj, &req, err, sizeof(err)), 0);
	assert_string_equal(req.service, "spam-check_2");
	assert_string_equal(req.env[runner_env_index("SENDER")], "a@b.example");
	assert_string_equal(req.env[runner_env_index("RECIPIENTS")], "c@d.example e@f.example");
	assert_string_equal(req.env[runner_env_index("HELO")], "h\xc3\xa9llo");
	assert_null(req.env[runner_env_index("QUEUE_ID")]);
	cJSON_Delete(obj);
	obj = cJSON_Parse("{\"service\":\"x\"}");
	assert_int_equal(runner_request_check(obj, &req, err, sizeof(err)), 0);
	cJSON_Delete(obj);
	assert_int_equal(runner_env_index("PATH"), -1);
	assert_int_equal(runner_env_index("SERVICE"), -1);
}

static void test_refused(void **state)
{
	char text[RUNNER_VALUE_MAX + 100];

	(void)state;
	refused("[]", "not an object");
	refused("{\"env\":{}}", "no service");
	refused("{\"service\":\"\"}", "no service");
	refused("{\"service\":\"Upper\"}", "no service");
	refused("{\"service\":\"../x\"}", "no service");
	refused("{\"service\":\"abcdefghijabcdefghijabcdefghijabc\"}", "no service");
	refused("{\"service\":5}", "no service");
	refused("{\"service\":\"x\",\"env\":[]}", "env is not an object");
	refused("{\"service\":\"x\",\"env\":{\"PATH\":\"/tmp\"}}", "does not set");
	refused("{\"service\":\"x\",\"env\":{\"LD_PRELOAD\":\"/tmp/x.so\"}}", "does not set");
	refused("{\"service\":\"x\",\"env\":{\"SENDER\":\"a\",\"SENDER\":\"b\"}}", "twice");
	refused("{\"service\":\"x\",\"env\":{\"SENDER\":5}}", "printable");
	refused("{\"service\":\"x\",\"env\":{\"SENDER\":\"a\\nb\"}}", "printable");
	refused("{\"service\":\"x\",\"env\":{\"SENDER\":\"a\\u001bb\"}}", "printable");
	strcpy(text, "{\"service\":\"x\",\"env\":{\"RECIPIENTS\":\"");
	memset(text + strlen(text), 'a', RUNNER_VALUE_MAX + 1); /* one byte too many */
	strcpy(text + strlen("{\"service\":\"x\",\"env\":{\"RECIPIENTS\":\"") + RUNNER_VALUE_MAX + 1,
	       "\"}}");
	refused(text, "printable");
}

static void test_reply_check(void **state)
{
	struct runner_reply r = {.status = RUNNER_RAN, .exit_code = 0, .out_len = 10};

	(void)state;
	assert_int_equal(runner_reply_check(&r), 0);
	r.out_len = RUNNER_OUTPUT_MAX + 1;
	assert_int_equal(runner_reply_check(&r), -1);
	r.out_len = 0;
	r.status = RUNNER_FAILED + 1;
	assert_int_equal(runner_reply_check(&r), -1);
	r.status = RUNNER_BUSY;
	r.out_len = 1;
	assert_int_equal(runner_reply_check(&r), -1);
	r.out_len = 0;
	memset(r.error, 'x', sizeof(r.error));
	assert_int_equal(runner_reply_check(&r), -1);
	r.error[sizeof(r.error) - 1] = '\0';
	assert_int_equal(runner_reply_check(&r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_request),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_reply_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
