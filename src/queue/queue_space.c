/*
 * queue_space.c - the spool's free space reserve ([limits] min_free_space):
 * the queue, sole owner of the spool, judges whether new mail may come.
 *
 * A session asks at MAIL (the creation of its message file) and again at
 * DATA or its first BDAT, before the content comes: a transaction opened
 * while there was room must not eat into the reserve once there is none,
 * nor outlive a reload that raised the reserve. Each answer looks at the
 * file system as it is (fstatvfs of the spool), the reserve plus the
 * client's SIZE= must stay free.
 *
 * A reserve larger than the whole free space refuses every message, which
 * on a small disk (the default reserve is 1.5 x max_message_size, 37.5M
 * with the shipped 25M) looks like a broken server: the queue says so when
 * it takes its settings, at start and on every reload.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/statvfs.h>

#include "log.h"
#include "queue_internal.h"

/* queue_space_free - bytes an unprivileged writer may still use on the
 * spool's file system; UINT64_MAX when it cannot be told. */
static uint64_t queue_space_free(const struct queue *q)
{
	struct statvfs sv;

	if (fstatvfs(q->spool_fd, &sv) < 0)
		return UINT64_MAX; /* the write will tell */
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* queue_space_ok - whether the spool keeps min_free_space free after need bytes. */
int queue_space_ok(const struct queue *q, uint64_t need)
{
	uint64_t avail = queue_space_free(q);

	return avail == UINT64_MAX || avail >= q->min_free_space + need;
}

/* queue_space_human - bytes as "37.5M" (binary units, one decimal). */
static void queue_space_human(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	int u = -1;

	while (v >= 1024 && u < (int)sizeof(units) - 2) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, bytes);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
}

/* queue_space_warn - say plainly when the reserve is more than is free:
 * then no message can be accepted at all. max_message_size: the
 * configuration's, of which the default reserve is 1.5 times. */
void queue_space_warn(const struct queue *q, uint64_t max_message_size)
{
	uint64_t avail = queue_space_free(q);
	char reserve[32], free_now[32], fallback[32];

	if (avail == UINT64_MAX || avail >= q->min_free_space)
		return;
	queue_space_human(q->min_free_space, reserve, sizeof(reserve));
	queue_space_human(avail, free_now, sizeof(free_now));
	queue_space_human(max_message_size + max_message_size / 2, fallback, sizeof(fallback));
	log_warn("[limits] min_free_space: the spool file system %s has %s free, less than the "
		 "reserve of %s the configuration keeps: every message is refused with 452 4.3.1 "
		 "until space is freed or min_free_space is lowered (unset, the reserve is 1.5 x "
		 "max_message_size, %s here)",
		 q->cfg->spool_dir, free_now, reserve, fallback);
}

/* queue_serve_space - IPC_MSG_SPACE: may a transaction's content come? */
void queue_serve_space(struct queue_client *c, struct ipc_msg *m, int passfd)
{
	int ok = queue_space_ok(c->q, m->a);

	(void)passfd;
	if (!ok)
		log_warn("%s: spool file system below its free space reserve: refusing the content",
			 m->id);
	queue_reply(c, IPC_MSG_SPACE_ANSWER, ok ? 0 : ENOSPC, m->id, -1);
}
