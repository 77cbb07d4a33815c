/*
 * test_local_delivery.c - mailbox paths from templates, maildir and mbox
 * delivery: the bytes written, the file names, directory creation, the
 * refusal of unsafe names, symbolic links and odd files, the outcome of
 * file system errors (as root too: permission cases run as nobody in a
 * child), locking against other processes and threads, stale dot-locks,
 * and a failed write leaving an mbox as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "local_delivery.h"

#define NOBODY 65534

/* make_base - a fresh directory for one test, searchable by everyone (for the nobody cases). */
static char *make_base(void)
{
	char tmpl[] = "/tmp/vsmtpd-local-XXXXXX";
	char *dir = mkdtemp(tmpl);

	assert_non_null(dir);
	assert_int_equal(chmod(dir, 0755), 0);
	return strdup(dir);
}

/* remove_tree - rm -r of a test directory. */
static void remove_tree(char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s'; rm -rf '%s'", dir, dir);
	assert_int_equal(system(cmd), 0);
	free(dir);
}

/* read_all - the content of path (NUL-terminated, length in *len). */
static char *read_all(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	close(fd);
	return buf;
}

/* write_all - create path with the string data. */
static void write_all(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

/* dir_entries - the entries of dir (but . and ..), the first one's name into first. */
static int dir_entries(const char *dir, char *first, size_t firstlen)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0 && first != NULL)
			snprintf(first, firstlen, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

/* file_size - st_size of path, -1 when it does not exist. */
static long long file_size(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* mono_ms - the monotonic clock in milliseconds. */
static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* child_wait - the exit status of child pid, which must exit normally. */
static int child_wait(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* become_nobody - in a child: as root, drop to nobody so that permissions apply. */
static void become_nobody(void)
{
	if (geteuid() != 0)
		return;
	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
		_exit(99);
}

/* give_to_child - as root, make path belong to the user become_nobody switches to. */
static void give_to_child(const char *path)
{
	if (geteuid() == 0)
		assert_int_equal(chown(path, NOBODY, NOBODY), 0);
}

static const char MSG[] = "Subject: hi\r\nFrom: a@example.com\r\n\r\nline one\r\nFrom me\r\n"
                          ">From you\r\n.\r\nbare\rcr\r\n";

/* ---- local_mailbox_path ---- */

/* expect_path - tmpl and recipient expand to want. */
static void expect_path(const char *tmpl, const char *rcpt, const char *want)
{
	struct local_result res;
	char out[512];

	memset(&res, 0, sizeof(res));
	assert_int_equal(local_mailbox_path(tmpl, rcpt, out, sizeof(out), &res), 0);
	assert_string_equal(out, want);
}

/* expect_refused - the expansion fails with outcome and status. */
static void expect_refused(const char *tmpl, const char *rcpt, enum local_outcome outcome,
                           const char *status)
{
	struct local_result res;
	char out[512];

	memset(&res, 0, sizeof(res));
	assert_int_equal(local_mailbox_path(tmpl, rcpt, out, sizeof(out), &res), -1);
	assert_int_equal(res.outcome, outcome);
	assert_string_equal(res.enhanced, status);
	assert_true(res.reason[0] != '\0');
}

static void test_path_expands_and_lowercases(void **state)
{
	expect_path("/srv/%d/%u/Maildir", "Bob.Smith@Example.ORG",
	            "/srv/example.org/bob.smith/Maildir");
	expect_path("/srv/100%%/%u", "bob@example.org", "/srv/100%/bob");
	expect_path("/var/mail/%u", "postmaster", "/var/mail/postmaster");
	expect_path("/srv/%d/%u", "x@[192.0.2.1]", "/srv/[192.0.2.1]/x");
	/* UTF-8 stays as it is; only ASCII letters are lowercased. */
	expect_path("/srv/%u", "J\xc3\x9crgen@example.org", "/srv/j\xc3\x9crgen");
	/* The whole local part, a +detail included. */
	expect_path("/srv/%u", "bob+lists@example.org", "/srv/bob+lists");
}

static void test_path_unquotes_a_quoted_local_part(void **state)
{
	expect_path("/srv/%u", "\"John Doe\"@example.org", "/srv/john doe");
	expect_path("/srv/%u", "\"a\\\"b@c\"@example.org", "/srv/a\"b@c");
	expect_refused("/srv/%u", "\"a/b\"@example.org", LOCAL_FAILED, "5.1.3");
	expect_refused("/srv/%u", "\"..\"@example.org", LOCAL_FAILED, "5.1.3");
	expect_refused("/srv/%u", "\"\"@example.org", LOCAL_FAILED, "5.1.3");
	expect_refused("/srv/%u", "\"open@example.org", LOCAL_FAILED, "5.1.3");
}

static void test_path_refuses_unsafe_names(void **state)
{
	static const char *const bad[] = {
	    "..@example.org",
	    ".@example.org",
	    ".hidden@example.org",
	    "a/b@example.org",
	    "@example.org",
	    "a\x01@example.org",
	    "a\x7f@example.org",
	    "a\xc2\x85@example.org",     /* C1 control NEL */
	    "a\xff@example.org",         /* not UTF-8 */
	    "a\xc0\xaf@example.org",     /* overlong '/' */
	    "a\xed\xa0\x80@example.org", /* a surrogate */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_refused("/srv/%d/%u", bad[i], LOCAL_FAILED, "5.1.3");
	expect_refused("/srv/%d/%u", "bob@..", LOCAL_FAILED, "5.1.3");
	expect_refused("/srv/%d/%u", "bob@a/b", LOCAL_FAILED, "5.1.3");
	expect_refused("/srv/%d/%u", "bob@", LOCAL_FAILED, "5.1.3");
	expect_refused("/srv/%d/%u", "postmaster", LOCAL_FAILED, "5.1.3");
	/* An unsafe part the template does not use does not matter. */
	expect_path("/srv/%u", "bob@..", "/srv/bob");
}

static void test_path_refuses_bad_templates_and_small_buffers(void **state)
{
	struct local_result res;
	char out[12];

	expect_refused("srv/%u", "bob@example.org", LOCAL_DEFERRED, "4.3.5");
	expect_refused("/srv/%x", "bob@example.org", LOCAL_DEFERRED, "4.3.5");
	expect_refused("/srv/%", "bob@example.org", LOCAL_DEFERRED, "4.3.5");
	memset(&res, 0, sizeof(res));
	assert_int_equal(
	    local_mailbox_path("/srv/%u", "bobbybobby@example.org", out, sizeof(out), &res), -1);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.1.3");
	assert_int_equal(
	    local_mailbox_path("/srv/%u", "bobbybob@example.org", out, sizeof(out), &res), -1);
	assert_int_equal(
	    local_mailbox_path("/srv/%u", "bobbyb@example.org", out, sizeof(out), &res), 0);
	assert_string_equal(out, "/srv/bobbyb");
}

/* ---- maildir ---- */

/*
 * check_maildir_name - name is "<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>"
 * with this process's pid, host and the size given.
 */
static void check_maildir_name(const char *name, const char *host, long long size)
{
	char want_tail[300];
	long long sec, usec, pid, q;
	int n = 0;

	assert_int_equal(sscanf(name, "%lld.M%lldP%lldQ%lld.%n", &sec, &usec, &pid, &q, &n), 4);
	assert_true(n > 0);
	assert_true(sec > 1600000000 && usec >= 0 && usec < 1000000 && q > 0);
	assert_int_equal(pid, (long long)getpid());
	assert_true(llabs(sec - (long long)time(NULL)) < 60);
	snprintf(want_tail, sizeof(want_tail), "%s,S=%lld", host, size);
	assert_string_equal(name + n, want_tail);
}

static void test_maildir_delivers_the_exact_bytes(void **state)
{
	char *base = make_base(), tmpl[300], dir[300], name[300], path[600];
	const char *want = "Return-Path: <a@example.com>\nDelivered-To: Bob@Example.org\n"
	                   "Subject: hi\nFrom: a@example.com\n\nline one\nFrom me\n>From you\n.\n"
	                   "bare\rcr\n";
	struct local_result res;
	struct stat st;
	size_t len;
	char *got;

	snprintf(tmpl, sizeof(tmpl), "%s/vmail/%%d/%%u/Maildir", base);
	maildir_deliver(tmpl, "Bob@Example.org", "mx.example.org", "a@example.com", MSG,
	                strlen(MSG), &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	assert_string_equal(res.enhanced, "2.0.0");

	snprintf(dir, sizeof(dir), "%s/vmail/example.org/bob/Maildir/new", base);
	assert_int_equal(dir_entries(dir, name, sizeof(name)), 1);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	got = read_all(path, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
	check_maildir_name(name, "mx.example.org", (long long)strlen(want));
	assert_non_null(strstr(res.reason, path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* tmp/ is left empty, cur/ exists; every directory made is 0700. */
	snprintf(dir, sizeof(dir), "%s/vmail/example.org/bob/Maildir/tmp", base);
	assert_int_equal(dir_entries(dir, NULL, 0), 0);
	static const char *const made[] = {"vmail",
	                                   "vmail/example.org",
	                                   "vmail/example.org/bob",
	                                   "vmail/example.org/bob/Maildir",
	                                   "vmail/example.org/bob/Maildir/tmp",
	                                   "vmail/example.org/bob/Maildir/new",
	                                   "vmail/example.org/bob/Maildir/cur"};
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		snprintf(dir, sizeof(dir), "%s/%s", base, made[i]);
		assert_int_equal(stat(dir, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0700);
	}
	remove_tree(base);
}

static void test_maildir_edge_contents(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"", ""},
	    {"no line end", "no line end"},
	    {"a\r\nb", "a\nb"},
	    {"bare\nlf\r\n", "bare\nlf\n"},
	    {"\r\n\r\n", "\n\n"},
	    {"cr at end\r", "cr at end\r"},
	};
	char *base = make_base(), tmpl[300], dir[300], name[300], path[600], want[200];
	struct local_result res;
	size_t i, len;
	char *got;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(dir, sizeof(dir), "%s/case%zu/new", base, i);
		snprintf(path, sizeof(path), "case%zu@example.org", i);
		maildir_deliver(tmpl, path, "h", "", cases[i].in, strlen(cases[i].in), &res);
		assert_int_equal(res.outcome, LOCAL_DELIVERED);
		assert_int_equal(dir_entries(dir, name, sizeof(name)), 1);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		got = read_all(path, &len);
		snprintf(want, sizeof(want),
		         "Return-Path: <>\nDelivered-To: case%zu@example.org\n%s", i, cases[i].out);
		assert_int_equal(len, strlen(want));
		assert_memory_equal(got, want, len);
		check_maildir_name(name, "h", (long long)len);
		free(got);
	}
	remove_tree(base);
}

static void test_maildir_escapes_the_host_name(void **state)
{
	char *base = make_base(), tmpl[300], dir[300], name[300];
	struct local_result res;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	maildir_deliver(tmpl, "bob@example.org", "mx/a:b", "a@example.com", "x\r\n", 3, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	snprintf(dir, sizeof(dir), "%s/bob/new", base);
	assert_int_equal(dir_entries(dir, name, sizeof(name)), 1);
	check_maildir_name(
	    name, "mx\\057a\\072b",
	    (long long)strlen("Return-Path: <a@example.com>\nDelivered-To: bob@example.org\nx\n"));
	/* No host name: still a valid name. */
	maildir_deliver(tmpl, "carol@example.org", NULL, "a@example.com", "", 0, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	snprintf(dir, sizeof(dir), "%s/carol/new", base);
	assert_int_equal(dir_entries(dir, name, sizeof(name)), 1);
	assert_non_null(strstr(name, ".localhost,S="));
	remove_tree(base);
}

static void test_maildir_two_deliveries_make_two_files(void **state)
{
	char *base = make_base(), tmpl[300], dir[300];
	struct local_result res;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u/Maildir", base);
	maildir_deliver(tmpl, "bob@example.org", "h", "a@example.com", MSG, strlen(MSG), &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	maildir_deliver(tmpl, "bob@example.org", "h", "a@example.com", MSG, strlen(MSG), &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	snprintf(dir, sizeof(dir), "%s/bob/Maildir/new", base);
	assert_int_equal(dir_entries(dir, NULL, 0), 2);
	remove_tree(base);
}

static void test_maildir_refuses_unsafe_names_and_creates_nothing(void **state)
{
	static const char *const bad[] = {"../x@example.org",    "..@example.org",
	                                  ".hidden@example.org", "a/b@example.org",
	                                  "@example.org",        "\"../../etc\"@example.org",
	                                  "bob@../etc"};
	char *base = make_base(), tmpl[300];
	struct local_result res;
	size_t i;

	snprintf(tmpl, sizeof(tmpl), "%s/m/%%d/%%u", base);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		maildir_deliver(tmpl, bad[i], "h", "a@example.com", MSG, strlen(MSG), &res);
		assert_int_equal(res.outcome, LOCAL_FAILED);
		assert_string_equal(res.enhanced, "5.1.3");
		mbox_deliver(tmpl, bad[i], "a@example.com", MSG, strlen(MSG), 1, &res);
		assert_int_equal(res.outcome, LOCAL_FAILED);
		assert_string_equal(res.enhanced, "5.1.3");
	}
	assert_int_equal(dir_entries(base, NULL, 0), 0);
	remove_tree(base);
}

static void test_maildir_under_a_regular_file_fails(void **state)
{
	char *base = make_base(), tmpl[300], path[300];
	struct local_result res;

	/* example.org is a file where a directory should be: ENOTDIR. */
	snprintf(path, sizeof(path), "%s/example.org", base);
	write_all(path, "not a directory\n");
	snprintf(tmpl, sizeof(tmpl), "%s/%%d/%%u/Maildir", base);
	maildir_deliver(tmpl, "bob@example.org", "h", "a@example.com", MSG, strlen(MSG), &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.2.0");
	assert_non_null(strstr(res.reason, "Not a directory"));

	/* The maildir itself is a file. */
	snprintf(tmpl, sizeof(tmpl), "%s/example.org", base);
	maildir_deliver(tmpl, "bob@example.org", "h", "a@example.com", MSG, strlen(MSG), &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.2.0");
	remove_tree(base);
}

/* maildir_denied_child - in a child as nobody: delivery into a read-only directory. */
static int maildir_denied_child(const char *base)
{
	char tmpl[300];
	struct local_result res;

	become_nobody();
	snprintf(tmpl, sizeof(tmpl), "%s/ro/%%u/Maildir", base);
	maildir_deliver(tmpl, "bob@example.org", "h", "a@example.com", MSG, strlen(MSG), &res);
	if (res.outcome != LOCAL_DEFERRED)
		return 1;
	if (strcmp(res.enhanced, "4.3.0") != 0)
		return 2;
	if (strstr(res.reason, "Permission denied") == NULL)
		return 3;
	return 0;
}

static void test_maildir_permission_denied_is_deferred(void **state)
{
	char *base = make_base(), path[300];
	pid_t pid;

	/* Mode 0555: nobody (or, when not root, the owner) cannot create in it. */
	snprintf(path, sizeof(path), "%s/ro", base);
	assert_int_equal(mkdir(path, 0555), 0);
	assert_int_equal(chmod(path, 0555), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30);
		_exit(maildir_denied_child(base));
	}
	assert_int_equal(child_wait(pid), 0);
	assert_int_equal(dir_entries(path, NULL, 0), 0);
	remove_tree(base);
}

/* maildir_full_child - in a child: delivery with a file size limit below the message. */
static int maildir_full_child(const char *base)
{
	char tmpl[300], dir[300];
	struct local_result res;
	struct rlimit rl = {200, 200};
	size_t len = 100000;
	char *big = malloc(len);

	if (big == NULL)
		return 9;
	memset(big, 'x', len);
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		return 8;
	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	maildir_deliver(tmpl, "bob@example.org", "h", "a@example.com", big, len, &res);
	free(big);
	if (res.outcome != LOCAL_DEFERRED)
		return 1;
	if (strcmp(res.enhanced, "4.2.2") != 0)
		return 2;
	snprintf(dir, sizeof(dir), "%s/bob/tmp", base);
	if (dir_entries(dir, NULL, 0) != 0)
		return 3;
	snprintf(dir, sizeof(dir), "%s/bob/new", base);
	if (dir_entries(dir, NULL, 0) != 0)
		return 4;
	return 0;
}

static void test_maildir_failed_write_is_deferred_and_cleaned_up(void **state)
{
	char *base = make_base();
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30);
		_exit(maildir_full_child(base));
	}
	assert_int_equal(child_wait(pid), 0);
	remove_tree(base);
}

struct thread_arg {
	const char *tmpl;
	int mbox;
	int delivered;
};

/* deliver_many - a thread delivering 25 messages to bob. */
static void *deliver_many(void *p)
{
	struct thread_arg *arg = p;
	struct local_result res;
	int i;

	for (i = 0; i < 25; i++) {
		if (arg->mbox)
			mbox_deliver(arg->tmpl, "bob@example.org", "a@example.com", MSG,
			             strlen(MSG), 30, &res);
		else
			maildir_deliver(arg->tmpl, "bob@example.org", "h", "a@example.com", MSG,
			                strlen(MSG), &res);
		if (res.outcome == LOCAL_DELIVERED)
			arg->delivered++;
	}
	return NULL;
}

/* run_threads - four threads of deliver_many; all 100 deliveries must succeed. */
static void run_threads(const char *tmpl, int mbox)
{
	struct thread_arg args[4];
	pthread_t th[4];
	int i;

	for (i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){tmpl, mbox, 0};
		assert_int_equal(pthread_create(&th[i], NULL, deliver_many, &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].delivered, 25);
	}
}

static void test_maildir_threads_get_unique_names(void **state)
{
	char *base = make_base(), tmpl[300], dir[300];

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	run_threads(tmpl, 0);
	snprintf(dir, sizeof(dir), "%s/bob/new", base);
	assert_int_equal(dir_entries(dir, NULL, 0), 100);
	snprintf(dir, sizeof(dir), "%s/bob/tmp", base);
	assert_int_equal(dir_entries(dir, NULL, 0), 0);
	remove_tree(base);
}

/* ---- mbox ---- */

static const char MBOX_BODY[] = "Return-Path: <a@example.com>\nDelivered-To: bob@example.org\n"
                                "Subject: hi\nFrom: a@example.com\n\nline one\n>From me\n"
                                ">>From you\n.\nbare\rcr\n\n";

/*
 * check_from_line - line (up to its LF) is "From <sender> Www Mmm dd
 * hh:mm:ss yyyy" for the current UTC time (within a minute); returns
 * what follows the LF.
 */
static const char *check_from_line(const char *line, const char *sender)
{
	static const char *const days = "SunMonTueWedThuFriSat";
	static const char *const months = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char wday[4], mon[4], prefix[300];
	int mday, hh, mm, ss, year, n = 0;
	struct tm tm = {0};
	time_t t;

	snprintf(prefix, sizeof(prefix), "From %s ", sender);
	assert_memory_equal(line, prefix, strlen(prefix));
	line += strlen(prefix);
	assert_int_equal(sscanf(line, "%3s %3s %2d %2d:%2d:%2d %4d\n%n", wday, mon, &mday, &hh, &mm,
	                        &ss, &year, &n),
	                 7);
	assert_true(n == 25);
	/* asctime layout: the day of the month is padded with a blank. */
	assert_true(line[8] == ' ' || (line[8] >= '1' && line[8] <= '3'));
	assert_int_equal(line[24], '\n');
	assert_non_null(strstr(days, wday));
	assert_non_null(strstr(months, mon));
	tm.tm_year = year - 1900;
	tm.tm_mon = (int)((strstr(months, mon) - months) / 3);
	tm.tm_mday = mday;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	t = timegm(&tm);
	assert_true(llabs((long long)(t - time(NULL))) < 60);
	assert_int_equal((int)((strstr(days, wday) - days) / 3), tm.tm_wday);
	return line + n;
}

static void test_mbox_appends_with_mboxrd_quoting(void **state)
{
	char *base = make_base(), tmpl[300], path[300], lock[310];
	struct local_result res;
	const char *p;
	struct stat st;
	size_t len;
	char *got;

	snprintf(tmpl, sizeof(tmpl), "%s/mail/%%u", base);
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 5, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	assert_string_equal(res.enhanced, "2.0.0");
	mbox_deliver(tmpl, "bob@example.org", "", "Subject: second\r\n\r\nno end",
	             strlen("Subject: second\r\n\r\nno end"), 5, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);

	snprintf(path, sizeof(path), "%s/mail/bob", base);
	assert_non_null(strstr(res.reason, path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	got = read_all(path, &len);
	p = check_from_line(got, "a@example.com");
	assert_memory_equal(p, MBOX_BODY, strlen(MBOX_BODY));
	p += strlen(MBOX_BODY);
	/* The null sender is MAILER-DAEMON; a missing last LF is added, then the empty line. */
	p = check_from_line(p, "MAILER-DAEMON");
	assert_string_equal(p, "Return-Path: <>\nDelivered-To: bob@example.org\nSubject: second\n\n"
	                       "no end\n\n");
	free(got);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	assert_int_equal(file_size(lock), -1);
	remove_tree(base);
}

static void test_mbox_quotes_only_from_lines(void **state)
{
	static const char in[] =
	    "\r\nFrom x\r\n>From y\r\n>>From z\r\nFrom\r\n From w\r\nFromage\r\n"
	    ">From\r\nFrom ";
	static const char want[] = "\n>From x\n>>From y\n>>>From z\nFrom\n From w\nFromage\n>From\n"
	                           ">From \n\n";
	char *base = make_base(), tmpl[300], path[300];
	struct local_result res;
	const char *p;
	size_t len;
	char *got;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	mbox_deliver(tmpl, "bob@example.org", "a b@example.com", in, strlen(in), 5, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	snprintf(path, sizeof(path), "%s/bob", base);
	got = read_all(path, &len);
	/* A blank in the sender would split the From_ line. */
	p = check_from_line(got, "a_b@example.com");
	p = strstr(p, "Delivered-To: bob@example.org\n");
	assert_non_null(p);
	p += strlen("Delivered-To: bob@example.org\n");
	assert_string_equal(p, want);
	free(got);
	remove_tree(base);
}

static void test_mbox_separates_from_an_unterminated_message(void **state)
{
	char *base = make_base(), tmpl[300], path[300];
	struct local_result res;
	size_t len;
	char *got;

	snprintf(path, sizeof(path), "%s/bob", base);
	write_all(path, "From x Thu Jan  1 00:00:00 1970\nbroken");
	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", "x\r\n", 3, 5, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	got = read_all(path, &len);
	assert_memory_equal(
	    got, "From x Thu Jan  1 00:00:00 1970\nbroken\n\nFrom a@example.com ",
	    strlen("From x Thu Jan  1 00:00:00 1970\nbroken\n\nFrom a@example.com "));
	free(got);
	remove_tree(base);
}

/* lock_holder - a child holding a POSIX write lock on path until done is closed. */
static pid_t lock_holder(const char *path, int *done_w)
{
	int go[2], done[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
		int fd = open(path, O_RDWR);

		alarm(30);
		close(go[0]);
		close(done[1]);
		if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
			_exit(1);
		if (write(go[1], "x", 1) != 1)
			_exit(2);
		while (read(done[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(go[1]);
	close(done[0]);
	assert_int_equal(read(go[0], &c, 1), 1);
	close(go[0]);
	*done_w = done[1];
	return pid;
}

static void test_mbox_waits_for_a_locked_file_then_defers(void **state)
{
	char *base = make_base(), tmpl[300], path[300], lock[310];
	struct local_result res;
	long long size, t0, elapsed;
	int done;
	pid_t pid;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	snprintf(path, sizeof(path), "%s/bob", base);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	size = file_size(path);

	pid = lock_holder(path, &done);
	t0 = mono_ms();
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	elapsed = mono_ms() - t0;
	assert_int_equal(res.outcome, LOCAL_DEFERRED);
	assert_string_equal(res.enhanced, "4.2.0");
	assert_true(elapsed >= 900 && elapsed < 5000);
	assert_int_equal(file_size(path), size);
	assert_int_equal(file_size(lock), -1);

	close(done);
	assert_int_equal(child_wait(pid), 0);
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	assert_true(file_size(path) == 2 * size);
	remove_tree(base);
}

static void test_mbox_respects_a_fresh_dot_lock(void **state)
{
	char *base = make_base(), tmpl[300], path[300], lock[310];
	struct local_result res;
	long long t0, elapsed;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	snprintf(path, sizeof(path), "%s/bob", base);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	write_all(lock, "");
	t0 = mono_ms();
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	elapsed = mono_ms() - t0;
	assert_int_equal(res.outcome, LOCAL_DEFERRED);
	assert_string_equal(res.enhanced, "4.2.0");
	assert_true(elapsed >= 900 && elapsed < 5000);
	/* Not ours: left in place, and the mbox untouched. */
	assert_int_equal(file_size(lock), 0);
	assert_int_equal(file_size(path), -1);
	remove_tree(base);
}

static void test_mbox_removes_a_stale_dot_lock(void **state)
{
	char *base = make_base(), tmpl[300], path[300], lock[310];
	struct timespec old[2];
	struct local_result res;
	long long t0;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	snprintf(path, sizeof(path), "%s/bob", base);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	write_all(lock, "12345\n");
	old[0].tv_sec = old[1].tv_sec = time(NULL) - 600;
	old[0].tv_nsec = old[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
	t0 = mono_ms();
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	assert_true(mono_ms() - t0 < 900);
	assert_int_equal(file_size(lock), -1);
	assert_true(file_size(path) > 0);
	remove_tree(base);
}

static void test_mbox_refuses_links_and_odd_files(void **state)
{
	char *base = make_base(), tmpl[300], path[300], target[300], other[300];
	struct local_result res;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	snprintf(target, sizeof(target), "%s/target", base);
	write_all(target, "precious\n");

	/* A symbolic link to a file. */
	snprintf(path, sizeof(path), "%s/bob", base);
	assert_int_equal(symlink(target, path), 0);
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.2.0");
	assert_non_null(strstr(res.reason, "symbolic link"));
	assert_int_equal(file_size(target), 9);

	/* A dangling one: its target must not be created. */
	snprintf(path, sizeof(path), "%s/carol", base);
	snprintf(other, sizeof(other), "%s/created", base);
	assert_int_equal(symlink(other, path), 0);
	mbox_deliver(tmpl, "carol@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.2.0");
	assert_int_equal(file_size(other), -1);

	/* A second hard link. */
	snprintf(path, sizeof(path), "%s/dave", base);
	assert_int_equal(link(target, path), 0);
	mbox_deliver(tmpl, "dave@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.2.0");
	assert_non_null(strstr(res.reason, "hard links"));
	assert_int_equal(file_size(target), 9);

	/* A directory and a FIFO (which must not block the open). */
	snprintf(path, sizeof(path), "%s/erin", base);
	assert_int_equal(mkdir(path, 0700), 0);
	mbox_deliver(tmpl, "erin@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.2.0");
	snprintf(path, sizeof(path), "%s/frank", base);
	assert_int_equal(mkfifo(path, 0600), 0);
	mbox_deliver(tmpl, "frank@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.2.0");
	assert_non_null(strstr(res.reason, "not a regular file"));

	/* No lock file left behind by any of them. */
	snprintf(path, sizeof(path), "%s/bob.lock", base);
	assert_int_equal(file_size(path), -1);
	remove_tree(base);
}

static void test_mbox_refuses_a_lock_file_name(void **state)
{
	char *base = make_base(), tmpl[300];
	struct local_result res;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	mbox_deliver(tmpl, "bob.lock@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.1.3");
	mbox_deliver(tmpl, "Bob.LOCK@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_int_equal(dir_entries(base, NULL, 0), 0);
	remove_tree(base);
}

static void test_mbox_under_a_regular_file_fails(void **state)
{
	char *base = make_base(), tmpl[300], path[300];
	struct local_result res;

	snprintf(path, sizeof(path), "%s/spool", base);
	write_all(path, "");
	snprintf(tmpl, sizeof(tmpl), "%s/spool/%%u", base);
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_FAILED);
	assert_string_equal(res.enhanced, "5.2.0");
	remove_tree(base);
}

/* mbox_readonly_dir_child - in a child as nobody: the dot-lock is skipped, delivery works. */
static int mbox_readonly_dir_child(const char *base)
{
	char tmpl[300], lock[300];
	struct local_result res;

	become_nobody();
	snprintf(tmpl, sizeof(tmpl), "%s/ro/%%u", base);
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	if (res.outcome != LOCAL_DELIVERED)
		return 1;
	snprintf(lock, sizeof(lock), "%s/ro/bob.lock", base);
	if (file_size(lock) != -1)
		return 2;
	/* A mailbox that is not there cannot be made in that directory: deferred. */
	mbox_deliver(tmpl, "carol@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	if (res.outcome != LOCAL_DEFERRED || strcmp(res.enhanced, "4.3.0") != 0)
		return 3;
	return 0;
}

static void test_mbox_skips_the_dot_lock_in_a_read_only_directory(void **state)
{
	char *base = make_base(), dir[300], path[300];
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/ro", base);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/ro/bob", base);
	write_all(path, "");
	give_to_child(path);
	assert_int_equal(chmod(dir, 0555), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30);
		_exit(mbox_readonly_dir_child(base));
	}
	assert_int_equal(child_wait(pid), 0);
	assert_true(file_size(path) > (long long)strlen(MSG));
	remove_tree(base);
}

/* mbox_full_child - in a child: a write past the file size limit. */
static int mbox_full_child(const char *tmpl, long long size)
{
	struct rlimit rl = {(rlim_t)size + 100, (rlim_t)size + 100};
	struct local_result res;
	size_t len = 100000;
	char *big = malloc(len);

	if (big == NULL)
		return 9;
	memset(big, 'x', len);
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		return 8;
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", big, len, 1, &res);
	free(big);
	if (res.outcome != LOCAL_DEFERRED)
		return 1;
	if (strcmp(res.enhanced, "4.2.2") != 0)
		return 2;
	return 0;
}

static void test_mbox_failed_write_truncates_back(void **state)
{
	char *base = make_base(), tmpl[300], path[300];
	struct local_result res;
	long long size;
	size_t len;
	char *before, *after;
	pid_t pid;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	snprintf(path, sizeof(path), "%s/bob", base);
	mbox_deliver(tmpl, "bob@example.org", "a@example.com", MSG, strlen(MSG), 1, &res);
	assert_int_equal(res.outcome, LOCAL_DELIVERED);
	size = file_size(path);
	before = read_all(path, &len);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30);
		_exit(mbox_full_child(tmpl, size));
	}
	assert_int_equal(child_wait(pid), 0);
	assert_int_equal(file_size(path), size);
	after = read_all(path, &len);
	assert_memory_equal(before, after, len);
	free(before);
	free(after);
	remove_tree(base);
}

static void test_mbox_threads_do_not_interleave(void **state)
{
	char *base = make_base(), tmpl[300], path[300], want[1000];
	const char *p, *next;
	size_t len, wlen;
	char *got;
	int n = 0;

	snprintf(tmpl, sizeof(tmpl), "%s/%%u", base);
	run_threads(tmpl, 1);
	snprintf(path, sizeof(path), "%s/bob", base);
	got = read_all(path, &len);
	wlen = (size_t)snprintf(want, sizeof(want), "%s", MBOX_BODY);
	for (p = got; *p != '\0'; p = next + wlen) {
		next = check_from_line(p, "a@example.com");
		assert_memory_equal(next, want, wlen);
		n++;
	}
	assert_int_equal(n, 100);
	free(got);
	remove_tree(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_expands_and_lowercases),
	    cmocka_unit_test(test_path_unquotes_a_quoted_local_part),
	    cmocka_unit_test(test_path_refuses_unsafe_names),
	    cmocka_unit_test(test_path_refuses_bad_templates_and_small_buffers),
	    cmocka_unit_test(test_maildir_delivers_the_exact_bytes),
	    cmocka_unit_test(test_maildir_edge_contents),
	    cmocka_unit_test(test_maildir_escapes_the_host_name),
	    cmocka_unit_test(test_maildir_two_deliveries_make_two_files),
	    cmocka_unit_test(test_maildir_refuses_unsafe_names_and_creates_nothing),
	    cmocka_unit_test(test_maildir_under_a_regular_file_fails),
	    cmocka_unit_test(test_maildir_permission_denied_is_deferred),
	    cmocka_unit_test(test_maildir_failed_write_is_deferred_and_cleaned_up),
	    cmocka_unit_test(test_maildir_threads_get_unique_names),
	    cmocka_unit_test(test_mbox_appends_with_mboxrd_quoting),
	    cmocka_unit_test(test_mbox_quotes_only_from_lines),
	    cmocka_unit_test(test_mbox_separates_from_an_unterminated_message),
	    cmocka_unit_test(test_mbox_waits_for_a_locked_file_then_defers),
	    cmocka_unit_test(test_mbox_respects_a_fresh_dot_lock),
	    cmocka_unit_test(test_mbox_removes_a_stale_dot_lock),
	    cmocka_unit_test(test_mbox_refuses_links_and_odd_files),
	    cmocka_unit_test(test_mbox_refuses_a_lock_file_name),
	    cmocka_unit_test(test_mbox_under_a_regular_file_fails),
	    cmocka_unit_test(test_mbox_skips_the_dot_lock_in_a_read_only_directory),
	    cmocka_unit_test(test_mbox_failed_write_truncates_back),
	    cmocka_unit_test(test_mbox_threads_do_not_interleave),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
