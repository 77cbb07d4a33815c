/*
 * rules_rspamd.c - ctx:rspamd(name [, {apply = bool}]): the message and
 * its envelope to rspamd's HTTP protocol (POST /checkv2, or the service's
 * path), rspamd's verdict back as a Lua table, and (apply, the default) the
 * header and subject changes rspamd asks for made to the message.
 *
 * The HTTP side is libevent's HTTP client on an event base of the call's
 * own, run until the reply is in, the service's connect_timeout passes
 * without a connection, or the call's deadline: the rule's process waits
 * for at most the service's timeout, as for every service (rules_service.h).
 * libevent 2.1's client makes its own TCP connection from a numeric
 * address and cannot take a socket already connected, so rspamd is reached
 * over TCP only (the configuration refuses a Unix socket for this kind).
 *
 * The envelope goes in the request header fields rspamd reads: IP, Helo,
 * From, one Rcpt per recipient, Queue-Id, User (when authenticated),
 * MTA-Name, TLS-Version and TLS-Cipher, and Password when the service has
 * one. The reply is read by rules_rspamd_reply.c; any failure (no
 * connection, a timeout, an HTTP status other than 200, a reply that is not
 * rspamd's JSON) is the service's on_failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <lauxlib.h>

#include "rules_internal.h"
#include "rules_rspamd.h"
#include "rules_service.h"

#define RSPAMD_REPLY_MT "vsmtpd.rspamd_reply"
#define RSPAMD_REPLY_MAX (4u << 20)   /* bytes of JSON a reply may have */
#define RSPAMD_HEADERS_MAX (64u << 10) /* bytes of HTTP header a reply may have */

/* One HTTP exchange with rspamd under way. */
struct rspamd_http {
	struct rules_service_call *c;
	struct event_base *base;
	struct evhttp_connection *evcon;
	struct rspamd_reply *reply; /* filled when the reply came and parsed */
	int done;                   /* the exchange is over: c->error says how */
};

/* What each of libevent's request errors means, for the log. */
static const char *const rspamd_http_errors[] = {
    [EVREQ_HTTP_TIMEOUT] = "timeout",
    [EVREQ_HTTP_EOF] = "the connection was refused or closed before a reply",
    [EVREQ_HTTP_INVALID_HEADER] = "not an HTTP reply",
    [EVREQ_HTTP_BUFFER_ERROR] = "the connection failed",
    [EVREQ_HTTP_REQUEST_CANCEL] = "the request was cancelled",
    [EVREQ_HTTP_DATA_TOO_LONG] = "the reply is too long",
};

/* What the rules get for each action: a status (none: status.next()). */
static const struct {
	enum rule_status status;
	int code;
	const char *enhanced, *text;
} rspamd_statuses[] = {
    [RSPAMD_NO_ACTION] = {RULE_NEXT, 0, NULL, NULL},
    [RSPAMD_GREYLIST] = {RULE_REJECT, 451, "4.7.1", "Greylisted, please try again later"},
    [RSPAMD_ADD_HEADER] = {RULE_NEXT, 0, NULL, NULL},
    [RSPAMD_REWRITE_SUBJECT] = {RULE_NEXT, 0, NULL, NULL},
    [RSPAMD_SOFT_REJECT] = {RULE_REJECT, 451, "4.7.1", "Try again later"},
    [RSPAMD_REJECT] = {RULE_DENY, 550, "5.7.1", "Spam message rejected"},
};

/* rspamd_http_error - the request failed before a reply: say why. */
static void rspamd_http_error(enum evhttp_request_error e, void *arg)
{
	struct rspamd_http *h = arg;

	if (h->c->error[0] == '\0')
		snprintf(h->c->error, sizeof(h->c->error), "%s",
			 (size_t)e < sizeof(rspamd_http_errors) / sizeof(rspamd_http_errors[0]) &&
				 rspamd_http_errors[e] != NULL
			     ? rspamd_http_errors[e]
			     : "the HTTP exchange failed");
}

