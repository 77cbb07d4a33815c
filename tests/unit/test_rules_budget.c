/*
 * test_rules_budget.c - no way around a rule call's budget, and no way for
 * one stage to change what the next one sees.
 *
 * Lua runs a message handler with hooks off when the error comes from the
 * count hook, and finalizers always: each way the sandbox leaves into such
 * code (xpcall handlers, nested ones, error objects' metamethods, library
 * callbacks, to-be-closed variables, __gc) must end with the budget's error.
 * The CPU time limit is set as a backstop only: were it what stopped a rule,
 * the process would exit (RULES_EXIT_OVERRUN) and the test fail. The engine
 * logs why a rule failed on stderr, which the tests read.
 *
 * The rules state outlives a stage (a session runs several, the delivery
 * worker one after the other for every message): a stage's changes to the
 * library tables, the globals, the strings' metatable and math.random's seed
 * must not reach the next.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rules.h"
#include "rules_offline.h"

static char dir[256];

/* load - compile text as dir/main.lua with a small budget and a CPU time
 * backstop; NULL with err filled on failure. */
static struct rules *load(const char *text, char *err, size_t errlen)
{
	struct rules_limits limits = {.instructions = 200000, .memory = 4 << 20, .cpu_ms = 20000};
	struct rules_settings settings = {.hostname = "mx.example.com",
					  .local_domains = "example.com",
					  .trusted_networks = "192.0.2.0/24"};
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/main.lua", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return rules_load(path, &limits, &settings, err, errlen);
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

/* keep_rcpt_step - the report callback: keep the rcpt stage's step. */
static void keep_rcpt_step(void *arg, const struct offline_step *step)
{
	if (step->stage == RULE_STAGE_RCPT)
		*(struct offline_step *)arg = *step;
}

/* run - one transaction to rcpt; the rcpt stage's step in *step, what the
 * engine logged meanwhile in log. */
static enum offline_outcome run(struct rules *r, const char *rcpt, struct offline_step *step,
				char *log, size_t loglen)
{
	const char *rcpts[] = {rcpt};
	struct offline_tx tx = {.client_ip = "203.0.113.1",
				.helo = "client.example",
				.mail_from = "a@b.example",
				.rcpts = rcpts,
				.nrcpts = 1,
				.server_name = "mx.example.com"};
	char path[512];
	enum offline_outcome o;
	int fd, saved;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	memset(step, 0, sizeof(*step));
	o = rules_offline_run(r, &tx, keep_rcpt_step, step, NULL);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, log, loglen - 1, 0);
	log[n > 0 ? n : 0] = '\0';
	close(fd);
	return o;
}

/* The rcpt rule runs the body given for the recipient's local part. */
static const char budget_rules[] =
	"local function loop() while true do end end\n"
	"local bodies = {\n"
	"  xpcall = function() xpcall(loop, loop) end,\n"
	"  xpcallagain = function() while true do xpcall(loop, loop) end end,\n"
	"  nested = function()\n"
	"    xpcall(loop, function(e) xpcall(loop, function() xpcall(loop, loop) loop() end) loop() end)\n"
	"  end,\n"
	"  handlerafter = function() xpcall(function() error(\"x\") end, loop) end,\n"
	"  handlererrors = function()\n"
	"    xpcall(function() error(\"x\") end, function(e) pcall(loop) error(e) end)\n"
	"  end,\n"
	"  pcallxpcall = function() while true do pcall(xpcall, loop, loop) end end,\n"
	"  xpcallpcall = function() while true do xpcall(pcall, loop, loop) end end,\n"
	"  tostring = function() error(setmetatable({}, {__tostring = loop})) end,\n"
	"  tostringhandler = function()\n"
	"    xpcall(function() error(setmetatable({}, {__tostring = loop})) end, tostring)\n"
	"  end,\n"
	"  index = function()\n"
	"    xpcall(function() error(setmetatable({}, {__index = loop})) end,\n"
	"           function(e) return e.code end)\n"
	"  end,\n"
	"  indexloop = function()\n"
	"    local obj = setmetatable({}, {__index = function(t, k) return t[k] end})\n"
	"    xpcall(loop, function() return obj.x end)\n"
	"  end,\n"
	"  gsub = function() string.gsub((\"a\"):rep(100), \"a\", loop) end,\n"
	"  gsubpcall = function()\n"
	"    string.gsub((\"a\"):rep(10000), \"a\", function() pcall(loop) xpcall(loop, loop) end)\n"
	"  end,\n"
	"  sort = function()\n"
	"    local t = {} for i = 1, 100 do t[i] = i end\n"
	"    table.sort(t, function(a, b) loop() end)\n"
	"  end,\n"
	"  sortxpcall = function()\n"
	"    local t = {} for i = 1, 100 do t[i] = 101 - i end\n"
	"    table.sort(t, function(a, b) xpcall(loop, loop) return a < b end)\n"
	"  end,\n"
	"  close = function()\n"
	"    local c <close> = setmetatable({}, {__close = function() xpcall(loop, loop) loop() end})\n"
	"    loop()\n"
	"  end,\n"
	"  gc = function()\n"
	"    getmetatable(status.next()).__gc = loop\n"
	"    for i = 1, 100000 do local s = status.next() end\n"
	"  end,\n"
	"  gccode = function()\n"
	"    getmetatable(codes.spam).__gc = loop\n"
	"    for i = 1, 100000 do local c = code(550, \"5.7.1\", \"no\") end\n"
	"  end,\n"
	"}\n"
	"return { rcpt = { rule \"budget\" (function(ctx)\n"
	"  bodies[ctx.rcpt.local_part]()\n"
	"  return status.accept()\n"
	"end) } }\n";

