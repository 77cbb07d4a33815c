/*
 * rule_address.c - the rule objects address and fqdn.
 *
 * An address is a table of its parts (text, local_part, domain) with a
 * metatable of its own, checked by the SMTP parser as MAIL FROM or RCPT TO
 * would take it, so that what a rule hands back to the session is a path
 * the session accepts. fqdn() checks a domain name, UTF-8 labels included,
 * and returns it lowercased as a plain string.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "utf8.h"
#include "rule_objects.h"
#include "rule_objects_internal.h"

#define RULE_LABEL_MAX 63

/*
 * rule_address_parse - s (len bytes) as the SMTP parser reads a path: as a
 * RCPT TO recipient when rcpt is set, else as a MAIL FROM sender (then ""
 * is the null sender). Characters that would end or break the path we wrap
 * it in are refused first, and so is a source route, which is no mailbox.
 * Returns 0 with addr filled, or -1.
 */
int rule_address_parse(const char *s, size_t len, int rcpt, struct smtp_address *addr)
{
	char line[SMTP_PATH_MAX + 32];
	struct smtp_mail mail;
	struct smtp_rcpt rc;

	memset(addr, 0, sizeof(*addr));
	if (len == 0 && !rcpt) {
		addr->null = 1;
		return 0;
	}
	if (len == 0 || len > SMTP_PATH_MAX - 2 || strlen(s) != len || strpbrk(s, "<>\r\n") ||
	    s[0] == '@')
		return -1;
	if (rcpt) {
		snprintf(line, sizeof(line), "TO:<%s>", s);
		if (smtp_rcpt_parse(line, 1, &rc) != NULL)
			return -1;
		*addr = rc.to;
	} else {
		snprintf(line, sizeof(line), "FROM:<%s> SMTPUTF8", s);
		if (smtp_mail_parse(line, &mail) != NULL)
			return -1;
		*addr = mail.from;
	}
	return 0;
}

/* rule_address_push_parts - push an address table of these parts. */
static void rule_address_push_parts(lua_State *L, const char *text, size_t text_len,
                                    const char *local, size_t local_len, const char *domain,
                                    size_t domain_len)
{
	lua_createtable(L, 0, 4);
	lua_pushlstring(L, text, text_len);
	lua_setfield(L, -2, "address");
	lua_pushlstring(L, local, local_len);
	lua_setfield(L, -2, "local_part");
	rule_push_lower(L, domain, domain_len);
	lua_setfield(L, -2, "domain");
	lua_pushboolean(L, text_len == 0);
	lua_setfield(L, -2, "is_null");
	luaL_setmetatable(L, META_ADDRESS);
}

/* rule_address_push - push the table of an address already checked. */
void rule_address_push(lua_State *L, const char *addr)
{
	const char *at;
	size_t len;

	if (addr == NULL)
		addr = "";
	len = strlen(addr);
	/* A domain holds no '@'; a quoted local part may. */
	at = strrchr(addr, '@');
	if (at == NULL)
		rule_address_push_parts(L, addr, len, addr, len, "", 0);
	else
		rule_address_push_parts(L, addr, len, addr, (size_t)(at - addr), at + 1,
		                        strlen(at + 1));
}

/* rule_is_address - the value at idx is a table with the address metatable. */
int rule_is_address(lua_State *L, int idx)
{
	int is;

	if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
		return 0;
	luaL_getmetatable(L, META_ADDRESS);
	is = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return is;
}

/* rule_address_field - push field name of the address table at idx; its string or NULL. */
const char *rule_address_field(lua_State *L, int idx, const char *name, size_t *len)
{
	lua_pushstring(L, name);
	if (lua_rawget(L, idx) != LUA_TSTRING)
		return NULL;
	return lua_tolstring(L, -1, len);
}

/*
 * rule_address_check_as - the address at idx (a table or a string) checked
 * as a recipient or a sender, formatted into out. Raises when it is none.
 */
static int rule_address_check_as(lua_State *L, int idx, int rcpt, char *out, size_t outlen)
{
	struct smtp_address a;
	const char *s = NULL;
	size_t len = 0, n;

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TSTRING) {
		lua_pushvalue(L, idx);
		s = lua_tolstring(L, -1, &len);
	} else if (rule_is_address(L, idx)) {
		if ((s = rule_address_field(L, idx, "address", &len)) == NULL)
			return luaL_error(L, "not an address: the table has no address text");
	} else {
		return luaL_typeerror(L, idx, "address or string");
	}
	if (rule_address_parse(s, len, rcpt, &a) < 0) {
		rule_push_bad(L, "not an address: ", s, len);
		return rule_raise_top(L);
	}
	n = smtp_address_format(&a, out, outlen);
	if (n >= outlen)
		return luaL_error(L, "address longer than its buffer (%d bytes)", (int)outlen);
	lua_pop(L, 1);
	return (int)n;
}

