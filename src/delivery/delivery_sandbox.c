/*
 * delivery_sandbox.c - what the delivery worker may reach by path.
 *
 * The worker reads messages only through descriptors the queue passes it,
 * so it needs no path into the spool. It writes mailboxes under the
 * folders of [delivery] maildir_path and mbox_path, and reads system files
 * (CA certificates, the resolver's configuration, time zones, the shared
 * libraries NSS may load); nothing else: not the TLS keys, the sasldb2
 * file or the configuration either. Where the kernel has Landlock's
 * scoping, the same ruleset keeps it from signalling any process outside
 * it; a seccomp filter (syscall_filter.c) then refuses signals to other
 * processes, ptrace and new processes, and leaves it Internet and Unix
 * sockets (SMTP, LMTP over either). Landlock and seccomp confine a thread
 * and the threads it starts later, so this runs before the local delivery
 * threads exist.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery.h"
#include "log.h"
#include "sandbox.h"
#include "syscall_filter.h"

/* folder_holds - whether path is folder or lies beneath it. */
static int folder_holds(const char *folder, const char *path)
{
	size_t n = strlen(folder);

	if (strcmp(folder, "/") == 0)
		return 1;
	return strncmp(path, folder, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/*
 * template_folder - the folder every path of a mailbox template lies
 * under: the part before the first component with a '%' in it (for
 * "/var/vmail/%d/%u/Maildir", /var/vmail), or the file's folder for a
 * template without one; when it does not exist yet, the nearest folder
 * above it that does, as the worker creates the rest. Returns 0, or -1
 * (logged) when that folder would hold the spool or app_dir: then the
 * administrator creates the template's folder (docs/configuration.md).
 */
static int template_folder(const struct config *cfg, const char *key, const char *tmpl,
			   char *out, size_t len)
{
	const char *pct = strchr(tmpl, '%');
	size_t n = pct ? (size_t)(pct - tmpl) : strlen(tmpl);
	struct stat st;
	char *slash;

	snprintf(out, len, "%.*s", (int)n, tmpl);
	do {
		if ((slash = strrchr(out, '/')) == NULL)
			return -1; /* the configuration makes templates absolute */
		*(slash == out ? slash + 1 : slash) = '\0';
	} while ((stat(out, &st) < 0 || !S_ISDIR(st.st_mode)) && slash != out);
	if (!folder_holds(out, cfg->spool_dir) && !folder_holds(out, cfg->app_dir))
		return 0;
	log_warn("[delivery] %s: the worker would need %s, which holds the spool or app_dir: "
		 "deliveries there are deferred until the template's folder is created (writable "
		 "by the vsmtpd user) and vsmtpd is reloaded",
		 key, out);
	return -1;
}

/* log_confined - where the confined worker may write; a folder is named once. */
static void log_confined(const char *maildir, const char *mbox)
{
	if (maildir && mbox && strcmp(maildir, mbox) != 0)
		log_info("delivery worker confined: writes mailboxes under %s and %s only", maildir,
			 mbox);
	else if (maildir || mbox)
		log_info("delivery worker confined: writes mailboxes under %s only",
			 maildir ? maildir : mbox);
	else
		log_info("delivery worker confined: writes no mailbox (neither template's folder "
			 "may be granted)");
}

/*
 * delivery_sandbox_filter - after Landlock (of ABI abi, 0 without): the
 * seccomp filter, and one line saying what reaches no further than the
 * worker itself. 0, or -1 (logged).
 */
static int delivery_sandbox_filter(int abi)
{
	int rc = sysfilter_enter(SYSFILTER_WORKER, 1);

	if (rc < 0) {
		log_err("cannot install the delivery worker's seccomp filter: %s", strerror(errno));
		return -1;
	}
	if (rc == 0)
		log_warn("this kernel has no seccomp filters: the delivery worker can signal and "
			 "ptrace every process of the vsmtpd user");
	else if (abi > 0 && !sandbox_scoped(abi))
		log_warn("this kernel's Landlock (ABI %d) cannot scope signals and abstract Unix "
			 "sockets (Linux 6.12): the delivery worker relies on its seccomp filter for "
			 "signals",
			 abi);
	if (abi > 0)
		log_info("delivery worker confinement: Landlock ABI %d (files as above%s); %s", abi,
			 sandbox_scoped(abi) ? "; signals and abstract Unix sockets scoped" : "",
			 rc == 1 ? sysfilter_describe(SYSFILTER_WORKER, 1) : "no seccomp filter");
	else
		log_info("delivery worker confinement: no Landlock; %s",
			 rc == 1 ? sysfilter_describe(SYSFILTER_WORKER, 1) : "no seccomp filter");
	return 0;
}

/* delivery_sandbox_enter - confine the worker; 0, or -1 when it could not be. */
int delivery_sandbox_enter(const struct config *cfg)
{
	char maildir[4096], mbox[4096];
	struct sandbox_path paths[] = {
	    {maildir, SANDBOX_WRITE},
	    {mbox, SANDBOX_WRITE},
	    /* Of /etc only what name lookups, TLS and time stamps read: not
	     * the keys, the sasldb2 file or the configuration. */
	    {"/etc/ssl/certs", SANDBOX_READ},
	    {"/etc/ssl/openssl.cnf", SANDBOX_READ},
	    {"/etc/resolv.conf", SANDBOX_READ},
	    {"/etc/hosts", SANDBOX_READ},
	    {"/etc/host.conf", SANDBOX_READ},
	    {"/etc/nsswitch.conf", SANDBOX_READ},
	    {"/etc/gai.conf", SANDBOX_READ},
	    {"/etc/services", SANDBOX_READ},
	    {"/etc/localtime", SANDBOX_READ},
	    {"/etc/ld.so.cache", SANDBOX_READ},
	    {"/usr", SANDBOX_READ}, /* share/ca-certificates, zoneinfo, lib/ (NSS modules) */
	    {"/lib", SANDBOX_READ},
	    {"/lib64", SANDBOX_READ},
	    {"/dev/urandom", SANDBOX_READ},
	    {cfg->tls_ca_file[0] ? cfg->tls_ca_file : NULL, SANDBOX_READ},
	};
	int fd, rc;

	if (template_folder(cfg, "maildir_path", cfg->maildir_path, maildir, sizeof(maildir)) < 0)
		paths[0].path = NULL;
	if (template_folder(cfg, "mbox_path", cfg->mbox_path, mbox, sizeof(mbox)) < 0)
		paths[1].path = NULL;
	fd = sandbox_prepare_paths(paths, sizeof(paths) / sizeof(paths[0]));
	if (fd < 0 && errno != EOPNOTSUPP) {
		log_err("cannot build the delivery sandbox: %s", strerror(errno));
		return -1;
	}
	rc = sandbox_enter(fd);
	if (fd >= 0)
		close(fd);
	if (rc < 0) {
		log_err("cannot enter the delivery sandbox: %s", strerror(errno));
		return -1;
	}
	if (rc == 0)
		log_warn("no Landlock in this kernel (or one older than Linux 5.19): the delivery "
			 "worker is not confined");
	else
		log_confined(paths[0].path ? maildir : NULL, paths[1].path ? mbox : NULL);
	return delivery_sandbox_filter(rc == 1 ? sandbox_abi() : 0);
}