/* rspamd_http_done - the reply is in (or the request failed): read it. */
static void rspamd_http_done(struct evhttp_request *req, void *arg)
{
	struct rspamd_http *h = arg;
	struct evbuffer *in;
	size_t len;
	const char *body;
	int code = req != NULL ? evhttp_request_get_response_code(req) : 0;

	h->done = 1;
	event_base_loopbreak(h->base);
	if (h->c->error[0] != '\0')
		return;
	if (code == 0) {
		rspamd_http_error(EVREQ_HTTP_EOF, h);
		return;
	}
	if (code != HTTP_OK) {
		snprintf(h->c->error, sizeof(h->c->error), "HTTP status %d", code);
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	body = (const char *)evbuffer_pullup(in, -1);
	if (body == NULL && len > 0) {
		snprintf(h->c->error, sizeof(h->c->error), "out of memory");
		return;
	}
	if (rspamd_reply_parse(body != NULL ? body : "", len, h->reply, h->c->error,
			       sizeof(h->c->error)) < 0)
		return;
}

/* rspamd_end - end the exchange: what did not happen within ms, unless it
 * is over. */
static void rspamd_end(struct rspamd_http *h, const char *what, unsigned ms)
{
	if (h->done)
		return;
	snprintf(h->c->error, sizeof(h->c->error), "%s %u ms", what, ms);
	h->done = 1;
	event_base_loopbreak(h->base);
}

/* rspamd_deadline - the call's deadline passed. */
static void rspamd_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct rspamd_http *h = arg;

	(void)fd;
	(void)what;
	rspamd_end(h, "timeout after", h->c->svc->timeout_ms);
}

/* rspamd_connect_timeout - connect_timeout passed: the end unless the
 * connection is up. */
static void rspamd_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct rspamd_http *h = arg;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(h->evcon);
	evutil_socket_t s = bev != NULL ? bufferevent_getfd(bev) : -1;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	(void)fd;
	(void)what;
	if (s >= 0 && getpeername(s, (struct sockaddr *)&ss, &len) == 0)
		return;
	rspamd_end(h, "no connection within", h->c->svc->connect_timeout_ms);
}

/* rspamd_add - one request header field; -1 when libevent refuses it. */
static int rspamd_add(struct evkeyvalq *hdr, const char *name, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return 0;
	return evhttp_add_header(hdr, name, value);
}

/* rspamd_headers - the request header: the envelope as rspamd reads it. */
static int rspamd_headers(struct evhttp_request *req, const struct rule_ctx *ctx,
			  const struct service_config *svc, const char *host, size_t body_len)
{
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	const struct envelope *env = ctx->env;
	char len[32];
	size_t i;
	int rc = 0;

	snprintf(len, sizeof(len), "%zu", body_len);
	rc |= rspamd_add(hdr, "Host", host);
	rc |= rspamd_add(hdr, "Content-Length", len);
	rc |= rspamd_add(hdr, "Connection", "close");
	rc |= rspamd_add(hdr, "IP", ctx->client_ip != NULL ? ctx->client_ip
					: env != NULL  ? env->client_ip
						       : NULL);
	rc |= rspamd_add(hdr, "Helo", ctx->helo != NULL && ctx->helo[0] != '\0' ? ctx->helo
				      : env != NULL				  ? env->helo
										  : NULL);
	if (env != NULL) {
		rc |= rspamd_add(hdr, "From", env->mail_from[0] != '\0' ? env->mail_from : "<>");
		for (i = 0; i < env->nrcpts; i++)
			rc |= rspamd_add(hdr, "Rcpt", env->rcpts[i].address);
		rc |= rspamd_add(hdr, "Queue-Id", env->id);
		if (env->authid != NULL)
			rc |= rspamd_add(hdr, "User", env->authid);
	}
	if (ctx->is_authenticated && (env == NULL || env->authid == NULL))
		rc |= rspamd_add(hdr, "User", ctx->auth_authid);
	rc |= rspamd_add(hdr, "MTA-Name", ctx->server_name);
	if (ctx->is_secured) {
		rc |= rspamd_add(hdr, "TLS-Version", ctx->tls_version);
		rc |= rspamd_add(hdr, "TLS-Cipher", ctx->tls_cipher);
	}
	rc |= rspamd_add(hdr, "Password", svc->password);
	return rc != 0 ? -1 : 0;
}

/* rspamd_body_add - rules_service_send_message's piece sink: into the
 * request's body. */
