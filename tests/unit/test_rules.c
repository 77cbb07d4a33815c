/*
 * test_rules.c - the rule engine without a daemon: what a rules file must
 * look like (and the errors when it does not), how stages decide, the
 * budgets and the sandbox, through rules_load() and rules_offline_run();
 * the delivery stage's transport methods (ctx:forward, ctx:maildir, ...)
 * through rules_run() with a route callback that records the choices;
 * what an overrun handler learns of the rule that ran past its CPU time.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "envelope.h"
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
	r = rules_load(path, &(struct rules_limits){.instructions = 100000, .memory = 1 << 20},
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

/* A top level that never ends is stopped by the load's CPU time limit
 * (250 ms by default), even through pcall, and the rules still run their
 * own budget afterwards. */
static void test_endless_loop_at_load_is_stopped_by_the_time_limit(void **state)
{
	static const char *const tops[] = {
		"while true do end\n",
		"while true do pcall(function() while true do end end) end\n",
		"pcall(function() while true do end end)\nreturn {}\n",
		"local t = {} while true do t[1] = (\"x\"):rep(1000):upper() end\n",
	};
	size_t i;

	for (i = 0; i < sizeof(tops) / sizeof(tops[0]); i++)
		load_fails(tops[i], 0, "loading took longer than 250 ms of CPU time");
	rules_free(load_ok("local n = 0 for i = 1, 100000 do n = n + i end\n"
			   "return { rcpt = { rule \"r\" (function(ctx) return status.next() end) } }\n"));
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

/* ---- the delivery stage's transport methods ---------------------------- */

#define ROUTE_CALLS_MAX 32

/* What the route callback was asked, one call. */
struct route_call {
	int all; /* rcpt was NULL: an _all form */
	char rcpt[256];
	enum rule_route kind;
	char target[RULE_ROUTE_TARGET_MAX];
};

struct route_log {
	struct route_call calls[ROUTE_CALLS_MAX];
	size_t n;
	int answer; /* what the callback returns: 0, ENOENT, EINVAL */
};

/* record_route - rule_ctx.route for the tests: note the call. */
static int record_route(void *arg, const char *rcpt, enum rule_route kind, const char *target)
{
	struct route_log *log = arg;
	struct route_call *c;

	assert_non_null(target);
	if (log->answer != 0)
		return log->answer;
	assert_true(log->n < ROUTE_CALLS_MAX);
	c = &log->calls[log->n++];
	c->all = rcpt == NULL;
	snprintf(c->rcpt, sizeof(c->rcpt), "%s", rcpt != NULL ? rcpt : "");
	c->kind = kind;
	snprintf(c->target, sizeof(c->target), "%s", target);
	return 0;
}

/* run_stage - run stage on a queued message from alice@example.net to
 * bob@example.org and carol@example.com; route set when with_route. */
static enum rule_status run_stage(struct rules *r, enum rule_stage stage, struct route_log *log,
				  int with_route, struct rule_verdict *v)
{
	struct envelope env = {0};
	struct rule_ctx ctx = {.client_ip = "203.0.113.5", .server_name = "mx.example.com",
			       .helo = "client.example"};
	enum rule_status status;

	snprintf(env.id, sizeof(env.id), "0123456789ABCDEF");
	assert_int_equal(envelope_set(&env.mail_from, "alice@example.net"), 0);
	assert_int_equal(envelope_add_rcpt(&env, "bob@example.org", 0, NULL, NULL), 0);
	assert_int_equal(envelope_add_rcpt(&env, "carol@example.com", 0, NULL, NULL), 0);
	ctx.env = &env;
	if (with_route) {
		ctx.route = record_route;
		ctx.route_arg = log;
	}
	status = rules_run(r, stage, &ctx, v);
	rules_ctx_release(&ctx);
	envelope_clear(&env);
	return status;
}

/* assert_call - the nth recorded call. */
static void assert_call(const struct route_log *log, size_t n, const char *rcpt,
			enum rule_route kind, const char *target)
{
	const struct route_call *c;

	if (n >= log->n)
		fail_msg("call %zu not made (%zu calls)", n, log->n);
	c = &log->calls[n];
	assert_int_equal(c->all, rcpt == NULL);
	assert_string_equal(c->rcpt, rcpt != NULL ? rcpt : "");
	assert_int_equal(c->kind, kind);
	assert_string_equal(c->target, target);
}

static void test_delivery_methods_choose_each_transport(void **state)
{
	struct rules *r = load_ok(
		"return { delivery = {\n"
		"  action \"routes\" (function(ctx)\n"
		"    assert(ctx:deliver(\"bob@example.org\") == nil)\n"
		"    ctx:forward(\"bob@example.org\", \"relay.example.net\")\n"
		"    ctx:forward(ctx.rcpt_list[2], \"[relay.example.net]:587\")\n"
		"    ctx:forward(\"bob@EXAMPLE.org\", \"[2001:db8::25]:2525\")\n"
		"    ctx:maildir(address(\"carol@example.com\"))\n"
		"    ctx:mbox(\"bob@example.org\")\n"
		"    ctx:lmtp(\"carol@example.com\")\n"
		"    ctx:lmtp(\"carol@example.com\", \"\")\n"
		"    ctx:lmtp(\"bob@example.org\", \"unix:/run/dovecot/lmtp\")\n"
		"    ctx:lmtp(\"bob@example.org\", \"[::1]:24\")\n"
		"    ctx:disable_delivery(\"carol@example.com\")\n"
		"    ctx:deliver_all()\n"
		"    ctx:forward_all(\"192.0.2.25:25\")\n"
		"    ctx:maildir_all()\n"
		"    ctx:mbox_all()\n"
		"    ctx:lmtp_all()\n"
		"    ctx:lmtp_all(\"unix:/run/lmtp\", nil)\n"
		"    ctx:disable_delivery_all()\n"
		"  end),\n"
		"} }\n");
	struct route_log log = {0};
	struct rule_verdict v;

	assert_int_equal(run_stage(r, RULE_STAGE_DELIVERY, &log, 1, &v), RULE_NEXT);
	assert_int_equal(log.n, 18);
	assert_call(&log, 0, "bob@example.org", ROUTE_DELIVER, "");
	assert_call(&log, 1, "bob@example.org", ROUTE_FORWARD, "relay.example.net");
	assert_call(&log, 2, "carol@example.com", ROUTE_FORWARD, "[relay.example.net]:587");
	/* The domain matches in any case; the callback gets the envelope's. */
	assert_call(&log, 3, "bob@example.org", ROUTE_FORWARD, "[2001:db8::25]:2525");
	assert_call(&log, 4, "carol@example.com", ROUTE_MAILDIR, "");
	assert_call(&log, 5, "bob@example.org", ROUTE_MBOX, "");
	assert_call(&log, 6, "carol@example.com", ROUTE_LMTP, "");
	assert_call(&log, 7, "carol@example.com", ROUTE_LMTP, "");
	assert_call(&log, 8, "bob@example.org", ROUTE_LMTP, "unix:/run/dovecot/lmtp");
	assert_call(&log, 9, "bob@example.org", ROUTE_LMTP, "[::1]:24");
	assert_call(&log, 10, "carol@example.com", ROUTE_NONE, "");
	assert_call(&log, 11, NULL, ROUTE_DELIVER, "");
	assert_call(&log, 12, NULL, ROUTE_FORWARD, "192.0.2.25:25");
	assert_call(&log, 13, NULL, ROUTE_MAILDIR, "");
	assert_call(&log, 14, NULL, ROUTE_MBOX, "");
	assert_call(&log, 15, NULL, ROUTE_LMTP, "");
	assert_call(&log, 16, NULL, ROUTE_LMTP, "unix:/run/lmtp");
	assert_call(&log, 17, NULL, ROUTE_NONE, "");
	rules_free(r);
}

static void test_delivery_methods_raise_outside_the_delivery_stage(void **state)
{
	static const enum rule_stage stages[] = {RULE_STAGE_MAIL, RULE_STAGE_RCPT, RULE_STAGE_PREQ,
						 RULE_STAGE_POSTQ};
	char text[512];
	struct route_log log = {0};
	struct rule_verdict v;
	struct rules *r;
	size_t i;

	for (i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
		snprintf(text, sizeof(text),
			 "return { %s = { action \"a\" (function(ctx)\n"
			 "  ctx:forward(\"bob@example.org\", \"relay.example.net\")\n"
			 "end) } }\n",
			 rules_stage_name(stages[i]));
		r = load_ok(text);
		/* Even with a callback set by mistake, only delivery may route. */
		if (run_stage(r, stages[i], &log, 1, &v) != RULE_ERROR)
			fail_msg("ctx:forward at %s did not fail", rules_stage_name(stages[i]));
		assert_string_equal(v.rule, "a");
		assert_int_equal(v.reply.code, 451);
		rules_free(r);
	}
	assert_int_equal(log.n, 0);
}

/* Each body must raise an error whose message holds the text after it. */
static const char *const route_misuse[][2] = {
	{"ctx:maildir(\"dave@example.org\")", "ctx:maildir: dave@example.org is not a recipient"},
	{"ctx:forward(\"alice@example.net\", \"relay.example.net\")",
	 "ctx:forward: alice@example.net is not a recipient"},
	{"ctx:forward(\"bob@example.org\", \"unix:/run/relay.sock\")", "ctx:forward: \"unix:/run/relay.sock\": SMTP goes over TCP"},
	{"ctx:forward_all(\"unix:/run/relay.sock\")", "ctx:forward_all: \"unix:/run/relay.sock\": SMTP goes over TCP"},
	{"ctx:forward(\"bob@example.org\", \"\")", "\"\" is not a destination"},
	{"ctx:forward(\"bob@example.org\", \"relay.example.net:0\")",
	 "\"relay.example.net:0\" is not a destination"},
	{"ctx:forward(\"bob@example.org\", \"relay.example.net:65536\")", "is not a destination"},
	{"ctx:forward(\"bob@example.org\", \"2001:db8::1\")", "is not a destination"},
	{"ctx:forward(\"bob@example.org\", \"[2001:db8::1\")", "is not a destination"},
	{"ctx:forward(\"bob@example.org\", \"bad host\")", "is not a destination"},
	{"ctx:forward(\"bob@example.org\", \"relay\\0.example.net\")", "is not a destination"},
	{"ctx:forward(\"bob@example.org\", string.rep(\"a\", 300))", "at most 255 bytes"},
	{"ctx:forward(\"bob@example.org\")", "string expected"},
	{"ctx:lmtp(\"bob@example.org\", \"unix:relative\")", "is not a destination"},
	{"ctx:lmtp_all(\"lmtp.example.net:99999\")", "is not a destination"},
	{"ctx:maildir(\"not an address\")", "not an address"},
	{"ctx:maildir(42)", "address or string expected"},
	{"ctx:maildir_all(\"bob@example.org\")",
	 "ctx:maildir_all(): too many arguments (for one recipient: ctx:maildir(rcpt))"},
	{"ctx:deliver(\"bob@example.org\", \"relay.example.net\")",
	 "ctx:deliver(rcpt): too many arguments"},
	{"ctx:lmtp_all(\"unix:/run/lmtp\", \"x\")", "ctx:lmtp_all([target]): too many arguments"},
};

/* lua_quoted - s as a Lua string literal into out. */
static const char *lua_quoted(const char *s, char *out, size_t len)
{
	size_t k = 0;

	out[k++] = '"';
	for (; *s != '\0' && k + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			out[k++] = '\\';
		out[k++] = *s;
	}
	out[k++] = '"';
	out[k] = '\0';
	return out;
}

static void test_delivery_methods_refuse_misuse(void **state)
{
	char text[1400], quoted[300];
	struct route_log log = {0};
	struct rule_verdict v;
	struct rules *r;
	size_t i;

	for (i = 0; i < sizeof(route_misuse) / sizeof(route_misuse[0]); i++) {
		/* The rule catches the error to check its message. */
		snprintf(text, sizeof(text),
			 "return { delivery = { rule \"r\" (function(ctx)\n"
			 "  local ok, err = pcall(function() %s end)\n"
			 "  if ok then return status.deny(code(554, \"\", \"no error\")) end\n"
			 "  if not err:find(%s, 1, true) then\n"
			 "    return status.deny(code(554, \"\", (err:gsub(\"[^ -~]\", \"?\"))))\n"
			 "  end\n"
			 "  return status.accept()\n"
			 "end) } }\n",
			 route_misuse[i][0], lua_quoted(route_misuse[i][1], quoted, sizeof(quoted)));
		r = load_ok(text);
		if (run_stage(r, RULE_STAGE_DELIVERY, &log, 1, &v) != RULE_ACCEPT)
			fail_msg("%s: %s, %s", route_misuse[i][0], rules_status_name(v.status),
				 v.reply.text);
		rules_free(r);
	}
	assert_int_equal(log.n, 0); /* nothing refused reached the callback */
}

static void test_delivery_methods_fail_the_rule_uncaught(void **state)
{
	struct rules *r = load_ok("return { delivery = { rule \"r\" (function(ctx)\n"
				  "  ctx:maildir(\"dave@example.org\")\n"
				  "  return status.next()\n"
				  "end) } }\n");
	struct route_log log = {0};
	struct rule_verdict v;

	assert_int_equal(run_stage(r, RULE_STAGE_DELIVERY, &log, 1, &v), RULE_ERROR);
	assert_string_equal(v.reply.enhanced, "4.3.0");
	rules_free(r);
	/* The delivery stage without a callback: nobody to tell, so it raises. */
	r = load_ok("return { delivery = { rule \"r\" (function(ctx)\n"
		    "  ctx:deliver_all() return status.next()\n"
		    "end) } }\n");
	assert_int_equal(run_stage(r, RULE_STAGE_DELIVERY, &log, 0, &v), RULE_ERROR);
	assert_int_equal(log.n, 0);
	rules_free(r);
}

static void test_delivery_methods_report_what_the_callback_refuses(void **state)
{
	static const char rules_text[] =
		"return { delivery = { rule \"r\" (function(ctx)\n"
		"  local ok, err = pcall(ctx.maildir_all, ctx)\n"
		"  local ok2, err2 = pcall(ctx.mbox, ctx, \"bob@example.org\")\n"
		"  if ok or ok2 then return status.deny() end\n"
		"  if err:find(\"is not a destination\", 1, true) then return status.reject() end\n"
		"  if err2:find(\"ctx:mbox: bob@example.org is not a recipient\", 1, true) then\n"
		"    return status.accept()\n"
		"  end\n"
		"  return status.deny(code(554, \"\", err .. \" / \" .. err2))\n"
		"end) } }\n";
	struct rules *r = load_ok(rules_text);
	struct route_log log = {.answer = ENOENT};
	struct rule_verdict v;

	if (run_stage(r, RULE_STAGE_DELIVERY, &log, 1, &v) != RULE_ACCEPT)
		fail_msg("ENOENT: %s %s", rules_status_name(v.status), v.reply.text);
	log.answer = EINVAL;
	assert_int_equal(run_stage(r, RULE_STAGE_DELIVERY, &log, 1, &v), RULE_REJECT);
	rules_free(r);
}

/* ---- postq and delivery offline ---------------------------------------- */

#define STEPS_MAX 16

/* What rules_offline_run reported: each step, and the delivery's routes. */
struct offline_log {
	struct offline_step steps[STEPS_MAX];
	size_t n;
	char routes[8][300]; /* "rcpt -> route" */
	size_t nroutes;
};

/* record_step - the report callback: keep the steps and the routes. */
static void record_step(void *arg, const struct offline_step *step)
{
	struct offline_log *log = arg;
	char route[RULE_ROUTE_TARGET_MAX + 16];
	size_t i;

	assert_true(log->n < STEPS_MAX);
	log->steps[log->n] = *step;
	log->steps[log->n].routes = NULL; /* valid during the call only */
	log->n++;
	for (i = 0; i < step->nroutes; i++) {
		assert_true(log->nroutes < 8);
		rules_offline_route_format(step->routes[i].kind, step->routes[i].target, route,
					   sizeof(route));
		snprintf(log->routes[log->nroutes++], sizeof(log->routes[0]), "%s -> %s",
			 step->routes[i].rcpt, route);
	}
}

/* run_offline - a message from a@example.net to rcpts; the outcome. */
static enum offline_outcome run_offline(struct rules *r, const char *const *rcpts, size_t n,
					struct offline_log *log, struct offline_step *final)
{
	struct offline_tx tx = {.client_ip = "203.0.113.5",
				.mail_from = "a@example.net",
				.rcpts = rcpts,
				.nrcpts = n,
				.server_name = "mx.example.com"};

	memset(log, 0, sizeof(*log));
	return rules_offline_run(r, &tx, record_step, log, final);
}

/* last_step - the last step reported. */
static const struct offline_step *last_step(const struct offline_log *log)
{
	assert_true(log->n > 0);
	return &log->steps[log->n - 1];
}

static void test_offline_run_reports_the_routes_after_queueing(void **state)
{
	struct rules *r = load_ok(
		"return {\n"
		"  preq = { action \"tag\" (function(ctx) ctx:set(\"tagged\", true) end) },\n"
		"  postq = { rule \"p\" (function(ctx)\n"
		"    assert(ctx:get(\"tagged\") and ctx.size > 0 and #ctx.rcpt_list == 4)\n"
		"    return status.next() end) },\n"
		"  delivery = { action \"route\" (function(ctx)\n"
		"    ctx:forward_all(\"[relay.example.net]:587\")\n"
		"    ctx:maildir(\"bob@example.com\")\n"
		"    ctx:mbox(\"carol@example.com\")\n"
		"    ctx:mbox(\"carol@Example.COM\")\n"
		"    ctx:lmtp(\"dave@example.com\", \"unix:/run/lmtp\")\n"
		"    ctx:disable_delivery(\"dave@example.com\")\n"
		"  end) },\n"
		"}\n");
	const char *rcpts[] = {"bob@example.com", "carol@example.com", "dave@example.com",
			       "eve@example.org"};
	struct offline_step final;
	struct offline_log log;

	assert_int_equal(run_offline(r, rcpts, 4, &log, &final), OFFLINE_QUEUED);
	/* final stays the client's last reply */
	assert_int_equal(final.stage, RULE_STAGE_PREQ);
	assert_string_equal(final.reply, "250 2.0.0 Ok: queued as OFFLINE");
	assert_int_equal(log.steps[log.n - 2].stage, RULE_STAGE_POSTQ);
	assert_int_equal(log.steps[log.n - 2].after, OFFLINE_AFTER_NONE);
	assert_int_equal(last_step(&log)->stage, RULE_STAGE_DELIVERY);
	assert_int_equal(last_step(&log)->after, OFFLINE_AFTER_DELIVERED);
	assert_string_equal(last_step(&log)->reply, "");
	assert_int_equal(log.nroutes, 4);
	assert_string_equal(log.routes[0], "bob@example.com -> maildir");
	assert_string_equal(log.routes[1], "carol@example.com -> mbox");
	assert_string_equal(log.routes[2], "dave@example.com -> disabled");
	assert_string_equal(log.routes[3], "eve@example.org -> forward [relay.example.net]:587");
	rules_free(r);

	/* No choice: every recipient's route is the default; an _all form
	 * overrides the choices made before it. */
	r = load_ok("return { delivery = { action \"a\" (function(ctx)\n"
		    "  ctx:maildir(\"bob@example.com\") ctx:lmtp_all()\n"
		    "  ctx:deliver(\"eve@example.org\")\n"
		    "end) } }\n");
	assert_int_equal(run_offline(r, rcpts, 4, &log, NULL), OFFLINE_QUEUED);
	assert_string_equal(log.routes[0], "bob@example.com -> lmtp");
	assert_string_equal(log.routes[3], "eve@example.org -> deliver");
	rules_free(r);
	r = load_ok("return {}\n");
	assert_int_equal(run_offline(r, rcpts, 2, &log, NULL), OFFLINE_QUEUED);
	assert_int_equal(log.nroutes, 2);
	assert_string_equal(log.routes[1], "carol@example.com -> default");
	rules_free(r);
}

static void test_offline_postq_and_delivery_decide_the_queued_message(void **state)
{
	static const struct {
		const char *rules;
		enum rule_stage stage; /* the last stage reported */
		enum offline_after after;
		const char *reply;
	} cases[] = {
		{"postq = { rule \"q\" (function(ctx) return status.quarantine(\"held\") end) }",
		 RULE_STAGE_POSTQ, OFFLINE_AFTER_QUARANTINED, "quarantine/held"},
		{"postq = { rule \"d\" (function(ctx) return status.deny() end) }", RULE_STAGE_POSTQ,
		 OFFLINE_AFTER_BOUNCED, "554 5.7.1 Rejected by local policy"},
		{"postq = { rule \"r\" (function(ctx) return status.reject() end) }",
		 RULE_STAGE_POSTQ, OFFLINE_AFTER_DEFERRED,
		 "451 4.7.1 Rejected by local policy, try again later"},
		{"postq = { rule \"e\" (function(ctx) error(\"boom\") end) }", RULE_STAGE_POSTQ,
		 OFFLINE_AFTER_DEFERRED, "451 4.3.0 error in the postq rules"},
		{"postq = { action \"x\" (function(ctx) ctx:remove_rcpt(\"bob@example.com\") end) }",
		 RULE_STAGE_POSTQ, OFFLINE_AFTER_DISCARDED, "every recipient removed"},
		{"delivery = { rule \"d\" (function(ctx) return status.deny(code(550, \"5.1.1\", "
		 "\"gone\")) end) }",
		 RULE_STAGE_DELIVERY, OFFLINE_AFTER_BOUNCED, "550 5.1.1 gone"},
		{"delivery = { rule \"e\" (function(ctx) ctx:maildir(\"x@example.net\") end) }",
		 RULE_STAGE_DELIVERY, OFFLINE_AFTER_DEFERRED, "451 4.3.0 error in the delivery rules"},
		/* info answers nobody offline: the message goes on */
		{"postq = { rule \"i\" (function(ctx) return status.info(code(550, \"5.1.1\", "
		 "\"gone\")) end) }",
		 RULE_STAGE_DELIVERY, OFFLINE_AFTER_DELIVERED, ""},
		/* the delivery stage cannot change the recipients */
		{"delivery = { action \"x\" (function(ctx) ctx:remove_rcpt(\"bob@example.com\") "
		 "end) }",
		 RULE_STAGE_DELIVERY, OFFLINE_AFTER_DELIVERED, ""},
		{"delivery = { rule \"q\" (function(ctx) return ctx:quarantine(\"late\") end) }",
		 RULE_STAGE_DELIVERY, OFFLINE_AFTER_QUARANTINED, "quarantine/late"},
		/* faccept at postq skips the delivery rules: the routes stay default */
		{"postq = { rule \"f\" (function(ctx) return status.faccept() end) },\n"
		 "delivery = { rule \"d\" (function(ctx) return status.deny() end) }",
		 RULE_STAGE_DELIVERY, OFFLINE_AFTER_DELIVERED, ""},
	};
	const char *rcpts[] = {"bob@example.com"};
	char text[512];
	struct offline_log log;
	struct rules *r;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "return {\n%s\n}\n", cases[i].rules);
		r = load_ok(text);
		assert_int_equal(run_offline(r, rcpts, 1, &log, NULL), OFFLINE_QUEUED);
		if (last_step(&log)->stage != cases[i].stage ||
		    last_step(&log)->after != cases[i].after)
			fail_msg("%s: ended at %s, %s", cases[i].rules,
				 rules_stage_name(last_step(&log)->stage),
				 rules_offline_after_name(last_step(&log)->after));
		assert_string_equal(last_step(&log)->reply, cases[i].reply);
		rules_free(r);
	}
}

