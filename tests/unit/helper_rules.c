/*
 * helper_rules.c - the helpers the unit tests of the rules engine and its
 * services share (see helper_rules.h). Compiled into each test that names
 * it in CMakeLists.txt (VSMTPD_TESTS_HELPERS_<test>). A server thread
 * blocks in accept(); test_server_stop() shuts the listening socket down
 * first, which wakes it when the code under test never connected.
 */
#include <netinet/in.h>
#include <pthread.h>
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

#include "helper_rules.h"

/* test_rules_load - see helper_rules.h. */
struct rules *test_rules_load(const char *dir, const char *text, const struct rules_limits *limits,
                              const struct rules_settings *settings, char *err, size_t errlen)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/main.lua", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	return rules_load(path, limits, settings, err, errlen);
}

/* test_rules_load_ok - see helper_rules.h. */
struct rules *test_rules_load_ok(const char *dir, const char *text,
                                 const struct rules_limits *limits,
                                 const struct rules_settings *settings)
{
	char err[1024];
	struct rules *r = test_rules_load(dir, text, limits, settings, err, sizeof(err));

	if (r == NULL)
		fail_msg("%s", err);
	return r;
}

/* test_listen_tcp - see helper_rules.h. */
int test_listen_tcp(unsigned *port, int backlog)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* server_main - take one connection, serve it, close it. */
static void *server_main(void *arg)
{
	struct test_server *s = arg;
	int fd = accept(s->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	s->serve(fd, s->arg);
	close(fd);
	return NULL;
}

/* test_server_start - see helper_rules.h. */
void test_server_start(struct test_server *s, int lfd, test_serve_fn serve, void *arg)
{
	s->lfd = lfd;
	s->serve = serve;
	s->arg = arg;
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

/* test_server_start_tcp - see helper_rules.h. */
void test_server_start_tcp(struct test_server *s, test_serve_fn serve, void *arg)
{
	unsigned port;
	int lfd = test_listen_tcp(&port, 1);

	snprintf(s->address, sizeof(s->address), "127.0.0.1:%u", port);
	test_server_start(s, lfd, serve, arg);
}

/* test_server_stop - see helper_rules.h. */
void test_server_stop(struct test_server *s)
{
	shutdown(s->lfd, SHUT_RDWR); /* wakes the server when no call came */
	pthread_join(s->thread, NULL);
	close(s->lfd);
	s->lfd = -1;
}

/* test_read_frames - see helper_rules.h. */
int test_read_frames(int fd, size_t max, size_t *got, int *frames)
{
	unsigned char len[4];
	char buf[4096];
	size_t n, k;
	ssize_t r;

	while (recv(fd, len, 4, MSG_WAITALL) == 4) {
		n = (size_t)len[0] << 24 | (size_t)len[1] << 16 | (size_t)len[2] << 8 | len[3];
		if (n == 0)
			break;
		if (n > max)
			return -1;
		for (k = 0; k < n; k += (size_t)r)
			if ((r = recv(fd, buf, n - k < sizeof(buf) ? n - k : sizeof(buf), 0)) <= 0)
				return -1;
		*got += n;
		++*frames;
	}
	return 0;
}
