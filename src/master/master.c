/*
 * master.c - the master process. The listeners are in master_listen.c,
 * the pool of session processes in master_pool.c, the queue and delivery
 * processes in master_child.c; this file holds the control socket,
 * reaping, the graceful stop, reload, signals and start-up.
 *
 * Binds every listener, drops root, starts and supervises the queue process
 * and keeps a pool of session processes, each serving one connection at a
 * time. It enforces the global and per-client-address session limits
 * itself, before handing a connection over, so a flood of connections
 * costs a write and a close each. Signals: SIGTERM and SIGINT stop
 * gracefully, SIGHUP re-reads the configuration for new connections,
 * SIGCHLD reaps.
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

#include "delegation.h"
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

/*
 * master_own_process - what pid is when it is one of the daemon's own
 * processes (a session, the queue, the delivery worker, or a process one
 * of them started), or when it is gone and cannot be told apart from one
 * that connected and exited; NULL for a process from outside.
 */
static const char *master_own_process(const struct master *m, pid_t pid)
{

	if (pid <= 0)
		return NULL; /* another pid namespace: none of ours, which share this one */
	if (pid == getpid())
		return "the master";
	if (pid == m->queue_pid)
		return "the queue process";
	if (pid == m->dlv_pid)
		return "the delivery worker";
	if (pid == m->runner_pid)
		return "the command runner";
	if (master_pool_owns(m, pid))
		return "a session process";
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return "a process that has already exited";
	if (control_peer_descends(pid, getpid()))
		return "a process started by one of vsmtpd's";
	return NULL;
}

/* master_control_cb - a vsmtpctl connection: check it, hand it to the queue. */
static void master_control_cb(evutil_socket_t lfd, short what, void *arg)
{
	static const char busy[] =
	    "{\"ok\":false,\"error\":\"the queue process is not running; try again\"}\n";
	static const char denied[] = "{\"ok\":false,\"error\":\"permission denied\"}\n";
	struct master *m = arg;
	struct ipc_msg msg = {.type = IPC_CONTROL_CLIENT};
	const char *ours;
	uid_t uid;
	pid_t pid;
	int fd, allowed;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		allowed = control_peer_allowed(fd, m->cfg->admin_group, &uid, &pid);
		if ((ours = master_own_process(m, pid)) != NULL) {
			/* Nothing to say to it: the connection just closes. */
			log_warn("control: refused a connection from pid %d, %s: only vsmtpctl "
			         "from outside the daemon is served",
			         (int)pid, ours);
		} else if (!allowed) {
			log_warn("control: refused a connection from uid %u", (unsigned)uid);
			if (write(fd, denied, sizeof(denied) - 1) < 0) {
				/* it will see the connection close */
			}
		} else if (m->queue_ctl < 0) {
			if (write(fd, busy, sizeof(busy) - 1) < 0) {
				/* likewise */
			}
		} else {
			msg.a = uid;
			if (ipc_send(m->queue_ctl, &msg, fd) < 0)
				log_err("control: cannot hand a connection to the queue: %s",
				        strerror(errno));
		}
		close(fd);
	}
}

/* master_stop_progress - while stopping: stop the queue once sessions are gone. */
static void master_stop_progress(struct master *m)
{
	struct timeval tv = {.tv_sec = QUEUE_STOP_TIMEOUT};

	if (!m->stopping || m->nworkers > 0)
		return;
	if (m->dlv_pid > 0) {
		master_delivery_stop(m);
		return;
	}
	if (m->queue_pid > 0) {
		if (!evtimer_pending(m->queue_kill_ev, NULL)) {
			kill(m->queue_pid, SIGTERM);
			evtimer_add(m->queue_kill_ev, &tv);
		}
		return;
	}
	if (master_runner_stop(m))
		return;
	event_base_loopexit(m->base, NULL);
}

/* master_reap - collect exited children. */
void master_reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == m->queue_pid) {
			master_queue_exited(m, status);
			continue;
		}
		if (pid == m->dlv_pid) {
			master_delivery_exited(m, status);
			continue;
		}
		if (pid == m->runner_pid) {
			master_runner_exited(m, status);
			continue;
		}
		master_pool_reaped(m, pid, status);
	}
	master_stop_progress(m);
}

/* master_grace_cb - the grace period is over: end the sessions still running. */
static void master_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	if (master_pool_busy(m) > 0)
		log_notice("grace period over: ending %zu sessions", master_pool_busy(m));
	master_pool_kill(m);
}

