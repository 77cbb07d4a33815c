/*
 * helper_mail.c - the helpers the mail authentication unit tests share,
 * and the scratch folder of many others (see helper_mail.h). Compiled
 * into each test that names it in CMakeLists.txt
 * (VSMTPD_TESTS_HELPERS_<test>).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "helper_mail.h"

char test_dir[64];

/* test_dir_setup - see helper_mail.h. */
int test_dir_setup(void **state)
{
	(void)state;
	snprintf(test_dir, sizeof(test_dir), "/tmp/vsmtpd-%s.XXXXXX", program_invocation_short_name);
	assert_non_null(mkdtemp(test_dir));
	return 0;
}

/* test_dir_teardown - see helper_mail.h. */
int test_dir_teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* test_read_file - see helper_mail.h. */
char *test_read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (fp == NULL)
		fail_msg("cannot open %s", path);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	assert_non_null(buf = malloc((size_t)n + 1));
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

/* test_write_file - see helper_mail.h. */
void test_write_file(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "wb");

	if (fp == NULL)
		fail_msg("cannot create %s", path);
	assert_int_equal(fwrite(text, 1, len, fp), len);
	fclose(fp);
}

/* test_txt_record - see helper_mail.h. */
void test_txt_record(char *out, size_t outlen, const char *name, const char *dir,
		     const char *file)
{
	char path[600], *rec;
	size_t len, at, used;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	rec = test_read_file(path, &len);

	while (len > 0 && (rec[len - 1] == '\n' || rec[len - 1] == '\r'))
		rec[--len] = '\0';
	used = (size_t)snprintf(out, outlen, "txt-record=%s", name);
	for (at = 0; at < len; at += 255)
		used += (size_t)snprintf(out + used, outlen - used, ",%.*s",
					 (int)(len - at < 255 ? len - at : 255), rec + at);
	assert_true(used < outlen);
	free(rec);
}

/* test_tool - see helper_mail.h. */
char *test_tool(const char *dir, const char *data, const char *command, const char *text,
		const char *what)
{
	char in[300], out[300], cmd[2048];

	snprintf(in, sizeof(in), "%s/in.eml", dir);
	snprintf(out, sizeof(out), "%s/out.eml", dir);
	test_write_file(in, text, strlen(text));
	snprintf(cmd, sizeof(cmd), "cd '%s' && %s < '%s' > '%s'", data, command, in, out);
	if (system(cmd) != 0)
		fail_msg("%s failed: %s", what, cmd);
	return test_read_file(out, NULL);
}

/* test_replace - see helper_mail.h. */
char *test_replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *out;

	assert_non_null(at);
	assert_non_null(out = malloc(strlen(text) + strlen(to) + 1));
	sprintf(out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	return out;
}

/* test_silent_udp - see helper_mail.h. */
int test_silent_udp(unsigned *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}
