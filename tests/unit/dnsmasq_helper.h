/*
 * dnsmasq_helper.h - Debian's dnsmasq (package dnsmasq-base) as a DNS
 * server for the unit tests: authoritative-only for the names under
 * "test" (NXDOMAIN for the others there, REFUSED for every other name, as
 * it has no upstream), on a free loopback port, with the zone given as
 * dnsmasq options. Linked into the tests that name it in CMakeLists.txt
 * (VSMTPD_TESTS_HELPERS_<test>).
 */
#ifndef VSMTPD_TEST_DNSMASQ_HELPER_H
#define VSMTPD_TEST_DNSMASQ_HELPER_H

#include <stddef.h>
#include <sys/types.h>

#define DNSMASQ_WAIT_MS 10000 /* the longest the start may take */

/* dnsmasq_now_ms - a monotonic clock. */
long long dnsmasq_now_ms(void);

/* dnsmasq_free_port - a loopback port free right now for UDP and TCP; 0 on failure. */
unsigned dnsmasq_free_port(void);

/* dnsmasq_answers - whether a server answers a query on 127.0.0.1:port within ms. */
int dnsmasq_answers(unsigned port, int ms);

/*
 * dnsmasq_spawn - start binary on port with the zone (n options without
 * their leading "--"); with log set, every query is logged to that file.
 * Its pid, or -1.
 */
pid_t dnsmasq_spawn(const char *binary, unsigned port, const char *const *zone, size_t n,
		    const char *log);

/* dnsmasq_stop - SIGTERM, then SIGKILL if it lingers. */
void dnsmasq_stop(pid_t pid);

/*
 * dnsmasq_start - dnsmasq on a free port, answering (retried when the port
 * was taken in between); *port gets the port. Its pid, or -1 with a line
 * on stderr.
 */
pid_t dnsmasq_start(const char *const *zone, size_t n, const char *log, unsigned *port);

#endif
