/*
 * fuzz_message.c - libFuzzer target for the in-memory message.
 *
 * The input is a message. It must serialize back byte for byte. Then a run
 * of edits is applied - field append, set, rename, remove, and the To
 * helpers - each checked against what it promises (counts, values read
 * back, idempotent removal), and after every edit the message is written
 * out and parsed again: the new parse must find exactly the same fields and
 * the same body, which is what the spool and any later reader will see.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

/* The address the To edits play with, and its rewritten form. */
#define FUZZ_ADDR "fuzz@example.org"
#define FUZZ_NEW_ADDR "renamed@Example.NET"

/* check - abort (so libFuzzer reports it) when an invariant does not hold. */
static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

/* check_value - the nth field called name reads back as want. */
static void check_value(const struct message *m, const char *name, size_t nth, const char *want)
{
	size_t len;
	char *v = message_header_get(m, name, nth, &len);

	check(v != NULL, "field read back");
	check(len == strlen(want) && memcmp(v, want, len) == 0, "value read back");
	free(v);
}

/* check_reparse - m written out parses into the same fields and body. */
static void check_reparse(const struct message *m)
{
	size_t len, i, a_len, b_len, body_len, again_body_len;
	char *out = message_serialize(m, &len);
	struct message *again;
	const char *body, *again_body;

	check(out != NULL && len == message_size(m), "serialize");
	again = message_parse(out, len);
	check(again != NULL, "reparse");
	check(message_field_count(again) == message_field_count(m), "same field count");
	for (i = 0; i < message_field_count(m); i++) {
		const char *a = message_field_raw(m, i, &a_len);
		const char *b = message_field_raw(again, i, &b_len);

		check(a_len == b_len && memcmp(a, b, a_len) == 0, "same field");
	}
	body = message_body(m, &body_len);
	again_body = message_body(again, &again_body_len);
	check(body_len == again_body_len && memcmp(body, again_body, body_len) == 0, "same body");
	message_free(again);
	free(out);
}

/* fuzz_field_edits - append, set, rename and remove, each with its promise. */
static void fuzz_field_edits(struct message *m)
{
	static const char value[] =
	    "a value long enough that folding it must happen at least once, "
	    "or even twice, \xc3\xa9t\xc3\xa9 included, before it ends";
	size_t n = message_header_count(m, "X-Fuzz");
	size_t subjects = message_header_count(m, "Subject");

	check(message_header_append(m, "X-Fuzz", value) == 0, "append");
	check(message_header_count(m, "X-Fuzz") == n + 1, "append adds one");
	check_value(m, "X-Fuzz", n, value);
	check_reparse(m);

	check(message_header_set(m, "Subject", "fuzzed") == 0, "set");
	check_value(m, "Subject", 0, "fuzzed");
	check(message_header_count(m, "Subject") == (subjects ? subjects : 1),
	      "set keeps the others");
	check_reparse(m);

	check(message_header_prepend(m, "Received", "by fuzz") == 0, "prepend");
	check(message_header_index(m, "Received", 0) == 0, "prepend at top");
	/* A name no longer than the old one: rename may not refuse it for length. */
	check(message_header_rename(m, "Received", "X-Rcvd") >= 1, "rename");
	check(message_header_count(m, "Received") == 0, "rename leaves none");
	check_reparse(m);

	check(message_header_remove(m, "X-Fuzz") == (ssize_t)n + 1, "remove count");
	check(message_header_count(m, "X-Fuzz") == 0, "remove leaves none");
	check_reparse(m);
}

/* fuzz_to_edits - the To helpers on whatever To fields the input has. */
static void fuzz_to_edits(struct message *m)
{
	ssize_t removed, again;
	int added;

	errno = 0;
	added = message_to_add(m, FUZZ_ADDR);
	check(added == 0 || errno == EBADMSG, "to_add fails only on a broken list");
	check(added < 0 || message_header_count(m, "To") >= 1, "to_add leaves a To field");
	check_reparse(m);

	again = message_to_rewrite(m, FUZZ_ADDR, FUZZ_NEW_ADDR);
	check(again >= (added == 0 ? 1 : 0), "rewrite finds the added address");
	check(message_to_rewrite(m, FUZZ_ADDR, FUZZ_NEW_ADDR) == 0, "rewrite leaves none");
	check_reparse(m);

	removed = message_to_remove(m, FUZZ_NEW_ADDR);
	check(removed >= again, "remove finds the rewritten addresses");
	check(message_to_remove(m, "renamed@example.net") == 0, "remove is complete");
	check_reparse(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput - one message: exact round trip, then edits. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message *m = message_parse((const char *)data, size);
	size_t len;
	char *out;

	check(m != NULL, "parse");
	out = message_serialize(m, &len);
	check(out != NULL && len == size && memcmp(out, data, size) == 0, "exact round trip");
	check(message_size(m) == size && !message_modified(m), "size, unmodified");
	free(out);

	fuzz_field_edits(m);
	fuzz_to_edits(m);
	check(message_modified(m), "modified after edits");
	message_free(m);
	return 0;
}
