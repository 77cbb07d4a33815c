/*
 * local_delivery_internal.h - what the mailbox formats share.
 * local_delivery.c fills results, makes directories durably and writes a
 * delivered copy through a buffer; local_maildir.c and local_mbox.c use
 * those to deliver in their format.
 */
#ifndef VSMTPD_LOCAL_DELIVERY_INTERNAL_H
#define VSMTPD_LOCAL_DELIVERY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "local_delivery.h"

/* Bytes going to a file through a buffer, or only counted (fd < 0). */
struct ld_writer {
	int fd;
	char *buf;
	size_t used;
	uint64_t total; /* bytes accepted so far */
	int last;       /* the last byte accepted, -1 before any */
	int err;        /* the first write error, 0 while none */
};

/* ld_res_set - fill res; the reason is cut to fit. */
void ld_res_set(struct local_result *res, enum local_outcome outcome, const char *enhanced,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ld_res_errno - the outcome of a failed operation on path (err, an errno). */
void ld_res_errno(struct local_result *res, int err, const char *what, const char *path);

/* ld_fsync_dir - make the entries of directory path durable. */
int ld_fsync_dir(const char *path);

/* ld_fsync_parent - fsync the directory that holds path (absolute). */
int ld_fsync_parent(char *path);

/* ld_dir_mkdir - mkdir one directory (0700), syncing its parent when made; EEXIST is fine. */
int ld_dir_mkdir(char *path);

/* ld_dir_make - make the directory path (absolute, modified and restored)
 * and the missing ones above it. */
int ld_dir_make(char *path);

/* ld_writer_open - a writer on fd with its buffer; -1 (ENOMEM) when none. */
int ld_writer_open(struct ld_writer *w, int fd);

/* ld_writer_put - append len bytes. */
void ld_writer_put(struct ld_writer *w, const char *data, size_t len);

/* ld_writer_puts - append a string. */
void ld_writer_puts(struct ld_writer *w, const char *s);

/* ld_writer_put_value - append an address for a header or the From_ line,
 * on one line (one word when blank_too); bad replaces what would break it. */
void ld_writer_put_value(struct ld_writer *w, const char *s, int blank_too, char bad);

/* ld_writer_put_content - append the message, CRLF turned into LF, mboxrd-quoted if asked. */
void ld_writer_put_content(struct ld_writer *w, const char *content, size_t len, int mboxrd);

/* ld_writer_put_trace - Return-Path and Delivered-To, the header fields of the delivery. */
void ld_writer_put_trace(struct ld_writer *w, const char *recipient, const char *sender);

/* ld_writer_flush - write out the buffer; the first error sticks in w->err. */
void ld_writer_flush(struct ld_writer *w);

/* ld_writer_finish - flush, fsync and close fd; 0 or -1 with errno. */
int ld_writer_finish(struct ld_writer *w);

#endif
