/*
 * master_child.c - the master's children: forking one with the master's
 * signals and descriptors left behind, and supervising the queue process and
 * the delivery worker (which keeps the command runner's socket end, as the
 * sessions do: master_runner.c), restarted after an exit with a backoff that a long
 * enough run resets, and killed when they take too long to stop.
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
#include "runner_proto.h"
#include <sys/stat.h>

#include "control.h"
#include "delivery.h"
#include "sandbox.h"
#include "smtpd_auth.h"
#include "tls_server.h"
#include "smtpd_session.h"
#include "spool.h"

static void master_delivery_start(struct master *m);

/* master_close_from - close every descriptor from lo up, keeping keep[]
 * (n of them, sorted). 0 or -1. */
static int master_close_from(int lo, const int *keep, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (keep[i] < lo)
			continue;
		if (keep[i] > lo && close_range((unsigned)lo, (unsigned)keep[i] - 1, 0) < 0)
			return -1;
		lo = keep[i] + 1;
	}
	return close_range((unsigned)lo, ~0U, 0);
}

/*
 * master_child_fds - in a new child: close every descriptor but stdin,
 * stdout, stderr and keep[] (what the child was made for: its connection,
 * its channels). Whatever else the master holds stays the master's: its
 * listeners, the control socket, the queue's control channel, and its
 * event loop (the epoll instance, shared across fork, and the pipe its
 * signal handler writes signal numbers into), through which a child could
 * stop or reload the master.
 */
static void master_child_fds(struct master *m, const int *keep, size_t nkeep)
{
	int sorted[MASTER_CHILD_KEEP_MAX];
	size_t i, j;

	if (nkeep > MASTER_CHILD_KEEP_MAX)
		fatal("%zu descriptors to keep in a child: at most %d", nkeep,
		      MASTER_CHILD_KEEP_MAX);
	for (i = 0; i < nkeep; i++) {
		for (j = i; j > 0 && sorted[j - 1] > keep[i]; j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = keep[i];
	}
	/* What still holds a descriptor of the master's lets go of it first. */
	rules_forked(m->rules);
	log_detach();
	if (master_close_from(STDERR_FILENO + 1, sorted, nkeep) < 0)
		fatal("cannot close the master's descriptors: %s", strerror(errno));
	log_attach();
}

/* master_child_init - in a new child: forget the master's signals and descriptors. */
static void master_child_init(struct master *m, const sigset_t *mask, const int *keep, size_t nkeep)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
	size_t i;

	/* The master's handlers write into its own event loop: a signal meant
	 * for the child must never reach it. */
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigprocmask(SIG_SETMASK, mask, NULL);
	master_child_fds(m, keep, nkeep);
}

/* master_fork - fork with signals blocked; in the child, set it up. */
pid_t master_fork(struct master *m, const int *keep, size_t nkeep)
{
	sigset_t all, old;
	pid_t pid;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid == 0)
		master_child_init(m, &old, keep, nkeep);
	else
		sigprocmask(SIG_SETMASK, &old, NULL);
	return pid;
}

/* master_queue_settings - tell the queue the settings it takes from the config. */
void master_queue_settings(struct master *m)
{
	struct ipc_msg msg = {
	    .type = IPC_QUEUE_SETTINGS, .a = m->cfg->min_free_space, .b = m->cfg->max_message_size};
	struct ipc_msg dlv = {.type = IPC_QUEUE_DELIVERY_SETTINGS,
			      .a = m->cfg->max_worker_failures,
			      .b = m->cfg->retry_min | (uint64_t)m->cfg->retry_max << 32};

	if (m->queue_ctl >= 0 &&
	    (ipc_send(m->queue_ctl, &msg, -1) < 0 || ipc_send(m->queue_ctl, &dlv, -1) < 0))
		log_err("cannot update the queue settings: %s", strerror(errno));
}

/* master_queue_restart_cb - the backoff is over: start the queue again. */
void master_queue_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	master_queue_start(arg);
}

/* master_queue_start - fork the queue process. */
void master_queue_start(struct master *m)
{
	struct timeval tv = {0};
	int sp[2];
	pid_t pid;

	if (ipc_socketpair(sp) < 0 || (pid = master_fork(m, &sp[1], 1)) < 0) {
		log_err("cannot start the queue process: %s", strerror(errno));
		tv.tv_sec = m->queue_backoff;
		evtimer_add(m->queue_restart_ev, &tv);
		return;
	}
	if (pid == 0) {
		runner_proto_set_fd(-1); /* closed: the queue runs no commands */
		log_set_role("queue");
		queue_main(m->cfg, sp[1]);
	}
	close(sp[1]);
	m->queue_ctl = sp[0];
	m->queue_pid = pid;
	m->queue_started = time(NULL);
	master_queue_settings(m);
	master_delivery_start(m);
}

