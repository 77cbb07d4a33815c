/*
 * io.h - whole writes to files and memfds: every place that must put all
 * of a buffer into a descriptor (message files, mailboxes, state files,
 * copies) goes through one loop that retries short writes and EINTR.
 */
#ifndef VSMTPD_IO_H
#define VSMTPD_IO_H

#include <stddef.h>
#include <sys/types.h>

/*
 * io_write_all - write the len bytes of buf to fd: at offset off with
 * pwrite(), or at the file position with write() when off is -1. Returns
 * 0, or the errno value of the failure (EIO for a write that took
 * nothing). *done, when not NULL, gets the bytes written either way.
 */
int io_write_all(int fd, const void *buf, size_t len, off_t off, size_t *done);

#endif
