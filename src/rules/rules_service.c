/*
 * rules_service.c - the call layer of the outside services the rules use:
 * see rules_service.h for how a kind (rules_clamd.c, rules_spamd.c, ...)
 * goes through it.
 *
 * A call is synchronous, like the rules' DNS: the socket is non-blocking
 * and every connect, read and write waits in poll() for at most what is
 * left of the call's deadline (the service's timeout from the start of the
 * call; the connection also within connect_timeout). Nothing here raises a
 * Lua error while a socket is open, except rules_service_failed, which
 * closes it and logs first: so a call never leaks its descriptor into the
 * pooled session process.
 *
 * A failure is what the administrator chose in on_failure: a raised status
 * (the engine, rules_run_one in rules.c, makes it the rule's status) or,
 * for accept, a result with failed = true that the rule sees. Either way
 * the call has logged exactly one line.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "log.h"
#include "rules_internal.h"
#include "rules_service.h"

/* The id of the message of the call rules_service_find() last looked up
 * a service for: the next rules_service_start() takes it. */
static char service_next_id[ENVELOPE_ID_MAX + 1];

/* service_now_ns - the monotonic clock, in nanoseconds. */
static uint64_t service_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* rules_service_find - see rules_service.h. */
const struct service_config *rules_service_find(lua_State *L, int arg, enum service_kind kind)
{
	const char *name = luaL_checkstring(L, arg);
	struct rules *r = rules_from_state(L);
	const struct service_config *s = NULL;
	size_t i;

	for (i = 0; i < r->nservices && s == NULL; i++)
		if (strcmp(r->services[i].name, name) == 0)
			s = &r->services[i];
	if (s == NULL)
		luaL_error(L, "no service \"%s\": declare it in the configuration as [service:%s]",
		           name, name);
	if (s->kind != kind)
		luaL_error(L, "[service:%s] is of kind %s, not %s", name,
		           config_service_kind_name(s->kind), config_service_kind_name(kind));
	service_next_id[0] = '\0';
	if (r->current != NULL && r->current->env != NULL)
		snprintf(service_next_id, sizeof(service_next_id), "%s", r->current->env->id);
	return s;
}

/* rules_service_start - see rules_service.h. */
void rules_service_start(struct rules_service_call *c, const struct service_config *svc)
{
	memset(c, 0, sizeof(*c));
	c->svc = svc;
	c->fd = -1;
	c->start_ns = service_now_ns();
	c->deadline_ns = c->start_ns + (uint64_t)svc->timeout_ms * 1000000u;
	memcpy(c->id, service_next_id, sizeof(c->id));
	service_next_id[0] = '\0';
}

/* service_wait - wait for events on c->fd until deadline_ns; 0 when ready,
 * -1 with c->error ("<what>: timeout after N ms", or poll's error). */
static int service_wait(struct rules_service_call *c, short events, uint64_t deadline_ns,
                        unsigned limit_ms, const char *what)
{
	struct pollfd pfd = {.fd = c->fd, .events = events};
	uint64_t now;
	int rc;

	for (;;) {
		now = service_now_ns();
		if (now >= deadline_ns) {
			snprintf(c->error, sizeof(c->error), "%s: timeout after %u ms", what, limit_ms);
			return -1;
		}
		rc = poll(&pfd, 1, (int)((deadline_ns - now + 999999) / 1000000));
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR) {
			snprintf(c->error, sizeof(c->error), "%s: %s", what, strerror(errno));
			return -1;
		}
	}
}

