/*
 * runner.c - the command runner: the one process of vsmtpd that starts
 * programs, for ctx:command() (kind = command services). Sessions and the
 * delivery worker cannot fork (their seccomp filter) nor open a program
 * file (Landlock); they send the runner a request instead
 * (include/runner_proto.h) and read its answer.
 *
 * The master forks the runner, as the vsmtpd user, when the configuration
 * has a command service, and restarts it when it ends (master_runner.c).
 * It waits for requests on its end of the socket pair; for each one it
 * checks, it forks a helper, so that a slow program holds up only the rule
 * waiting for it (at most RUNNER_RUNNING_MAX at once; beyond, the answer is
 * "busy"). The helper starts the service's program from the runner's own
 * configuration (argv as configured: never a shell, never a path from the
 * request) in a process group of its own, with
 *   - the message (the request's memfd) as standard input,
 *   - a pipe as standard output, of which RUNNER_OUTPUT_MAX bytes are kept,
 *   - the runner's standard error (the daemon's log when it logs there),
 *   - no other descriptor, no new privileges (PR_SET_NO_NEW_PRIVS),
 *   - an environment of PATH, SERVICE and the request's variables only;
 * and kills that group at the service's timeout, or once the program has
 * exited (nothing it started outlives it). Then it writes the answer into
 * the request's pipe and exits.
 *
 * What a session someone took over can make it do: run the configured
 * commands, with variables of the documented names and printable values
 * and any standard input, and read what they print; nothing else reaches
 * the runner.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "io.h"
#include "ipc.h"
#include "log.h"
#include "runner.h"
#include "runner_proto.h"

#define RUNNER_RUNNING_MAX 32

static volatile sig_atomic_t runner_stop;

/* runner_on_term - SIGTERM: stop taking requests. */
static void runner_on_term(int sig)
{
	(void)sig;
	runner_stop = 1;
}

/* runner_on_chld - SIGCHLD: only interrupts the wait, to reap. */
static void runner_on_chld(int sig)
{
	(void)sig;
}

/* runner_now_ms - CLOCK_MONOTONIC in milliseconds. */
static uint64_t runner_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* runner_answer - write the answer and out into the reply pipe. */
static void runner_answer(int reply_fd, const struct runner_reply *r, const char *out)
{
	if (io_write_all(reply_fd, r, sizeof(*r), -1, NULL) == 0 && r->out_len > 0)
		io_write_all(reply_fd, out, r->out_len, -1, NULL);
}

/* runner_refuse - answer with a status other than RUNNER_RAN and why. */
static void runner_refuse(int reply_fd, enum runner_status status, const char *why)
{
	struct runner_reply r = {.status = status, .exit_code = -1};

	snprintf(r.error, sizeof(r.error), "%s", why);
	runner_answer(reply_fd, &r, NULL);
}

/* runner_service - the command service called name, or NULL. */
static const struct service_config *runner_service(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nservice; i++)
		if (cfg->service[i].kind == SERVICE_COMMAND && strcmp(cfg->service[i].name, name) == 0)
			return &cfg->service[i];
	return NULL;
}

/* runner_exec - in the program's process: set it up and run it. */
static void runner_exec(const struct service_config *svc, const struct runner_request *req,
			int in, int out)
{
	static char path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
	char *envp[RUNNER_ENV_MAX + 3], service[64];
	size_t n = 0, i;
	sigset_t none;

	setpgid(0, 0);
	envp[n++] = path;
	snprintf(service, sizeof(service), "SERVICE=%s", svc->name);
	envp[n++] = service;
	for (i = 0; runner_env_names[i] != NULL; i++) {
		char *v;

		if (req->env[i] == NULL)
			continue;
		if ((v = malloc(strlen(runner_env_names[i]) + strlen(req->env[i]) + 2)) == NULL)
			_exit(127);
		sprintf(v, "%s=%s", runner_env_names[i], req->env[i]);
		envp[n++] = v;
	}
	envp[n] = NULL;
	if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    lseek(STDIN_FILENO, 0, SEEK_SET) < 0)
		_exit(127);
	close_range(STDERR_FILENO + 1, ~0U, 0);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		_exit(127);
	execve(svc->argv[0], svc->argv, envp);
	fprintf(stderr, "vsmtpd runner: service %s: cannot run %s: %s\n", svc->name, svc->argv[0],
		strerror(errno));
	_exit(127);
}

/* runner_collect - read the program's output until it closes it or the
 * deadline: the bytes kept; *timed_out set at the deadline. */
static size_t runner_collect(int fd, char *buf, uint64_t deadline, int *timed_out,
			     uint32_t *truncated)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char sink[4096];
	size_t kept = 0;
	uint64_t now;
	ssize_t n;

	for (;;) {
		if ((now = runner_now_ms()) >= deadline) {
			*timed_out = 1;
			return kept;
		}
		p.revents = 0; /* a poll a signal interrupts leaves it as it was */
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			return kept;
		if (p.revents == 0)
			continue;
		if (kept < RUNNER_OUTPUT_MAX)
			n = read(fd, buf + kept, RUNNER_OUTPUT_MAX - kept);
		else
			n = read(fd, sink, sizeof(sink));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return kept;
		if (n > 0 && kept < RUNNER_OUTPUT_MAX)
			kept += (size_t)n;
		else if (n > 0)
			*truncated = 1;
	}
}

