/*
 * rules_ctx.c - the `ctx` object rules receive: the connection, the
 * transaction and, from preq on, the message, with the seeds' predefined
 * functions as methods, and at the delivery stage the transport each
 * recipient takes (ctx:deliver, ctx:forward, ...).
 *
 * ctx is a userdata holding a pointer to the caller's struct rule_ctx. It is
 * valid for one stage only: afterwards the pointer is cleared, so a rule
 * that kept ctx in an upvalue gets an error instead of touching memory the
 * session has moved on from. Fields are computed when read; methods are
 * looked up in one luaL_Reg table, as in rspamd's lua_task.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>

#include "config.h"
#include "rule_objects.h"
#include "rules_internal.h"
#include "send_mail.h"
#include "smtp_parse.h"
#include "spool.h"

#define CTX_MT "vsmtpd.ctx"
#define CTX_METHODS_KEY "vsmtpd.ctx.methods"
#define CTX_VAR_NAME_MAX 128
#define CTX_VARS_MAX 256
#define CTX_VAR_TEXT_MAX 4096

struct ctx_ud {
	struct rule_ctx *ctx; /* NULL once the stage is over */
	enum rule_stage stage;
};

/* ctx_check - the live context of the ctx object at 1; raises when stale. */
static struct rule_ctx *ctx_check(lua_State *L, struct ctx_ud **udp)
{
	struct ctx_ud *ud = luaL_checkudata(L, 1, CTX_MT);

	if (ud->ctx == NULL)
		luaL_error(L, "ctx used after its stage ended");
	if (udp != NULL)
		*udp = ud;
	return ud->ctx;
}

/* ctx_need_env - the envelope; raises before MAIL. */
static struct envelope *ctx_need_env(lua_State *L, struct rule_ctx *ctx, const char *what)
{
	if (ctx->env == NULL)
		luaL_error(L, "%s needs a transaction: available from the mail stage on", what);
	return ctx->env;
}

/* ctx_need_msg - the message; raises before preq. */
static struct message *ctx_need_msg(lua_State *L, struct rule_ctx *ctx, const char *what)
{
	if (ctx->msg == NULL)
		luaL_error(L, "%s needs the message: available from the preq stage on", what);
	return ctx->msg;
}

/* ctx_addr_equal - same mailbox: the local part exactly, the domain in any case. */
static int ctx_addr_equal(const char *a, const char *b)
{
	const char *at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');

	if (at_a == NULL || at_b == NULL)
		return at_a == at_b && strcasecmp(a, b) == 0; /* "postmaster" */
	return at_a - a == at_b - b && strncmp(a, b, (size_t)(at_a - a)) == 0 &&
	       strcasecmp(at_a, at_b) == 0;
}

/* ---- fields ---------------------------------------------------------- */

