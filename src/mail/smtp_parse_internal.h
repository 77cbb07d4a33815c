/*
 * smtp_parse_internal.h - what smtp_parse.c and smtp_params.c share: the
 * byte and number helpers of smtp_parse.c, and the parameter parsing of
 * smtp_params.c that MAIL and RCPT call once their path is read.
 */
#ifndef VSMTPD_SMTP_PARSE_INTERNAL_H
#define VSMTPD_SMTP_PARSE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "smtp_parse.h"

/* smtp_parse.c: bytes and numbers. */
int smtp_is_digit(unsigned char c);
int smtp_is_alnum(unsigned char c);
int smtp_ncaseeq(const char *s, size_t n, const char *word);
size_t smtp_utf8_seq(const unsigned char *s);
int smtp_parse_u64(const char *s, size_t n, uint64_t *out);
const char *smtp_skip_spaces(const char *s);

/* smtp_params.c: the space-separated parameters at p, each at most once,
 * into mail or rcpt. Return NULL or the reply to send. */
const char *smtp_mail_params_parse(const char *p, struct smtp_mail *mail);
const char *smtp_rcpt_params_parse(const char *p, int utf8, struct smtp_rcpt *rcpt);

#endif
