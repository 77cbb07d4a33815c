/*
 * test_dsn.c - delivery status notifications: when one is wanted, and the
 * message dsn_build writes, taken apart by a small MIME reader: header
 * fields, the three parts, the per-message and per-recipient report
 * fields, what is returned of the original (RET, attach_limit, contents
 * that cannot travel unchanged), internationalized reports, and
 * well-formedness (CRLF only, no line over 998 octets, one boundary that
 * nothing else contains) for odd and random inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"
#include "envelope.h"
#include "smtp_parse.h"

#define NOW INT64_C(1700000000) /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define NOW_DATE "Tue, 14 Nov 2023 22:13:20 +0000"

static const char CONTENT[] = "Received: from client by mx.test\r\n"
                              "From: Alice <alice@example.com>\r\n"
                              "To: bob@example.org\r\n"
                              "Subject: lunch\r\n"
                              "\r\n"
                              "See you at noon.\r\n"
                              "-- \r\n"
                              "Alice\r\n";
static const char CONTENT_HEADER[] = "Received: from client by mx.test\r\n"
                                     "From: Alice <alice@example.com>\r\n"
                                     "To: bob@example.org\r\n"
                                     "Subject: lunch\r\n";

/* A slice of the notification. */
struct span {
	const char *p;
	size_t len;
};

/* A notification taken apart. */
struct dsn_msg {
	char *raw;
	size_t len;
	struct span header; /* the top-level header, CRLF of the last field included */
	char boundary[128];
	int nparts;
	struct span part_header[3];
	struct span part_body[3];
};

/* check_lines - CRLF endings only, no NUL, no line over 998 octets; returns the longest. */
static size_t check_lines(const char *m, size_t len)
{
	size_t i, col = 0, longest = 0;

	assert_true(len >= 2);
	assert_memory_equal(m + len - 2, "\r\n", 2);
	for (i = 0; i < len; i++) {
		if (m[i] == '\r') {
			assert_true(i + 1 < len && m[i + 1] == '\n');
			assert_true(col <= 998);
			longest = col > longest ? col : longest;
			col = 0;
			i++;
			continue;
		}
		assert_true(m[i] != '\n' && m[i] != '\0');
		col++;
	}
	return longest;
}

/* span_find - the first occurrence of needle in s, NULL when none. */
static const char *span_find(struct span s, const char *needle)
{
	return memmem(s.p, s.len, needle, strlen(needle));
}

/*
 * field_get - the unfolded value of the first field name in the header
 * block h (leading blanks dropped) into out; 0, or -1 when absent.
 */
static int field_get(struct span h, const char *name, char *out, size_t outlen)
{
	const char *p = h.p, *end = h.p + h.len;
	size_t n = strlen(name), o = 0;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
			p += n + 1;
			while (p < end && *p == ' ')
				p++;
			for (;;) {
				while (p < eol && o + 1 < outlen)
					out[o++] = *p++;
				if (eol + 2 < end && (eol[2] == ' ' || eol[2] == '\t')) {
					p = eol + 2;
					eol = memmem(p, (size_t)(end - p), "\r\n", 2);
					if (eol == NULL)
						eol = end;
					continue;
				}
				break;
			}
			out[o] = '\0';
			return 0;
		}
		p = eol + 2;
	}
	return -1;
}

/* expect_field - field name of h is exactly want. */
static void expect_field(struct span h, const char *name, const char *want)
{
	char got[8192];

	if (field_get(h, name, got, sizeof(got)) < 0)
		fail_msg("no %s field in:\n%.*s", name, (int)h.len, h.p);
	assert_string_equal(got, want);
}

/* expect_no_field - h has no field name. */
static void expect_no_field(struct span h, const char *name)
{
	char got[8192];

	assert_int_equal(field_get(h, name, got, sizeof(got)), -1);
}

/* split_block - header and body of an entity (split at the first empty line). */
static void split_block(struct span all, struct span *header, struct span *body)
{
	const char *sep;

	if (all.len >= 2 && memcmp(all.p, "\r\n", 2) == 0) {
		*header = (struct span){all.p, 0};
		*body = (struct span){all.p + 2, all.len - 2};
		return;
	}
	sep = memmem(all.p, all.len, "\r\n\r\n", 4);
	assert_non_null(sep);
	*header = (struct span){all.p, (size_t)(sep - all.p) + 2};
	*body = (struct span){sep + 4, all.len - (size_t)(sep + 4 - all.p)};
}

/*
 * dsn_parse - check and take apart a notification: well-formed lines, a
 * multipart/report with a boundary, exactly three parts and the closing
 * delimiter last; the boundary occurs nowhere else.
 */