/* ctx_push_rcpt_list - every recipient as an address object. */
static void ctx_push_rcpt_list(lua_State *L, const struct envelope *env)
{
	size_t i, n = env ? env->nrcpts : 0;

	lua_createtable(L, (int)n, 0);
	for (i = 0; i < n; i++) {
		rule_address_push(L, env->rcpts[i].address);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/* ctx_push_string_or_nil - a string, nil when NULL or empty. */
static void ctx_push_string_or_nil(lua_State *L, const char *s)
{
	if (s != NULL && *s != '\0')
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
}

/* ctx_push_tls - {version=, cipher=, bits=, sni=} or nil without TLS. */
static void ctx_push_tls(lua_State *L, const struct rule_ctx *ctx)
{
	if (!ctx->is_secured) {
		lua_pushnil(L);
		return;
	}
	lua_createtable(L, 0, 4);
	lua_pushstring(L, ctx->tls_version ? ctx->tls_version : "");
	lua_setfield(L, -2, "version");
	lua_pushstring(L, ctx->tls_cipher ? ctx->tls_cipher : "");
	lua_setfield(L, -2, "cipher");
	lua_pushinteger(L, ctx->tls_bits);
	lua_setfield(L, -2, "bits");
	if (ctx->tls_sni != NULL && ctx->tls_sni[0] != '\0') {
		lua_pushstring(L, ctx->tls_sni);
		lua_setfield(L, -2, "sni");
	}
}

/* ctx_push_auth - {mechanism=, authid=} or nil. */
static void ctx_push_auth(lua_State *L, const struct rule_ctx *ctx)
{
	if (!ctx->is_authenticated) {
		lua_pushnil(L);
		return;
	}
	lua_createtable(L, 0, 2);
	lua_pushstring(L, ctx->auth_mechanism ? ctx->auth_mechanism : "");
	lua_setfield(L, -2, "mechanism");
	lua_pushstring(L, ctx->auth_authid ? ctx->auth_authid : "");
	lua_setfield(L, -2, "authid");
}

/* ctx_push_message_field - ctx.size, ctx.body, ctx.raw. */
static int ctx_push_message_field(lua_State *L, struct rule_ctx *ctx, const char *key)
{
	struct message *msg = ctx_need_msg(L, ctx, key);
	const char *body;
	size_t len;
	char *raw;

	if (strcmp(key, "size") == 0) {
		lua_pushinteger(L, (lua_Integer)message_size(msg));
	} else if (strcmp(key, "body") == 0) {
		body = message_body(msg, &len);
		lua_pushlstring(L, body ? body : "", len);
	} else {
		if ((raw = message_serialize(msg, &len)) == NULL)
			return luaL_error(L, "out of memory");
		lua_pushlstring(L, raw, len);
		free(raw);
	}
	return 1;
}

/* ctx_push_field - the value of ctx.<key>; 0 when key is no field. */
static int ctx_push_field(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage,
			  const char *key)
{
	const struct envelope *env = ctx->env;

	switch (key[0]) {
	case 'a':
		if (strcmp(key, "auth") == 0)
			return ctx_push_auth(L, ctx), 1;
		break;
	case 'b':
		if (strcmp(key, "body") == 0)
			return ctx_push_message_field(L, ctx, key);
		break;
	case 'c':
		if (strcmp(key, "client_ip") == 0)
			return lua_pushstring(L, ctx->client_ip ? ctx->client_ip : "unknown"), 1;
		if (strcmp(key, "client_port") == 0)
			return lua_pushinteger(L, ctx->client_port), 1;
		if (strcmp(key, "connection_timestamp") == 0)
			return lua_pushinteger(L, ctx->connection_timestamp), 1;
		break;
	case 'h':
		if (strcmp(key, "helo") == 0)
			return ctx_push_string_or_nil(L, ctx->helo), 1;
		break;
	case 'i':
		if (strcmp(key, "is_secured") == 0)
			return lua_pushboolean(L, ctx->is_secured), 1;
		if (strcmp(key, "is_authenticated") == 0)
			return lua_pushboolean(L, ctx->is_authenticated), 1;
		break;
	case 'l':
		if (strcmp(key, "listener") == 0)
			return ctx_push_string_or_nil(L, ctx->listener), 1;
		if (strcmp(key, "listener_kind") == 0)
			return ctx_push_string_or_nil(L, ctx->listener_kind), 1;
		break;
	case 'm':
		if (strcmp(key, "mail_from") == 0) {
			if (env == NULL)
				lua_pushnil(L);
			else
				rule_address_push(L, env->mail_from ? env->mail_from : "");
			return 1;
		}
		if (strcmp(key, "mail_timestamp") == 0) {
			if (env == NULL)
				lua_pushnil(L);
			else
				lua_pushinteger(L, ctx->mail_timestamp);
			return 1;
		}
		if (strcmp(key, "message_id") == 0)
			return ctx_push_string_or_nil(L, env ? env->id : NULL), 1;
		break;
	case 'r':
		if (strcmp(key, "rcpt") == 0) {
			if (ctx->rcpt == NULL)
				lua_pushnil(L);
			else
				rule_address_push(L, ctx->rcpt);
			return 1;
		}
		if (strcmp(key, "rcpt_list") == 0)
			return ctx_push_rcpt_list(L, env), 1;
		if (strcmp(key, "raw") == 0)
			return ctx_push_message_field(L, ctx, key);
		break;
	case 's':
		if (strcmp(key, "server_ip") == 0)
			return ctx_push_string_or_nil(L, ctx->server_ip), 1;
		if (strcmp(key, "server_port") == 0)
			return lua_pushinteger(L, ctx->server_port), 1;
		if (strcmp(key, "server_name") == 0)
			return ctx_push_string_or_nil(L, ctx->server_name), 1;
		if (strcmp(key, "stage") == 0)
			return lua_pushstring(L, rules_stage_name(stage)), 1;
		if (strcmp(key, "size") == 0)
			return ctx_push_message_field(L, ctx, key);
		break;
	case 't':
		if (strcmp(key, "tls") == 0)
			return ctx_push_tls(L, ctx), 1;
		break;
	}
	return 0;
}

/* lua_ctx_index - ctx.<field> or ctx:<method>; anything else raises. */
static int lua_ctx_index(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	const char *key = luaL_checkstring(L, 2);

	lua_getfield(L, LUA_REGISTRYINDEX, CTX_METHODS_KEY);
	if (lua_getfield(L, -1, key) != LUA_TNIL)
		return 1;
	lua_pop(L, 2);
	if (ctx_push_field(L, ctx, ud->stage, key))
		return 1;
	return luaL_error(L, "ctx has no field or method \"%s\"", key);
}

/* lua_ctx_newindex - ctx is read-only: changes go through its methods. */
static int lua_ctx_newindex(lua_State *L)
{
	return luaL_error(L, "ctx.%s cannot be assigned: use ctx:set(name, value) or a method",
			  luaL_tolstring(L, 2, NULL));
}

/* ---- variables ------------------------------------------------------- */

/* ctx_vars_slot - the connection's or the transaction's variables. */
static cJSON **ctx_vars_slot(struct rule_ctx *ctx)
{
	return (cJSON **)(ctx->env != NULL ? &ctx->tx_vars : &ctx->vars);
}

/* lua_ctx_set - ctx:set(name, value): a string, number or boolean (nil
 * deletes), kept with the transaction, or with the connection before MAIL. */
static int lua_ctx_set(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	size_t nlen, vlen;
	const char *name = luaL_checklstring(L, 2, &nlen);
	cJSON **slot = ctx_vars_slot(ctx), *item = NULL;

	if (nlen == 0 || nlen > CTX_VAR_NAME_MAX)
		return luaL_error(L, "variable name must be 1 to %d bytes", CTX_VAR_NAME_MAX);
	switch (lua_type(L, 3)) {
	case LUA_TNIL:
	case LUA_TNONE:
		break;
	case LUA_TBOOLEAN:
		item = cJSON_CreateBool(lua_toboolean(L, 3));
		break;
	case LUA_TNUMBER:
		item = cJSON_CreateNumber(lua_tonumber(L, 3));
		break;
	case LUA_TSTRING:
		lua_tolstring(L, 3, &vlen);
		if (vlen > CTX_VAR_TEXT_MAX)
			return luaL_error(L, "variable \"%s\": at most %d bytes", name,
					  CTX_VAR_TEXT_MAX);
		item = cJSON_CreateString(lua_tostring(L, 3));
		break;
	default:
		return luaL_error(L, "variable \"%s\": a string, number or boolean, not a %s", name,
				  luaL_typename(L, 3));
	}
	if (*slot == NULL && (*slot = cJSON_CreateObject()) == NULL)
		return luaL_error(L, "out of memory");
	cJSON_DeleteItemFromObjectCaseSensitive(*slot, name);
	if (item == NULL && !lua_isnoneornil(L, 3))
		return luaL_error(L, "out of memory");
	if (item != NULL) {
		if (cJSON_GetArraySize(*slot) >= CTX_VARS_MAX) {
			cJSON_Delete(item);
			return luaL_error(L, "at most %d variables", CTX_VARS_MAX);
		}
		cJSON_AddItemToObject(*slot, name, item);
	}
	return 0;
}

/* ctx_push_json - a variable's value as Lua. */
static void ctx_push_json(lua_State *L, const cJSON *item)
{
	if (cJSON_IsBool(item))
		lua_pushboolean(L, cJSON_IsTrue(item));
	else if (cJSON_IsNumber(item) && item->valuedouble == (double)(lua_Integer)item->valuedouble)
		lua_pushinteger(L, (lua_Integer)item->valuedouble);
	else if (cJSON_IsNumber(item))
		lua_pushnumber(L, item->valuedouble);
	else if (cJSON_IsString(item))
		lua_pushstring(L, item->valuestring);
	else
		lua_pushnil(L);
}

/* lua_ctx_get - ctx:get(name): the transaction's value, else the
 * connection's, else nil. */
static int lua_ctx_get(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	const char *name = luaL_checkstring(L, 2);
	const cJSON *item = NULL;

	if (ctx->tx_vars != NULL)
		item = cJSON_GetObjectItemCaseSensitive(ctx->tx_vars, name);
	if (item == NULL && ctx->vars != NULL)
		item = cJSON_GetObjectItemCaseSensitive(ctx->vars, name);
	ctx_push_json(L, item);
	return 1;
}

/* rules_tx_vars - both sets merged, as JSON text. */
char *rules_tx_vars(const struct rule_ctx *ctx)
{
	cJSON *merged, *item;
	const cJSON *set[2] = {ctx->vars, ctx->tx_vars};
	char *text;
	int i;

	if (cJSON_GetArraySize(ctx->vars) == 0 && cJSON_GetArraySize(ctx->tx_vars) == 0)
		return NULL;
	if ((merged = cJSON_CreateObject()) == NULL)
		return NULL;
	for (i = 0; i < 2; i++) {
		if (set[i] == NULL)
			continue;
		for (item = set[i]->child; item != NULL; item = item->next) {
			cJSON_DeleteItemFromObjectCaseSensitive(merged, item->string);
			cJSON_AddItemToObject(merged, item->string, cJSON_Duplicate(item, 1));
		}
	}
	text = cJSON_PrintUnformatted(merged);
	cJSON_Delete(merged);
	return text;
}

/* rules_tx_end - drop the transaction's variables. */
void rules_tx_end(struct rule_ctx *ctx)
{
	cJSON_Delete(ctx->tx_vars);
	ctx->tx_vars = NULL;
}

/* rules_ctx_release - drop everything the engine keeps in ctx. */
void rules_ctx_release(struct rule_ctx *ctx)
{
	rules_tx_end(ctx);
	cJSON_Delete(ctx->vars);
	ctx->vars = NULL;
}

/* ---- the envelope ---------------------------------------------------- */

/* ctx_check_address - the address at idx (string or address object) into buf. */
static void ctx_check_address(lua_State *L, int idx, char *buf, size_t len)
{
	rule_address_check(L, idx, buf, len);
}

/* lua_ctx_rewrite_mail_from - ctx:rewrite_mail_from(addr); "" is the null sender. */
static int lua_ctx_rewrite_mail_from(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct envelope *env = ctx_need_env(L, ctx, "rewrite_mail_from");
	char addr[RULE_ADDRESS_TEXT_MAX];

	rule_sender_check(L, 2, addr, sizeof(addr));
	if (envelope_set(&env->mail_from, addr) < 0)
		return luaL_error(L, "out of memory");
	return 0;
}

/* ctx_find_rcpt - the index of addr among the recipients, or -1. */
static long ctx_find_rcpt(const struct envelope *env, const char *addr)
{
	size_t i;

	for (i = 0; i < env->nrcpts; i++)
		if (ctx_addr_equal(env->rcpts[i].address, addr))
			return (long)i;
	return -1;
}

/* ctx_add_rcpt - add addr unless it is there already; pushes whether added. */
static int ctx_add_rcpt(lua_State *L, const char *what)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct envelope *env = ctx_need_env(L, ctx, what);
	char addr[RULE_ADDRESS_TEXT_MAX];

	ctx_check_address(L, 2, addr, sizeof(addr));
	if (ctx_find_rcpt(env, addr) >= 0) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (envelope_add_rcpt(env, addr, 0, NULL, NULL) < 0)
		return luaL_error(L, "out of memory");
	lua_pushboolean(L, 1);
	return 1;
}

/* lua_ctx_add_rcpt - ctx:add_rcpt(addr): one more envelope recipient. */
static int lua_ctx_add_rcpt(lua_State *L)
{
	return ctx_add_rcpt(L, "add_rcpt");
}

/* lua_ctx_bcc - ctx:bcc(addr): a blind copy, an envelope recipient the
 * headers never show. */
static int lua_ctx_bcc(lua_State *L)
{
	return ctx_add_rcpt(L, "bcc");
}

/* lua_ctx_remove_rcpt - ctx:remove_rcpt(addr): returns whether it was there. */
static int lua_ctx_remove_rcpt(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct envelope *env = ctx_need_env(L, ctx, "remove_rcpt");
	char addr[RULE_ADDRESS_TEXT_MAX];
	long i;
	int removed = 0;

	ctx_check_address(L, 2, addr, sizeof(addr));
	while ((i = ctx_find_rcpt(env, addr)) >= 0) {
		envelope_remove_rcpt(env, (size_t)i);
		removed = 1;
	}
	lua_pushboolean(L, removed);
	return 1;
}

/* lua_ctx_rewrite_rcpt - ctx:rewrite_rcpt(old, new): returns whether old was there. */
static int lua_ctx_rewrite_rcpt(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct envelope *env = ctx_need_env(L, ctx, "rewrite_rcpt");
	char old[RULE_ADDRESS_TEXT_MAX], new[RULE_ADDRESS_TEXT_MAX];
	long i, dup;

	ctx_check_address(L, 2, old, sizeof(old));
	ctx_check_address(L, 3, new, sizeof(new));
	if ((i = ctx_find_rcpt(env, old)) < 0) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if ((dup = ctx_find_rcpt(env, new)) >= 0 && dup != i) {
		envelope_remove_rcpt(env, (size_t)i); /* new is a recipient already */
	} else if (envelope_set(&env->rcpts[i].address, new) < 0) {
		return luaL_error(L, "out of memory");
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- the message ----------------------------------------------------- */

/* ctx_header_name - argument idx as a header name (checked by the library too). */
static const char *ctx_header_name(lua_State *L, int idx)
{
	size_t len;
	const char *name = luaL_checklstring(L, idx, &len);

	if (len == 0 || strlen(name) != len)
		luaL_argerror(L, idx, "not a header name");
	return name;
}

/* ctx_edit_failed - raise for a failed edit. */
static int ctx_edit_failed(lua_State *L, const char *what)
{
	if (errno == ENOMEM)
		return luaL_error(L, "%s: out of memory", what);
	return luaL_error(L, "%s: invalid name, value or address (header names are printable "
			     "ASCII without ':', values hold no CR or LF)",
			  what);
}

/* lua_ctx_has_header - ctx:has_header(name). */
static int lua_ctx_has_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "has_header");

	lua_pushboolean(L, message_header_count(msg, ctx_header_name(L, 2)) > 0);
	return 1;
}

/* lua_ctx_count_header - ctx:count_header(name). */
static int lua_ctx_count_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "count_header");

	lua_pushinteger(L, (lua_Integer)message_header_count(msg, ctx_header_name(L, 2)));
	return 1;
}

