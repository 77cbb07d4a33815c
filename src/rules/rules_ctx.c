/*
 * rules_ctx.c - the `ctx` object rules receive: the connection, the
 * transaction and, from preq on, the message, with the seeds' predefined
 * functions as methods, and at the delivery stage the transport each
 * recipient takes (ctx:deliver, ctx:forward, ...).
 *
 * ctx is a userdata holding a pointer to the caller's struct rule_ctx. It is
 * valid for one stage only: afterwards the pointer is cleared, so a rule
 * that kept ctx in an upvalue gets an error instead of touching memory the
 * session has moved on from. Fields are computed when read, found by name
 * in one table of {name, when readable, push function}; methods are looked
 * up in luaL_Reg tables, as in rspamd's lua_task.c: the ones that read and
 * edit the envelope and the message are in rules_ctx_edit.c, the delivery
 * stage's transport methods and send_mail() in rules_ctx_route.c, the SPF
 * checks in rules_spf.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lauxlib.h>

#include "rule_objects.h"
#include "rules_arc.h"
#include "rules_auth_results.h"
#include "rules_clamd.h"
#include "rules_dkim.h"
#include "rules_dmarc.h"
#include "rules_internal.h"
#include "rules_spamd.h"
#include "rules_spf.h"
#include "smtp_parse.h"
#include "spool.h"

#define CTX_MT "vsmtpd.ctx"
#define CTX_METHODS_KEY "vsmtpd.ctx.methods"
#define CTX_VAR_NAME_MAX 128
#define CTX_VARS_MAX 256
#define CTX_VAR_TEXT_MAX 4096

/* ctx_check - the live context of the ctx object at 1; raises when stale. */
struct rule_ctx *ctx_check(lua_State *L, struct ctx_ud **udp)
{
	struct ctx_ud *ud = luaL_checkudata(L, 1, CTX_MT);

	if (ud->ctx == NULL)
		luaL_error(L, "ctx used after its stage ended");
	if (udp != NULL)
		*udp = ud;
	return ud->ctx;
}

/* ctx_need_env - the envelope; raises before MAIL. */
struct envelope *ctx_need_env(lua_State *L, struct rule_ctx *ctx, const char *what)
{
	if (ctx->env == NULL)
		luaL_error(L, "%s needs a transaction: available from the mail stage on", what);
	return ctx->env;
}

