/*
 * rules_zone.h - DNS answers from a zone file, so that rules which look
 * names up (dns.lookup, ctx:spf(), ctx:dkim()) can be tested offline:
 * `vsmtpctl rules run --dns-zone FILE`, `dns_zone = "FILE"` in a test file.
 *
 * The format, one record a line, '#' to the end of the line a comment:
 *
 *   NAME A        192.0.2.1
 *   NAME AAAA     2001:db8::1
 *   NAME MX       10 mx.example.org      (a null MX: "0 .")
 *   NAME TXT      "v=spf1 -all"          (several "strings" for one record)
 *   NAME PTR      host.example.org
 *   NAME CNAME    other.example.org
 *   NAME TIMEOUT                          (no answer comes for this name)
 *   NAME SERVFAIL                         (the server fails for this name)
 *
 * Names are matched without regard to case or a trailing dot. A name the
 * file does not hold does not exist (NXDOMAIN); a name it holds without a
 * record of the type asked has no data (NODATA). A CNAME is followed (8
 * steps at most). TIMEOUT, SERVFAIL and CNAME take no other record of
 * their name.
 */
#ifndef VSMTPD_RULES_ZONE_H
#define VSMTPD_RULES_ZONE_H

#include <stddef.h>

#include "rules_dns.h"

#define RULES_ZONE_FILE_MAX (1u << 20) /* bytes of a zone file */
#define RULES_ZONE_RECORDS_MAX 5000
#define RULES_ZONE_RRSET_MAX 64 /* records of one name and type */

struct rules_zone;

/*
 * rules_zone_parse - the zone in text (len bytes), read from file (the
 * name for the errors). Returns it, or NULL with "file:line: reason" in
 * err.
 */
struct rules_zone *rules_zone_parse(const char *file, const char *text, size_t len, char *err,
				    size_t errlen);

/* rules_zone_load - rules_zone_parse() of the file at path. */
struct rules_zone *rules_zone_load(const char *path, char *err, size_t errlen);

/* rules_zone_free - release a zone (NULL is fine). */
void rules_zone_free(struct rules_zone *z);

/*
 * rules_zone_query - what the zone answers to a query of type (ns_t_a,
 * ...) for name, as rules_dns_query() would: with RULES_DNS_ANSWER,
 * *answer is a DNS response message (header, the question, the answer
 * records; malloc'ed, *len bytes, the caller frees it), otherwise NULL.
 * RULES_DNS_TIMEOUT comes at once.
 */
enum rules_dns_result rules_zone_query(const struct rules_zone *z, const char *name, int type,
				       unsigned char **answer, size_t *len);

/*
 * rules_zone_name_check - the length of w (wlen bytes) without one trailing
 * dot when it is a name DNS may hold, else 0: 1 to 253 bytes of labels of
 * 1 to 63 characters from space to '~'. Wider than the names the rules may
 * look up themselves (dns.lookup): DNS allows any byte in a label, and what
 * an SPF record names or its macros expand to ("%{l}.example.com",
 * "foo:bar/baz.example.com") is looked up as it is. Zone files hold such
 * names too.
 */
size_t rules_zone_name_check(const char *w, size_t wlen);

#endif
