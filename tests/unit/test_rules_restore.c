/*
 * test_rules_restore.c - rules_restore(): after it, the rules see what a
 * freshly forked session process would, whatever the connections before
 * changed: locals of the rules file (upvalues, shared ones too), global
 * and file-level tables however deep, metatables, a module's table, the
 * libraries and the strings' metatable, functions in tables; values
 * computed at load stay the loaded ones; list objects keep working; what
 * C code changed (a user value, the registry) comes back too; a thousand
 * connections leave the state's memory bounded. Each rules file
 * has a connect rule "probe" that reports what it sees (the text of a 250
 * info reply) and then changes it, so two connections without a restore
 * report different things, and with one between, the same. The last test
 * times rules_restore() for the shipped rules, the benchmark's and a file
 * with a 100,000-entry table, and prints the figures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helper_mail.h"
#include "rules.h"
#include "rules_internal.h"
#include "rules_offline.h"

/* write_file - name in the scratch folder with text; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", test_dir, name);
	assert_non_null(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* load_path - compile the rules file at path, failing the test with the error. */
static struct rules *load_path(const char *path)
{
	struct rules_limits limits = {.instructions = 1000000, .memory = 16 << 20,
				      .load_ms = 5000};
	struct rules_settings settings = {.hostname = "mx.example.com",
					  .local_domains = "example.com",
					  .trusted_networks = "192.0.2.0/24"};
	char err[1024];
	struct rules *r = rules_load(path, &limits, &settings, err, sizeof(err));

	if (r == NULL)
		fail_msg("%s", err);
	return r;
}

/* load_ok - compile text as main.lua in the scratch folder. */
static struct rules *load_ok(const char *text)
{
	return load_path(write_file("main.lua", text));
}

/* probe - one connection: the connect stage, whose rule "probe" answers
 * status.info(code(450, ..., report)); returns the report (static buffer). */
static const char *probe(struct rules *r)
{
	static char report[RULE_TEXT_MAX];
	struct rule_ctx ctx = {.client_ip = "203.0.113.5", .helo = "", .server_name = "mx"};
	struct rule_verdict v;

	rules_run(r, RULE_STAGE_CONNECT, &ctx, &v);
	if (v.status != RULE_INFO)
		fail_msg("the probe gave status %s, not info", rules_status_name(v.status));
	snprintf(report, sizeof(report), "%s", v.reply.text);
	rules_ctx_release(&ctx);
	return report;
}

/* expect_restored - the probe reports first, then (changed) second without
 * a restore, then first again after rules_restore(). */
static void expect_restored(struct rules *r, const char *first, const char *second)
{
	assert_string_equal(probe(r), first);
	assert_string_equal(probe(r), second);
	assert_int_equal(rules_restore(r), 0);
	assert_string_equal(probe(r), first);
	assert_int_equal(rules_restore(r), 0);
	assert_string_equal(probe(r), first);
}

/* The probe rule around body, which sets the local report and changes things. */
#define PROBE(body)                                                                     \
	"return { connect = { rule \"probe\" (function(ctx)\n" body                     \
	"\n  return status.info(code(450, \"4.0.0\", report))\nend) } }\n"

static void test_a_local_counter_starts_again(void **state)
{
	struct rules *r = load_ok("local count = 0\n"
				  "local n = 10\n"
				  "local function bump() n = n + 1 end\n"
				  "local function get() return n end\n" PROBE(
					  "  count = count + 1; bump()\n"
					  "  local report = count .. \"/\" .. get()"));

	(void)state;
	expect_restored(r, "1/11", "2/12");
	rules_free(r);
}

static void test_a_global_tables_fields_come_back(void **state)
{
	struct rules *r = load_ok("settings = { a = 1, b = 2 }\n" PROBE(
		"  local report = settings.a .. \",\" .. tostring(settings.b) .. \",\" ..\n"
		"    tostring(rawget(settings, \"c\"))\n"
		"  settings.a = 10; settings.b = nil; settings.c = 3"));

	(void)state;
	expect_restored(r, "1,2,nil", "10,nil,3");
	rules_free(r);
}

