/*
 * queue_recover.c - the queue's pass over the spool when it starts.
 *
 * Before any session or worker is served: every file of incoming/ goes
 * (none was acknowledged), every file of queue/ is checked (a broken one
 * goes to corrupt/), the original of a copy a delegate rule's filter sent
 * back is removed when the crash came between the two
 * (queue_delegation.c), state files without a message go, and the spool
 * is synced once. Ids go on past those of queue/ and hold/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"
#include "spool.h"
#include "queue_internal.h"

/* queue_recover_incoming - remove every file left in incoming/. */
static int queue_recover_incoming(int spool_fd, struct queue_recovery *rec)
{
	DIR *d;
	struct dirent *de;
	int fd = openat(spool_fd, SPOOL_INCOMING, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || (d = fdopendir(fd)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			rec->incomplete++;
	}
	closedir(d);
	return 0;
}

/* queue_recover_check - verify one committed file; move it aside if broken. */
static void queue_recover_check(int queue_fd, int spool_fd, const char *name,
				struct queue_recovery *rec)
{
	struct envelope env = {0};
	uint64_t clen, value;
	int fd = openat(queue_fd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT)
		return; /* an original its returned copy, read before it, removed */
	if (fd >= 0 && spool_message_read(fd, &env, &clen) == 0 && strcmp(env.id, name) == 0) {
		queue_delegation_recover(queue_fd, &env);
		rec->queued++;
		value = spool_id_value(name);
		if (value > rec->last_id)
			rec->last_id = value;
	} else {
		int cfd = openat(spool_fd, SPOOL_CORRUPT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		log_err("%s: not a complete message file: moved to %s/", name, SPOOL_CORRUPT);
		if (cfd < 0 || renameat(queue_fd, name, cfd, name) < 0)
			log_err("%s: cannot move to %s/: %s", name, SPOOL_CORRUPT, strerror(errno));
		if (cfd >= 0)
			close(cfd);
		rec->corrupt++;
	}
	envelope_clear(&env);
	if (fd >= 0)
		close(fd);
}

/*
 * queue_recover_states - remove state files whose message is neither in
 * queue/ nor in hold/ (it was delivered, or removed, just before a crash)
 * and the temporary files of interrupted state writes.
 */
static int queue_recover_states(int spool_fd)
{
	int state = openat(spool_fd, SPOOL_STATE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int queued = openat(spool_fd, SPOOL_QUEUE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int held = openat(spool_fd, SPOOL_HOLD, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d = NULL;
	int rc = -1;

	if (state < 0 || queued < 0 || held < 0 || (d = fdopendir(state)) == NULL)
		goto out;
	state = -1; /* now d's */
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (spool_id_valid(de->d_name) &&
		    (faccessat(queued, de->d_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
		     faccessat(held, de->d_name, F_OK, AT_SYMLINK_NOFOLLOW) == 0))
			continue;
		unlinkat(dirfd(d), de->d_name, 0);
	}
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	if (state >= 0)
		close(state);
	if (queued >= 0)
		close(queued);
	if (held >= 0)
		close(held);
	return rc;
}

/*
 * queue_recover_held - ids go on past those of hold/ too: a message held
 * on accept never meets a new one of the same id.
 */
static int queue_recover_held(int spool_fd, struct queue_recovery *rec)
{
	int fd = openat(spool_fd, SPOOL_HOLD, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	uint64_t value;
	DIR *d;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if ((value = spool_id_value(de->d_name)) > rec->last_id)
			rec->last_id = value;
	closedir(d);
	return 0;
}

/* queue_recover - remove incomplete files, check the committed ones. */
int queue_recover(int spool_fd, struct queue_recovery *rec)
{
	DIR *d;
	struct dirent *de;
	int fd;

	memset(rec, 0, sizeof(*rec));
	if (queue_recover_incoming(spool_fd, rec) < 0)
		return -1;
	fd = openat(spool_fd, SPOOL_QUEUE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (!spool_id_valid(de->d_name)) {
			log_warn("%s/%s: not a message file name: left alone", SPOOL_QUEUE, de->d_name);
			continue;
		}
		queue_recover_check(fd, spool_fd, de->d_name, rec);
	}
	closedir(d);
	if (queue_recover_held(spool_fd, rec) < 0 || queue_recover_states(spool_fd) < 0)
		return -1;
	/* Make the removals and moves durable before new mail is accepted. */
	if (fsync(spool_fd) < 0)
		return -1;
	return 0;
}