/* lua_ctx_get_header - ctx:get_header(name [, n]): the nth (1-based, first
 * by default) value, unfolded, or nil. */
static int lua_ctx_get_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "get_header");
	const char *name = ctx_header_name(L, 2);
	lua_Integer nth = luaL_optinteger(L, 3, 1);
	size_t len;
	char *value;

	if (nth < 1 || (value = message_header_get(msg, name, (size_t)nth - 1, &len)) == NULL) {
		if (nth >= 1 && errno == ENOMEM)
			return luaL_error(L, "out of memory");
		lua_pushnil(L);
		return 1;
	}
	lua_pushlstring(L, value, len);
	free(value);
	return 1;
}

/* lua_ctx_get_all_headers - ctx:get_all_headers([name]): with a name, every
 * value of that header; without, every field as {name = ..., value = ...}. */
static int lua_ctx_get_all_headers(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "get_all_headers");
	const char *name = lua_isnoneornil(L, 2) ? NULL : ctx_header_name(L, 2);
	size_t i, n = message_field_count(msg), nlen, vlen;
	lua_Integer out = 0;
	const char *fname;
	char *value;

	lua_newtable(L);
	for (i = 0; i < n; i++) {
		fname = message_field_name(msg, i, &nlen);
		if (name != NULL && (strlen(name) != nlen || strncasecmp(fname, name, nlen) != 0))
			continue;
		if ((value = message_field_value(msg, i, &vlen)) == NULL)
			return luaL_error(L, "out of memory");
		if (name != NULL) {
			lua_pushlstring(L, value, vlen);
		} else {
			lua_createtable(L, 0, 2);
			lua_pushlstring(L, fname, nlen);
			lua_setfield(L, -2, "name");
			lua_pushlstring(L, value, vlen);
			lua_setfield(L, -2, "value");
		}
		free(value);
		lua_rawseti(L, -2, ++out);
	}
	return 1;
}

