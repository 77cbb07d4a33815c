/*
 * test_rules.c - the rule engine without a daemon: what a rules file must
 * look like (and the errors when it does not), how stages decide, the
 * budgets and the sandbox, through rules_load() and rules_offline_run().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rules.h"
#include "rules_internal.h"
#include "rules_offline.h"

static char dir[256];

/* write_file - dir/name with text; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* load - compile text as dir/main.lua; NULL with err filled on failure. */
static struct rules *load(const char *text, char *err, size_t errlen)
{
	struct rules_limits limits = {.instructions = 200000, .memory = 4 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com",
					  .local_domains = "example.com example.org",
					  .trusted_networks = "192.0.2.0/24"};

	return rules_load(write_file("main.lua", text), &limits, &settings, err, errlen);
}

/* load_ok - compile text, failing the test with the error. */
static struct rules *load_ok(const char *text)
{
	char err[1024];
	struct rules *r = load(text, err, sizeof(err));

	if (r == NULL)
		fail_msg("%s", err);
	return r;
}

/* load_fails - compile text, expect failure with line and words in the message. */
static void load_fails(const char *text, int line, const char *words)
{
	char err[1024], where[600];
	struct rules *r = load(text, err, sizeof(err));

	if (r != NULL) {
		rules_free(r);
		fail_msg("loaded, expected an error with \"%s\"", words);
	}
	if (line > 0) {
		snprintf(where, sizeof(where), "%s/main.lua:%d:", dir, line);
		if (strncmp(err, where, strlen(where)) != 0)
			fail_msg("error \"%s\" does not start with \"%s\"", err, where);
	} else if (strstr(err, "main.lua") == NULL) {
		fail_msg("error \"%s\" does not name the file", err);
	}
	if (strstr(err, words) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, words);
}

