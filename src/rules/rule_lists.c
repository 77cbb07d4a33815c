/*
 * rule_lists.c - the rule objects ip_list, domain_list, address_list and
 * string_list, and the reader of the list files they are loaded from.
 *
 * A list file has one entry a line, blanks trimmed, '#' comments and empty
 * lines skipped, and is read only while the rules are loaded, relative to
 * the rules directory. Each list kind checks and normalizes its entries
 * with one add function; a bad one raises "path:line: message". ip_list
 * makes a netset, the others a table keyed by the normalized entry.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "rule_objects.h"
#include "rule_objects_internal.h"

/* A list read from a file; its entries are the keys of its user value. */
struct rule_list {
	size_t count;
};

/* A list file being read: closed on error by __close, or by __gc. */
struct rule_file {
	FILE *f;
};

struct rule_list_load;

/* Adds one trimmed, NUL-terminated entry; -1 with a message pushed when bad. */
typedef int (*rule_list_add_fn)(lua_State *L, struct rule_list_load *ld, const char *s, size_t len);

/* What a list loader fills. */
struct rule_list_load {
	const char *fname; /* the Lua function, for the error message */
	rule_list_add_fn add;
	struct rule_netset *set; /* ip_list */
	struct rule_list *list;  /* the other lists */
	int table;               /* stack index of the list's table */
};

/* lua_listfile_close - close a list file once, on __close or __gc. */
static int lua_listfile_close(lua_State *L)
{
	struct rule_file *rf = luaL_checkudata(L, 1, META_LISTFILE);

	if (rf->f != NULL)
		fclose(rf->f);
	rf->f = NULL;
	return 0;
}

static const luaL_Reg rule_listfile_meta[] = {
    {"__close", lua_listfile_close},
    {"__gc", lua_listfile_close},
    {NULL, NULL},
};

/*
 * rule_list_open - open the file of argument 1 for list function fname.
 * Pushes the resolved path and the file, a to-be-closed slot so that an
 * error in the middle of the file does not leak it. Only while the rules
 * are loaded: a session process could not open the file.
 */
static FILE *rule_list_open(lua_State *L, const char *fname)
{
	size_t len;
	const char *path = luaL_checklstring(L, 1, &len);
	struct rule_file *rf;
	int err;

	if (lua_getfield(L, LUA_REGISTRYINDEX, RULE_OBJECTS_RULES_DIR_KEY) != LUA_TSTRING)
		luaL_error(L,
		           "lists are loaded with the rules: call %s() at the top level of a rules "
		           "file, not inside a rule",
		           fname);
	if (len == 0 || strlen(path) != len) {
		rule_push_bad(L, "not a file name: ", path, len);
		rule_raise_top(L);
	}
	if (path[0] == '/')
		lua_pushvalue(L, 1);
	else
		lua_pushfstring(L, "%s/%s", lua_tostring(L, -1), path);
	lua_remove(L, -2);
	rf = lua_newuserdatauv(L, sizeof(*rf), 0);
	rf->f = NULL;
	luaL_setmetatable(L, META_LISTFILE);
	lua_toclose(L, -1);
	rf->f = fopen(lua_tostring(L, -2), "re");
	if (rf->f == NULL) {
		err = errno;
		luaL_error(L, "cannot open %s: %s", lua_tostring(L, -2), strerror(err));
	}
	return rf->f;
}

/*
 * rule_read_line - the next line of f into buf (RULE_LIST_LINE_MAX + 1
 * bytes) without its newline. Returns 1, 0 at the end of the file, -1 when
 * the line is too long and -2 on a read error.
 */
static int rule_read_line(FILE *f, char *buf, size_t *len)
{
	size_t n = 0;
	int c;

	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (n == RULE_LIST_LINE_MAX)
			return -1;
		buf[n++] = (char)c;
	}
	if (c == EOF && ferror(f))
		return -2;
	if (c == EOF && n == 0)
		return 0;
	buf[n] = '\0';
	*len = n;
	return 1;
}

/* rule_is_blank - the blanks trimmed around list entries (CR for CRLF files). */
static int rule_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* rule_trim - the line without surrounding blanks, NUL-terminated in place. */
static char *rule_trim(char *line, size_t *len)
{
	size_t n = *len;

	while (n > 0 && rule_is_blank(line[n - 1]))
		n--;
	line[n] = '\0';
	while (n > 0 && rule_is_blank(*line)) {
		line++;
		n--;
	}
	*len = n;
	return line;
}

/* rule_list_fail - raise the message on top as "path:line: message". */
static int rule_list_fail(lua_State *L, int path_idx, lua_Integer lineno)
{
	lua_pushfstring(L, "%s:%I: ", lua_tostring(L, path_idx), lineno);
	lua_insert(L, -2);
	lua_concat(L, 2);
	return rule_raise_top(L);
}

