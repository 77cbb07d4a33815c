/*
 * mail_header.h - header fields vsmtpd writes into the messages it makes
 * itself (delivery status notifications, the rules' send_mail()).
 */
#ifndef VSMTPD_MAIL_HEADER_H
#define VSMTPD_MAIL_HEADER_H

#include <stddef.h>
#include <stdint.h>

#define MAIL_HEADER_DATE_MAX 40 /* "Sat, 21 Nov 2026 10:00:00 +0000", NUL included */

/* mail_header_date - t as an RFC 5322 date-time in UTC (years 1970..9999). */
void mail_header_date(int64_t t, char *out, size_t outlen);

/*
 * mail_header_random - 64 unpredictable bits (unique ones at least, should
 * the kernel have no randomness to give); *seq gets a number no other call
 * in this process gets. For Message-IDs and MIME boundaries.
 */
uint64_t mail_header_random(unsigned long *seq);

/*
 * mail_header_message_id - a new, unique Message-ID value "<...@host>"
 * made at time now; host should be a clean host name.
 */
void mail_header_message_id(const char *host, int64_t now, char *out, size_t outlen);

#endif
