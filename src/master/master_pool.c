/*
 * master_pool.c - the pool of session processes.
 *
 * Like Postfix's smtpd and Apache's prefork, the master keeps session
 * processes forked in advance: each serves one connection at a time and,
 * in its life, up to [limits] max_use of them (1: one process per
 * connection, the strict model). A connection goes to an idle process
 * with its socket, a fresh channel to the queue and the listener it came
 * in on (smtpd_worker.c); the greeting waits for no fork when a spare one
 * is ready. The master keeps [limits] spare_processes idle ones, forks
 * more as connections need them, and lets idle ones past the spare count
 * exit after [timeouts] max_idle seconds.
 *
 * A process is confined once, when it starts: Landlock, then one of the
 * two seccomp filters (with Unix sockets only for a listener whose AUTH
 * goes through saslauthd). So a process serves only listeners of its own
 * filter, and spares are kept for each filter some listener needs.
 *
 * The limits count connections: max_sessions busy processes at most (and
 * no more processes than that in all, idle ones included), and
 * max_sessions_per_ip connections from one address, the address being
 * that of the connection a process serves now. A process is replaced
 * after max_use connections, on reload (one at work finishes its
 * connection with the old configuration and rules first), and when it
 * dies: a crash or a time_limit kill loses its one connection only.
 *
 * Every five minutes with traffic, and when stopping, a line of counts
 * helps size the pool: connections, the most busy at once, processes
 * started, connections that waited for a fork, connections refused at the
 * limits.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "log.h"
#include "master_internal.h"
#include "rules.h"
#include "sandbox.h"
#include "smtpd_session.h"

#define MASTER_POOL_STATS_EVERY 300 /* seconds between the pool's count lines */

/* master_now - seconds on the monotonic clock. */
static time_t master_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* master_pool_filter - the filter (0 or 1: Unix sockets) listener i needs. */
static int master_pool_filter(const struct master *m, size_t i)
{
	return master_session_unix(m->cfg, master_listener_conf(m->cfg, m->listeners[i].conf));
}

/*
 * master_pool_child - in a new session process: confine it (Landlock, then
 * the seccomp filter the master made), then serve what the master hands
 * over. The master said at start what sessions get and what the kernel
 * lacks (master_sandbox).
 */
static void master_pool_child(struct master *m, int unix_socks, int channel)
{
	const struct sysfilter_prog *filter = m->session_filter[unix_socks];
	const struct listener_config *lcs[sizeof(m->listeners) / sizeof(m->listeners[0])];
	size_t i;

	log_set_role("smtp");
	if (sandbox_enter(m->sandbox_fd) < 0)
		fatal("cannot confine the session: %s", strerror(errno));
	if (m->sandbox_fd >= 0)
		close(m->sandbox_fd);
	if (filter != NULL && sysfilter_load(filter) < 0)
		fatal("cannot install the session's seccomp filter: %s", strerror(errno));
	for (i = 0; i < m->nlisteners; i++)
		lcs[i] = master_listener_conf(m->cfg, m->listeners[i].conf);
	smtpd_worker_main(m->cfg, lcs, m->nlisteners, m->rules, m->tls, channel);
}

/* master_pool_close - close a process's channel: it exits once its
 * connection is over (at once when idle). Reaping forgets it. */
static void master_pool_close(struct master_worker *w)
{
	if (w->fd < 0)
		return;
	event_free(w->ev);
	w->ev = NULL;
	close(w->fd);
	w->fd = -1;
	w->busy = 0;
	w->ip[0] = '\0';
}

/* master_pool_retire - end a process on the master's own account. */
static void master_pool_retire(struct master_worker *w)
{
	if (w->fd >= 0)
		w->retired = 1;
	master_pool_close(w);
}

/* master_pool_reusable - whether a process that finished a connection may
 * serve another. */
static int master_pool_reusable(const struct master *m, const struct master_worker *w)
{
	return !m->stopping && w->generation == m->generation && w->uses < m->cfg->max_use;
}

