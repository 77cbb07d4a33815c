/*
 * delivery_sandbox.c - what the delivery worker may reach by path.
 *
 * The worker reads messages only through descriptors the queue passes it,
 * so it needs no path into the spool. It writes mailboxes under the
 * folders of [delivery] maildir_path and mbox_path, and reads system files
 * (CA certificates, the resolver's configuration, time zones, the shared
 * libraries NSS may load); nothing else. Landlock confines a thread and
 * the threads it starts later, so this runs before the local delivery
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

/*
 * template_folder - the folder every path of a mailbox template lies
 * under: the part before the first component with a '%' in it (for
 * "/var/vmail/%d/%u/Maildir", /var/vmail), or the file's folder for a
 * template without one; the nearest folder of it that exists, since the
 * worker creates the rest.
 */
static void template_folder(const char *tmpl, char *out, size_t len)
{
	const char *pct = strchr(tmpl, '%');
	size_t n = pct ? (size_t)(pct - tmpl) : strlen(tmpl);
	struct stat st;
	char *slash;

	snprintf(out, len, "%.*s", (int)n, tmpl);
	for (;;) {
		if ((slash = strrchr(out, '/')) == NULL) {
			snprintf(out, len, "/");
			return;
		}
		*(slash == out ? slash + 1 : slash) = '\0';
		if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
			return;
		if (slash == out)
			return;
	}
}

/* delivery_sandbox_enter - confine the worker; 0, or -1 when it could not be. */
int delivery_sandbox_enter(const struct config *cfg)
{
	char maildir[4096], mbox[4096];
	struct sandbox_path paths[] = {
	    {maildir, SANDBOX_WRITE},
	    {mbox, SANDBOX_WRITE},
	    {"/etc", SANDBOX_READ},  /* resolv.conf, hosts, ssl/, localtime, nsswitch.conf */
	    {"/usr", SANDBOX_READ},  /* share/ca-certificates, zoneinfo, lib/ (NSS modules) */
	    {"/lib", SANDBOX_READ},
	    {"/lib64", SANDBOX_READ},
	    {"/dev/urandom", SANDBOX_READ},
	    {cfg->tls_ca_file[0] ? cfg->tls_ca_file : NULL, SANDBOX_READ},
	};
	int fd, rc;

	template_folder(cfg->maildir_path, maildir, sizeof(maildir));
	template_folder(cfg->mbox_path, mbox, sizeof(mbox));
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
		log_warn("no Landlock in this kernel: the delivery worker is not confined");
	else
		log_info("delivery worker confined: writes mailboxes under %s and %s only", maildir,
			 mbox);
	return 0;
}