static int rspamd_body_add(struct rules_service_call *c, const char *buf, size_t len, void *arg)
{
	if (evbuffer_add(arg, buf, len) < 0) {
		snprintf(c->error, sizeof(c->error), "out of memory");
		return -1;
	}
	return 0;
}

/* rspamd_target - host text and port of the service's address: 0 or -1
 * (c->error). */
static int rspamd_target(struct rules_service_call *c, char *host, size_t hostlen,
			 unsigned short *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	const void *addr;

	if (config_service_is_unix(c->svc->address) ||
	    config_service_sockaddr(c->svc->address, &ss, &len) < 0) {
		snprintf(c->error, sizeof(c->error), "rspamd is reached over TCP only, not %s",
			 c->svc->address);
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		addr = &((struct sockaddr_in *)&ss)->sin_addr;
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	if (inet_ntop(ss.ss_family, addr, host, (socklen_t)hostlen) == NULL) {
		snprintf(c->error, sizeof(c->error), "bad address %s", c->svc->address);
		return -1;
	}
	return 0;
}

/* rspamd_tv - ms as a struct timeval. */
static struct timeval rspamd_tv(uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	return tv;
}

/*
 * rspamd_exchange - post the message, wait for the reply, parse it into
 * reply: 0, or -1 with c->error. Everything it makes it frees; it never
 * raises a Lua error.
 */
static int rspamd_exchange(struct rules_service_call *c, const struct rule_ctx *ctx,
			   const struct message *msg, struct rspamd_reply *reply)
{
	struct rspamd_http h = {.c = c, .reply = reply};
	struct evhttp_request *req = NULL;
	struct event *deadline = NULL, *connect = NULL;
	struct event_config *cfg;
	struct timeval tv;
	char host[INET6_ADDRSTRLEN];
	unsigned short port;
	uint64_t spent = rules_service_ms(c);
	uint64_t left = spent < c->svc->timeout_ms ? c->svc->timeout_ms - spent : 1;

	if (rspamd_target(c, host, sizeof(host), &port) < 0)
		return -1;
	if ((cfg = event_config_new()) != NULL) {
		event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_IGNORE_ENV);
		h.base = event_base_new_with_config(cfg);
		event_config_free(cfg);
	}
	if (h.base == NULL ||
	    (h.evcon = evhttp_connection_base_new(h.base, NULL, host, port)) == NULL ||
	    (req = evhttp_request_new(rspamd_http_done, &h)) == NULL ||
	    (deadline = evtimer_new(h.base, rspamd_deadline, &h)) == NULL ||
	    (connect = evtimer_new(h.base, rspamd_connect_timeout, &h)) == NULL) {
		snprintf(c->error, sizeof(c->error), "out of memory");
		goto out;
	}
	evhttp_request_set_error_cb(req, rspamd_http_error);
	if (rules_service_send_message(c, msg, rspamd_body_add,
				       evhttp_request_get_output_buffer(req)) < 0)
		goto out;
	if (rspamd_headers(req, ctx, c->svc, host,
			   evbuffer_get_length(evhttp_request_get_output_buffer(req))) < 0) {
		snprintf(c->error, sizeof(c->error), "an envelope field is no HTTP header value");
		goto out;
	}
	tv = rspamd_tv(left);
	evhttp_connection_set_timeout_tv(h.evcon, &tv);
	evhttp_connection_set_retries(h.evcon, 0);
	evhttp_connection_set_max_body_size(h.evcon, RSPAMD_REPLY_MAX);
	evhttp_connection_set_max_headers_size(h.evcon, RSPAMD_HEADERS_MAX);
	evtimer_add(deadline, &tv);
	if (c->svc->connect_timeout_ms < left) {
		struct timeval ctv = rspamd_tv(c->svc->connect_timeout_ms);

		evtimer_add(connect, &ctv);
	}
	if (evhttp_make_request(h.evcon, req, EVHTTP_REQ_POST,
				c->svc->path != NULL ? c->svc->path : "/checkv2") < 0) {
		/* libevent freed it, or (a connection it could not even begin)
		 * let go of it: never ours to free now */
		req = NULL;
		if (c->error[0] == '\0')
			snprintf(c->error, sizeof(c->error), "the request could not be made");
		goto out;
	}
	req = NULL; /* the connection owns it now */
	event_base_dispatch(h.base);
	if (!h.done)
		snprintf(c->error, sizeof(c->error), "the exchange ended without a reply");
out:
	if (req != NULL)
		evhttp_request_free(req);
	if (connect != NULL)
		event_free(connect);
	if (deadline != NULL)
		event_free(deadline);
	if (h.evcon != NULL)
		evhttp_connection_free(h.evcon);
	if (h.base != NULL)
		event_base_free(h.base);
	return c->error[0] != '\0' ? -1 : 0;
}

