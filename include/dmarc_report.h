/*
 * dmarc_report.h - RFC 7489 aggregate reports from the DMARC records the
 * queue writes (<spool>/dmarc/YYYY-MM-DD.jsonl, see docs/spool.md): the records are
 * added one line at a time, grouped by policy domain and by row, and each
 * policy domain's report is printed as the XML of RFC 7489 appendix C.
 * Used by vsmtpctl dmarc report.
 */
#ifndef VSMTPD_DMARC_REPORT_H
#define VSMTPD_DMARC_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct dmarc_report_set;

/* Who reports, and on what time. */
struct dmarc_report_meta {
	const char *org_name, *email;
	int64_t begin, end; /* Unix times, inclusive */
};

/* dmarc_report_set_new - an empty set of reports; NULL when out of memory. */
struct dmarc_report_set *dmarc_report_set_new(void);

/* dmarc_report_set_free - free a set (NULL is fine). */
void dmarc_report_set_free(struct dmarc_report_set *set);

/*
 * dmarc_report_add - one record line (len bytes, without its newline):
 * 1 when counted, 0 when left out (its time outside [begin, end], its
 * policy domain not only (when only is set), or no DMARC record was
 * published for it), -1 when the line is no record (or out of memory).
 */
int dmarc_report_add(struct dmarc_report_set *set, const char *line, size_t len, int64_t begin,
		     int64_t end, const char *only);

/* dmarc_report_count - how many policy domains have a report. */
size_t dmarc_report_count(const struct dmarc_report_set *set);

/* dmarc_report_domain - the policy domain of report i, in the order first seen. */
const char *dmarc_report_domain(const struct dmarc_report_set *set, size_t i);

/* dmarc_report_write - report i as XML to fp; 0 or -1 (a write error). */
int dmarc_report_write(const struct dmarc_report_set *set, size_t i,
		       const struct dmarc_report_meta *meta, FILE *fp);

#endif