/* run - one transaction; returns the outcome, the final step in *step. */
static enum offline_outcome run(struct rules *r, const char *ip, const char *from,
				const char *rcpt, struct offline_step *step)
{
	const char *rcpts[] = {rcpt};
	struct offline_tx tx = {.client_ip = ip,
				.helo = "client.example",
				.mail_from = from,
				.rcpts = rcpts,
				.nrcpts = 1,
				.server_name = "mx.example.com"};

	return rules_offline_run(r, &tx, NULL, NULL, step);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-test-rules.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_syntax_error_names_file_and_line(void **state)
{
	load_fails("return {\n  connect = {\n    rule \"x\" (function(ctx) return status.next( end),\n"
		   "  },\n}\n",
		   3, "expected");
}

static void test_stage_declared_twice_names_second_line(void **state)
{
	load_fails("return {\n  connect = {},\n  -- connect = {} in a comment is not counted\n"
		   "  helo = { rule \"s\" (function(ctx) return status.next() end) },\n"
		   "  [\"connect\"] = {},\n}\n",
		   5, "stage \"connect\" declared twice (first on line 2)");
}

static void test_stage_names_in_strings_and_other_tables_are_not_stages(void **state)
{
	struct rules *r = load_ok("local t = { \"connect = {}, connect = {}\" }\n"
				  "local a = { connect = 1 }\nlocal b = { connect = 2 }\n"
				  "return { connect = {}, mail = { rule \"m\" (function(ctx) "
				  "return status.next() end) } }\n");

	assert_int_equal(rules_count(r, RULE_STAGE_MAIL), 1);
	rules_free(r);
}

static void test_hook_defined_twice_is_an_error(void **state)
{
	load_fails("function on_connect(ctx) return status.next() end\n\n"
		   "function on_connect(ctx) return status.deny() end\n",
		   3, "function on_connect defined twice");
}

static void test_stage_as_table_key_and_hook_is_an_error(void **state)
{
	load_fails("function on_helo(ctx) return status.next() end\n"
		   "return { helo = { rule \"h\" (function(ctx) return status.next() end) } }\n",
		   0, "declared twice");
}

static void test_unknown_stage_and_hook_are_errors(void **state)
{
	load_fails("return { conect = {} }\n", 0, "unknown stage \"conect\"");
	load_fails("function on_conect(ctx) return status.next() end\n", 0,
		   "unknown hook function on_conect");
}

static void test_rule_without_name_is_an_error(void **state)
{
	load_fails("return {\n  connect = {\n    rule (function(ctx) return status.next() end),\n"
		   "  },\n}\n",
		   3, "rule without a name");
}

static void test_stage_must_be_a_list_of_rules(void **state)
{
	load_fails("return { connect = rule \"x\" (function(ctx) return status.next() end) }\n", 0,
		   "must be a list of rules");
	load_fails("return { connect = { function(ctx) return status.next() end } }\n", 0,
		   "is not a rule or action");
}

static void test_bytecode_is_refused(void **state)
{
	char err[1024];
	struct rules *r;
	static const char chunk[] = "\x1bLua\x54";
	FILE *fp;
	char path[512];

	snprintf(path, sizeof(path), "%s/main.lua", dir);
	fp = fopen(path, "wb");
	fwrite(chunk, 1, sizeof(chunk) - 1, fp);
	fclose(fp);
	r = rules_load(path, &(struct rules_limits){100000, 1 << 20, 0},
		       &(struct rules_settings){.hostname = "h", .local_domains = "",
						.trusted_networks = ""},
		       err, sizeof(err));
	assert_null(r);
	assert_non_null(strstr(err, "binary"));
}

static void test_require_loads_from_the_rules_folder_only(void **state)
{
	struct offline_step step;
	struct rules *r;

	write_file("helpers.lua", "local M = {}\nfunction M.answer() return status.reject() end\n"
				  "return M\n");
	r = load_ok("local h = require(\"helpers\")\n"
		    "return { mail = { rule \"r\" (function(ctx) return h.answer() end) } }\n");
	assert_int_equal(run(r, "203.0.113.1", "a@b.example", "x@example.com", &step),
			 OFFLINE_DEFERRED);
	assert_string_equal(step.reply, "451 4.7.1 Rejected by local policy, try again later");
	rules_free(r);
	load_fails("local x = require(\"../etc/passwd\")\n", 1, "module name");
	load_fails("local x = require(\"io\")\n", 0, "io.lua");
}

static void test_deny_stops_the_transaction_with_default_code(void **state)
{
	struct rules *r = load_ok("return { rcpt = { rule \"no\" (function(ctx) "
				  "return status.deny() end) } }\n");
	struct offline_step step;

	assert_int_equal(run(r, "203.0.113.1", "a@b.example", "x@example.com", &step),
			 OFFLINE_REFUSED);
	assert_int_equal(step.v.status, RULE_DENY);
	assert_string_equal(step.reply, "554 5.7.1 Rejected by local policy");
	assert_string_equal(step.v.rule, "no");
	rules_free(r);
}

static void test_accept_skips_the_rest_of_the_stage_only(void **state)
{
	struct rules *r = load_ok(
		"return {\n"
		"  mail = { rule \"a\" (function(ctx) return status.accept() end),\n"
		"           rule \"never\" (function(ctx) return status.deny() end) },\n"
		"  rcpt = { rule \"later\" (function(ctx) return status.deny(code(550, \"5.1.1\", "
		"\"no such user\")) end) },\n"
		"}\n");
	struct offline_step step;

	assert_int_equal(run(r, "203.0.113.1", "a@b.example", "x@example.com", &step),
			 OFFLINE_REFUSED);
	assert_int_equal(step.stage, RULE_STAGE_RCPT);
	assert_string_equal(step.reply, "550 5.1.1 no such user");
	rules_free(r);
}

static void test_faccept_skips_every_later_stage(void **state)
{
	struct rules *r = load_ok(
		"return {\n"
		"  connect = { rule \"trusted\" (function(ctx)\n"
		"    if ctx.client_ip == \"192.168.1.10\" then return status.faccept() end\n"
		"    return status.next() end) },\n"
		"  rcpt = { rule \"trailing\" (function(ctx) return status.deny() end) },\n"
		"}\n");
	struct offline_step step;

	assert_int_equal(run(r, "192.168.1.10", "a@b.example", "x@example.net", &step),
			 OFFLINE_QUEUED);
	assert_int_equal(run(r, "192.168.1.11", "a@b.example", "x@example.net", &step),
			 OFFLINE_REFUSED);
	rules_free(r);
}

static void test_failures_answer_451_and_never_accept(void **state)
{
	static const char *const bodies[] = {
		"error(\"boom\")",
		"return nil",
		"return 42",
		"while true do end",
		"while true do pcall(function() while true do end end) end",
		"local t = {} for i = 1, 1e9 do t[i] = string.rep(\"x\", 1000) .. i end",
		"return string.rep(\"x\", 1 << 30) and status.accept()",
		"local ok = pcall(string.rep, \"x\", 1 << 30) return status.accept()",
		"return ctx.no_such_field and status.accept()",
		"undefined_function() return status.accept()",
		"x = 1 return status.accept()",
		"return status.deny(code(250, \"2.0.0\", \"ok\"))",
		"return status.accept(code(550, \"5.0.0\", \"no\"))",
		"return io.open(\"/etc/passwd\")",
		"return os.execute(\"true\")",
		"return load(string.dump(function() end))",
		"return ip_list(\"x.txt\")",
	};
	char text[1024];
	struct offline_step step;
	struct rules *r;
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		snprintf(text, sizeof(text),
			 "return { rcpt = { rule \"bad\" (function(ctx) %s end) } }\n", bodies[i]);
		r = load_ok(text);
		if (run(r, "203.0.113.1", "a@b.example", "x@example.com", &step) !=
		    OFFLINE_DEFERRED)
			fail_msg("\"%s\" did not defer: %s", bodies[i], step.reply);
		assert_int_equal(step.v.status, RULE_ERROR);
		assert_string_equal(step.reply, "451 4.3.0 Local policy error, try again later");
		rules_free(r);
	}
}

