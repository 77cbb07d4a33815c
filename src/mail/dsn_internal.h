/*
 * dsn_internal.h - what dsn.c and dsn_original.c share: the growing buffer
 * the parts are written into, and the returned original that dsn.c puts
 * in the report as its third part.
 */
#ifndef VSMTPD_DSN_INTERNAL_H
#define VSMTPD_DSN_INTERNAL_H

#include <stddef.h>

#include "envelope.h"

#define DSN_LINE_MAX 998     /* never longer */
#define DSN_HEADERS_MIN 8192 /* the returned header section may always be that long */

/* A growing buffer; after a failed allocation it stays failed. */
struct dsn_buf {
	char *p;
	size_t len, cap;
	int oom;
};

/* What the report returns of the original. */
struct dsn_original {
	struct dsn_buf part;
	int full;        /* the whole message, else its header section */
	const char *why; /* why only the header, for the explanation */
};

/* dsn.c: append n bytes, or a string, to b. */
void dsn_buf_put(struct dsn_buf *b, const char *s, size_t n);
void dsn_buf_puts(struct dsn_buf *b, const char *s);

/* dsn_original - what to return of content (len bytes) into o: the whole
 * of it, or its header section and why (dsn_original.c). */
void dsn_original(struct dsn_original *o, const struct envelope *env, const char *content,
                  size_t len, int failure, size_t attach_limit);

/* dsn_original_type - the media type of the returned original; its
 * description into *description (dsn_original.c). */
const char *dsn_original_type(const struct envelope *env, int full, const char **description);

#endif