/* runner_wait - the program's status; killed (with its group) at the deadline. */
static int runner_wait(pid_t pid, uint64_t deadline, int *timed_out)
{
	struct timespec pause = {0, 5000000};
	int status = 0;

	while (!*timed_out && runner_now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			kill(-pid, SIGKILL); /* what it left behind goes with it */
			return status;
		}
		nanosleep(&pause, NULL);
	}
	*timed_out = 1;
	kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

/* runner_run - in a helper: run the request's program, answer, exit. */
static void runner_run(const struct config *cfg, const struct runner_request *req, int msg_fd,
		       int reply_fd)
{
	const struct service_config *svc = runner_service(cfg, req->service);
	struct runner_reply r = {.status = RUNNER_RAN, .exit_code = -1};
	char *out = malloc(RUNNER_OUTPUT_MAX);
	int pipefd[2], status, timed_out = 0;
	uint64_t deadline;
	struct stat st;
	pid_t pid;

	if (svc == NULL)
		runner_refuse(reply_fd, RUNNER_NO_SERVICE, "no command service of that name");
	else if (fstat(msg_fd, &st) < 0 || !S_ISREG(st.st_mode))
		runner_refuse(reply_fd, RUNNER_BAD, "the message is no file");
	else if (out == NULL || pipe2(pipefd, O_CLOEXEC) < 0 || (pid = fork()) < 0)
		runner_refuse(reply_fd, RUNNER_FAILED, strerror(errno));
	else if (pid == 0)
		runner_exec(svc, req, msg_fd, pipefd[1]);
	else {
		setpgid(pid, pid); /* before a kill of the group can be needed */
		close(pipefd[1]);
		deadline = runner_now_ms() + svc->timeout_ms;
		r.out_len = (uint32_t)runner_collect(pipefd[0], out, deadline, &timed_out,
						     &r.truncated);
		status = runner_wait(pid, deadline, &timed_out);
		r.timed_out = (uint32_t)timed_out;
		if (WIFEXITED(status))
			r.exit_code = WEXITSTATUS(status);
		else if (WIFSIGNALED(status))
			r.signal = WTERMSIG(status);
		runner_answer(reply_fd, &r, out);
	}
	_exit(0);
}

/* runner_request - one record from the socket: check it, hand it to a helper. */
static void runner_request(const struct config *cfg, int fd, unsigned *running)
{
	struct runner_request req;
	cJSON *obj = NULL;
	int fds[IPC_FDS_MAX];
	char err[128];
	pid_t pid;
	size_t i;

	if (ipc_recv_json(fd, &obj, fds) <= 0) {
		if (errno == EBADMSG)
			log_warn("runner: refused a request that is no JSON object");
		return;
	}
	if (fds[0] < 0 || fds[1] < 0)
		log_warn("runner: refused a request without its message and reply descriptors");
	else if (runner_request_check(obj, &req, err, sizeof(err)) < 0)
		runner_refuse(fds[1], RUNNER_BAD, err);
	else if (*running >= RUNNER_RUNNING_MAX)
		runner_refuse(fds[1], RUNNER_BUSY, "too many commands running");
	else if ((pid = fork()) == 0) {
		close(fd);
		runner_run(cfg, &req, fds[0], fds[1]);
	} else if (pid < 0) {
		runner_refuse(fds[1], RUNNER_FAILED, strerror(errno));
	} else {
		(*running)++;
	}
	for (i = 0; i < IPC_FDS_MAX; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	cJSON_Delete(obj);
}

/* runner_needed - whether cfg has a command service. */
int runner_needed(const struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nservice; i++)
		if (cfg->service[i].kind == SERVICE_COMMAND)
			return 1;
	return 0;
}

/* runner_main - run the runner on its end of the socket pair; never returns. */
void runner_main(const struct config *cfg, int fd)
{
	struct sigaction term = {.sa_handler = runner_on_term}, chld = {.sa_handler = runner_on_chld};
	struct pollfd p = {.fd = fd, .events = POLLIN};
	unsigned running = 0;
	sigset_t none;

	/* No SA_RESTART: a signal ends the wait, and the loop looks again. */
	sigaction(SIGTERM, &term, NULL);
	sigaction(SIGCHLD, &chld, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (chdir("/") < 0)
		log_warn("runner: cannot change to /: %s", strerror(errno));
	log_info("runner: ready");
	while (!runner_stop) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			running--;
		p.revents = 0;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		if (p.revents & (POLLERR | POLLHUP))
			break;
		if (p.revents & POLLIN)
			runner_request(cfg, fd, &running);
	}
	_exit(0);
}