static void test_offline_stages_run_only_for_a_queued_message(void **state)
{
	struct rules *r = load_ok(
		"return {\n"
		"  rcpt = { rule \"r\" (function(ctx)\n"
		"    if ctx.rcpt.local_part == \"held\" then return status.quarantine(\"h\") end\n"
		"    if ctx.rcpt.local_part == \"no\" then return status.deny() end\n"
		"    return status.next() end) },\n"
		"  postq = { rule \"p\" (function(ctx) return status.deny() end) },\n"
		"}\n");
	const char *held[] = {"held@example.com"}, *refused[] = {"no@example.com"};
	struct offline_log log;
	size_t i;

	assert_int_equal(run_offline(r, held, 1, &log, NULL), OFFLINE_QUARANTINED);
	for (i = 0; i < log.n; i++)
		assert_true(log.steps[i].stage < RULE_STAGE_POSTQ);
	assert_int_equal(run_offline(r, refused, 1, &log, NULL), OFFLINE_REFUSED);
	for (i = 0; i < log.n; i++)
		assert_true(log.steps[i].stage < RULE_STAGE_POSTQ);
	rules_free(r);
}

/* The pipe the overrun handler of the child below writes into. */
static int overrun_pipe = -1;

/* write_overrun - the overrun handler: the rule running, as "stage rule where"
 * (snprintf is safe enough here: the child does nothing else). */
