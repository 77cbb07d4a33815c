/*
 * test_rules_hold.c - ctx:hold() without a daemon: the mark it leaves in
 * the rule context (the connection's before MAIL, the transaction's from
 * MAIL on, with the rule and the stage), the reasons it takes and refuses,
 * that the rules go on after it, and what rules_offline_run() makes of it:
 * held at preq or before, held after postq, a refusal or a quarantine
 * winning over it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "envelope.h"
#include "helper_mail.h"
#include "helper_rules.h"
#include "rules.h"
#include "rules_offline.h"

/* load_ok - compile text as main.lua, failing the test with the error. */
static struct rules *load_ok(const char *text)
{
	struct rules_limits limits = {.instructions = 200000, .memory = 4 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com",
					  .local_domains = "example.com",
					  .trusted_networks = "192.0.2.0/24"};

	return test_rules_load_ok(test_dir, text, &limits, &settings);
}

/* The steps an offline run reported. */
struct steps {
	struct offline_step v[16];
	size_t n;
};

/* record - the report callback. */
static void record(void *arg, const struct offline_step *step)
{
	struct steps *s = arg;

	assert_true(s->n < 16);
	s->v[s->n] = *step;
	s->v[s->n].routes = NULL;
	s->n++;
}

/* run - one message from a@example.net to bob@example.com with subject. */
static enum offline_outcome run(struct rules *r, const char *subject, struct steps *s,
				struct offline_step *final)
{
	static const char *const rcpts[] = {"bob@example.com"};
	char message[256];
	struct offline_tx tx = {.client_ip = "203.0.113.5",
				.mail_from = "a@example.net",
				.rcpts = rcpts,
				.nrcpts = 1,
				.server_name = "mx.example.com"};

	snprintf(message, sizeof(message), "From: <a@example.net>\r\nSubject: %s\r\n\r\nhi\r\n",
		 subject);
	tx.message = message;
	tx.message_len = strlen(message);
	memset(s, 0, sizeof(*s));
	return rules_offline_run(r, &tx, record, s, final);
}

static void test_the_mark_is_the_connections_before_mail_the_transactions_after(void **state)
{
	struct rules *r = load_ok(
		"return {\n"
		"  connect = { action \"c\" (function(ctx) ctx:hold() end) },\n"
		"  mail = { rule \"m\" (function(ctx)\n"
		"    if ctx.mail_from.local_part == \"carol\" then ctx:hold(\"carol\") end\n"
		"    return status.next() end) },\n"
		"}\n");
	struct envelope env = {0};
	struct rule_ctx ctx = {.client_ip = "203.0.113.5", .helo = "", .server_name = "mx"};
	struct rule_verdict v;
	const struct rule_hold *h;

	assert_null(rules_hold(&ctx));
	rules_run(r, RULE_STAGE_CONNECT, &ctx, &v);
	assert_int_equal(v.status, RULE_NEXT);
	assert_non_null(h = rules_hold(&ctx));
	assert_ptr_equal(h, &ctx.hold);
	assert_string_equal(h->reason, "held by rule \"c\" at connect");
	assert_string_equal(h->rule, "c");
	assert_int_equal(h->stage, RULE_STAGE_CONNECT);

	/* from MAIL on, the transaction's own; it ends with the transaction */
	ctx.env = &env;
	assert_int_equal(envelope_set(&env.mail_from, "carol@example.net"), 0);
	rules_run(r, RULE_STAGE_MAIL, &ctx, &v);
	assert_non_null(h = rules_hold(&ctx));
	assert_ptr_equal(h, &ctx.tx_hold);
	assert_string_equal(h->reason, "carol");
	assert_string_equal(h->rule, "m");
	assert_int_equal(h->stage, RULE_STAGE_MAIL);
	rules_tx_end(&ctx);
	assert_ptr_equal(rules_hold(&ctx), &ctx.hold);
	rules_ctx_release(&ctx);
	assert_null(rules_hold(&ctx));
	envelope_clear(&env);
	rules_free(r);
}

