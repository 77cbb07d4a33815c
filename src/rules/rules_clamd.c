/*
 * rules_clamd.c - ctx:clamd(name): the message, as the rules see it, sent
 * to ClamAV's clamd with INSTREAM, and clamd's answer as a result table.
 *
 * clamd's protocol (clamd(8)): "zINSTREAM\0", then the data in chunks,
 * each a 4-byte big-endian length and that many bytes, then a chunk of
 * length 0; clamd answers one line, ended by a NUL with the 'z' form:
 * "stream: OK", "stream: Eicar-Test-Signature FOUND" or "<reason> ERROR"
 * (a size limit, a database that failed to load), and closes. The chunks
 * are the pieces rules_service_send_message() hands over (64 KiB at most,
 * under clamd's StreamMaxLength of its own).
 *
 * An ERROR answer, a garbled one, a connection that fails or a deadline
 * that passes are failures of the call: the service's on_failure decides
 * (rules_service_failed). An infected message is no failure: the result
 * says so and the rule decides, e.g. ctx:quarantine("virus").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "rules_clamd.h"
#include "rules_internal.h"
#include "rules_service.h"

#define CLAMD_ANSWER_MAX 4096 /* bytes of an answer: one short line */
#define CLAMD_SHOWN_MAX 100   /* bytes of a bad answer quoted in the log */

/* clamd_shown - text fit for the log: non-printing bytes as '?', shortened. */
static void clamd_shown(const char *text, size_t len, char *out, size_t outlen)
{
	size_t i, n = len < CLAMD_SHOWN_MAX ? len : CLAMD_SHOWN_MAX;

	if (n >= outlen - 4)
		n = outlen - 4;
	for (i = 0; i < n; i++)
		out[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
	if (n < len) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/* clamd_ends_with - whether the len bytes at s end with suffix. */
static int clamd_ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* rules_clamd_parse - see rules_clamd.h. */
enum rules_clamd_verdict rules_clamd_parse(const char *reply, size_t len,
                                           char virus[RULES_CLAMD_VIRUS_MAX])
{
	static const char prefix[] = "stream: ", found[] = " FOUND";
	const char *nul = memchr(reply, '\0', len);
	char shown[CLAMD_SHOWN_MAX + 8];
	size_t i, n;

	if (nul != NULL)
		len = (size_t)(nul - reply);
	while (len > 0 && (reply[len - 1] == '\n' || reply[len - 1] == '\r'))
		len--;
	virus[0] = '\0';
	if (len == strlen("stream: OK") && memcmp(reply, "stream: OK", len) == 0)
		return RULES_CLAMD_CLEAN;
	if (clamd_ends_with(reply, len, " ERROR")) {
		clamd_shown(reply, len, virus, RULES_CLAMD_VIRUS_MAX);
		return RULES_CLAMD_ERROR;
	}
	if (len > sizeof(prefix) - 1 + sizeof(found) - 1 &&
	    memcmp(reply, prefix, sizeof(prefix) - 1) == 0 && clamd_ends_with(reply, len, found)) {
		const char *name = reply + sizeof(prefix) - 1;

		n = len - (sizeof(prefix) - 1) - (sizeof(found) - 1);
		for (i = 0; i < n && name[i] > 0x20 && name[i] < 0x7f; i++)
			;
		if (i == n && n < RULES_CLAMD_VIRUS_MAX) {
			memcpy(virus, name, n);
			virus[n] = '\0';
			return RULES_CLAMD_INFECTED;
		}
	}
	clamd_shown(reply, len, shown, sizeof(shown));
	snprintf(virus, RULES_CLAMD_VIRUS_MAX, "unexpected answer \"%s\"", shown);
	return RULES_CLAMD_GARBAGE;
}

/* clamd_chunk - rules_service_send_message's fn: one INSTREAM chunk. */
static int clamd_chunk(struct rules_service_call *c, const char *buf, size_t len, void *arg)
{
	unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
	                        (unsigned char)(len >> 8), (unsigned char)len};

	(void)arg;
	if (rules_service_write(c, hdr, sizeof(hdr)) < 0)
		return -1;
	return rules_service_write(c, buf, len);
}

/* clamd_scan - the exchange: 0 with the verdict, or -1 with c->error. */
static int clamd_scan(struct rules_service_call *c, const struct message *m,
                      enum rules_clamd_verdict *verdict, char virus[RULES_CLAMD_VIRUS_MAX])
{
	static const char command[] = "zINSTREAM"; /* sent with its NUL */
	char *answer;
	size_t len;

	char why[sizeof(c->error)];

	if (rules_service_connect(c) < 0)
		return -1;
	if (rules_service_write(c, command, sizeof(command)) < 0 ||
	    rules_service_send_message(c, m, clamd_chunk, NULL) < 0 ||
	    rules_service_write(c, "\0\0\0\0", 4) < 0) {
		/* clamd answers and closes early when the stream is over its
		 * StreamMaxLength: its answer says more than the broken pipe. */
		memcpy(why, c->error, sizeof(why));
		answer = rules_service_read_all(c, CLAMD_ANSWER_MAX, &len);
		if (answer == NULL || len == 0) {
			free(answer);
			memcpy(c->error, why, sizeof(why));
			return -1;
		}
	} else if ((answer = rules_service_read_all(c, CLAMD_ANSWER_MAX, &len)) == NULL) {
		return -1;
	}
	if (len == 0) {
		free(answer);
		snprintf(c->error, sizeof(c->error), "clamd closed the connection without an answer");
		return -1;
	}
	*verdict = rules_clamd_parse(answer, len, virus);
	free(answer);
	if (*verdict == RULES_CLAMD_ERROR || *verdict == RULES_CLAMD_GARBAGE) {
		snprintf(c->error, sizeof(c->error), "clamd: %s", virus);
		return -1;
	}
	return 0;
}

/* lua_ctx_clamd - ctx:clamd(name): scan the message with the clamd service. */
static int lua_ctx_clamd(lua_State *L)
{
	struct message *m = rules_service_need_msg(L, "ctx:clamd");
	const struct service_config *svc = rules_service_find(L, 2, SERVICE_CLAMD);
	enum rules_clamd_verdict verdict = RULES_CLAMD_GARBAGE;
	char virus[RULES_CLAMD_VIRUS_MAX], line[RULES_CLAMD_VIRUS_MAX + 16];
	struct rules_service_call c;

	rules_service_start(&c, svc);
	if (rules_service_too_big(&c, m)) {
		rules_service_push_result(L, &c, 0, 1);
		return 1;
	}
	if (clamd_scan(&c, m, &verdict, virus) < 0) {
		rules_service_failed(L, &c); /* returns only for on_failure = accept */
		rules_service_push_result(L, &c, 1, 0);
		return 1;
	}
	rules_service_close(&c);
	if (verdict == RULES_CLAMD_INFECTED)
		snprintf(line, sizeof(line), "infected (%s)", virus);
	else
		snprintf(line, sizeof(line), "clean");
	rules_service_log(&c, line);
	rules_service_push_result(L, &c, 0, 0);
	lua_pushboolean(L, verdict == RULES_CLAMD_CLEAN);
	lua_setfield(L, -2, "clean");
	if (verdict == RULES_CLAMD_INFECTED) {
		lua_pushstring(L, virus);
		lua_setfield(L, -2, "virus");
	}
	return 1;
}

/* The ctx method of clamd (rules_ctx_open adds it). */
const luaL_Reg ctx_clamd_methods[] = {
    {"clamd", lua_ctx_clamd},
    {NULL, NULL},
};
