/*
 * master_internal.h - what the parts of the master share: its state and the
 * functions that cross between master.c (the control socket, reaping,
 * stopping, reload, signals and start-up), master_listen.c (the
 * listeners), master_pool.c (the session processes and the session
 * limits) and master_child.c
 * (forking, and the supervision of the queue and delivery processes with
 * their restarts).
 */
#ifndef VSMTPD_MASTER_INTERNAL_H
#define VSMTPD_MASTER_INTERNAL_H

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "rules.h"
#include "syscall_filter.h"
#include "tls_server.h"

#define MASTER_ACCEPT_BATCH 64
#define MASTER_LISTEN_BACKLOG 1024
#define QUEUE_BACKOFF_MAX 60     /* seconds between queue restarts, at most */
#define QUEUE_STABLE_AFTER 60    /* a queue up this long resets the backoff */
#define QUEUE_STOP_TIMEOUT 30    /* seconds the queue gets to finish flushing */
#define DELIVERY_STOP_TIMEOUT 10 /* seconds the worker gets to finish its deliveries */
#define MASTER_CHILD_KEEP_MAX 4  /* descriptors a child keeps of the master's */

struct master;

struct master_listener {
	struct master *m;
	int fd;
	struct event *ev;
	const struct listener_config *conf; /* in the start-up config, kept for good */
	char address[64];
};

/* A session process of the pool (master_pool.c). */
struct master_worker {
	struct master *m;
	pid_t pid;
	int fd;              /* the channel to it; -1 once retired (it is ending) */
	int retired;         /* the master ended it (not a death of its own) */
	struct event *ev;
	int unix_socks;      /* its seccomp filter lets it make Unix sockets */
	unsigned generation; /* the reload it was started after */
	unsigned uses;       /* connections handed to it */
	int busy;            /* serving a connection */
	time_t idle_since;   /* monotonic seconds */
	char ip[INET6_ADDRSTRLEN]; /* the client it serves, while busy */
};

/* What the pool logs every few minutes, to size it by. */
struct master_pool_stats {
	unsigned long connections, started, waited, refused;
	unsigned peak_busy;
};

struct master {
	struct config *boot_cfg; /* the configuration at start: listeners, spool */
	struct config *cfg;      /* the current one, for new sessions */
	struct rules *rules;     /* compiled from cfg's rules file, inherited by sessions */
	struct tls_server *tls;  /* cfg's certificates, NULL without; inherited too */
	char *const *overrides;
	size_t noverrides;
	struct event_base *base;

	struct master_listener listeners[CONFIG_MAX_LISTENERS * CONFIG_MAX_ADDRESSES];
	size_t nlisteners;

	pid_t queue_pid;
	int queue_ctl;
	time_t queue_started;
	unsigned queue_backoff;
	struct event *queue_restart_ev, *queue_kill_ev;

	pid_t dlv_pid; /* the delivery worker, -1 when not running */
	time_t dlv_started;
	unsigned dlv_backoff;
	int dlv_restart; /* start it again at once when it exits (reload) */
	struct event *dlv_restart_ev, *dlv_kill_ev;

	int control_fd; /* vsmtpctl's socket, -1 when it could not be made */
	struct event *control_ev;

	struct master_worker **workers; /* the session processes */
	size_t nworkers, workers_cap;
	unsigned generation;            /* reloads so far */
	struct event *pool_tick_ev;
	struct master_pool_stats pool_stats;
	time_t pool_stats_logged, pool_waited_logged;
	unsigned pool_failures;  /* processes in a row that ended before serving */
	time_t pool_fill_after;  /* no spares forked before (monotonic seconds) */
	int sandbox_fd; /* the sessions' Landlock ruleset, -1 without Landlock */
	/* the sessions' seccomp filters, without and with Unix sockets; NULL
	 * when the kernel has none */
	struct sysfilter_prog *session_filter[2];

