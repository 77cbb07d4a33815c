/*
 * vsmtpctl_dmarc.c - vsmtpctl dmarc report: RFC 7489 aggregate reports,
 * one per policy domain, from the records the queue appends to
 * <spool>/dmarc/YYYY-MM-DD.jsonl (dmarc_report.c groups and prints them).
 *
 *   vsmtpctl [-c FILE] dmarc report --org-name NAME --email ADDR
 *            [--from DATE] [--to DATE] [--domain D] [--output DIR]
 *
 * The range is whole UTC days, DATE being YYYY-MM-DD, yesterday by
 * default (a daily cron job). A line is written on the day its message
 * was committed, which can be the day after its "time": the files of the
 * day before and after the range are read too, and each line is counted
 * by its time. Without --output the report goes to stdout, and there
 * must be one (--domain picks it); with --output each report goes to
 * DIR/<receiver>!<policy domain>!<begin>!<end>.xml (the name RFC 7489
 * section 7.2.1.1 gives, the receiver being the domain of --email), whose
 * paths are printed one a line. The spool is read directly: vsmtpctl runs
 * as root, the daemon need not be running.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "dmarc_report.h"
#include "spool.h"
#include "vsmtpctl_dmarc.h"
#include "vsmtpctl_queue.h"

#define CTL_DMARC_DAY 86400

enum { CTL_DMARC_OK, CTL_DMARC_FAILED, CTL_DMARC_USAGE };

/* What the command line asked for. */
struct ctl_dmarc_args {
	const char *from, *to, *org_name, *email, *domain, *output;
};

/* ctl_dmarc_day - the Unix time of 00:00 UTC of YYYY-MM-DD; -1 when it is no date. */
static int64_t ctl_dmarc_day(const char *s)
{
	struct tm tm = {0};
	const char *end;

	if (strlen(s) != 10 || (end = strptime(s, "%Y-%m-%d", &tm)) == NULL || *end != '\0')
		return -1;
	return (int64_t)timegm(&tm);
}

/* ctl_dmarc_parse - the options; 0, 1 for --help, -1 for a usage error. */
static int ctl_dmarc_parse(int argc, char **argv, struct ctl_dmarc_args *a)
{
	static const struct option opts[] = {
	    {"from", required_argument, NULL, 'f'},   {"to", required_argument, NULL, 't'},
	    {"org-name", required_argument, NULL, 'o'}, {"email", required_argument, NULL, 'e'},
	    {"domain", required_argument, NULL, 'd'}, {"output", required_argument, NULL, 'O'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	int opt;

	memset(a, 0, sizeof(*a));
	optind = 0; /* GNU getopt starts over, at argv[1] */
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': a->from = optarg; break;
		case 't': a->to = optarg; break;
		case 'o': a->org_name = optarg; break;
		case 'e': a->email = optarg; break;
		case 'd': a->domain = optarg; break;
		case 'O': a->output = optarg; break;
		case 'h': return 1;
		default:
			cli_option_error("vsmtpctl dmarc", opt, argv, ":h");
			return -1;
		}
	}
	if (optind + 1 != argc || strcmp(argv[optind], "report") != 0) {
		fprintf(stderr, "vsmtpctl: dmarc: the command is \"report\"\n");
		return -1;
	}
	if (a->org_name == NULL || a->email == NULL || strchr(a->email, '@') == NULL) {
		fprintf(stderr, "vsmtpctl: dmarc report: --org-name and --email ADDR are needed\n");
		return -1;
	}
	return 0;
}

/* ctl_dmarc_read - add the records of one day's file (a missing one is
 * none); 0, or -1 when it cannot be read. */