static void test_globals_are_locked_after_loading(void **state)
{
	load_fails("local x = undefined_global\n", 1, "undefined global \"undefined_global\"");
	/* Defining helpers at load time is fine. */
	rules_free(load_ok("function helper() return status.next() end\n"
			   "return { mail = { rule \"h\" (function(ctx) return helper() end) } }\n"));
}

static void test_default_policy_is_no_open_relay(void **state)
{
	char path[512], err[1024];
	struct rules_limits limits = {.instructions = 1000000, .memory = 8 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com",
					  .local_domains = "example.com",
					  .trusted_networks = "192.0.2.0/24"};
	struct offline_step step;
	struct rules *r;

	snprintf(path, sizeof(path), "%s/rules/main.lua", getenv("VSMTPD_SOURCE_DIR"));
	r = rules_load(path, &limits, &settings, err, sizeof(err));
	if (r == NULL)
		fail_msg("%s", err);
	assert_int_equal(run(r, "203.0.113.1", "spammer@example.net", "victim@example.net", &step),
			 OFFLINE_REFUSED);
	assert_string_equal(step.reply, "554 5.7.1 Relay access denied");
	assert_int_equal(run(r, "203.0.113.1", "a@example.net", "user@Example.COM", &step),
			 OFFLINE_QUEUED);
	assert_int_equal(run(r, "203.0.113.1", "a@example.net", "user@mx.example.com", &step),
			 OFFLINE_QUEUED);
	assert_int_equal(run(r, "203.0.113.1", "", "postmaster", &step), OFFLINE_QUEUED);
	assert_int_equal(run(r, "192.0.2.9", "a@example.com", "far@example.net", &step),
			 OFFLINE_QUEUED);
	rules_free(r);
}

static void test_preq_edits_and_quarantine(void **state)
{
	struct rules *r = load_ok(
		"return { preq = {\n"
		"  action \"tag\" (function(ctx) ctx:append_header(\"X-Checked\", \"yes\") end),\n"
		"  rule \"virus\" (function(ctx)\n"
		"    if ctx:get_header(\"X-Checked\") == \"yes\" and ctx.body:find(\"EICAR\") then\n"
		"      return status.quarantine(\"virus\") end\n"
		"    return status.next() end),\n"
		"} }\n");
	const char *rcpts[] = {"x@example.com"};
	static const char msg[] = "Subject: hi\r\n\r\nEICAR test\r\n";
	struct offline_tx tx = {.mail_from = "a@b.example",
				.rcpts = rcpts,
				.nrcpts = 1,
				.message = msg,
				.message_len = sizeof(msg) - 1};
	struct offline_step step;

	assert_int_equal(rules_offline_run(r, &tx, NULL, NULL, &step), OFFLINE_QUARANTINED);
	assert_string_equal(step.v.quarantine, "virus");
	rules_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax_error_names_file_and_line),
		cmocka_unit_test(test_stage_declared_twice_names_second_line),
		cmocka_unit_test(test_stage_names_in_strings_and_other_tables_are_not_stages),
		cmocka_unit_test(test_hook_defined_twice_is_an_error),
		cmocka_unit_test(test_stage_as_table_key_and_hook_is_an_error),
		cmocka_unit_test(test_unknown_stage_and_hook_are_errors),
		cmocka_unit_test(test_rule_without_name_is_an_error),
		cmocka_unit_test(test_stage_must_be_a_list_of_rules),
		cmocka_unit_test(test_bytecode_is_refused),
		cmocka_unit_test(test_require_loads_from_the_rules_folder_only),
		cmocka_unit_test(test_deny_stops_the_transaction_with_default_code),
		cmocka_unit_test(test_accept_skips_the_rest_of_the_stage_only),
		cmocka_unit_test(test_faccept_skips_every_later_stage),
		cmocka_unit_test(test_failures_answer_451_and_never_accept),
		cmocka_unit_test(test_globals_are_locked_after_loading),
		cmocka_unit_test(test_default_policy_is_no_open_relay),
		cmocka_unit_test(test_preq_edits_and_quarantine),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