/* Every body ends with the rule's failure: 451, never the accept the rule
 * would return; the loops with the budget's own error. */
static void test_no_way_around_the_budget(void **state)
{
	static const struct {
		const char *body, *logged;
	} cases[] = {
		{"xpcall", "instruction budget exceeded"},
		{"xpcallagain", "instruction budget exceeded"},
		{"nested", "instruction budget exceeded"},
		{"handlerafter", "instruction budget exceeded"},
		{"handlererrors", "instruction budget exceeded"},
		{"pcallxpcall", "instruction budget exceeded"},
		{"xpcallpcall", "instruction budget exceeded"},
		{"tostring", "instruction budget exceeded"},
		{"tostringhandler", "instruction budget exceeded"},
		{"index", "instruction budget exceeded"},
		{"indexloop", "instruction budget exceeded"},
		{"gsub", "instruction budget exceeded"},
		{"gsubpcall", "instruction budget exceeded"},
		{"sort", "instruction budget exceeded"},
		{"sortxpcall", "instruction budget exceeded"},
		{"close", "instruction budget exceeded"},
		{"gc", "attempt to index a string value"},
		{"gccode", "attempt to index a string value"},
	};
	struct rules *r = load_ok(budget_rules);
	struct offline_step step;
	char rcpt[64], log[8192];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(rcpt, sizeof(rcpt), "%s@example.com", cases[i].body);
		if (run(r, rcpt, &step, log, sizeof(log)) != OFFLINE_DEFERRED)
			fail_msg("%s: not deferred: %s", cases[i].body, step.reply);
		assert_int_equal(step.v.status, RULE_ERROR);
		assert_string_equal(step.reply, "451 4.3.0 Local policy error, try again later");
		if (strstr(log, "rule \"budget\"") == NULL || strstr(log, cases[i].logged) == NULL)
			fail_msg("%s: the log does not say \"%s\": %s", cases[i].body,
				 cases[i].logged, log);
	}
	rules_free(r);
}

/* The load's own limit holds the same way: a handler looping at the top
 * level is stopped by the load time limit. */
static void test_no_way_around_the_load_time_limit(void **state)
{
	static const char *const tops[] = {
		"xpcall(function() while true do end end, function() while true do end end)\n",
		"xpcall(function() while true do end end, function()\n"
		"  xpcall(function() while true do end end, function() while true do end end)\n"
		"end)\n",
		"error(setmetatable({}, {__tostring = function() while true do end end}))\n",
		"string.gsub((\"a\"):rep(10), \"a\", function()\n"
		"  xpcall(function() while true do end end, function() while true do end end)\n"
		"end)\n",
	};
	char err[1024];
	struct rules *r;
	size_t i;

	for (i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
		r = load(tops[i], err, sizeof(err));
		if (r != NULL) {
			rules_free(r);
			fail_msg("top level %zu loaded", i);
		}
		if (strstr(err, "loading took longer than 250 ms of CPU time") == NULL)
			fail_msg("top level %zu: %s", i, err);
	}
}

/* Within the budget, xpcall behaves as Lua's: the handler's result, the
 * function's results, errors in the handler reported. */
