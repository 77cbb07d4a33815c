/*
 * test_send_mail.c - the files rules send with send_mail(): which paths
 * name a file of the rules folder, the message made of a file (byte for
 * byte: CRLF line ends, the Date:, Message-ID: and From: fields added only
 * when missing, a file without a header being all body, the refusal of
 * NUL, bare CR, over-long lines and empty files, the 8-bit flag), and the
 * opening of the file under the folder (symbolic links that stay inside
 * or not, directories, FIFOs, sizes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "send_mail.h"

#define NOW INT64_C(1700000000) /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define DATE "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
#define HOST "mx.example.com"
#define ALICE "alice@example.org"
/* The Message-ID field as expect_compose writes it back: its value is random. */
#define MSGID "Message-ID: <ID>\r\n"
#define ADDED DATE MSGID "From: " ALICE "\r\n"

/* ---------------------------------------------------------------- paths */

/* test_path_ok_names_files_inside - relative names, dots inside names. */
static void test_path_ok_names_files_inside(void **state)
{
	static const char *const ok[] = {
	    "x.eml", "notices/x.eml", "a/b/c/d.txt", ".hidden",   "..x",
	    "x..",   "a/.b",          "a/..b/c",     "sub dir/x", "\xc3\xa9t\xc3\xa9.eml"};
	char longest[SEND_MAIL_PATH_MAX + 1];
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!send_mail_path_ok(ok[i]))
			fail_msg("\"%s\" refused", ok[i]);
	memset(longest, 'a', SEND_MAIL_PATH_MAX);
	longest[SEND_MAIL_PATH_MAX] = '\0';
	assert_true(send_mail_path_ok(longest));
}