/* master_pool_cb - a record from a session process: it is ready again. */
static void master_pool_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master_worker *w = arg;
	struct master *m = w->m;
	struct ipc_msg msg;
	int passfd, rc;

	while ((rc = ipc_recv(w->fd, &msg, &passfd)) > 0) {
		if (passfd >= 0)
			close(passfd);
		if (msg.type != IPC_POOL_DONE || !w->busy) {
			log_err("session process %d: unexpected record %u: replacing it",
				(int)w->pid, (unsigned)msg.type);
			kill(w->pid, SIGKILL);
			master_pool_retire(w);
			return;
		}
		w->busy = 0;
		w->ip[0] = '\0';
		w->idle_since = master_now();
		m->pool_failures = 0;
		if (!master_pool_reusable(m, w)) {
			master_pool_retire(w);
			break;
		}
	}
	if (rc == 0 || (rc < 0 && errno != EAGAIN))
		master_pool_close(w); /* gone: SIGCHLD follows */
	master_pool_fill(m);
}

/* master_pool_poll - read what the busy processes have said so far. */
static void master_pool_poll(struct master *m)
{
	size_t i;

	for (i = 0; i < m->nworkers; i++)
		if (m->workers[i]->busy && m->workers[i]->fd >= 0)
			master_pool_cb(m->workers[i]->fd, EV_READ, m->workers[i]);
}

/* master_pool_fork - start a session process for filter unix_socks; NULL
 * when it cannot be (logged). */
static struct master_worker *master_pool_fork(struct master *m, int unix_socks)
{
	int keep[3];
	size_t nkeep = 1;
	struct master_worker *w, **grown;
	int sp[2];
	pid_t pid;

	if (m->nworkers == m->workers_cap) {
		size_t cap = m->workers_cap ? m->workers_cap * 2 : 64;

		if ((grown = realloc(m->workers, cap * sizeof(*grown))) == NULL)
			return NULL;
		m->workers = grown;
		m->workers_cap = cap;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	if (ipc_socketpair(sp) < 0) {
		log_err("cannot start a session process: %s", strerror(errno));
		free(w);
		return NULL;
	}
	keep[0] = sp[1];
	if (m->sandbox_fd >= 0)
		keep[nkeep++] = m->sandbox_fd;
	pid = master_fork(m, keep, master_runner_keep(m, keep, nkeep));
	if (pid == 0)
		master_pool_child(m, unix_socks, sp[1]);
	close(sp[1]);
	if (pid < 0) {
		log_err("cannot fork a session process: %s", strerror(errno));
		close(sp[0]);
		free(w);
		return NULL;
	}
	*w = (struct master_worker){.m = m,
				    .pid = pid,
				    .fd = sp[0],
				    .unix_socks = unix_socks,
				    .generation = m->generation,
				    .idle_since = master_now()};
	w->ev = event_new(m->base, sp[0], EV_READ | EV_PERSIST, master_pool_cb, w);
	if (w->ev == NULL || event_priority_set(w->ev, 0) < 0 || event_add(w->ev, NULL) < 0) {
		log_err("cannot watch session process %d: ending it", (int)pid);
		if (w->ev != NULL)
			event_free(w->ev);
		close(sp[0]);
		w->fd = -1;
		w->ev = NULL;
		kill(pid, SIGKILL);
	}
	m->workers[m->nworkers++] = w;
	m->pool_stats.started++;
	log_debug("session process %d started", (int)pid);
	return w->fd >= 0 ? w : NULL;
}

/* master_pool_counts - the live processes (not retired), the busy ones, and
 * the idle ones of filter unix_socks. */
static void master_pool_counts(const struct master *m, int unix_socks, size_t *live,
			       size_t *busy, size_t *idle)
{
	size_t i;

	*live = *busy = *idle = 0;
	for (i = 0; i < m->nworkers; i++) {
		const struct master_worker *w = m->workers[i];

		if (w->fd < 0)
			continue;
		(*live)++;
		if (w->busy)
			(*busy)++;
		else if (w->unix_socks == unix_socks && w->generation == m->generation)
			(*idle)++;
	}
}

/* master_pool_fill - fork spare processes up to spare_processes idle ones for
 * each filter a listener needs, within max_sessions processes in all. */
void master_pool_fill(struct master *m)
{
	size_t live, busy, idle, i;
	int needed[2] = {0, 0}, v;

	if (m->stopping || m->queue_ctl < 0 || master_now() < m->pool_fill_after)
		return;
	for (i = 0; i < m->nlisteners; i++)
		needed[master_pool_filter(m, i)] = 1;
	for (v = 0; v < 2; v++) {
		if (!needed[v])
			continue;
		master_pool_counts(m, v, &live, &busy, &idle);
		while (idle < m->cfg->spare_processes && live < m->cfg->max_sessions &&
		       master_pool_fork(m, v) != NULL) {
			idle++;
			live++;
		}
	}
}

/* master_pool_idle - an idle process of filter unix_socks, the most
 * recently used (its memory is the warmest); NULL when none is. */
static struct master_worker *master_pool_idle(struct master *m, int unix_socks)
{
	struct master_worker *best = NULL;
	size_t i;

