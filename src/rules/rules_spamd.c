/*
 * rules_spamd.c - ctx:spamd(name [, {report = true}]): the message, as the
 * rules see it, checked by SpamAssassin's spamd, and its verdict as a
 * result table.
 *
 * The spamc protocol (spamd's PROTOCOL file): a request line "SYMBOLS
 * SPAMC/1.5" (or "REPORT SPAMC/1.5" for the report as well), headers
 * Content-length (the message's size) and User (the service's user, when
 * set), an empty line and the message; spamd answers "SPAMD/1.1 0 EX_OK",
 * a header "Spam: True ; 15.0 / 5.0" (the verdict, the score and the
 * threshold), Content-length, an empty line and a body: the names of the
 * rules that hit, comma-separated, or the report, whose table names them
 * one a line. Then it closes.
 *
 * A status other than 0 (EX_OK), an answer without a Spam header or one
 * that does not parse, a failed connection and a passed deadline are
 * failures of the call: the service's on_failure decides. A spam verdict
 * is no failure: the rule decides what it means.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <lauxlib.h>

#include "rules_internal.h"
#include "rules_service.h"
#include "rules_spamd.h"

#define SPAMD_ANSWER_MAX (1u << 20) /* bytes of an answer, report included */
#define SPAMD_NUMBER_MAX 32         /* characters of a score */

/* spamd_line - the line at *pos (its line ending left out) and *pos past
 * it; -1 when no line ending comes before the end. */
static int spamd_line(const char *buf, size_t len, size_t *pos, const char **line, size_t *n)
{
	const char *start = buf + *pos, *lf = memchr(start, '\n', len - *pos);

	if (lf == NULL)
		return -1;
	*line = start;
	*n = (size_t)(lf - start);
	if (*n > 0 && start[*n - 1] == '\r')
		--*n;
	*pos = (size_t)(lf - buf) + 1;
	return 0;
}

/* spamd_blanks - p past spaces and tabs, not beyond end. */
static const char *spamd_blanks(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* spamd_number - a finite decimal number at *p (before end) into *out and
 * *p past it: 0, or -1. */
static int spamd_number(const char **p, const char *end, double *out)
{
	char text[SPAMD_NUMBER_MAX + 1], *stop;
	size_t n = 0;

	while (*p + n < end && n < SPAMD_NUMBER_MAX && strchr("+-.0123456789eE", (*p)[n]) != NULL &&
	       (*p)[n] != '\0')
		n++;
	if (n == 0)
		return -1;
	memcpy(text, *p, n);
	text[n] = '\0';
	*out = strtod(text, &stop);
	if (*stop != '\0' || !isfinite(*out))
		return -1;
	*p += n;
	return 0;
}

/* spamd_verdict - the value of a Spam header: "True ; 15.0 / 5.0". */
static int spamd_verdict(const char *p, const char *end, struct rules_spamd_reply *out)
{
	static const struct {
		const char *word;
		int spam;
	} words[] = {{"True", 1}, {"Yes", 1}, {"False", 0}, {"No", 0}};
	size_t i, n;

	p = spamd_blanks(p, end);
	for (n = 0; p + n < end && p[n] != ' ' && p[n] != '\t' && p[n] != ';'; n++)
		;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i].word) == n && strncasecmp(p, words[i].word, n) == 0)
			break;
	if (i == sizeof(words) / sizeof(words[0]))
		return -1;
	out->is_spam = words[i].spam;
	p = spamd_blanks(p + n, end);
	if (p == end || *p != ';')
		return -1;
	p = spamd_blanks(p + 1, end);
	if (spamd_number(&p, end, &out->score) < 0)
		return -1;
	p = spamd_blanks(p, end);
	if (p == end || *p != '/')
		return -1;
	p = spamd_blanks(p + 1, end);
	if (spamd_number(&p, end, &out->threshold) < 0)
		return -1;
	return spamd_blanks(p, end) == end ? 0 : -1;
}

/* spamd_status - the status line "SPAMD/1.1 0 EX_OK": 0, or -1 with err. */
static int spamd_status(const char *line, size_t n, char *err, size_t errlen)
{
	const char *end = line + n, *p = line + 6;
	long code = 0;

	if (n < 6 || memcmp(line, "SPAMD/", 6) != 0)
		goto bad;
	while (p < end && (*p == '.' || (*p >= '0' && *p <= '9')))
		p++;
	if (p == line + 6 || p == end || *p != ' ')
		goto bad;
	p = spamd_blanks(p, end);
	if (p == end || *p < '0' || *p > '9')
		goto bad;
	while (p < end && *p >= '0' && *p <= '9' && code < 1000)
		code = code * 10 + (*p++ - '0');
	if (code != 0) {
		p = spamd_blanks(p, end);
		snprintf(err, errlen, "spamd answered status %ld: %.*s", code,
		         (int)(end - p > 80 ? 80 : end - p), p);
		for (char *q = err; *q; q++)
			if (*q < 0x20 || *q > 0x7e)
				*q = '?';
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "spamd's answer does not start with a SPAMD/ status line");
	return -1;
}

