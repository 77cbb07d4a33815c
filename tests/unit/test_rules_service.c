/*
 * test_rules_service.c - the call layer of the rules' services
 * (rules_service.c) against small servers in threads of the test: a refused
 * connection, an IPv6 address, a connection attempt that times out, a
 * server that never answers (the deadline), a server that
 * resets, a whole exchange over a Unix socket with the message sent in
 * framed pieces; what a failed call means for each on_failure; and the
 * engine making a status raised as a rule's error the rule's status.
 */
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helper_mail.h"
#include "helper_rules.h"
#include "rules_internal.h"
#include "rules_service.h"

/* now_ms - the monotonic clock in milliseconds. */
static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* service - a clamd service at address with the given timeout and on_failure. */
static struct service_config service(const char *name, const char *address, unsigned timeout_ms,
                                     enum service_failure on_failure)
{
	return (struct service_config){.name = (char *)name,
	                               .kind = SERVICE_CLAMD,
	                               .address = (char *)address,
	                               .connect_timeout_ms = timeout_ms,
	                               .timeout_ms = timeout_ms,
	                               .on_failure = on_failure};
}

/* test_refused - nobody listening: the error names the address. */
static void test_refused(void **state)
{
	struct rules_service_call c;
	struct service_config svc;
	char address[64], want[128];
	unsigned port;
	int fd = test_listen_tcp(&port, 4);

	(void)state;
	close(fd);
	snprintf(address, sizeof(address), "127.0.0.1:%u", port);
	svc = service("av", address, 1000, SERVICE_FAIL_TEMPFAIL);
	rules_service_start(&c, &svc);
	assert_int_equal(rules_service_connect(&c), -1);
	assert_int_equal(c.fd, -1);
	snprintf(want, sizeof(want), "connect to %s: Connection refused", address);
	assert_string_equal(c.error, want);
}

/* test_deadline - a server that takes the connection and never answers:
 * the read gives up at the call's deadline. */
static void test_deadline(void **state)
{
	struct rules_service_call c;
	struct service_config svc;
	char address[64], buf[16];
	unsigned port;
	int fd = test_listen_tcp(&port, 4);
	uint64_t t0;

	(void)state;
	snprintf(address, sizeof(address), "127.0.0.1:%u", port);
	svc = service("av", address, 200, SERVICE_FAIL_TEMPFAIL);
	t0 = now_ms();
	rules_service_start(&c, &svc);
	assert_int_equal(rules_service_connect(&c), 0);
	assert_int_equal(rules_service_write(&c, "PING\n", 5), 0);
	assert_int_equal(rules_service_read(&c, buf, sizeof(buf)), -1);
	assert_string_equal(c.error, "read: timeout after 200 ms");
	assert_true(now_ms() - t0 >= 190);
	assert_true(now_ms() - t0 < 1500);
	assert_true(rules_service_ms(&c) >= 190);
	rules_service_close(&c);
	assert_int_equal(c.fd, -1);
	close(fd);
}

/* test_ipv6 - an [IPv6]:port address. */
static void test_ipv6(void **state)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	socklen_t len = sizeof(sin6);
	struct rules_service_call c;
	struct service_config svc;
	char address[64];
	int fd = socket(AF_INET6, SOCK_STREAM, 0);

	(void)state;
	assert_true(fd >= 0);
	if (bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) < 0) {
		close(fd);
		skip(); /* no ::1 on this machine */
	}
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin6, &len), 0);
	snprintf(address, sizeof(address), "[::1]:%u", ntohs(sin6.sin6_port));
	svc = service("av", address, 1000, SERVICE_FAIL_TEMPFAIL);
	rules_service_start(&c, &svc);
	assert_int_equal(rules_service_connect(&c), 0);
	rules_service_close(&c);
	close(fd);
}

/* test_connect_timeout - a listener whose queue is full drops the
 * connection attempt: connect gives up after connect_timeout. */
static void test_connect_timeout(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct rules_service_call c;
	struct service_config svc;
	char address[64], want[128];
	unsigned port;
	int fd = test_listen_tcp(&port, 0), fill[4], i;
	uint64_t t0;

	(void)state;
	sin.sin_port = htons((uint16_t)port);
	for (i = 0; i < 4; i++) { /* fill the accept queue, never accepted */
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(100000);
	snprintf(address, sizeof(address), "127.0.0.1:%u", port);
	svc = service("av", address, 5000, SERVICE_FAIL_TEMPFAIL);
	svc.connect_timeout_ms = 300;
	t0 = now_ms();
	rules_service_start(&c, &svc);
	assert_int_equal(rules_service_connect(&c), -1);
	snprintf(want, sizeof(want), "connect to %s: timeout after 300 ms", address);
	assert_string_equal(c.error, want);
	assert_true(now_ms() - t0 >= 290 && now_ms() - t0 < 2000);
	assert_int_equal(c.fd, -1);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	close(fd);
}

/* What a server thread does with the one connection it takes. */
enum server_mode { SERVER_RESET, SERVER_UNFRAME };

struct server {
	struct test_server t;
	enum server_mode mode;
	size_t got; /* SERVER_UNFRAME: bytes of message received */
};

/* serve - reset the connection, or read 4-byte-length frames up to an
 * empty one and answer "got N\n". */
static void serve(int fd, void *arg)
{
	struct server *s = arg;
	char buf[4096], reply[64];
	int frames = 0;

	if (s->mode == SERVER_RESET) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		(void)recv(fd, buf, sizeof(buf), 0);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		return;
	}
	(void)test_read_frames(fd, SIZE_MAX, &s->got, &frames);
	snprintf(reply, sizeof(reply), "got %zu\n", s->got);
	(void)send(fd, reply, strlen(reply), MSG_NOSIGNAL);
}

