/*
 * local_delivery.c - delivery into mailboxes on this host: maildir and mbox.
 *
 * Blocking file operations for the delivery worker's threads: no static
 * buffer, the only shared state is the atomic counter of maildir names.
 *
 * Each delivered copy starts with "Return-Path: <sender>" (RFC 5321 4.4:
 * the final delivery records the envelope sender) and "Delivered-To:
 * <recipient>" (RFC 9228), then the message with CRLF turned into LF.
 *
 * Maildir (https://cr.yp.to/proto/maildir.html): the file is written under
 * tmp/ with the name "<sec>.M<usec>P<pid>Q<counter>.<host>,S=<size>", made
 * durable (fsync), moved into new/ without replacing anything
 * (RENAME_NOREPLACE) and new/ is fsynced. Every directory created on the way
 * (the maildir, its parents, tmp/ new/ cur/, mode 0700) has its parent
 * fsynced, so a maildir made for a first message survives a crash too.
 *
 * Mbox: appended under a dot-lock and an fcntl write lock (open file
 * description locks, so two threads of this process exclude each other as
 * well as other processes taking POSIX locks), in mboxrd form.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"
#include "io.h"
#include "local_delivery.h"
#include "log.h"

#define LD_PART_MAX 255     /* a recipient part becomes one file name: NAME_MAX */
#define LD_HOST_MAX 200     /* the escaped host name inside a maildir file name */
#define LD_VALUE_MAX 900    /* an address written into a header or the From_ line */
#define LD_BUF_SIZE 65536   /* the write buffer */
#define LD_LOCK_POLL_MS 100 /* how often a held lock is tried again */
#define LD_LOCK_STALE 300   /* seconds after which a dot-lock is stale */

/* Makes maildir names unique between the threads of one process. */
static atomic_ulong maildir_counter;

/* Bytes going to a file through a buffer, or only counted (fd < 0). */
struct ld_writer {
	int fd;
	char *buf;
	size_t used;
	uint64_t total; /* bytes accepted so far */
	int last;       /* the last byte accepted, -1 before any */
	int err;        /* the first write error, 0 while none */
};

