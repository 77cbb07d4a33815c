/*
 * test_mx_lookup.c - MX and address lookups for delivery, against a real
 * DNS server: Debian's dnsmasq (package dnsmasq-base), run by this test on
 * a free loopback port as an authoritative-only server for the names under
 * "test" (dnsmasq_helper.c). A UDP socket that never answers stands for a server
 * that times out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dnsmasq_helper.h"
#include "mx_lookup.h"

#define WAIT_MS DNSMASQ_WAIT_MS /* the longest any wait here may take */

/* The zone: dnsmasq options without their leading "--". */
static const char *const zone[] = {
	/* two preferences, the better one listed last */
	"mx-host=two.test,mx2.two.test,20",
	"mx-host=two.test,mx1.two.test,10",
	"host-record=mx1.two.test,127.0.0.11",
	"host-record=mx2.two.test,127.0.0.12,fd00::12",
	/* equal preference */
	"mx-host=equal.test,a.equal.test,10",
	"mx-host=equal.test,b.equal.test,10",
	"host-record=a.equal.test,127.0.0.21",
	"host-record=b.equal.test,127.0.0.22",
	/* no MX: the domain's own addresses */
	"host-record=implicit.test,127.0.0.31,fd00::31",
	/* an MX host with IPv6 only */
	"mx-host=v6.test,v6only.test,5",
	"host-record=v6only.test,fd00::41",
	/* null MX (RFC 7505) */
	"mx-host=nullmx.test,.,0",
	/* the MX host does not exist */
	"mx-host=noaddr.test,missing.test,10",
	/* the best MX host does not exist, the next one does */
	"mx-host=mixed.test,dead.test,5",
	"mx-host=mixed.test,live.test,10",
	"host-record=live.test,127.0.0.51",
	/* the MX host's lookups fail (REFUSED: not dnsmasq's zone) */
	"mx-host=temp.test,mx.elsewhere.invalid,10",
	/* ... and an MX host that answers, behind it */
	"mx-host=halftemp.test,mx.elsewhere.invalid,5",
	"mx-host=halftemp.test,live.test,10",
	/* the name exists, with neither MX nor address */
	"txt-record=empty.test,nothing here",
};

#define ZONE_SIZE (sizeof(zone) / sizeof(zone[0]))

struct dns_state {
	pid_t pid;
	unsigned port;
	char servers[64];
};

static struct dns_state dns;

/* ---- dnsmasq ------------------------------------------------------------ */

/* start_dns - dnsmasq on a free port, answering. */
static int start_dns(void **state)
{
	(void)state;
	if ((dns.pid = dnsmasq_start(zone, ZONE_SIZE, NULL, &dns.port)) < 0)
		return -1;
	snprintf(dns.servers, sizeof(dns.servers), "127.0.0.1:%u", dns.port);
	return 0;
}

static int stop_dns(void **state)
{
	dnsmasq_stop(dns.pid);
	return 0;
}

/* ---- running lookups ----------------------------------------------------- */

struct outcome {
	int calls;
	struct mx_result res;
	struct event_base *base;
	int *in_call; /* set while mx_lookup() runs: a callback then is a bug */
};

/* on_result - keep the result; stop the loop. */
static void on_result(void *arg, const struct mx_result *res)
{
	struct outcome *o = arg;

	assert_false(o->in_call != NULL && *o->in_call);
	o->calls++;
	o->res = *res;
	event_base_loopbreak(o->base);
}

/* run_until - run base until o has its result, within WAIT_MS. */
static void run_until(struct event_base *base, struct outcome *o)
{
	long long deadline = dnsmasq_now_ms() + WAIT_MS;
	struct timeval tick = {0, 50000};

	while (o->calls == 0 && dnsmasq_now_ms() < deadline) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	assert_int_equal(o->calls, 1);
}

/* lookup - one mx_lookup (or mx_lookup_host) against servers, to the end. */
static void lookup(const char *servers, unsigned timeout_ms, int host_only, const char *name,
		   struct outcome *o)
{
	struct event_base *base = event_base_new();
	struct mx_resolver *r;
	char err[256];
	int in_call = 1;

	assert_non_null(base);
	r = mx_resolver_new(base, servers, timeout_ms, err, sizeof(err));
	assert_non_null(r);
	memset(o, 0, sizeof(*o));
	o->base = base;
	o->in_call = &in_call;
	if (host_only)
		mx_lookup_host(r, name, 2525, on_result, o);
	else
		mx_lookup(r, name, 2525, on_result, o);
	in_call = 0;
	run_until(base, o);
	o->in_call = NULL;
	mx_resolver_free(r);
	event_base_free(base);
}