/* ---- the ctx method ---------------------------------------------------- */

/* rspamd_reply_gc - the reply userdata goes: free what it holds. */
static int rspamd_reply_gc(lua_State *L)
{
	rspamd_reply_free(luaL_checkudata(L, 1, RSPAMD_REPLY_MT));
	return 0;
}

/* rspamd_new_reply - push an empty reply whose memory Lua frees with it, so
 * that no error raised later leaks it. */
static struct rspamd_reply *rspamd_new_reply(lua_State *L)
{
	struct rspamd_reply *r = lua_newuserdatauv(L, sizeof(*r), 0);

	memset(r, 0, sizeof(*r));
	if (luaL_newmetatable(L, RSPAMD_REPLY_MT)) {
		lua_pushcfunction(L, rspamd_reply_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushliteral(L, "rspamd reply");
		lua_setfield(L, -2, "__metatable");
	}
	lua_setmetatable(L, -2);
	return r;
}

/* rspamd_header_order - qsort: headers with an order by descending order. */
static int rspamd_header_order(const void *a, const void *b)
{
	const struct rspamd_header *const *x = a, *const *y = b;

	return ((*x)->order < (*y)->order) - ((*x)->order > (*y)->order);
}

/* rspamd_remove_one - remove what one remove_headers entry names: every
 * such field (nth 0), the nth, or the nth from the end. 0 or -1. */
static int rspamd_remove_one(struct message *m, const struct rspamd_remove *rm)
{
	size_t count = message_header_count(m, rm->name);
	ssize_t idx;

	if (rm->nth == 0)
		return message_header_remove(m, rm->name) < 0 ? -1 : 0;
	if (rm->nth > 0 && (size_t)rm->nth <= count)
		idx = message_header_index(m, rm->name, (size_t)rm->nth - 1);
	else if (rm->nth < 0 && (size_t)-rm->nth <= count)
		idx = message_header_index(m, rm->name, count - (size_t)-rm->nth);
	else
		return 0; /* no such field */
	return idx < 0 ? 0 : message_field_remove(m, (size_t)idx);
}

/*
 * rspamd_apply - make the changes rspamd asks for: remove fields, add
 * fields (those with an order at the top, lowest order first; the others
 * at the end, in the reply's order), set the Subject. Raises on an edit the
 * message library refuses.
 */
static void rspamd_apply(lua_State *L, struct message *m, const struct rspamd_reply *r)
{
	const struct rspamd_header **top;
	size_t i, ntop = 0;

	for (i = 0; i < r->nremove; i++)
		if (rspamd_remove_one(m, &r->remove[i]) < 0)
			luaL_error(L, "ctx:rspamd: removing %s failed", r->remove[i].name);
	top = lua_newuserdatauv(L, (r->nadd + 1) * sizeof(*top), 0);
	for (i = 0; i < r->nadd; i++)
		if (r->add[i].order >= 0)
			top[ntop++] = &r->add[i];
	qsort(top, ntop, sizeof(*top), rspamd_header_order);
	for (i = 0; i < ntop; i++)
		if (message_header_prepend(m, top[i]->name, top[i]->value) < 0)
			luaL_error(L, "ctx:rspamd: adding %s failed", top[i]->name);
	lua_pop(L, 1);
	for (i = 0; i < r->nadd; i++)
		if (r->add[i].order < 0 && message_header_append(m, r->add[i].name,
								 r->add[i].value) < 0)
			luaL_error(L, "ctx:rspamd: adding %s failed", r->add[i].name);
	if (r->subject != NULL && message_header_set(m, "Subject", r->subject) < 0)
		luaL_error(L, "ctx:rspamd: setting the Subject failed");
}

/* rspamd_push_fields - rspamd's answer into the result table at -1. */
static void rspamd_push_fields(lua_State *L, const struct rspamd_reply *r)
{
	size_t i, j;

	lua_pushstring(L, rspamd_action_name(r->action));
	lua_setfield(L, -2, "action");
	lua_pushnumber(L, r->score);
	lua_setfield(L, -2, "score");
	lua_pushnumber(L, r->required_score);
	lua_setfield(L, -2, "required_score");
	lua_createtable(L, 0, (int)r->nsymbols);
	for (i = 0; i < r->nsymbols; i++) {
		lua_createtable(L, 0, 2);
		lua_pushnumber(L, r->symbols[i].score);
		lua_setfield(L, -2, "score");
		lua_createtable(L, (int)r->symbols[i].noptions, 0);
		for (j = 0; j < r->symbols[i].noptions; j++) {
			lua_pushstring(L, r->symbols[i].options[j]);
			lua_rawseti(L, -2, (lua_Integer)j + 1);
		}
		lua_setfield(L, -2, "options");
		lua_setfield(L, -2, r->symbols[i].name);
	}
	lua_setfield(L, -2, "symbols");
	lua_createtable(L, (int)r->nadd, 0);
	for (i = 0; i < r->nadd; i++) {
		lua_createtable(L, 0, 2);
		lua_pushstring(L, r->add[i].name);
		lua_setfield(L, -2, "name");
		lua_pushstring(L, r->add[i].value);
		lua_setfield(L, -2, "value");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "add_headers");
	lua_createtable(L, 0, (int)r->nremove);
	for (i = 0; i < r->nremove; i++) {
		lua_pushinteger(L, r->remove[i].nth);
		lua_setfield(L, -2, r->remove[i].name);
	}
	lua_setfield(L, -2, "remove_headers");
	if (r->subject != NULL) {
		lua_pushstring(L, r->subject);
		lua_setfield(L, -2, "subject");
	}
	if (rspamd_statuses[r->action].status != RULE_NEXT) {
		rules_status_push_reply(L, rspamd_statuses[r->action].status,
					rspamd_statuses[r->action].code,
					rspamd_statuses[r->action].enhanced,
					rspamd_statuses[r->action].text);
		lua_setfield(L, -2, "status");
	}
}

/* rspamd_apply_opt - the apply option of the table at idx (default true). */
static int rspamd_apply_opt(lua_State *L, int idx)
{
	int apply = 1;

	if (lua_isnoneornil(L, idx))
		return 1;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "apply") != 0)
			luaL_argerror(L, idx, "the only option is apply");
		luaL_argexpected(L, lua_isboolean(L, -1), idx, "apply = true or false");
		apply = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	return apply;
}