/* ctx_header_edit - the shared body of append, prepend and set. */
static int ctx_header_edit(lua_State *L, const char *what,
			   int (*edit)(struct message *, const char *, const char *))
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), what);
	const char *name = ctx_header_name(L, 2);
	size_t len;
	const char *value = luaL_checklstring(L, 3, &len);

	if (strlen(value) != len) /* a NUL would silently cut the value */
		return luaL_argerror(L, 3, "a header value holds no NUL, CR or LF");
	if (edit(msg, name, value) < 0)
		return ctx_edit_failed(L, what);
	return 0;
}

static int lua_ctx_append_header(lua_State *L)
{
	return ctx_header_edit(L, "append_header", message_header_append);
}

static int lua_ctx_prepend_header(lua_State *L)
{
	return ctx_header_edit(L, "prepend_header", message_header_prepend);
}

static int lua_ctx_set_header(lua_State *L)
{
	return ctx_header_edit(L, "set_header", message_header_set);
}

/* lua_ctx_rename_header - ctx:rename_header(old, new): how many were renamed. */
static int lua_ctx_rename_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "rename_header");
	ssize_t n = message_header_rename(msg, ctx_header_name(L, 2), ctx_header_name(L, 3));

	if (n < 0)
		return ctx_edit_failed(L, "rename_header");
	lua_pushinteger(L, n);
	return 1;
}