/* test_path_ok_refuses_what_could_leave - absolute, '.', '..', empty components, too long. */
static void test_path_ok_refuses_what_could_leave(void **state)
{
	static const char *const bad[] = {
	    "",    "/",    "/etc/passwd", ".",     "..",
	    "./x", "../x", "a/../b",      "a/./b", "a/..",
	    "a/.", "a//b", "a/",          "//x",   "../../../../etc/passwd"};
	char toolong[SEND_MAIL_PATH_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (send_mail_path_ok(bad[i]))
			fail_msg("\"%s\" accepted", bad[i]);
	memset(toolong, 'a', SEND_MAIL_PATH_MAX + 1);
	toolong[SEND_MAIL_PATH_MAX + 1] = '\0';
	assert_false(send_mail_path_ok(toolong));
}

/* ---------------------------------------------------------------- compose */

/*
 * id_normalize - check the one Message-ID field send_mail_compose added
 * ("<now.16 hex digits.counter@host>") and write it back as "<ID>" in m
 * (len updated); its value goes to value when not NULL.
 */
static void id_normalize(char *m, size_t *len, char *value, size_t vlen)
{
	const char *field = "\r\nMessage-ID: <";
	char *p = memmem(m, *len, field, strlen(field)), *v, *end;
	unsigned long long random;
	unsigned long seq;
	char host[100] = "", tail[4] = "";

	if (p == NULL)
		fail_msg("no Message-ID field added:\n%.*s", (int)*len, m);
	v = p + strlen(field) - 1;
	end = memmem(v, *len - (size_t)(v - m), "\r\n", 2);
	assert_non_null(end);
	*end = '\0';
	if (sscanf(v, "<1700000000.%16llx.%lu@%99[^>]%3s", &random, &seq, host, tail) != 4 ||
	    strcmp(host, HOST) != 0 || strcmp(tail, ">") != 0 ||
	    strspn(v + 12, "0123456789abcdef") != 16)
		fail_msg("Message-ID %s is not <1700000000.RANDOM.N@" HOST ">", v);
	if (value != NULL)
		snprintf(value, vlen, "%s", v);
	*end = '\r';
	memmove(v + 4, end, *len - (size_t)(end - m));
	memcpy(v, "<ID>", 4);
	*len -= (size_t)(end - v) - 4;
}

/* expect_compose - in (len bytes), from from, becomes exactly want
 * (MSGID standing for the added Message-ID); its 8-bit flag is eightbit. */
static void expect_compose_len(const char *in, size_t len, const char *from, const char *want,
                               int eightbit)
{
	size_t out_len = 0;
	int flag = -1;
	char *out = send_mail_compose(in, len, from, HOST, NOW, &out_len, &flag);

	if (out == NULL)
		fail_msg("refused (%s): %s", strerror(errno), in);
	if (strstr(want, MSGID) != NULL)
		id_normalize(out, &out_len, NULL, 0);
	if (out_len != strlen(want) || memcmp(out, want, out_len) != 0)
		fail_msg("got:\n%.*s\nwant:\n%s", (int)out_len, out, want);
	assert_int_equal(flag, eightbit);
	free(out);
}

/* expect_compose - the same for a string. */
static void expect_compose(const char *in, const char *from, const char *want)
{
	expect_compose_len(in, strlen(in), from, want, 0);
}

/* The length of a string literal, NULs inside included. */
#define LIT(s) s, sizeof(s) - 1

/* expect_refused - in (len bytes) makes no message: EBADMSG. */
static void expect_refused(const char *in, size_t len)
{
	size_t out_len = 0;
	int flag = 0;

	errno = 0;
	if (send_mail_compose(in, len, ALICE, HOST, NOW, &out_len, &flag) != NULL)
		fail_msg("accepted: %.*s", (int)len, in);
	assert_int_equal(errno, EBADMSG);
}

/* test_compose_lf_and_crlf_give_the_same_message - line ends become CRLF. */
static void test_compose_lf_and_crlf_give_the_same_message(void **state)
{
	const char *want = "Subject: Your mailbox is almost full\r\nTo: bob@example.org\r\n" ADDED
	                   "\r\nHello Bob,\r\n\r\nplease make room.\r\n";

	expect_compose("Subject: Your mailbox is almost full\nTo: bob@example.org\n\n"
	               "Hello Bob,\n\nplease make room.\n",
	               ALICE, want);
	expect_compose("Subject: Your mailbox is almost full\r\nTo: bob@example.org\r\n\r\n"
	               "Hello Bob,\r\n\r\nplease make room.\r\n",
	               ALICE, want);
	/* Both in one file, and no line end at the very end. */
	expect_compose("Subject: Your mailbox is almost full\r\nTo: bob@example.org\n\r\n"
	               "Hello Bob,\n\r\nplease make room.",
	               ALICE, want);
}

/* test_compose_header_only_file - the fields and the blank line go after it. */
static void test_compose_header_only_file(void **state)
{
	const char *want = "Subject: nothing else\r\nX-Tag: 1\r\n" ADDED "\r\n";

	expect_compose("Subject: nothing else\nX-Tag: 1\n", ALICE, want);
	expect_compose("Subject: nothing else\nX-Tag: 1", ALICE, want);
	/* A blank line and nothing after it: the same message. */
	expect_compose("Subject: nothing else\nX-Tag: 1\n\n", ALICE, want);
}

/* test_compose_file_without_header_is_all_body - the first line decides. */
static void test_compose_file_without_header_is_all_body(void **state)
{
	expect_compose("Hello,\nSubject: not a field here\n", ALICE,
	               ADDED "\r\nHello,\r\nSubject: not a field here\r\n");
	/* No name before the colon, a space in the name, a folded first line. */
	expect_compose(": x\nbody\n", ALICE, ADDED "\r\n: x\r\nbody\r\n");
	expect_compose("Bad Name: x\n", ALICE, ADDED "\r\nBad Name: x\r\n");
	expect_compose(" Subject: x\n", ALICE, ADDED "\r\n Subject: x\r\n");
	/* An mbox "From " line is no field either. */
	expect_compose("From alice@example.org Tue Nov 14 22:13:20 2023\nhi\n", ALICE,
	               ADDED "\r\nFrom alice@example.org Tue Nov 14 22:13:20 2023\r\nhi\r\n");
	/* A file starting with the blank line: its own blank line is the one. */
	expect_compose("\nbody only\n", ALICE, ADDED "\r\nbody only\r\n");
	expect_compose("\r\n", ALICE, ADDED "\r\n");
}

/* test_compose_header_ends_at_a_line_that_is_no_field - what follows is body. */
static void test_compose_header_ends_at_a_line_that_is_no_field(void **state)
{
	expect_compose("Subject: s\nno blank line before the body\nFrom: in the body\n", ALICE,
	               "Subject: s\r\n" ADDED
	               "\r\nno blank line before the body\r\nFrom: in the body\r\n");
}

/* test_compose_keeps_existing_fields - nothing is added twice, nothing is changed. */
static void test_compose_keeps_existing_fields(void **state)
{
	const char *in = "From: Postmaster <postmaster@example.org>\n"
	                 "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	                 "Message-ID: <notice-1@example.org>\n"
	                 "Subject: s\n\nb\n";

	expect_compose(in, ALICE,
	               "From: Postmaster <postmaster@example.org>\r\n"
	               "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	               "Message-ID: <notice-1@example.org>\r\n"
	               "Subject: s\r\n\r\nb\r\n");
	/* Only the missing ones, in the order Date, Message-ID, From. */
	expect_compose("Message-ID: <n@x>\nSubject: s\n\nb\n", ALICE,
	               "Message-ID: <n@x>\r\nSubject: s\r\n" DATE "From: " ALICE "\r\n\r\nb\r\n");
	expect_compose("From: ops@example.org\n\nb\n", ALICE,
	               "From: ops@example.org\r\n" DATE MSGID "\r\nb\r\n");
	expect_compose("Date: Mon, 1 Jan 2024 00:00:00 +0000\n\nb\n", "",
	               "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n" MSGID "From: MAILER-DAEMON@" HOST
	               "\r\n\r\nb\r\n");
	/* A field with nothing after the colon still counts. */
	expect_compose("From:\nDate:\nMessage-ID:\n\nb\n", ALICE,
	               "From:\r\nDate:\r\nMessage-ID:\r\n\r\nb\r\n");
}

/* test_compose_field_names_any_case - FROM, message-id, dAtE count; look-alikes do not. */
static void test_compose_field_names_any_case(void **state)
{
	expect_compose(
	    "FROM: a@example.org\nmessage-id: <1@example.org>\ndAtE: x\n\nb\n", ALICE,
	    "FROM: a@example.org\r\nmessage-id: <1@example.org>\r\ndAtE: x\r\n\r\nb\r\n");
	expect_compose(
	    "From-Name: x\nX-Message-ID: <y>\nDated: z\nResent-From: r@example.org\n"
	    "\nFrom: only in the body\n",
	    ALICE,
	    "From-Name: x\r\nX-Message-ID: <y>\r\nDated: z\r\nResent-From: r@example.org\r\n" ADDED
	    "\r\nFrom: only in the body\r\n");
	/* "From :" (a space before the colon) is no field name. */
	expect_compose("Subject: s\nFrom : x\n", ALICE, "Subject: s\r\n" ADDED "\r\nFrom : x\r\n");
}

/* test_compose_continuation_lines - folded fields stay in the header. */
static void test_compose_continuation_lines(void **state)
{
	expect_compose("Subject: a long\n subject\n\tfolded twice\nTo: bob@example.org,\n"
	               "  carol@example.org\n\nbody\n",
	               ALICE,
	               "Subject: a long\r\n subject\r\n\tfolded twice\r\nTo: bob@example.org,\r\n"
	               "  carol@example.org\r\n" ADDED "\r\nbody\r\n");
	/* A continuation that looks like From: is part of another field. */
	expect_compose("X-Note: see\n From: x@example.org\n\nb\n", ALICE,
	               "X-Note: see\r\n From: x@example.org\r\n" ADDED "\r\nb\r\n");
}

/* test_compose_line_length_limit - 998 octets pass, 999 do not (CR LF not counted). */
static void test_compose_line_length_limit(void **state)
{
	char in[1200], want[1400];

	memset(in, 'a', 998);
	strcpy(in + 998, "\n");
	snprintf(want, sizeof(want), ADDED "\r\n%.998s\r\n", in);
	expect_compose(in, ALICE, want);
	strcpy(in + 998, "\r\n");
	expect_compose(in, ALICE, want);
	memcpy(in, "Subject: ", 9); /* in the header too */
	snprintf(want, sizeof(want), "%.998s\r\n" ADDED "\r\n", in);
	expect_compose(in, ALICE, want);

	memset(in, 'a', 999);
	strcpy(in + 999, "\n");
	expect_refused(in, strlen(in));
	expect_refused(in, 999); /* the last line, without a line end */
	memcpy(in, "Subject: ", 9);
	expect_refused(in, strlen(in));
	/* A long line anywhere refuses the whole file. */
	memmove(in + 12, in, 1001);
	memcpy(in, "Subject: s\n\n", 12);
	expect_refused(in, strlen(in));
}

/* test_compose_refuses_nul_bare_cr_and_empty - EBADMSG, nothing made. */
static void test_compose_refuses_nul_bare_cr_and_empty(void **state)
{
	expect_refused(LIT("Subject: s\n\na\0b\n"));
	expect_refused(LIT("\0"));
	expect_refused(LIT("Subject: s\n\na\rb\n"));
	expect_refused(LIT("Subject: s\r\r\n\r\nb\r\n"));
	expect_refused(LIT("Subject: s\n\nlast\r")); /* a CR at the end, with no LF */
	expect_refused(LIT("\r"));
	expect_refused(LIT(""));
}

/* test_compose_eightbit_flag - set by any octet over 127, header or body. */
static void test_compose_eightbit_flag(void **state)
{
	expect_compose_len(LIT("Subject: caf\xc3\xa9\n\nb\n"), ALICE,
	                   "Subject: caf\xc3\xa9\r\n" ADDED "\r\nb\r\n", 1);
	expect_compose_len(LIT("Subject: s\n\nna\xefve\n"), ALICE,
	                   "Subject: s\r\n" ADDED "\r\nna\xefve\r\n", 1);
	expect_compose_len(LIT("Subject: s\n\n\x7f\n"), ALICE,
	                   "Subject: s\r\n" ADDED "\r\n\x7f\r\n", 0);
}

/* test_compose_null_sender_is_the_mailer_daemon - From: MAILER-DAEMON@host. */
static void test_compose_null_sender_is_the_mailer_daemon(void **state)
{
	expect_compose("Subject: s\n\nb\n", "",
	               "Subject: s\r\n" DATE MSGID "From: MAILER-DAEMON@" HOST "\r\n\r\nb\r\n");
	expect_compose("Subject: s\n\nb\n", "Ops <ops@example.org>",
	               "Subject: s\r\n" DATE MSGID "From: Ops <ops@example.org>\r\n\r\nb\r\n");
}

/* test_compose_message_ids_differ - two messages never share one. */
static void test_compose_message_ids_differ(void **state)
{
	char ids[2][300];
	size_t len;
	int flag, i;

	for (i = 0; i < 2; i++) {
		char *out = send_mail_compose("Subject: s\n", 11, ALICE, HOST, NOW, &len, &flag);

		assert_non_null(out);
		id_normalize(out, &len, ids[i], sizeof(ids[i]));
		free(out);
	}
	assert_string_not_equal(ids[0], ids[1]);
}

/* ---------------------------------------------------------------- open */

/* A rules folder in a temporary directory, and a file outside it. */
struct folder {
	char base[64];  /* the temporary directory */
	char rules[96]; /* base/rules, the folder */
	int dirfd;
};

/* write_file - create path with len bytes of data. */
static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* folder_setup - base/rules with notice.eml, sub/inner.eml, sub/deeper/;
 * base/secret.eml outside. */
static int folder_setup(void **state)
{
	struct folder *f = calloc(1, sizeof(*f));
	char path[200];

	assert_non_null(f);
	strcpy(f->base, "/tmp/vsmtpd-send-mail-XXXXXX");
	assert_non_null(mkdtemp(f->base));
	snprintf(f->rules, sizeof(f->rules), "%s/rules", f->base);
	assert_int_equal(mkdir(f->rules, 0755), 0);
	snprintf(path, sizeof(path), "%s/sub", f->rules);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/sub/deeper", f->rules);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/notice.eml", f->rules);
	write_file(path, "Subject: inside\n\nhello\n", 23);
	snprintf(path, sizeof(path), "%s/sub/inner.eml", f->rules);
	write_file(path, "Subject: inner\n", 15);
	snprintf(path, sizeof(path), "%s/secret.eml", f->base);
	write_file(path, "Subject: outside\n", 17);
	f->dirfd = open(f->rules, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->dirfd >= 0);
	*state = f;
	return 0;
}

