/*
 * test_smtp_parse.c - unit tests of the SMTP command line parser: verbs,
 * character checks, HELO/EHLO, MAIL and RCPT paths and parameters, BDAT,
 * xtext and address formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_parse.h"

/* assert_reply - reply r is non-NULL and starts with code ("501 5.1.7") and a space. */
#define assert_reply(r, code)                                                                      \
	do {                                                                                       \
		const char *r_ = (r);                                                              \
		assert_non_null(r_);                                                               \
		assert_int_equal(strncmp(r_, code, strlen(code)), 0);                              \
		assert_int_equal(r_[strlen(code)], ' ');                                           \
	} while (0)

/* mail_ok - parse MAIL arguments that must be accepted. */
static struct smtp_mail mail_ok(const char *args)
{
	struct smtp_mail m;
	const char *r = smtp_mail_parse(args, &m);

	if (r)
		fail_msg("MAIL %s: %s", args, r);
	return m;
}

/* mail_err - parse MAIL arguments that must be refused; the reply. */
static const char *mail_err(const char *args)
{
	struct smtp_mail m;

	return smtp_mail_parse(args, &m);
}

/* rcpt_ok - parse RCPT arguments that must be accepted. */
static struct smtp_rcpt rcpt_ok(const char *args, int utf8)
{
	struct smtp_rcpt rc;
	const char *r = smtp_rcpt_parse(args, utf8, &rc);

	if (r)
		fail_msg("RCPT %s: %s", args, r);
	return rc;
}

/* rcpt_err - parse RCPT arguments that must be refused; the reply. */
static const char *rcpt_err(const char *args, int utf8)
{
	struct smtp_rcpt rc;

	return smtp_rcpt_parse(args, utf8, &rc);
}

/* repeat - n copies of c into buf, NUL-terminated. */
static char *repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

/* test_verb_matches_case_insensitively - any case of the verb, args after its space. */
static void test_verb_matches_case_insensitively(void **state)
{
	const char *args = NULL;

	assert_int_equal(smtp_verb_parse("mAiL FROM:<a@b>", &args), SMTP_VERB_MAIL);
	assert_string_equal(args, "FROM:<a@b>");
}

/* test_verb_alone_gives_empty_args - a bare verb, or one with a trailing space, has empty args. */
static void test_verb_alone_gives_empty_args(void **state)
{
	const char *args = NULL;

	assert_int_equal(smtp_verb_parse("QUIT", &args), SMTP_VERB_QUIT);
	assert_string_equal(args, "");
	assert_int_equal(smtp_verb_parse("DATA ", &args), SMTP_VERB_DATA);
	assert_string_equal(args, "");
}

/* test_verb_args_keep_everything_after_one_space - only the first space is eaten. */
static void test_verb_args_keep_everything_after_one_space(void **state)
{
	const char *args = NULL;

	assert_int_equal(smtp_verb_parse("EHLO  host", &args), SMTP_VERB_EHLO);
	assert_string_equal(args, " host");
}

/* test_verb_glued_to_other_text_is_unknown - a verb must end at a space or the end of line. */
static void test_verb_glued_to_other_text_is_unknown(void **state)
{
	const char *args = NULL;

	assert_int_equal(smtp_verb_parse("MAILX", &args), SMTP_VERB_UNKNOWN);
	assert_int_equal(smtp_verb_parse("MAIL\tFROM:<a@b>", &args), SMTP_VERB_UNKNOWN);
	assert_int_equal(smtp_verb_parse("MAIL:FROM", &args), SMTP_VERB_UNKNOWN);
}

/* test_verb_unknown_words - empty, short, long and indented words are not verbs. */
static void test_verb_unknown_words(void **state)
{
	const char *args;

	assert_int_equal(smtp_verb_parse("", NULL), SMTP_VERB_UNKNOWN);
	assert_int_equal(smtp_verb_parse("MAI", NULL), SMTP_VERB_UNKNOWN);
	assert_int_equal(smtp_verb_parse("STARTTLSX", NULL), SMTP_VERB_UNKNOWN);
	assert_int_equal(smtp_verb_parse("AUTHENTICATE", NULL), SMTP_VERB_UNKNOWN);
	assert_int_equal(smtp_verb_parse("starttls", &args), SMTP_VERB_STARTTLS);
	assert_string_equal(args, "");
	assert_int_equal(smtp_verb_parse("AUTH PLAIN AGFAAGI=", &args), SMTP_VERB_AUTH);
	assert_string_equal(args, "PLAIN AGFAAGI=");
	assert_int_equal(smtp_verb_parse(" MAIL", NULL), SMTP_VERB_UNKNOWN);
}

/* test_verb_every_name_parses_back - each verb's name is recognised as that verb. */
static void test_verb_every_name_parses_back(void **state)
{
	int v;

	for (v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++)
		assert_int_equal(smtp_verb_parse(smtp_verb_name((enum smtp_verb)v), NULL), v);
}