/* addr_text - "host 127.0.0.1" of one result address; checks the port. */
static const char *addr_text(const struct mta_addr *a)
{
	static char out[512];
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->sa.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->sa;

		assert_int_equal(ntohs(sin->sin_port), 2525);
		assert_int_equal(a->salen, sizeof(*sin));
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->sa;

		assert_int_equal(a->sa.ss_family, AF_INET6);
		assert_int_equal(ntohs(sin6->sin6_port), 2525);
		assert_int_equal(a->salen, sizeof(*sin6));
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
	}
	snprintf(out, sizeof(out), "%s %s", a->host, ip);
	return out;
}

/* ---- the tests ----------------------------------------------------------- */

/* MX hosts come by preference, each with IPv4 before IPv6. */
static void test_preference_order(void **state)
{
	struct outcome o;

	lookup(dns.servers, 5000, 0, "two.test", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_string_equal(o.res.reason, "");
	assert_int_equal(o.res.naddrs, 3);
	assert_string_equal(addr_text(&o.res.addrs[0]), "mx1.two.test 127.0.0.11");
	assert_string_equal(addr_text(&o.res.addrs[1]), "mx2.two.test 127.0.0.12");
	assert_string_equal(addr_text(&o.res.addrs[2]), "mx2.two.test fd00::12");
}

/* Hosts of equal preference are both there, in either order over time. */
static void test_equal_preference_shuffled(void **state)
{
	int first_a = 0, first_b = 0, i;
	struct outcome o;

	for (i = 0; i < 64 && (first_a == 0 || first_b == 0); i++) {
		lookup(dns.servers, 5000, 0, "EQUAL.test.", &o);
		assert_int_equal(o.res.status, MX_OK);
		assert_int_equal(o.res.naddrs, 2);
		if (strcmp(addr_text(&o.res.addrs[0]), "a.equal.test 127.0.0.21") == 0) {
			assert_string_equal(addr_text(&o.res.addrs[1]), "b.equal.test 127.0.0.22");
			first_a++;
		} else {
			assert_string_equal(addr_text(&o.res.addrs[0]), "b.equal.test 127.0.0.22");
			assert_string_equal(addr_text(&o.res.addrs[1]), "a.equal.test 127.0.0.21");
			first_b++;
		}
	}
	assert_true(first_a > 0);
	assert_true(first_b > 0);
}

/* Without MX the domain's own addresses (RFC 5321 5.1). */
static void test_implicit_mx(void **state)
{
	struct outcome o;

	lookup(dns.servers, 5000, 0, "implicit.test", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_int_equal(o.res.naddrs, 2);
	assert_string_equal(addr_text(&o.res.addrs[0]), "implicit.test 127.0.0.31");
	assert_string_equal(addr_text(&o.res.addrs[1]), "implicit.test fd00::31");
}

/* An MX host with only an AAAA record, and the same host looked up alone. */
static void test_ipv6_only(void **state)
{
	struct outcome o;

	lookup(dns.servers, 5000, 0, "v6.test", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_int_equal(o.res.naddrs, 1);
	assert_string_equal(addr_text(&o.res.addrs[0]), "v6only.test fd00::41");
	lookup(dns.servers, 5000, 1, "v6only.test", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_int_equal(o.res.naddrs, 1);
	assert_string_equal(addr_text(&o.res.addrs[0]), "v6only.test fd00::41");
}

/* A null MX: the domain takes no mail. */
static void test_null_mx(void **state)
{
	struct outcome o;

	lookup(dns.servers, 5000, 0, "nullmx.test", &o);
	assert_int_equal(o.res.status, MX_NULL);
	assert_int_equal(o.res.naddrs, 0);
	assert_string_equal(o.res.reason, "nullmx.test: null MX: the domain accepts no mail");
}

/* Names that do not exist, or exist without anything to deliver to. */
static void test_not_found(void **state)
{
	struct outcome o;

	lookup(dns.servers, 5000, 0, "nope.test", &o);
	assert_int_equal(o.res.status, MX_NOTFOUND);
	assert_string_equal(o.res.reason, "nope.test: Host or domain name not found (NXDOMAIN)");
	lookup(dns.servers, 5000, 0, "empty.test", &o);
	assert_int_equal(o.res.status, MX_NOTFOUND);
	assert_string_equal(o.res.reason, "empty.test: no MX and no address");
	lookup(dns.servers, 5000, 0, "noaddr.test", &o);
	assert_int_equal(o.res.status, MX_NOTFOUND);
	assert_string_equal(o.res.reason, "noaddr.test: no MX host has an address (missing.test: "
					  "Host or domain name not found (NXDOMAIN))");
	lookup(dns.servers, 5000, 1, "nope.test", &o);
	assert_int_equal(o.res.status, MX_NOTFOUND);
	assert_string_equal(o.res.reason, "nope.test: Host or domain name not found (NXDOMAIN)");
	lookup(dns.servers, 5000, 1, "empty.test", &o);
	assert_int_equal(o.res.status, MX_NOTFOUND);
	assert_string_equal(o.res.reason, "empty.test: no address (no A or AAAA record)");
	lookup(dns.servers, 5000, 0, "bad..name", &o);
	assert_int_equal(o.res.status, MX_NOTFOUND);
	assert_string_equal(o.res.reason, "bad..name: not a valid domain name");
}

/* An MX host without an address is skipped, whatever the reason. */
static void test_unusable_hosts_skipped(void **state)
{
	struct outcome o;

	lookup(dns.servers, 5000, 0, "mixed.test", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_int_equal(o.res.naddrs, 1);
	assert_string_equal(addr_text(&o.res.addrs[0]), "live.test 127.0.0.51");
	lookup(dns.servers, 5000, 0, "halftemp.test", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_int_equal(o.res.naddrs, 1);
	assert_string_equal(addr_text(&o.res.addrs[0]), "live.test 127.0.0.51");
}

/* Failures of the servers are temporary: REFUSED for the MX query, or for
 * every MX host's addresses. */
static void test_server_failures_defer(void **state)
{
	struct outcome o;

	/* c-ares 1.18 reports a server's REFUSED as ARES_ECONNREFUSED, later
	 * versions as ARES_EREFUSED: the wording may vary, not the status */
	lookup(dns.servers, 5000, 0, "example.invalid", &o);
	assert_int_equal(o.res.status, MX_TEMPFAIL);
	assert_int_equal(strncmp(o.res.reason, "example.invalid: DNS ", 21), 0);
	lookup(dns.servers, 5000, 0, "temp.test", &o);
	assert_int_equal(o.res.status, MX_TEMPFAIL);
	assert_int_equal(strncmp(o.res.reason, "temp.test: no MX host has an address "
				 "(mx.elsewhere.invalid: DNS ", 64), 0);
}

/* silent_socket - a bound loopback UDP socket that never answers; its port. */
static int silent_socket(unsigned *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A server that never answers: a temporary failure, within the timeout. */
static void test_timeout(void **state)
{
	char servers[64];
	struct outcome o;
	unsigned port;
	long long t0, took;
	int fd = silent_socket(&port);

	snprintf(servers, sizeof(servers), "127.0.0.1:%u", port);
	t0 = dnsmasq_now_ms();
	lookup(servers, 500, 0, "slow.test", &o);
	took = dnsmasq_now_ms() - t0;
	assert_int_equal(o.res.status, MX_TEMPFAIL);
	assert_string_equal(o.res.reason, "slow.test: DNS lookup timed out");
	assert_true(took >= 400);
	assert_true(took < 2000);
	t0 = dnsmasq_now_ms();
	lookup(servers, 500, 1, "relay.test", &o);
	took = dnsmasq_now_ms() - t0;
	assert_int_equal(o.res.status, MX_TEMPFAIL);
	assert_string_equal(o.res.reason, "relay.test: DNS lookup timed out");
	assert_true(took < 2000);
	close(fd);
}

/* Literal addresses need no DNS, and still answer through the loop. */
static void test_literals(void **state)
{
	struct outcome o;

	/* no server would answer: nothing may be asked */
	lookup("127.0.0.1:9", 500, 1, "192.0.2.7", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_int_equal(o.res.naddrs, 1);
	assert_string_equal(addr_text(&o.res.addrs[0]), "192.0.2.7 192.0.2.7");
	lookup("127.0.0.1:9", 500, 1, "2001:db8::7", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_string_equal(addr_text(&o.res.addrs[0]), "2001:db8::7 2001:db8::7");
	lookup("127.0.0.1:9", 500, 0, "[192.0.2.8]", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_string_equal(addr_text(&o.res.addrs[0]), "[192.0.2.8] 192.0.2.8");
	lookup("127.0.0.1:9", 500, 0, "[IPv6:2001:db8::8]", &o);
	assert_int_equal(o.res.status, MX_OK);
	assert_string_equal(addr_text(&o.res.addrs[0]), "[IPv6:2001:db8::8] 2001:db8::8");
	lookup("127.0.0.1:9", 500, 0, "[300.1.1.1]", &o);
	assert_int_equal(o.res.status, MX_NOTFOUND);
}

static int never_called;

static void on_never(void *arg, const struct mx_result *res)
{
	never_called++;
}

/* Freeing the resolver cancels its lookups: no callback, nothing leaks
 * (the sanitizer build checks the latter). */
static void test_free_with_pending(void **state)
{
	struct event_base *base = event_base_new();
	struct timeval tv = {0, 300000};
	struct mx_resolver *r;
	char servers[160], err[256];
	unsigned port;
	int fd = silent_socket(&port);

	snprintf(servers, sizeof(servers), "127.0.0.1:%u %s", port, dns.servers);
	never_called = 0;
	r = mx_resolver_new(base, servers, 5000, err, sizeof(err));
	assert_non_null(r);
	mx_lookup(r, "two.test", 25, on_never, NULL);
	mx_lookup(r, "nope.test", 25, on_never, NULL);
	mx_lookup_host(r, "relay.test", 25, on_never, NULL);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base); /* the silent server holds the queries */
	mx_lookup(r, "implicit.test", 25, on_never, NULL);
	mx_lookup_host(r, "192.0.2.1", 25, on_never, NULL); /* its result is due */
	mx_resolver_free(r);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	assert_int_equal(never_called, 0);
	event_base_free(base);
	close(fd);
}

struct freeing {
	struct mx_resolver *r;
	int calls;
};

/* on_result_free - the first result frees the resolver. */
static void on_result_free(void *arg, const struct mx_result *res)
{
	struct freeing *f = arg;

	f->calls++;
	mx_resolver_free(f->r);
}

/* A callback may free the resolver, with other lookups under way. */
static void test_free_from_callback(void **state)
{
	struct event_base *base = event_base_new();
	struct timeval tv = {0, 500000};
	struct freeing f = {NULL, 0};
	char servers[64], err[256];
	unsigned port;
	int fd = silent_socket(&port);

	snprintf(servers, sizeof(servers), "127.0.0.1:%u", port);
	never_called = 0;
	f.r = mx_resolver_new(base, servers, 5000, err, sizeof(err));
	assert_non_null(f.r);
	mx_lookup(f.r, "slow.test", 25, on_never, NULL);
	mx_lookup_host(f.r, "192.0.2.1", 25, on_result_free, &f);
	mx_lookup_host(f.r, "slow.test", 25, on_never, NULL);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	assert_int_equal(f.calls, 1);
	assert_int_equal(never_called, 0);
	event_base_free(base);
	close(fd);
}

/* The same, from the callback of a lookup its deadline ended while c-ares
 * still holds its queries (two silent servers: c-ares gives up on them
 * only after the deadline). Both lookups end at about the same time:
 * whichever is called first frees the resolver, the other is not called. */
static void test_free_from_callback_after_deadline(void **state)
{
	struct event_base *base = event_base_new();
	struct timeval tv = {1, 0};
	struct freeing f = {NULL, 0};
	char servers[64], err[256];
	unsigned port1, port2;
	int fd1 = silent_socket(&port1), fd2 = silent_socket(&port2);
	long long t0 = dnsmasq_now_ms();

	snprintf(servers, sizeof(servers), "127.0.0.1:%u 127.0.0.1:%u", port1, port2);
	f.r = mx_resolver_new(base, servers, 300, err, sizeof(err));
	assert_non_null(f.r);
	mx_lookup(f.r, "slow.test", 25, on_result_free, &f);
	mx_lookup(f.r, "other.test", 25, on_result_free, &f);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	assert_int_equal(f.calls, 1);
	assert_true(dnsmasq_now_ms() - t0 >= 900); /* nothing of the resolver ended the loop early */
	event_base_free(base);
	close(fd1);
	close(fd2);
}

/* Bad server lists are refused with a reason. */
static void test_bad_servers(void **state)
{
	struct event_base *base = event_base_new();
	char err[256] = "";

	assert_null(mx_resolver_new(base, "127.0.0.1:99999", 1000, err, sizeof(err)));
	assert_non_null(strstr(err, "dns_servers: \"127.0.0.1:99999\""));
	assert_null(mx_resolver_new(base, "mx.example.org", 1000, err, sizeof(err)));
	assert_non_null(strstr(err, "is not an IP address"));
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_preference_order),
		cmocka_unit_test(test_equal_preference_shuffled),
		cmocka_unit_test(test_implicit_mx),
		cmocka_unit_test(test_ipv6_only),
		cmocka_unit_test(test_null_mx),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_unusable_hosts_skipped),
		cmocka_unit_test(test_server_failures_defer),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_free_with_pending),
		cmocka_unit_test(test_free_from_callback),
		cmocka_unit_test(test_free_from_callback_after_deadline),
		cmocka_unit_test(test_bad_servers),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, start_dns, stop_dns);
}