static void test_a_table_two_levels_deep_comes_back(void **state)
{
	struct rules *r = load_ok(
		"local t = { inner = { deep = { v = \"loaded\", list = { 1, 2, 3 } } } }\n"
		"local deep = t.inner.deep\n" PROBE(
			"  local report = t.inner.deep.v .. \":\" .. #t.inner.deep.list .. \":\" ..\n"
			"    tostring(rawequal(deep, t.inner.deep)) .. \":\" ..\n"
			"    tostring(rawget(t.inner.deep, \"extra\"))\n"
			"  deep.v = \"changed\"; deep.extra = {}; table.insert(deep.list, 4)\n"
			"  t.inner = { deep = { v = \"other\", list = {} } }"));

	(void)state;
	expect_restored(r, "loaded:3:true:nil", "other:0:false:nil");
	rules_free(r);
}

static void test_metatables_come_back(void **state)
{
	struct rules *r = load_ok(
		"local obj = setmetatable({}, { __index = function(_, k) return \"loaded \" .. k end })\n"
		"local plain = {}\n" PROBE(
			"  local report = obj.x .. \", \" .. type(getmetatable(plain))\n"
			"  getmetatable(obj).__index = function() return \"edited\" end\n"
			"  setmetatable(plain, { __index = function() return 1 end })"));

	(void)state;
	expect_restored(r, "loaded x, nil", "edited, table");
	rules_free(r);
}

static void test_a_modules_table_comes_back(void **state)
{
	struct rules *r;

	(void)state;
	write_file("helpers.lua", "local M = { n = 0 }\n"
				  "local calls = 0\n"
				  "function M.bump() M.n = M.n + 1; calls = calls + 1\n"
				  "  return M.n .. \"/\" .. calls end\n"
				  "return M\n");
	r = load_ok("local h = require(\"helpers\")\n" PROBE(
		"  local report = h.bump() .. \" \" .. tostring(rawget(h, \"extra\"))\n"
		"  h.extra = \"x\""));
	expect_restored(r, "1/1 nil", "2/2 x");
	rules_free(r);
}

static void test_the_libraries_and_the_strings_metatable_come_back(void **state)
{
	struct rules *r = load_ok(
		"function string.trim(s) return (s:gsub(\"^%s+\", \"\")) end\n" PROBE(
			"  local report = string.upper(\"a\") .. (\"  b\"):trim() .. math.pi ..\n"
			"    tostring(rawget(getmetatable(\"\"), \"__len\"))\n"
			"  string.upper = string.lower; math.pi = 3\n"
			"  getmetatable(\"\").__len = function() return 0 end"));

	(void)state;
	/* already put back after each stage; the restore keeps what the file added */
	assert_string_equal(probe(r), "Ab3.1415926535898nil");
	assert_string_equal(probe(r), "Ab3.1415926535898nil");
	assert_int_equal(rules_restore(r), 0);
	assert_string_equal(probe(r), "Ab3.1415926535898nil");
	rules_free(r);
}

static void test_a_function_replaced_in_a_table_comes_back(void **state)
{
	struct rules *r = load_ok(
		"local handlers = { greet = function() return \"hello\" end }\n" PROBE(
			"  local report = handlers.greet()\n"
			"  handlers.greet = function() return \"bye\" end"));

	(void)state;
	expect_restored(r, "hello", "bye");
	rules_free(r);
}

static void test_values_computed_at_load_are_the_loaded_ones(void **state)
{
	struct rules *r = load_ok(
		"local started = os.time()\n"
		"local clock = string.format(\"%.9f\", os.clock())\n"
		"local token = math.random(1, 1000000000)\n"
		"local squares = {}\n"
		"for i = 1, 100 do squares[i] = i * i end\n" PROBE(
			"  local report = started .. \" \" .. clock .. \" \" .. token .. \" \" ..\n"
			"    #squares .. \" \" .. squares[50]\n"
			"  started = 0; clock = \"\"; token = 0\n"
			"  squares[50] = 0; squares[101] = 1; table.remove(squares, 1)"));
	char first[RULE_TEXT_MAX];

	(void)state;
	snprintf(first, sizeof(first), "%s", probe(r));
	assert_non_null(strstr(first, " 100 2500"));
	assert_string_equal(probe(r), "0  0 100 2601");
	assert_int_equal(rules_restore(r), 0);
	assert_string_equal(probe(r), first);
	rules_free(r);
}