/* rules_spamd_parse - see rules_spamd.h. */
int rules_spamd_parse(const char *buf, size_t len, struct rules_spamd_reply *out, char *err,
                      size_t errlen)
{
	const char *line, *colon;
	size_t pos = 0, n, clen = 0;
	int spam = 0, has_len = 0;
	double v;

	memset(out, 0, sizeof(*out));
	if (spamd_line(buf, len, &pos, &line, &n) < 0) {
		snprintf(err, errlen, "spamd's answer has no complete line");
		return -1;
	}
	if (spamd_status(line, n, err, errlen) < 0)
		return -1;
	for (;;) {
		if (spamd_line(buf, len, &pos, &line, &n) < 0) {
			snprintf(err, errlen, "spamd's answer ends within its headers");
			return -1;
		}
		if (n == 0)
			break;
		if ((colon = memchr(line, ':', n)) == NULL) {
			snprintf(err, errlen, "spamd's answer has a header line without a colon");
			return -1;
		}
		if (colon - line == 4 && strncasecmp(line, "Spam", 4) == 0) {
			if (spamd_verdict(colon + 1, line + n, out) < 0) {
				snprintf(err, errlen, "spamd's Spam header is not \"True ; score / "
				                      "threshold\"");
				return -1;
			}
			spam = 1;
		} else if (colon - line == 14 && strncasecmp(line, "Content-length", 14) == 0) {
			const char *p = spamd_blanks(colon + 1, line + n);

			if (spamd_number(&p, line + n, &v) < 0 || v < 0 || v > SPAMD_ANSWER_MAX ||
			    v != (double)(size_t)v) {
				snprintf(err, errlen, "spamd's Content-length is not a length");
				return -1;
			}
			clen = (size_t)v;
			has_len = 1;
		}
	}
	if (!spam) {
		snprintf(err, errlen, "spamd's answer has no Spam header");
		return -1;
	}
	out->body = buf + pos;
	out->body_len = len - pos;
	if (has_len && clen < out->body_len)
		out->body_len = clen;
	return 0;
}

/* spamd_name_char - whether c may be in a rule name of a report's table. */
static int spamd_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* spamd_report_line - the rule name of one line of a report's table
 * ("  1000 GTUBE   BODY: ..."), or 0. */
static int spamd_report_line(const char *line, size_t n, const char **name, size_t *namelen)
{
	const char *end = line + n, *p = spamd_blanks(line, end), *start;

	if (p < end && *p == '-')
		p++;
	if (p == end || *p < '0' || *p > '9')
		return 0;
	while (p < end && ((*p >= '0' && *p <= '9') || *p == '.'))
		p++;
	if (p == end || (*p != ' ' && *p != '\t'))
		return 0;
	start = p = spamd_blanks(p, end);
	while (p < end && spamd_name_char(*p))
		p++;
	if (p == start || p - start > RULES_SPAMD_SYMBOL_MAX || (p < end && *p != ' ' && *p != '\t'))
		return 0;
	*name = start;
	*namelen = (size_t)(p - start);
	return 1;
}

/* rules_spamd_symbol - see rules_spamd.h. */
int rules_spamd_symbol(const char *body, size_t len, int report, size_t *pos, const char **name,
                       size_t *namelen)
{
	size_t start, n;

	while (*pos < len) {
		if (report) {
			const char *line = body + *pos, *lf = memchr(line, '\n', len - *pos);

			n = lf != NULL ? (size_t)(lf - line) : len - *pos;
			*pos += n + (lf != NULL);
			if (spamd_report_line(line, n, name, namelen))
				return 1;
			continue;
		}
		while (*pos < len && strchr(", \t\r\n", body[*pos]) != NULL && body[*pos] != '\0')
			++*pos;
		start = *pos;
		while (*pos < len && (strchr(", \t\r\n", body[*pos]) == NULL || body[*pos] == '\0'))
			++*pos;
		n = *pos - start;
		if (n > 0 && n <= RULES_SPAMD_SYMBOL_MAX) {
			*name = body + start;
			*namelen = n;
			return 1;
		}
	}
	return 0;
}

