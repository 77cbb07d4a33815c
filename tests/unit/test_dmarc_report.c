/*
 * test_dmarc_report.c - RFC 7489 aggregate reports from DMARC records
 * (dmarc_report.c): which records count (time range, a published policy,
 * one policy domain), how they group into rows with counts, the applied
 * disposition and the reason for an override, results outside appendix
 * C's lists, and escaped XML text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc_report.h"

#define T0 INT64_C(1714521600) /* 2024-05-01 00:00:00 UTC */

static const struct dmarc_report_meta META = {"Org <&>", "dmarc@rep.test", T0, T0 + 86399};

/* record - a record line of the queue's shape; fields that vary are given. */
static char *record(const char *ip, const char *action, const char *disposition, int sampled,
		    int spf_aligned, const char *extra, int64_t t)
{
	static char buf[2048];

	snprintf(buf, sizeof(buf),
		 "{\"source_ip\":\"%s\",\"envelope_from\":\"ex.org\",\"header_from\":\"ex.org\","
		 "\"result\":\"%s\",\"disposition\":\"%s\",\"spf_aligned\":%s,\"dkim_aligned\":false,"
		 "\"policy_domain\":\"ex.org\",\"p\":\"reject\",\"sp\":\"none\",\"pct\":50,"
		 "\"adkim\":\"r\",\"aspf\":\"s\",\"sampled\":%s,"
		 "\"spf\":{\"domain\":\"ex.org\",\"scope\":\"mfrom\",\"result\":\"%s\"},"
		 "\"dkim\":[%s],\"id\":\"0123456789ABCDEF\",\"time\":%lld,\"action\":\"%s\"}",
		 ip, spf_aligned ? "pass" : "fail", disposition, spf_aligned ? "true" : "false",
		 sampled ? "true" : "false", spf_aligned ? "pass" : "fail", extra, (long long)t,
		 action);
	return buf;
}

/* add - dmarc_report_add of a line, for the whole day. */
static int add(struct dmarc_report_set *set, const char *line, const char *only)
{
	return dmarc_report_add(set, line, strlen(line), META.begin, META.end, only);
}

/* xml - report i as a string (malloc'ed). */
static char *xml(const struct dmarc_report_set *set, size_t i)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	assert_non_null(fp);
	assert_int_equal(dmarc_report_write(set, i, &META, fp), 0);
	fclose(fp);
	return text;
}

/* count_of - how many times needle is in hay. */
static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)) != NULL; hay += strlen(needle))
		n++;
	return n;
}

static void test_rows_group_and_count(void **state)
{
	struct dmarc_report_set *set = dmarc_report_set_new();
	char *x;

	(void)state;
	assert_int_equal(add(set, record("192.0.2.1", "queued", "none", 1, 1, "", T0 + 1), NULL), 1);
	assert_int_equal(add(set, record("192.0.2.1", "queued", "none", 1, 1, "", T0 + 2), NULL), 1);
	assert_int_equal(add(set, record("192.0.2.2", "queued", "none", 1, 1, "", T0 + 3), NULL), 1);
	assert_int_equal(dmarc_report_count(set), 1);
	assert_string_equal(dmarc_report_domain(set, 0), "ex.org");
	x = xml(set, 0);
	assert_int_equal(count_of(x, "<record>"), 2);
	assert_non_null(strstr(x, "<source_ip>192.0.2.1</source_ip>\n      <count>2</count>"));
	assert_non_null(strstr(x, "<source_ip>192.0.2.2</source_ip>\n      <count>1</count>"));
	assert_non_null(strstr(x, "<org_name>Org &lt;&amp;&gt;</org_name>"));
	assert_non_null(strstr(x, "<p>reject</p>\n    <sp>none</sp>\n    <pct>50</pct>"));
	assert_non_null(strstr(x, "<aspf>s</aspf>"));
	assert_null(strstr(x, "<reason>"));
	free(x);
	dmarc_report_set_free(set);
}