static void test_list_objects_built_at_load_still_work(void **state)
{
	struct rules *r;

	(void)state;
	write_file("domains.txt", "evil.example\n# a comment\nspam.example\n");
	write_file("ips.txt", "198.51.100.0/24\n");
	r = load_ok("local bad = domain_list(\"domains.txt\")\n"
		    "local blocked = ip_list(\"ips.txt\")\n"
		    "local re = regex(\"^mx\")\n"
		    "local lists = { bad = bad }\n" PROBE(
			    "  local report = tostring(lists.bad:contains(\"spam.example\")) .. #bad ..\n"
			    "    tostring(blocked:contains(\"198.51.100.7\")) ..\n"
			    "    tostring(re:match(\"mx1\"))\n"
			    "  lists.bad = domain_list({ \"other.example\" })"));
	expect_restored(r, "true2truetrue", "false2truetrue");
	rules_free(r);
}

static void test_what_c_code_changed_comes_back_too(void **state)
{
	struct rules *r = load_ok("lists = { bad = domain_list({ \"evil.example\" }) }\n" PROBE(
		"  local report = tostring(lists.bad:contains(\"evil.example\"))"));
	lua_State *L = r->L;

	(void)state;
	/* a user value and a registry entry, changed behind the rules' back */
	lua_getglobal(L, "lists");
	lua_getfield(L, -1, "bad");
	lua_newtable(L);
	lua_setiuservalue(L, -2, 1);
	lua_pop(L, 2);
	lua_pushliteral(L, "left behind");
	lua_setfield(L, LUA_REGISTRYINDEX, "test.restore");
	assert_string_equal(probe(r), "false");
	assert_int_equal(rules_restore(r), 0);
	assert_string_equal(probe(r), "true");
	assert_int_equal(lua_getfield(L, LUA_REGISTRYINDEX, "test.restore"), LUA_TNIL);
	lua_pop(L, 1);
	rules_free(r);
}

static void test_the_rules_cannot_reach_the_snapshot(void **state)
{
	struct rules *r = load_ok(PROBE(
		"  local ok = pcall(function() return debug end)\n"
		"  local report = tostring(ok) .. \" \" .. type(getmetatable(_G))"));

	(void)state;
	assert_string_equal(probe(r), "false string");
	rules_free(r);
}

static void test_no_work_when_no_rule_ran(void **state)
{
	struct rules *r = load_ok("local n = 0\n" PROBE("  n = n + 1; local report = tostring(n)"));

	(void)state;
	assert_false(r->ran);
	assert_int_equal(rules_restore(r), 0);
	assert_string_equal(probe(r), "1");
	assert_true(r->ran);
	assert_int_equal(rules_restore(r), 0);
	assert_false(r->ran);
	assert_int_equal(rules_restore(NULL), 0);
	rules_free(r);
}

static void test_a_thousand_connections_keep_the_memory_bounded(void **state)
{
	struct rules *r = load_ok(
		"local cache, count = {}, 0\n" PROBE(
			"  for i = 1, 200 do cache[#cache + 1] = string.rep(\"x\", 100) .. i end\n"
			"  cache.nested = { cache = cache, more = {} }\n"
			"  count = count + 1\n"
			"  local report = count .. \" \" .. #cache"));
	size_t loaded = r->mem.used, peak = 0;
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		assert_string_equal(probe(r), "1 200");
		assert_int_equal(rules_restore(r), 0);
		if (r->mem.used > peak)
			peak = r->mem.used;
	}
	/* a connection adds about 30 KB; a thousand of them kept would be 30 MB */
	if (peak > loaded + (2u << 20))
		fail_msg("the state grew from %zu to %zu bytes", loaded, peak);
	rules_free(r);
}

/* now_ns - CLOCK_MONOTONIC in nanoseconds. */
static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* cmp_u64 - qsort order. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

#define BENCH_ROUNDS 300

/* bench_restore - the median time of rules_restore() after one offline
 * transaction (every stage the file has), and of a full collection, for
 * the rules file at path; printed. */
