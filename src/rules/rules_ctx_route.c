/*
 * rules_ctx_route.c - the ctx methods of the delivery stage that choose the
 * transport each recipient takes (ctx:deliver, ctx:forward, ctx:maildir,
 * ctx:mbox, ctx:lmtp, ctx:disable_delivery and their _all forms), and the
 * send_mail() global, which takes a relay the way ctx:forward takes its
 * target.
 *
 * Every route method is one line over ctx_route: it checks the stage, the
 * arguments and the destination, then hands the choice to the delivery
 * process's callback. rules_ctx_open() adds ctx_route_methods to the ctx
 * methods next to rules_ctx_edit.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "config.h"
#include "rule_objects.h"
#include "rules_internal.h"
#include "send_mail.h"
#include "spool.h"

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

/* The route methods, added to ctx's by rules_ctx_open(). */
const luaL_Reg ctx_route_methods[] = {
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