/* folder_teardown - rm -r of the temporary directory. */
static int folder_teardown(void **state)
{
	struct folder *f = *state;
	char cmd[200];

	close(f->dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->base);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* rules_symlink - a symbolic link name in the folder pointing to target. */
static void rules_symlink(const struct folder *f, const char *target, const char *name)
{
	char path[200];

	snprintf(path, sizeof(path), "%s/%s", f->rules, name);
	assert_int_equal(symlink(target, path), 0);
}

/* expect_opens - path opens and reads as want. */
static void expect_opens(const struct folder *f, const char *path, const char *want)
{
	char buf[200];
	ssize_t n;
	int fd = send_mail_open(f->dirfd, path, 1000);

	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf));
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	close(fd);
}

/* expect_open_error - path does not open: errno err. */
static void expect_open_error(const struct folder *f, const char *path, uint64_t max, int err)
{
	int fd;

	errno = 0;
	fd = send_mail_open(f->dirfd, path, max);
	if (fd >= 0) {
		close(fd);
		fail_msg("%s opened", path);
	}
	if (errno != err)
		fail_msg("%s: %s, not %s", path, strerror(errno), strerror(err));
}

/* test_open_files_of_the_folder - a file, a file of a subfolder. */
static void test_open_files_of_the_folder(void **state)
{
	const struct folder *f = *state;

	expect_opens(f, "notice.eml", "Subject: inside\n\nhello\n");
	expect_opens(f, "sub/inner.eml", "Subject: inner\n");
	expect_open_error(f, "missing.eml", 1000, ENOENT);
	expect_open_error(f, "sub/missing/x.eml", 1000, ENOENT);
}