	for (i = 0; i < m->nworkers; i++) {
		struct master_worker *w = m->workers[i];

		if (w->fd >= 0 && !w->busy && w->unix_socks == unix_socks &&
		    w->generation == m->generation &&
		    (best == NULL || w->idle_since >= best->idle_since))
			best = w;
	}
	return best;
}

/* master_pool_make_room - at max_sessions processes with none idle for this
 * filter: retire an idle one of the other filter, or of an old generation. */
static void master_pool_make_room(struct master *m)
{
	size_t i;

	for (i = 0; i < m->nworkers; i++)
		if (m->workers[i]->fd >= 0 && !m->workers[i]->busy) {
			master_pool_retire(m->workers[i]);
			return;
		}
}

/* master_pool_sessions_from - the connections being served for ip. */
static unsigned master_pool_sessions_from(const struct master *m, const char *ip)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < m->nworkers; i++)
		if (m->workers[i]->busy && strcmp(m->workers[i]->ip, ip) == 0)
			n++;
	return n;
}

/* The replies to a connection the pool will not serve. */
enum master_refusal { REFUSE_BUSY, REFUSE_PER_IP, REFUSE_UNAVAILABLE };

/* master_pool_refuse - answer a connection we will not serve, and close it. */
static void master_pool_refuse(struct master *m, int fd, enum master_refusal why, const char *ip)
{
	char reply[512];

	switch (why) {
	case REFUSE_BUSY:
		snprintf(reply, sizeof(reply),
			 "421 4.7.0 %s Error: too many connections, try again later\r\n",
			 m->cfg->hostname);
		break;
	case REFUSE_PER_IP:
		snprintf(reply, sizeof(reply), "421 4.7.0 %s Error: too many connections from %s\r\n",
			 m->cfg->hostname, ip);
		break;
	default:
		snprintf(reply, sizeof(reply),
			 "421 4.3.0 %s Error: service temporarily unavailable\r\n",
			 m->cfg->hostname);
		break;
	}
	if (send(fd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("cannot send refusal: %s", strerror(errno));
	close(fd);
	m->pool_stats.refused++;
}

/* master_pool_waited - a connection had to wait for a fork: say so, at
 * most once a minute. */
static void master_pool_waited(struct master *m, const char *ip)
{
	time_t now = master_now();

	m->pool_stats.waited++;
	if (now - m->pool_waited_logged < 60)
		return;
	m->pool_waited_logged = now;
	log_notice("no spare session process was ready for %s: started one (a busy host "
		   "may want a larger [limits] spare_processes)",
		   ip);
}

/* master_pool_hand - give fd to w with a new queue channel. 0 or -1. */
static int master_pool_hand(struct master *m, struct master_worker *w, size_t listener, int fd)
{
	struct ipc_msg chan = {.type = IPC_SESSION_CHANNEL};
	struct ipc_msg conn = {.type = IPC_POOL_CONNECTION, .a = listener};
	int sp[2], rc;

	if (ipc_socketpair(sp) < 0)
		return -1;
	if (ipc_send(m->queue_ctl, &chan, sp[1]) < 0) {
		log_err("cannot reach the queue process: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	close(sp[1]);
	rc = ipc_send_fds(w->fd, &conn, (const int[]){fd, sp[0]}, 2);
	if (rc < 0)
		log_err("cannot hand a connection to session process %d: %s", (int)w->pid,
			strerror(errno));
	close(sp[0]);
	return rc;
}

/* master_pool_assign - check the limits and hand fd, from listener l, to an
 * idle session process, forking one when none is ready. */
void master_pool_assign(struct master *m, struct master_listener *l, int fd, const char *ip)
{
	size_t live, busy, idle, listener = (size_t)(l - m->listeners);
	int v = master_pool_filter(m, listener);
	struct master_worker *w;

	master_pool_counts(m, v, &live, &busy, &idle);
	if (busy >= m->cfg->max_sessions ||
	    master_pool_sessions_from(m, ip) >= m->cfg->max_sessions_per_ip) {
		/* Under a burst the accepts can run ahead of the processes'
		 * "done": connections already over must not count. */
		master_pool_poll(m);
		master_pool_counts(m, v, &live, &busy, &idle);
	}
	if (busy >= m->cfg->max_sessions) {
		log_warn("refusing %s: %zu sessions, the limit", ip, busy);
		master_pool_refuse(m, fd, REFUSE_BUSY, ip);
		return;
	}
	if (master_pool_sessions_from(m, ip) >= m->cfg->max_sessions_per_ip) {
		log_warn("refusing %s: %u sessions from that address, the limit", ip,
			 m->cfg->max_sessions_per_ip);
		master_pool_refuse(m, fd, REFUSE_PER_IP, ip);
		return;
	}
	if (m->queue_ctl < 0) {
		master_pool_refuse(m, fd, REFUSE_UNAVAILABLE, ip);
		return;
	}
	if ((w = master_pool_idle(m, v)) == NULL) {
		if (live >= m->cfg->max_sessions)
			master_pool_make_room(m);
		master_pool_waited(m, ip);
		w = master_pool_fork(m, v);
	}
	if (w == NULL || master_pool_hand(m, w, listener, fd) < 0) {
		if (w != NULL) {
			kill(w->pid, SIGKILL);
			master_pool_retire(w);
		}
		master_pool_refuse(m, fd, REFUSE_UNAVAILABLE, ip);
		return;
	}
	close(fd);
	w->busy = 1;
	w->uses++;
	snprintf(w->ip, sizeof(w->ip), "%s", ip);
	m->pool_stats.connections++;
	if (busy + 1 > m->pool_stats.peak_busy)
		m->pool_stats.peak_busy = busy + 1;
}

/* master_pool_failed - a process ended before it served anyone (it could
 * not confine itself, say): the next spares wait, 1 s doubling to a minute,
 * rather than fork in a loop. A connection still gets a process forked for
 * it. */
static void master_pool_failed(struct master *m)
{
	unsigned wait = 1u << (m->pool_failures < 6 ? m->pool_failures : 6);

	if (wait > 60)
		wait = 60;
	m->pool_failures++;
	m->pool_fill_after = master_now() + wait;
	log_err("a session process ended before serving a connection: the next spare "
		"processes start in %u s",
		wait);
}

/* master_pool_reaped - forget the process pid that has exited, logging how
 * it ended when that says something; 1 if it was a session process. */
int master_pool_reaped(struct master *m, pid_t pid, int status)
{
	struct master_worker *w;
	size_t i;

	for (i = 0; i < m->nworkers && m->workers[i]->pid != pid; i++)
		;
	if (i == m->nworkers)
		return 0;
	w = m->workers[i];
	if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL && WTERMSIG(status) != SIGTERM)
		log_err("session process %d killed by signal %d%s", (int)pid, WTERMSIG(status),
			w->busy ? ": its connection is lost" : "");
	else if (WIFEXITED(status) && WEXITSTATUS(status) == RULES_EXIT_OVERRUN)
		log_err("session process %d: a rule ran past [rules] time_limit; its "
			"connection was closed with 421",
			(int)pid);
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		log_err("session process %d exited with status %d", (int)pid,
			WEXITSTATUS(status));
	if (!w->retired && w->uses == 0 && !m->stopping &&
	    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		master_pool_failed(m);
	master_pool_close(w);
	free(w);
	m->workers[i] = m->workers[--m->nworkers];
	master_pool_fill(m);
	return 1;
}

/* master_pool_busy - the connections being served. */
size_t master_pool_busy(const struct master *m)
{
	size_t i, n = 0;

	for (i = 0; i < m->nworkers; i++)
		n += m->workers[i]->busy != 0;
	return n;
}

/* master_pool_owns - whether pid is one of the session processes. */
int master_pool_owns(const struct master *m, pid_t pid)
{
	size_t i;

	for (i = 0; i < m->nworkers; i++)
		if (m->workers[i]->pid == pid)
			return 1;
	return 0;
}

/* master_pool_stats_log - the counts since the last line, if there was
 * traffic: every MASTER_POOL_STATS_EVERY seconds, or now when forced. */
static void master_pool_stats_log(struct master *m, time_t now, int force)
{
	struct master_pool_stats *st = &m->pool_stats;
	size_t live, busy, idle;

	if (!force && now - m->pool_stats_logged < MASTER_POOL_STATS_EVERY)
		return;
	if (st->connections > 0 || st->refused > 0) {
		master_pool_counts(m, 0, &live, &busy, &idle);
		log_info("session pool: %lu connections in %ld s, at most %u at once "
			 "(max_sessions %u), %zu processes now (%zu busy), %lu started, %lu "
			 "waited for one, %lu refused at the limits",
			 st->connections, (long)(now - m->pool_stats_logged), st->peak_busy,
			 m->cfg->max_sessions, live, busy, st->started, st->waited, st->refused);
	}
	memset(st, 0, sizeof(*st));
	m->pool_stats_logged = now;
}

/* master_pool_tick_cb - every second: idle processes past the spare ones
 * that waited max_idle exit; the spares are made up; counts are logged. */
static void master_pool_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	time_t now = master_now();
	size_t live, busy, idle[2], i;
	int v;

	for (v = 0; v < 2; v++)
		master_pool_counts(m, v, &live, &busy, &idle[v]);
	for (i = 0; i < m->nworkers; i++) {
		struct master_worker *w = m->workers[i];

		if (w->fd < 0 || w->busy)
			continue;
		if (w->generation != m->generation) {
			master_pool_retire(w);
		} else if (idle[w->unix_socks] > m->cfg->spare_processes &&
			   now - w->idle_since >= (time_t)m->cfg->max_idle) {
			log_debug("session process %d idle for %ld s: ending it", (int)w->pid,
				  (long)(now - w->idle_since));
			idle[w->unix_socks]--;
			master_pool_retire(w);
		}
	}
	master_pool_fill(m);
	master_pool_stats_log(m, now, 0);
}

/* master_pool_start - the tick timer and the first spare processes. 0 or -1. */
int master_pool_start(struct master *m)
{
	struct timeval tv = {.tv_sec = 1};

	m->pool_stats_logged = master_now();
	if ((m->pool_tick_ev = event_new(m->base, -1, EV_PERSIST, master_pool_tick_cb, m)) ==
		NULL ||
	    event_add(m->pool_tick_ev, &tv) < 0)
		return -1;
	log_info("session processes: %u spare, at most %u, each serving up to %u connections; "
		 "idle ones past the spares end after %u s",
		 m->cfg->spare_processes, m->cfg->max_sessions, m->cfg->max_use,
		 m->cfg->max_idle);
	master_pool_fill(m);
	return 0;
}

/* master_pool_reload - new configuration and rules: idle processes end now,
 * busy ones after their connection; new ones start with the new. */
void master_pool_reload(struct master *m)
{
	size_t i;

	m->generation++;
	for (i = 0; i < m->nworkers; i++)
		if (!m->workers[i]->busy)
			master_pool_retire(m->workers[i]);
	master_pool_fill(m);
}

/* master_pool_stop - stopping: idle processes end now, busy ones get SIGTERM
 * and finish their transaction first. */
void master_pool_stop(struct master *m)
{
	size_t i;

	master_pool_stats_log(m, master_now(), 1);
	for (i = 0; i < m->nworkers; i++) {
		struct master_worker *w = m->workers[i];

		if (w->busy)
			kill(w->pid, SIGTERM); /* it ends after its connection */
		else
			master_pool_retire(w);
	}
	if (m->pool_tick_ev != NULL)
		event_del(m->pool_tick_ev);
}

/* master_pool_kill - the grace period is over: end every session process. */
void master_pool_kill(struct master *m)
{
	size_t i;

	for (i = 0; i < m->nworkers; i++)
		kill(m->workers[i]->pid, SIGKILL);
}

/* master_pool_free - forget every process (the master is exiting). */
void master_pool_free(struct master *m)
{
	size_t i;

	for (i = 0; i < m->nworkers; i++) {
		master_pool_close(m->workers[i]);
		free(m->workers[i]);
	}
	free(m->workers);
	if (m->pool_tick_ev != NULL)
		event_free(m->pool_tick_ev);
}