/*
 * rule_list_read - read the list file of argument 1, handing each entry to
 * ld->add. Leaves the stack as it found it.
 */
static void rule_list_read(lua_State *L, struct rule_list_load *ld)
{
	char line[RULE_LIST_LINE_MAX + 1];
	int top = lua_gettop(L), path_idx = top + 1, rc;
	lua_Integer lineno = 0;
	size_t entries = 0, len = 0;
	FILE *f = rule_list_open(L, ld->fname);
	char *entry;

	while ((rc = rule_read_line(f, line, &len)) != 0) {
		lineno++;
		if (rc == -1)
			lua_pushfstring(L, "line longer than %d bytes", RULE_LIST_LINE_MAX);
		else if (rc == -2)
			lua_pushfstring(L, "read error: %s", strerror(errno));
		if (rc < 0)
			rule_list_fail(L, path_idx, lineno);
		entry = rule_trim(line, &len);
		if (len == 0 || entry[0] == '#')
			continue;
		if (memchr(entry, '\0', len) != NULL) {
			lua_pushliteral(L, "NUL byte in line");
			rule_list_fail(L, path_idx, lineno);
		}
		if (++entries > RULE_LIST_ENTRIES_MAX) {
			lua_pushfstring(L, "more than %d entries", RULE_LIST_ENTRIES_MAX);
			rule_list_fail(L, path_idx, lineno);
		}
		if (ld->add(L, ld, entry, len) < 0)
			rule_list_fail(L, path_idx, lineno);
	}
	lua_closeslot(L, path_idx + 1);
	lua_settop(L, top);
}

/*
 * rule_list_entries - the entries of the table at argument 1, each handed
 * to ld->add as a line of a file would be; an error names the entry.
 */
static void rule_list_entries(lua_State *L, struct rule_list_load *ld)
{
	lua_Integer i, n = (lua_Integer)lua_rawlen(L, 1);
	size_t len;
	const char *entry;

	for (i = 1; i <= n; i++) {
		if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
			luaL_error(L, "%s: entry %I is not a string", ld->fname, i);
		entry = lua_tolstring(L, -1, &len);
		if (len == 0 || strlen(entry) != len || ld->add(L, ld, entry, len) < 0) {
			if (len == 0 || strlen(entry) != len)
				lua_pushliteral(L, "empty or holds a NUL byte");
			lua_pushfstring(L, "%s: entry %I: ", ld->fname, i);
			lua_insert(L, -2);
			lua_concat(L, 2);
			rule_raise_top(L);
		}
		lua_pop(L, 1);
	}
}

/* rule_list_set - add the key on top of the stack to the list's table. */
static void rule_list_set(lua_State *L, struct rule_list_load *ld)
{
	lua_pushvalue(L, -1);
	if (lua_rawget(L, ld->table) == LUA_TNIL)
		ld->list->count++;
	lua_pop(L, 1);
	lua_pushboolean(L, 1);
	lua_rawset(L, ld->table);
}

/* rule_ip_list_add - an IP address or network. */
static int rule_ip_list_add(lua_State *L, struct rule_list_load *ld, const char *s, size_t len)
{
	struct netaddr_net n;

	if (rule_net_parse(L, s, len, &n) < 0)
		return -1;
	rule_netset_add(L, ld->set, &n);
	return 0;
}

/* rule_domain_list_add - a domain, or ".domain" for its subdomains. */
static int rule_domain_list_add(lua_State *L, struct rule_list_load *ld, const char *s, size_t len)
{
	size_t sub = s[0] == '.', n = rule_domain_check(s + sub, len - sub);

	if (n == 0) {
		rule_push_bad(L, "not a domain name: ", s, len);
		return -1;
	}
	/* The key keeps the leading dot and loses a trailing one. */
	rule_push_lower(L, s, sub + n);
	rule_list_set(L, ld);
	return 0;
}

/* rule_address_list_add - an address, or "@domain" for all of the domain's. */
static int rule_address_list_add(lua_State *L, struct rule_list_load *ld, const char *s, size_t len)
{
	char probe[SMTP_PATH_MAX + 2];
	struct smtp_address a;
	int ok;

	if (s[0] == '@') {
		/* The domain is checked as the domain of an address would be. */
		snprintf(probe, sizeof(probe), "x%s", s);
		ok = len < SMTP_PATH_MAX && rule_address_parse(probe, len + 1, 0, &a) == 0;
	} else {
		ok = rule_address_parse(s, len, 0, &a) == 0;
	}
	if (!ok) {
		rule_push_bad(L, "not an address: ", s, len);
		return -1;
	}
	lua_pushstring(L, s[0] == '@' ? "" : a.local);
	lua_pushliteral(L, "@");
	rule_push_lower(L, a.domain, strlen(a.domain));
	lua_concat(L, 3);
	rule_list_set(L, ld);
	return 0;
}

