/*
 * rules_command.c - ctx:command(name): run the program of a kind = command
 * service with the message on its standard input and the envelope in its
 * environment, and give the rules its exit status and output.
 *
 * The processes that run rules cannot start programs (sessions and the
 * delivery worker are confined), so the call goes to the command runner
 * (src/runner/, include/runner_proto.h): the message is copied into a
 * memfd, a pipe is made for the answer, and both travel with the request
 * over the socket end the master left this process. The runner starts the
 * program as the configuration says, kills it at the service's timeout,
 * and answers; this side waits for the answer until the call's deadline and
 * a grace for the runner's kill and reap. A runner that is not there
 * (vsmtpctl, a daemon without command services at start), busy, or gone
 * mid-way is a failed call (the service's on_failure); a program that
 * fails, is killed or runs past its time is a result the rules read.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <lauxlib.h>

#include "io.h"
#include "ipc.h"
#include "rules_internal.h"
#include "rules_service.h"
#include "runner_proto.h"

#define COMMAND_GRACE_MS 2000 /* past the timeout: the runner kills, reaps, answers */

/* command_now_ms - CLOCK_MONOTONIC in milliseconds. */
static uint64_t command_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* command_memfd_add - rules_service_send_message's sink: into the memfd. */
static int command_memfd_add(struct rules_service_call *c, const char *buf, size_t len, void *arg)
{
	int rc = io_write_all(*(int *)arg, buf, len, -1, NULL);

	if (rc != 0) {
		snprintf(c->error, sizeof(c->error), "cannot copy the message: %s", strerror(rc));
		return -1;
	}
	return 0;
}

/* command_recipients - the recipients separated by spaces, as many whole
 * addresses as RUNNER_VALUE_MAX bytes hold; malloc'ed, NULL when out of memory. */
static char *command_recipients(const struct envelope *env)
{
	char *out = malloc(RUNNER_VALUE_MAX), *p = out;
	size_t i, n;

	if (out == NULL)
		return NULL;
	*p = '\0';
	for (i = 0; i < env->nrcpts; i++) {
		n = strlen(env->rcpts[i].address);
		if ((size_t)(p - out) + n + 2 > RUNNER_VALUE_MAX)
			break;
		if (p != out)
			*p++ = ' ';
		memcpy(p, env->rcpts[i].address, n + 1);
		p += n;
	}
	return out;
}

/* command_set - env[name] = value, when value is some text. 0 or -1. */
static int command_set(cJSON *env, const char *name, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return 0;
	return cJSON_AddStringToObject(env, name, value) != NULL ? 0 : -1;
}

/* command_request - the request record for svc at stage; NULL when out of memory. */
static cJSON *command_request(const struct service_config *svc, const struct rule_ctx *ctx,
			      enum rule_stage stage)
{
	const struct envelope *e = ctx->env;
	cJSON *obj = cJSON_CreateObject(), *env;
	char *rcpts = NULL;
	int rc = 0;

	if (obj == NULL || cJSON_AddStringToObject(obj, "service", svc->name) == NULL ||
	    (env = cJSON_AddObjectToObject(obj, "env")) == NULL) {
		cJSON_Delete(obj);
		return NULL;
	}
	if (e != NULL) {
		rc |= command_set(env, "SENDER", e->mail_from);
		rc |= (rcpts = command_recipients(e)) == NULL ? -1 : command_set(env, "RECIPIENTS", rcpts);
		rc |= command_set(env, "QUEUE_ID", e->id);
		rc |= command_set(env, "AUTH_USER", e->authid);
	}
	if ((e == NULL || e->authid == NULL) && ctx->is_authenticated)
		rc |= command_set(env, "AUTH_USER", ctx->auth_authid);
	rc |= command_set(env, "CLIENT_ADDRESS",
			  ctx->client_ip != NULL ? ctx->client_ip : e != NULL ? e->client_ip : NULL);
	rc |= command_set(env, "HELO", ctx->helo != NULL && ctx->helo[0] != '\0' ? ctx->helo
				       : e != NULL				  ? e->helo
										  : NULL);
	rc |= command_set(env, "LISTENER",
			  ctx->listener != NULL ? ctx->listener : e != NULL ? e->listener : NULL);
	rc |= command_set(env, "STAGE", rules_stage_name(stage));
	rc |= command_set(env, "SERVER_NAME", ctx->server_name);
	free(rcpts);
	if (rc != 0) {
		cJSON_Delete(obj);
		return NULL;
	}
	return obj;
}

/* command_wait - poll fd for events until deadline: 1 ready, 0 timeout, -1 error. */
static int command_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	uint64_t now;
	int n;

	while ((now = command_now_ms()) < deadline) {
		n = poll(&p, 1, (int)(deadline - now));
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
	return 0;
}

/* command_read - len bytes from the answer pipe before deadline: 0, or -1
 * with c->error. */