static void dsn_parse(char *raw, size_t len, struct dsn_msg *m)
{
	char ctype[1024], delim[140], *b;
	struct span body, rest;
	const char *p, *next;
	size_t dlen;

	memset(m, 0, sizeof(*m));
	m->raw = raw;
	m->len = len;
	check_lines(raw, len);
	split_block((struct span){raw, len}, &m->header, &body);
	assert_int_equal(field_get(m->header, "Content-Type", ctype, sizeof(ctype)), 0);
	assert_true(strncmp(ctype, "multipart/report;", 17) == 0);
	b = strstr(ctype, "boundary=\"");
	assert_non_null(b);
	b += 10;
	assert_non_null(strchr(b, '"'));
	*strchr(b, '"') = '\0';
	assert_true(strlen(b) >= 1 && strlen(b) <= 70);
	snprintf(m->boundary, sizeof(m->boundary), "%s", b);

	/* The preamble, then "--B" lines; every part runs to the CRLF before the next one. */
	dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", m->boundary);
	p = memmem(body.p, body.len, delim + 2, dlen - 2);
	assert_non_null(p);
	assert_true(p == body.p || (p[-2] == '\r' && p[-1] == '\n'));
	for (;;) {
		p += dlen - 2;
		if (strncmp(p, "--\r\n", 4) == 0) {
			assert_true(p + 4 == raw + len);
			break;
		}
		assert_memory_equal(p, "\r\n", 2);
		p += 2;
		rest = (struct span){p, (size_t)(raw + len - p)};
		next = memmem(rest.p, rest.len, delim, dlen);
		assert_non_null(next);
		assert_true(m->nparts < 3);
		split_block((struct span){p, (size_t)(next - p)}, &m->part_header[m->nparts],
		            &m->part_body[m->nparts]);
		m->nparts++;
		p = next + 2;
	}
	assert_int_equal(m->nparts, 3);
	/* The boundary appears only in the delimiters (4) and its parameter. */
	{
		int count = 0;

		for (p = raw; (p = memmem(p, (size_t)(raw + len - p), m->boundary,
		                          strlen(m->boundary))) != NULL;
		     p++)
			count++;
		assert_int_equal(count, 5);
	}
}

/* status_block - the n-th block of the delivery-status part (0: per message). */
static struct span status_block(const struct dsn_msg *m, int n)
{
	struct span s = m->part_body[1];
	const char *p = s.p, *end = s.p + s.len, *sep;

	for (;;) {
		sep = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		if (n == 0)
			return (struct span){p, sep != NULL ? (size_t)(sep - p) + 2
			                                    : (size_t)(end - p)};
		if (sep == NULL)
			fail_msg("no status block %d", n);
		p = sep + 4;
		n--;
	}
}

/* status_blocks - how many blocks the delivery-status part has. */
static int status_blocks(const struct dsn_msg *m)
{
	struct span s = m->part_body[1];
	const char *p = s.p, *end = s.p + s.len, *sep;
	int n = 1;

	while ((sep = memmem(p, (size_t)(end - p), "\r\n\r\n", 4)) != NULL && sep + 4 < end) {
		n++;
		p = sep + 4;
	}
	return n;
}

/* text_has - whether the explanation holds phrase, its lines joined again. */
static int text_has(const struct dsn_msg *m, const char *phrase)
{
	struct span t = m->part_body[0];
	char *joined = malloc(t.len + 1);
	size_t i, o = 0;
	int found;

	assert_non_null(joined);
	for (i = 0; i < t.len; i++) {
		if (t.p[i] == '\r' && i + 1 < t.len && t.p[i + 1] == '\n') {
			i++;
			while (i + 1 < t.len && t.p[i + 1] == ' ')
				i++;
			joined[o++] = ' ';
			continue;
		}
		joined[o++] = t.p[i];
	}
	joined[o] = '\0';
	found = strstr(joined, phrase) != NULL;
	free(joined);
	return found;
}

/* make_env - a delivered-over-SMTP envelope from alice. */
static void make_env(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
	strcpy(env->id, "00065F1A2B3C4D5E");
	env->received_at = NOW - 3600;
	assert_int_equal(envelope_set(&env->mail_from, "alice@example.com"), 0);
	assert_int_equal(envelope_add_rcpt(env, "bob@example.org", 0, "rfc822", "Bob@Example.org"),
	                 0);
	assert_int_equal(envelope_add_rcpt(env, "carol@example.org", 0, NULL, NULL), 0);
}

/* build - dsn_build that must succeed; the result parsed into m. */
static void build(const struct envelope *env, const char *content, size_t len,
                  const struct dsn_rcpt *rcpts, size_t n, size_t attach_limit, struct dsn_msg *m)
{
	size_t out_len = 0;
	char *out = dsn_build("mx.test", env, content, len, rcpts, n, attach_limit, NOW, &out_len);

	assert_non_null(out);
	dsn_parse(out, out_len, m);
}

