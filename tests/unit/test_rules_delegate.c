/*
 * test_rules_delegate.c - delegate "name" ("service", fn) in the engine:
 * refused when the rules load anywhere but postq, or with a service that
 * is not a delegate one; a postq run stops at it with RULE_DELEGATE (its
 * index and service) for a message that has not been through its filter;
 * a returned copy (postq_start and delegated_rule) starts at it and runs
 * its function, not the rules before; a copy queued again at it
 * (postq_start alone) is sent; a start that is no delegate rule any more
 * starts over. And what `vsmtpctl rules run` says of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "envelope.h"
#include "helper_mail.h"
#include "helper_rules.h"
#include "message.h"
#include "rules.h"
#include "rules_offline.h"

static struct service_config services[] = {
    {.name = "filter", .kind = SERVICE_DELEGATE, .address = "127.0.0.1:10025", .timeout_ms = 30000},
    {.name = "av", .kind = SERVICE_CLAMD, .address = "127.0.0.1:3310", .timeout_ms = 30000},
};

/* load - compile text as main.lua; NULL with err. */
static struct rules *load(const char *text, char *err, size_t errlen)
{
	struct rules_limits limits = {.instructions = 200000, .memory = 4 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com",
	                                  .local_domains = "example.com",
	                                  .services = services,
	                                  .nservices = 2};

	return test_rules_load(test_dir, text, &limits, &settings, err, errlen);
}

static const char *const POSTQ =
    "return { postq = {\n"
    "  action \"before\" (function(ctx) ctx:append_header(\"X-Before\", \"1\") end),\n"
    "  delegate \"scan\" (\"filter\", function(ctx)\n"
    "    ctx:append_header(\"X-Function\", ctx:get_header(\"X-Filtered\") or \"none\")\n"
    "    return status.next()\n"
    "  end),\n"
    "  action \"after\" (function(ctx) ctx:append_header(\"X-After\", \"1\") end),\n"
    "} }\n";

static void test_load_errors(void **state)
{
	char err[1024];

	(void)state;
	assert_null(
	    load("return { preq = {\n"
	         "  delegate \"scan\" (\"filter\", function(ctx) return status.next() end),\n"
	         "} }\n",
	         err, sizeof(err)));
	assert_non_null(strstr(err, "main.lua:2: delegate \"scan\" at stage \"preq\": delegate "
	                            "works at postq and delivery only"));
	assert_null(
	    load("return { rcpt = {\n"
	         "  delegate \"scan\" (\"filter\", function(ctx) return status.next() end),\n"
	         "} }\n",
	         err, sizeof(err)));
	assert_non_null(
	    strstr(err, "at stage \"rcpt\": delegate works at postq and delivery only"));
	assert_null(
	    load("return { postq = {\n"
	         "  delegate \"scan\" (\"nothere\", function(ctx) return status.next() end),\n"
	         "} }\n",
	         err, sizeof(err)));
	assert_non_null(strstr(err, "main.lua:2: delegate \"scan\": no such service \"nothere\""));
	assert_null(load("return { postq = {\n"
	                 "  delegate \"scan\" (\"av\", function(ctx) return status.next() end),\n"
	                 "} }\n",
	                 err, sizeof(err)));
	assert_non_null(strstr(err, "not a delegate service \"av\""));
	assert_null(load("return { postq = { delegate \"scan\" (function(ctx) end) } }\n", err,
	                 sizeof(err)));
	assert_non_null(strstr(err, "write delegate \"name\" (\"service\", function(ctx)"));
	assert_null(load("return { postq = { delegate (\"filter\", function(ctx) end) } }\n", err,
	                 sizeof(err)));
	assert_non_null(strstr(err, "delegate without a name"));
}

/* run_stage - run stage on a fresh message with the given marks; the message after. */
static struct message *run_stage(struct rules *r, enum rule_stage stage, unsigned start,
                                 unsigned delegated, int delivery, int filtered,
                                 struct rule_verdict *v)
{
	static const char plain[] = "Subject: hi\r\n\r\nbody\r\n";
	static const char back[] = "Subject: hi\r\nX-Filtered: yes\r\n\r\nbody\r\n";
	struct envelope env = {0};
	struct message *msg = filtered ? message_parse(back, sizeof(back) - 1)
	                               : message_parse(plain, sizeof(plain) - 1);
	struct rule_ctx ctx = {.client_ip = "203.0.113.5",
	                       .helo = "h",
	                       .server_name = "mx",
	                       .env = &env,
	                       .msg = msg,
	                       .postq_start = start,
	                       .delegated_rule = delegated,
	                       .delegated_delivery = delivery};

	assert_non_null(msg);
	snprintf(env.id, sizeof(env.id), "000660CD977706E6");
	assert_int_equal(envelope_set(&env.mail_from, "a@example.net"), 0);
	assert_int_equal(envelope_add_rcpt(&env, "bob@example.com", 0, NULL, NULL), 0);
	rules_run(r, stage, &ctx, v);
	rules_ctx_release(&ctx);
	envelope_clear(&env);
	return msg;
}

/* postq - run_stage at postq. */
static struct message *postq(struct rules *r, unsigned start, unsigned delegated, int filtered,
                             struct rule_verdict *v)
{
	return run_stage(r, RULE_STAGE_POSTQ, start, delegated, 0, filtered, v);
}

