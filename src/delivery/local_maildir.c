/*
 * local_maildir.c - delivery into a maildir.
 *
 * Maildir (https://cr.yp.to/proto/maildir.html): the file is written under
 * tmp/ with the name "<sec>.M<usec>P<pid>Q<counter>.<host>,S=<size>", made
 * durable (fsync), moved into new/ without replacing anything
 * (RENAME_NOREPLACE) and new/ is fsynced. Every directory created on the way
 * (the maildir, its parents, tmp/ new/ cur/, mode 0700) has its parent
 * fsynced, so a maildir made for a first message survives a crash too.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "local_delivery_internal.h"

#define LD_HOST_MAX 200     /* the escaped host name inside a maildir file name */

/* Makes maildir names unique between the threads of one process. */
static atomic_ulong maildir_counter;

/* path_join - "a/b" (and "/c" when c is not NULL) into out; -1 when too long. */
static int path_join(char *out, size_t outlen, const char *a, const char *b, const char *c)
{
	int n = snprintf(out, outlen, "%s/%s%s%s", a, b, c != NULL ? "/" : "", c != NULL ? c : "");

	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* maildir_size - the size of the file maildir_write writes. */
static uint64_t maildir_size(const char *recipient, const char *sender, const char *content,
                             size_t len)
{
	struct ld_writer w = {.fd = -1, .last = -1};

	ld_writer_put_trace(&w, recipient, sender);
	ld_writer_put_content(&w, content, len, 0);
	return w.total;
}

/*
 * host_escape - hostname for a maildir name: '/' and ':' as \057 and \072
 * (the maildir convention), other unsafe bytes alike in octal, cut at
 * LD_HOST_MAX bytes; "localhost" when none is given.
 */
static void host_escape(const char *hostname, char *out, size_t outlen)
{
	const unsigned char *p;
	size_t o = 0;

	if (hostname == NULL || hostname[0] == '\0')
		hostname = "localhost";
	for (p = (const unsigned char *)hostname; *p != '\0'; p++) {
		if (*p == '/' || *p == ':' || *p <= ' ' || *p == '\\' || *p >= 0x7f) {
			if (o + 4 >= outlen)
				break;
			snprintf(out + o, 5, "\\%03o", *p);
			o += 4;
		} else {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
}

/* maildir_name - a unique maildir file name for a file of size bytes. */
static int maildir_name(char *out, size_t outlen, const char *hostname, uint64_t size)
{
	char host[LD_HOST_MAX + 1];
	struct timespec ts;
	unsigned long q = atomic_fetch_add(&maildir_counter, 1) + 1;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	host_escape(hostname, host, sizeof(host));
	n = snprintf(out, outlen, "%lld.M%ldP%ldQ%lu.%s,S=%llu", (long long)ts.tv_sec,
	             ts.tv_nsec / 1000, (long)getpid(), q, host, (unsigned long long)size);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* maildir_prepare - make the maildir and its tmp/, new/ and cur/ when missing. */
static int maildir_prepare(const char *dir, struct local_result *res)
{
	static const char *const subs[] = {"tmp", "new", "cur"};
	char path[PATH_MAX];
	size_t i;

	if (strlen(dir) >= sizeof(path)) {
		ld_res_set(res, LOCAL_FAILED, "5.1.3", "mailbox path too long");
		return -1;
	}
	strcpy(path, dir);
	if (ld_dir_make(path) < 0) {
		ld_res_errno(res, errno, "create", dir);
		return -1;
	}
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (path_join(path, sizeof(path), dir, subs[i], NULL) < 0) {
			ld_res_set(res, LOCAL_FAILED, "5.1.3", "mailbox path too long");
			return -1;
		}
		if (ld_dir_mkdir(path) < 0) {
			ld_res_errno(res, errno, "create", path);
			return -1;
		}
	}
	return 0;
}

/* maildir_write - write the delivered copy into the new file tmp; 0 or -1 with errno. */
static int maildir_write(const char *tmp, const char *recipient, const char *sender,
                         const char *content, size_t len)
{
	struct ld_writer w;
	int fd, e;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -1;
	if (ld_writer_open(&w, fd) < 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	ld_writer_put_trace(&w, recipient, sender);
	ld_writer_put_content(&w, content, len, 0);
	if (ld_writer_finish(&w) < 0) {
		e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

/* maildir_publish - move tmp to new, never replacing a file already there. */
static int maildir_publish(const char *tmp, const char *new)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, new, RENAME_NOREPLACE) == 0)
		return 0;
	/* A file system without RENAME_NOREPLACE: the unique name makes rename safe. */
	if (errno == EINVAL || errno == ENOSYS)
		return rename(tmp, new);
	return -1;
}

/* maildir_deliver - deliver into the maildir of recipient. */
void maildir_deliver(const char *tmpl, const char *recipient, const char *hostname,
                     const char *sender, const char *content, size_t len, struct local_result *res)
{
	char dir[PATH_MAX], name[NAME_MAX + 1], tmp[PATH_MAX], new[PATH_MAX], newdir[PATH_MAX];
	int e;

	if (local_mailbox_path(tmpl, recipient, dir, sizeof(dir), res) < 0 ||
	    maildir_prepare(dir, res) < 0)
		return;
	if (maildir_name(name, sizeof(name), hostname,
	                 maildir_size(recipient, sender, content, len)) < 0 ||
	    path_join(tmp, sizeof(tmp), dir, "tmp", name) < 0 ||
	    path_join(new, sizeof(new), dir, "new", name) < 0 ||
	    path_join(newdir, sizeof(newdir), dir, "new", NULL) < 0) {
		ld_res_set(res, LOCAL_FAILED, "5.1.3", "mailbox path too long");
		return;
	}
	if (maildir_write(tmp, recipient, sender, content, len) < 0) {
		ld_res_errno(res, errno, "write", tmp);
		return;
	}
	if (maildir_publish(tmp, new) < 0) {
		e = errno;
		unlink(tmp);
		ld_res_errno(res, e, "move into", newdir);
		return;
	}
	if (ld_fsync_dir(newdir) < 0) {
		e = errno;
		/* Not durable, so not delivered: the next attempt writes it again. */
		unlink(new);
		ld_res_errno(res, e, "sync", newdir);
		return;
	}
	ld_res_set(res, LOCAL_DELIVERED, "2.0.0", "delivered to %s", new);
}