/* two_failures - bob refused by the next hop, carol failed locally. */
static void two_failures(const struct envelope *env, struct dsn_rcpt r[2])
{
	memset(r, 0, 2 * sizeof(r[0]));
	r[0] = (struct dsn_rcpt){&env->rcpts[0],
	                         DSN_FAILED,
	                         "5.1.1",
	                         "mx.example.org",
	                         "550 5.1.1 <bob@example.org>: no such user",
	                         1,
	                         NOW - 60,
	                         0};
	r[1] =
	    (struct dsn_rcpt){&env->rcpts[1], DSN_FAILED, "5.2.2", NULL, "mailbox full", 0, 0, 0};
}

static void test_wanted_follows_notify(void **state)
{
	struct envelope env;
	struct envelope_rcpt r = {0};
	static const struct {
		unsigned notify;
		int failed, delayed, delivered, relayed;
	} cases[] = {
	    {0, 1, 0, 0, 0},
	    {SMTP_NOTIFY_NEVER, 0, 0, 0, 0},
	    {SMTP_NOTIFY_FAILURE, 1, 0, 0, 0},
	    {SMTP_NOTIFY_DELAY, 0, 1, 0, 0},
	    {SMTP_NOTIFY_SUCCESS, 0, 0, 1, 1},
	    {SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, 1, 1, 1, 1},
	    {SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, 1, 1, 0, 0},
	};
	size_t i;

	make_env(&env);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r.notify = cases[i].notify;
		assert_int_equal(dsn_wanted(&env, &r, DSN_FAILED), cases[i].failed);
		assert_int_equal(dsn_wanted(&env, &r, DSN_DELAYED), cases[i].delayed);
		assert_int_equal(dsn_wanted(&env, &r, DSN_DELIVERED), cases[i].delivered);
		assert_int_equal(dsn_wanted(&env, &r, DSN_RELAYED), cases[i].relayed);
	}
	/* Never to the null sender, whatever was asked. */
	assert_int_equal(envelope_set(&env.mail_from, ""), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r.notify = cases[i].notify;
		assert_int_equal(dsn_wanted(&env, &r, DSN_FAILED), 0);
		assert_int_equal(dsn_wanted(&env, &r, DSN_DELAYED), 0);
		assert_int_equal(dsn_wanted(&env, &r, DSN_DELIVERED), 0);
	}
	envelope_clear(&env);
}

static void test_failure_report_fields(void **state)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg m;
	char msgid[300];
	struct span b;

	make_env(&env);
	assert_int_equal(envelope_set(&env.envid, "QQ+314159"), 0);
	two_failures(&env, r);
	build(&env, CONTENT, strlen(CONTENT), r, 2, 65536, &m);

	expect_field(m.header, "From", "Mail Delivery System <MAILER-DAEMON@mx.test>");
	expect_field(m.header, "To", "<alice@example.com>");
	expect_field(m.header, "Subject", "Undelivered Mail Returned to Sender");
	expect_field(m.header, "Date", NOW_DATE);
	expect_field(m.header, "Auto-Submitted", "auto-replied");
	expect_field(m.header, "MIME-Version", "1.0");
	assert_int_equal(field_get(m.header, "Message-ID", msgid, sizeof(msgid)), 0);
	assert_true(msgid[0] == '<' && strstr(msgid, "@mx.test>") != NULL);
	assert_non_null(span_find(m.header, "report-type=delivery-status;"));
	expect_no_field(m.header, "Content-Transfer-Encoding");

	/* The explanation. */
	expect_field(m.part_header[0], "Content-Type", "text/plain; charset=utf-8");
	assert_true(text_has(&m, "This is the mail system at host mx.test."));
	assert_true(text_has(&m, "<bob@example.org>: host mx.example.org said: "
	                         "550 5.1.1 <bob@example.org>: no such user"));
	assert_true(text_has(&m, "<carol@example.org>: mailbox full"));
	assert_true(text_has(&m, "postmaster@mx.test"));

	/* The report: per message, then one block per recipient. */
	expect_field(m.part_header[1], "Content-Type", "message/delivery-status");
	assert_int_equal(status_blocks(&m), 3);
	b = status_block(&m, 0);
	expect_field(b, "Reporting-MTA", "dns; mx.test");
	expect_field(b, "Original-Envelope-Id", "QQ+314159");
	expect_field(b, "Arrival-Date", "Tue, 14 Nov 2023 21:13:20 +0000");
	expect_field(b, "X-Vsmtpd-Queue-ID", "00065F1A2B3C4D5E");
	b = status_block(&m, 1);
	expect_field(b, "Original-Recipient", "rfc822; Bob@Example.org");
	expect_field(b, "Final-Recipient", "rfc822; bob@example.org");
	expect_field(b, "Action", "failed");
	expect_field(b, "Status", "5.1.1");
	expect_field(b, "Remote-MTA", "dns; mx.example.org");
	expect_field(b, "Diagnostic-Code", "smtp; 550 5.1.1 <bob@example.org>: no such user");
	expect_field(b, "Last-Attempt-Date", "Tue, 14 Nov 2023 22:12:20 +0000");
	expect_no_field(b, "Will-Retry-Until");
	b = status_block(&m, 2);
	expect_no_field(b, "Original-Recipient");
	expect_field(b, "Final-Recipient", "rfc822; carol@example.org");
	expect_field(b, "Status", "5.2.2");
	expect_field(b, "Diagnostic-Code", "x-vsmtpd; mailbox full");
	expect_no_field(b, "Remote-MTA");
	expect_no_field(b, "Last-Attempt-Date");

	/* The original, whole and unchanged. */
	expect_field(m.part_header[2], "Content-Type", "message/rfc822");
	assert_int_equal(m.part_body[2].len, strlen(CONTENT));
	assert_memory_equal(m.part_body[2].p, CONTENT, strlen(CONTENT));
	free(m.raw);
	envelope_clear(&env);
}