/* test_open_symlink_staying_inside - relative links within the folder are followed. */
static void test_open_symlink_staying_inside(void **state)
{
	const struct folder *f = *state;

	rules_symlink(f, "notice.eml", "alias.eml");
	rules_symlink(f, "../notice.eml", "sub/up.eml");
	rules_symlink(f, "sub", "subdir");
	expect_opens(f, "alias.eml", "Subject: inside\n\nhello\n");
	expect_opens(f, "sub/up.eml", "Subject: inside\n\nhello\n");
	expect_opens(f, "subdir/inner.eml", "Subject: inner\n");
}

/* test_open_symlink_leaving_is_refused - EACCES, even when the target is readable. */
static void test_open_symlink_leaving_is_refused(void **state)
{
	const struct folder *f = *state;
	char abs_inside[200];

	rules_symlink(f, "../secret.eml", "out.eml");
	rules_symlink(f, "../../secret.eml", "sub/out.eml");
	rules_symlink(f, "/etc/passwd", "passwd.eml");
	rules_symlink(f, "..", "parent");
	rules_symlink(f, "/proc/self/fd/0", "magic.eml");
	expect_open_error(f, "out.eml", 1000, EACCES);
	expect_open_error(f, "sub/out.eml", 1000, EACCES);
	expect_open_error(f, "passwd.eml", 1000, EACCES);
	expect_open_error(f, "parent/secret.eml", 1000, EACCES);
	expect_open_error(f, "magic.eml", 1000, EACCES);
	/* An absolute target is refused even when it points inside. */
	snprintf(abs_inside, sizeof(abs_inside), "%s/notice.eml", f->rules);
	rules_symlink(f, abs_inside, "absolute.eml");
	expect_open_error(f, "absolute.eml", 1000, EACCES);
}

