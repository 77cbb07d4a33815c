/*
 * master_runner.c - the master's side of the command runner (src/runner/):
 * when the configuration has a command service, one SOCK_SEQPACKET socket
 * pair made at start and kept for the daemon's life, so that a runner
 * restarted after a crash or a reload reads the same socket the session
 * processes and the delivery worker hold the other end of; the runner
 * forked on it and restarted, with a backoff when it dies, at once when a
 * reload asks for the new configuration; stopped last when vsmtpd stops.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "log.h"
#include "master_internal.h"
#include "runner.h"
#include "runner_proto.h"

/* master_runner_restart_cb - the backoff is over: start the runner again. */
static void master_runner_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	master_runner_start(arg);
}

/* master_runner_start - fork the runner on its end of the socket pair. */
void master_runner_start(struct master *m)
{
	struct timeval tv = {0};
	pid_t pid;

	if (m->stopping || m->runner_pid > 0 || m->runner_fd[0] < 0)
		return;
	if ((pid = master_fork(m, &m->runner_fd[0], 1)) < 0) {
		log_err("cannot start the command runner: %s", strerror(errno));
		tv.tv_sec = m->runner_backoff;
		evtimer_add(m->runner_restart_ev, &tv);
		return;
	}
	if (pid == 0) {
		log_set_role("runner");
		runner_main(m->cfg, m->runner_fd[0]);
	}
	m->runner_pid = pid;
	m->runner_started = time(NULL);
}

/* master_runner_init - at start: the socket pair and the runner, when the
 * configuration has a command service. 0 or -1. */
int master_runner_init(struct master *m)
{
	if (!runner_needed(m->cfg))
		return 0;
	if ((m->runner_restart_ev = evtimer_new(m->base, master_runner_restart_cb, m)) == NULL ||
	    ipc_socketpair(m->runner_fd) < 0) {
		log_err("cannot set up the command runner: %s", strerror(errno));
		return -1;
	}
	runner_proto_set_fd(m->runner_fd[1]);
	master_runner_start(m);
	return 0;
}

/* master_runner_keep - append the runner's socket end, when there is one, to
 * the n descriptors of keep (room for one more): the new count. */
size_t master_runner_keep(const struct master *m, int *keep, size_t n)
{
	if (m->runner_fd[1] >= 0)
		keep[n++] = m->runner_fd[1];
	return n;
}

/* master_runner_exited - the runner ended: start it again as the case asks. */
void master_runner_exited(struct master *m, int status)
{
	struct timeval tv = {0};
	int asked = m->runner_restart;

	m->runner_pid = -1;
	m->runner_restart = 0;
	if (m->stopping)
		return;
	if (asked) {
		master_runner_start(m);
		return;
	}
	if (WIFSIGNALED(status))
		log_err("command runner killed by signal %d", WTERMSIG(status));
	else
		log_err("command runner exited with status %d", WEXITSTATUS(status));
	if (time(NULL) - m->runner_started >= QUEUE_STABLE_AFTER)
		m->runner_backoff = 1;
	log_notice("restarting the command runner in %u s", m->runner_backoff);
	tv.tv_sec = m->runner_backoff;
	evtimer_add(m->runner_restart_ev, &tv);
	m->runner_backoff =
	    m->runner_backoff * 2 > QUEUE_BACKOFF_MAX ? QUEUE_BACKOFF_MAX : m->runner_backoff * 2;
}

/* master_runner_reload - a reload: a new runner takes the new commands (the
 * programs under way finish in the helpers of the old one). */
void master_runner_reload(struct master *m)
{
	if (m->runner_pid > 0) {
		m->runner_restart = 1;
		kill(m->runner_pid, SIGTERM);
	}
}

/* master_runner_stop - vsmtpd stops: end the runner; 1 while it runs. */
int master_runner_stop(struct master *m)
{
	if (m->runner_restart_ev != NULL)
		evtimer_del(m->runner_restart_ev);
	if (m->runner_pid <= 0)
		return 0;
	kill(m->runner_pid, SIGTERM);
	return 1;
}

/* master_runner_free - the socket pair and the timer. */
void master_runner_free(struct master *m)
{
	if (m->runner_restart_ev != NULL)
		event_free(m->runner_restart_ev);
	if (m->runner_fd[0] >= 0) {
		close(m->runner_fd[0]);
		close(m->runner_fd[1]);
	}
}