static void test_postq_stops_at_the_rule_then_resumes_there(void **state)
{
	char err[1024];
	struct rules *r = load(POSTQ, err, sizeof(err));
	struct rule_verdict v;
	struct message *msg;
	char *value;

	(void)state;
	if (r == NULL)
		fail_msg("%s", err);
	/* not through the filter yet: stops at rule 2, the rules before ran */
	msg = postq(r, 0, 0, 0, &v);
	assert_int_equal(v.status, RULE_DELEGATE);
	assert_int_equal(v.delegate_rule, 2);
	assert_string_equal(v.delegate_service, "filter");
	assert_string_equal(v.rule, "scan");
	assert_string_equal(rules_status_name(v.status), "delegate");
	assert_int_equal(message_header_count(msg, "X-Before"), 1);
	assert_int_equal(message_header_count(msg, "X-Function"), 0);
	message_free(msg);
	/* back from the filter: the function sees the filter's field, the rest goes on */
	msg = postq(r, 2, 2, 1, &v);
	assert_int_equal(v.status, RULE_NEXT);
	assert_int_equal(message_header_count(msg, "X-Before"), 0);
	assert_int_equal(message_header_count(msg, "X-After"), 1);
	assert_non_null(value = message_header_get(msg, "X-Function", 0, NULL));
	assert_string_equal(value, "yes");
	free(value);
	message_free(msg);
	/* queued again at the rule (changed before it): sent from there */
	msg = postq(r, 2, 0, 0, &v);
	assert_int_equal(v.status, RULE_DELEGATE);
	assert_int_equal(v.delegate_rule, 2);
	assert_int_equal(message_header_count(msg, "X-Before"), 0);
	message_free(msg);
	/* a start that is no delegate rule (the rules changed): from the top */
	msg = postq(r, 3, 3, 1, &v);
	assert_int_equal(v.status, RULE_DELEGATE);
	assert_int_equal(message_header_count(msg, "X-Before"), 1);
	message_free(msg);
	msg = postq(r, 9, 9, 1, &v);
	assert_int_equal(v.status, RULE_DELEGATE);
	message_free(msg);
	rules_free(r);
}

static void test_delivery_runs_whole_and_the_returned_copy_runs_the_function(void **state)
{
	char err[1024], *value;
	struct rules *r = load(
	    "return { delivery = {\n"
	    "  action \"before\" (function(ctx) ctx:append_header(\"X-Before\", \"1\") end),\n"
	    "  delegate \"scan\" (\"filter\", function(ctx)\n"
	    "    ctx:append_header(\"X-Function\", ctx:get_header(\"X-Filtered\") or \"none\")\n"
	    "    return status.next()\n"
	    "  end),\n"
	    "} }\n",
	    err, sizeof(err));
	struct rule_verdict v;
	struct message *msg;

	(void)state;
	if (r == NULL)
		fail_msg("%s", err);
	msg = run_stage(r, RULE_STAGE_DELIVERY, 0, 0, 0, 0, &v);
	assert_int_equal(v.status, RULE_DELEGATE);
	assert_int_equal(v.delegate_rule, 2);
	message_free(msg);
	/* back from it: the stage runs whole, the rule runs its function */
	msg = run_stage(r, RULE_STAGE_DELIVERY, 0, 2, 1, 1, &v);
	assert_int_equal(v.status, RULE_NEXT);
	assert_int_equal(message_header_count(msg, "X-Before"), 1);
	assert_non_null(value = message_header_get(msg, "X-Function", 0, NULL));
	assert_string_equal(value, "yes");
	free(value);
	message_free(msg);
	/* back from a postq rule of the same index: not this one */
	msg = run_stage(r, RULE_STAGE_DELIVERY, 2, 2, 0, 1, &v);
	assert_int_equal(v.status, RULE_DELEGATE);
	message_free(msg);
	rules_free(r);
}

/* The last step an offline run reported. */
static struct offline_step last;

/* record - the report callback. */
static void record(void *arg, const struct offline_step *step)
{
	(void)arg;
	last = *step;
	last.routes = NULL;
}

static void test_offline_run_says_where_it_goes(void **state)
{
	static const char *const rcpts[] = {"bob@example.com"};
	static const char message[] = "From: <a@example.net>\r\nSubject: x\r\n\r\nhi\r\n";
	struct offline_tx tx = {.client_ip = "203.0.113.5",
	                        .mail_from = "a@example.net",
	                        .rcpts = rcpts,
	                        .nrcpts = 1,
	                        .server_name = "mx.example.com",
	                        .message = message,
	                        .message_len = sizeof(message) - 1};
	char err[1024];
	struct rules *r = load(POSTQ, err, sizeof(err));

	(void)state;
	if (r == NULL)
		fail_msg("%s", err);
	assert_int_equal(rules_offline_run(r, &tx, record, NULL, NULL), OFFLINE_QUEUED);
	assert_int_equal(last.stage, RULE_STAGE_POSTQ);
	assert_int_equal(last.after, OFFLINE_AFTER_DEFERRED);
	assert_string_equal(last.reply, "sent to service filter; postq goes on at rule 2 when it "
	                                "comes back");
	/* returned: the filter sends it back as it is, postq goes on to delivery */
	tx.returned = 1;
	assert_int_equal(rules_offline_run(r, &tx, record, NULL, NULL), OFFLINE_QUEUED);
	assert_int_equal(last.stage, RULE_STAGE_DELIVERY);
	assert_int_equal(last.after, OFFLINE_AFTER_DELIVERED);
	rules_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_errors),
	    cmocka_unit_test(test_postq_stops_at_the_rule_then_resumes_there),
	    cmocka_unit_test(test_delivery_runs_whole_and_the_returned_copy_runs_the_function),
	    cmocka_unit_test(test_offline_run_says_where_it_goes),
	};

	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