/* lua_ctx_remove_header - ctx:remove_header(name): how many were removed. */
static int lua_ctx_remove_header(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "remove_header");
	ssize_t n = message_header_remove(msg, ctx_header_name(L, 2));

	if (n < 0)
		return ctx_edit_failed(L, "remove_header");
	lua_pushinteger(L, n);
	return 1;
}

/* lua_ctx_add_to - ctx:add_to(addr): add a mailbox to the To header. */
static int lua_ctx_add_to(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "add_to");
	char addr[RULE_ADDRESS_TEXT_MAX];

	ctx_check_address(L, 2, addr, sizeof(addr));
	if (message_to_add(msg, addr) < 0) {
		if (errno == EBADMSG)
			return luaL_error(L, "add_to: the To header is malformed; left unchanged");
		return ctx_edit_failed(L, "add_to");
	}
	return 0;
}

/* lua_ctx_remove_to - ctx:remove_to(addr): how many mailboxes went. */
static int lua_ctx_remove_to(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "remove_to");
	char addr[RULE_ADDRESS_TEXT_MAX];
	ssize_t n;

	ctx_check_address(L, 2, addr, sizeof(addr));
	if ((n = message_to_remove(msg, addr)) < 0)
		return ctx_edit_failed(L, "remove_to");
	lua_pushinteger(L, n);
	return 1;
}

/* lua_ctx_rewrite_to - ctx:rewrite_to(old, new): how many were rewritten. */
static int lua_ctx_rewrite_to(lua_State *L)
{
	struct message *msg = ctx_need_msg(L, ctx_check(L, NULL), "rewrite_to");
	char old[RULE_ADDRESS_TEXT_MAX], new[RULE_ADDRESS_TEXT_MAX];
	ssize_t n;

	ctx_check_address(L, 2, old, sizeof(old));
	ctx_check_address(L, 3, new, sizeof(new));
	if ((n = message_to_rewrite(msg, old, new)) < 0)
		return ctx_edit_failed(L, "rewrite_to");
	lua_pushinteger(L, n);
	return 1;
}

/* ---- services outside the sandbox ----------------------------------- */

/* ctx_service - ask the world outside; raises when nobody can answer. */
static int ctx_service(lua_State *L, struct rule_ctx *ctx, enum rule_service kind,
		       const char *name, const char *data, size_t len)
{
	char file[RULE_FILE_NAME_MAX];

	if (ctx->service == NULL)
		return luaL_error(L, "not available here (no queue process to ask)");
	snprintf(file, sizeof(file), "%s",
		 ctx->env != NULL && ctx->env->id[0] ? ctx->env->id : "");
	return ctx->service(ctx->service_arg, kind, name, file, data, len);
}

/* ctx_check_folder - a write/dump folder name: one safe path component. */
static const char *ctx_check_folder(lua_State *L, int idx)
{
	const char *dir = luaL_checkstring(L, idx);

	if (!spool_folder_name_ok(dir))
		luaL_argerror(L, idx, "a folder name: letters, digits, '.', '_' and '-', not "
				      "starting with '.'");
	return dir;
}

/* lua_ctx_write - ctx:write(dir): the raw message into app_dir/dir/<id>.eml. */
static int lua_ctx_write(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	struct message *msg = ctx_need_msg(L, ctx, "write");
	const char *dir = ctx_check_folder(L, 2);
	size_t len;
	char *raw = message_serialize(msg, &len);
	int err;

	if (raw == NULL)
		return luaL_error(L, "out of memory");
	err = ctx_service(L, ctx, RULE_SERVICE_WRITE, dir, raw, len);
	free(raw);
	if (err != 0)
		return luaL_error(L, "write(\"%s\"): %s", dir, strerror(err));
	return 0;
}

/* ctx_dump_json - the context as JSON: connection, envelope, message. */
static char *ctx_dump_json(const struct rule_ctx *ctx, enum rule_stage stage)
{
	cJSON *obj = cJSON_CreateObject(), *env = NULL;
	char *text = NULL, *json, *raw = NULL;
	size_t len;

	if (obj == NULL)
		return NULL;
	cJSON_AddStringToObject(obj, "stage", rules_stage_name(stage));
	cJSON_AddStringToObject(obj, "client_ip", ctx->client_ip ? ctx->client_ip : "");
	cJSON_AddNumberToObject(obj, "client_port", ctx->client_port);
	cJSON_AddStringToObject(obj, "server_name", ctx->server_name ? ctx->server_name : "");
	cJSON_AddStringToObject(obj, "listener", ctx->listener ? ctx->listener : "");
	cJSON_AddStringToObject(obj, "helo", ctx->helo ? ctx->helo : "");
	cJSON_AddNumberToObject(obj, "connection_timestamp", (double)ctx->connection_timestamp);
	if (ctx->env != NULL && (json = envelope_to_json(ctx->env)) != NULL) {
		env = cJSON_Parse(json);
		free(json);
	}
	cJSON_AddItemToObject(obj, "envelope", env ? env : cJSON_CreateNull());
	if ((json = rules_tx_vars(ctx)) != NULL) {
		cJSON_AddItemToObject(obj, "vars", cJSON_Parse(json));
		free(json);
	}
	if (ctx->msg != NULL && (raw = message_serialize(ctx->msg, &len)) != NULL)
		cJSON_AddStringToObject(obj, "message", raw);
	else
		cJSON_AddNullToObject(obj, "message");
	free(raw);
	text = cJSON_Print(obj);
	cJSON_Delete(obj);
	return text;
}