/* test_verb_name_out_of_range_is_unknown - names of values outside the enum are "UNKNOWN". */
static void test_verb_name_out_of_range_is_unknown(void **state)
{
	assert_string_equal(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN");
	assert_string_equal(smtp_verb_name(SMTP_VERB_COUNT), "UNKNOWN");
	assert_string_equal(smtp_verb_name((enum smtp_verb)(SMTP_VERB_COUNT + 7)), "UNKNOWN");
	assert_string_equal(smtp_verb_name(SMTP_VERB_BDAT), "BDAT");
}

/* test_line_check_accepts_printable_and_tab - printable ASCII and TAB pass. */
static void test_line_check_accepts_printable_and_tab(void **state)
{
	const char *l = "MAIL FROM:<a@b>\tSIZE=1 ~";

	assert_null(smtp_line_check(l, strlen(l), 0));
}

/* test_line_check_refuses_nul - a NUL byte inside the line is refused. */
static void test_line_check_refuses_nul(void **state)
{
	assert_reply(smtp_line_check("NOOP\0x", 6, 1), "500 5.5.2");
}

/* test_line_check_refuses_control_characters - CR, LF, ESC and DEL are refused. */
static void test_line_check_refuses_control_characters(void **state)
{
	assert_reply(smtp_line_check("NO\rOP", 5, 1), "500 5.5.2");
	assert_reply(smtp_line_check("NO\nOP", 5, 1), "500 5.5.2");
	assert_reply(smtp_line_check("NO\x1bOP", 5, 1), "500 5.5.2");
	assert_reply(smtp_line_check("NO\x7fOP", 5, 1), "500 5.5.2");
}

/* test_line_check_refuses_8bit_without_utf8 - 8-bit bytes need utf8. */
static void test_line_check_refuses_8bit_without_utf8(void **state)
{
	assert_reply(smtp_line_check("NOOP \xc3\xa9", 7, 0), "500 5.5.2");
}

/* test_line_check_accepts_8bit_with_utf8 - 8-bit bytes pass with utf8. */
static void test_line_check_accepts_8bit_with_utf8(void **state)
{
	assert_null(smtp_line_check("NOOP \xc3\xa9", 7, 1));
}

/* test_helo_accepts_domains - ordinary host names, single labels included. */
static void test_helo_accepts_domains(void **state)
{
	assert_null(smtp_helo_parse("mail.example.com"));
	assert_null(smtp_helo_parse("localhost"));
	assert_null(smtp_helo_parse("a-b.9x.example"));
}

/* test_helo_accepts_underscore_in_labels - misconfigured but common underscores pass. */
static void test_helo_accepts_underscore_in_labels(void **state)
{
	assert_null(smtp_helo_parse("my_host.example.com"));
}

/* test_helo_accepts_address_literals - IPv4 and IPv6 literals, any case of the tag. */
static void test_helo_accepts_address_literals(void **state)
{
	assert_null(smtp_helo_parse("[192.0.2.1]"));
	assert_null(smtp_helo_parse("[IPv6:2001:db8::1]"));
	assert_null(smtp_helo_parse("[ipv6:::1]"));
}

/* test_helo_tolerates_surrounding_spaces - blanks around the name are ignored. */
static void test_helo_tolerates_surrounding_spaces(void **state)
{
	assert_null(smtp_helo_parse(" mail.example.com  "));
}

/* test_helo_empty_is_syntax_error - no argument gets 501 5.5.4. */
static void test_helo_empty_is_syntax_error(void **state)
{
	assert_reply(smtp_helo_parse(""), "501 5.5.4");
	assert_reply(smtp_helo_parse("   "), "501 5.5.4");
}

/* test_helo_refuses_malformed_names - bad labels, spaces, UTF-8 and length limits get 501 5.5.2. */
static void test_helo_refuses_malformed_names(void **state)
{
	char label[80];
	char big[300];
	size_t i;

	assert_reply(smtp_helo_parse("-host.example"), "501 5.5.2");
	assert_reply(smtp_helo_parse("host-.example"), "501 5.5.2");
	assert_reply(smtp_helo_parse("host..example"), "501 5.5.2");
	assert_reply(smtp_helo_parse("host.example."), "501 5.5.2");
	assert_reply(smtp_helo_parse(".host"), "501 5.5.2");
	assert_reply(smtp_helo_parse("two words"), "501 5.5.2");
	assert_reply(smtp_helo_parse("h\xc3\xa9.example"), "501 5.5.2");
	assert_reply(smtp_helo_parse("user@host"), "501 5.5.2");
	assert_reply(smtp_helo_parse(repeat(label, 'a', 64)), "501 5.5.2");
	assert_null(smtp_helo_parse(repeat(label, 'a', 63)));
	for (i = 0; i < 257; i++)
		big[i] = (i % 2) ? '.' : 'a';
	big[257] = '\0';
	assert_reply(smtp_helo_parse(big), "501 5.5.2");
	big[255] = '\0';
	assert_null(smtp_helo_parse(big));
}

/* test_helo_refuses_bad_literals - invalid addresses and general literals get 501 5.5.2. */
static void test_helo_refuses_bad_literals(void **state)
{
	assert_reply(smtp_helo_parse("[1.2.3]"), "501 5.5.2");
	assert_reply(smtp_helo_parse("[1.2.3.256]"), "501 5.5.2");
	assert_reply(smtp_helo_parse("[IPv6:zz::1]"), "501 5.5.2");
	assert_reply(smtp_helo_parse("[2001:db8::1]"), "501 5.5.2");
	assert_reply(smtp_helo_parse("[x400:foo]"), "501 5.5.2");
	assert_reply(smtp_helo_parse("[192.0.2.1"), "501 5.5.2");
	assert_reply(smtp_helo_parse("[192.0.2.1]x"), "501 5.5.2");
}

/* test_mail_simple_address - local part and domain are split, parameters unset. */
static void test_mail_simple_address(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<user@example.com>");

	assert_int_equal(m.from.null, 0);
	assert_string_equal(m.from.local, "user");
	assert_string_equal(m.from.domain, "example.com");
	assert_int_equal(m.size_given, 0);
	assert_int_equal(m.body, SMTP_BODY_UNSET);
	assert_string_equal(m.envid, "");
}

/* test_mail_null_path - <> is the null reverse-path. */
static void test_mail_null_path(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<>");

	assert_int_equal(m.from.null, 1);
	assert_string_equal(m.from.local, "");
	assert_string_equal(m.from.domain, "");
}

/* test_mail_from_keyword_is_case_insensitive - "from:" works like "FROM:". */
static void test_mail_from_keyword_is_case_insensitive(void **state)
{
	struct smtp_mail m = mail_ok("from:<a@b.example>");

	assert_string_equal(m.from.local, "a");
}

/* test_mail_spaces_before_bracket_tolerated - blanks between the colon and '<' are allowed. */
static void test_mail_spaces_before_bracket_tolerated(void **state)
{
	struct smtp_mail m = mail_ok("FROM:  <a@b.example>");

	assert_string_equal(m.from.domain, "b.example");
}

/* test_mail_requires_from_keyword - anything but FROM: is a syntax error. */
static void test_mail_requires_from_keyword(void **state)
{
	assert_reply(mail_err(""), "501 5.5.4");
	assert_reply(mail_err("FROM <a@b>"), "501 5.5.4");
	assert_reply(mail_err("TO:<a@b>"), "501 5.5.4");
	assert_reply(mail_err(" FROM:<a@b>"), "501 5.5.4");
}

/* test_mail_requires_angle_brackets - a path without brackets is a syntax error. */
static void test_mail_requires_angle_brackets(void **state)
{
	assert_reply(mail_err("FROM:a@b.example"), "501 5.5.4");
	assert_reply(mail_err("FROM:"), "501 5.5.4");
}

/* test_mail_text_glued_after_path_is_syntax_error - after '>' only a space may follow. */
static void test_mail_text_glued_after_path_is_syntax_error(void **state)
{
	assert_reply(mail_err("FROM:<a@b.example>SIZE=1"), "501 5.5.4");
	assert_reply(mail_err("FROM:<a@b.example>>"), "501 5.5.4");
}

/* test_mail_source_route_is_dropped - an RFC 5321 source route is accepted and dropped. */
static void test_mail_source_route_is_dropped(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<@a.example,@b.example:user@c.example>");

	assert_string_equal(m.from.local, "user");
	assert_string_equal(m.from.domain, "c.example");
}

/* test_mail_bad_source_route_refused - malformed source routes are bad sender syntax. */
static void test_mail_bad_source_route_refused(void **state)
{
	assert_reply(mail_err("FROM:<@a.example:>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<@a.example,user@c.example>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<@:user@c.example>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<@a.example,b.example:user@c.example>"), "501 5.1.7");
}

/* test_mail_quoted_local_part_kept_as_written - quotes and quoted pairs are kept verbatim. */
static void test_mail_quoted_local_part_kept_as_written(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<\"john \\\"jr\\\" doe\"@example.com>");

	assert_string_equal(m.from.local, "\"john \\\"jr\\\" doe\"");
	m = mail_ok("FROM:<\"a>b@c\"@example.com>");
	assert_string_equal(m.from.local, "\"a>b@c\"");
}