/* ctx_need_msg - the message; raises before preq. */
struct message *ctx_need_msg(lua_State *L, struct rule_ctx *ctx, const char *what)
{
	if (ctx->msg == NULL)
		luaL_error(L, "%s needs the message: available from the preq stage on", what);
	return ctx->msg;
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

/* ctx_field_auth - ctx.auth. */
static void ctx_field_auth(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_auth(L, ctx);
}

/* ctx_field_body - ctx.body. */
static void ctx_field_body(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_message_field(L, ctx, "body");
}

/* ctx_field_client_ip - ctx.client_ip, "unknown" when there is none. */
static void ctx_field_client_ip(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	lua_pushstring(L, ctx->client_ip ? ctx->client_ip : "unknown");
}

/* ctx_field_client_port - ctx.client_port. */
static void ctx_field_client_port(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	lua_pushinteger(L, ctx->client_port);
}

/* ctx_field_connection_timestamp - ctx.connection_timestamp. */
static void ctx_field_connection_timestamp(lua_State *L, struct rule_ctx *ctx,
					   enum rule_stage stage)
{
	(void)stage;
	lua_pushinteger(L, ctx->connection_timestamp);
}

/* ctx_field_helo - ctx.helo. */
static void ctx_field_helo(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_string_or_nil(L, ctx->helo);
}

/* ctx_field_is_secured - ctx.is_secured. */
static void ctx_field_is_secured(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	lua_pushboolean(L, ctx->is_secured);
}

/* ctx_field_is_authenticated - ctx.is_authenticated. */
static void ctx_field_is_authenticated(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	lua_pushboolean(L, ctx->is_authenticated);
}

/* ctx_field_listener - ctx.listener. */
static void ctx_field_listener(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_string_or_nil(L, ctx->listener);
}

/* ctx_field_listener_kind - ctx.listener_kind. */
static void ctx_field_listener_kind(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_string_or_nil(L, ctx->listener_kind);
}

/* ctx_field_mail_from - ctx.mail_from. */
static void ctx_field_mail_from(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	rule_address_push(L, ctx->env->mail_from ? ctx->env->mail_from : "");
}

/* ctx_field_mail_timestamp - ctx.mail_timestamp. */
static void ctx_field_mail_timestamp(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	lua_pushinteger(L, ctx->mail_timestamp);
}

/* ctx_field_message_id - ctx.message_id. */
static void ctx_field_message_id(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_string_or_nil(L, ctx->env->id);
}

/* ctx_field_rcpt - ctx.rcpt, nil when there is none. */
static void ctx_field_rcpt(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	if (ctx->rcpt == NULL)
		lua_pushnil(L);
	else
		rule_address_push(L, ctx->rcpt);
}

/* ctx_field_rcpt_list - ctx.rcpt_list: empty without a transaction. */
static void ctx_field_rcpt_list(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_rcpt_list(L, ctx->env);
}

/* ctx_field_raw - ctx.raw. */
static void ctx_field_raw(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_message_field(L, ctx, "raw");
}

/* ctx_field_server_ip - ctx.server_ip. */
static void ctx_field_server_ip(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_string_or_nil(L, ctx->server_ip);
}

/* ctx_field_server_port - ctx.server_port. */
static void ctx_field_server_port(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	lua_pushinteger(L, ctx->server_port);
}

/* ctx_field_server_name - ctx.server_name. */
static void ctx_field_server_name(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_string_or_nil(L, ctx->server_name);
}

/* ctx_field_stage - ctx.stage. */
static void ctx_field_stage(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)ctx;
	lua_pushstring(L, rules_stage_name(stage));
}

/* ctx_field_size - ctx.size. */
static void ctx_field_size(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_message_field(L, ctx, "size");
}

/* ctx_field_tls - ctx.tls. */
static void ctx_field_tls(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage)
{
	(void)stage;
	ctx_push_tls(L, ctx);
}

/*
 * When a field can be read. Every field is readable at every stage, but
 * what it reads is filled in as the session goes: the connection's from
 * connect on, the transaction's from mail on (nil before it), the
 * message's from preq on (reading it before raises).
 */
enum ctx_when {
	CTX_CONNECTION,
	CTX_TRANSACTION, /* nil without a transaction */
	CTX_MESSAGE,     /* raises without the message */
};

/* A field of ctx: its name, when it is readable, what pushes its value. */
struct ctx_field {
	const char *name;
	enum ctx_when when;
	void (*push)(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage);
};

static const struct ctx_field ctx_fields[] = {
    {"auth", CTX_CONNECTION, ctx_field_auth},
    {"body", CTX_MESSAGE, ctx_field_body},
    {"client_ip", CTX_CONNECTION, ctx_field_client_ip},
    {"client_port", CTX_CONNECTION, ctx_field_client_port},
    {"connection_timestamp", CTX_CONNECTION, ctx_field_connection_timestamp},
    {"helo", CTX_CONNECTION, ctx_field_helo},
    {"is_secured", CTX_CONNECTION, ctx_field_is_secured},
    {"is_authenticated", CTX_CONNECTION, ctx_field_is_authenticated},
    {"listener", CTX_CONNECTION, ctx_field_listener},
    {"listener_kind", CTX_CONNECTION, ctx_field_listener_kind},
    {"mail_from", CTX_TRANSACTION, ctx_field_mail_from},
    {"mail_timestamp", CTX_TRANSACTION, ctx_field_mail_timestamp},
    {"message_id", CTX_TRANSACTION, ctx_field_message_id},
    {"rcpt", CTX_CONNECTION, ctx_field_rcpt},
    {"rcpt_list", CTX_CONNECTION, ctx_field_rcpt_list},
    {"raw", CTX_MESSAGE, ctx_field_raw},
    {"server_ip", CTX_CONNECTION, ctx_field_server_ip},
    {"server_port", CTX_CONNECTION, ctx_field_server_port},
    {"server_name", CTX_CONNECTION, ctx_field_server_name},
    {"stage", CTX_CONNECTION, ctx_field_stage},
    {"size", CTX_MESSAGE, ctx_field_size},
    {"tls", CTX_CONNECTION, ctx_field_tls},
};