/* res_set - fill res; the reason is cut to fit. */
static void res_set(struct local_result *res, enum local_outcome outcome, const char *enhanced,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void res_set(struct local_result *res, enum local_outcome outcome, const char *enhanced,
                    const char *fmt, ...)
{
	va_list ap;

	res->outcome = outcome;
	snprintf(res->enhanced, sizeof(res->enhanced), "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
}

/*
 * res_errno - the outcome of a failed operation on path: a full disk or
 * mailbox and everything an administrator can fix (permissions, I/O) is
 * deferred; only a path through something that is no directory fails.
 */
static void res_errno(struct local_result *res, int err, const char *what, const char *path)
{
	char buf[128];
	const char *text = strerror_r(err, buf, sizeof(buf));

	switch (err) {
	case EDQUOT:
	case EFBIG:
		res_set(res, LOCAL_DEFERRED, "4.2.2", "cannot %s %s: %s", what, path, text);
		break;
	case ENOSPC:
		res_set(res, LOCAL_DEFERRED, "4.3.1", "cannot %s %s: %s", what, path, text);
		break;
	case ENOTDIR:
		res_set(res, LOCAL_FAILED, "5.2.0", "cannot %s %s: %s", what, path, text);
		break;
	default:
		res_set(res, LOCAL_DEFERRED, "4.3.0", "cannot %s %s: %s", what, path, text);
		break;
	}
}

/*
 * part_safe - whether a recipient part can be one file name: not empty,
 * not starting with '.', no '/', no control character (C0, DEL, C1), and
 * only well-formed UTF-8 above ASCII.
 */
static int part_safe(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i, len;
	uint32_t cp;

	if (n == 0 || n > LD_PART_MAX || p[0] == '.')
		return 0;
	for (i = 0; i < n; i += len) {
		len = utf8_char(p + i, n - i, &cp);
		if (len == 0 || cp < 0x20 || cp == '/' || (cp >= 0x7f && cp <= 0x9f))
			return 0;
	}
	return 1;
}

/* ascii_lower - lowercase the ASCII letters of s in place (UTF-8 is left alone). */
static void ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/*
 * local_unquote - the content of a quoted-string local part ("\"john
 * doe\"") with its quoted pairs resolved, or the dot-string as it is.
 * -1 when it does not fit or the quoting is broken.
 */
static int local_unquote(const char *local, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;

	if (len == 0 || local[0] != '"') {
		if (len >= outlen)
			return -1;
		memcpy(out, local, len);
		out[len] = '\0';
		return 0;
	}
	if (len < 2 || local[len - 1] != '"')
		return -1;
	for (i = 1; i < len - 1; i++) {
		if (local[i] == '"')
			return -1;
		if (local[i] == '\\' && ++i == len - 1)
			return -1;
		if (o + 1 >= outlen)
			return -1;
		out[o++] = local[i];
	}
	out[o] = '\0';
	return 0;
}

/*
 * recipient_split - the lowercased local part (unquoted) and domain of
 * recipient; each is left empty when it is not usable, which the caller
 * refuses only if the template needs it.
 */
static void recipient_split(const char *recipient, char *local, char *domain)
{
	const char *at = strrchr(recipient, '@');
	size_t llen = at != NULL ? (size_t)(at - recipient) : strlen(recipient);

	local[0] = domain[0] = '\0';
	if (local_unquote(recipient, llen, local, LD_PART_MAX + 1) < 0 || !part_safe(local))
		local[0] = '\0';
	if (at != NULL && strlen(at + 1) <= LD_PART_MAX) {
		strcpy(domain, at + 1);
		if (!part_safe(domain))
			domain[0] = '\0';
	}
	ascii_lower(local);
	ascii_lower(domain);
}

/* local_mailbox_path - expand the template for recipient. */
int local_mailbox_path(const char *tmpl, const char *recipient, char *out, size_t outlen,
                       struct local_result *res)
{
	char local[LD_PART_MAX + 1], domain[LD_PART_MAX + 1];
	const char *p, *add;
	size_t o = 0, n;

	if (tmpl == NULL || tmpl[0] != '/') {
		res_set(res, LOCAL_DEFERRED, "4.3.5", "mailbox template is not an absolute path");
		return -1;
	}
	recipient_split(recipient, local, domain);
	for (p = tmpl; *p; p++) {
		add = p, n = 1;
		if (*p == '%') {
			p++;
			if (*p == 'u')
				add = local, n = strlen(local);
			else if (*p == 'd')
				add = domain, n = strlen(domain);
			else if (*p != '%') {
				res_set(res, LOCAL_DEFERRED, "4.3.5",
				        "mailbox template holds an unknown %%-escape");
				return -1;
			}
			if (n == 0) {
				res_set(res, LOCAL_FAILED, "5.1.3",
				        "the recipient's %s is not a safe mailbox name",
				        *p == 'u' ? "local part" : "domain");
				return -1;
			}
		}
		if (o + n >= outlen) {
			res_set(res, LOCAL_FAILED, "5.1.3", "mailbox path too long");
			return -1;
		}
		memcpy(out + o, add, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

/* now_ms - the monotonic clock in milliseconds. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sleep_ms - wait ms milliseconds, signals notwithstanding. */
static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* fsync_dir - make the entries of directory path durable. */
static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r, e;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	e = errno;
	close(fd);
	/* Some file systems cannot sync a directory: nothing more to do there. */
	if (r < 0 && e != EINVAL) {
		errno = e;
		return -1;
	}
	return 0;
}

/* fsync_parent - fsync the directory that holds path (absolute). */
static int fsync_parent(char *path)
{
	char *slash = strrchr(path, '/');
	int r;

	if (slash == NULL)
		return 0;
	if (slash == path)
		return fsync_dir("/");
	*slash = '\0';
	r = fsync_dir(path);
	*slash = '/';
	return r;
}

/* dir_mkdir - mkdir one directory (0700), syncing its parent when made; EEXIST is fine. */
static int dir_mkdir(char *path)
{
	if (mkdir(path, 0700) == 0)
		return fsync_parent(path);
	return errno == EEXIST ? 0 : -1;
}

/*
 * dir_make - make the directory path (absolute, modified and restored) and
 * the missing ones above it. An existing non-directory is left for the
 * next operation to report (ENOTDIR).
 */
static int dir_make(char *path)
{
	char *p;

	if (mkdir(path, 0700) == 0)
		return fsync_parent(path);
	if (errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return -1;
	for (p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		int r, e;

		*p = '\0';
		r = dir_mkdir(path);
		e = errno;
		*p = '/';
		if (r < 0) {
			errno = e;
			return -1;
		}
	}
	return dir_mkdir(path);
}

/* path_join - "a/b" (and "/c" when c is not NULL) into out; -1 when too long. */
static int path_join(char *out, size_t outlen, const char *a, const char *b, const char *c)
{
	int n = snprintf(out, outlen, "%s/%s%s%s", a, b, c != NULL ? "/" : "", c != NULL ? c : "");

	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* writer_flush - write out the buffer; the first error sticks in w->err. */
static void writer_flush(struct ld_writer *w)
{
	if (w->err == 0)
		w->err = io_write_all(w->fd, w->buf, w->used, -1, NULL);
	w->used = 0;
}

/* writer_put - append len bytes. */
static void writer_put(struct ld_writer *w, const char *data, size_t len)
{
	size_t n;

	if (len == 0)
		return;
	w->total += len;
	w->last = (unsigned char)data[len - 1];
	if (w->fd < 0)
		return;
	while (len > 0 && w->err == 0) {
		if (w->used == LD_BUF_SIZE)
			writer_flush(w);
		n = LD_BUF_SIZE - w->used;
		if (n > len)
			n = len;
		memcpy(w->buf + w->used, data, n);
		w->used += n;
		data += n;
		len -= n;
	}
}

/* writer_puts - append a string. */
static void writer_puts(struct ld_writer *w, const char *s)
{
	writer_put(w, s, strlen(s));
}

/*
 * writer_put_value - append an address for a header or the From_ line,
 * cut at LD_VALUE_MAX bytes; control characters (and, when blank_too,
 * blanks) become bad, so that it stays on one line (one word).
 */
static void writer_put_value(struct ld_writer *w, const char *s, int blank_too, char bad)
{
	size_t i;
	char c;

	for (i = 0; s[i] != '\0' && i < LD_VALUE_MAX; i++) {
		c = s[i];
		if ((unsigned char)c < 0x20 || c == 0x7f || (blank_too && c == ' '))
			c = bad;
		writer_put(w, &c, 1);
	}
}

/* line_is_from - whether a line matches ^>*From (mboxrd quotes those). */
static int line_is_from(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] == '>')
		i++;
	return n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/* writer_put_content - append the message, CRLF turned into LF, mboxrd-quoted if asked. */
static void writer_put_content(struct ld_writer *w, const char *content, size_t len, int mboxrd)
{
	const char *p = content, *end = content + len, *nl;
	size_t n;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (mboxrd && line_is_from(p, n))
			writer_put(w, ">", 1);
		if (nl == NULL) {
			writer_put(w, p, n);
			break;
		}
		writer_put(w, p, n > 0 && p[n - 1] == '\r' ? n - 1 : n);
		writer_put(w, "\n", 1);
		p = nl + 1;
	}
}

/* writer_put_trace - Return-Path and Delivered-To, the header fields of the delivery. */
static void writer_put_trace(struct ld_writer *w, const char *recipient, const char *sender)
{
	writer_puts(w, "Return-Path: <");
	writer_put_value(w, sender != NULL ? sender : "", 0, '?');
	writer_puts(w, ">\nDelivered-To: ");
	writer_put_value(w, recipient, 0, '?');
	writer_puts(w, "\n");
}

/* writer_open - a writer on fd with its buffer; -1 (ENOMEM) when none. */
static int writer_open(struct ld_writer *w, int fd)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->last = -1;
	w->buf = malloc(LD_BUF_SIZE);
	return w->buf != NULL ? 0 : -1;
}

/* writer_finish - flush, fsync and close fd; 0 or -1 with errno. */
static int writer_finish(struct ld_writer *w)
{
	writer_flush(w);
	free(w->buf);
	w->buf = NULL;
	if (w->err == 0 && fsync(w->fd) < 0)
		w->err = errno;
	if (close(w->fd) < 0 && w->err == 0)
		w->err = errno;
	if (w->err != 0) {
		errno = w->err;
		return -1;
	}
	return 0;
}

/* maildir_size - the size of the file maildir_write writes. */
static uint64_t maildir_size(const char *recipient, const char *sender, const char *content,
                             size_t len)
{
	struct ld_writer w = {.fd = -1, .last = -1};

	writer_put_trace(&w, recipient, sender);
	writer_put_content(&w, content, len, 0);
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
		res_set(res, LOCAL_FAILED, "5.1.3", "mailbox path too long");
		return -1;
	}
	strcpy(path, dir);
	if (dir_make(path) < 0) {
		res_errno(res, errno, "create", dir);
		return -1;
	}
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (path_join(path, sizeof(path), dir, subs[i], NULL) < 0) {
			res_set(res, LOCAL_FAILED, "5.1.3", "mailbox path too long");
			return -1;
		}
		if (dir_mkdir(path) < 0) {
			res_errno(res, errno, "create", path);
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
	if (writer_open(&w, fd) < 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	writer_put_trace(&w, recipient, sender);
	writer_put_content(&w, content, len, 0);
	if (writer_finish(&w) < 0) {
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
		res_set(res, LOCAL_FAILED, "5.1.3", "mailbox path too long");
		return;
	}
	if (maildir_write(tmp, recipient, sender, content, len) < 0) {
		res_errno(res, errno, "write", tmp);
		return;
	}
	if (maildir_publish(tmp, new) < 0) {
		e = errno;
		unlink(tmp);
		res_errno(res, e, "move into", newdir);
		return;
	}
	if (fsync_dir(newdir) < 0) {
		e = errno;
		/* Not durable, so not delivered: the next attempt writes it again. */
		unlink(new);
		res_errno(res, e, "sync", newdir);
		return;
	}
	res_set(res, LOCAL_DELIVERED, "2.0.0", "delivered to %s", new);
}

/*
 * dotlock_stale - whether the lock file is gone or was stale and is now
 * removed, so that creating it may be tried again at once. A crashed
 * holder leaves a lock behind; one older than LD_LOCK_STALE is taken as
 * such (as other mailers do: a live holder never keeps it that long).
 */
static int dotlock_stale(const char *lock)
{
	struct stat st;

	if (lstat(lock, &st) < 0)
		return errno == ENOENT;
	if (time(NULL) - st.st_mtime <= LD_LOCK_STALE)
		return 0;
	if (unlink(lock) < 0)
		return errno == ENOENT;
	log_warn("removed stale lock file %s", lock);
	return 1;
}

/*
 * dotlock_take - create the lock file lock before deadline (monotonic ms).
 * 1 when taken, 0 when the directory is not writable (mail readers then
 * cannot dot-lock either: the fcntl lock alone serializes), -1 with res.
 */
static int dotlock_take(const char *lock, int64_t deadline, struct local_result *res)
{
	char pid[32];
	int fd, n, removed = 0;

	for (;;) {
		fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd >= 0) {
			/* The pid is for an administrator; the file's existence is the lock. */
			n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
			if (write(fd, pid, (size_t)n) < 0)
				log_debug("cannot write the pid into %s", lock);
			close(fd);
			return 1;
		}
		if (errno == EACCES)
			return 0;
		if (errno != EEXIST) {
			res_errno(res, errno, "create", lock);
			return -1;
		}
		/* Bounded: another writer may be removing and making locks too. */
		if (removed < 3 && dotlock_stale(lock)) {
			removed++;
			continue;
		}
		if (now_ms() >= deadline) {
			res_set(res, LOCAL_DEFERRED, "4.2.0", "mailbox is locked: %s exists", lock);
			return -1;
		}
		sleep_ms(LD_LOCK_POLL_MS);
	}
}

/* mbox_lock - take a write lock on the whole file before deadline. */
static int mbox_lock(int fd, const char *path, int64_t deadline, struct local_result *res)
{
	struct flock fl;
	int cmd = F_OFD_SETLK;

	for (;;) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, cmd, &fl) == 0)
			return 0;
		if (errno == EINVAL && cmd == F_OFD_SETLK) {
			/* A kernel before 3.15: process-wide POSIX locks will do. */
			cmd = F_SETLK;
			continue;
		}
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			res_errno(res, errno, "lock", path);
			return -1;
		}
		if (now_ms() >= deadline) {
			res_set(res, LOCAL_DEFERRED, "4.2.0", "mailbox is locked: %s", path);
			return -1;
		}
		sleep_ms(LD_LOCK_POLL_MS);
	}
}