/* test_mail_local_part_case_preserved - no case folding of the address. */
static void test_mail_local_part_case_preserved(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<John.Doe+Tag@Example.COM>");

	assert_string_equal(m.from.local, "John.Doe+Tag");
	assert_string_equal(m.from.domain, "Example.COM");
}

/* test_mail_dot_string_accepts_all_atext - every atext character is allowed in an atom. */
static void test_mail_dot_string_accepts_all_atext(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<a!#$%&'*+-/=?^_`{|}~.b@example.com>");

	assert_string_equal(m.from.local, "a!#$%&'*+-/=?^_`{|}~.b");
}

/* test_mail_malformed_local_part_refused - bad dots, specials and quoting get 501 5.1.7. */
static void test_mail_malformed_local_part_refused(void **state)
{
	assert_reply(mail_err("FROM:<.a@example.com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a.@example.com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a..b@example.com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a b@example.com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a(b)@example.com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<\"ab@example.com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<\"a\tb\"@example.com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<@example.com>"), "501 5.1.7");
}

/* test_mail_missing_domain_refused - a sender needs a domain, postmaster too. */
static void test_mail_missing_domain_refused(void **state)
{
	assert_reply(mail_err("FROM:<user>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<user@>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<user@example.com"), "501 5.1.7");
	assert_reply(mail_err("FROM:<postmaster>"), "501 5.1.7");
}

/* test_mail_malformed_domain_refused - bad labels and label length get 501 5.1.7. */
static void test_mail_malformed_domain_refused(void **state)
{
	char buf[120];
	char label[70];

	assert_reply(mail_err("FROM:<a@-example.com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@example-.com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@example..com>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@example.com.>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@my_host.example>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@b@example.com>"), "501 5.1.7");
	snprintf(buf, sizeof(buf), "FROM:<a@%s.example>", repeat(label, 'x', 64));
	assert_reply(mail_err(buf), "501 5.1.7");
	snprintf(buf, sizeof(buf), "FROM:<a@%s.example>", repeat(label, 'x', 63));
	assert_null(mail_err(buf));
}

/* test_mail_address_literals - IPv4 and IPv6 address literals are kept as written. */
static void test_mail_address_literals(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<a@[192.0.2.1]>");

	assert_string_equal(m.from.domain, "[192.0.2.1]");
	m = mail_ok("FROM:<a@[IPv6:2001:db8::1]>");
	assert_string_equal(m.from.domain, "[IPv6:2001:db8::1]");
	m = mail_ok("FROM:<a@[IPv6:::ffff:192.0.2.1]>");
	assert_string_equal(m.from.domain, "[IPv6:::ffff:192.0.2.1]");
}

