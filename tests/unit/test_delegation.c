/*
 * test_delegation.c - the tokens of delegate rules and their key: a token
 * made under the key verifies and says which message and rule; one changed
 * anywhere, or made under another key, does not; malformed ones are told
 * apart from forged ones; the key is made once in the spool (mode 0600)
 * and read back the same after a restart. Also the envelope members a
 * returned copy carries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "delegation.h"
#include "envelope.h"
#include "helper_mail.h"

/* use_key - a key of one repeated byte. */
static void use_key(unsigned char byte)
{
	unsigned char key[DELEGATION_KEY_LEN];

	memset(key, byte, sizeof(key));
	delegation_key_set(key);
}

/* make - the token for id and postq rule under the current key. */
static void make(const char *id, unsigned rule, char *buf)
{
	struct delegation_token t = {.stage = DELEGATION_POSTQ, .rule = rule};

	snprintf(t.id, sizeof(t.id), "%s", id);
	assert_int_equal(delegation_token_make(&t, buf, DELEGATION_TOKEN_MAX), 0);
}

/* verify - delegation_token_verify on a C string; why into *why. */
static int verify(const char *text, struct delegation_token *t, const char **why)
{
	return delegation_token_verify(text, strlen(text), t, why);
}

static void test_a_token_verifies_and_names_the_message_and_rule(void **state)
{
	char token[DELEGATION_TOKEN_MAX], folded[DELEGATION_TOKEN_MAX + 8];
	struct delegation_token t;
	const char *why;

	(void)state;
	use_key(7);
	make("000660CD977706E6", 3, token);
	assert_int_equal(strncmp(token, "1.000660CD977706E6.p3.", 22), 0);
	assert_int_equal(strlen(token), 22 + 32);
	assert_int_equal(verify(token, &t, &why), 0);
	assert_null(why);
	assert_string_equal(t.id, "000660CD977706E6");
	assert_int_equal(t.stage, DELEGATION_POSTQ);
	assert_int_equal(t.rule, 3);
	/* a delivery rule's */
	t.stage = DELEGATION_DELIVERY;
	assert_int_equal(delegation_token_make(&t, token, sizeof(token)), 0);
	assert_int_equal(strncmp(token, "1.000660CD977706E6.d3.", 22), 0);
	t.stage = 0;
	assert_int_equal(verify(token, &t, &why), 0);
	assert_int_equal(t.stage, DELEGATION_DELIVERY);
	t.stage = 'x';
	assert_int_equal(delegation_token_make(&t, token, sizeof(token)), -1);
	make("000660CD977706E6", 3, token);
	/* as a header field value may come: blanks and folding around it */
	snprintf(folded, sizeof(folded), " \t%s\r\n ", token);
	assert_int_equal(verify(folded, &t, &why), 0);
	make("000660CD977706E6", DELEGATION_RULE_MAX, token);
	assert_int_equal(verify(token, &t, &why), 0);
	assert_int_equal(t.rule, DELEGATION_RULE_MAX);
}

static void test_a_changed_token_or_another_key_is_a_bad_signature(void **state)
{
	char token[DELEGATION_TOKEN_MAX], bad[DELEGATION_TOKEN_MAX];
	struct delegation_token t;
	const char *why;
	size_t i;

	(void)state;
	use_key(7);
	make("000660CD977706E6", 3, token);
	/* another message, another rule, another MAC: each a digit away */
	for (i = 2; i < strlen(token); i++) {
		if (token[i] == '.' || token[i] == 'p')
			continue;
		snprintf(bad, sizeof(bad), "%s", token);
		bad[i] = bad[i] == '1' ? '2' : '1';
		assert_int_equal(verify(bad, &t, &why), -1);
		assert_string_equal(why, "bad signature");
	}
	/* the stage is signed too */
	snprintf(bad, sizeof(bad), "%s", token);
	bad[19] = 'd';
	assert_int_equal(verify(bad, &t, &why), -1);
	assert_string_equal(why, "bad signature");
	use_key(8);
	assert_int_equal(verify(token, &t, &why), -1);
	assert_string_equal(why, "bad signature");
}

static void test_malformed_tokens(void **state)
{
	static const char *const bad[] = {
	    "",
	    "1",
	    "2.000660CD977706E6.p3.0123456789abcdef0123456789abcdef",
	    "1.000660cd977706e6.p3.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E.p3.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.3.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.x3.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.P3.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.p0.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.p03.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.p1000000.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.p100001.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.p.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6..0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.p3.0123456789ABCDEF0123456789abcdef",
	    "1.000660CD977706E6.p3.0123456789abcdef0123456789abcde",
	    "1.000660CD977706E6.p3.0123456789abcdef0123456789abcdefa",
	    "1.000660CD977706E6.p3x0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6 p3.0123456789abcdef0123456789abcdef",
	    "1.000660CD977706E6.p3.0123456789abcdef 0123456789abcdef",
	};
	char canon[DELEGATION_TOKEN_MAX];
	struct delegation_token t;
	const char *why;
	size_t i;

	(void)state;
	use_key(7);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(delegation_token_parse(bad[i], strlen(bad[i]), &t, canon), -1);
		assert_int_equal(verify(bad[i], &t, &why), -1);
		assert_string_equal(why, "malformed");
	}
}