/*
 * mbox_open - open (or create, 0600) the mbox for appending. A symbolic
 * link, anything but a regular file and a file with other hard links are
 * refused: writing there could reach a file the recipient does not own.
 */
static int mbox_open(const char *path, int *created, struct local_result *res)
{
	struct stat st;
	int fd = -1, tries;

	*created = 0;
	for (tries = 0; tries < 3 && fd < 0; tries++) {
		fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd >= 0) {
			*created = 1;
			break;
		}
		if (errno != EEXIST)
			break;
		/* O_NONBLOCK: a FIFO put there must not hang the delivery. */
		fd = open(path, O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0 && errno != ENOENT)
			break;
	}
	if (fd < 0) {
		if (errno == ELOOP)
			res_set(res, LOCAL_FAILED, "5.2.0", "mailbox %s is a symbolic link", path);
		else if (errno == EISDIR)
			res_set(res, LOCAL_FAILED, "5.2.0", "mailbox %s is not a regular file",
			        path);
		else
			res_errno(res, errno, "open", path);
		return -1;
	}
	if (fstat(fd, &st) < 0)
		res_errno(res, errno, "stat", path);
	else if (!S_ISREG(st.st_mode))
		res_set(res, LOCAL_FAILED, "5.2.0", "mailbox %s is not a regular file", path);
	else if (st.st_nlink != 1)
		res_set(res, LOCAL_FAILED, "5.2.0", "mailbox %s has %lu hard links", path,
		        (unsigned long)st.st_nlink);
	else
		return fd;
	close(fd);
	return -1;
}