static void test_ret_hdrs_returns_the_header_only(void **state)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg m;

	make_env(&env);
	env.ret = SMTP_RET_HDRS;
	two_failures(&env, r);
	build(&env, CONTENT, strlen(CONTENT), r, 2, 65536, &m);
	expect_field(m.part_header[2], "Content-Type", "text/rfc822-headers");
	assert_int_equal(m.part_body[2].len, strlen(CONTENT_HEADER));
	assert_memory_equal(m.part_body[2].p, CONTENT_HEADER, strlen(CONTENT_HEADER));
	assert_null(memmem(m.raw, m.len, "See you at noon", 15));
	assert_true(text_has(&m, "header only"));
	free(m.raw);

	/* RET=FULL and no RET both return the whole message. */
	env.ret = SMTP_RET_FULL;
	build(&env, CONTENT, strlen(CONTENT), r, 2, 65536, &m);
	expect_field(m.part_header[2], "Content-Type", "message/rfc822");
	free(m.raw);
	envelope_clear(&env);
}

static void test_attach_limit_bounds_the_original(void **state)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg m;

	make_env(&env);
	two_failures(&env, r);
	build(&env, CONTENT, strlen(CONTENT), r, 2, strlen(CONTENT), &m);
	expect_field(m.part_header[2], "Content-Type", "message/rfc822");
	assert_int_equal(m.part_body[2].len, strlen(CONTENT));
	free(m.raw);

	build(&env, CONTENT, strlen(CONTENT), r, 2, strlen(CONTENT) - 1, &m);
	expect_field(m.part_header[2], "Content-Type", "text/rfc822-headers");
	assert_int_equal(m.part_body[2].len, strlen(CONTENT_HEADER));
	assert_memory_equal(m.part_body[2].p, CONTENT_HEADER, strlen(CONTENT_HEADER));
	assert_true(text_has(&m, "too large"));
	free(m.raw);

	/* A limit of 0 still returns the header. */
	build(&env, CONTENT, strlen(CONTENT), r, 2, 0, &m);
	assert_memory_equal(m.part_body[2].p, CONTENT_HEADER, strlen(CONTENT_HEADER));
	free(m.raw);
	envelope_clear(&env);
}

static void test_delay_warning(void **state)
{
	struct envelope env;
	struct dsn_rcpt r;
	struct dsn_msg m;
	struct span b;

	make_env(&env);
	env.rcpts[0].notify = SMTP_NOTIFY_DELAY;
	r = (struct dsn_rcpt){&env.rcpts[0],
	                      DSN_DELAYED,
	                      "4.4.1",
	                      NULL,
	                      "connect to mx.example.org[192.0.2.1]:25: Connection timed out",
	                      0,
	                      NOW - 10,
	                      NOW + 4 * 86400};
	build(&env, CONTENT, strlen(CONTENT), &r, 1, 65536, &m);
	expect_field(m.header, "Subject", "Delayed Mail (still being retried)");
	assert_true(text_has(&m, "not been delivered yet"));
	assert_true(text_has(&m, "Sat, 18 Nov 2023 22:13:20 +0000"));
	b = status_block(&m, 1);
	expect_field(b, "Action", "delayed");
	expect_field(b, "Status", "4.4.1");
	expect_field(b, "Diagnostic-Code",
	             "x-vsmtpd; connect to mx.example.org[192.0.2.1]:25: Connection timed out");
	expect_field(b, "Will-Retry-Until", "Sat, 18 Nov 2023 22:13:20 +0000");
	/* Only a failure returns the message itself. */
	expect_field(m.part_header[2], "Content-Type", "text/rfc822-headers");
	assert_int_equal(m.part_body[2].len, strlen(CONTENT_HEADER));
	free(m.raw);
	envelope_clear(&env);
}