/* rule_string_list_add - a line, as it is. */
static int rule_string_list_add(lua_State *L, struct rule_list_load *ld, const char *s, size_t len)
{
	lua_pushlstring(L, s, len);
	rule_list_set(L, ld);
	return 0;
}

/* lua_ip_list_new - ip_list(path): a netset of the file's addresses and networks. */
static int lua_ip_list_new(lua_State *L)
{
	struct rule_list_load ld = {"ip_list", rule_ip_list_add, NULL, NULL, 0};

	luaL_checkstring(L, 1);
	lua_settop(L, 1);
	ld.set = rule_netset_push(L);
	rule_list_read(L, &ld);
	rule_netset_finish(L, ld.set);
	return 1;
}

/* rule_list_new - list(path) or list({entries}) of one kind: its userdata,
 * with a table of entries. A table needs no file, so it works at any time. */
static int rule_list_new(lua_State *L, const char *meta, const char *fname, rule_list_add_fn add)
{
	struct rule_list_load ld = {fname, add, NULL, NULL, 0};
	int from_table = lua_istable(L, 1);

	if (!from_table)
		luaL_checkstring(L, 1);
	lua_settop(L, 1);
	ld.list = lua_newuserdatauv(L, sizeof(*ld.list), 1);
	ld.list->count = 0;
	luaL_setmetatable(L, meta);
	lua_newtable(L);
	lua_pushvalue(L, -1);
	lua_setiuservalue(L, 2, 1);
	ld.table = lua_gettop(L);
	if (from_table)
		rule_list_entries(L, &ld);
	else
		rule_list_read(L, &ld);
	lua_pop(L, 1);
	return 1;
}

/* lua_domain_list_new - domain_list(path). */
static int lua_domain_list_new(lua_State *L)
{
	return rule_list_new(L, META_DOMAINLIST, "domain_list", rule_domain_list_add);
}

/* lua_address_list_new - address_list(path). */
static int lua_address_list_new(lua_State *L)
{
	return rule_list_new(L, META_ADDRESSLIST, "address_list", rule_address_list_add);
}

/* lua_string_list_new - string_list(path). */
static int lua_string_list_new(lua_State *L)
{
	return rule_list_new(L, META_STRINGLIST, "string_list", rule_string_list_add);
}

/* rule_key_present - the table at tidx has key k (n bytes). */
static int rule_key_present(lua_State *L, int tidx, const char *k, size_t n)
{
	int found;

	lua_pushlstring(L, k, n);
	found = lua_rawget(L, tidx) != LUA_TNIL;
	lua_pop(L, 1);
	return found;
}

/* rule_list_table - check self is a list of kind meta; push its table and return its index. */
static int rule_list_table(lua_State *L, const char *meta)
{
	luaL_checkudata(L, 1, meta);
	lua_getiuservalue(L, 1, 1);
	return lua_gettop(L);
}

/*
 * rule_domain_lookup - domain d (len bytes) is in the table at tidx, itself
 * or through a ".parent" entry of one of its parent domains.
 */
static int rule_domain_lookup(lua_State *L, int tidx, const char *d, size_t len)
{
	char buf[RULE_DOMAIN_MAX + 1];
	size_t i;

	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > RULE_DOMAIN_MAX)
		return 0;
	for (i = 0; i < len; i++)
		buf[i] = (char)rule_lower((unsigned char)d[i]);
	if (rule_key_present(L, tidx, buf, len))
		return 1;
	for (i = 0; i < len; i++)
		if (buf[i] == '.' && rule_key_present(L, tidx, buf + i, len - i))
			return 1;
	return 0;
}

/* lua_domainlist_contains - l:contains(domain string or address table). */
static int lua_domainlist_contains(lua_State *L)
{
	int tidx = rule_list_table(L, META_DOMAINLIST);
	const char *d = NULL;
	size_t len = 0;

	if (lua_type(L, 2) == LUA_TSTRING)
		d = lua_tolstring(L, 2, &len);
	else if (rule_is_address(L, 2))
		d = rule_address_field(L, 2, "domain", &len);
	else
		return luaL_typeerror(L, 2, "domain string or address");
	lua_pushboolean(L, d != NULL && rule_domain_lookup(L, tidx, d, len));
	return 1;
}