static void write_overrun(void)
{
	const volatile struct rules_running *now = rules_running();
	char line[512];

	snprintf(line, sizeof(line), "%s %s %s", rules_stage_name(now->stage),
		 now->rule ? now->rule : "(none)", now->where ? now->where : "(none)");
	if (write(overrun_pipe, line, strlen(line)) < 0)
		_exit(99);
}

static void test_overrun_handler_learns_the_rule(void **state)
{
	static const char text[] =
	    "return {\n"
	    "  postq = {\n"
	    "    rule \"quick\" (function(ctx) return status.next() end),\n"
	    "    rule \"backtracks\" (function(ctx)\n"
	    "      ('a'):rep(40):match(('a?'):rep(40) .. ('a'):rep(40) .. 'b')\n"
	    "      return status.next()\n"
	    "    end),\n"
	    "  },\n"
	    "}\n";
	struct rules_limits limits = {.instructions = 200000, .memory = 4 << 20, .cpu_ms = 50};
	struct rules_settings settings = {.hostname = "mx.example.com"};
	char err[1024], got[512] = "", want[600];
	struct rule_verdict v;
	struct rules *r;
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	r = rules_load(write_file("main.lua", text), &limits, &settings, err, sizeof(err));
	if (r == NULL)
		fail_msg("%s", err);
	assert_null(rules_running()->rule); /* between calls: none */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		overrun_pipe = fds[1];
		rules_set_overrun(write_overrun);
		run_stage(r, RULE_STAGE_POSTQ, NULL, 0, &v);
		_exit(0); /* not reached: the rule runs for ever */
	}
	close(fds[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), RULES_EXIT_OVERRUN);
	n = read(fds[0], got, sizeof(got) - 1);
	close(fds[0]);
	assert_true(n > 0);
	got[n] = '\0';
	snprintf(want, sizeof(want), "postq backtracks %s/main.lua:4", dir);
	assert_string_equal(got, want);
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
		cmocka_unit_test(test_endless_loop_at_load_is_stopped_by_the_time_limit),
		cmocka_unit_test(test_globals_are_locked_after_loading),
		cmocka_unit_test(test_default_policy_is_no_open_relay),
		cmocka_unit_test(test_preq_edits_and_quarantine),
		cmocka_unit_test(test_delivery_methods_choose_each_transport),
		cmocka_unit_test(test_delivery_methods_raise_outside_the_delivery_stage),
		cmocka_unit_test(test_delivery_methods_refuse_misuse),
		cmocka_unit_test(test_delivery_methods_fail_the_rule_uncaught),
		cmocka_unit_test(test_delivery_methods_report_what_the_callback_refuses),
		cmocka_unit_test(test_offline_run_reports_the_routes_after_queueing),
		cmocka_unit_test(test_offline_postq_and_delivery_decide_the_queued_message),
		cmocka_unit_test(test_offline_stages_run_only_for_a_queued_message),
		cmocka_unit_test(test_overrun_handler_learns_the_rule),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