/* frame - rules_service_send_message's fn: a 4-byte length, then the piece. */
static int frame(struct rules_service_call *c, const char *buf, size_t len, void *arg)
{
	unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
	                        (unsigned char)(len >> 8), (unsigned char)len};

	assert_true(len <= RULES_SERVICE_CHUNK);
	++*(int *)arg;
	return rules_service_write(c, hdr, 4) < 0 ? -1 : rules_service_write(c, buf, len);
}

/* test_reset - a server that resets the connection: an error, no crash. */
static void test_reset(void **state)
{
	struct server s = {.mode = SERVER_RESET};
	struct rules_service_call c;
	struct service_config svc;
	char buf[16];
	ssize_t n;

	(void)state;
	test_server_start_tcp(&s.t, serve, &s);
	svc = service("av", s.t.address, 2000, SERVICE_FAIL_TEMPFAIL);
	rules_service_start(&c, &svc);
	assert_int_equal(rules_service_connect(&c), 0);
	assert_int_equal(rules_service_write(&c, "x", 1), 0);
	test_server_stop(&s.t);
	n = rules_service_read(&c, buf, sizeof(buf));
	assert_int_equal(n, -1);
	assert_string_equal(c.error, "read: Connection reset by peer");
	rules_service_close(&c);
}

/* test_unix_exchange - a message of several pieces over a Unix socket,
 * framed by the caller's fn, and the whole answer read back. */
static void test_unix_exchange(void **state)
{
	struct server s = {.mode = SERVER_UNFRAME};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct rules_service_call c;
	struct service_config svc;
	size_t body = 150000, len, size;
	char *text, *answer, want[64];
	struct message *m;
	int pieces = 0, lfd;

	(void)state;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/svc.sock", test_dir);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	test_server_start(&s.t, lfd, serve, &s);
	text = malloc(body + 64);
	len = (size_t)sprintf(text, "Subject: big\r\n\r\n");
	memset(text + len, 'a', body);
	m = message_parse(text, len + body);
	assert_non_null(m);
	assert_int_equal(message_header_append(m, "X-Edited", "yes"), 0);
	size = message_size(m);
	svc = service("av", sun.sun_path, 2000, SERVICE_FAIL_TEMPFAIL);
	rules_service_start(&c, &svc);
	assert_int_equal(rules_service_connect(&c), 0);
	assert_int_equal(rules_service_send_message(&c, m, frame, &pieces), 0);
	assert_int_equal(pieces, 3); /* 64k + 64k + the rest */
	assert_int_equal(rules_service_write(&c, "\0\0\0\0", 4), 0);
	assert_non_null(answer = rules_service_read_all(&c, 1024, &len));
	snprintf(want, sizeof(want), "got %zu\n", size);
	assert_string_equal(answer, want);
	assert_int_equal(len, strlen(want));
	rules_service_close(&c);
	test_server_stop(&s.t);
	free(answer);
	message_free(m);
	free(text);
	unlink(sun.sun_path);
}

/* A ruleset with three services at a closed port, one per on_failure. */
static struct service_config services[4];
static char refused[64];

/* load - compile text as main.lua with the services. */
static struct rules *load(const char *text)
{
	struct rules_limits limits = {.instructions = 200000, .memory = 4 << 20};
	struct rules_settings settings = {.hostname = "mx.example.com",
	                                  .local_domains = "example.com",
	                                  .trusted_networks = "192.0.2.0/24",
	                                  .services = services,
	                                  .nservices = 4};
	unsigned port;
	int fd = test_listen_tcp(&port, 4);

	close(fd);
	snprintf(refused, sizeof(refused), "127.0.0.1:%u", port);
	services[0] = service("temp", refused, 1000, SERVICE_FAIL_TEMPFAIL);
	services[1] = service("rej", refused, 1000, SERVICE_FAIL_REJECT);
	services[2] = service("acc", refused, 1000, SERVICE_FAIL_ACCEPT);
	services[3] = service("sa", refused, 1000, SERVICE_FAIL_ACCEPT);
	services[3].kind = SERVICE_SPAMD;
	return test_rules_load_ok(test_dir, text, &limits, &settings);
}