/* lua_ctx_dump - ctx:dump(dir): what the stage knows, as JSON, into
 * app_dir/dir/<id>.json. */
static int lua_ctx_dump(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	const char *dir = ctx_check_folder(L, 2);
	char *json = ctx_dump_json(ctx, ud->stage);
	int err;

	if (json == NULL)
		return luaL_error(L, "out of memory");
	err = ctx_service(L, ctx, RULE_SERVICE_DUMP, dir, json, strlen(json));
	free(json);
	if (err != 0)
		return luaL_error(L, "dump(\"%s\"): %s", dir, strerror(err));
	return 0;
}

/* lua_user_exist - user_exist(name): whether a local account has this name. */
int lua_user_exist(lua_State *L)
{
	struct rules *r = rules_from_state(L);
	size_t len, i;
	const char *name = luaL_checklstring(L, 1, &len);
	int err;

	if (r->current == NULL)
		return luaL_error(L, "user_exist() works inside a rule, not while loading");
	for (i = 0; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '-' ||
		      name[i] == '.'))
			break;
	if (len == 0 || len > 32 || i < len || name[0] == '-') {
		lua_pushboolean(L, 0); /* no account can have such a name */
		return 1;
	}
	err = ctx_service(L, r->current, RULE_SERVICE_USER_EXIST, name, NULL, 0);
	if (err != 0 && err != ENOENT)
		return luaL_error(L, "user_exist(\"%s\"): %s", name, strerror(err));
	lua_pushboolean(L, err == 0);
	return 1;
}

/* lua_ctx_quarantine - ctx:quarantine(name): the same as status.quarantine(name). */
static int lua_ctx_quarantine(lua_State *L)
{
	ctx_check(L, NULL);
	return rules_status_push_quarantine(L, luaL_checkstring(L, 2));
}

/* ---- delivery: the transport --------------------------------------- */

/* What a route method takes after its recipient. */
enum ctx_target {
	CTX_TARGET_NONE,     /* nothing */
	CTX_TARGET_SMTP,     /* required: host, host:port, [host]:port, [IPv6]:port */
	CTX_TARGET_SMTP_OPTIONAL, /* the same, or nothing */
	CTX_TARGET_OPTIONAL, /* optional ("" or nil: the configured one), unix:/path too */
};

/* ctx_check_target - the target at idx into out (RULE_ROUTE_TARGET_MAX
 * bytes); "" when optional and absent. Raises, naming the function what
 * ("ctx:forward"), when it is no destination. */
static void ctx_check_target(lua_State *L, int idx, const char *what, enum ctx_target tk,
			     char *out)
{
	char host[RULE_ROUTE_TARGET_MAX];
	const char *text, *path;
	unsigned port;
	int bracketed;
	size_t len;

	out[0] = '\0';
	if (tk == CTX_TARGET_NONE ||
	    ((tk == CTX_TARGET_OPTIONAL || tk == CTX_TARGET_SMTP_OPTIONAL) && lua_isnoneornil(L, idx)))
		return;
	text = luaL_checklstring(L, idx, &len);
	if ((tk == CTX_TARGET_OPTIONAL || tk == CTX_TARGET_SMTP_OPTIONAL) && len == 0)
		return;
	if (len >= RULE_ROUTE_TARGET_MAX)
		luaL_error(L, "%s: a destination is at most %d bytes", what,
			   RULE_ROUTE_TARGET_MAX - 1);
	if (strlen(text) != len ||
	    config_target_split(text, host, sizeof(host), &port, &path, &bracketed) < 0)
		luaL_error(L, "%s: \"%s\" is not a destination (%s)", what, text,
			   tk != CTX_TARGET_OPTIONAL ? "host, host:port or [address]:port"
						 : "unix:/path, host:port or [address]:port");
	if (tk != CTX_TARGET_OPTIONAL && path != NULL)
		luaL_error(L, "%s: \"%s\": SMTP goes over TCP, give host, host:port or "
			      "[address]:port (a unix socket is for ctx:lmtp)",
			   what, text);
	memcpy(out, text, len + 1);
}

/* send_mail_error - the reason a send_mail() failed, for its error. */
static const char *send_mail_error(int err)
{
	switch (err) {
	case ENOENT:
		return "no such file in the rules folder";
	case EACCES:
		return "not a file of the rules folder";
	case EBADMSG:
		return "not a message that can be sent (a NUL byte, a bare CR or a line over 998 "
		       "octets)";
	case EFBIG:
		return "larger than [limits] max_message_size";
	case EINVAL:
		return "not a regular file";
	default:
		return strerror(err);
	}
}

/*
 * lua_send_mail - send_mail(from, to, path [, relay]): queue the message
 * in the file path of the rules folder, from from ("" for the null
 * sender) to to (an address, or a list of them), through relay
 * (host[:port]) or the usual way. Returns its queue id.
 */
