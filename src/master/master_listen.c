/*
 * master_listen.c - the master's listeners: binding each listener address,
 * accepting in batches and handing each connection to the session pool
 * (master_pool.c), which enforces the limits (a refused client costs a
 * write and a close). A reload may change a listener's settings but not
 * its sockets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "evloop.h"
#include "ipc.h"
#include "log.h"
#include "master.h"
#include "master_internal.h"
#include "queue.h"
#include "rules.h"
#include <sys/stat.h>

#include "control.h"
#include "delivery.h"
#include "sandbox.h"
#include "smtpd_auth.h"
#include "tls_server.h"
#include "smtpd_session.h"
#include "spool.h"
#include "syscall_filter.h"

/* master_split_address - "host:port" or "[v6]:port" into its parts. */
static int master_split_address(const char *address, char *host, size_t hostlen, char *port,
                                size_t portlen)
{
	const char *colon;
	size_t n;

	if (address[0] == '[') {
		const char *end = strchr(address, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		n = (size_t)(end - address - 1);
		colon = end + 1;
		address++;
	} else {
		if ((colon = strrchr(address, ':')) == NULL)
			return -1;
		n = (size_t)(colon - address);
	}
	if (n >= hostlen || strlen(colon + 1) >= portlen)
		return -1;
	memcpy(host, address, n);
	host[n] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

/* master_listen - bind and listen on one address; the fd or -1 (logged). */
int master_listen(const char *address, const char *name)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	char host[INET6_ADDRSTRLEN], port[8];
	int fd = -1, one = 1, rc;

	if (master_split_address(address, host, sizeof(host), port, sizeof(port)) < 0 ||
	    (rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
		log_err("[listener:%s] %s: not an address:port", name, address);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (ai->ai_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, MASTER_LISTEN_BACKLOG) < 0) {
		log_err("[listener:%s] cannot listen on %s: %s", name, address, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* master_client_ip - the text form of a peer address. */
static void master_client_ip(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, len);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, len);
	else
		snprintf(buf, len, "unknown");
}

/*
 * master_listener_conf - the current settings of a listener: its sockets
 * stay as they were opened, but a reload may change its tls and auth.
 */
const struct listener_config *master_listener_conf(const struct config *cfg,
                                                   const struct listener_config *boot)
{
	size_t i;

	for (i = 0; i < cfg->nlisteners; i++)
		if (strcmp(cfg->listeners[i].name, boot->name) == 0 &&
		    strcmp(cfg->listeners[i].kind, boot->kind) == 0)
			return &cfg->listeners[i];
	return boot;
}

/* master_session_unix - whether a session of lc may make Unix sockets:
 * Cyrus's saslauthd client connects to saslauthd's, and the rules call a
 * [service:NAME] at a Unix socket path (any listener's rules may). */
int master_session_unix(const struct config *cfg, const struct listener_config *lc)
{
	size_t i;

	for (i = 0; i < cfg->nservice; i++)
		if (config_service_is_unix(cfg->service[i].address))
			return 1;
	return lc->auth != LISTENER_AUTH_NO && cfg->auth_backend == AUTH_BACKEND_SASLAUTHD;
}

/* master_accept_cb - new connections on a listener. */
void master_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct master_listener *l = arg;
	struct sockaddr_storage ss;
	char ip[INET6_ADDRSTRLEN];
	socklen_t len;
	int i, fd;

	for (i = 0; i < MASTER_ACCEPT_BATCH && !l->m->stopping; i++) {
		len = sizeof(ss);
		fd = accept4((int)lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_err("accept on %s: %s", l->address, strerror(errno));
			return;
		}
		master_client_ip(&ss, ip, sizeof(ip));
		master_pool_assign(l->m, l, fd, ip);
	}
}
