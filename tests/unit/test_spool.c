/*
 * test_spool.c - message ids, the committed file format, envelopes and the
 * queue's start-up recovery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envelope.h"
#include "ipc.h"
#include "queue.h"
#include "smtp_parse.h"
#include "spool.h"
#include "queue_client.h"

/* make_spool - a fresh spool tree in a temporary directory. */
static char *make_spool(void)
{
	char tmpl[] = "/tmp/vsmtpd-spool-XXXXXX";
	char *dir = mkdtemp(tmpl);

	assert_non_null(dir);
	assert_int_equal(spool_prepare(dir, -1, -1), 0);
	return strdup(dir);
}

/* write_file - create path with len bytes of data. */
static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* write_message - a committed message file for id under dir/sub. */
static void write_message_from(const char *dir, const char *sub, const char *id,
			       const char *content, const char *from);

static void write_message(const char *dir, const char *sub, const char *id, const char *content)
{
	write_message_from(dir, sub, id, content, NULL);
}

/* write_message_from - the same, for a copy a delegate rule's filter sent back for from. */
static void write_message_from(const char *dir, const char *sub, const char *id,
			       const char *content, const char *from)
{
	struct envelope env = {0};
	char path[512], trailer[SPOOL_TRAILER_LEN];
	char *json;
	FILE *f;

	strcpy(env.id, id);
	assert_int_equal(envelope_set(&env.mail_from, "a@example.org"), 0);
	assert_int_equal(envelope_add_rcpt(&env, "b@example.com", 0, NULL, NULL), 0);
	if (from != NULL) {
		assert_int_equal(envelope_set(&env.delegated_from, from), 0);
		env.delegated_rule = env.postq_start = 1;
	}
	json = envelope_to_json(&env);
	assert_non_null(json);
	spool_trailer_format(trailer, strlen(content), (uint32_t)strlen(json));
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, id);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fputs(json, f);
	fwrite(trailer, 1, sizeof(trailer), f);
	fclose(f);
	free(json);
	envelope_clear(&env);
}