static void test_disposition_and_reasons(void **state)
{
	struct dmarc_report_set *set = dmarc_report_set_new();
	char *x;

	(void)state;
	/* refused as the policy asked: no reason */
	add(set, record("192.0.2.1", "rejected", "reject", 1, 0, "", T0), NULL);
	/* pct left it out: the policy asked for quarantine, it was queued */
	add(set, record("192.0.2.2", "queued", "quarantine", 0, 0, "", T0), NULL);
	/* passed, but the rules quarantined it all the same */
	add(set, record("192.0.2.3", "quarantined", "none", 1, 1, "", T0), NULL);
	x = xml(set, 0);
	assert_non_null(strstr(x, "<source_ip>192.0.2.1</source_ip>\n      <count>1</count>\n"
				  "      <policy_evaluated>\n        <disposition>reject</disposition>\n"
				  "        <dkim>fail</dkim>\n        <spf>fail</spf>\n"
				  "      </policy_evaluated>"));
	assert_non_null(strstr(x, "<disposition>none</disposition>\n        <dkim>fail</dkim>\n"
				  "        <spf>fail</spf>\n        <reason>\n"
				  "          <type>sampled_out</type>"));
	assert_non_null(strstr(x, "<disposition>quarantine</disposition>\n        <dkim>fail</dkim>\n"
				  "        <spf>pass</spf>\n        <reason>\n"
				  "          <type>local_policy</type>"));
	free(x);
	dmarc_report_set_free(set);
}

static void test_what_is_left_out(void **state)
{
	struct dmarc_report_set *set = dmarc_report_set_new();
	const char *nopolicy = "{\"source_ip\":\"192.0.2.1\",\"header_from\":\"x.org\","
			       "\"result\":\"none\",\"disposition\":\"none\",\"time\":1714521700,"
			       "\"action\":\"queued\"}";

	(void)state;
	assert_int_equal(add(set, record("192.0.2.1", "queued", "none", 1, 1, "", T0 - 1), NULL), 0);
	assert_int_equal(add(set, record("192.0.2.1", "queued", "none", 1, 1, "", T0 + 86400), NULL),
			 0);
	assert_int_equal(add(set, nopolicy, NULL), 0);
	assert_int_equal(add(set, record("192.0.2.1", "queued", "none", 1, 1, "", T0), "other.org"),
			 0);
	assert_int_equal(add(set, record("192.0.2.1", "queued", "none", 1, 1, "", T0), "EX.org"), 1);
	assert_int_equal(add(set, "{\"source_ip\":", NULL), -1);
	assert_int_equal(add(set, "[1,2]", NULL), -1);
	assert_int_equal(add(set, "", NULL), -1);
	assert_int_equal(dmarc_report_count(set), 1);
	dmarc_report_set_free(set);
}

static void test_auth_results(void **state)
{
	struct dmarc_report_set *set = dmarc_report_set_new();
	char *x;

	(void)state;
	add(set,
	    record("192.0.2.1", "queued", "none", 1, 1,
		   "{\"domain\":\"a<b.org\",\"selector\":\"s1\",\"result\":\"pass\"},"
		   "{\"domain\":\"c.org\",\"selector\":\"\",\"result\":\"strange\"}",
		   T0),
	    NULL);
	x = xml(set, 0);
	assert_non_null(strstr(x, "<dkim>\n        <domain>a&lt;b.org</domain>\n"
				  "        <selector>s1</selector>\n        <result>pass</result>"));
	/* no selector element for an empty one; an unknown result is "none" */
	assert_non_null(strstr(x, "<dkim>\n        <domain>c.org</domain>\n"
				  "        <result>none</result>"));
	assert_non_null(strstr(x, "<spf>\n        <domain>ex.org</domain>\n"
				  "        <scope>mfrom</scope>\n        <result>pass</result>"));
	assert_non_null(strstr(x, "<envelope_from>ex.org</envelope_from>\n"
				  "      <header_from>ex.org</header_from>"));
	free(x);
	dmarc_report_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rows_group_and_count),
	    cmocka_unit_test(test_disposition_and_reasons),
	    cmocka_unit_test(test_what_is_left_out),
	    cmocka_unit_test(test_auth_results),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
