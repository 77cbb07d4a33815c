/*
 * test_rules_spf_syntax.c - the SPF record grammar of RFC 7208 section 12
 * (rules_spf_syntax.c): records that are valid, records with each kind of
 * error RFC 7208 calls a permerror, and the reasons given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "rules_spf.h"

static void test_valid_records(void **state)
{
	static const char *const valid[] = {
	    "v=spf1",
	    "v=spf1 -all",
	    "V=SPF1 +A -ALL",
	    "v=spf1   ip4:192.0.2.0/24   ~all  ",
	    "v=spf1 ip4:192.0.2.1 ip4:0.0.0.0/0 ip6:2001:db8::/32 ip6:::1 -all",
	    "v=spf1 a a:mail.example.org a/24 a//64 a:example.org/24//64 mx mx:example.org/0 -all",
	    "v=spf1 ptr ptr:example.org exists:%{i}.bl.example.org include:_spf.example.org ?all",
	    "v=spf1 a:foo:bar/baz.example.com -all",
	    "v=spf1 redirect=_spf.example.org",
	    "v=spf1 -all exp=explain.%{d}",
	    "v=spf1 include:%{d} -all",
	    "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all",
	    "v=spf1 a:example.org. -all",
	    "v=spf1 a:123-456.example -all",
	    "v=spf1 foo=bar moo.cow-far_out=man:dog/cat -all",
	    "v=spf1 unknown=%{c}%{r}%{t}%% -all",
	    "v=spf10 anything goes: not an SPF record",
	    "not spf at all",
	};
	char why[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		if (rules_spf_syntax_check(valid[i], strlen(valid[i]), why, sizeof(why)) != 0)
			fail_msg("\"%s\" refused: %s", valid[i], why);
}

static void test_invalid_records(void **state)
{
	static const struct {
		const char *record, *why;
	} invalid[] = {
	    {"v=spf1 a:museum -all", "invalid a mechanism \"a:museum\""},
	    {"v=spf1 a:example.123 -all", "invalid a mechanism \"a:example.123\""},
	    {"v=spf1 a:example.-com -all", "invalid a mechanism \"a:example.-com\""},
	    {"v=spf1 a: -all", "invalid a mechanism \"a:\""},
	    {"v=spf1 mx:example..org.. -all", "invalid mx mechanism \"mx:example..org..\""},
	    {"v=spf1 ip4:192.0.2.1/33 -all", "invalid ip4 mechanism \"ip4:192.0.2.1/33\""},
	    {"v=spf1 ip4:192.0.2.01 -all", "invalid ip4 mechanism \"ip4:192.0.2.01\""},
	    {"v=spf1 ip4:192.0.2.0/024 -all", "invalid ip4 mechanism \"ip4:192.0.2.0/024\""},
	    {"v=spf1 ip6:2001:db8::/129 -all", "invalid ip6 mechanism \"ip6:2001:db8::/129\""},
	    {"v=spf1 ip6:192.0.2.1 -all", "invalid ip6 mechanism \"ip6:192.0.2.1\""},
	    {"v=spf1 exists:%{i}.bl.example/24 -all", "invalid exists mechanism \"exists:%{i}.bl.example/24\""},
	    {"v=spf1 exists: -all", "invalid exists mechanism \"exists:\""},
	    {"v=spf1 include -all", "invalid include mechanism \"include\""},
	    {"v=spf1 all:example.org", "invalid all mechanism \"all:example.org\""},
	    {"v=spf1 a:%{c}.example.org -all", "invalid a mechanism \"a:%{c}.example.org\""},
	    {"v=spf1 a:%{x}.example.org -all", "invalid a mechanism \"a:%{x}.example.org\""},
	    {"v=spf1 a:%{d.example.org -all", "invalid a mechanism \"a:%{d.example.org\""},
	    {"v=spf1 a:50%.example.org -all", "invalid a mechanism \"a:50%.example.org\""},
	    {"v=spf1 -all exp=a.example exp=b.example", "exp= given twice (RFC 7208 section 6)"},
	    {"v=spf1 redirect=a.example redirect=b.example", "redirect= given twice (RFC 7208 section 6)"},
	    {"v=spf1 redirect= -all", "invalid modifier \"redirect=\""},
	    {"v=spf1 -all exp=", "invalid modifier \"exp=\""},
	    {"v=spf1 -all foo=%", "invalid modifier \"foo=%\""},
	    {"v=spf1 mechanism -all", "unknown mechanism \"mechanism\""},
	    {"v=spf1 a:ctrl.example.com\rptr -all", "invalid a mechanism \"a:ctrl.example.com\rptr\""},
	    {"v=spf1 a:\xef\xbb\xbfgarbage.example.net -all",
	     "invalid a mechanism \"a:\xef\xbb\xbfgarbage.example.net\""},
	    {"v=spf1 ~ -all", "a qualifier without a mechanism"},
	    {"v=spf1\t-all", NULL}, /* no SPF record: "v=spf1" ends at a space or the end */
	};
	char why[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		int rc = rules_spf_syntax_check(invalid[i].record, strlen(invalid[i].record), why,
						sizeof(why));

		if (invalid[i].why == NULL) {
			assert_int_equal(rc, 0);
			continue;
		}
		if (rc != -1)
			fail_msg("\"%s\" accepted", invalid[i].record);
		assert_string_equal(why, invalid[i].why);
	}
}

/* A NUL inside the record (given with its length) is an error too. */
static void test_nul_inside(void **state)
{
	static const char rec[] = "v=spf1 a:mail.example.com\0garbage -all";
	char why[128];

	(void)state;
	assert_int_equal(rules_spf_syntax_check(rec, sizeof(rec) - 1, why, sizeof(why)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_records),
	    cmocka_unit_test(test_invalid_records),
	    cmocka_unit_test(test_nul_inside),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