/*
 * rule_address_lookup - local@domain is in the table at tidx, itself or
 * through an "@domain" entry. The domain is compared lowercased.
 */
static int rule_address_lookup(lua_State *L, int tidx, const char *local, const char *domain,
                               size_t domain_len)
{
	int found;

	if (local[0] == '\0' || domain_len == 0)
		return 0;
	rule_push_lower(L, domain, domain_len);
	lua_pushstring(L, local);
	lua_pushliteral(L, "@");
	lua_pushvalue(L, -3);
	lua_concat(L, 3);
	found = lua_rawget(L, tidx) != LUA_TNIL;
	lua_pop(L, 1);
	if (!found) {
		lua_pushliteral(L, "@");
		lua_insert(L, -2);
		lua_concat(L, 2);
		found = lua_rawget(L, tidx) != LUA_TNIL;
	}
	lua_pop(L, 1);
	return found;
}

/* lua_addresslist_contains - l:contains(address string or table). */
static int lua_addresslist_contains(lua_State *L)
{
	int tidx = rule_list_table(L, META_ADDRESSLIST);
	const char *s, *local, *domain;
	struct smtp_address a;
	size_t len, domain_len = 0;
	int found = 0;

	if (lua_type(L, 2) == LUA_TSTRING) {
		s = lua_tolstring(L, 2, &len);
		if (rule_address_parse(s, len, 0, &a) == 0)
			found = rule_address_lookup(L, tidx, a.local, a.domain, strlen(a.domain));
	} else if (rule_is_address(L, 2)) {
		local = rule_address_field(L, 2, "local_part", &len);
		domain = rule_address_field(L, 2, "domain", &domain_len);
		if (local != NULL && domain != NULL && strlen(local) == len)
			found = rule_address_lookup(L, tidx, local, domain, domain_len);
	} else {
		return luaL_typeerror(L, 2, "address or string");
	}
	lua_pushboolean(L, found);
	return 1;
}

/* lua_stringlist_contains - l:contains(s): s is one of the lines. */
static int lua_stringlist_contains(lua_State *L)
{
	int tidx = rule_list_table(L, META_STRINGLIST);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);

	lua_pushboolean(L, rule_key_present(L, tidx, s, len));
	return 1;
}

/* rule_list_len - #l for a list of kind meta. */
static int rule_list_len(lua_State *L, const char *meta)
{
	const struct rule_list *list = luaL_checkudata(L, 1, meta);

	lua_pushinteger(L, (lua_Integer)list->count);
	return 1;
}

/* lua_domainlist_len - #l: distinct entries. */
static int lua_domainlist_len(lua_State *L)
{
	return rule_list_len(L, META_DOMAINLIST);
}

/* lua_addresslist_len - #l: distinct entries. */
static int lua_addresslist_len(lua_State *L)
{
	return rule_list_len(L, META_ADDRESSLIST);
}

/* lua_stringlist_len - #l: distinct entries. */
static int lua_stringlist_len(lua_State *L)
{
	return rule_list_len(L, META_STRINGLIST);
}

static const luaL_Reg rule_domainlist_meta[] = {
    {"__len", lua_domainlist_len},
    {NULL, NULL},
};

static const luaL_Reg rule_domainlist_methods[] = {
    {"contains", lua_domainlist_contains},
    {NULL, NULL},
};

static const luaL_Reg rule_addresslist_meta[] = {
    {"__len", lua_addresslist_len},
    {NULL, NULL},
};

static const luaL_Reg rule_addresslist_methods[] = {
    {"contains", lua_addresslist_contains},
    {NULL, NULL},
};

static const luaL_Reg rule_stringlist_meta[] = {
    {"__len", lua_stringlist_len},
    {NULL, NULL},
};

static const luaL_Reg rule_stringlist_methods[] = {
    {"contains", lua_stringlist_contains},
    {NULL, NULL},
};

static const luaL_Reg rule_lists_globals[] = {
    {"ip_list", lua_ip_list_new},
    {"domain_list", lua_domain_list_new},
    {"address_list", lua_address_list_new},
    {"string_list", lua_string_list_new},
    {NULL, NULL},
};

/* rule_lists_open - the list classes and ip_list, domain_list, address_list, string_list. */
void rule_lists_open(lua_State *L)
{
	rule_class_open(L, META_DOMAINLIST, rule_domainlist_meta, rule_domainlist_methods);
	rule_class_open(L, META_ADDRESSLIST, rule_addresslist_meta, rule_addresslist_methods);
	rule_class_open(L, META_STRINGLIST, rule_stringlist_meta, rule_stringlist_methods);
	rule_class_open(L, META_LISTFILE, rule_listfile_meta, NULL);
	rule_globals_open(L, rule_lists_globals);
}