/* count_entries - files in dir/sub. */
static int count_entries(const char *dir, const char *sub)
{
	char path[512];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* remove_tree - rm -r of a test spool. */
static void remove_tree(char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(dir);
}

static void test_ids_are_unique_and_sort_in_creation_order(void **state)
{
	char prev[SPOOL_ID_LEN + 1], id[SPOOL_ID_LEN + 1];
	uint64_t last = 0;
	int i;

	spool_id_next(&last, prev);
	for (i = 0; i < 10000; i++) {
		spool_id_next(&last, id);
		assert_true(spool_id_valid(id));
		assert_true(strcmp(prev, id) < 0);
		strcpy(prev, id);
	}
}

static void test_ids_stay_ahead_of_a_recovered_id(void **state)
{
	char id[SPOOL_ID_LEN + 1];
	uint64_t last = UINT64_C(0x7000000000000000);

	spool_id_next(&last, id);
	assert_string_equal(id, "7000000000000001");
	assert_int_equal(spool_id_value(id), UINT64_C(0x7000000000000001));
}

static void test_id_validation_refuses_other_names(void **state)
{
	assert_false(spool_id_valid("000660cd977706e6")); /* lower case */
	assert_false(spool_id_valid("000660CD977706E"));
	assert_false(spool_id_valid("000660CD977706E6X"));
	assert_false(spool_id_valid("../etc/passwd0000"));
	assert_int_equal(spool_id_value("nonsense"), 0);
}

static void test_envelope_json_round_trip_keeps_every_field(void **state)
{
	struct envelope in = {0}, out = {0};
	char *json;

	strcpy(in.id, "000660CD977706E6");
	in.received_at = 1795285985;
	in.client_port = 4242;
	in.body = SMTP_BODY_8BITMIME;
	in.smtputf8 = 1;
	in.ret = SMTP_RET_HDRS;
	assert_int_equal(envelope_set(&in.listener, "smtp"), 0);
	assert_int_equal(envelope_set(&in.client_ip, "::1"), 0);
	assert_int_equal(envelope_set(&in.helo, "client.example"), 0);
	assert_int_equal(envelope_set(&in.protocol, "UTF8SMTP"), 0);
	assert_int_equal(envelope_set(&in.mail_from, ""), 0);
	assert_int_equal(envelope_set(&in.envid, "QQ314159"), 0);
	assert_int_equal(envelope_set(&in.relay, "[127.0.0.1]:2525"), 0);
	in.postq_done = 1;
	in.faccept = 1;
	assert_int_equal(envelope_add_rcpt(&in, "b@example.com", SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY,
					   "rfc822", "b@example.com"),
			 0);
	assert_int_equal(envelope_add_rcpt(&in, "\xc3\xa9l\xc3\xa8ve@\xc3\xa9" "cole.example", 0, NULL, NULL), 0);
	json = envelope_to_json(&in);
	assert_non_null(json);
	assert_int_equal(envelope_from_json(&out, json, strlen(json)), 0);
	assert_string_equal(out.id, in.id);
	assert_int_equal(out.received_at, in.received_at);
	assert_int_equal(out.client_port, 4242);
	assert_int_equal(out.body, SMTP_BODY_8BITMIME);
	assert_int_equal(out.smtputf8, 1);
	assert_int_equal(out.ret, SMTP_RET_HDRS);
	assert_string_equal(out.listener, "smtp");
	assert_string_equal(out.client_ip, "::1");
	assert_string_equal(out.helo, "client.example");
	assert_string_equal(out.protocol, "UTF8SMTP");
	assert_string_equal(out.mail_from, "");
	assert_string_equal(out.envid, "QQ314159");
	assert_null(out.auth);
	assert_string_equal(out.relay, "[127.0.0.1]:2525");
	assert_int_equal(out.postq_done, 1);
	assert_int_equal(out.faccept, 1);
	assert_int_equal(out.nrcpts, 2);
	assert_int_equal(out.rcpts[0].notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	assert_string_equal(out.rcpts[0].orcpt_type, "rfc822");
	assert_string_equal(out.rcpts[1].address, "\xc3\xa9l\xc3\xa8ve@\xc3\xa9" "cole.example");
	assert_null(out.rcpts[1].orcpt);
	free(json);
	envelope_clear(&in);
	envelope_clear(&out);
}

static void test_envelope_without_recipients_is_refused(void **state)
{
	static const char *const bad[] = {
		"{\"id\":\"000660CD977706E6\",\"mail_from\":\"a@b\",\"rcpts\":[]}",
		"{\"id\":\"000660CD977706E6\",\"mail_from\":\"a@b\"}",
		"{\"mail_from\":\"a@b\",\"rcpts\":[{\"address\":\"c@d\"}]}",
		"{\"id\":\"000660CD977706E6\",\"rcpts\":[{\"address\":\"c@d\"}]}",
		"{\"id\":\"000660CD977706E6\",\"mail_from\":\"a@b\",\"rcpts\":[{\"notify\":1}]}",
		"[1,2,3]",
		"{\"id\":",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct envelope env = {0};

		assert_int_equal(envelope_from_json(&env, bad[i], strlen(bad[i])), -1);
		envelope_clear(&env);
	}
}

static void test_committed_file_reads_back_content_length_and_envelope(void **state)
{
	char *dir = make_spool(), path[512];
	struct envelope env = {0};
	uint64_t clen;
	int fd;

	write_message(dir, SPOOL_QUEUE, "000660CD977706E6", "Subject: x\r\n\r\nhello\r\n");
	snprintf(path, sizeof(path), "%s/%s/000660CD977706E6", dir, SPOOL_QUEUE);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(spool_message_read(fd, &env, &clen), 0);
	assert_int_equal(clen, strlen("Subject: x\r\n\r\nhello\r\n"));
	assert_string_equal(env.mail_from, "a@example.org");
	assert_int_equal(env.nrcpts, 1);
	envelope_clear(&env);
	close(fd);
	remove_tree(dir);
}

static void test_truncated_file_is_not_a_message(void **state)
{
	char *dir = make_spool(), path[512];
	struct envelope env = {0};
	struct stat st;
	uint64_t clen;
	off_t cut;
	int fd;

	write_message(dir, SPOOL_QUEUE, "000660CD977706E6", "Subject: x\r\n\r\nhello\r\n");
	snprintf(path, sizeof(path), "%s/%s/000660CD977706E6", dir, SPOOL_QUEUE);
	assert_int_equal(stat(path, &st), 0);
	/* Every shorter prefix must be refused, never half-read. */
	for (cut = st.st_size - 1; cut >= 0; cut--) {
		assert_int_equal(truncate(path, cut), 0);
		fd = open(path, O_RDONLY);
		assert_int_equal(spool_message_read(fd, &env, &clen), -1);
		envelope_clear(&env);
		close(fd);
	}
	remove_tree(dir);
}

static void test_recovery_removes_incomplete_and_keeps_committed(void **state)
{
	char *dir = make_spool(), path[512];
	struct queue_recovery rec;
	int spool_fd;

	write_message(dir, SPOOL_QUEUE, "000660CD977706E6", "a\r\n");
	write_message(dir, SPOOL_QUEUE, "000660CD977706F0", "b\r\n");
	snprintf(path, sizeof(path), "%s/%s/000660CD97770700", dir, SPOOL_INCOMING);
	write_file(path, "Received: half a message", 24);
	write_message(dir, SPOOL_INCOMING, "000660CD97770701", "complete but never committed\r\n");

	spool_fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_int_equal(queue_recover(spool_fd, &rec), 0);
	assert_int_equal(rec.queued, 2);
	assert_int_equal(rec.incomplete, 2);
	assert_int_equal(rec.corrupt, 0);
	assert_int_equal(rec.last_id, UINT64_C(0x000660CD977706F0));
	assert_int_equal(count_entries(dir, SPOOL_INCOMING), 0);
	assert_int_equal(count_entries(dir, SPOOL_QUEUE), 2);
	close(spool_fd);
	remove_tree(dir);
}

static void test_recovery_moves_a_broken_committed_file_aside(void **state)
{
	char *dir = make_spool(), path[512];
	struct queue_recovery rec;
	int spool_fd;

	write_message(dir, SPOOL_QUEUE, "000660CD977706E6", "a\r\n");
	snprintf(path, sizeof(path), "%s/%s/000660CD977706E7", dir, SPOOL_QUEUE);
	write_file(path, "no trailer here", 15);

	spool_fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_int_equal(queue_recover(spool_fd, &rec), 0);
	assert_int_equal(rec.queued, 1);
	assert_int_equal(rec.corrupt, 1);
	assert_int_equal(count_entries(dir, SPOOL_QUEUE), 1);
	assert_int_equal(count_entries(dir, SPOOL_CORRUPT), 1);
	close(spool_fd);
	remove_tree(dir);
}

/* A crash between the commit of a filter's returned copy and the removal
 * of its original: the original goes at recovery, before or after the copy
 * in the directory's order; its state goes with it. */
static void test_recovery_removes_the_original_of_a_returned_copy(void **state)
{
	char *dir = make_spool(), path[512];
	struct queue_recovery rec;
	int spool_fd;

	write_message(dir, SPOOL_QUEUE, "000660CD977706E6", "original\r\n");
	write_message_from(dir, SPOOL_QUEUE, "000660CD977706F0", "back\r\n", "000660CD977706E6");
	write_message(dir, SPOOL_QUEUE, "000660CD97770710", "other\r\n");
	write_message_from(dir, SPOOL_QUEUE, "000660CD97770700", "back\r\n", "000660CD977706F1");
	snprintf(path, sizeof(path), "%s/%s/000660CD977706E6", dir, SPOOL_STATE);
	write_file(path, "{}", 2);

	spool_fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_int_equal(queue_recover(spool_fd, &rec), 0);
	assert_int_equal(rec.corrupt, 0);
	assert_int_equal(count_entries(dir, SPOOL_QUEUE), 3);
	snprintf(path, sizeof(path), "%s/%s/000660CD977706E6", dir, SPOOL_QUEUE);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/%s/000660CD977706F0", dir, SPOOL_QUEUE);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(count_entries(dir, SPOOL_STATE), 0);
	close(spool_fd);
	remove_tree(dir);
}

/* An answer of the wrong kind puts the channel out of step: it is shut, and
 * every later request fails at once instead of taking a stale answer. */
static void test_a_stray_answer_shuts_the_queue_channel(void **state)
{
	struct ipc_msg stray = {.type = IPC_MSG_COMMITTED}, got;
	int fds[2], fd = -1, passfd;

	(void)state;
	assert_int_equal(ipc_socketpair(fds), 0);
	assert_int_equal(ipc_send(fds[1], &stray, -1), 0);
	assert_int_equal(queue_client_open_rules_file(fds[0], "notice.eml", &fd), EPROTO);
	assert_int_equal(fd, -1);
	assert_int_equal(queue_client_open_rules_file(fds[0], "notice.eml", &fd), EPIPE);
	/* The queue's end got the first request, then the end of the channel. */
	assert_int_equal(ipc_recv(fds[1], &got, &passfd), 1);
	assert_int_equal(got.type, IPC_RULE_FILE);
	assert_true(passfd >= 0);
	close(passfd);
	assert_int_equal(ipc_recv(fds[1], &got, &passfd), 0);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_are_unique_and_sort_in_creation_order),
		cmocka_unit_test(test_a_stray_answer_shuts_the_queue_channel),
		cmocka_unit_test(test_ids_stay_ahead_of_a_recovered_id),
		cmocka_unit_test(test_id_validation_refuses_other_names),
		cmocka_unit_test(test_envelope_json_round_trip_keeps_every_field),
		cmocka_unit_test(test_envelope_without_recipients_is_refused),
		cmocka_unit_test(test_committed_file_reads_back_content_length_and_envelope),
		cmocka_unit_test(test_truncated_file_is_not_a_message),
		cmocka_unit_test(test_recovery_removes_incomplete_and_keeps_committed),
		cmocka_unit_test(test_recovery_moves_a_broken_committed_file_aside),
		cmocka_unit_test(test_recovery_removes_the_original_of_a_returned_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