static void bench_restore(const char *label, const char *path)
{
	static const char *const rcpts[] = {"bob@example.com"};
	static const char message[] = "From: <a@example.net>\r\nSubject: hi\r\n\r\nhi\r\n";
	struct offline_tx tx = {.client_ip = "203.0.113.5",
				.helo = "client.example",
				.mail_from = "a@example.net",
				.rcpts = rcpts,
				.nrcpts = 1,
				.message = message,
				.message_len = sizeof(message) - 1,
				.server_name = "mx.example.com"};
	uint64_t restore[BENCH_ROUNDS], gc[BENCH_ROUNDS], idle, t;
	struct offline_step step;
	struct rules *r = load_path(path);
	size_t loaded = r->mem.used;
	int i;

	for (i = 0; i < BENCH_ROUNDS; i++) {
		rules_offline_run(r, &tx, NULL, NULL, &step);
		t = now_ns();
		assert_int_equal(rules_restore(r), 0);
		restore[i] = now_ns() - t;
		t = now_ns();
		lua_gc(r->L, LUA_GCCOLLECT);
		gc[i] = now_ns() - t;
	}
	t = now_ns();
	assert_int_equal(rules_restore(r), 0);
	idle = now_ns() - t;
	qsort(restore, BENCH_ROUNDS, sizeof(restore[0]), cmp_u64);
	qsort(gc, BENCH_ROUNDS, sizeof(gc[0]), cmp_u64);
	printf("restore %-28s %9.1f us median (%.1f .. %.1f), full collection %9.1f us, "
	       "no rule ran %.2f us, heap %zu KB\n",
	       label, restore[BENCH_ROUNDS / 2] / 1000.0, restore[0] / 1000.0,
	       restore[BENCH_ROUNDS - 1] / 1000.0, gc[BENCH_ROUNDS / 2] / 1000.0, idle / 1000.0,
	       loaded / 1024);
	rules_free(r);
}

static void test_restore_cost(void **state)
{
	const char *src = getenv("VSMTPD_SOURCE_DIR");
	char path[1024];
	FILE *fp;
	int i;

	(void)state;
	if (src != NULL) {
		snprintf(path, sizeof(path), "%s/rules/main.lua", src);
		bench_restore("rules/main.lua", path);
		snprintf(path, sizeof(path), "%s/bench/rules/ten.lua", src);
		bench_restore("bench/rules/ten.lua", path);
	}
	bench_restore("100k-entry table, string keys",
		      write_file("big.lua", "local big = {}\n"
					    "for i = 1, 100000 do big[\"k\" .. i] = i end\n" PROBE(
						    "  local report = tostring(big.k5)")));
	bench_restore("100k-entry table, an array",
		      write_file("array.lua", "local big = {}\n"
					      "for i = 1, 100000 do big[i] = \"v\" .. i end\n" PROBE(
						      "  local report = big[5]")));
	snprintf(path, sizeof(path), "%s/domains.txt", test_dir);
	assert_non_null(fp = fopen(path, "w"));
	for (i = 1; i <= 100000; i++)
		fprintf(fp, "d%d.example\n", i);
	fclose(fp);
	bench_restore("100k-entry domain_list",
		      write_file("list.lua", "local big = domain_list(\"domains.txt\")\n" PROBE(
						     "  local report = tostring(#big)")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_local_counter_starts_again),
		cmocka_unit_test(test_a_global_tables_fields_come_back),
		cmocka_unit_test(test_a_table_two_levels_deep_comes_back),
		cmocka_unit_test(test_metatables_come_back),
		cmocka_unit_test(test_a_modules_table_comes_back),
		cmocka_unit_test(test_the_libraries_and_the_strings_metatable_come_back),
		cmocka_unit_test(test_a_function_replaced_in_a_table_comes_back),
		cmocka_unit_test(test_values_computed_at_load_are_the_loaded_ones),
		cmocka_unit_test(test_list_objects_built_at_load_still_work),
		cmocka_unit_test(test_what_c_code_changed_comes_back_too),
		cmocka_unit_test(test_the_rules_cannot_reach_the_snapshot),
		cmocka_unit_test(test_no_work_when_no_rule_ran),
		cmocka_unit_test(test_a_thousand_connections_keep_the_memory_bounded),
		cmocka_unit_test(test_restore_cost),
	};

	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