/* test_open_paths_leaving_are_refused - absolute paths and '..', before any lookup. */
static void test_open_paths_leaving_are_refused(void **state)
{
	const struct folder *f = *state;
	char abs_inside[200];

	snprintf(abs_inside, sizeof(abs_inside), "%s/notice.eml", f->rules);
	expect_open_error(f, abs_inside, 1000, EACCES);
	expect_open_error(f, "/etc/passwd", 1000, EACCES);
	expect_open_error(f, "../secret.eml", 1000, EACCES);
	expect_open_error(f, "..", 1000, EACCES);
	expect_open_error(f, "sub/../notice.eml", 1000, EACCES);
	expect_open_error(f, "./notice.eml", 1000, EACCES);
	expect_open_error(f, "", 1000, EACCES);
}

/* test_open_refuses_what_is_not_a_file - directories and FIFOs: EINVAL, at once. */
static void test_open_refuses_what_is_not_a_file(void **state)
{
	const struct folder *f = *state;
	char path[200];

	expect_open_error(f, "sub", 1000, EINVAL);
	expect_open_error(f, "sub/deeper", 1000, EINVAL);
	snprintf(path, sizeof(path), "%s/pipe.eml", f->rules);
	assert_int_equal(mkfifo(path, 0644), 0);
	/* Nobody writes to it: a blocking open would hang here; the alarm
	 * kills the test instead. */
	alarm(10);
	expect_open_error(f, "pipe.eml", 1000, EINVAL);
	alarm(0);
}

