/*
 * test_milter_proto.c - the milter protocol's packets: the commands built
 * byte for byte as a milter reads them (length, command, NUL-terminated
 * strings, network-order integers, body chunks of at most 65535 bytes),
 * and every reply parsed, or refused with a reason when it is malformed
 * or its length is out of bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "milter_proto.h"

/* packet - a reply packet of cmd and len data bytes into out; its size. */
static size_t packet(char *out, char cmd, const char *data, size_t len)
{
	uint32_t be = htonl((uint32_t)len + 1);

	memcpy(out, &be, 4);
	out[4] = cmd;
	memcpy(out + 5, data, len);
	return len + 5;
}

/* parse - parse one reply; the result of milter_reply_next. */
static int parse(char cmd, const char *data, size_t len, struct milter_reply *r, char *err)
{
	static char buf[4096];
	size_t n = packet(buf, cmd, data, len), used = 0;
	int rc = milter_reply_next(buf, n, &used, r, err, 128);

	if (rc == 1)
		assert_int_equal(used, n);
	return rc;
}

static void test_build_commands(void **state)
{
	struct milter_buf b = {0};
	const char *mail[] = {"<a@example.org>", "SIZE=10"};
	const char *macros[] = {"j", "mx.example.org", "{daemon_name}", NULL, "_", "x [1.2.3.4]"};
	static const char optneg[] = "\0\0\0\x0dO\0\0\0\x06\0\0\0\xff\0\x1f\xf7\xff";
	static const char conn[] = "\0\0\0\x13" "Chost\0" "4\x00\x19" "192.0.2.1\0";
	static const char mailp[] = "\0\0\0\x19M<a@example.org>\0SIZE=10\0";
	static const char mac[] = "\0\0\0\x21" "DCj\0mx.example.org\0_\0x [1.2.3.4]\0";
	static const char hdr[] = "\0\0\0\x10LSubject\0 Hello\0";
	size_t off = 0;

	(void)state;
	assert_int_equal(milter_put_optneg(&b, MILTER_F_ALL, MILTER_P_OFFER), 0);
	assert_memory_equal(b.p, optneg, sizeof(optneg) - 1);
	off = b.len;
	assert_int_equal(milter_put_connect(&b, "host", '4', 25, "192.0.2.1"), 0);
	assert_memory_equal(b.p + off, conn, sizeof(conn) - 1);
	off = b.len;
	assert_int_equal(milter_put_strings(&b, MILTER_MAIL, mail, 2), 0);
	assert_memory_equal(b.p + off, mailp, sizeof(mailp) - 1);
	off = b.len;
	assert_int_equal(milter_put_macros(&b, MILTER_CONNECT, macros, 3), 0);
	assert_memory_equal(b.p + off, mac, sizeof(mac) - 1);
	off = b.len;
	assert_int_equal(milter_put_header(&b, "Subject", 7, " Hello", 6), 0);
	assert_memory_equal(b.p + off, hdr, sizeof(hdr) - 1);
	off = b.len;
	assert_int_equal(milter_put_empty(&b, MILTER_EOH), 0);
	assert_memory_equal(b.p + off, "\0\0\0\x01N", 5);
	assert_int_equal(b.len, off + 5);
	milter_buf_free(&b);
}

static void test_build_unknown_family_and_no_macros(void **state)
{
	struct milter_buf b = {0};
	const char *macros[] = {"j", NULL};

	(void)state;
	assert_int_equal(milter_put_connect(&b, "unknown", '4', 0, NULL), 0);
	assert_memory_equal(b.p, "\0\0\0\x0a" "Cunknown\0U", 14);
	assert_int_equal(milter_put_macros(&b, MILTER_HELO, macros, 1), 0);
	assert_int_equal(b.len, 14); /* no macro with a value: no packet */
	milter_buf_free(&b);
}

static void test_build_body_chunks(void **state)
{
	struct milter_buf b = {0};
	size_t len = 2 * MILTER_CHUNK_MAX + 10;
	char *body = malloc(len);
	uint32_t be;

	(void)state;
	memset(body, 'x', len);
	assert_int_equal(milter_put_body(&b, body, len), 0);
	assert_int_equal(b.len, len + 3 * 5);
	memcpy(&be, b.p, 4);
	assert_int_equal(ntohl(be), MILTER_CHUNK_MAX + 1);
	assert_int_equal(b.p[4], 'B');
	memcpy(&be, b.p + 2 * (5 + MILTER_CHUNK_MAX), 4);
	assert_int_equal(ntohl(be), 11);
	free(body);
	milter_buf_free(&b);
}

static void test_build_too_big(void **state)
{
	struct milter_buf b = {0};
	size_t len = MILTER_PACKET_MAX + 1;
	char *s = malloc(len);
	const void *parts[] = {s};

	(void)state;
	assert_int_equal(milter_put(&b, MILTER_HEADER, parts, &len, 1), -1);
	assert_true(b.failed);
	free(s);
	milter_buf_free(&b);
}

static void test_parse_optneg(void **state)
{
	struct milter_reply r;
	char err[128];
	static const char v6[] = "\0\0\0\x06\0\0\0\x01\0\x10\0\x7f" "\0\0\0\0j {daemon_name}\0";
	static const char v9[] = "\0\0\0\x09\0\0\0\x01\0\0\0\0";

	(void)state;
	assert_int_equal(parse('O', v6, sizeof(v6) - 1, &r, err), 1);
	assert_int_equal(r.version, 6);
	assert_int_equal(r.actions, MILTER_F_ADDHDRS);
	assert_int_equal(r.protocol, MILTER_P_HDR_LEADSPC | 0x7f);
	assert_int_equal(parse('O', v9, sizeof(v9) - 1, &r, err), -1);
	assert_string_equal(err, "unsupported protocol version");
	assert_int_equal(parse('O', v6, 8, &r, err), -1);
	assert_string_equal(err, "truncated integer");
}