static void test_xpcall_within_the_budget(void **state)
{
	struct rules *r = load_ok(
		"return { rcpt = { rule \"x\" (function(ctx)\n"
		"  local ok, e = xpcall(function() error({code = 7}) end, function(e) return e.code * 2 end)\n"
		"  assert(ok == false and e == 14)\n"
		"  local a, b, c = xpcall(function(x, y) return x + y, \"two\" end, print, 1, 2)\n"
		"  assert(a == true and b == 3 and c == \"two\")\n"
		"  assert(select(\"#\", xpcall(function() end, print)) == 1)\n"
		"  ok, e = xpcall(error, function(m) return \"handled: \" .. m end, \"boom\", 0)\n"
		"  assert(ok == false and e == \"handled: boom\")\n"
		"  assert(not pcall(xpcall, print))\n"
		"  return status.accept(code(250, \"2.1.5\", \"xpcall works\"))\n"
		"end) } }\n");
	struct offline_step step;
	char log[4096];

	assert_int_equal(run(r, "x@example.com", &step, log, sizeof(log)), OFFLINE_QUEUED);
	assert_string_equal(step.reply, "250 2.1.5 xpcall works");
	rules_free(r);
}

/* What one stage changes in the shared tables, the next does not see. */
static const char shared_rules[] =
	"function string.trim(s) return (s:gsub(\"^%s+\", \"\")) end -- helpers at load time stay\n"
	"local function poison()\n"
	"  getmetatable(\"\").__index = {upper = function() return \"poisoned\" end}\n"
	"  getmetatable(\"\").__add = function() return \"poisoned\" end\n"
	"  string.lower = function() return \"poisoned\" end\n"
	"  string.extra = true\n"
	"  string.trim = nil\n"
	"  setmetatable(table, {__index = function(_, k) return k end})\n"
	"  math.pi = 3\n"
	"  math.randomseed(42)\n"
	"  config.hostname = \"evil.example\"\n"
	"  status.next = function() return status.accept() end\n"
	"  codes.spam = nil\n"
	"  os.time = function() return 0 end\n"
	"  utf8.charpattern = \".\"\n"
	"  hostname = function() return \"evil.example\" end\n"
	"  networks = {}\n"
	"  string = {}\n"
	"end\n"
	"local function leaks()\n"
	"  local got = math.random(0, 1 << 50)\n"
	"  math.randomseed(42)\n"
	"  local seeded = math.random(0, 1 << 50)\n"
	"  local checks = {\n"
	"    {\"string metatable\", (\"x\"):upper() == \"X\"},\n"
	"    {\"string arithmetic\", (\"1\" + 1) == 2},\n"
	"    {\"string.lower\", string.lower(\"Y\") == \"y\"},\n"
	"    {\"string.extra\", string.extra == nil},\n"
	"    {\"string.trim\", string.trim(\"  z\") == \"z\"},\n"
	"    {\"table metatable\", getmetatable(table) == nil and table.nothing == nil},\n"
	"    {\"math.pi\", math.pi > 3.14},\n"
	"    {\"math.randomseed\", got ~= seeded},\n"
	"    {\"config\", config.hostname == \"mx.example.com\"},\n"
	"    {\"status\", tostring(status.next()) == \"next\"},\n"
	"    {\"codes\", codes.spam ~= nil},\n"
	"    {\"os.time\", os.time() > 0},\n"
	"    {\"utf8\", utf8.charpattern ~= \".\"},\n"
	"    {\"hostname\", hostname() == \"mx.example.com\"},\n"
	"    {\"networks\", networks.private ~= nil},\n"
	"  }\n"
	"  for _, c in ipairs(checks) do if not c[2] then return c[1] end end\n"
	"  return nil\n"
	"end\n"
	"return { rcpt = { rule \"shared\" (function(ctx)\n"
	"  if ctx.rcpt.local_part == \"poison\" then poison() return status.accept() end\n"
	"  local leaked = leaks()\n"
	"  if leaked then return status.deny(code(550, \"5.7.1\", \"leaked: \" .. leaked)) end\n"
	"  return status.accept(code(250, \"2.1.5\", \"clean\"))\n"
	"end) } }\n";

static void test_a_stage_does_not_change_what_the_next_sees(void **state)
{
	struct rules *r = load_ok(shared_rules);
	struct offline_step step;
	char log[4096];
	int i;

	assert_int_equal(run(r, "clean@example.com", &step, log, sizeof(log)), OFFLINE_QUEUED);
	assert_string_equal(step.reply, "250 2.1.5 clean");
	for (i = 0; i < 3; i++) {
		assert_int_equal(run(r, "poison@example.com", &step, log, sizeof(log)),
				 OFFLINE_QUEUED);
		assert_int_equal(run(r, "clean@example.com", &step, log, sizeof(log)),
				 OFFLINE_QUEUED);
		assert_string_equal(step.reply, "250 2.1.5 clean");
	}
	rules_free(r);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/vsmtpd-test-rules-budget.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_way_around_the_budget),
		cmocka_unit_test(test_no_way_around_the_load_time_limit),
		cmocka_unit_test(test_xpcall_within_the_budget),
		cmocka_unit_test(test_a_stage_does_not_change_what_the_next_sees),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
