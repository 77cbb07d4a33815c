/*
 * fuzz_smtp_parse.c - libFuzzer target for the SMTP command line parser.
 *
 * The input is taken as one command line and handed to every parse
 * function. Besides memory safety it checks that replies are well-formed
 * single lines, that accepted addresses respect the RFC 5321 limits and the
 * SMTPUTF8 rule, and that whatever is accepted survives a round trip through
 * its own formatted form.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"

#define LINE_MAX_FUZZ 4096

/* check - abort (so libFuzzer reports it) when an invariant does not hold. */
static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

/* check_reply - NULL, or "NNN N.N.N text" on one printable line. */
static void check_reply(const char *r)
{
	size_t i, n;

	if (!r)
		return;
	n = strlen(r);
	check(n >= 10 && n < 512, "reply length");
	check(r[0] >= '2' && r[0] <= '5' && r[1] >= '0' && r[1] <= '9' && r[2] >= '0' &&
	          r[2] <= '9' && r[3] == ' ',
	      "reply code");
	check(r[4] == r[0] && r[5] == '.', "enhanced status code class");
	for (i = 0; i < n; i++)
		check(r[i] >= 0x20 && r[i] < 0x7f, "reply is printable ASCII");
}

/* check_address - an accepted address respects the limits and the utf8 rule. */
static void check_address(const struct smtp_address *a, int utf8)
{
	check(strlen(a->local) <= SMTP_LOCAL_MAX, "local part length");
	check(strlen(a->domain) <= SMTP_DOMAIN_MAX, "domain length");
	check(strlen(a->local) + strlen(a->domain) + 3 <= SMTP_PATH_MAX || a->domain[0] == '\0',
	      "path length");
	if (a->null)
		check(a->local[0] == '\0' && a->domain[0] == '\0', "null path is empty");
	else
		check(a->local[0] != '\0', "local part present");
	if (!utf8)
		check(smtp_address_is_ascii(a), "8-bit address without SMTPUTF8");
}

/* same_address - two parsed addresses are identical. */
static int same_address(const struct smtp_address *a, const struct smtp_address *b)
{
	return a->null == b->null && strcmp(a->local, b->local) == 0 &&
	       strcmp(a->domain, b->domain) == 0;
}

/* fuzz_mail - MAIL, and the round trip of what it accepts. */
static void fuzz_mail(const char *args)
{
	struct smtp_mail m, again;
	char addr[SMTP_PATH_MAX + 8], line[SMTP_PATH_MAX + 32];
	const char *r = smtp_mail_parse(args, &m);

	check_reply(r);
	if (r)
		return;
	check_address(&m.from, m.smtputf8);
	check(strlen(m.envid) <= SMTP_ENVID_MAX && strlen(m.auth) <= SMTP_AUTH_PARAM_MAX,
	      "parameter lengths");
	check(smtp_address_format(&m.from, addr, sizeof(addr)) < sizeof(addr), "format fits");
	snprintf(line, sizeof(line), "FROM:<%s>%s", addr, m.smtputf8 ? " SMTPUTF8" : "");
	check(smtp_mail_parse(line, &again) == NULL, "formatted sender parses again");
	check(same_address(&m.from, &again.from), "sender round trip");
}

/* fuzz_rcpt - RCPT with and without SMTPUTF8, and the round trip. */
static void fuzz_rcpt(const char *args, int utf8)
{
	struct smtp_rcpt rc, again;
	char addr[SMTP_PATH_MAX + 8], line[SMTP_PATH_MAX + 32];
	const char *r = smtp_rcpt_parse(args, utf8, &rc);

	check_reply(r);
	if (r)
		return;
	check_address(&rc.to, utf8);
	check(!rc.to.null, "null recipient accepted");
	check(strlen(rc.orcpt) <= SMTP_ORCPT_MAX, "ORCPT length");
	check((rc.orcpt_type[0] == '\0') == (rc.orcpt[0] == '\0'), "ORCPT type and address");
	check(!(rc.notify & SMTP_NOTIFY_NEVER) || rc.notify == SMTP_NOTIFY_NEVER, "NOTIFY=NEVER");
	check(smtp_address_format(&rc.to, addr, sizeof(addr)) < sizeof(addr), "format fits");
	snprintf(line, sizeof(line), "TO:<%s>", addr);
	check(smtp_rcpt_parse(line, utf8, &again) == NULL, "formatted recipient parses again");
	check(same_address(&rc.to, &again.to), "recipient round trip");
}

/* fuzz_bdat - BDAT, and the round trip of what it accepts. */
static void fuzz_bdat(const char *args)
{
	uint64_t size = 0, size2 = 0;
	int last = 0, last2 = 0;
	char line[64];
	const char *r = smtp_bdat_parse(args, &size, &last);

	check_reply(r);
	if (r)
		return;
	snprintf(line, sizeof(line), "%llu%s", (unsigned long long)size, last ? " LAST" : "");
	check(smtp_bdat_parse(line, &size2, &last2) == NULL && size2 == size && last2 == last,
	      "BDAT round trip");
}

/* fuzz_xtext - encoding never overflows; printable text decodes back as ENVID. */
static void fuzz_xtext(const char *text)
{
	char out[3 * LINE_MAX_FUZZ + 1], line[3 * LINE_MAX_FUZZ + 32];
	size_t n, small, i, len = strlen(text);
	struct smtp_mail m;
	int printable = 1;

	for (small = 0; small < 8; small++) {
		n = smtp_xtext_encode(text, out, small);
		check(n == (size_t)-1 || (n < small && strlen(out) == n),
		      "xtext into small buffer");
	}
	n = smtp_xtext_encode(text, out, sizeof(out));
	check(n != (size_t)-1 && strlen(out) == n, "xtext fits three times the input");
	for (i = 0; i < n; i++)
		check(out[i] > ' ' && out[i] < 0x7f && out[i] != '=', "xtext characters");
	for (i = 0; i < len; i++)
		if (text[i] < 0x20 || text[i] > 0x7e)
			printable = 0;
	if (!printable || len == 0 || len > SMTP_ENVID_MAX)
		return;
	snprintf(line, sizeof(line), "FROM:<> ENVID=%s", out);
	check(smtp_mail_parse(line, &m) == NULL && strcmp(m.envid, text) == 0, "xtext round trip");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput - one command line through every parser. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[LINE_MAX_FUZZ + 1];
	const char *args = NULL;
	enum smtp_verb verb;

	if (size > LINE_MAX_FUZZ)
		size = LINE_MAX_FUZZ;
	memcpy(line, data, size);
	line[size] = '\0';

	check_reply(smtp_line_check(line, size, 0));
	check_reply(smtp_line_check(line, size, 1));

	verb = smtp_verb_parse(line, &args);
	check(args != NULL, "args set");
	if (verb != SMTP_VERB_UNKNOWN)
		check(args >= line && args <= line + strlen(line) &&
		          strncasecmp(line, smtp_verb_name(verb), 4) == 0 &&
		          (line[4] == '\0' || line[4] == ' '),
		      "verb matches its name");

	check_reply(smtp_helo_parse(line));
	fuzz_mail(line);
	fuzz_rcpt(line, 0);
	fuzz_rcpt(line, 1);
	fuzz_bdat(line);
	fuzz_xtext(line);
	if (verb != SMTP_VERB_UNKNOWN) {
		check_reply(smtp_helo_parse(args));
		fuzz_mail(args);
		fuzz_rcpt(args, 1);
		fuzz_bdat(args);
	}
	return 0;
}
