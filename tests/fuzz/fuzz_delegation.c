/*
 * fuzz_delegation.c - libFuzzer target for the delegation token parser.
 *
 * The input is taken as an X-Vsmtpd-Delegation field value, as a filter
 * (or anyone who can reach a delegation listener) sends it. Besides memory
 * safety it checks that what parses has the documented form (a valid
 * queue id, a rule from 1 to DELEGATION_RULE_MAX), that the canonical form
 * parses to the same, and that nothing verifies but a token made with the
 * key: a forged input that verifies would be a broken MAC check.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delegation.h"
#include "spool.h"

/* check - abort (so libFuzzer reports it) when an invariant does not hold. */
static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[DELEGATION_KEY_LEN] = {42};
	char canon[DELEGATION_TOKEN_MAX], again[DELEGATION_TOKEN_MAX], made[DELEGATION_TOKEN_MAX];
	struct delegation_token t, u;
	const char *why;
	int verified;

	delegation_key_set(key);
	verified = delegation_token_verify((const char *)data, size, &t, &why) == 0;
	if (delegation_token_parse((const char *)data, size, &t, canon) < 0) {
		check(!verified, "verified what does not parse");
		return 0;
	}
	check(spool_id_valid(t.id), "a token with an invalid id");
	check(t.rule >= 1 && t.rule <= DELEGATION_RULE_MAX, "a rule out of range");
	check(strlen(canon) < DELEGATION_TOKEN_MAX, "canonical form too long");
	check(delegation_token_parse(canon, strlen(canon), &u, again) == 0, "canonical form");
	check(strcmp(canon, again) == 0 && strcmp(t.id, u.id) == 0 && t.rule == u.rule,
	      "canonical form reads differently");
	check(delegation_token_make(&t, made, sizeof(made)) == 0, "cannot make a parsed token");
	check(verified == (strcmp(made, canon) == 0), "verified a token the key did not make");
	return 0;
}
