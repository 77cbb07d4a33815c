/*
 * rule_regex.c - the rule object regex: a POSIX extended regular
 * expression compiled once when the rules are loaded.
 *
 * The userdata holds the compiled regex_t, its user value the pattern for
 * tostring(); __gc frees the compiled expression once.
 */
#include <regex.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "rule_objects_internal.h"

/* A compiled regular expression; its user value is the pattern. */
struct rule_regex {
	regex_t re;
	int compiled;
};

/* lua_regex_new - regex(pattern [, flags]): a POSIX extended regular expression. */
static int lua_regex_new(lua_State *L)
{
	size_t len, flen, i;
	const char *pattern = luaL_checklstring(L, 1, &len);
	const char *flags = luaL_optlstring(L, 2, "", &flen);
	int cflags = REG_EXTENDED | REG_NOSUB, rc;
	struct rule_regex *r;
	char err[256];

	if (strlen(pattern) != len) {
		rule_push_bad(L, "a regex cannot hold a NUL byte: ", pattern, len);
		return rule_raise_top(L);
	}
	for (i = 0; i < flen; i++) {
		if (flags[i] != 'i') {
			rule_push_bad(L, "unknown regex flags (only \"i\" is known): ", flags,
			              flen);
			return rule_raise_top(L);
		}
		cflags |= REG_ICASE;
	}
	r = lua_newuserdatauv(L, sizeof(*r), 1);
	r->compiled = 0;
	luaL_setmetatable(L, META_REGEX);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1);
	if ((rc = regcomp(&r->re, pattern, cflags)) != 0) {
		regerror(rc, &r->re, err, sizeof(err));
		lua_pushfstring(L, "%s in regex ", err);
		rule_push_quoted(L, pattern, len);
		lua_concat(L, 2);
		return rule_raise_top(L);
	}
	r->compiled = 1;
	return 1;
}

/* lua_regex_match - r:match(s): whether r matches somewhere in all of s. */
static int lua_regex_match(lua_State *L)
{
	struct rule_regex *r = luaL_checkudata(L, 1, META_REGEX);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);
	regmatch_t m;
	int rc;
	char err[256];

	if (!r->compiled)
		return luaL_error(L, "regex used after being freed");
	if (len > INT_MAX)
		return luaL_error(L, "string too long for a regex match");
	/* REG_STARTEND bounds the subject by length, so a NUL does not end it. */
	m.rm_so = 0;
	m.rm_eo = (regoff_t)len;
	rc = regexec(&r->re, s, 1, &m, REG_STARTEND);
	if (rc != 0 && rc != REG_NOMATCH) {
		regerror(rc, &r->re, err, sizeof(err));
		return luaL_error(L, "regex match failed: %s", err);
	}
	lua_pushboolean(L, rc == 0);
	return 1;
}

/* lua_regex_tostring - tostring(r): the pattern. */
static int lua_regex_tostring(lua_State *L)
{
	luaL_checkudata(L, 1, META_REGEX);
	lua_getiuservalue(L, 1, 1);
	return 1;
}

/* lua_regex_gc - free the compiled expression once. */
static int lua_regex_gc(lua_State *L)
{
	struct rule_regex *r = luaL_checkudata(L, 1, META_REGEX);

	if (r->compiled)
		regfree(&r->re);
	r->compiled = 0;
	return 0;
}

static const luaL_Reg rule_regex_meta[] = {
    {"__tostring", lua_regex_tostring},
    {"__gc", lua_regex_gc},
    {NULL, NULL},
};

static const luaL_Reg rule_regex_methods[] = {
    {"match", lua_regex_match},
    {NULL, NULL},
};

static const luaL_Reg rule_regex_globals[] = {
    {"regex", lua_regex_new},
    {NULL, NULL},
};

/* rule_regex_open - the class regex and its constructor. */
void rule_regex_open(lua_State *L)
{
	rule_class_open(L, META_REGEX, rule_regex_meta, rule_regex_methods);
	rule_globals_open(L, rule_regex_globals);
}
