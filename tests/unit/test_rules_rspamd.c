/*
 * test_rules_rspamd.c - rspamd's /checkv2 reply read into struct
 * rspamd_reply: a reply as rspamd 3.4 sends it with its milter_headers
 * module, every shape of add_headers and remove_headers, the actions, and
 * replies that must be refused whole (not JSON, no action, an unknown
 * action, a bad header name, a control character in a value).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "rules_rspamd.h"

/* parse_ok - parse text, which must succeed. */
static void parse_ok(const char *text, struct rspamd_reply *r)
{
	char err[256] = "";

	if (rspamd_reply_parse(text, strlen(text), r, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
}

/* parse_err - parse text, which must fail with an error holding why. */
static void parse_err(const char *text, const char *why)
{
	struct rspamd_reply r;
	char err[256] = "";

	assert_int_equal(rspamd_reply_parse(text, strlen(text), &r, err, sizeof(err)), -1);
	if (strstr(err, why) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, why);
	assert_null(r.symbols);
	assert_null(r.add);
	assert_int_equal(r.nadd, 0);
}

/* A reply as rspamd 3.4 sends it for a GTUBE message. */
static void test_full_reply(void **state)
{
	static const char text[] =
	    "{\"is_skipped\":false,\"score\":0,\"required_score\":15,\"action\":\"reject\","
	    "\"thresholds\":{\"reject\":15,\"add header\":6},"
	    "\"symbols\":{\"GTUBE\":{\"name\":\"GTUBE\",\"score\":0,\"metric_score\":0,"
	    "\"options\":[\"gtube\"]},\"R_SPF_NA\":{\"name\":\"R_SPF_NA\",\"score\":0.5}},"
	    "\"messages\":{\"smtp_message\":\"Gtube pattern\"},\"time_real\":0.01,"
	    "\"milter\":{\"add_headers\":{\"X-Spamd-Result\":{\"value\":\"default: True "
	    "[0.00 / 15.00];\\r\\n\\tGTUBE(0.00)[gtube]\",\"order\":0},"
	    "\"X-Rspamd-Server\":{\"value\":\"mx1\",\"order\":0},\"X-Spam\":\"Yes\"},"
	    "\"remove_headers\":{\"X-Spam\":0,\"X-Old\":2,\"X-Last\":-1}},"
	    "\"message-id\":\"x@y\"}";
	struct rspamd_reply r;

	(void)state;
	parse_ok(text, &r);
	assert_int_equal(r.action, RSPAMD_REJECT);
	assert_string_equal(rspamd_action_name(r.action), "reject");
	assert_true(r.score == 0 && r.required_score == 15);
	assert_int_equal(r.nsymbols, 2);
	assert_string_equal(r.symbols[0].name, "GTUBE");
	assert_int_equal(r.symbols[0].noptions, 1);
	assert_string_equal(r.symbols[0].options[0], "gtube");
	assert_string_equal(r.symbols[1].name, "R_SPF_NA");
	assert_true(r.symbols[1].score == 0.5);
	assert_int_equal(r.symbols[1].noptions, 0);
	assert_int_equal(r.nadd, 3);
	assert_string_equal(r.add[0].name, "X-Spamd-Result");
	/* the fold rspamd made is one space: the message library folds anew */
	assert_string_equal(r.add[0].value, "default: True [0.00 / 15.00]; GTUBE(0.00)[gtube]");
	assert_int_equal(r.add[0].order, 0);
	assert_string_equal(r.add[2].name, "X-Spam");
	assert_string_equal(r.add[2].value, "Yes");
	assert_int_equal(r.add[2].order, -1);
	assert_int_equal(r.nremove, 3);
	assert_string_equal(r.remove[0].name, "X-Spam");
	assert_int_equal(r.remove[0].nth, 0);
	assert_int_equal(r.remove[1].nth, 2);
	assert_int_equal(r.remove[2].nth, -1);
	assert_null(r.subject);
	rspamd_reply_free(&r);
	assert_null(r.symbols);
}

/* Every action rspamd has, the subject, headers given as a list. */
static void test_actions_subject_lists(void **state)
{
	static const struct {
		const char *name;
		enum rspamd_action action;
	} actions[] = {
	    {"no action", RSPAMD_NO_ACTION},     {"greylist", RSPAMD_GREYLIST},
	    {"add header", RSPAMD_ADD_HEADER},   {"rewrite subject", RSPAMD_REWRITE_SUBJECT},
	    {"soft reject", RSPAMD_SOFT_REJECT}, {"reject", RSPAMD_REJECT},
	};
	struct rspamd_reply r;
	char text[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		snprintf(text, sizeof(text), "{\"action\":\"%s\",\"score\":1.5}", actions[i].name);
		parse_ok(text, &r);
		assert_int_equal(r.action, actions[i].action);
		assert_string_equal(rspamd_action_name(r.action), actions[i].name);
		assert_true(r.score == 1.5 && r.required_score == 0);
		assert_int_equal(r.nsymbols + r.nadd + r.nremove, 0);
		rspamd_reply_free(&r);
	}
	parse_ok("{\"action\":\"rewrite subject\",\"score\":9,\"subject\":\"*** SPAM *** hi\","
		 "\"milter\":{\"add_headers\":{\"X-Two\":[{\"value\":\"a\",\"order\":3},\"b\"],"
		 "\"X-None\":[]}}}",
		 &r);
	assert_string_equal(r.subject, "*** SPAM *** hi");
	assert_int_equal(r.nadd, 2);
	assert_string_equal(r.add[0].name, "X-Two");
	assert_string_equal(r.add[0].value, "a");
	assert_int_equal(r.add[0].order, 3);
	assert_string_equal(r.add[1].value, "b");
	assert_int_equal(r.add[1].order, -1);
	rspamd_reply_free(&r);
}

/* What is refused whole. */
static void test_refused(void **state)
{
	(void)state;
	parse_err("", "not JSON");
	parse_err("HTTP/1.1 200 OK", "not JSON");
	parse_err("[1,2]", "not a JSON object");
	parse_err("{\"score\":1}", "no action");
	parse_err("{\"action\":\"discard\",\"score\":1}", "unknown action");
	parse_err("{\"action\":\"reject\"}", "no score");
	parse_err("{\"action\":\"reject\",\"score\":\"1\"}", "no score");
	parse_err("{\"action\":\"reject\",\"score\":1,\"required_score\":null}", "required_score");
	parse_err("{\"action\":\"reject\",\"score\":1,\"symbols\":[]}", "not an object");
	parse_err("{\"action\":\"reject\",\"score\":1,\"symbols\":{\"A\":{\"score\":\"x\"}}}",
		  "score is not a number");
	parse_err("{\"action\":\"reject\",\"score\":1,\"symbols\":{\"A\":{\"options\":[1]}}}",
		  "option is not a string");
	parse_err("{\"action\":\"reject\",\"score\":1,\"milter\":{\"add_headers\":"
		  "{\"X-A\":\"ok\",\"Bad Name\":\"v\"}}}",
		  "not a header name");
	parse_err("{\"action\":\"reject\",\"score\":1,\"milter\":{\"add_headers\":"
		  "{\"X:A\":\"v\"}}}",
		  "not a header name");
	parse_err("{\"action\":\"reject\",\"score\":1,\"milter\":{\"add_headers\":"
		  "{\"\":\"v\"}}}",
		  "not a header name");
	parse_err("{\"action\":\"reject\",\"score\":1,\"milter\":{\"add_headers\":"
		  "{\"X-A\":\"a\\u0001b\"}}}",
		  "control character");
	parse_err("{\"action\":\"reject\",\"score\":1,\"milter\":{\"add_headers\":"
		  "{\"X-A\":{\"order\":1}}}}",
		  "no string value");
	parse_err("{\"action\":\"reject\",\"score\":1,\"milter\":{\"remove_headers\":"
		  "{\"X-A\":\"all\"}}}",
		  "no number");
	parse_err("{\"action\":\"reject\",\"score\":1,\"subject\":5}", "not a string");
	parse_err("{\"action\":\"reject\",\"score\":1,\"milter\":[]}", "not an object");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_reply),
	    cmocka_unit_test(test_actions_subject_lists),
	    cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
