/*
 * scoreboard.c - the page the delivery worker and the queue share (see
 * scoreboard.h for why).
 *
 * The page is one fixed struct in a memfd that the queue creates, sizes
 * and seals against shrinking and growing: a worker could otherwise
 * truncate it and make the queue's next read fault. The worker writes the
 * id first and the step last (a release store), the queue reads the step
 * first (an acquire load); in practice the queue reads only after the
 * worker is gone, when nothing moves any more. Both run the same binary,
 * so the layout is the same on both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scoreboard.h"
#include "spool.h"

#define SCOREBOARD_MAGIC 0x76736231u /* "vsb1" */

struct scoreboard {
	uint32_t magic;
	atomic_uint step;    /* enum scoreboard_step */
	atomic_uint overrun; /* set by the overrun handler */
	char id[SPOOL_ID_LEN + 1];
	char rule[SCOREBOARD_RULE_MAX];
	char where[SCOREBOARD_WHERE_MAX];
};

/* scoreboard_create - a memfd of one struct scoreboard, sealed at that size. */
int scoreboard_create(void)
{
	int fd = memfd_create("vsmtpd-scoreboard", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	struct scoreboard *sb;

	if (fd < 0)
		return -1;
	if (ftruncate(fd, sizeof(struct scoreboard)) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
	    (sb = scoreboard_map(fd)) == NULL) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	sb->magic = SCOREBOARD_MAGIC;
	scoreboard_unmap(sb);
	return fd;
}

/* scoreboard_map - map fd shared when it has the scoreboard's size. */
struct scoreboard *scoreboard_map(int fd)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) < 0)
		return NULL;
	if (!S_ISREG(st.st_mode) || st.st_size != (off_t)sizeof(struct scoreboard)) {
		errno = EINVAL;
		return NULL;
	}
	p = mmap(NULL, sizeof(struct scoreboard), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* scoreboard_unmap - undo scoreboard_map. */
void scoreboard_unmap(struct scoreboard *sb)
{
	if (sb != NULL)
		munmap(sb, sizeof(*sb));
}

/* scoreboard_copy - a bounded string copy that always ends with NUL (async-signal-safe). */
static void scoreboard_copy(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src != NULL && src[i] != '\0' && i + 1 < size; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

/* scoreboard_enter - note id and step; the step last, so a note is whole. */
void scoreboard_enter(struct scoreboard *sb, const char *id, enum scoreboard_step step)
{
	if (sb == NULL)
		return;
	atomic_store_explicit(&sb->step, SCOREBOARD_IDLE, memory_order_relaxed);
	atomic_store_explicit(&sb->overrun, 0, memory_order_relaxed);
	sb->rule[0] = sb->where[0] = '\0';
	scoreboard_copy(sb->id, sizeof(sb->id), id);
	atomic_store_explicit(&sb->step, (unsigned)step, memory_order_release);
}

/* scoreboard_leave - idle again. */
void scoreboard_leave(struct scoreboard *sb)
{
	if (sb != NULL)
		atomic_store_explicit(&sb->step, SCOREBOARD_IDLE, memory_order_release);
}

/* scoreboard_overrun - the rule that ran past its time, then the flag. */
void scoreboard_overrun(struct scoreboard *sb, const char *rule, const char *where)
{
	if (sb == NULL)
		return;
	scoreboard_copy(sb->rule, sizeof(sb->rule), rule);
	scoreboard_copy(sb->where, sizeof(sb->where), where);
	atomic_store_explicit(&sb->overrun, 1, memory_order_release);
}

/* scoreboard_text - copy a string of the page, NUL-terminated, control characters as '?'. */
static void scoreboard_text(char *dst, const char *src, size_t size)
{
	size_t i;

	memcpy(dst, src, size);
	dst[size - 1] = '\0';
	for (i = 0; dst[i] != '\0'; i++)
		if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
			dst[i] = '?';
}

/* scoreboard_read - a checked copy of the note, 1 when it names a message. */
int scoreboard_read(const struct scoreboard *sb, struct scoreboard_entry *e)
{
	unsigned step;

	memset(e, 0, sizeof(*e));
	if (sb == NULL || sb->magic != SCOREBOARD_MAGIC)
		return 0;
	step = atomic_load_explicit(&sb->step, memory_order_acquire);
	if (step == SCOREBOARD_IDLE || step >= SCOREBOARD_STEPS)
		return 0;
	memcpy(e->id, sb->id, sizeof(e->id));
	e->id[SPOOL_ID_LEN] = '\0';
	if (!spool_id_valid(e->id))
		return 0;
	e->step = (enum scoreboard_step)step;
	if (atomic_load_explicit(&sb->overrun, memory_order_acquire) != 0) {
		e->overrun = 1;
		scoreboard_text(e->rule, sb->rule, sizeof(e->rule));
		scoreboard_text(e->where, sb->where, sizeof(e->where));
	}
	return 1;
}

/* scoreboard_clear - idle, no overrun. */
void scoreboard_clear(struct scoreboard *sb)
{
	if (sb == NULL)
		return;
	atomic_store_explicit(&sb->step, SCOREBOARD_IDLE, memory_order_release);
	atomic_store_explicit(&sb->overrun, 0, memory_order_release);
}