/* spamd_options - the options table at idx: whether it asks for the report. */
static int spamd_options(lua_State *L, int idx)
{
	int report;

	if (lua_isnoneornil(L, idx))
		return 0;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "report") != 0)
			luaL_error(L, "ctx:spamd: unknown option (the only one is report)");
		lua_pop(L, 1);
	}
	lua_getfield(L, idx, "report");
	if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
		luaL_error(L, "ctx:spamd: report must be true or false");
	report = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return report;
}

/* spamd_check - the exchange: the answer (malloc'ed, parsed into *out), or
 * NULL with c->error. */
static char *spamd_check(struct rules_service_call *c, const struct message *m, int report,
                         struct rules_spamd_reply *out)
{
	const char *user = c->svc->user;
	char head[512], *answer;
	size_t len;
	int n;

	n = snprintf(head, sizeof(head), "%s SPAMC/1.5\r\nContent-length: %zu\r\n%s%s%s\r\n",
	             report ? "REPORT" : "SYMBOLS", message_size(m), user ? "User: " : "",
	             user ? user : "", user ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head)) {
		snprintf(c->error, sizeof(c->error), "the User setting is too long");
		return NULL;
	}
	if (rules_service_connect(c) < 0 || rules_service_write(c, head, (size_t)n) < 0 ||
	    rules_service_send_message(c, m, NULL, NULL) < 0)
		return NULL;
	(void)shutdown(c->fd, SHUT_WR);
	if ((answer = rules_service_read_all(c, SPAMD_ANSWER_MAX, &len)) == NULL)
		return NULL;
	if (rules_spamd_parse(answer, len, out, c->error, sizeof(c->error)) < 0) {
		free(answer);
		return NULL;
	}
	return answer;
}

/* What spamd_push turns into the result table. */
struct spamd_result {
	const struct rules_service_call *c;
	const struct rules_spamd_reply *reply;
	int report;
};

/* spamd_push - lua_CFunction: the result of the light userdata at 1. */
static int spamd_push(lua_State *L)
{
	const struct spamd_result *res = lua_touserdata(L, 1);
	const struct rules_spamd_reply *reply = res->reply;
	const char *name;
	size_t pos = 0, n;
	lua_Integer i = 0;

	rules_service_push_result(L, res->c, 0, 0);
	lua_pushboolean(L, reply->is_spam);
	lua_setfield(L, -2, "is_spam");
	lua_pushnumber(L, reply->score);
	lua_setfield(L, -2, "score");
	lua_pushnumber(L, reply->threshold);
	lua_setfield(L, -2, "threshold");
	lua_pushlstring(L, res->report ? reply->body : "", res->report ? reply->body_len : 0);
	lua_setfield(L, -2, "report");
	lua_newtable(L);
	while (rules_spamd_symbol(reply->body, reply->body_len, res->report, &pos, &name, &n)) {
		lua_pushlstring(L, name, n);
		lua_rawseti(L, -2, ++i);
	}
	lua_setfield(L, -2, "symbols");
	return 1;
}

/* lua_ctx_spamd - ctx:spamd(name [, options]): check the message with spamd. */
static int lua_ctx_spamd(lua_State *L)
{
	struct message *m = rules_service_need_msg(L, "ctx:spamd");
	const struct service_config *svc = rules_service_find(L, 2, SERVICE_SPAMD);
	int report = spamd_options(L, 3), rc;
	struct rules_spamd_reply reply;
	struct rules_service_call c;
	struct spamd_result res = {.c = &c, .reply = &reply, .report = report};
	char *answer, line[128];

	rules_service_start(&c, svc);
	if (rules_service_too_big(&c, m)) {
		rules_service_push_result(L, &c, 0, 1);
		return 1;
	}
	if ((answer = spamd_check(&c, m, report, &reply)) == NULL) {
		rules_service_failed(L, &c); /* returns only for on_failure = accept */
		rules_service_push_result(L, &c, 1, 0);
		return 1;
	}
	rules_service_close(&c);
	snprintf(line, sizeof(line), "%s, score %.1f / %.1f", reply.is_spam ? "spam" : "not spam",
	         reply.score, reply.threshold);
	rules_service_log(&c, line);
	/* The table is made in a protected call: the answer is freed whatever happens. */
	lua_pushcfunction(L, spamd_push);
	lua_pushlightuserdata(L, &res);
	rc = lua_pcall(L, 1, 1, 0);
	free(answer);
	if (rc != LUA_OK)
		return lua_error(L);
	return 1;
}

/* The ctx method of spamd (rules_ctx_open adds it). */
const luaL_Reg ctx_spamd_methods[] = {
    {"spamd", lua_ctx_spamd},
    {NULL, NULL},
};
