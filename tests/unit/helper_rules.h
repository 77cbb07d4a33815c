/*
 * helper_rules.h - what the unit tests of the rules engine and its
 * services share: a rules text written as main.lua in the test's folder
 * and compiled, a listening socket on loopback, and a small server in a
 * thread of the test that takes one connection and serves it as the test
 * says (a fake clamd, spamd or framing server). Every function fails the
 * running cmocka test on error.
 */
#ifndef VSMTPD_TEST_HELPER_RULES_H
#define VSMTPD_TEST_HELPER_RULES_H

#include <pthread.h>
#include <stddef.h>

#include "rules.h"

/* test_rules_load - text written as dir/main.lua and compiled with limits
 * and settings; NULL with the error in err. */
struct rules *test_rules_load(const char *dir, const char *text, const struct rules_limits *limits,
                              const struct rules_settings *settings, char *err, size_t errlen);

/* test_rules_load_ok - test_rules_load, failing the test with the error. */
struct rules *test_rules_load_ok(const char *dir, const char *text,
                                 const struct rules_limits *limits,
                                 const struct rules_settings *settings);

/* test_listen_tcp - a listening socket on 127.0.0.1 with the given
 * backlog; its port in *port. */
int test_listen_tcp(unsigned *port, int backlog);

/* test_serve_fn - what a server does with the connection it took (the
 * helper closes it after). */
typedef void (*test_serve_fn)(int fd, void *arg);

/* A server in a thread of the test that takes one connection. */
struct test_server {
	int lfd;             /* the listening socket */
	char address[32];    /* "127.0.0.1:port" (test_server_start_tcp) */
	test_serve_fn serve; /* what it does with the connection */
	void *arg;           /* serve's argument */
	pthread_t thread;
};

/* test_server_start - a thread that takes one connection on lfd and
 * passes it to serve(fd, arg). */
void test_server_start(struct test_server *s, int lfd, test_serve_fn serve, void *arg);

/* test_server_start_tcp - test_server_start on a new socket on
 * 127.0.0.1 (backlog 1); its address in s->address. */
void test_server_start_tcp(struct test_server *s, test_serve_fn serve, void *arg);

/* test_server_stop - wake the server when no connection came, wait for
 * it and close its socket. */
void test_server_stop(struct test_server *s);

/* test_read_frames - read 4-byte-length frames from fd up to an empty one
 * (or the end of the stream); their bytes added to *got, their number to
 * *frames; -1 at a frame longer than max or cut short. */
int test_read_frames(int fd, size_t max, size_t *got, int *frames);

#endif