/* ctx_push_field - the value of ctx.<key>; 0 when key is no field. */
static int ctx_push_field(lua_State *L, struct rule_ctx *ctx, enum rule_stage stage,
			  const char *key)
{
	const struct ctx_field *f;
	size_t i;

	for (i = 0; i < sizeof(ctx_fields) / sizeof(ctx_fields[0]); i++) {
		f = &ctx_fields[i];
		if (strcmp(key, f->name) != 0)
			continue;
		if (f->when == CTX_MESSAGE)
			ctx_need_msg(L, ctx, key);
		if (f->when == CTX_TRANSACTION && ctx->env == NULL)
			lua_pushnil(L);
		else
			f->push(L, ctx, stage);
		return 1;
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

/* rules_tx_end - drop the transaction's variables, hold, SPF, DKIM, DMARC and ARC results. */
void rules_tx_end(struct rule_ctx *ctx)
{
	rules_dkim_forget(ctx);
	rules_dmarc_forget(ctx);
	rules_arc_forget(ctx);
	rules_spf_tx_end(ctx);
	cJSON_Delete(ctx->tx_vars);
	ctx->tx_vars = NULL;
	memset(&ctx->tx_hold, 0, sizeof(ctx->tx_hold));
}

/* rules_ctx_release - drop everything the engine keeps in ctx. */
void rules_ctx_release(struct rule_ctx *ctx)
{
	rules_tx_end(ctx);
	rules_spf_release(ctx);
	cJSON_Delete(ctx->vars);
	ctx->vars = NULL;
	memset(&ctx->hold, 0, sizeof(ctx->hold));
}

/* ---- services outside the sandbox ----------------------------------- */

/* ctx_service - ask the world outside; raises when nobody can answer. */
static int ctx_service(lua_State *L, struct rule_ctx *ctx, enum queue_service kind,
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
	err = ctx_service(L, ctx, QUEUE_SERVICE_WRITE, dir, raw, len);
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
	err = ctx_service(L, ctx, QUEUE_SERVICE_DUMP, dir, json, strlen(json));
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
	err = ctx_service(L, r->current, QUEUE_SERVICE_USER_EXIST, name, NULL, 0);
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

/* ---- the class ------------------------------------------------------- */

/* rules_ctx_open - the ctx metatable and its methods. */
void rules_ctx_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"set", lua_ctx_set},
		{"get", lua_ctx_get},
		{"quarantine", lua_ctx_quarantine},
		{"write", lua_ctx_write},
		{"dump", lua_ctx_dump},
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
	luaL_setfuncs(L, ctx_edit_methods, 0);
	luaL_setfuncs(L, ctx_route_methods, 0);
	luaL_setfuncs(L, ctx_dkim_methods, 0);
	luaL_setfuncs(L, ctx_dkim_sign_methods, 0);
	luaL_setfuncs(L, ctx_spf_methods, 0);
	luaL_setfuncs(L, ctx_dmarc_methods, 0);
	luaL_setfuncs(L, ctx_auth_results_methods, 0);
	luaL_setfuncs(L, ctx_arc_methods, 0);
	luaL_setfuncs(L, ctx_arc_seal_methods, 0);
	luaL_setfuncs(L, ctx_clamd_methods, 0);
	luaL_setfuncs(L, ctx_spamd_methods, 0);
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