int lua_send_mail(lua_State *L)
{
	struct rules *r = rules_from_state(L);
	char from[RULE_ADDRESS_TEXT_MAX], relay[RULE_ROUTE_TARGET_MAX], id[SPOOL_ID_LEN + 1];
	const char *list[SEND_MAIL_RCPTS_MAX];
	struct rule_mail mail = {.from = from, .to = list, .relay = relay};
	int is_list = lua_istable(L, 2) && !rule_is_address(L, 2), err;
	lua_Integer i, n = is_list ? (lua_Integer)lua_rawlen(L, 2) : 1;
	char (*to)[RULE_ADDRESS_TEXT_MAX];

	if (r->current == NULL)
		return luaL_error(L, "send_mail() works inside a rule, not while loading");
	lua_settop(L, 4); /* the copies below go above the arguments */
	rule_sender_check(L, 1, from, sizeof(from));
	if (n < 1 || n > SEND_MAIL_RCPTS_MAX)
		return luaL_error(L, "send_mail: from 1 to %d recipients, not %d", SEND_MAIL_RCPTS_MAX,
				  (int)n);
	/* A userdata holds the copies: an error below unwinds without a leak. */
	to = lua_newuserdatauv(L, (size_t)n * sizeof(*to), 0);
	for (i = 0; i < n; i++) {
		if (is_list) {
			lua_rawgeti(L, 2, i + 1);
			rule_address_check(L, -1, to[i], sizeof(to[i]));
			lua_pop(L, 1);
		} else {
			rule_address_check(L, 2, to[i], sizeof(to[i]));
		}
		list[i] = to[i];
	}
	mail.nto = (size_t)n;
	mail.path = luaL_checkstring(L, 3);
	if (!send_mail_path_ok(mail.path))
		return luaL_argerror(L, 3, "a file of the rules folder: a relative path without "
					   "'.' or '..' components");
	ctx_check_target(L, 4, "send_mail", CTX_TARGET_SMTP_OPTIONAL, relay);
	if (r->mails_sent >= RULES_SEND_MAIL_MAX)
		return luaL_error(L, "send_mail: at most %d messages per stage", RULES_SEND_MAIL_MAX);
	if (r->current->send_mail == NULL)
		return luaL_error(L, "send_mail: not available here (no queue process to ask)");
	r->mails_sent++;
	err = r->current->send_mail(r->current->service_arg, &mail, id);
	if (err != 0)
		return luaL_error(L, "send_mail(\"%s\"): %s", mail.path, send_mail_error(err));
	lua_pushstring(L, id);
	return 1;
}

/* ctx_route - the body of every transport method: check where it is
 * called, its recipient (none for the _all forms) and target, then hand
 * the choice to the delivery process's callback. Returns nothing. */
static int ctx_route(lua_State *L, const char *what, const char *args, enum rule_route kind,
		     enum ctx_target tk)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	char addr[RULE_ADDRESS_TEXT_MAX] = "", target[RULE_ROUTE_TARGET_MAX], name[48];
	size_t wlen = strlen(what);
	int all = wlen > 4 && strcmp(what + wlen - 4, "_all") == 0, err;
	const char *rcpt = all ? NULL : addr;
	int top = lua_gettop(L);
	long i;

	if (ud->stage != RULE_STAGE_DELIVERY)
		return luaL_error(L, "ctx:%s: only in the delivery stage", what);
	if (ctx->route == NULL)
		return luaL_error(L, "ctx:%s: no delivery to choose a transport for here", what);
	/* ctx:maildir_all("bob@example.org") would route every recipient:
	 * an argument too many is a mistake, not something to ignore. */
	while (top > 1 && lua_isnil(L, top))
		top--;
	if (top > 1 + !all + (tk != CTX_TARGET_NONE)) {
		char one[32]; /* the method for one recipient */

		if (!all)
			return luaL_error(L, "ctx:%s(%s): too many arguments", what, args);
		snprintf(one, sizeof(one), "%.*s", (int)(wlen - 4), what);
		return luaL_error(L, "ctx:%s(%s): too many arguments (for one recipient: "
				     "ctx:%s(rcpt%s))",
				  what, args, one, tk == CTX_TARGET_NONE ? "" : ", ...");
	}
	if (!all)
		ctx_check_address(L, 2, addr, sizeof(addr));
	snprintf(name, sizeof(name), "ctx:%s", what);
	ctx_check_target(L, all ? 2 : 3, name, tk, target);
	if (!all && ctx->env != NULL) {
		/* The callback gets the envelope's spelling of the address. */
		if ((i = ctx_find_rcpt(ctx->env, addr)) < 0)
			return luaL_error(L, "ctx:%s: %s is not a recipient", what, addr);
		rcpt = ctx->env->rcpts[i].address;
	}
	err = ctx->route(ctx->route_arg, rcpt, kind, target);
	if (err == ENOENT)
		return luaL_error(L, "ctx:%s: %s is not a recipient", what, addr);
	if (err == EINVAL)
		return luaL_error(L, "ctx:%s: \"%s\" is not a destination", what, target);
	if (err != 0)
		return luaL_error(L, "ctx:%s: %s", what, strerror(err));
	return 0;
}

/* lua_ctx_deliver - ctx:deliver(rcpt): the usual way, chosen explicitly. */
static int lua_ctx_deliver(lua_State *L)
{
	return ctx_route(L, "deliver", "rcpt", ROUTE_DELIVER, CTX_TARGET_NONE);
}

/* lua_ctx_forward - ctx:forward(rcpt, target): SMTP to target. */
static int lua_ctx_forward(lua_State *L)
{
	return ctx_route(L, "forward", "rcpt, target", ROUTE_FORWARD, CTX_TARGET_SMTP);
}

