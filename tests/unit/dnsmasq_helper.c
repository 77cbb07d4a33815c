/*
 * dnsmasq_helper.c - Debian's dnsmasq as the unit tests' DNS server (see
 * dnsmasq_helper.h): a free port, the process started with the zone as
 * options, a query to see it answer, and its stop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dnsmasq_helper.h"

#define DNSMASQ_ARGS_MAX 96 /* zone options */

/* dnsmasq_now_ms - a monotonic clock. */
long long dnsmasq_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* dnsmasq_free_port - a loopback port free right now for both UDP and TCP. */
unsigned dnsmasq_free_port(void)
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

/* dnsmasq_answers - whether a server answers a query on 127.0.0.1:port within ms. */
int dnsmasq_answers(unsigned port, int ms)
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
pid_t dnsmasq_spawn(const char *binary, unsigned port, const char *const *zone, size_t nzone,
		    const char *log)
{
	static char args[DNSMASQ_ARGS_MAX][256], logarg[300];
	char *argv[DNSMASQ_ARGS_MAX + 16], portarg[32];
	size_t n = 0, i;
	pid_t pid;
	int fd;

	snprintf(portarg, sizeof(portarg), "--port=%u", port);
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
	argv[n++] = (char *)"--local=/test/";
	if (log != NULL) {
		snprintf(logarg, sizeof(logarg), "--log-facility=%s", log);
		argv[n++] = (char *)"--log-queries";
		argv[n++] = logarg;
	}
	for (i = 0; i < nzone && i < DNSMASQ_ARGS_MAX; i++) {
		snprintf(args[i], sizeof(args[i]), "--%s", zone[i]);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	if ((pid = fork()) != 0)
		return pid;
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
void dnsmasq_stop(pid_t pid)
{
	long long deadline = dnsmasq_now_ms() + 5000;
	int status;

	kill(pid, SIGTERM);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (dnsmasq_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return;
		}
		usleep(10000);
	}
}

/* dnsmasq_start - see dnsmasq_helper.h. */
pid_t dnsmasq_start(const char *const *zone, size_t n, const char *log, unsigned *port)
{
	const char *binary = access("/usr/sbin/dnsmasq", X_OK) == 0 ? "/usr/sbin/dnsmasq"
								      : "/sbin/dnsmasq";
	long long deadline;
	int attempt, status;
	pid_t pid;

	if (access(binary, X_OK) != 0) {
		fprintf(stderr, "dnsmasq is not installed (Debian package dnsmasq-base)\n");
		return -1;
	}
	for (attempt = 0; attempt < 3; attempt++) {
		if ((*port = dnsmasq_free_port()) == 0 ||
		    (pid = dnsmasq_spawn(binary, *port, zone, n, log)) < 0)
			continue;
		deadline = dnsmasq_now_ms() + DNSMASQ_WAIT_MS;
		while (dnsmasq_now_ms() < deadline && waitpid(pid, &status, WNOHANG) == 0)
			if (dnsmasq_answers(*port, 100))
				return pid;
		dnsmasq_stop(pid);
	}
	fprintf(stderr, "dnsmasq did not start\n");
	return -1;
}
