/*
 * cli.c - option errors of vsmtpd's and vsmtpctl's command lines.
 *
 * getopt_long tells a refusal only through its return value, optopt and
 * optind; this turns them back into the option as the user typed it. A
 * missing value (':') leaves optind past the word that lacked it, as does
 * an unknown or misused long option; an unknown short letter is named by
 * optopt alone, since it may sit inside a cluster of letters.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* cli_word_len - the length of an option word up to any "=value". */
static int cli_word_len(const char *word)
{
	const char *eq = strchr(word, '=');

	return eq != NULL ? (int)(eq - word) : (int)strlen(word);
}

/* cli_is_long_val - whether optopt is the val of a long option, not a letter typed. */
static int cli_is_long_val(int opt, const char *shortopts)
{
	return opt >= CLI_LONG_ONLY || (opt > 0 && opt != ':' && opt != '+' &&
					 strchr(shortopts, opt) != NULL);
}

/* cli_option_error - say what was wrong with the option getopt_long refused. */
void cli_option_error(const char *prog, int ret, char *const argv[], const char *shortopts)
{
	const char *word = argv[optind - 1];
	int typed_long = strncmp(word, "--", 2) == 0;

	if (ret == ':' && typed_long)
		fprintf(stderr, "%s: option %s needs a value\n", prog, word);
	else if (ret == ':')
		fprintf(stderr, "%s: option -%c needs a value\n", prog, optopt);
	else if (optopt == 0)
		fprintf(stderr, "%s: unknown option %.*s\n", prog, cli_word_len(word), word);
	else if (cli_is_long_val(optopt, shortopts))
		fprintf(stderr, "%s: option %.*s takes no value\n", prog, cli_word_len(word), word);
	else
		fprintf(stderr, "%s: unknown option -%c\n", prog, optopt);
}