/* rules_service_connect - see rules_service.h. */
int rules_service_connect(struct rules_service_call *c)
{
	const struct service_config *svc = c->svc;
	struct sockaddr_storage ss;
	uint64_t deadline = c->start_ns + (uint64_t)svc->connect_timeout_ms * 1000000u;
	unsigned limit = svc->connect_timeout_ms;
	socklen_t len, elen;
	int err = 0, one = 1;
	char what[128];

	snprintf(what, sizeof(what), "connect to %.110s", svc->address ? svc->address : "?");
	if (svc->address == NULL || config_service_sockaddr(svc->address, &ss, &len) < 0) {
		snprintf(c->error, sizeof(c->error), "%s: not an address", what);
		return -1;
	}
	if (deadline > c->deadline_ns) {
		deadline = c->deadline_ns;
		limit = svc->timeout_ms;
	}
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(c->error, sizeof(c->error), "%s: socket: %s", what, strerror(errno));
		return -1;
	}
	if (ss.ss_family != AF_UNIX)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&ss, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR) {
		snprintf(c->error, sizeof(c->error), "%s: %s", what, strerror(errno));
		rules_service_close(c);
		return -1;
	}
	if (service_wait(c, POLLOUT, deadline, limit, what) < 0) {
		rules_service_close(c);
		return -1;
	}
	elen = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	if (err != 0) {
		snprintf(c->error, sizeof(c->error), "%s: %s", what, strerror(err));
		rules_service_close(c);
		return -1;
	}
	return 0;
}

/* rules_service_write - see rules_service.h. */
int rules_service_write(struct rules_service_call *c, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(c->error, sizeof(c->error), "write: %s", strerror(errno));
			return -1;
		}
		if (service_wait(c, POLLOUT, c->deadline_ns, c->svc->timeout_ms, "write") < 0)
			return -1;
	}
	return 0;
}

/* rules_service_read - see rules_service.h. */
ssize_t rules_service_read(struct rules_service_call *c, void *buf, size_t len)
{
	ssize_t n;

	for (;;) {
		n = recv(c->fd, buf, len, 0);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			snprintf(c->error, sizeof(c->error), "read: %s", strerror(errno));
			return -1;
		}
		if (service_wait(c, POLLIN, c->deadline_ns, c->svc->timeout_ms, "read") < 0)
			return -1;
	}
}