static void test_parse_headers(void **state)
{
	struct milter_reply r;
	char err[128];

	(void)state;
	assert_int_equal(parse('h', "X-A\0 one\0", 9, &r, err), 1);
	assert_string_equal(r.name, "X-A");
	assert_string_equal(r.value, " one");
	assert_int_equal(parse('i', "\0\0\0\x02X-B\0two\0", 12, &r, err), 1);
	assert_int_equal(r.index, 2);
	assert_string_equal(r.name, "X-B");
	assert_int_equal(parse('m', "\0\0\0\x01Subject\0\0", 13, &r, err), 1);
	assert_int_equal(r.index, 1);
	assert_string_equal(r.value, "");
	assert_int_equal(parse('h', "X-A\0 one", 8, &r, err), -1);
	assert_string_equal(err, "string without its NUL");
	assert_int_equal(parse('h', "\0v\0", 3, &r, err), -1);
	assert_int_equal(parse('h', "X\0v\0extra", 9, &r, err), -1);
	assert_string_equal(err, "trailing bytes");
	assert_int_equal(parse('m', "\0\0X\0v\0", 6, &r, err), -1);
}

static void test_parse_envelope(void **state)
{
	struct milter_reply r;
	char err[128];

	(void)state;
	assert_int_equal(parse('+', "<b@example.org>\0", 16, &r, err), 1);
	assert_string_equal(r.addr, "<b@example.org>");
	assert_null(r.args);
	assert_int_equal(parse('2', "<b@x>\0NOTIFY=NEVER\0", 19, &r, err), 1);
	assert_string_equal(r.args, "NOTIFY=NEVER");
	assert_int_equal(parse('e', "<>\0", 3, &r, err), 1);
	assert_string_equal(r.addr, "<>");
	assert_int_equal(parse('-', "\0", 1, &r, err), -1);
	assert_string_equal(err, "empty address");
	assert_int_equal(parse('q', "virus found\0", 12, &r, err), 1);
	assert_string_equal(r.reason, "virus found");
	assert_int_equal(parse('b', "new\r\nbody", 9, &r, err), 1);
	assert_int_equal(r.len, 9);
	assert_memory_equal(r.data, "new\r\nbody", 9);
}

static void test_parse_replycode(void **state)
{
	struct milter_reply r;
	char err[128];
	static const char multi[] = "550-5.7.1 first\r\n550 5.7.1 second\0";

	(void)state;
	assert_int_equal(parse('y', "554 5.7.1 Go away\0", 18, &r, err), 1);
	assert_int_equal(r.smtp, 554);
	assert_string_equal(r.enhanced, "5.7.1");
	assert_string_equal(r.text, "Go away");
	assert_int_equal(parse('y', "451 Later\0", 10, &r, err), 1);
	assert_int_equal(r.smtp, 451);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "Later");
	assert_int_equal(parse('y', multi, sizeof(multi) - 1, &r, err), 1);
	assert_string_equal(r.text, "first second");
	assert_int_equal(parse('y', "250 fine\0", 9, &r, err), -1);
	assert_string_equal(err, "a custom reply needs a 4xx or 5xx code");
	assert_int_equal(parse('y', "550-5.7.1 a\r\n451 b\0", 19, &r, err), -1);
	assert_int_equal(parse('y', "550 bad\tchar\0", 13, &r, err), -1);
	assert_int_equal(parse('y', "550x\0", 5, &r, err), -1);
}

static void test_parse_simple_and_framing(void **state)
{
	struct milter_reply r;
	char err[128], buf[16];
	size_t used = 0;
	static const char codes[] = "acdrtsp4f";
	size_t i;

	(void)state;
	for (i = 0; codes[i]; i++) {
		assert_int_equal(parse(codes[i], "", 0, &r, err), 1);
		assert_int_equal(r.code, codes[i]);
	}
	assert_int_equal(parse('c', "x", 1, &r, err), -1);
	assert_int_equal(parse('Z', "", 0, &r, err), -1);
	assert_string_equal(err, "unknown reply");
	assert_string_equal(milter_reply_name('c'), "continue");
	/* incomplete: more is needed */
	packet(buf, 'c', "", 0);
	assert_int_equal(milter_reply_next(buf, 4, &used, &r, err, sizeof(err)), 0);
	memcpy(buf, "\0\0\0\x05h", 5);
	assert_int_equal(milter_reply_next(buf, 5, &used, &r, err, sizeof(err)), 0);
	/* lengths out of bounds */
	memcpy(buf, "\0\0\0\0c", 5);
	assert_int_equal(milter_reply_next(buf, 5, &used, &r, err, sizeof(err)), -1);
	memcpy(buf, "\x7f\0\0\0c", 5);
	assert_int_equal(milter_reply_next(buf, 5, &used, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "packet length out of range");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_commands),
		cmocka_unit_test(test_build_unknown_family_and_no_macros),
		cmocka_unit_test(test_build_body_chunks),
		cmocka_unit_test(test_build_too_big),
		cmocka_unit_test(test_parse_optneg),
		cmocka_unit_test(test_parse_headers),
		cmocka_unit_test(test_parse_envelope),
		cmocka_unit_test(test_parse_replycode),
		cmocka_unit_test(test_parse_simple_and_framing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
