/*
 * fuzz_send_mail.c - libFuzzer target for the composer of send_mail()
 * messages (send_mail_compose).
 *
 * The input is a file as an administrator might write it. Either it is
 * refused (EBADMSG) for a reason the input shows (empty, a NUL, a bare CR,
 * a line over 998 octets), or the result is a message that can be sent as
 * it is: CRLF lines of at most 998 octets, a header with Date, Message-ID
 * and From, and composing it again changes nothing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "send_mail.h"

#define NOW 1700000000

/* check - abort (so libFuzzer reports it) when an invariant does not hold. */
static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

/* input_refusable - whether the input has what makes a file no message. */
static int input_refusable(const uint8_t *d, size_t n)
{
	size_t i, line = 0;

	if (n == 0)
		return 1;
	for (i = 0; i < n; i++) {
		if (d[i] == 0 || (d[i] == '\r' && (i + 1 == n || d[i + 1] != '\n')))
			return 1;
		if (d[i] == '\n') {
			line = 0;
		} else if (d[i] != '\r' && ++line > 998) {
			return 1;
		}
	}
	return 0;
}

/* header_has - whether the header of msg (CRLF lines) has a field named name. */
static int header_has(const char *msg, size_t len, const char *name)
{
	size_t n = strlen(name), off = 0;

	while (off + 2 <= len && !(msg[off] == '\r' && msg[off + 1] == '\n')) {
		const char *eol = memchr(msg + off, '\n', len - off);

		if (off + n < len && msg[off + n] == ':' && strncasecmp(msg + off, name, n) == 0)
			return 1;
		off = (size_t)(eol - msg) + 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len, len2, i, line = 0;
	int eightbit, eightbit2;
	char *msg, *again;

	msg = send_mail_compose((const char *)data, size, "sender@example.org", "mx.example.org",
				NOW, &len, &eightbit);
	if (msg == NULL) {
		check(errno == EBADMSG, "a refusal is EBADMSG");
		check(input_refusable(data, size), "only a file with a flaw is refused");
		return 0;
	}
	check(!input_refusable(data, size), "a file with a flaw is refused");
	check(len >= 2 && msg[len - 2] == '\r' && msg[len - 1] == '\n', "ends with CRLF");
	for (i = 0; i < len; i++) {
		check(msg[i] != '\0', "no NUL");
		if (msg[i] == '\r') {
			check(i + 1 < len && msg[i + 1] == '\n', "CR only before LF");
		} else if (msg[i] == '\n') {
			check(i > 0 && msg[i - 1] == '\r', "LF only after CR");
			line = 0;
		} else {
			check(++line <= 998, "lines of at most 998 octets");
		}
	}
	check(header_has(msg, len, "Date") && header_has(msg, len, "Message-ID") &&
		  header_has(msg, len, "From"),
	      "the header has Date, Message-ID and From");
	again = send_mail_compose(msg, len, "sender@example.org", "mx.example.org", NOW, &len2,
				  &eightbit2);
	check(again != NULL && len2 == len && memcmp(again, msg, len) == 0,
	      "composing the result again changes nothing");
	check(eightbit2 == eightbit, "the same 8-bit verdict");
	free(again);
	free(msg);
	return 0;
}