/* lua_ctx_maildir - ctx:maildir(rcpt): into the recipient's Maildir. */
static int lua_ctx_maildir(lua_State *L)
{
	return ctx_route(L, "maildir", "rcpt", ROUTE_MAILDIR, CTX_TARGET_NONE);
}

/* lua_ctx_mbox - ctx:mbox(rcpt): appended to the recipient's mbox. */
static int lua_ctx_mbox(lua_State *L)
{
	return ctx_route(L, "mbox", "rcpt", ROUTE_MBOX, CTX_TARGET_NONE);
}

/* lua_ctx_lmtp - ctx:lmtp(rcpt [, target]): LMTP to target or [delivery] lmtp. */
static int lua_ctx_lmtp(lua_State *L)
{
	return ctx_route(L, "lmtp", "rcpt [, target]", ROUTE_LMTP, CTX_TARGET_OPTIONAL);
}

/* lua_ctx_disable_delivery - ctx:disable_delivery(rcpt): sent nowhere. */
static int lua_ctx_disable_delivery(lua_State *L)
{
	return ctx_route(L, "disable_delivery", "rcpt", ROUTE_NONE, CTX_TARGET_NONE);
}

/* lua_ctx_deliver_all - ctx:deliver_all(). */
static int lua_ctx_deliver_all(lua_State *L)
{
	return ctx_route(L, "deliver_all", "", ROUTE_DELIVER, CTX_TARGET_NONE);
}

/* lua_ctx_forward_all - ctx:forward_all(target). */
static int lua_ctx_forward_all(lua_State *L)
{
	return ctx_route(L, "forward_all", "target", ROUTE_FORWARD, CTX_TARGET_SMTP);
}

/* lua_ctx_maildir_all - ctx:maildir_all(). */
static int lua_ctx_maildir_all(lua_State *L)
{
	return ctx_route(L, "maildir_all", "", ROUTE_MAILDIR, CTX_TARGET_NONE);
}

/* lua_ctx_mbox_all - ctx:mbox_all(). */
static int lua_ctx_mbox_all(lua_State *L)
{
	return ctx_route(L, "mbox_all", "", ROUTE_MBOX, CTX_TARGET_NONE);
}

/* lua_ctx_lmtp_all - ctx:lmtp_all([target]). */
static int lua_ctx_lmtp_all(lua_State *L)
{
	return ctx_route(L, "lmtp_all", "[target]", ROUTE_LMTP, CTX_TARGET_OPTIONAL);
}

/* lua_ctx_disable_delivery_all - ctx:disable_delivery_all(). */
static int lua_ctx_disable_delivery_all(lua_State *L)
{
	return ctx_route(L, "disable_delivery_all", "", ROUTE_NONE, CTX_TARGET_NONE);
}

/* ---- the class ------------------------------------------------------- */

/* rules_ctx_open - the ctx metatable and its methods. */
void rules_ctx_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"set", lua_ctx_set},
		{"get", lua_ctx_get},
		{"rewrite_mail_from", lua_ctx_rewrite_mail_from},
		{"add_rcpt", lua_ctx_add_rcpt},
		{"remove_rcpt", lua_ctx_remove_rcpt},
		{"rewrite_rcpt", lua_ctx_rewrite_rcpt},
		{"bcc", lua_ctx_bcc},
		{"has_header", lua_ctx_has_header},
		{"get_header", lua_ctx_get_header},
		{"get_all_headers", lua_ctx_get_all_headers},
		{"count_header", lua_ctx_count_header},
		{"append_header", lua_ctx_append_header},
		{"prepend_header", lua_ctx_prepend_header},
		{"set_header", lua_ctx_set_header},
		{"rename_header", lua_ctx_rename_header},
		{"remove_header", lua_ctx_remove_header},
		{"add_to", lua_ctx_add_to},
		{"remove_to", lua_ctx_remove_to},
		{"rewrite_to", lua_ctx_rewrite_to},
		{"quarantine", lua_ctx_quarantine},
		{"write", lua_ctx_write},
		{"dump", lua_ctx_dump},
		{"deliver", lua_ctx_deliver},
		{"forward", lua_ctx_forward},
		{"maildir", lua_ctx_maildir},
		{"mbox", lua_ctx_mbox},
		{"lmtp", lua_ctx_lmtp},
		{"disable_delivery", lua_ctx_disable_delivery},
		{"deliver_all", lua_ctx_deliver_all},
		{"forward_all", lua_ctx_forward_all},
		{"maildir_all", lua_ctx_maildir_all},
		{"mbox_all", lua_ctx_mbox_all},
		{"lmtp_all", lua_ctx_lmtp_all},
		{"disable_delivery_all", lua_ctx_disable_delivery_all},
		{NULL, NULL},
	};

	luaL_newmetatable(L, CTX_MT);
	lua_pushcfunction(L, lua_ctx_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, lua_ctx_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushliteral(L, "ctx");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_setfield(L, LUA_REGISTRYINDEX, CTX_METHODS_KEY);
}

/* rules_ctx_push - a ctx object for one stage. */
void rules_ctx_push(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	struct ctx_ud *ud = lua_newuserdatauv(L, sizeof(*ud), 0);

	ud->ctx = ctx;
	ud->stage = stage;
	luaL_setmetatable(L, CTX_MT);
}

/* rules_ctx_invalidate - the stage is over. */
void rules_ctx_invalidate(lua_State *L, int idx)
{
	struct ctx_ud *ud = luaL_checkudata(L, idx, CTX_MT);

	ud->ctx = NULL;
}
