/*
 * local_mbox.c - delivery into an mbox file.
 *
 * Mbox: appended under a dot-lock and an fcntl write lock (open file
 * description locks, so two threads of this process exclude each other as
 * well as other processes taking POSIX locks), in mboxrd form.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "local_delivery_internal.h"
#include "log.h"

#define LD_LOCK_POLL_MS 100 /* how often a held lock is tried again */
#define LD_LOCK_STALE 300   /* seconds after which a dot-lock is stale */

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
			ld_res_errno(res, errno, "create", lock);
			return -1;
		}
		/* Bounded: another writer may be removing and making locks too. */
		if (removed < 3 && dotlock_stale(lock)) {
			removed++;
			continue;
		}
		if (now_ms() >= deadline) {
			ld_res_set(res, LOCAL_DEFERRED, "4.2.0", "mailbox is locked: %s exists", lock);
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
			ld_res_errno(res, errno, "lock", path);
			return -1;
		}
		if (now_ms() >= deadline) {
			ld_res_set(res, LOCAL_DEFERRED, "4.2.0", "mailbox is locked: %s", path);
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
			ld_res_set(res, LOCAL_FAILED, "5.2.0", "mailbox %s is a symbolic link", path);
		else if (errno == EISDIR)
			ld_res_set(res, LOCAL_FAILED, "5.2.0", "mailbox %s is not a regular file",
			           path);
		else
			ld_res_errno(res, errno, "open", path);
		return -1;
	}
	if (fstat(fd, &st) < 0)
		ld_res_errno(res, errno, "stat", path);
	else if (!S_ISREG(st.st_mode))
		ld_res_set(res, LOCAL_FAILED, "5.2.0", "mailbox %s is not a regular file", path);
	else if (st.st_nlink != 1)
		ld_res_set(res, LOCAL_FAILED, "5.2.0", "mailbox %s has %lu hard links", path,
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
	ld_writer_puts(w, "From ");
	/* The From_ line is split at blanks by its readers: the sender must be one word. */
	ld_writer_put_value(w, sender != NULL && sender[0] != '\0' ? sender : "MAILER-DAEMON", 1, '_');
	ld_writer_puts(w, date);
}

/* mbox_append - append the message to the locked mbox fd; truncate back on failure. */
static void mbox_append(int fd, const char *path, const char *recipient, const char *sender,
                        const char *content, size_t len, struct local_result *res)
{
	struct ld_writer w;
	struct stat st;
	int e;

	if (fstat(fd, &st) < 0 || ld_writer_open(&w, fd) < 0) {
		ld_res_errno(res, errno, "write", path);
		close(fd);
		return;
	}
	ld_writer_puts(&w, mbox_separate(fd, st.st_size));
	mbox_from_line(&w, sender);
	ld_writer_put_trace(&w, recipient, sender);
	ld_writer_put_content(&w, content, len, 1);
	if (w.last != '\n')
		ld_writer_put(&w, "\n", 1);
	ld_writer_put(&w, "\n", 1);
	ld_writer_flush(&w);
	if (w.err == 0 && fsync(fd) < 0)
		w.err = errno;
	if (w.err != 0 && ftruncate(fd, st.st_size) == 0)
		fsync(fd);
	e = w.err;
	free(w.buf);
	if (close(fd) < 0 && e == 0)
		e = errno;
	if (e != 0)
		ld_res_errno(res, e, "write", path);
	else
		ld_res_set(res, LOCAL_DELIVERED, "2.0.0", "delivered to %s", path);
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
	if (ld_dir_make(dir) < 0) {
		ld_res_errno(res, errno, "create", dir);
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
		ld_res_set(res, LOCAL_FAILED, "5.1.3", "mailbox name %s ends in .lock", path);
		return;
	}
	if (mbox_make_parent(path, res) < 0)
		return;
	snprintf(lock, sizeof(lock), "%s.lock", path);
	dotlocked = dotlock_take(lock, deadline, res);
	if (dotlocked < 0)
		return;
	fd = mbox_open(path, &created, res);
	if (fd >= 0 && created && ld_fsync_parent(path) < 0) {
		ld_res_errno(res, errno, "sync the directory of", path);
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
