/*
 * io.c - whole writes (see io.h). A descriptor that takes nothing (a write
 * returning 0) counts as a failure, so that no caller can loop forever on
 * a full or broken file.
 */
#include <errno.h>
#include <unistd.h>

#include "io.h"

/* io_write_all - all of buf into fd, at off or (-1) at the file position. */
int io_write_all(int fd, const void *buf, size_t len, off_t off, size_t *done)
{
	const char *p = buf;
	size_t written = 0;
	ssize_t n;
	int err = 0;

	while (written < len) {
		if (off < 0)
			n = write(fd, p + written, len - written);
		else
			n = pwrite(fd, p + written, len - written, off + (off_t)written);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			break;
		}
		written += (size_t)n;
	}
	if (done != NULL)
		*done = written;
	return err;
}