	int stopping;
	struct event *grace_ev;
	struct event *signal_ev[4];
};

/* master.c */

/* master_reap - collect exited children. */
void master_reap(struct master *m);

/* master_listen.c: listeners and sessions. */

/* master_listen - bind and listen on one address; the fd or -1 (logged). */
int master_listen(const char *address, const char *name);

/*
 * master_listener_conf - the current settings of a listener: its sockets
 * stay as they were opened, but a reload may change its tls and auth.
 */
const struct listener_config *master_listener_conf(const struct config *cfg,
                                                   const struct listener_config *boot);

/* master_session_unix - whether a session of lc may make Unix sockets
 * (AUTH through saslauthd, a [service:NAME] at a Unix socket). */
int master_session_unix(const struct config *cfg, const struct listener_config *lc);

/* master_accept_cb - new connections on a listener. */
void master_accept_cb(evutil_socket_t lfd, short what, void *arg);

/* master_pool.c: the session processes. */

/* master_pool_start - the tick timer and the first spare processes. 0 or -1. */
int master_pool_start(struct master *m);

/* master_pool_fill - fork spare processes up to spare_processes idle ones for
 * each filter a listener needs, within max_sessions processes in all. */
void master_pool_fill(struct master *m);

/* master_pool_assign - check the limits and hand fd, from listener l, to an
 * idle session process, forking one when none is ready. */
void master_pool_assign(struct master *m, struct master_listener *l, int fd, const char *ip);

/* master_pool_reaped - forget the process pid that has exited, logging how
 * it ended when that says something; 1 if it was a session process. */
int master_pool_reaped(struct master *m, pid_t pid, int status);

/* master_pool_busy - the connections being served. */
size_t master_pool_busy(const struct master *m);

/* master_pool_owns - whether pid is one of the session processes. */
int master_pool_owns(const struct master *m, pid_t pid);

/* master_pool_reload - new configuration and rules: idle processes end now,
 * busy ones after their connection; new ones start with the new. */
void master_pool_reload(struct master *m);

/* master_pool_stop - stopping: idle processes end now, busy ones get SIGTERM
 * and finish their transaction first. */
void master_pool_stop(struct master *m);

/* master_pool_kill - the grace period is over: end every session process. */
void master_pool_kill(struct master *m);

/* master_pool_free - forget every process (the master is exiting). */
void master_pool_free(struct master *m);

/* master_child.c: forking and the queue and delivery processes. */

/*
 * master_fork - fork with signals blocked; in the child, reset the
 * master's signals and close every descriptor but 0-2 and keep[] (nkeep
 * of them, at most MASTER_CHILD_KEEP_MAX), the ones it was made for.
 */
pid_t master_fork(struct master *m, const int *keep, size_t nkeep);

/* master_queue_settings - tell the queue the settings it takes from the config. */
void master_queue_settings(struct master *m);

/* master_queue_restart_cb - the backoff is over: start the queue again. */
void master_queue_restart_cb(evutil_socket_t fd, short what, void *arg);

/* master_queue_start - fork the queue process. */
void master_queue_start(struct master *m);

/* master_queue_exited - the queue process died: restart it with backoff. */
void master_queue_exited(struct master *m, int status);

/* master_queue_kill_cb - the queue did not stop in time. */
void master_queue_kill_cb(evutil_socket_t fd, short what, void *arg);

/* master_delivery_restart_cb - the backoff is over: start the worker again. */
void master_delivery_restart_cb(evutil_socket_t fd, short what, void *arg);

/* master_delivery_exited - the worker ended: start it again as the case asks. */
void master_delivery_exited(struct master *m, int status);

/* master_delivery_stop - ask the worker to finish what is under way and exit. */
void master_delivery_stop(struct master *m);

/* master_delivery_kill_cb - the worker did not stop in time. */
void master_delivery_kill_cb(evutil_socket_t fd, short what, void *arg);

#endif