/* call_refused - a Lua function: a clamd call to the service named by
 * argument 1, which fails to connect. */
static int call_refused(lua_State *L)
{
	const struct service_config *svc = rules_service_find(L, 1, SERVICE_CLAMD);
	struct rules_service_call c;

	rules_service_start(&c, svc);
	if (rules_service_connect(&c) < 0) {
		rules_service_failed(L, &c);
		rules_service_push_result(L, &c, 1, 0);
		return 1;
	}
	rules_service_close(&c);
	return luaL_error(L, "connected to a closed port");
}

/* call - call_refused(name) in the rules' state; the pcall status, the
 * result or error at the top. */
static int call(struct rules *r, const char *name)
{
	lua_State *L = r->L;

	lua_settop(L, 0);
	lua_pushcfunction(L, call_refused);
	lua_pushstring(L, name);
	return lua_pcall(L, 1, 1, 0);
}

/* test_on_failure - tempfail and reject raise their status; accept
 * returns a result that says failed; a wrong name or kind raises. */
static void test_on_failure(void **state)
{
	struct rules *r = load("return {}\n");
	const struct rules_status *st;
	lua_State *L = r->L;

	(void)state;
	assert_int_equal(call(r, "temp"), LUA_ERRRUN);
	assert_non_null(st = luaL_testudata(L, -1, RULES_STATUS_MT));
	assert_int_equal(st->status, RULE_REJECT);
	assert_int_equal(st->reply.code, 451);
	assert_string_equal(st->reply.enhanced, "4.7.1");
	assert_string_equal(st->reply.text, "temp is unavailable, try again later");

	assert_int_equal(call(r, "rej"), LUA_ERRRUN);
	assert_non_null(st = luaL_testudata(L, -1, RULES_STATUS_MT));
	assert_int_equal(st->status, RULE_REJECT);
	assert_int_equal(st->reply.code, 550);
	assert_string_equal(st->reply.enhanced, "5.7.1");
	assert_string_equal(st->reply.text, "Rejected: rej is unavailable");

	assert_int_equal(call(r, "acc"), LUA_OK);
	assert_true(lua_istable(L, -1));
	assert_int_equal(lua_getfield(L, -1, "failed"), LUA_TBOOLEAN);
	assert_true(lua_toboolean(L, -1));
	assert_int_equal(lua_getfield(L, -2, "error"), LUA_TSTRING);
	assert_non_null(strstr(lua_tostring(L, -1), "Connection refused"));
	assert_int_equal(lua_getfield(L, -3, "skipped"), LUA_TBOOLEAN);
	assert_false(lua_toboolean(L, -1));
	assert_int_equal(lua_getfield(L, -4, "ms"), LUA_TNUMBER);
	assert_int_equal(lua_getfield(L, -5, "status"), LUA_TUSERDATA);
	assert_non_null(st = luaL_testudata(L, -1, RULES_STATUS_MT));
	assert_int_equal(st->status, RULE_NEXT);

	assert_int_equal(call(r, "nosuch"), LUA_ERRRUN);
	assert_string_equal(lua_tostring(L, -1), "no service \"nosuch\": declare it in the "
	                                         "configuration as [service:nosuch]");
	assert_int_equal(call(r, "sa"), LUA_ERRRUN);
	assert_string_equal(lua_tostring(L, -1), "[service:sa] is of kind spamd, not clamd");
	lua_settop(L, 0);
	rules_free(r);
}

/* test_raised_status - a status raised as a rule's error is the rule's
 * status: the stage is decided by it, or goes on after status.next(). */
static void test_raised_status(void **state)
{
	struct rules *r = load("return { connect = {\n"
	                       "  rule \"n\" (function(ctx) error(status.next()) end),\n"
	                       "  rule \"d\" (function(ctx)\n"
	                       "    error(status.deny(code(554, \"5.7.1\", \"no thanks\")))\n"
	                       "  end),\n"
	                       "  rule \"never\" (function(ctx) return status.accept() end),\n"
	                       "} }\n");
	struct rule_ctx ctx = {.client_ip = "192.0.2.1", .helo = "", .server_name = "mx"};
	struct rule_verdict v;

	(void)state;
	assert_int_equal(rules_run(r, RULE_STAGE_CONNECT, &ctx, &v), RULE_DENY);
	assert_string_equal(v.rule, "d");
	assert_int_equal(v.reply.code, 554);
	assert_string_equal(v.reply.text, "no thanks");
	rules_ctx_release(&ctx);
	rules_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refused),       cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_ipv6),          cmocka_unit_test(test_connect_timeout),
	    cmocka_unit_test(test_reset),         cmocka_unit_test(test_unix_exchange),
	    cmocka_unit_test(test_on_failure),    cmocka_unit_test(test_raised_status),
	};

	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