static void test_without_a_key_the_form_is_read_but_nothing_verifies(void **state)
{
	char token[DELEGATION_TOKEN_MAX], canon[DELEGATION_TOKEN_MAX];
	struct delegation_token t = {.stage = DELEGATION_POSTQ, .rule = 1};
	const char *why;

	(void)state;
	use_key(7);
	make("000660CD977706E6", 2, token);
	delegation_key_forget();
	assert_false(delegation_key_ready());
	snprintf(t.id, sizeof(t.id), "000660CD977706E6");
	assert_int_equal(delegation_token_make(&t, canon, sizeof(canon)), -1);
	assert_int_equal(delegation_token_parse(token, strlen(token), &t, canon), 0);
	assert_string_equal(canon, token);
	assert_int_equal(t.rule, 2);
	assert_int_equal(verify(token, &t, &why), -1);
	assert_string_equal(why, "no key");
}

static void test_the_key_is_made_once_and_read_back(void **state)
{
	char token[DELEGATION_TOKEN_MAX], err[256], path[512];
	struct delegation_token t;
	const char *why;
	struct stat st;
	FILE *fp;

	(void)state;
	delegation_key_forget();
	assert_int_equal(delegation_key_load(test_dir, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/%s", test_dir, DELEGATION_KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, DELEGATION_KEY_LEN);
	assert_int_equal(st.st_mode & 0777, 0600);
	make("000660CD977706E6", 1, token);
	/* a restart reads the same key: the token still verifies */
	delegation_key_forget();
	assert_int_equal(delegation_key_load(test_dir, err, sizeof(err)), 0);
	assert_int_equal(verify(token, &t, &why), 0);
	/* a key file of the wrong size is an error, not a new key */
	assert_non_null(fp = fopen(path, "w"));
	fputs("short", fp);
	fclose(fp);
	assert_int_equal(delegation_key_load(test_dir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a key of 32 bytes"));
	unlink(path);
	snprintf(path, sizeof(path), "%s/none", test_dir);
	assert_int_equal(delegation_key_load(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot open"));
}

static void test_the_envelope_keeps_the_delegation_marks(void **state)
{
	struct envelope env = {0}, back = {0};
	char *json;

	(void)state;
	snprintf(env.id, sizeof(env.id), "000660CD977706E7");
	assert_int_equal(envelope_set(&env.mail_from, "a@example.org"), 0);
	assert_int_equal(envelope_add_rcpt(&env, "b@example.org", 0, NULL, NULL), 0);
	assert_int_equal(envelope_set(&env.delegated_from, "000660CD977706E6"), 0);
	env.delegated_rule = 4;
	env.delegated_delivery = 1;
	env.postq_start = 4;
	assert_int_equal(envelope_set(&env.delegation_token, "1.000660CD977706E6.4.x"), 0);
	assert_non_null(json = envelope_to_json(&env));
	assert_int_equal(envelope_from_json(&back, json, strlen(json)), 0);
	assert_string_equal(back.delegated_from, "000660CD977706E6");
	assert_int_equal(back.delegated_rule, 4);
	assert_int_equal(back.delegated_delivery, 1);
	assert_int_equal(back.postq_start, 4);
	assert_string_equal(back.delegation_token, "1.000660CD977706E6.4.x");
	free(json);
	envelope_clear(&back);
	/* absent when not set */
	free(env.delegated_from);
	free(env.delegation_token);
	env.delegated_from = env.delegation_token = NULL;
	env.delegated_rule = env.postq_start = 0;
	env.delegated_delivery = 0;
	assert_non_null(json = envelope_to_json(&env));
	assert_null(strstr(json, "delegat"));
	assert_null(strstr(json, "postq_start"));
	free(json);
	envelope_clear(&env);
	/* out of range */
	json = "{\"id\":\"A\",\"mail_from\":\"\",\"rcpts\":[{\"address\":\"b@x\"}],\"postq_start\":"
	       "-1}";
	assert_int_equal(envelope_from_json(&back, json, strlen(json)), -1);
	envelope_clear(&back);
	json = "{\"id\":\"A\",\"mail_from\":\"\",\"rcpts\":[{\"address\":\"b@x\"}],"
	       "\"delegated_rule\":1e9}";
	assert_int_equal(envelope_from_json(&back, json, strlen(json)), -1);
	envelope_clear(&back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_token_verifies_and_names_the_message_and_rule),
	    cmocka_unit_test(test_a_changed_token_or_another_key_is_a_bad_signature),
	    cmocka_unit_test(test_malformed_tokens),
	    cmocka_unit_test(test_without_a_key_the_form_is_read_but_nothing_verifies),
	    cmocka_unit_test(test_the_key_is_made_once_and_read_back),
	    cmocka_unit_test(test_the_envelope_keeps_the_delegation_marks),
	};

	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