/* master_queue_exited - the queue process died: restart it with backoff. */
void master_queue_exited(struct master *m, int status)
{
	struct timeval tv = {0};

	close(m->queue_ctl);
	m->queue_ctl = -1;
	m->queue_pid = -1;
	/* The worker's channels went with the queue: it must start over with
	 * the next queue process. */
	if (m->dlv_pid > 0) {
		m->dlv_restart = 1;
		kill(m->dlv_pid, SIGTERM);
	}
	if (m->stopping)
		return;
	if (WIFSIGNALED(status))
		log_err("queue process killed by signal %d", WTERMSIG(status));
	else
		log_err("queue process exited with status %d", WEXITSTATUS(status));
	if (time(NULL) - m->queue_started >= QUEUE_STABLE_AFTER)
		m->queue_backoff = 1;
	log_notice("restarting the queue process in %u s", m->queue_backoff);
	tv.tv_sec = m->queue_backoff;
	evtimer_add(m->queue_restart_ev, &tv);
	m->queue_backoff =
	    m->queue_backoff * 2 > QUEUE_BACKOFF_MAX ? QUEUE_BACKOFF_MAX : m->queue_backoff * 2;
}

/* master_queue_kill_cb - the queue did not stop in time. */
void master_queue_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	if (m->queue_pid > 0) {
		log_err("queue process did not stop in %d s: killing it", QUEUE_STOP_TIMEOUT);
		kill(m->queue_pid, SIGKILL);
	}
}

/* master_delivery_restart_cb - the backoff is over: start the worker again. */
void master_delivery_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	master_delivery_start(arg);
}

/*
 * master_delivery_start - fork the delivery worker, with two channels to
 * the queue: the JSON delivery channel and an ordinary session channel for
 * the messages it creates (bounces). Only while the queue runs.
 */
static void master_delivery_start(struct master *m)
{
	struct ipc_msg msg = {0};
	struct timeval tv = {0};
	int dlv[2] = {-1, -1}, sess[2] = {-1, -1}, keep[3];
	pid_t pid = -1;

	if (m->stopping || m->queue_ctl < 0 || m->dlv_pid > 0)
		return;
	if (ipc_socketpair(dlv) == 0 && ipc_socketpair(sess) == 0) {
		keep[0] = dlv[0];
		keep[1] = sess[0];
		pid = master_fork(m, keep, master_runner_keep(m, keep, 2));
	}
	if (pid < 0) {
		log_err("cannot start the delivery worker: %s", strerror(errno));
		if (dlv[0] >= 0) {
			close(dlv[0]);
			close(dlv[1]);
		}
		if (sess[0] >= 0) {
			close(sess[0]);
			close(sess[1]);
		}
		tv.tv_sec = m->dlv_backoff;
		evtimer_add(m->dlv_restart_ev, &tv);
		return;
	}
	if (pid == 0) {
		log_set_role("delivery");
		delivery_main(m->cfg, m->rules, dlv[0], sess[0]);
	}
	close(dlv[0]);
	close(sess[0]);
	msg.type = IPC_DELIVERY_CHANNEL;
	if (ipc_send(m->queue_ctl, &msg, dlv[1]) < 0)
		log_err("cannot hand the delivery channel to the queue: %s", strerror(errno));
	msg.type = IPC_SESSION_CHANNEL;
	if (ipc_send(m->queue_ctl, &msg, sess[1]) < 0)
		log_err("cannot hand the worker's session channel to the queue: %s",
		        strerror(errno));
	close(dlv[1]);
	close(sess[1]);
	m->dlv_pid = pid;
	m->dlv_started = time(NULL);
}

/* master_delivery_exited - the worker ended: start it again as the case asks. */
void master_delivery_exited(struct master *m, int status)
{
	struct timeval tv = {0};

	int asked = m->dlv_restart;

	m->dlv_pid = -1;
	m->dlv_restart = 0;
	evtimer_del(m->dlv_kill_ev);
	if (m->stopping || m->queue_pid < 0)
		return; /* stopping, or the next queue process starts a worker */
	if (asked) {
		master_delivery_start(m);
		return;
	}
	if (WIFSIGNALED(status))
		log_err("delivery worker killed by signal %d", WTERMSIG(status));
	else if (WEXITSTATUS(status) == RULES_EXIT_OVERRUN)
		log_err("delivery worker exited with status %d: a rule ran past [rules] time_limit "
			"(the queue names the message and the rule)",
			WEXITSTATUS(status));
	else
		log_err("delivery worker exited with status %d", WEXITSTATUS(status));
	if (time(NULL) - m->dlv_started >= QUEUE_STABLE_AFTER)
		m->dlv_backoff = 1;
	log_notice("restarting the delivery worker in %u s", m->dlv_backoff);
	tv.tv_sec = m->dlv_backoff;
	evtimer_add(m->dlv_restart_ev, &tv);
	m->dlv_backoff =
	    m->dlv_backoff * 2 > QUEUE_BACKOFF_MAX ? QUEUE_BACKOFF_MAX : m->dlv_backoff * 2;
}

/* master_delivery_stop - ask the worker to finish what is under way and exit. */
void master_delivery_stop(struct master *m)
{
	struct timeval tv = {.tv_sec = DELIVERY_STOP_TIMEOUT};

	if (m->dlv_pid <= 0 || evtimer_pending(m->dlv_kill_ev, NULL))
		return;
	kill(m->dlv_pid, SIGTERM);
	evtimer_add(m->dlv_kill_ev, &tv);
}

/* master_delivery_kill_cb - the worker did not stop in time. */
void master_delivery_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	if (m->dlv_pid > 0) {
		log_err("delivery worker did not stop in %d s: killing it", DELIVERY_STOP_TIMEOUT);
		kill(m->dlv_pid, SIGKILL);
	}
}