/* test_mail_bad_address_literals_refused - invalid and general address literals are refused. */
static void test_mail_bad_address_literals_refused(void **state)
{
	assert_reply(mail_err("FROM:<a@[192.0.2.256]>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@[192.0.2]>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@[IPv6:2001:db8:::1]>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@[IPv6:192.0.2.1]>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@[x400:c=us]>"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@[]>"), "501 5.1.7");
}

/* test_mail_local_part_length_limit - 64 octets of local part pass, 65 are too long. */
static void test_mail_local_part_length_limit(void **state)
{
	char local[80], buf[200];

	snprintf(buf, sizeof(buf), "FROM:<%s@example.com>", repeat(local, 'a', 64));
	assert_null(mail_err(buf));
	snprintf(buf, sizeof(buf), "FROM:<%s@example.com>", repeat(local, 'a', 65));
	assert_reply(mail_err(buf), "501 5.1.7");
	assert_non_null(strstr(mail_err(buf), "too long"));
}

/* test_mail_path_length_limit - the domain and the whole path have their limits. */
static void test_mail_path_length_limit(void **state)
{
	char local[80], buf[400];
	char domain[300];
	size_t i;

	/* 63-octet labels joined by dots: 4 labels are 255 octets. */
	for (i = 0; i < 255; i++)
		domain[i] = (i % 64 == 63) ? '.' : 'd';
	domain[255] = '\0';
	snprintf(buf, sizeof(buf), "FROM:<%s@%s>", repeat(local, 'a', 1), domain);
	assert_reply(mail_err(buf), "501 5.1.7");
	assert_non_null(strstr(mail_err(buf), "too long"));
	/* <a@...> is 256 octets with a 252-octet domain. */
	domain[252] = '\0';
	snprintf(buf, sizeof(buf), "FROM:<%s@%s>", repeat(local, 'a', 1), domain);
	assert_null(mail_err(buf));
	snprintf(buf, sizeof(buf), "FROM:<%s@%s>", repeat(local, 'a', 2), domain);
	assert_reply(mail_err(buf), "501 5.1.7");
}

/* test_mail_utf8_address_requires_smtputf8 - a UTF-8 address without SMTPUTF8 gets 553 5.6.7. */
static void test_mail_utf8_address_requires_smtputf8(void **state)
{
	assert_reply(mail_err("FROM:<j\xc3\xb6rg@example.com>"), "553 5.6.7");
	assert_reply(mail_err("FROM:<a@b\xc3\xbc"
	                      "cher.example>"),
	             "553 5.6.7");
}

/* test_mail_utf8_address_with_smtputf8_after_it - SMTPUTF8 after the address allows UTF-8 in it. */
static void test_mail_utf8_address_with_smtputf8_after_it(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<j\xc3\xb6rg@b\xc3\xbc"
	                             "cher.example> SMTPUTF8");

	assert_int_equal(m.smtputf8, 1);
	assert_string_equal(m.from.local, "j\xc3\xb6rg");
	assert_int_equal(smtp_address_is_ascii(&m.from), 0);
}

/* test_mail_utf8_in_quoted_local_part - UTF-8 inside a quoted string is allowed too. */
static void test_mail_utf8_in_quoted_local_part(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<\"\xe2\x82\xac x\"@example.com> SMTPUTF8");

	assert_string_equal(m.from.local, "\"\xe2\x82\xac x\"");
}

