/*
 * rule_objects.c - the objects policy rules work with: IP addresses,
 * networks and network sets, mail addresses, domain names, POSIX regular
 * expressions and lists read from files, as Lua 5.4 values.
 *
 * One file per class: rule_ip.c (ip, net, netset and the networks sets),
 * rule_address.c (address, fqdn), rule_regex.c and rule_lists.c (the lists
 * read from files). This one holds what they share, the quoting of a bad
 * value into an error message and the registration of a class, and
 * rule_objects_open(), which opens every class in turn.
 *
 * One luaL_Reg table of metamethods and one of methods per class, one C
 * function per method (lua_<class>_<method>). Every parser reports a bad
 * value by pushing a message that quotes it and returning -1, so that the
 * constructors raise it at the rules file's position and the list loaders
 * at the list file's line.
 *
 * What a rule calls per connection only looks things up: network sets are
 * sorted arrays searched in O(log n), lists are Lua tables keyed by the
 * normalized entry. The arrays are allocated with the state's allocator so
 * that the rule engine's memory budget sees them.
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>

#include "rule_objects.h"
#include "rule_objects_internal.h"

/* Bytes of a bad value quoted back in an error message. */
#define RULE_QUOTE_MAX 200

/* rule_lower - ASCII lower case, independent of the locale. */
unsigned char rule_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* rule_is_alnum - ASCII letter or digit. */
int rule_is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* rule_push_lower - push s with ASCII letters lowercased. */
void rule_push_lower(lua_State *L, const char *s, size_t len)
{
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, len);
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (char)rule_lower((unsigned char)s[i]);
	luaL_pushresultsize(&b, len);
}

/*
 * rule_push_quoted - push s in double quotes, with quotes, backslashes and
 * control bytes escaped and cut after RULE_QUOTE_MAX bytes: the bad value is
 * anything at all, and the message ends up in a log.
 */
void rule_push_quoted(lua_State *L, const char *s, size_t len)
{
	size_t i, n = len > RULE_QUOTE_MAX ? RULE_QUOTE_MAX : len;
	char esc[8];
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	luaL_addchar(&b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			luaL_addchar(&b, '\\');
			luaL_addchar(&b, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\%03u", c);
			luaL_addstring(&b, esc);
		} else {
			luaL_addchar(&b, (char)c);
		}
	}
	luaL_addchar(&b, '"');
	if (n < len)
		luaL_addstring(&b, "...");
	luaL_pushresult(&b);
}

/* rule_push_bad - push the message what followed by the quoted value. */
void rule_push_bad(lua_State *L, const char *what, const char *s, size_t len)
{
	lua_pushstring(L, what);
	rule_push_quoted(L, s, len);
	lua_concat(L, 2);
}

/*
 * rule_raise_top - raise the message on top of the stack, prefixed like
 * luaL_error with the position in the rules file that called us.
 */
int rule_raise_top(lua_State *L)
{
	luaL_where(L, 1);
	lua_insert(L, -2);
	lua_concat(L, 2);
	return lua_error(L);
}

/*
 * rule_class_open - the metatable name with metamethods meta and methods as
 * its __index. __metatable hides it from getmetatable() and setmetatable(),
 * so a rule can neither call __gc by hand nor re-label a table as an
 * address.
 */
void rule_class_open(lua_State *L, const char *name, const luaL_Reg *meta,
                     const luaL_Reg *methods)
{
	luaL_newmetatable(L, name);
	luaL_setfuncs(L, meta, 0);
	if (methods != NULL) {
		lua_newtable(L);
		luaL_setfuncs(L, methods, 0);
		lua_setfield(L, -2, "__index");
	}
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

/* rule_globals_open - set the functions of globals as global variables. */
void rule_globals_open(lua_State *L, const luaL_Reg *globals)
{
	lua_pushglobaltable(L);
	luaL_setfuncs(L, globals, 0);
	lua_pop(L, 1);
}

/* The classes, each registering its metatables and its global constructors. */
static void (*const rule_class_opens[])(lua_State *L) = {
    rule_ip_open,
    rule_address_open,
    rule_regex_open,
    rule_lists_open,
};

/* rule_objects_open - register the classes and the globals. */
void rule_objects_open(lua_State *L)
{
	size_t i;

	for (i = 0; i < sizeof(rule_class_opens) / sizeof(rule_class_opens[0]); i++)
		rule_class_opens[i](L);
}