static int command_read(struct rules_service_call *c, int fd, void *buf, size_t len,
			uint64_t deadline)
{
	size_t got = 0;
	ssize_t n;
	int w;

	while (got < len) {
		if ((w = command_wait(fd, POLLIN, deadline)) <= 0) {
			snprintf(c->error, sizeof(c->error), "%s",
				 w == 0 ? "no answer from the command runner in time"
					: "the command runner's answer could not be read");
			return -1;
		}
		n = read(fd, (char *)buf + got, len - got);
		if (n == 0) {
			snprintf(c->error, sizeof(c->error),
				 "the command runner ended without an answer");
			return -1;
		}
		if (n < 0 && errno != EINTR && errno != EAGAIN) {
			snprintf(c->error, sizeof(c->error), "reading the answer: %s",
				 strerror(errno));
			return -1;
		}
		if (n > 0)
			got += (size_t)n;
	}
	return 0;
}

/*
 * command_exchange - send the request with the message and a pipe, read the
 * answer into r and out (RUNNER_OUTPUT_MAX bytes): 0, or -1 with c->error.
 * Closes everything it opened; raises nothing.
 */
static int command_exchange(struct rules_service_call *c, const cJSON *req,
			    const struct message *msg, struct runner_reply *r, char *out)
{
	uint64_t deadline = command_now_ms() + c->svc->timeout_ms + COMMAND_GRACE_MS;
	int runner = runner_proto_fd(), memfd = -1, pipefd[2] = {-1, -1}, rc = -1, w;

	if (runner < 0) {
		snprintf(c->error, sizeof(c->error),
			 "no command runner (commands run in the daemon only)");
		return -1;
	}
	if ((memfd = memfd_create("vsmtpd-command", MFD_CLOEXEC)) < 0 ||
	    pipe2(pipefd, O_CLOEXEC) < 0) {
		snprintf(c->error, sizeof(c->error), "%s", strerror(errno));
		goto out;
	}
	if (rules_service_send_message(c, msg, command_memfd_add, &memfd) < 0)
		goto out;
	while (ipc_send_json(runner, req, (const int[]){memfd, pipefd[1]}, 2) < 0) {
		if (errno != EAGAIN || (w = command_wait(runner, POLLOUT, deadline)) <= 0) {
			snprintf(c->error, sizeof(c->error), "cannot reach the command runner: %s",
				 errno == EAGAIN ? "it takes no request" : strerror(errno));
			goto out;
		}
	}
	close(pipefd[1]); /* the runner has its own: its end closing is the answer's end */
	pipefd[1] = -1;
	if (command_read(c, pipefd[0], r, sizeof(*r), deadline) < 0)
		goto out;
	if (runner_reply_check(r) < 0) {
		snprintf(c->error, sizeof(c->error), "the command runner's answer is malformed");
		goto out;
	}
	if (r->status != RUNNER_RAN) {
		snprintf(c->error, sizeof(c->error), "command runner: %s", r->error);
		goto out;
	}
	rc = command_read(c, pipefd[0], out, r->out_len, deadline);
out:
	if (memfd >= 0)
		close(memfd);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	return rc;
}

/* lua_ctx_command - ctx:command(name): see docs/rules.md. */
static int lua_ctx_command(lua_State *L)
{
	struct ctx_ud *ud;
	struct rule_ctx *ctx = ctx_check(L, &ud);
	const struct service_config *svc = rules_service_find(L, 2, SERVICE_COMMAND);
	struct message *msg = rules_service_need_msg(L, "ctx:command");
	char *out = lua_newuserdatauv(L, RUNNER_OUTPUT_MAX, 0); /* freed with the state's garbage */
	struct runner_reply r;
	struct rules_service_call c;
	char outcome[160];
	cJSON *req;
	int rc;

	rules_service_start(&c, svc);
	if (rules_service_too_big(&c, msg)) {
		rules_service_push_result(L, &c, 0, 1);
		return 1;
	}
	if ((req = command_request(svc, ctx, ud->stage)) == NULL)
		return luaL_error(L, "ctx:command: out of memory");
	rc = command_exchange(&c, req, msg, &r, out);
	cJSON_Delete(req);
	if (rc < 0) {
		rules_service_failed(L, &c); /* raises unless on_failure = accept */
		rules_service_push_result(L, &c, 1, 0);
		return 1;
	}
	if (r.timed_out)
		snprintf(outcome, sizeof(outcome), "killed after %u ms, %u bytes of output",
			 svc->timeout_ms, r.out_len);
	else if (r.signal != 0)
		snprintf(outcome, sizeof(outcome), "killed by signal %d, %u bytes of output",
			 (int)r.signal, r.out_len);
	else
		snprintf(outcome, sizeof(outcome), "exit %d, %u bytes of output%s", (int)r.exit_code,
			 r.out_len, r.truncated ? " (cut)" : "");
	rules_service_log(&c, outcome);
	rules_service_push_result(L, &c, 0, 0);
	if (r.exit_code >= 0) {
		lua_pushinteger(L, r.exit_code);
		lua_setfield(L, -2, "exit");
	}
	if (r.signal != 0) {
		lua_pushinteger(L, r.signal);
		lua_setfield(L, -2, "signal");
	}
	lua_pushlstring(L, out, r.out_len);
	lua_setfield(L, -2, "stdout");
	lua_pushboolean(L, r.truncated != 0);
	lua_setfield(L, -2, "truncated");
	lua_pushboolean(L, r.timed_out != 0);
	lua_setfield(L, -2, "timed_out");
	return 1;
}

const luaL_Reg ctx_command_methods[] = {
    {"command", lua_ctx_command},
    {NULL, NULL},
};
