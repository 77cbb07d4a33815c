/*
 * master_listen.c - the master's listeners and session processes: binding
 * each listener address, accepting in batches, enforcing the global and
 * per-client-address session limits before forking (a refused client costs
 * a write and a close), and forking one session process per connection,
 * which confines itself before it reads a byte from its client.
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

/* master_refuse - answer a connection we will not serve, and close it. */
static void master_refuse(int fd, const char *reply)
{
	if (send(fd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("cannot send refusal: %s", strerror(errno));
	close(fd);
}

/* master_sessions_from - how many sessions the client address has. */
static unsigned master_sessions_from(const struct master *m, const char *ip)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < m->nsessions; i++)
		if (strcmp(m->sessions[i].ip, ip) == 0)
			n++;
	return n;
}

/* master_session_add - record a running session. 0 or -1. */
static int master_session_add(struct master *m, pid_t pid, const char *ip)
{
	struct master_session *s;

	if (m->nsessions == m->sessions_cap) {
		size_t cap = m->sessions_cap ? m->sessions_cap * 2 : 64;

		if ((s = realloc(m->sessions, cap * sizeof(*s))) == NULL)
			return -1;
		m->sessions = s;
		m->sessions_cap = cap;
	}
	s = &m->sessions[m->nsessions++];
	s->pid = pid;
	snprintf(s->ip, sizeof(s->ip), "%s", ip);
	return 0;
}

/* master_session_remove - forget a session that has exited. 1 if it was one. */
int master_session_remove(struct master *m, pid_t pid)
{
	size_t i;

	for (i = 0; i < m->nsessions; i++)
		if (m->sessions[i].pid == pid) {
			m->sessions[i] = m->sessions[--m->nsessions];
			return 1;
		}
	return 0;
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
 * Cyrus's saslauthd client connects to saslauthd's. */
int master_session_unix(const struct config *cfg, const struct listener_config *lc)
{
	return lc->auth != LISTENER_AUTH_NO && cfg->auth_backend == AUTH_BACKEND_SASLAUTHD;
}

/*
 * master_session_child - in a new session process: confine it (Landlock,
 * then the seccomp filter the master made), then serve the client. The
 * master said at start what sessions get and what the kernel lacks
 * (master_sandbox).
 */
static void master_session_child(struct master *m, const struct listener_config *lc, int fd,
                                 int channel)
{
	const struct sysfilter_prog *filter = m->session_filter[master_session_unix(m->cfg, lc)];

	log_set_role("smtp");
	if (sandbox_enter(m->sandbox_fd) < 0)
		fatal("cannot confine the session: %s", strerror(errno));
	if (m->sandbox_fd >= 0)
		close(m->sandbox_fd);
	if (filter != NULL && sysfilter_load(filter) < 0)
		fatal("cannot install the session's seccomp filter: %s", strerror(errno));
	smtpd_session_main(m->cfg, lc, m->rules, m->tls, fd, channel);
}

/* master_session_start - check the limits and fork a session for fd. */
static void master_session_start(struct master *m, struct master_listener *l, int fd,
                                 const char *ip)
{
	const struct config *cfg = m->cfg;
	struct ipc_msg msg = {.type = IPC_SESSION_CHANNEL};
	char reply[512];
	int sp[2];
	pid_t pid;

	/* Under a burst the accepts can run ahead of SIGCHLD: sessions that
	 * have already exited must not count against the limits. */
	if (m->nsessions >= cfg->max_sessions ||
	    master_sessions_from(m, ip) >= cfg->max_sessions_per_ip)
		master_reap(m);
	if (m->nsessions >= cfg->max_sessions) {
		log_warn("refusing %s: %zu sessions, the limit", ip, m->nsessions);
		snprintf(reply, sizeof(reply),
		         "421 4.7.0 %s Error: too many connections, try again later\r\n",
		         cfg->hostname);
		master_refuse(fd, reply);
		return;
	}
	if (master_sessions_from(m, ip) >= cfg->max_sessions_per_ip) {
		log_warn("refusing %s: %u sessions from that address, the limit", ip,
		         cfg->max_sessions_per_ip);
		snprintf(reply, sizeof(reply),
		         "421 4.7.0 %s Error: too many connections from %s\r\n", cfg->hostname, ip);
		master_refuse(fd, reply);
		return;
	}
	if (m->queue_ctl < 0 || ipc_socketpair(sp) < 0) {
		snprintf(reply, sizeof(reply),
		         "421 4.3.0 %s Error: service temporarily unavailable\r\n", cfg->hostname);
		master_refuse(fd, reply);
		return;
	}
	if (ipc_send(m->queue_ctl, &msg, sp[1]) < 0) {
		log_err("cannot reach the queue process: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		snprintf(reply, sizeof(reply),
		         "421 4.3.0 %s Error: service temporarily unavailable\r\n", cfg->hostname);
		master_refuse(fd, reply);
		return;
	}
	close(sp[1]);
	pid = master_fork(m, (const int[]){fd, sp[0], m->sandbox_fd}, m->sandbox_fd >= 0 ? 3 : 2);
	if (pid == 0)
		master_session_child(m, master_listener_conf(cfg, l->conf), fd, sp[0]);
	close(sp[0]);
	close(fd);
	if (pid < 0) {
		log_err("cannot fork a session: %s", strerror(errno));
		return;
	}
	if (master_session_add(m, pid, ip) < 0)
		log_err("out of memory tracking session %d", (int)pid);
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
		master_session_start(l->m, l, fd, ip);
	}
}