/* test_open_size_limit - a file of max bytes opens, one byte more is EFBIG. */
static void test_open_size_limit(void **state)
{
	const struct folder *f = *state;
	int fd;

	fd = send_mail_open(f->dirfd, "notice.eml", 23);
	assert_true(fd >= 0);
	close(fd);
	expect_open_error(f, "notice.eml", 22, EFBIG);
	expect_open_error(f, "notice.eml", 0, EFBIG);
}

/* ---------------------------------------------------------------- build */

/* test_build_reads_and_bounds_the_message - the message, EFBIG past max, EBADMSG. */
static void test_build_reads_and_bounds_the_message(void **state)
{
	const struct folder *f = *state;
	char path[200], *msg = NULL;
	size_t len = 0;
	int fd, eightbit = -1;

	fd = send_mail_open(f->dirfd, "notice.eml", 1000);
	assert_true(fd >= 0);
	assert_int_equal(send_mail_build(fd, ALICE, HOST, 1000, &msg, &len, &eightbit), 0);
	assert_non_null(msg);
	assert_true(len > 23 && strncmp(msg, "Subject: inside\r\nDate: ", 23) == 0);
	assert_memory_equal(msg + len - 9, "\r\nhello\r\n", 9);
	assert_int_equal(eightbit, 0);
	free(msg);
	/* The file fits, the message with its added fields does not. */
	assert_int_equal(send_mail_build(fd, ALICE, HOST, 60, &msg, &len, &eightbit), EFBIG);
	assert_null(msg);
	assert_int_equal(send_mail_build(fd, ALICE, HOST, 22, &msg, &len, &eightbit), EFBIG);
	assert_null(msg);
	close(fd);

	snprintf(path, sizeof(path), "%s/nul.eml", f->rules);
	write_file(path, "Subject: s\n\na\0b\n", 16);
	fd = send_mail_open(f->dirfd, "nul.eml", 1000);
	assert_true(fd >= 0);
	assert_int_equal(send_mail_build(fd, ALICE, HOST, 1000, &msg, &len, &eightbit), EBADMSG);
	assert_null(msg);
	close(fd);
	snprintf(path, sizeof(path), "%s/empty.eml", f->rules);
	write_file(path, "", 0);
	fd = send_mail_open(f->dirfd, "empty.eml", 1000);
	assert_true(fd >= 0);
	assert_int_equal(send_mail_build(fd, ALICE, HOST, 1000, &msg, &len, &eightbit), EBADMSG);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_ok_names_files_inside),
	    cmocka_unit_test(test_path_ok_refuses_what_could_leave),
	    cmocka_unit_test(test_compose_lf_and_crlf_give_the_same_message),
	    cmocka_unit_test(test_compose_header_only_file),
	    cmocka_unit_test(test_compose_file_without_header_is_all_body),
	    cmocka_unit_test(test_compose_header_ends_at_a_line_that_is_no_field),
	    cmocka_unit_test(test_compose_keeps_existing_fields),
	    cmocka_unit_test(test_compose_field_names_any_case),
	    cmocka_unit_test(test_compose_continuation_lines),
	    cmocka_unit_test(test_compose_line_length_limit),
	    cmocka_unit_test(test_compose_refuses_nul_bare_cr_and_empty),
	    cmocka_unit_test(test_compose_eightbit_flag),
	    cmocka_unit_test(test_compose_null_sender_is_the_mailer_daemon),
	    cmocka_unit_test(test_compose_message_ids_differ),
	    cmocka_unit_test_setup_teardown(test_open_files_of_the_folder, folder_setup,
	                                    folder_teardown),
	    cmocka_unit_test_setup_teardown(test_open_symlink_staying_inside, folder_setup,
	                                    folder_teardown),
	    cmocka_unit_test_setup_teardown(test_open_symlink_leaving_is_refused, folder_setup,
	                                    folder_teardown),
	    cmocka_unit_test_setup_teardown(test_open_paths_leaving_are_refused, folder_setup,
	                                    folder_teardown),
	    cmocka_unit_test_setup_teardown(test_open_refuses_what_is_not_a_file, folder_setup,
	                                    folder_teardown),
	    cmocka_unit_test_setup_teardown(test_open_size_limit, folder_setup, folder_teardown),
	    cmocka_unit_test_setup_teardown(test_build_reads_and_bounds_the_message, folder_setup,
	                                    folder_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