/* lua_ctx_rspamd - ctx:rspamd(name [, {apply = true}]): see docs/rules.md. */
static int lua_ctx_rspamd(lua_State *L)
{
	struct rule_ctx *ctx = ctx_check(L, NULL);
	const struct service_config *svc = rules_service_find(L, 2, SERVICE_RSPAMD);
	int apply = rspamd_apply_opt(L, 3);
	struct message *msg = rules_service_need_msg(L, "ctx:rspamd");
	struct rspamd_reply *reply = rspamd_new_reply(L);
	struct rules_service_call c;
	char outcome[160];

	rules_service_start(&c, svc);
	if (rules_service_too_big(&c, msg)) {
		rules_service_push_result(L, &c, 0, 1);
		return 1;
	}
	if (rspamd_exchange(&c, ctx, msg, reply) < 0) {
		rules_service_failed(L, &c); /* raises unless on_failure = accept */
		rules_service_push_result(L, &c, 1, 0);
		return 1;
	}
	snprintf(outcome, sizeof(outcome), "%s (score %.2f / %.2f, %zu symbols)%s",
		 rspamd_action_name(reply->action), reply->score, reply->required_score,
		 reply->nsymbols,
		 apply && (reply->nadd + reply->nremove > 0 || reply->subject != NULL)
		     ? ", headers changed"
		     : "");
	rules_service_log(&c, outcome);
	if (apply)
		rspamd_apply(L, msg, reply);
	rules_service_push_result(L, &c, 0, 0);
	rspamd_push_fields(L, reply);
	return 1;
}

const luaL_Reg ctx_rspamd_methods[] = {
    {"rspamd", lua_ctx_rspamd},
    {NULL, NULL},
};
