/*
 * smtpd_worker.c - the life of a session process in the master's pool.
 *
 * The master forks a session process before any client needs it and
 * confines it; the process then waits on its channel to the master. For
 * each connection the master sends the client's socket, a fresh channel to
 * the queue process and the listener it came in on; the process serves it
 * (smtpd_session.c), puts the rules back as they were loaded, and says it
 * is ready for the next. It never holds two clients at once.
 *
 * Nothing of one connection reaches the next: the session, its
 * transaction, AUTH and TLS live in memory freed when the connection ends
 * (the TLS contexts keep no session cache, so a new connection gets a
 * full handshake unless it brings a ticket, as it would to a new process);
 * the rules' Lua state is restored to what the rules file left at load
 * (rules_restore). The master decides how long the process lives: it
 * closes the channel after [limits] max_use connections, after [timeouts]
 * max_idle seconds idle past the spare processes it keeps, and on reload;
 * SIGTERM ends the process at once when idle, or after its connection
 * (the session finishes the transaction under way first).
 *
 * The exit skips the C library's exit handlers (the libraries' destructors
 * would only free memory the kernel takes back anyway), except in builds
 * with AddressSanitizer, whose leak check runs from them.
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "rules.h"
#include "delegation.h"
#include "sandbox.h"
#include "smtpd_session.h"

#define SMTPD_WORKER_KEEP (8 << 20) /* bytes of freed memory a process keeps */

/* smtpd_worker_exit - end the process: no exit handlers but under ASan. */
static void smtpd_worker_exit(int status) __attribute__((noreturn));
static void smtpd_worker_exit(int status)
{
#if SANDBOX_ASAN
	exit(status);
#else
	_exit(status);
#endif
}

/* smtpd_worker_term_fd - SIGTERM, blocked, as a descriptor to wait on. */
static int smtpd_worker_term_fd(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
	    (fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		fatal("cannot wait for SIGTERM: %s", strerror(errno));
	return fd;
}

/*
 * smtpd_worker_next - wait for the master's next connection: 1 with its
 * message and descriptors, 0 when the process is to end (the channel
 * closed, or SIGTERM).
 */
static int smtpd_worker_next(int channel, int term_fd, struct ipc_msg *msg, int fds[IPC_FDS_MAX])
{
	struct pollfd pfd[2] = {{.fd = channel, .events = POLLIN}, {.fd = term_fd, .events = POLLIN}};
	int rc;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatal("cannot wait for a connection: %s", strerror(errno));
		}
		if (pfd[1].revents & POLLIN)
			return 0;
		rc = ipc_recv_fds(channel, msg, fds);
		if (rc > 0)
			return 1;
		if (rc == 0)
			return 0;
		if (errno != EAGAIN)
			fatal("cannot read from the master: %s", strerror(errno));
	}
}

/* smtpd_worker_main - serve the master's connections, one at a time. */
void smtpd_worker_main(const struct config *cfg, const struct listener_config *const *listeners,
		       size_t nlisteners, struct rules *rules, struct tls_server *tls, int channel)
{
	static const struct ipc_msg done = {.type = IPC_POOL_DONE};
	int term_fd = smtpd_worker_term_fd(), fds[IPC_FDS_MAX], stop;
	char summary[1024];
	struct ipc_msg msg;

	/* Keep what malloc got: a process that read one big message for the
	 * preq rules would otherwise map, fault in and give back its pages
	 * again for every message. */
	mallopt(M_MMAP_THRESHOLD, SMTPD_WORKER_KEEP);
	mallopt(M_TRIM_THRESHOLD, SMTPD_WORKER_KEEP);
	/* Returned mail's tokens are checked by the queue: no key here. */
	delegation_key_forget();
	while (smtpd_worker_next(channel, term_fd, &msg, fds)) {
		if (msg.type != IPC_POOL_CONNECTION || fds[0] < 0 || fds[1] < 0 ||
		    msg.a >= nlisteners)
			fatal("the master sent no connection (record %u)", (unsigned)msg.type);
		summary[0] = '\0';
		stop = smtpd_session_serve(cfg, listeners[msg.a], rules, tls, fds[0], fds[1],
					   term_fd, summary, sizeof(summary));
		if (!stop && rules != NULL && rules_restore(rules) < 0) {
			log_err("cannot restore the rules for the next connection: this "
				"session process ends");
			stop = 1;
		}
		/* Ready before the summary line: whoever reads the log and
		 * connects again finds the process free. */
		if (!stop && ipc_send(channel, &done, -1) < 0)
			stop = 1;
		if (summary[0] != '\0')
			log_info("%s", summary);
		if (stop)
			break;
	}
	smtpd_worker_exit(0);
}