/* test_mail_malformed_utf8_refused - overlongs, surrogates, out of range and truncation. */
static void test_mail_malformed_utf8_refused(void **state)
{
	assert_reply(mail_err("FROM:<a\xc0\xaf@example.com> SMTPUTF8"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a\xe0\x80\xaf@example.com> SMTPUTF8"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a\xed\xa0\x80@example.com> SMTPUTF8"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a\xf4\x90\x80\x80@example.com> SMTPUTF8"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a\x80@example.com> SMTPUTF8"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a\xc3@example.com> SMTPUTF8"), "501 5.1.7");
	assert_reply(mail_err("FROM:<a@b\xf5\x80\x80\x80.example> SMTPUTF8"), "501 5.1.7");
}

/* test_mail_size_parameter - SIZE= up to the largest 64-bit value. */
static void test_mail_size_parameter(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<a@b.example> SIZE=12345");

	assert_int_equal(m.size_given, 1);
	assert_int_equal(m.size, 12345);
	m = mail_ok("FROM:<> SIZE=18446744073709551615");
	assert_true(m.size == UINT64_MAX);
	m = mail_ok("FROM:<> SIZE=0");
	assert_int_equal(m.size_given, 1);
	assert_int_equal(m.size, 0);
}

/* test_mail_bad_size_parameter - overflow, too many digits, signs and empty values. */
static void test_mail_bad_size_parameter(void **state)
{
	assert_reply(mail_err("FROM:<> SIZE=18446744073709551616"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> SIZE=000000000000000000001"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> SIZE=12a"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> SIZE=-1"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> SIZE="), "501 5.5.4");
	assert_reply(mail_err("FROM:<> SIZE"), "501 5.5.4");
	assert_non_null(strstr(mail_err("FROM:<> SIZE=x"), "SIZE"));
}

/* test_mail_body_parameter - BODY=7BIT and 8BITMIME only, any case. */
static void test_mail_body_parameter(void **state)
{
	assert_int_equal(mail_ok("FROM:<> BODY=7BIT").body, SMTP_BODY_7BIT);
	assert_int_equal(mail_ok("FROM:<> body=8bitmime").body, SMTP_BODY_8BITMIME);
	assert_reply(mail_err("FROM:<> BODY=BINARYMIME"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> BODY=8BIT"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> BODY"), "501 5.5.4");
}

/* test_mail_smtputf8_takes_no_value - SMTPUTF8 is a flag, not a keyword=value. */
static void test_mail_smtputf8_takes_no_value(void **state)
{
	assert_int_equal(mail_ok("FROM:<> smtputf8").smtputf8, 1);
	assert_reply(mail_err("FROM:<> SMTPUTF8=yes"), "501 5.5.4");
}

/* test_mail_ret_parameter - RET=FULL or HDRS only. */
static void test_mail_ret_parameter(void **state)
{
	assert_int_equal(mail_ok("FROM:<> RET=FULL").ret, SMTP_RET_FULL);
	assert_int_equal(mail_ok("FROM:<> RET=hdrs").ret, SMTP_RET_HDRS);
	assert_reply(mail_err("FROM:<> RET=ALL"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> RET"), "501 5.5.4");
}

/* test_mail_envid_is_xtext_decoded - ENVID is stored decoded. */
static void test_mail_envid_is_xtext_decoded(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<> ENVID=QQ314159+2Bx+3D");

	assert_string_equal(m.envid, "QQ314159+x=");
}

/* test_mail_bad_envid_refused - lower-case or short hex, control characters, empty, 8-bit. */
static void test_mail_bad_envid_refused(void **state)
{
	assert_reply(mail_err("FROM:<> ENVID=a+2b"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> ENVID=a+2"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> ENVID=a+"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> ENVID=a+00"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> ENVID="), "501 5.5.4");
	assert_reply(mail_err("FROM:<> ENVID"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> ENVID=a\xc3\xa9 SMTPUTF8"), "501 5.5.4");
}

/* test_mail_envid_length_limit - 100 decoded octets pass, 101 do not. */
static void test_mail_envid_length_limit(void **state)
{
	char id[120], buf[200];

	snprintf(buf, sizeof(buf), "FROM:<> ENVID=%s", repeat(id, 'e', 100));
	assert_int_equal(strlen(mail_ok(buf).envid), 100);
	snprintf(buf, sizeof(buf), "FROM:<> ENVID=%s", repeat(id, 'e', 101));
	assert_reply(mail_err(buf), "501 5.5.4");
}

/* test_mail_auth_parameter - AUTH=<> and decoded xtext mailboxes. */
static void test_mail_auth_parameter(void **state)
{
	assert_string_equal(mail_ok("FROM:<> AUTH=<>").auth, "<>");
	assert_string_equal(mail_ok("FROM:<> AUTH=e+3Dmc2@example.com").auth, "e=mc2@example.com");
	assert_reply(mail_err("FROM:<> AUTH="), "501 5.5.4");
	assert_reply(mail_err("FROM:<> AUTH=a+zz"), "501 5.5.4");
}

/* test_mail_duplicate_parameter_refused - each parameter at most once, whatever its case. */
static void test_mail_duplicate_parameter_refused(void **state)
{
	const char *r = mail_err("FROM:<> SIZE=1 SIZE=2");

	assert_reply(r, "501 5.5.4");
	assert_non_null(strstr(r, "Duplicate"));
	assert_reply(mail_err("FROM:<> BODY=7BIT body=8BITMIME"), "501 5.5.4");
	assert_reply(mail_err("FROM:<> SMTPUTF8 SMTPUTF8"), "501 5.5.4");
}

/* test_mail_unknown_parameter_is_555 - unknown keywords are named in a 555 reply. */
static void test_mail_unknown_parameter_is_555(void **state)
{
	assert_string_equal(mail_err("FROM:<> XYZ=1"), "555 5.5.4 Unsupported parameter: XYZ");
	assert_string_equal(mail_err("FROM:<> NOTIFY=NEVER"),
	                    "555 5.5.4 Unsupported parameter: NOTIFY");
	assert_reply(mail_err("FROM:<> =1"), "555 5.5.4");
	assert_reply(mail_err("FROM:<> -X"), "555 5.5.4");
}

/* test_mail_unknown_long_keyword_echo_is_bounded - a huge keyword is cut in the reply. */
static void test_mail_unknown_long_keyword_echo_is_bounded(void **state)
{
	char kw[300], buf[400];
	const char *r;

	snprintf(buf, sizeof(buf), "FROM:<> %s", repeat(kw, 'K', 250));
	r = mail_err(buf);
	assert_reply(r, "555 5.5.4");
	assert_true(strlen(r) < 100);
}

/* test_mail_several_parameters - parameters combine, runs of blanks are tolerated. */
static void test_mail_several_parameters(void **state)
{
	struct smtp_mail m =
	    mail_ok("FROM:<a@b.example> SIZE=100  BODY=8BITMIME RET=HDRS ENVID=x AUTH=<> ");

	assert_int_equal(m.size, 100);
	assert_int_equal(m.body, SMTP_BODY_8BITMIME);
	assert_int_equal(m.ret, SMTP_RET_HDRS);
	assert_string_equal(m.envid, "x");
	assert_string_equal(m.auth, "<>");
	assert_int_equal(m.smtputf8, 0);
}

/* test_rcpt_simple_address - local part and domain kept, DSN parameters unset. */
static void test_rcpt_simple_address(void **state)
{
	struct smtp_rcpt rc = rcpt_ok("TO:<User@Example.com>", 0);

	assert_string_equal(rc.to.local, "User");
	assert_string_equal(rc.to.domain, "Example.com");
	assert_int_equal(rc.notify, 0);
	assert_string_equal(rc.orcpt_type, "");
}

/* test_rcpt_to_keyword_and_spacing - TO: in any case, and the same path syntax as MAIL. */
static void test_rcpt_to_keyword_and_spacing(void **state)
{
	assert_string_equal(rcpt_ok("to: <a@b.example>", 0).to.local, "a");
	assert_reply(rcpt_err("TO <a@b.example>", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:a@b.example", 0), "501 5.5.4");
	assert_reply(rcpt_err("FROM:<a@b.example>", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example>x", 0), "501 5.5.4");
}

/* test_rcpt_null_path_refused - <> is no recipient. */
static void test_rcpt_null_path_refused(void **state)
{
	assert_reply(rcpt_err("TO:<>", 0), "501 5.1.3");
}

/* test_rcpt_postmaster_without_domain - <postmaster> in any case, but only unquoted. */
static void test_rcpt_postmaster_without_domain(void **state)
{
	struct smtp_rcpt rc = rcpt_ok("TO:<PostMaster>", 0);

	assert_string_equal(rc.to.local, "PostMaster");
	assert_string_equal(rc.to.domain, "");
	assert_reply(rcpt_err("TO:<postmaster2>", 0), "501 5.1.3");
	assert_reply(rcpt_err("TO:<\"postmaster\">", 0), "501 5.1.3");
}

/* test_rcpt_bad_address_refused - syntax and length errors get 5.1.3. */
static void test_rcpt_bad_address_refused(void **state)
{
	char local[80], buf[200];

	assert_reply(rcpt_err("TO:<a..b@example.com>", 0), "501 5.1.3");
	assert_reply(rcpt_err("TO:<a@example..com>", 0), "501 5.1.3");
	snprintf(buf, sizeof(buf), "TO:<%s@example.com>", repeat(local, 'a', 65));
	assert_reply(rcpt_err(buf, 0), "501 5.1.3");
	assert_non_null(strstr(rcpt_err(buf, 0), "too long"));
}

/* test_rcpt_utf8_only_when_allowed - UTF-8 recipients need SMTPUTF8 on MAIL. */
static void test_rcpt_utf8_only_when_allowed(void **state)
{
	assert_reply(rcpt_err("TO:<\xe7\x94\xa8@\xe4\xbe\x8b.example>", 0), "553 5.6.7");
	assert_string_equal(rcpt_ok("TO:<\xe7\x94\xa8@\xe4\xbe\x8b.example>", 1).to.domain,
	                    "\xe4\xbe\x8b.example");
}

/* test_rcpt_notify_parameter - NEVER, or a list of SUCCESS, FAILURE and DELAY. */
static void test_rcpt_notify_parameter(void **state)
{
	assert_int_equal(rcpt_ok("TO:<a@b.example> NOTIFY=NEVER", 0).notify, SMTP_NOTIFY_NEVER);
	assert_int_equal(rcpt_ok("TO:<a@b.example> NOTIFY=success,Failure,DELAY", 0).notify,
	                 SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	assert_int_equal(rcpt_ok("TO:<a@b.example> NOTIFY=DELAY", 0).notify, SMTP_NOTIFY_DELAY);
}

/* test_rcpt_bad_notify_refused - NEVER with others, repeats, empty items, unknown words. */
static void test_rcpt_bad_notify_refused(void **state)
{
	assert_reply(rcpt_err("TO:<a@b.example> NOTIFY=NEVER,SUCCESS", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> NOTIFY=SUCCESS,SUCCESS", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> NOTIFY=SUCCESS,", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> NOTIFY=", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> NOTIFY=ALWAYS", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> NOTIFY", 0), "501 5.5.4");
}

/* test_rcpt_orcpt_parameter - the type is lower-cased, the address decoded. */
static void test_rcpt_orcpt_parameter(void **state)
{
	struct smtp_rcpt rc = rcpt_ok("TO:<a@b.example> ORCPT=RFC822;Joe+2BTag@b.example", 0);

	assert_string_equal(rc.orcpt_type, "rfc822");
	assert_string_equal(rc.orcpt, "Joe+Tag@b.example");
	rc = rcpt_ok("TO:<a@b.example> ORCPT=UTF-8;x@b.example", 0);
	assert_string_equal(rc.orcpt_type, "utf-8");
}

/* test_rcpt_orcpt_raw_utf8_only_for_utf8_type_under_smtputf8 - raw UTF-8 needs both. */
static void test_rcpt_orcpt_raw_utf8_only_for_utf8_type_under_smtputf8(void **state)
{
	struct smtp_rcpt rc = rcpt_ok("TO:<a@b.example> ORCPT=utf-8;\xc3\xa9@b.example", 1);

	assert_string_equal(rc.orcpt, "\xc3\xa9@b.example");
	assert_reply(rcpt_err("TO:<a@b.example> ORCPT=utf-8;\xc3\xa9@b.example", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> ORCPT=rfc822;\xc3\xa9@b.example", 1), "501 5.5.4");
}

/* test_rcpt_bad_orcpt_refused - unknown type, no type, empty, bad xtext, too long. */
static void test_rcpt_bad_orcpt_refused(void **state)
{
	char addr[520], buf[600];

	assert_reply(rcpt_err("TO:<a@b.example> ORCPT=x400;foo", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> ORCPT=a@b.example", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> ORCPT=rfc822;", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> ORCPT=rfc822;a+4", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> ORCPT", 0), "501 5.5.4");
	snprintf(buf, sizeof(buf), "TO:<a@b.example> ORCPT=rfc822;%s", repeat(addr, 'o', 500));
	assert_null(rcpt_err(buf, 0));
	snprintf(buf, sizeof(buf), "TO:<a@b.example> ORCPT=rfc822;%s", repeat(addr, 'o', 501));
	assert_reply(rcpt_err(buf, 0), "501 5.5.4");
}

/* test_rcpt_duplicate_parameter_refused - NOTIFY and ORCPT at most once each. */
static void test_rcpt_duplicate_parameter_refused(void **state)
{
	assert_reply(rcpt_err("TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER", 0), "501 5.5.4");
	assert_reply(rcpt_err("TO:<a@b.example> ORCPT=rfc822;a ORCPT=rfc822;b", 0), "501 5.5.4");
}

/* test_rcpt_mail_parameters_are_unknown - MAIL's parameters are not RCPT's. */
static void test_rcpt_mail_parameters_are_unknown(void **state)
{
	assert_string_equal(rcpt_err("TO:<a@b.example> SIZE=1", 0),
	                    "555 5.5.4 Unsupported parameter: SIZE");
}

/* test_bdat_size_only - a chunk size without LAST. */
static void test_bdat_size_only(void **state)
{
	uint64_t size = 1;
	int last = 1;

	assert_null(smtp_bdat_parse("0", &size, &last));
	assert_int_equal(size, 0);
	assert_int_equal(last, 0);
	assert_null(smtp_bdat_parse("86", &size, &last));
	assert_int_equal(size, 86);
}

/* test_bdat_last_is_case_insensitive - LAST in any case. */
static void test_bdat_last_is_case_insensitive(void **state)
{
	uint64_t size = 0;
	int last = 0;

	assert_null(smtp_bdat_parse("1000 last", &size, &last));
	assert_int_equal(size, 1000);
	assert_int_equal(last, 1);
	last = 0;
	assert_null(smtp_bdat_parse("5 LAST", &size, &last));
	assert_int_equal(last, 1);
}

/* test_bdat_largest_size - the largest 64-bit size is accepted. */
static void test_bdat_largest_size(void **state)
{
	uint64_t size = 0;
	int last = 0;

	assert_null(smtp_bdat_parse("18446744073709551615 LAST", &size, &last));
	assert_true(size == UINT64_MAX);
}

/* test_bdat_malformed_refused - anything but digits, one space and LAST is refused. */
static void test_bdat_malformed_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    "LAST",
	    "-1",
	    "+1",
	    " 1",
	    "1 ",
	    "1  LAST",
	    "1 LASTX",
	    "1 LAST x",
	    "1 2",
	    "1x",
	    "0x10",
	    "18446744073709551616",
	    "000000000000000000001",
	};
	uint64_t size;
	int last;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_reply(smtp_bdat_parse(bad[i], &size, &last), "501 5.5.4");
}

/* test_xtext_encode_escapes_specials - '+', '=', blanks and controls become +XX. */
static void test_xtext_encode_escapes_specials(void **state)
{
	char out[64];

	assert_int_equal(smtp_xtext_encode("a+b=c d\x01~", out, sizeof(out)), 17);
	assert_string_equal(out, "a+2Bb+3Dc+20d+01~");
}

/* test_xtext_encode_empty - the empty string encodes to itself. */
static void test_xtext_encode_empty(void **state)
{
	char out[1];

	assert_int_equal(smtp_xtext_encode("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
}

/* test_xtext_encode_refuses_small_buffer - a result that does not fit is refused cleanly. */
static void test_xtext_encode_refuses_small_buffer(void **state)
{
	char out[5];

	assert_int_equal(smtp_xtext_encode("a+", out, sizeof(out)), 4);
	assert_string_equal(out, "a+2B");
	assert_true(smtp_xtext_encode("abcde", out, sizeof(out)) == (size_t)-1);
	assert_string_equal(out, "");
	assert_true(smtp_xtext_encode("ab+", out, sizeof(out)) == (size_t)-1);
	assert_true(smtp_xtext_encode("", out, 0) == (size_t)-1);
}

/* test_xtext_encode_roundtrips_through_envid - what is encoded decodes back as ENVID. */
static void test_xtext_encode_roundtrips_through_envid(void **state)
{
	char enc[128], line[160];
	const char *id = "<id+1=2@host> \"q\"";
	struct smtp_mail m;

	assert_true(smtp_xtext_encode(id, enc, sizeof(enc)) != (size_t)-1);
	snprintf(line, sizeof(line), "FROM:<> ENVID=%s", enc);
	m = mail_ok(line);
	assert_string_equal(m.envid, id);
}

/* test_address_format_local_at_domain - local@domain, returning the length. */
static void test_address_format_local_at_domain(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<\"a b\"@example.com>");
	char buf[64];

	assert_int_equal(smtp_address_format(&m.from, buf, sizeof(buf)), 17);
	assert_string_equal(buf, "\"a b\"@example.com");
}

/* test_address_format_null_and_postmaster - "" for <>, the bare local part for postmaster. */
static void test_address_format_null_and_postmaster(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<>");
	struct smtp_rcpt rc = rcpt_ok("TO:<Postmaster>", 0);
	char buf[64];

	assert_int_equal(smtp_address_format(&m.from, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(smtp_address_format(&rc.to, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "Postmaster");
}

/* test_address_format_truncates_safely - a short buffer gets a terminated prefix. */
static void test_address_format_truncates_safely(void **state)
{
	struct smtp_mail m = mail_ok("FROM:<user@example.com>");
	char buf[8];

	assert_int_equal(smtp_address_format(&m.from, buf, sizeof(buf)), 16);
	assert_string_equal(buf, "user@ex");
}

/* test_address_is_ascii - 8-bit bytes anywhere make an address non-ASCII. */
static void test_address_is_ascii(void **state)
{
	struct smtp_mail ascii = mail_ok("FROM:<a@b.example>");
	struct smtp_mail utf8 = mail_ok("FROM:<a@\xc3\xa9.example> SMTPUTF8");

	assert_int_equal(smtp_address_is_ascii(&ascii.from), 1);
	assert_int_equal(smtp_address_is_ascii(&utf8.from), 0);
}

/* main - run the tests. */
int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verb_matches_case_insensitively),
	    cmocka_unit_test(test_verb_alone_gives_empty_args),
	    cmocka_unit_test(test_verb_args_keep_everything_after_one_space),
	    cmocka_unit_test(test_verb_glued_to_other_text_is_unknown),
	    cmocka_unit_test(test_verb_unknown_words),
	    cmocka_unit_test(test_verb_every_name_parses_back),
	    cmocka_unit_test(test_verb_name_out_of_range_is_unknown),
	    cmocka_unit_test(test_line_check_accepts_printable_and_tab),
	    cmocka_unit_test(test_line_check_refuses_nul),
	    cmocka_unit_test(test_line_check_refuses_control_characters),
	    cmocka_unit_test(test_line_check_refuses_8bit_without_utf8),
	    cmocka_unit_test(test_line_check_accepts_8bit_with_utf8),
	    cmocka_unit_test(test_helo_accepts_domains),
	    cmocka_unit_test(test_helo_accepts_underscore_in_labels),
	    cmocka_unit_test(test_helo_accepts_address_literals),
	    cmocka_unit_test(test_helo_tolerates_surrounding_spaces),
	    cmocka_unit_test(test_helo_empty_is_syntax_error),
	    cmocka_unit_test(test_helo_refuses_malformed_names),
	    cmocka_unit_test(test_helo_refuses_bad_literals),
	    cmocka_unit_test(test_mail_simple_address),
	    cmocka_unit_test(test_mail_null_path),
	    cmocka_unit_test(test_mail_from_keyword_is_case_insensitive),
	    cmocka_unit_test(test_mail_spaces_before_bracket_tolerated),
	    cmocka_unit_test(test_mail_requires_from_keyword),
	    cmocka_unit_test(test_mail_requires_angle_brackets),
	    cmocka_unit_test(test_mail_text_glued_after_path_is_syntax_error),
	    cmocka_unit_test(test_mail_source_route_is_dropped),
	    cmocka_unit_test(test_mail_bad_source_route_refused),
	    cmocka_unit_test(test_mail_quoted_local_part_kept_as_written),
	    cmocka_unit_test(test_mail_local_part_case_preserved),
	    cmocka_unit_test(test_mail_dot_string_accepts_all_atext),
	    cmocka_unit_test(test_mail_malformed_local_part_refused),
	    cmocka_unit_test(test_mail_missing_domain_refused),
	    cmocka_unit_test(test_mail_malformed_domain_refused),
	    cmocka_unit_test(test_mail_address_literals),
	    cmocka_unit_test(test_mail_bad_address_literals_refused),
	    cmocka_unit_test(test_mail_local_part_length_limit),
	    cmocka_unit_test(test_mail_path_length_limit),
	    cmocka_unit_test(test_mail_utf8_address_requires_smtputf8),
	    cmocka_unit_test(test_mail_utf8_address_with_smtputf8_after_it),
	    cmocka_unit_test(test_mail_utf8_in_quoted_local_part),
	    cmocka_unit_test(test_mail_malformed_utf8_refused),
	    cmocka_unit_test(test_mail_size_parameter),
	    cmocka_unit_test(test_mail_bad_size_parameter),
	    cmocka_unit_test(test_mail_body_parameter),
	    cmocka_unit_test(test_mail_smtputf8_takes_no_value),
	    cmocka_unit_test(test_mail_ret_parameter),
	    cmocka_unit_test(test_mail_envid_is_xtext_decoded),
	    cmocka_unit_test(test_mail_bad_envid_refused),
	    cmocka_unit_test(test_mail_envid_length_limit),
	    cmocka_unit_test(test_mail_auth_parameter),
	    cmocka_unit_test(test_mail_duplicate_parameter_refused),
	    cmocka_unit_test(test_mail_unknown_parameter_is_555),
	    cmocka_unit_test(test_mail_unknown_long_keyword_echo_is_bounded),
	    cmocka_unit_test(test_mail_several_parameters),
	    cmocka_unit_test(test_rcpt_simple_address),
	    cmocka_unit_test(test_rcpt_to_keyword_and_spacing),
	    cmocka_unit_test(test_rcpt_null_path_refused),
	    cmocka_unit_test(test_rcpt_postmaster_without_domain),
	    cmocka_unit_test(test_rcpt_bad_address_refused),
	    cmocka_unit_test(test_rcpt_utf8_only_when_allowed),
	    cmocka_unit_test(test_rcpt_notify_parameter),
	    cmocka_unit_test(test_rcpt_bad_notify_refused),
	    cmocka_unit_test(test_rcpt_orcpt_parameter),
	    cmocka_unit_test(test_rcpt_orcpt_raw_utf8_only_for_utf8_type_under_smtputf8),
	    cmocka_unit_test(test_rcpt_bad_orcpt_refused),
	    cmocka_unit_test(test_rcpt_duplicate_parameter_refused),
	    cmocka_unit_test(test_rcpt_mail_parameters_are_unknown),
	    cmocka_unit_test(test_bdat_size_only),
	    cmocka_unit_test(test_bdat_last_is_case_insensitive),
	    cmocka_unit_test(test_bdat_largest_size),
	    cmocka_unit_test(test_bdat_malformed_refused),
	    cmocka_unit_test(test_xtext_encode_escapes_specials),
	    cmocka_unit_test(test_xtext_encode_empty),
	    cmocka_unit_test(test_xtext_encode_refuses_small_buffer),
	    cmocka_unit_test(test_xtext_encode_roundtrips_through_envid),
	    cmocka_unit_test(test_address_format_local_at_domain),
	    cmocka_unit_test(test_address_format_null_and_postmaster),
	    cmocka_unit_test(test_address_format_truncates_safely),
	    cmocka_unit_test(test_address_is_ascii),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