/* rules_service_read_all - see rules_service.h. */
char *rules_service_read_all(struct rules_service_call *c, size_t max, size_t *len)
{
	size_t used = 0, cap = 4096;
	char *buf = malloc(cap + 1), *grown;
	ssize_t n;

	if (buf == NULL) {
		snprintf(c->error, sizeof(c->error), "out of memory");
		return NULL;
	}
	for (;;) {
		if (used == cap) {
			if (cap >= max) {
				snprintf(c->error, sizeof(c->error),
				         "answer longer than %zu bytes", max);
				free(buf);
				return NULL;
			}
			cap = cap * 2 > max ? max : cap * 2;
			if ((grown = realloc(buf, cap + 1)) == NULL) {
				snprintf(c->error, sizeof(c->error), "out of memory");
				free(buf);
				return NULL;
			}
			buf = grown;
		}
		n = rules_service_read(c, buf + used, cap - used);
		if (n < 0) {
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	*len = used;
	return buf;
}

/* The state of rules_service_send_message: the message in pieces. */
struct service_sink {
	struct rules_service_call *c;
	int (*fn)(struct rules_service_call *c, const char *buf, size_t len, void *arg);
	void *arg;
	char *buf; /* RULES_SERVICE_CHUNK bytes */
	size_t used;
	int failed;
};

/* service_flush - hand what is buffered to fn, or write it. */
static void service_flush(struct service_sink *s)
{
	int rc;

	if (s->failed || s->used == 0)
		return;
	rc = s->fn != NULL ? s->fn(s->c, s->buf, s->used, s->arg)
	                   : rules_service_write(s->c, s->buf, s->used);
	s->used = 0;
	if (rc < 0)
		s->failed = 1;
}

/* service_sink_add - message_write's sink: buffer, flushing full pieces. */
static void service_sink_add(void *arg, const char *buf, size_t len)
{
	struct service_sink *s = arg;
	size_t n;

	while (len > 0 && !s->failed) {
		n = RULES_SERVICE_CHUNK - s->used;
		if (n > len)
			n = len;
		memcpy(s->buf + s->used, buf, n);
		s->used += n;
		buf += n;
		len -= n;
		if (s->used == RULES_SERVICE_CHUNK)
			service_flush(s);
	}
}

/* rules_service_send_message - see rules_service.h. */
int rules_service_send_message(struct rules_service_call *c, const struct message *m,
                               int (*fn)(struct rules_service_call *c, const char *buf,
                                         size_t len, void *arg),
                               void *arg)
{
	struct service_sink s = {.c = c, .fn = fn, .arg = arg};

	if ((s.buf = malloc(RULES_SERVICE_CHUNK)) == NULL) {
		snprintf(c->error, sizeof(c->error), "out of memory");
		return -1;
	}
	message_write(m, service_sink_add, &s);
	service_flush(&s);
	free(s.buf);
	if (s.failed && c->error[0] == '\0')
		snprintf(c->error, sizeof(c->error), "sending the message failed");
	return s.failed ? -1 : 0;
}

/* rules_service_close - see rules_service.h. */
void rules_service_close(struct rules_service_call *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* rules_service_ms - see rules_service.h. */
uint64_t rules_service_ms(const struct rules_service_call *c)
{
	return (service_now_ns() - c->start_ns) / 1000000u;
}

/* service_log - the call's line at prio. */
static void service_log(int prio, const struct rules_service_call *c, const char *outcome)
{
	log_msg(prio, "%s%sservice %s (%s): %llu ms: %s", c->id, c->id[0] ? ": " : "",
	        c->svc->name, config_service_kind_name(c->svc->kind),
	        (unsigned long long)rules_service_ms(c), outcome);
}

/* rules_service_log - see rules_service.h. */
void rules_service_log(const struct rules_service_call *c, const char *outcome)
{
	service_log(LOG_INFO, c, outcome);
}

/* rules_service_failed - see rules_service.h. */
int rules_service_failed(lua_State *L, struct rules_service_call *c)
{
	const struct service_config *svc = c->svc;
	char line[400], text[RULE_TEXT_MAX];

	rules_service_close(c);
	if (c->error[0] == '\0')
		snprintf(c->error, sizeof(c->error), "unknown error");
	snprintf(line, sizeof(line), "failed: %s; on_failure=%s", c->error,
	         config_service_failure_name(svc->on_failure));
	service_log(LOG_WARNING, c, line);
	switch (svc->on_failure) {
	case SERVICE_FAIL_ACCEPT:
		return 0;
	case SERVICE_FAIL_REJECT:
		snprintf(text, sizeof(text), "Rejected: %s is unavailable", svc->name);
		rules_status_push_reply(L, RULE_REJECT, 550, "5.7.1", text);
		break;
	case SERVICE_FAIL_TEMPFAIL:
	default:
		snprintf(text, sizeof(text), "%s is unavailable, try again later", svc->name);
		rules_status_push_reply(L, RULE_REJECT, 451, "4.7.1", text);
		break;
	}
	return lua_error(L);
}

/* rules_service_too_big - see rules_service.h. */
int rules_service_too_big(struct rules_service_call *c, const struct message *m)
{
	size_t size = message_size(m);
	char line[128];

	if (c->svc->max_size == 0 || (uint64_t)size <= c->svc->max_size)
		return 0;
	snprintf(line, sizeof(line), "skipped: %zu bytes, more than max_size %llu", size,
	         (unsigned long long)c->svc->max_size);
	rules_service_log(c, line);
	return 1;
}

/* rules_service_push_result - see rules_service.h. */
void rules_service_push_result(lua_State *L, const struct rules_service_call *c, int failed,
                               int skipped)
{
	lua_createtable(L, 0, 12);
	lua_pushboolean(L, failed);
	lua_setfield(L, -2, "failed");
	if (failed) {
		lua_pushstring(L, c->error);
		lua_setfield(L, -2, "error");
	}
	lua_pushboolean(L, skipped);
	lua_setfield(L, -2, "skipped");
	lua_pushinteger(L, (lua_Integer)rules_service_ms(c));
	lua_setfield(L, -2, "ms");
	rules_status_push_reply(L, RULE_NEXT, 0, NULL, NULL);
	lua_setfield(L, -2, "status");
}

/* rules_service_need_msg - see rules_service.h. */
struct message *rules_service_need_msg(lua_State *L, const char *what)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);

	if (ud->stage < RULE_STAGE_PREQ)
		luaL_error(L, "%s needs the message: it works at the preq, postq and delivery "
		              "stages, not at %s",
		           what, rules_stage_name(ud->stage));
	return ctx_need_msg(L, ctx, what);
}
