/*
 * rules_dns_answers.c - the answers of a dns.lookup or dns.rlookup call
 * (rules_dns.c) turned into the Lua values the rules get: addresses, MX
 * tables sorted by preference, TXT strings, PTR names, each list bounded by
 * RULES_DNS_ANSWERS_MAX, names lowercased and without the trailing dot.
 * The answers are parsed with c-ares' parsers inside a protected call, so
 * that what they allocated is freed whatever happens; an answer that does
 * not parse counts as a server failure.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <lauxlib.h>
#include <lua.h>

#include "rules_dns.h"
#include "rules_dns_internal.h"

/* dns_push_name - a name from an answer: lowercased, no trailing dot. */
static void dns_push_name(lua_State *L, const char *s)
{
	size_t len = strlen(s), i;
	luaL_Buffer b;
	char *p;

	if (len > 0 && s[len - 1] == '.')
		len--;
	p = luaL_buffinitsize(L, &b, len);
	for (i = 0; i < len; i++)
		p[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
	luaL_pushresultsize(&b, len);
}

/* dns_append - t[#t + 1] = the value on top (callers check dns_room). */
static void dns_append(lua_State *L, int t)
{
	lua_rawseti(L, t, (lua_Integer)lua_rawlen(L, t) + 1);
}

/* dns_room - whether t can take one more. */
static int dns_room(lua_State *L, int t)
{
	return lua_rawlen(L, t) < RULES_DNS_ANSWERS_MAX;
}

/* dns_push_addresses - the A or AAAA records of q. Returns the parser's status. */
static int dns_push_addresses(lua_State *L, int t, const struct dns_query *q)
{
	struct ares_addrttl a4[RULES_DNS_ANSWERS_MAX];
	struct ares_addr6ttl a6[RULES_DNS_ANSWERS_MAX];
	char text[INET6_ADDRSTRLEN];
	int n = RULES_DNS_ANSWERS_MAX, i, rc;

	if (q->type == ns_t_a)
		rc = ares_parse_a_reply(q->buf, q->len, NULL, a4, &n);
	else
		rc = ares_parse_aaaa_reply(q->buf, q->len, NULL, a6, &n);
	if (rc != ARES_SUCCESS)
		return rc;
	for (i = 0; i < n && dns_room(L, t); i++) {
		if (q->type == ns_t_a)
			inet_ntop(AF_INET, &a4[i].ipaddr, text, sizeof(text));
		else
			inet_ntop(AF_INET6, &a6[i].ip6addr, text, sizeof(text));
		lua_pushstring(L, text);
		dns_append(L, t);
	}
	return ARES_SUCCESS;
}

/* dns_mx_before - MX order: preference, then name. */
static int dns_mx_before(const struct ares_mx_reply *a, const struct ares_mx_reply *b)
{
	if (a->priority != b->priority)
		return a->priority < b->priority;
	return strcasecmp(a->host, b->host) < 0;
}

/* dns_push_mx - the best RULES_DNS_ANSWERS_MAX MX records, in order. */
static int dns_push_mx(lua_State *L, int t, struct dns_call *c, const struct dns_query *q)
{
	const struct ares_mx_reply *best[RULES_DNS_ANSWERS_MAX], *mx;
	size_t n = 0, i, j;
	int rc;

	if ((rc = ares_parse_mx_reply(q->buf, q->len, &c->mx)) != ARES_SUCCESS)
		return rc;
	for (mx = c->mx; mx != NULL; mx = mx->next) {
		/* insertion into the sorted best list, dropping its last when full */
		for (i = n; i > 0 && dns_mx_before(mx, best[i - 1]); i--)
			;
		if (i == RULES_DNS_ANSWERS_MAX)
			continue;
		j = n < RULES_DNS_ANSWERS_MAX ? n++ : n - 1;
		for (; j > i; j--)
			best[j] = best[j - 1];
		best[i] = mx;
	}
	for (i = 0; i < n; i++) {
		lua_createtable(L, 0, 2);
		lua_pushinteger(L, best[i]->priority);
		lua_setfield(L, -2, "preference");
		dns_push_name(L, best[i]->host);
		lua_setfield(L, -2, "exchange");
		dns_append(L, t);
	}
	return ARES_SUCCESS;
}

/* dns_push_txt - one string per TXT record, its strings joined. */
static int dns_push_txt(lua_State *L, int t, struct dns_call *c, const struct dns_query *q)
{
	const struct ares_txt_ext *txt, *part;
	luaL_Buffer b;
	int rc;

	if ((rc = ares_parse_txt_reply_ext(q->buf, q->len, &c->txt)) != ARES_SUCCESS)
		return rc;
	for (txt = c->txt; txt != NULL && dns_room(L, t); txt = part) {
		luaL_buffinit(L, &b);
		part = txt;
		do {
			luaL_addlstring(&b, (const char *)part->txt, part->length);
			part = part->next;
		} while (part != NULL && !part->record_start);
		luaL_pushresult(&b);
		dns_append(L, t);
	}
	return ARES_SUCCESS;
}

/* dns_push_ptr - the names of the PTR records. */
static int dns_push_ptr(lua_State *L, int t, struct dns_call *c, const struct dns_query *q)
{
	static const unsigned char any[16];
	char **alias;
	int rc;

	/* The address only fills the hostent; the answer is matched by name. */
	if ((rc = ares_parse_ptr_reply(q->buf, q->len, any, 4, AF_INET, &c->host)) != ARES_SUCCESS)
		return rc;
	for (alias = c->host->h_aliases; alias != NULL && *alias != NULL && dns_room(L, t); alias++) {
		dns_push_name(L, *alias);
		dns_append(L, t);
	}
	if (lua_rawlen(L, t) == 0 && c->host->h_name != NULL && c->host->h_name[0] != '\0') {
		dns_push_name(L, c->host->h_name);
		dns_append(L, t);
	}
	return ARES_SUCCESS;
}

/* dns_push_results - (protected) the table of the answers of the call at
 * index 1; a query whose answer does not parse becomes DNS_FAIL. */
static int dns_push_results(lua_State *L)
{
	struct dns_call *c = lua_touserdata(L, 1);
	size_t i;
	int t, rc;

	lua_createtable(L, 4, 0);
	t = lua_gettop(L);
	for (i = 0; i < c->nq; i++) {
		struct dns_query *q = &c->q[i];

		if (q->outcome != DNS_ANSWER)
			continue;
		switch (q->type) {
		case ns_t_a:
		case ns_t_aaaa:
			rc = dns_push_addresses(L, t, q);
			break;
		case ns_t_mx:
			rc = dns_push_mx(L, t, c, q);
			break;
		case ns_t_txt:
			rc = dns_push_txt(L, t, c, q);
			break;
		default:
			rc = dns_push_ptr(L, t, c, q);
			break;
		}
		if (rc == ARES_ENODATA)
			q->outcome = DNS_EMPTY;
		else if (rc == ARES_ENOMEM)
			q->outcome = DNS_NOMEM;
		else if (rc != ARES_SUCCESS)
			q->outcome = DNS_FAIL;
	}
	return 1;
}

/* dns_finish - see rules_dns_internal.h. */
int dns_finish(lua_State *L, struct dns_call *c)
{
	const char *reason = NULL;
	size_t i;
	int rc;

	for (i = 0; i < c->nq; i++)
		if (c->q[i].outcome == DNS_NOMEM) {
			dns_call_free(c);
			return luaL_error(L, "dns: out of memory");
		}
	lua_pushcfunction(L, dns_push_results);
	lua_pushlightuserdata(L, c);
	rc = lua_pcall(L, 1, 1, 0);
	for (i = 0; i < c->nq && rc == LUA_OK; i++)
		if (c->q[i].outcome == DNS_NOMEM)
			rc = LUA_ERRMEM;
	dns_call_free(c);
	if (rc != LUA_OK) {
		if (rc != LUA_ERRMEM)
			return lua_error(L);
		return luaL_error(L, "dns: out of memory");
	}
	for (i = 0; i < c->nq; i++) {
		if (c->q[i].outcome == DNS_TIMEOUT)
			reason = "timeout";
		else if (c->q[i].outcome == DNS_FAIL && reason == NULL)
			reason = "servfail";
	}
	/* An empty table must mean "there is none": when a query failed, only
	 * what the others found can be given. */
	if (reason != NULL && lua_rawlen(L, -1) == 0) {
		lua_pop(L, 1);
		lua_pushnil(L);
		lua_pushstring(L, reason);
		return 2;
	}
	return 1;
}

/* rules_dns_txt_join - see rules_dns.h. */
char *rules_dns_txt_join(const struct ares_txt_ext *p, const struct ares_txt_ext **next,
			 size_t *len)
{
	const struct ares_txt_ext *part;
	size_t total = 0, at = 0;
	char *rec;

	for (part = p; part == p || (part != NULL && !part->record_start); part = part->next)
		total += part->length;
	*next = part;
	if ((rec = malloc(total + 1)) == NULL)
		return NULL;
	for (part = p; part != *next; part = part->next) {
		memcpy(rec + at, part->txt, part->length);
		at += part->length;
	}
	rec[total] = '\0';
	*len = total;
	return rec;
}
