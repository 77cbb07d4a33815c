/*
 * cli.h - what the command lines of vsmtpd and vsmtpctl share.
 *
 * Both read their options with getopt_long, quietly (an optstring that
 * starts with ':', after any '+'), and say themselves what was wrong, under
 * their own name rather than argv[0]'s path. For the message to name the
 * right option, every long option's val is either its short letter, listed
 * in the optstring, or CLI_LONG_ONLY and above for one with no short form.
 */
#ifndef VSMTPD_CLI_H
#define VSMTPD_CLI_H

#include <stdio.h>

/* The first val of the long options that have no short letter. */
#define CLI_LONG_ONLY 256

/*
 * cli_option_error - print "prog: ..." on stderr for what getopt_long just
 * refused: ret is what it returned ('?' or ':'), shortopts its optstring.
 */
void cli_option_error(const char *prog, int ret, char *const argv[], const char *shortopts);

#endif