static int ctl_dmarc_read(struct dmarc_report_set *set, const char *spool, int64_t day,
			  const struct dmarc_report_meta *meta, const char *only)
{
	char path[4096], name[32], *line = NULL;
	time_t t = (time_t)day;
	size_t cap = 0;
	ssize_t n;
	struct tm tm;
	FILE *fp;
	unsigned long lineno = 0;

	gmtime_r(&t, &tm);
	strftime(name, sizeof(name), "%Y-%m-%d.jsonl", &tm);
	snprintf(path, sizeof(path), "%s/%s/%s", spool, SPOOL_DMARC, name);
	if ((fp = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "vsmtpctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, fp)) > 0) {
		lineno++;
		if (line[n - 1] == '\n')
			n--;
		/* a line cut short by a crash is skipped, said */
		if (dmarc_report_add(set, line, (size_t)n, meta->begin, meta->end, only) < 0)
			fprintf(stderr, "vsmtpctl: %s:%lu: not a record, skipped\n", path, lineno);
	}
	free(line);
	fclose(fp);
	return 0;
}

/* ctl_dmarc_emit - every report to stdout or into files under dir. */
static int ctl_dmarc_emit(const struct dmarc_report_set *set, const struct dmarc_report_meta *meta,
			  const char *dir)
{
	const char *receiver = strrchr(meta->email, '@') + 1;
	char path[4096];
	size_t i;
	FILE *fp;
	int rc = CTL_DMARC_OK;

	if (dir == NULL) {
		if (dmarc_report_count(set) > 1) {
			fprintf(stderr, "vsmtpctl: dmarc report: %zu policy domains: pick one with "
					"--domain, or write them all with --output DIR\n",
				dmarc_report_count(set));
			return CTL_DMARC_USAGE;
		}
		if (dmarc_report_count(set) == 1 && dmarc_report_write(set, 0, meta, stdout) < 0)
			return CTL_DMARC_FAILED;
		return CTL_DMARC_OK;
	}
	for (i = 0; i < dmarc_report_count(set); i++) {
		snprintf(path, sizeof(path), "%s/%s!%s!%lld!%lld.xml", dir, receiver,
			 dmarc_report_domain(set, i), (long long)meta->begin, (long long)meta->end);
		if ((fp = fopen(path, "we")) == NULL || dmarc_report_write(set, i, meta, fp) < 0 ||
		    fclose(fp) != 0) {
			fprintf(stderr, "vsmtpctl: %s: %s\n", path, strerror(errno));
			rc = CTL_DMARC_FAILED;
			continue;
		}
		printf("%s\n", path);
	}
	return rc;
}

int ctl_dmarc_main(const char *conf, int argc, char **argv)
{
	struct ctl_dmarc_args a;
	struct dmarc_report_meta meta;
	struct dmarc_report_set *set;
	int64_t from, to, yesterday = ((int64_t)time(NULL) / CTL_DMARC_DAY - 1) * CTL_DMARC_DAY;
	int64_t day;
	struct config *cfg;
	char err[1024];
	int rc;

	if ((rc = ctl_dmarc_parse(argc, argv, &a)) != 0) {
		if (rc < 0)
			return ctl_usage_error("dmarc");
		ctl_usage(stdout, "dmarc");
		return CTL_DMARC_OK;
	}
	from = a.from != NULL ? ctl_dmarc_day(a.from) : yesterday;
	to = a.to != NULL ? ctl_dmarc_day(a.to) : a.from != NULL ? from : yesterday;
	if (from < 0 || to < 0 || to < from) {
		fprintf(stderr, "vsmtpctl: dmarc report: --from and --to are dates YYYY-MM-DD, "
				"--from not after --to\n");
		return ctl_usage_error("dmarc");
	}
	meta = (struct dmarc_report_meta){
	    .org_name = a.org_name, .email = a.email, .begin = from, .end = to + CTL_DMARC_DAY - 1};
	if ((cfg = config_load(conf, NULL, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "vsmtpctl: %s\n", err);
		return CTL_DMARC_USAGE;
	}
	if ((set = dmarc_report_set_new()) == NULL) {
		config_free(cfg);
		fprintf(stderr, "vsmtpctl: out of memory\n");
		return CTL_DMARC_FAILED;
	}
	rc = CTL_DMARC_OK;
	for (day = from - CTL_DMARC_DAY; day <= to + CTL_DMARC_DAY; day += CTL_DMARC_DAY)
		if (ctl_dmarc_read(set, cfg->spool_dir, day, &meta, a.domain) < 0)
			rc = CTL_DMARC_FAILED;
	config_free(cfg);
	if (rc == CTL_DMARC_OK)
		rc = ctl_dmarc_emit(set, &meta, a.output);
	dmarc_report_set_free(set);
	return rc;
}