/*
 * mbox_separate - what must come before the From_ line so that it follows
 * an empty line even when the file does not end with one (a writer that
 * did not end its message): "", "\n" or "\n\n".
 */
static const char *mbox_separate(int fd, off_t size)
{
	char tail[2];

	if (size == 0)
		return "";
	if (size == 1)
		return pread(fd, tail, 1, 0) == 1 && tail[0] == '\n' ? "" : "\n\n";
	if (pread(fd, tail, 2, size - 2) != 2)
		return "";
	if (tail[1] != '\n')
		return "\n\n";
	return tail[0] == '\n' ? "" : "\n";
}

/* mbox_from_line - "From sender Www Mmm dd hh:mm:ss yyyy\n" (asctime, UTC). */
static void mbox_from_line(struct ld_writer *w, const char *sender)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	char date[160];
	time_t now = time(NULL);
	struct tm tm;

	if (gmtime_r(&now, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(date, sizeof(date), " %s %s %2d %02d:%02d:%02d %d\n", days[tm.tm_wday % 7],
	         months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         tm.tm_year + 1900);
	writer_puts(w, "From ");
	/* The From_ line is split at blanks by its readers: the sender must be one word. */
	writer_put_value(w, sender != NULL && sender[0] != '\0' ? sender : "MAILER-DAEMON", 1, '_');
	writer_puts(w, date);
}

/* mbox_append - append the message to the locked mbox fd; truncate back on failure. */
static void mbox_append(int fd, const char *path, const char *recipient, const char *sender,
                        const char *content, size_t len, struct local_result *res)
{
	struct ld_writer w;
	struct stat st;
	int e;

	if (fstat(fd, &st) < 0 || writer_open(&w, fd) < 0) {
		res_errno(res, errno, "write", path);
		close(fd);
		return;
	}
	writer_puts(&w, mbox_separate(fd, st.st_size));
	mbox_from_line(&w, sender);
	writer_put_trace(&w, recipient, sender);
	writer_put_content(&w, content, len, 1);
	if (w.last != '\n')
		writer_put(&w, "\n", 1);
	writer_put(&w, "\n", 1);
	writer_flush(&w);
	if (w.err == 0 && fsync(fd) < 0)
		w.err = errno;
	if (w.err != 0 && ftruncate(fd, st.st_size) == 0)
		fsync(fd);
	e = w.err;
	free(w.buf);
	if (close(fd) < 0 && e == 0)
		e = errno;
	if (e != 0)
		res_errno(res, e, "write", path);
	else
		res_set(res, LOCAL_DELIVERED, "2.0.0", "delivered to %s", path);
}

/* mbox_make_parent - make the directory of the mbox path when missing. */
static int mbox_make_parent(const char *path, struct local_result *res)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (dir_make(dir) < 0) {
		res_errno(res, errno, "create", dir);
		return -1;
	}
	return 0;
}