static void test_success_reports(void **state)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg m;

	make_env(&env);
	r[0] = (struct dsn_rcpt){
	    &env.rcpts[0], DSN_DELIVERED, "2.0.0", NULL, "delivered to mailbox", 0, NOW, 0};
	r[1] = (struct dsn_rcpt){&env.rcpts[1],
	                         DSN_RELAYED,
	                         NULL,
	                         "mx.example.org",
	                         "250 2.0.0 queued as 1234",
	                         1,
	                         NOW,
	                         0};
	build(&env, CONTENT, strlen(CONTENT), r, 2, 65536, &m);
	expect_field(m.header, "Subject", "Successful Mail Delivery Report");
	expect_field(status_block(&m, 1), "Action", "delivered");
	expect_field(status_block(&m, 2), "Action", "relayed");
	/* No status given: one of the action's class. */
	expect_field(status_block(&m, 2), "Status", "2.0.0");
	assert_true(text_has(&m, "sends no delivery reports"));
	expect_field(m.part_header[2], "Content-Type", "text/rfc822-headers");
	free(m.raw);
	envelope_clear(&env);
}

static void test_mixed_report_and_bad_status_codes(void **state)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg m;

	make_env(&env);
	r[0] = (struct dsn_rcpt){&env.rcpts[0], DSN_FAILED, "5.1", NULL, "no", 0, 0, 0};
	r[1] = (struct dsn_rcpt){&env.rcpts[1], DSN_DELAYED, "4.4.1\r\nX: y", NULL, NULL, 0, 0, 0};
	build(&env, CONTENT, strlen(CONTENT), r, 2, 65536, &m);
	expect_field(m.header, "Subject", "Undelivered Mail Returned to Sender");
	assert_true(text_has(&m, "could not be delivered"));
	assert_true(text_has(&m, "not been delivered yet"));
	expect_field(status_block(&m, 1), "Status", "5.0.0");
	expect_field(status_block(&m, 2), "Status", "4.0.0");
	expect_no_field(status_block(&m, 2), "Diagnostic-Code");
	expect_no_field(status_block(&m, 2), "X");
	assert_true(text_has(&m, "<carol@example.org>: status 4.0.0"));
	expect_field(m.part_header[2], "Content-Type", "message/rfc822");
	free(m.raw);
	envelope_clear(&env);
}

static void test_utf8_report_is_global(void **state)
{
	struct envelope env = {0};
	struct dsn_rcpt r[2];
	struct dsn_msg m;
	static const char content[] =
	    "From: j\xc3\xbcrgen@example.org\r\nSubject: Gr\xc3\xbc\xc3\x9f"
	    "e\r\n\r\nHall\xc3\xb6\r\n";

	env.smtputf8 = 1;
	assert_int_equal(envelope_set(&env.mail_from, "j\xc3\xbcrgen@example.org"), 0);
	assert_int_equal(envelope_add_rcpt(&env, "\xe7\x94\xa8\xe6\x88\xb7@example.net", 0, "utf-8",
	                                   "\xe7\x94\xa8\xe6\x88\xb7@example.net"),
	                 0);
	assert_int_equal(envelope_add_rcpt(&env, "a+b=c\xc3\xa9@example.net", 0, NULL, NULL), 0);
	r[0] = (struct dsn_rcpt){&env.rcpts[0],
	                         DSN_FAILED,
	                         "5.1.1",
	                         "mx.example.net",
	                         "550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7 unknown",
	                         1,
	                         0,
	                         0};
	r[1] = (struct dsn_rcpt){&env.rcpts[1], DSN_FAILED, "5.1.1", NULL, "no", 0, 0, 0};
	build(&env, content, strlen(content), r, 2, 65536, &m);

	assert_non_null(span_find(m.header, "report-type=global-delivery-status;"));
	expect_field(m.header, "To", "<j\xc3\xbcrgen@example.org>");
	expect_field(m.header, "Content-Transfer-Encoding", "8bit");
	expect_field(m.part_header[1], "Content-Type", "message/global-delivery-status");
	expect_field(status_block(&m, 0), "X-Vsmtpd-Sender", "utf-8; j\xc3\xbcrgen@example.org");
	expect_field(status_block(&m, 1), "Final-Recipient",
	             "utf-8; \xe7\x94\xa8\xe6\x88\xb7@example.net");
	expect_field(status_block(&m, 1), "Original-Recipient",
	             "utf-8; \xe7\x94\xa8\xe6\x88\xb7@example.net");
	expect_field(status_block(&m, 1), "Diagnostic-Code",
	             "smtp; 550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7 unknown");
	/* utf-8-addr-unitext: '+' and '=' are escaped. */
	expect_field(status_block(&m, 2), "Final-Recipient",
	             "utf-8; a\\x{2B}b\\x{3D}c\xc3\xa9@example.net");
	expect_field(m.part_header[2], "Content-Type", "message/global");
	expect_field(m.part_header[2], "Content-Transfer-Encoding", "8bit");
	assert_memory_equal(m.part_body[2].p, content, strlen(content));
	free(m.raw);

	env.ret = SMTP_RET_HDRS;
	build(&env, content, strlen(content), r, 2, 65536, &m);
	expect_field(m.part_header[2], "Content-Type", "message/global-headers");
	free(m.raw);
	envelope_clear(&env);
}