/* rule_address_check - a recipient, as RCPT TO takes it. */
int rule_address_check(lua_State *L, int idx, char *out, size_t outlen)
{
	return rule_address_check_as(L, idx, 1, out, outlen);
}

/* rule_sender_check - a sender, as MAIL FROM takes it. */
int rule_sender_check(lua_State *L, int idx, char *out, size_t outlen)
{
	return rule_address_check_as(L, idx, 0, out, outlen);
}

/* lua_address_new - address(s): a mailbox, or "" for the null sender. */
static int lua_address_new(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	struct smtp_address a;

	if (rule_address_parse(s, len, 0, &a) < 0) {
		rule_push_bad(L, "not an address: ", s, len);
		return rule_raise_top(L);
	}
	rule_address_push_parts(L, s, len, a.local, strlen(a.local), a.domain, strlen(a.domain));
	return 1;
}

/* lua_address_tostring - tostring(a): the address as given. */
static int lua_address_tostring(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	if (rule_address_field(L, 1, "address", NULL) == NULL)
		lua_pushliteral(L, "");
	return 1;
}

/* lua_address_eq - a == b: same local part, same (lowercased) domain. */
static int lua_address_eq(lua_State *L)
{
	int eq = rule_is_address(L, 1) && rule_is_address(L, 2);

	if (eq) {
		lua_pushliteral(L, "local_part");
		lua_rawget(L, 1);
		lua_pushliteral(L, "local_part");
		lua_rawget(L, 2);
		lua_pushliteral(L, "domain");
		lua_rawget(L, 1);
		lua_pushliteral(L, "domain");
		lua_rawget(L, 2);
		eq = lua_rawequal(L, -4, -3) && lua_rawequal(L, -2, -1);
	}
	lua_pushboolean(L, eq);
	return 1;
}

static const luaL_Reg rule_address_meta[] = {
    {"__tostring", lua_address_tostring},
    {"__eq", lua_address_eq},
    {NULL, NULL},
};

/*
 * rule_utf8_seq - length of the well-formed UTF-8 sequence at s (at most
 * avail bytes), 0 if there is none. The rules of smtp_parse.c: no overlong
 * forms, surrogates or code points past U+10FFFF, so that a domain has one
 * spelling.
 */
static size_t rule_utf8_seq(const unsigned char *s, size_t avail)
{
	uint32_t cp;

	return s[0] < 0x80 ? 0 : utf8_char(s, avail, &cp);
}

/*
 * rule_label_scan - length of the label at s (within len), 0 if it is not
 * one: letters, digits, inner hyphens and UTF-8. As in smtp_parse.c, the
 * 63 octet limit applies to ASCII labels only: what counts for a U-label is
 * the length of its A-label, which is shorter than its UTF-8.
 */
static size_t rule_label_scan(const unsigned char *s, size_t len)
{
	size_t i = 0, n;
	int nonascii = 0;

	while (i < len && s[i] != '.') {
		if (rule_is_alnum(s[i]) || s[i] == '-') {
			i++;
		} else if (s[i] >= 0x80 && (n = rule_utf8_seq(s + i, len - i)) != 0) {
			i += n;
			nonascii = 1;
		} else {
			return 0;
		}
	}
	if (i == 0 || s[0] == '-' || s[i - 1] == '-')
		return 0;
	if (!nonascii && i > RULE_LABEL_MAX)
		return 0;
	return i;
}

/*
 * rule_domain_check - the length of domain s without one trailing dot, or 0
 * when s (a NUL-terminated string of len bytes) is no domain name.
 */
size_t rule_domain_check(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;

	if (strlen(s) != len)
		return 0;
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > RULE_DOMAIN_MAX)
		return 0;
	for (;;) {
		n = rule_label_scan(u + i, len - i);
		if (n == 0)
			return 0;
		i += n;
		if (i == len)
			return len;
		i++; /* the dot */
	}
}

/* lua_fqdn_new - fqdn(s): a checked domain name, lowercased, as a string. */
static int lua_fqdn_new(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	size_t n = rule_domain_check(s, len);

	if (n == 0) {
		rule_push_bad(L, "not a domain name: ", s, len);
		return rule_raise_top(L);
	}
	rule_push_lower(L, s, n);
	return 1;
}

static const luaL_Reg rule_address_globals[] = {
    {"address", lua_address_new},
    {"fqdn", lua_fqdn_new},
    {NULL, NULL},
};

/* rule_address_open - the class address and the constructors address and fqdn. */
void rule_address_open(lua_State *L)
{
	rule_class_open(L, META_ADDRESS, rule_address_meta, NULL);
	rule_globals_open(L, rule_address_globals);
}