/* master_stop - SIGTERM / SIGINT: close the listeners, let sessions finish. */
static void master_stop(struct master *m)
{
	struct timeval tv = {.tv_sec = m->cfg->shutdown_grace};
	size_t i;

	if (m->stopping)
		return;
	m->stopping = 1;
	log_info("stopping: %zu sessions get up to %u s to finish", master_pool_busy(m),
	         m->cfg->shutdown_grace);
	for (i = 0; i < m->nlisteners; i++) {
		event_del(m->listeners[i].ev);
		close(m->listeners[i].fd);
	}
	master_pool_stop(m);
	evtimer_del(m->queue_restart_ev);
	evtimer_del(m->dlv_restart_ev);
	if (m->control_ev != NULL)
		event_del(m->control_ev);
	evtimer_add(m->grace_ev, &tv);
	master_stop_progress(m);
}

/* master_listeners_equal - whether two configs have the same listeners. */
static int master_listeners_equal(const struct config *a, const struct config *b)
{
	size_t i, j;

	if (a->nlisteners != b->nlisteners)
		return 0;
	for (i = 0; i < a->nlisteners; i++) {
		const struct listener_config *x = &a->listeners[i], *y = &b->listeners[i];

		if (strcmp(x->name, y->name) != 0 || strcmp(x->kind, y->kind) != 0 ||
		    x->naddresses != y->naddresses)
			return 0;
		for (j = 0; j < x->naddresses; j++)
			if (strcmp(x->addresses[j], y->addresses[j]) != 0)
				return 0;
	}
	return 1;
}

/*
 * master_tls_needed - whether a socket still open would need TLS under cfg
 * (its listener gone from cfg keeps its old settings until a restart), and
 * which, in err.
 */
static int master_tls_needed(const struct master *m, const struct config *cfg, char *err,
                             size_t errlen)
{
	size_t i;

	for (i = 0; i < m->boot_cfg->nlisteners; i++) {
		const struct listener_config *l =
		    master_listener_conf(cfg, &m->boot_cfg->listeners[i]);

		if (l->kind_id == LISTENER_SUBMISSIONS || l->tls != LISTENER_TLS_NONE) {
			snprintf(err, errlen,
			         "listener %s is still open until a restart and needs TLS: keep "
			         "[tls] certificate",
			         l->name);
			return 1;
		}
	}
	return 0;
}

/* master_sandbox_log - say what confines the sessions of cfg, and what the kernel lacks. */
static void master_sandbox_log(const struct config *cfg, int landlock, int filter)
{
	int abi = landlock ? sandbox_abi() : 0, unix_socks = 0;
	char files[160];
	size_t i;

	for (i = 0; i < cfg->nlisteners; i++)
		unix_socks |= master_session_unix(cfg, &cfg->listeners[i]);
	if (!filter)
		log_warn("this kernel has no seccomp filters: sessions can make Unix sockets and "
		         "signal every process of the vsmtpd user");
	else if (abi > 0 && !sandbox_scoped(abi))
		log_warn("this kernel's Landlock (ABI %d) cannot scope signals and abstract Unix "
		         "sockets (Linux 6.12): sessions rely on their seccomp filter for both",
		         abi);
	if (abi > 0)
		snprintf(files, sizeof(files), "Landlock ABI %d (no file access%s)", abi,
		         sandbox_scoped(abi) ? "; signals and abstract Unix sockets scoped" : "");
	else
		snprintf(files, sizeof(files), "no Landlock");
	log_info("sessions confined: %s; %s", files,
	         filter ? sysfilter_describe(SYSFILTER_SESSION, unix_socks) : "no seccomp filter");
}