static void test_ascii_report_keeps_its_fields_ascii(void **state)
{
	struct envelope env;
	struct dsn_rcpt r;
	struct dsn_msg m;

	make_env(&env);
	r = (struct dsn_rcpt){&env.rcpts[0],
	                      DSN_FAILED,
	                      "5.0.0",
	                      NULL,
	                      "550 \xc3\x9cnicode\x07 and \xff bytes",
	                      1,
	                      0,
	                      0};
	build(&env, CONTENT, strlen(CONTENT), &r, 1, 65536, &m);
	assert_non_null(span_find(m.header, "report-type=delivery-status;"));
	expect_field(status_block(&m, 1), "Diagnostic-Code", "smtp; 550 ?nicode and ? bytes");
	expect_no_field(m.part_header[1], "Content-Transfer-Encoding");
	/* The explanation is UTF-8 text: it keeps the character. */
	assert_true(text_has(&m, "550 \xc3\x9cnicode and ? bytes"));
	expect_field(m.part_header[0], "Content-Transfer-Encoding", "8bit");
	expect_field(m.header, "Content-Transfer-Encoding", "8bit");
	free(m.raw);
	envelope_clear(&env);
}

static void test_diagnostics_cannot_inject_lines(void **state)
{
	struct envelope env;
	struct dsn_rcpt r;
	struct dsn_msg m;
	const char *p;

	make_env(&env);
	assert_int_equal(envelope_set(&env.envid, "id\r\nInjected: envid"), 0);
	assert_int_equal(envelope_set(&env.rcpts[0].address, "bob@example.org\r\nInjected: rcpt"),
	                 0);
	r = (struct dsn_rcpt){&env.rcpts[0],
	                      DSN_FAILED,
	                      "5.0.0",
	                      "mx\r\nInjected: host",
	                      "550 no\r\nInjected: yes\r\n\r\n--x\n\rmore",
	                      1,
	                      0,
	                      0};
	build(&env, CONTENT, strlen(CONTENT), &r, 1, 65536, &m);
	for (p = m.raw; (p = memmem(p, m.len - (size_t)(p - m.raw), "Injected:", 9)) != NULL; p++)
		assert_false(p[-1] == '\n');
	expect_field(status_block(&m, 1), "Diagnostic-Code", "smtp; 550 no Injected: yes --x more");
	expect_field(status_block(&m, 1), "Final-Recipient",
	             "rfc822; bob@example.org Injected: rcpt");
	expect_field(status_block(&m, 0), "Original-Envelope-Id", "id Injected: envid");
	free(m.raw);
	envelope_clear(&env);
}

static void test_long_diagnostics_are_folded(void **state)
{
	struct envelope env;
	struct dsn_rcpt r;
	struct dsn_msg m;
	char *diag = malloc(6000), got[8192];
	size_t i;
	struct span s;

	assert_non_null(diag);
	make_env(&env);
	/* Many short words: every line of the report stays within 78 columns. */
	for (i = 0; i < 300; i++)
		memcpy(diag + i * 10, "550 word, ", 10);
	diag[2999] = '\0';
	r = (struct dsn_rcpt){&env.rcpts[0], DSN_FAILED, "5.0.0", NULL, diag, 1, 0, 0};
	build(&env, CONTENT, strlen(CONTENT), &r, 1, 65536, &m);
	assert_int_equal(field_get(status_block(&m, 1), "Diagnostic-Code", got, sizeof(got)), 0);
	assert_true(strncmp(got, "smtp; 550 word, 550 word,", 25) == 0);
	assert_true(strlen(got) > 2900);
	s = m.part_body[1];
	assert_true(check_lines(s.p, s.len) <= 78);
	s = m.part_body[0];
	assert_true(check_lines(s.p, s.len) <= 78);
	free(m.raw);

	/* One 5000-octet word: split within 998, cut with "...". */
	memset(diag, 'a', 5000);
	diag[5000] = '\0';
	build(&env, CONTENT, strlen(CONTENT), &r, 1, 65536, &m);
	assert_int_equal(field_get(status_block(&m, 1), "Diagnostic-Code", got, sizeof(got)), 0);
	assert_true(strncmp(got, "smtp; aaaa", 10) == 0);
	assert_true(strlen(got) < 4100);
	assert_string_equal(got + strlen(got) - 3, "...");
	free(m.raw);
	free(diag);
	envelope_clear(&env);
}