static void test_bad_reasons_and_the_delivery_stage_fail_the_rule(void **state)
{
	static const char *const calls[] = {
		"ctx:hold(\"\")", "ctx:hold(\"tab\\there\")", "ctx:hold(\"caf\\195\\169\")",
		"ctx:hold(string.rep(\"x\", 256))", "ctx:hold({})",
	};
	char text[512];
	struct steps s;
	struct rules *r;
	size_t i;

	for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		snprintf(text, sizeof(text),
			 "return { preq = { action \"a\" (function(ctx) %s end) } }\n", calls[i]);
		r = load_ok(text);
		if (run(r, "x", &s, NULL) != OFFLINE_DEFERRED)
			fail_msg("%s did not fail the rule", calls[i]);
		assert_int_equal(s.v[s.n - 1].v.status, RULE_ERROR);
		rules_free(r);
	}
	/* 255 bytes is the most */
	r = load_ok("return { preq = { action \"a\" (function(ctx) ctx:hold(string.rep(\"x\", 255))"
		    " end) } }\n");
	assert_int_equal(run(r, "x", &s, NULL), OFFLINE_HELD);
	assert_int_equal(strlen(s.v[s.n - 1].hold), 255);
	rules_free(r);
	/* held at delivery: an error, and the message is deferred */
	r = load_ok("return { delivery = { action \"d\" (function(ctx) ctx:hold(\"late\") end) } }\n");
	assert_int_equal(run(r, "x", &s, NULL), OFFLINE_QUEUED);
	assert_int_equal(s.v[s.n - 1].stage, RULE_STAGE_DELIVERY);
	assert_int_equal(s.v[s.n - 1].after, OFFLINE_AFTER_DEFERRED);
	rules_free(r);
}

static void test_offline_held_at_preq_goes_no_further_and_rules_go_on(void **state)
{
	struct rules *r = load_ok(
		"return {\n"
		"  preq = {\n"
		"    action \"hold\" (function(ctx)\n"
		"      if ctx:get_header(\"Subject\") ~= \"plain\" then ctx:hold(\"look first\") end\n"
		"    end),\n"
		"    rule \"after\" (function(ctx)\n"
		"      local subject = ctx:get_header(\"Subject\")\n"
		"      if subject == \"refuse\" then return status.deny() end\n"
		"      if subject == \"keep\" then return status.quarantine(\"kept\") end\n"
		"      return status.next() end),\n"
		"  },\n"
		"  postq = { rule \"p\" (function(ctx) return status.deny() end) },\n"
		"}\n");
	struct offline_step final;
	struct steps s;
	size_t i;

	assert_int_equal(run(r, "hold", &s, &final), OFFLINE_HELD);
	assert_int_equal(final.stage, RULE_STAGE_PREQ);
	assert_string_equal(final.reply, "250 2.0.0 Ok: queued as OFFLINE");
	assert_string_equal(final.hold, "look first");
	assert_string_equal(rules_offline_outcome_name(OFFLINE_HELD), "held");
	/* postq (which would deny) is not run: it would not before a release */
	for (i = 0; i < s.n; i++)
		assert_true(s.v[i].stage < RULE_STAGE_POSTQ);
	/* the rule after the hold still decides */
	assert_int_equal(run(r, "refuse", &s, &final), OFFLINE_REFUSED);
	assert_string_equal(final.hold, "");
	assert_int_equal(run(r, "keep", &s, &final), OFFLINE_QUARANTINED);
	assert_string_equal(final.hold, "");
	/* nothing held: queued, and postq runs */
	assert_int_equal(run(r, "plain", &s, &final), OFFLINE_QUEUED);
	assert_int_equal(s.v[s.n - 1].stage, RULE_STAGE_POSTQ);
	rules_free(r);
}

static void test_offline_held_at_postq_stops_before_delivery(void **state)
{
	struct rules *r = load_ok(
		"return {\n"
		"  postq = { action \"p\" (function(ctx) ctx:hold(\"review\") end),\n"
		"            rule \"q\" (function(ctx)\n"
		"              if ctx:get_header(\"Subject\") == \"keep\" then\n"
		"                return status.quarantine(\"kept\") end\n"
		"              return status.next() end) },\n"
		"  delivery = { action \"d\" (function(ctx) ctx:maildir_all() end) },\n"
		"}\n");
	struct steps s;

	assert_int_equal(run(r, "x", &s, NULL), OFFLINE_QUEUED);
	assert_int_equal(s.v[s.n - 1].stage, RULE_STAGE_POSTQ);
	assert_int_equal(s.v[s.n - 1].after, OFFLINE_AFTER_HELD);
	assert_string_equal(s.v[s.n - 1].hold, "review");
	assert_string_equal(s.v[s.n - 1].reply, "hold: review");
	assert_string_equal(rules_offline_after_name(OFFLINE_AFTER_HELD), "held");
	/* a quarantine after it wins */
	assert_int_equal(run(r, "keep", &s, NULL), OFFLINE_QUEUED);
	assert_int_equal(s.v[s.n - 1].after, OFFLINE_AFTER_QUARANTINED);
	assert_string_equal(s.v[s.n - 1].hold, "");
	rules_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_mark_is_the_connections_before_mail_the_transactions_after),
		cmocka_unit_test(test_bad_reasons_and_the_delivery_stage_fail_the_rule),
		cmocka_unit_test(test_offline_held_at_preq_goes_no_further_and_rules_go_on),
		cmocka_unit_test(test_offline_held_at_postq_stops_before_delivery),
	};

	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
