/*
 * helper_dnsmasq.c - dnsmasq as the unit tests' DNS server (see
 * helper_dnsmasq.h): a free port, the server spawned with its zone given
 * as options, and a probe query until it answers.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helper_dnsmasq.h"

#define DNSMASQ_WAIT_MS 10000
#define DNSMASQ_ARGS_MAX 128

/* test_now_ms - CLOCK_MONOTONIC in milliseconds. */
long long test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* free_port - a loopback port free right now for both UDP and TCP. */
static unsigned free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	unsigned port = 0;
	int u, t;

	u = socket(AF_INET, SOCK_DGRAM, 0);
	t = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(u, (struct sockaddr *)&sa, &len) == 0 &&
	    bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		port = ntohs(sa.sin_port);
	close(u);
	close(t);
	return port;
}

/* dns_answers - whether a server answers a query on 127.0.0.1:port within ms. */
static int dns_answers(unsigned port, int ms)
{
	static const unsigned char query[] = {
		0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		5, 'r', 'e', 'a', 'd', 'y', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
	struct sockaddr_in sa;
	unsigned char buf[512];
	struct pollfd p;
	int fd, ok = 0;

	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (sendto(fd, query, sizeof(query), 0, (struct sockaddr *)&sa, sizeof(sa)) ==
	    (ssize_t)sizeof(query)) {
		p.fd = fd;
		p.events = POLLIN;
		ok = poll(&p, 1, ms) == 1 && recv(fd, buf, sizeof(buf), 0) >= 12;
	}
	close(fd);
	return ok;
}

/* dnsmasq_spawn - start dnsmasq on port; its pid, or -1. */
static pid_t dnsmasq_spawn(const char *binary, unsigned port, const char *domain,
			   const char *const *options, size_t nopt, const char *log)
{
	char *argv[DNSMASQ_ARGS_MAX], portarg[32], local[300], logarg[4200];
	size_t n = 0, i;
	pid_t pid;
	int fd;

	snprintf(portarg, sizeof(portarg), "--port=%u", port);
	snprintf(local, sizeof(local), "--local=/%s/", domain);
	argv[n++] = (char *)binary;
	argv[n++] = (char *)"--keep-in-foreground";
	argv[n++] = (char *)"--no-resolv";
	argv[n++] = (char *)"--no-hosts";
	argv[n++] = (char *)"--bind-interfaces";
	argv[n++] = (char *)"--listen-address=127.0.0.1";
	argv[n++] = portarg;
	argv[n++] = (char *)"--conf-file=/dev/null";
	argv[n++] = (char *)"--pid-file=";
	argv[n++] = (char *)"--cache-size=0";
	argv[n++] = local;
	if (log != NULL) {
		snprintf(logarg, sizeof(logarg), "--log-facility=%s", log);
		argv[n++] = (char *)"--log-queries";
		argv[n++] = logarg;
	}
	if ((pid = fork()) != 0)
		return pid;
	for (i = 0; i < nopt && n + 2 < DNSMASQ_ARGS_MAX; i++)
		if (asprintf(&argv[n++], "--%s", options[i]) < 0)
			_exit(127);
	argv[n] = NULL;
	setsid();
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execv(binary, argv);
	_exit(127);
}

/* dnsmasq_stop - SIGTERM, then SIGKILL if it lingers. */
void dnsmasq_stop(struct dnsmasq *d)
{
	long long deadline = test_now_ms() + 5000;
	int status;

	if (d->pid <= 0)
		return;
	kill(d->pid, SIGTERM);
	while (waitpid(d->pid, &status, WNOHANG) == 0) {
		if (test_now_ms() > deadline) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
			break;
		}
		usleep(10000);
	}
	d->pid = 0;
}

/* dnsmasq_start - see helper_dnsmasq.h. */
int dnsmasq_start(struct dnsmasq *d, const char *domain, const char *const *options, size_t n)
{
	const char *binary = access("/usr/sbin/dnsmasq", X_OK) == 0 ? "/usr/sbin/dnsmasq"
								      : "/sbin/dnsmasq";
	long long deadline;
	int attempt, status;

	if (access(binary, X_OK) != 0) {
		fprintf(stderr, "dnsmasq is not installed (Debian package dnsmasq-base)\n");
		return -1;
	}
	for (attempt = 0; attempt < 3; attempt++) {
		if ((d->port = free_port()) == 0 ||
		    (d->pid = dnsmasq_spawn(binary, d->port, domain, options, n, d->log)) < 0)
			continue;
		deadline = test_now_ms() + DNSMASQ_WAIT_MS;
		while (test_now_ms() < deadline && waitpid(d->pid, &status, WNOHANG) == 0) {
			if (dns_answers(d->port, 100)) {
				snprintf(d->servers, sizeof(d->servers), "127.0.0.1:%u", d->port);
				return 0;
			}
		}
		dnsmasq_stop(d);
	}
	fprintf(stderr, "dnsmasq did not start\n");
	return -1;
}