/* check_odd - a failure report for content: well-formed, the original returned as type. */
static void check_odd(const char *content, size_t len, size_t limit, const char *type)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg m;

	make_env(&env);
	two_failures(&env, r);
	build(&env, content, len, r, 2, limit, &m);
	expect_field(m.part_header[2], "Content-Type", type);
	free(m.raw);
	envelope_clear(&env);
}

static void test_odd_contents_give_well_formed_reports(void **state)
{
	static const char nul[] = "Subject: a\r\n\r\nbody\0with NUL\r\n";
	size_t big = 300000, i;
	char *huge = malloc(big + 1);

	assert_non_null(huge);
	check_odd("", 0, 65536, "message/rfc822");
	check_odd(NULL, 0, 65536, "message/rfc822");
	check_odd("just a line without end", 23, 65536, "message/rfc822");
	check_odd("no header at all\r\nsecond line\r\n", 31, 65536, "message/rfc822");
	check_odd("Subject: bare LF\nline\n", 22, 65536, "message/rfc822");
	check_odd("Subject: bare CR\r\n\r\nline\rmore\r\n", 31, 65536, "text/rfc822-headers");
	check_odd(nul, sizeof(nul) - 1, 65536, "text/rfc822-headers");
	check_odd("--=_vsmtpd_0000000000000000_1\r\n--\r\n", 35, 65536, "message/rfc822");

	/* A header of 300 KB, one field of 5000 octets in it. */
	memset(huge, 'x', big);
	for (i = 0; i + 10 < big; i += 10)
		memcpy(huge + i, "X-Hdr: v\r\n", 10);
	memcpy(huge + 1000, "X-Long: ", 8);
	memset(huge + 1008, 'y', 5000);
	huge[big] = '\0';
	check_odd(huge, big, 65536, "text/rfc822-headers");
	check_odd(huge, big, big, "text/rfc822-headers"); /* a line over 998: not carried */
	/* A body line over 998 octets. */
	memcpy(huge, "Subject: x\r\n\r\n", 14);
	check_odd(huge, 5000, 65536, "text/rfc822-headers");
	free(huge);
}

static void test_huge_header_is_cut_at_a_line(void **state)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg m;
	size_t big = 200000, i;
	char *huge = malloc(big);

	assert_non_null(huge);
	for (i = 0; i < big; i += 20)
		memcpy(huge + i, "X-Header: 12345678\r\n", 20);
	memcpy(huge, "Subject: manyfield\r\n", 20);
	make_env(&env);
	two_failures(&env, r);
	build(&env, huge, big, r, 2, 16384, &m);
	expect_field(m.part_header[2], "Content-Type", "text/rfc822-headers");
	assert_true(m.part_body[2].len >= 16384 && m.part_body[2].len < 16384 + 1000);
	assert_memory_equal(m.part_body[2].p, huge, m.part_body[2].len);
	free(m.raw);
	free(huge);
	envelope_clear(&env);
}

static void test_boundaries_and_ids_are_unique(void **state)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg a, b;
	char ida[300], idb[300];

	make_env(&env);
	two_failures(&env, r);
	build(&env, CONTENT, strlen(CONTENT), r, 2, 65536, &a);
	build(&env, CONTENT, strlen(CONTENT), r, 2, 65536, &b);
	assert_string_not_equal(a.boundary, b.boundary);
	assert_int_equal(field_get(a.header, "Message-ID", ida, sizeof(ida)), 0);
	assert_int_equal(field_get(b.header, "Message-ID", idb, sizeof(idb)), 0);
	assert_string_not_equal(ida, idb);
	free(a.raw);
	free(b.raw);
	envelope_clear(&env);
}

static void test_refuses_the_null_sender_and_no_recipients(void **state)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	size_t len = 0;

	make_env(&env);
	two_failures(&env, r);
	errno = 0;
	assert_null(dsn_build("mx.test", &env, CONTENT, strlen(CONTENT), r, 0, 65536, NOW, &len));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(envelope_set(&env.mail_from, ""), 0);
	errno = 0;
	assert_null(dsn_build("mx.test", &env, CONTENT, strlen(CONTENT), r, 2, 65536, NOW, &len));
	assert_int_equal(errno, EINVAL);
	envelope_clear(&env);
}

