/*
 * helper_dnsmasq.h - a real DNS server for unit tests: Debian's dnsmasq
 * (package dnsmasq-base), started on a free loopback port as an
 * authoritative-only server for one domain (NXDOMAIN for unknown names
 * there, REFUSED for every other name, as it has no upstream), and
 * stopped by the test. Shared by the tests that need one.
 */
#ifndef VSMTPD_TEST_HELPER_DNSMASQ_H
#define VSMTPD_TEST_HELPER_DNSMASQ_H

#include <stddef.h>
#include <sys/types.h>

struct dnsmasq {
	const char *log;  /* set before the start: a file that logs every query, or NULL */
	pid_t pid;
	unsigned port;
	char servers[64]; /* "127.0.0.1:port" */
};

/* test_now_ms - a monotonic clock, in milliseconds. */
long long test_now_ms(void);

/*
 * dnsmasq_start - dnsmasq serving the names under domain ("test") from
 * options (dnsmasq options without their leading "--": "txt-record=...",
 * "mx-host=...", ...), answering within 10 s; retried when the port was
 * taken in between. 0, or -1 with the reason on stderr.
 */
int dnsmasq_start(struct dnsmasq *d, const char *domain, const char *const *options, size_t n);

/* dnsmasq_stop - SIGTERM, then SIGKILL if it lingers. */
void dnsmasq_stop(struct dnsmasq *d);

#endif
