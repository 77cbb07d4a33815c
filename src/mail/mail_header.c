/*
 * mail_header.c - header fields of the messages vsmtpd makes itself.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "mail_header.h"

/* Makes Message-IDs unique within this process even without randomness. */
static atomic_ulong mail_header_counter;

/* mail_header_date - an RFC 5322 date-time in UTC. */
void mail_header_date(int64_t t, char *out, size_t outlen)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	time_t tt;

	/* Years 1970 to 9999: four digits, and gmtime_r cannot fail. */
	if (t < 0)
		t = 0;
	if (t > INT64_C(253402300799))
		t = INT64_C(253402300799);
	tt = (time_t)t;
	if (gmtime_r(&tt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
		 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

/* mail_header_random - random bits and a sequence number. */
uint64_t mail_header_random(unsigned long *seq)
{
	unsigned long counter = atomic_fetch_add(&mail_header_counter, 1) + 1;
	uint64_t r;

	*seq = counter;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
		return r;
	return ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 40) ^
	       ((uint64_t)counter * UINT64_C(0x9e3779b97f4a7c15));
}

/* mail_header_message_id - "<time.random.counter@host>". */
void mail_header_message_id(const char *host, int64_t now, char *out, size_t outlen)
{
	unsigned long q;
	uint64_t r = mail_header_random(&q);

	snprintf(out, outlen, "<%lld.%016llx.%lu@%s>", (long long)now, (unsigned long long)r, q,
		 host);
}