static void test_odd_host_names(void **state)
{
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg m;
	size_t len = 0;
	char *out;

	make_env(&env);
	two_failures(&env, r);
	out = dsn_build("bad host\r\nX: y", &env, CONTENT, strlen(CONTENT), r, 2, 65536, NOW, &len);
	assert_non_null(out);
	dsn_parse(out, len, &m);
	expect_field(m.header, "From", "Mail Delivery System <MAILER-DAEMON@badhostXy>");
	free(out);
	out = dsn_build(NULL, &env, CONTENT, strlen(CONTENT), r, 2, 65536, NOW, &len);
	assert_non_null(out);
	dsn_parse(out, len, &m);
	expect_field(status_block(&m, 0), "Reporting-MTA", "dns; localhost");
	free(out);
	envelope_clear(&env);
}

/* rnd - a small deterministic generator for the random inputs. */
static uint32_t rnd(uint64_t *s)
{
	*s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
	return (uint32_t)(*s >> 33);
}

/* rnd_text - len random octets (any value but NUL, as C strings hold them). */
static void rnd_text(uint64_t *s, char *out, size_t len)
{
	static const char pick[] =
	    "aZ09 .@<>:;\"\\+=-_\t\r\n\x01\x7f\x80\xc3\xa9\xe7\x94\xa8\xff>From ";
	size_t i;

	for (i = 0; i < len; i++)
		out[i] =
		    rnd(s) % 4 == 0 ? (char)(rnd(s) % 255 + 1) : pick[rnd(s) % (sizeof(pick) - 1)];
	out[len] = '\0';
}

static void test_random_inputs_give_well_formed_reports(void **state)
{
	uint64_t seed = 42;
	char content[3000], addr[3][300], diag[2][1500], status[12], host[100];
	struct envelope env;
	struct dsn_rcpt r[2];
	struct dsn_msg m;
	size_t out_len, len;
	int i, j;
	char *out;

	for (i = 0; i < 400; i++) {
		memset(&env, 0, sizeof(env));
		len = rnd(&seed) % sizeof(content);
		rnd_text(&seed, content, len);
		for (j = 0; j < 3; j++)
			rnd_text(&seed, addr[j], 1 + rnd(&seed) % 299);
		for (j = 0; j < 2; j++)
			rnd_text(&seed, diag[j], rnd(&seed) % 1500);
		rnd_text(&seed, status, rnd(&seed) % 12);
		rnd_text(&seed, host, rnd(&seed) % 100);
		env.smtputf8 = (int)(rnd(&seed) % 2);
		env.ret = (int)(rnd(&seed) % 3);
		env.received_at = (int64_t)rnd(&seed) * 1000;
		assert_int_equal(envelope_set(&env.mail_from, addr[0]), 0);
		assert_int_equal(envelope_set(&env.envid, rnd(&seed) % 2 ? diag[1] : NULL), 0);
		assert_int_equal(envelope_add_rcpt(&env, addr[1], 0, "rfc822", addr[2]), 0);
		assert_int_equal(envelope_add_rcpt(&env, addr[2], 0, addr[1], NULL), 0);
		for (j = 0; j < 2; j++)
			r[j] = (struct dsn_rcpt){&env.rcpts[j],
			                         (enum dsn_action)(rnd(&seed) % 4),
			                         j ? status : "5.1.1",
			                         j ? host : NULL,
			                         diag[j],
			                         (int)(rnd(&seed) % 2),
			                         (int64_t)rnd(&seed),
			                         INT64_MAX - (int64_t)rnd(&seed)};
		out = dsn_build(host, &env, content, len, r, 2, rnd(&seed) % 4000,
		                (int64_t)rnd(&seed), &out_len);
		assert_non_null(out);
		dsn_parse(out, out_len, &m);
		assert_int_equal(status_blocks(&m), 3);
		free(out);
		envelope_clear(&env);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wanted_follows_notify),
	    cmocka_unit_test(test_failure_report_fields),
	    cmocka_unit_test(test_ret_hdrs_returns_the_header_only),
	    cmocka_unit_test(test_attach_limit_bounds_the_original),
	    cmocka_unit_test(test_delay_warning),
	    cmocka_unit_test(test_success_reports),
	    cmocka_unit_test(test_mixed_report_and_bad_status_codes),
	    cmocka_unit_test(test_utf8_report_is_global),
	    cmocka_unit_test(test_ascii_report_keeps_its_fields_ascii),
	    cmocka_unit_test(test_diagnostics_cannot_inject_lines),
	    cmocka_unit_test(test_long_diagnostics_are_folded),
	    cmocka_unit_test(test_odd_contents_give_well_formed_reports),
	    cmocka_unit_test(test_huge_header_is_cut_at_a_line),
	    cmocka_unit_test(test_boundaries_and_ids_are_unique),
	    cmocka_unit_test(test_refuses_the_null_sender_and_no_recipients),
	    cmocka_unit_test(test_odd_host_names),
	    cmocka_unit_test(test_random_inputs_give_well_formed_reports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