/* master_session_filters - make the sessions' seccomp filters, once: 0 or -1. */
static int master_session_filters(struct master *m)
{
	int unix_socks;

	for (unix_socks = 0; unix_socks < 2; unix_socks++) {
		if (m->session_filter[unix_socks] != NULL)
			continue;
		m->session_filter[unix_socks] = sysfilter_build(SYSFILTER_SESSION, unix_socks);
		if (m->session_filter[unix_socks] == NULL && errno != ENOSYS) {
			log_err("cannot build the sessions' seccomp filter: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* master_sandbox - (re)build the sessions' ruleset for cfg: 0 or -1. */
static int master_sandbox(struct master *m, const struct config *cfg)
{
	const char *readable[2] = {NULL, NULL};
	struct stat st;
	size_t i;
	int fd;

	for (i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].auth != LISTENER_AUTH_NO)
			break;
	if (i < cfg->nlisteners) {
		/* Sessions read the sasldb2 file themselves, through Cyrus, which
		 * also seeds its nonces (CRAM-MD5, SCRAM) from /dev/urandom. */
		readable[0] = "/dev/urandom";
		if (cfg->auth_backend == AUTH_BACKEND_SASLDB) {
			readable[1] = cfg->sasldb_path;
			if (stat(cfg->sasldb_path, &st) < 0 || !S_ISREG(st.st_mode))
				log_warn(
				    "[auth] sasldb_path %s is no file vsmtpd can reach: AUTH will "
				    "answer 454 until it exists and vsmtpd is reloaded",
				    cfg->sasldb_path);
		}
	}
	if (master_session_filters(m) < 0)
		return -1;
	fd = sandbox_prepare(readable, 2);

	if (fd < 0 && errno != EOPNOTSUPP) {
		log_err("cannot build the session sandbox: %s", strerror(errno));
		return -1;
	}
	if (fd < 0 && m->sandbox_fd < 0)
		log_warn("this kernel has no Landlock: sessions run without file system "
		         "confinement");
	if (m->sandbox_fd >= 0)
		close(m->sandbox_fd);
	m->sandbox_fd = fd;
	master_sandbox_log(cfg, fd >= 0, m->session_filter[0] != NULL);
	return 0;
}

/* master_reload - SIGHUP: read the configuration again for new sessions. */
static void master_reload(struct master *m)
{
	struct config *cfg;
	struct rules *rules;
	struct tls_server *tls;
	char err[1024];

	/* The absolute path: a relative -c must not depend on our directory. */
	cfg = config_load(m->boot_cfg->path, m->overrides, m->noverrides, err, sizeof(err));
	if (cfg == NULL) {
		log_err("reload failed, keeping the running configuration: %s", err);
		return;
	}
	if ((rules = rules_load_config(cfg, err, sizeof(err))) == NULL) {
		log_err("reload failed, keeping the running configuration and rules: %s", err);
		config_free(cfg);
		return;
	}
	if ((tls = tls_server_load(cfg, err, sizeof(err))) == NULL && err[0] != '\0') {
		log_err("reload failed, keeping the running configuration and certificates: %s",
		        err);
		rules_free(rules);
		config_free(cfg);
		return;
	}
	if (tls == NULL && master_tls_needed(m, cfg, err, sizeof(err))) {
		log_err("reload failed, keeping the running configuration: %s", err);
		rules_free(rules);
		config_free(cfg);
		return;
	}
	if (smtpd_auth_configure(cfg, err, sizeof(err)) < 0) {
		log_err("reload failed, keeping the running configuration: %s", err);
		/* The last good [auth] settings are still Cyrus's. */
		smtpd_auth_configure(m->cfg, err, sizeof(err));
		tls_server_free(tls);
		rules_free(rules);
		config_free(cfg);
		return;
	}
	if (master_sandbox(m, cfg) < 0) {
		log_err("reload failed, keeping the running configuration");
		smtpd_auth_configure(m->cfg, err, sizeof(err));
		tls_server_free(tls);
		rules_free(rules);
		config_free(cfg);
		return;
	}
	if (!master_listeners_equal(cfg, m->boot_cfg))
		log_warn("reload: listener changes take effect only after a restart");
	if (strcmp(cfg->spool_dir, m->boot_cfg->spool_dir) != 0 ||
	    strcmp(cfg->user, m->boot_cfg->user) != 0 ||
	    strcmp(cfg->group ? cfg->group : "", m->boot_cfg->group ? m->boot_cfg->group : "") != 0)
		log_warn("reload: spool_dir, user and group changes take effect only after a "
		         "restart");
	/* The queue keeps the spool it was started with, restarts included. */
	free(cfg->spool_dir);
	if ((cfg->spool_dir = strdup(m->boot_cfg->spool_dir)) == NULL) {
		log_err("reload failed: out of memory");
		smtpd_auth_configure(m->cfg, err, sizeof(err));
		master_sandbox(m, m->cfg);
		tls_server_free(tls);
		rules_free(rules);
		config_free(cfg);
		return;
	}
	if (m->cfg != m->boot_cfg)
		config_free(m->cfg);
	m->cfg = cfg;
	/* Running sessions have their own copy: the old rules can go. */
	rules_free(m->rules);
	m->rules = rules;
	tls_server_free(m->tls);
	m->tls = tls;
	log_open(cfg->log_target, cfg->log_level, cfg->syslog_facility);
	master_queue_settings(m);
	master_pool_reload(m);
	/* The worker runs the postq and delivery rules: a new one takes the new
	 * ones once the deliveries under way are over. */
	if (m->dlv_pid > 0) {
		m->dlv_restart = 1;
		master_delivery_stop(m);
	}
	master_runner_reload(m);
	log_info("configuration reloaded from %s, rules from %s", cfg->path, cfg->rules_file);
}

/* master_signal_cb - signals, delivered through the event loop. */
static void master_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;

	switch (sig) {
	case SIGCHLD:
		master_reap(m);
		break;
	case SIGHUP:
		master_reload(m);
		break;
	default:
		master_stop(m);
		break;
	}
}

/* master_open_listeners - bind everything the configuration lists. */
static int master_open_listeners(struct master *m)
{
	const struct config *cfg = m->boot_cfg;
	size_t i, j;
	int fd;

	for (i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *lc = &cfg->listeners[i];

		for (j = 0; j < lc->naddresses; j++) {
			struct master_listener *l = &m->listeners[m->nlisteners];

			if ((fd = master_listen(lc->addresses[j], lc->name)) < 0)
				return -1;
			l->m = m;
			l->fd = fd;
			l->conf = lc;
			snprintf(l->address, sizeof(l->address), "%s", lc->addresses[j]);
			m->nlisteners++;
			log_info("listening on %s (%s)", lc->addresses[j], lc->name);
		}
	}
	return 0;
}

/* master_control_open - the control socket, group admin_group when set. */
static int master_control_open(struct master *m, int owner_uid, int owner_gid)
{
	const struct config *cfg = m->boot_cfg;
	struct group *gr;
	char err[512];

	if (cfg->admin_group != NULL) {
		if ((gr = getgrnam(cfg->admin_group)) == NULL) {
			log_err("[server] admin_group: no group %s", cfg->admin_group);
			return -1;
		}
		if (geteuid() == 0)
			owner_gid = (int)gr->gr_gid;
	}
	if ((m->control_fd = control_open(cfg, owner_uid, owner_gid, err, sizeof(err))) < 0) {
		log_err("%s", err);
		return -1;
	}
	log_info("control socket %s", cfg->control_socket);
	return 0;
}

/* master_privileges - prepare the spool for the user; as root, become that user. */
static int master_privileges(struct master *m)
{
	const struct config *cfg = m->boot_cfg;
	int root = geteuid() == 0, owner_uid = -1, owner_gid = -1;
	char err[256];
	uid_t uid;
	gid_t gid;

	if (root) {
		if (privileges_lookup(cfg->user, cfg->group, &uid, &gid, err, sizeof(err)) < 0) {
			log_err("[server] user/group: %s", err);
			return -1;
		}
		owner_uid = (int)uid;
		owner_gid = (int)gid;
	}
	if (spool_prepare(cfg->spool_dir, owner_uid, owner_gid) < 0) {
		log_err("cannot prepare spool %s: %s", cfg->spool_dir, strerror(errno));
		return -1;
	}
	if (spool_prepare_dir(cfg->app_dir, owner_uid, owner_gid) < 0) {
		log_err("cannot prepare [rules] app_dir %s: %s", cfg->app_dir, strerror(errno));
		return -1;
	}
	if (master_control_open(m, owner_uid, root ? owner_gid : -1) < 0)
		return -1;
	if (!root) {
		log_info("not started as root: running as uid %d; [server] user applies only "
		         "when started as root",
		         (int)geteuid());
		return 0;
	}
	if (privileges_drop(cfg->user, uid, gid) < 0) {
		log_err("cannot switch to user %s: %s", cfg->user, strerror(errno));
		return -1;
	}
	log_info("running as user %s (uid %d, gid %d)", cfg->user, (int)uid, (int)gid);
	return 0;
}

/* master_raise_nofile - allow as many descriptors as the hard limit does. */
static void master_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* master_events - register listeners, signals and timers. 0 or -1. */
static int master_events(struct master *m)
{
	static const int sigs[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT};
	size_t i;

	/* Two priorities: a session process's "ready" (priority 0) is read
	 * before the connections accepted in the same pass (1). */
	if ((m->base = evloop_new()) == NULL || event_base_priority_init(m->base, 2) < 0)
		return -1;
	for (i = 0; i < m->nlisteners; i++) {
		struct master_listener *l = &m->listeners[i];

		l->ev = event_new(m->base, l->fd, EV_READ | EV_PERSIST, master_accept_cb, l);
		if (l->ev == NULL || event_add(l->ev, NULL) < 0)
			return -1;
	}
	for (i = 0; i < 4; i++) {
		m->signal_ev[i] = evsignal_new(m->base, sigs[i], master_signal_cb, m);
		if (m->signal_ev[i] == NULL || event_add(m->signal_ev[i], NULL) < 0)
			return -1;
	}
	m->queue_restart_ev = evtimer_new(m->base, master_queue_restart_cb, m);
	m->queue_kill_ev = evtimer_new(m->base, master_queue_kill_cb, m);
	m->grace_ev = evtimer_new(m->base, master_grace_cb, m);
	m->dlv_restart_ev = evtimer_new(m->base, master_delivery_restart_cb, m);
	m->dlv_kill_ev = evtimer_new(m->base, master_delivery_kill_cb, m);
	if (m->control_fd >= 0) {
		m->control_ev =
		    event_new(m->base, m->control_fd, EV_READ | EV_PERSIST, master_control_cb, m);
		if (m->control_ev == NULL || event_add(m->control_ev, NULL) < 0)
			return -1;
	}
	return m->queue_restart_ev && m->queue_kill_ev && m->grace_ev && m->dlv_restart_ev &&
	               m->dlv_kill_ev
	           ? 0
	           : -1;
}

/* master_free - release everything before a clean exit. */
static void master_free(struct master *m)
{
	size_t i;

	for (i = 0; i < m->nlisteners; i++)
		if (m->listeners[i].ev != NULL)
			event_free(m->listeners[i].ev);
	for (i = 0; i < sizeof(m->signal_ev) / sizeof(m->signal_ev[0]); i++)
		if (m->signal_ev[i] != NULL)
			event_free(m->signal_ev[i]);
	if (m->queue_restart_ev != NULL)
		event_free(m->queue_restart_ev);
	if (m->queue_kill_ev != NULL)
		event_free(m->queue_kill_ev);
	if (m->grace_ev != NULL)
		event_free(m->grace_ev);
	if (m->dlv_restart_ev != NULL)
		event_free(m->dlv_restart_ev);
	if (m->dlv_kill_ev != NULL)
		event_free(m->dlv_kill_ev);
	if (m->control_ev != NULL)
		event_free(m->control_ev);
	control_close(m->control_fd, m->boot_cfg->control_socket);
	master_runner_free(m);
	if (m->base != NULL)
		event_base_free(m->base);
	master_pool_free(m);
	if (m->sandbox_fd >= 0)
		close(m->sandbox_fd);
	sysfilter_free(m->session_filter[0]);
	sysfilter_free(m->session_filter[1]);
	if (m->cfg != m->boot_cfg)
		config_free(m->cfg);
	config_free(m->boot_cfg);
	rules_free(m->rules);
	tls_server_free(m->tls);
}

/* master_main - run the daemon. */
int master_main(struct config *cfg, struct rules *rules, struct tls_server *tls,
                char *const *overrides, size_t noverrides)
{
	struct master m = {.boot_cfg = cfg,
	                   .cfg = cfg,
	                   .rules = rules,
	                   .tls = tls,
	                   .overrides = overrides,
	                   .noverrides = noverrides,
	                   .queue_pid = -1,
	                   .queue_ctl = -1,
	                   .queue_backoff = 1,
	                   .dlv_pid = -1,
	                   .dlv_backoff = 1,
	                   .runner_pid = -1,
	                   .runner_fd = {-1, -1},
	                   .runner_backoff = 1,
	                   .control_fd = -1,
	                   .sandbox_fd = -1};
	char err[256];

	log_open(cfg->log_target, cfg->log_level, cfg->syslog_facility);
	signal(SIGPIPE, SIG_IGN);
	/* Sessions cannot read /etc/localtime once confined. */
	tzset();
	master_raise_nofile();
	if (master_open_listeners(&m) < 0 || master_privileges(&m) < 0) {
		master_free(&m);
		return 1;
	}
	/* the key of delegate rules' tokens: every process it forks holds it */
	if (delegation_key_load(cfg->spool_dir, err, sizeof(err)) < 0) {
		log_err("%s", err);
		master_free(&m);
		return 1;
	}
	if (master_sandbox(&m, cfg) < 0) {
		master_free(&m);
		return 1;
	}
	if (master_events(&m) < 0) {
		log_err("cannot set up the event loop");
		master_free(&m);
		return 1;
	}
	if (master_runner_init(&m) < 0) {
		master_free(&m);
		return 1;
	}
	master_queue_start(&m);
	if (master_pool_start(&m) < 0) {
		log_err("cannot set up the session processes");
		master_free(&m);
		return 1;
	}
	log_info("vsmtpd %s started", VSMTPD_VERSION);
	event_base_dispatch(m.base);
	log_info("stopped");
	master_free(&m);
	return 0;
}
