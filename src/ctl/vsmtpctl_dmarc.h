/*
 * vsmtpctl_dmarc.h - vsmtpctl's dmarc commands: RFC 7489 aggregate
 * reports from the DMARC records the queue writes in the spool.
 */
#ifndef VSMTPD_VSMTPCTL_DMARC_H
#define VSMTPD_VSMTPCTL_DMARC_H

/*
 * ctl_dmarc_main - run "dmarc report ..." (argv[0] is "dmarc", argc counts
 * it) with the configuration conf (NULL: the default file), whose
 * spool_dir holds the records. Returns the exit status: 0 done, 1 a
 * record file or a report could not be read or written, 2 usage or
 * configuration error.
 */
int ctl_dmarc_main(const char *conf, int argc, char **argv);

#endif
