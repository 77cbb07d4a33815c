/*
 * utf8.h - decoding UTF-8 the strict way (RFC 3629): no overlong forms,
 * no surrogates, nothing past U+10FFFF, since those are the usual ways to
 * give one string a second spelling past a comparison or a check.
 */
#ifndef VSMTPD_UTF8_H
#define VSMTPD_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * utf8_char - the length of the well-formed character at s (n bytes
 * available, n >= 1), its code point in *cp; 0 when there is none.
 */
size_t utf8_char(const unsigned char *s, size_t n, uint32_t *cp);

#endif