/* mbox_deliver - append to the mbox of recipient. */
void mbox_deliver(const char *tmpl, const char *recipient, const char *sender, const char *content,
                  size_t len, unsigned lock_timeout, struct local_result *res)
{
	char path[PATH_MAX], lock[PATH_MAX + 8];
	int64_t deadline = now_ms() + (int64_t)lock_timeout * 1000;
	int fd, dotlocked, created;
	size_t n;

	if (local_mailbox_path(tmpl, recipient, path, sizeof(path), res) < 0)
		return;
	n = strlen(path);
	if (n >= 5 && strcmp(path + n - 5, ".lock") == 0) {
		/* It would be the dot-lock of another mailbox. */
		res_set(res, LOCAL_FAILED, "5.1.3", "mailbox name %s ends in .lock", path);
		return;
	}
	if (mbox_make_parent(path, res) < 0)
		return;
	snprintf(lock, sizeof(lock), "%s.lock", path);
	dotlocked = dotlock_take(lock, deadline, res);
	if (dotlocked < 0)
		return;
	fd = mbox_open(path, &created, res);
	if (fd >= 0 && created && fsync_parent(path) < 0) {
		res_errno(res, errno, "sync the directory of", path);
		close(fd);
		fd = -1;
	}
	if (fd >= 0 && mbox_lock(fd, path, deadline, res) < 0) {
		close(fd);
		fd = -1;
	}
	if (fd >= 0)
		mbox_append(fd, path, recipient, sender, content, len, res);
	if (dotlocked)
		unlink(lock);
}
