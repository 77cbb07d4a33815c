/*
 * rules_service.h - the call layer of the outside services the rules use
 * (ctx:clamd, ctx:spamd, ...; see [service:NAME] in config.h): finding a
 * service by name, connecting to it and talking to it within its
 * deadlines, sending it the message, the one log line of each call, and
 * what a failed call means (the service's on_failure).
 *
 * A call blocks the process that runs the rule, for at most the service's
 * timeout: a session (only its own client waits) or the delivery worker
 * (its loop waits). Every kind follows the same steps:
 *
 *   const struct service_config *svc = rules_service_find(L, 2, SERVICE_CLAMD);
 *   struct rules_service_call c;
 *   rules_service_start(&c, svc);
 *   if (rules_service_connect(&c) < 0 || ... talk ... < 0)
 *           return rules_service_failed(L, &c) ... push the failed result;
 *   rules_service_close(&c);
 *   rules_service_log(&c, "clean");
 *   ... push the result (rules_service_push_result, then the kind's fields)
 *
 * No Lua error may be raised while a socket is open except through
 * rules_service_failed, which closes it first.
 */
#ifndef VSMTPD_RULES_SERVICE_H
#define VSMTPD_RULES_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <lua.h>

#include "config.h"
#include "envelope.h"
#include "message.h"
#include "rules.h"

/* One call to a service under way. */
struct rules_service_call {
	const struct service_config *svc;
	int fd;                         /* -1 when not connected */
	uint64_t start_ns, deadline_ns; /* CLOCK_MONOTONIC; deadline = start + timeout */
	char error[256];                /* why it failed, for the log and the result */
	char id[ENVELOPE_ID_MAX + 1];   /* the message's id for the log, "" when none */
};

/*
 * rules_service_find - the service named by argument arg of kind kind;
 * raises a Lua error (no such service / it is of another kind) otherwise.
 * Also notes the id of the message the rules are looking at, which the
 * next rules_service_start() puts in its log line.
 */
const struct service_config *rules_service_find(lua_State *L, int arg, enum service_kind kind);

/* rules_service_start - fill c for svc, start the clock. */
void rules_service_start(struct rules_service_call *c, const struct service_config *svc);

/* rules_service_connect - connect to svc->address (TCP or Unix) within
 * connect_timeout and the call's deadline: 0, or -1 with c->error set. */
int rules_service_connect(struct rules_service_call *c);

/* rules_service_write - write all of buf before the deadline: 0 or -1 (c->error). */
int rules_service_write(struct rules_service_call *c, const void *buf, size_t len);

/* rules_service_read - read at most len bytes before the deadline: the count,
 * 0 at end of stream, -1 on error or timeout (c->error). */
ssize_t rules_service_read(struct rules_service_call *c, void *buf, size_t len);

/*
 * rules_service_read_all - read until the service closes the connection
 * (or max bytes came: an error), into a malloc'ed buffer, NUL-terminated,
 * its length in *len. NULL with c->error on error or timeout.
 */
char *rules_service_read_all(struct rules_service_call *c, size_t max, size_t *len);

/* rules_service_send_message - write the message the rules see (ctx's message,
 * header as edited so far, then the body), through fn when not NULL
 * (for framing: clamd chunks, milter body packets), else raw: 0 or -1.
 * fn gets pieces of at most RULES_SERVICE_CHUNK bytes. */
#define RULES_SERVICE_CHUNK 65536
int rules_service_send_message(struct rules_service_call *c, const struct message *m,
                               int (*fn)(struct rules_service_call *c, const char *buf,
                                         size_t len, void *arg),
                               void *arg);

/* rules_service_close - close the socket (if any). */
void rules_service_close(struct rules_service_call *c);

/* rules_service_ms - the time the call has taken so far, in milliseconds. */
uint64_t rules_service_ms(const struct rules_service_call *c);

/* rules_service_log - the one log line of the call, at info:
 *   <id>: service clamav (clamd): 12 ms: infected (Eicar-Test-Signature)
 * the id when the message has one. */
void rules_service_log(const struct rules_service_call *c, const char *outcome);

/*
 * rules_service_failed - the call failed (c->error set): log it (at
 * warning: "... 5003 ms: failed: timeout after 5000 ms; on_failure=tempfail"),
 * close it, then per svc->on_failure: tempfail raises status.reject(451
 * 4.7.1 "<name> is unavailable, try again later") and reject raises
 * status.reject(550 5.7.1 "Rejected: <name> is unavailable") as the Lua
 * error (the engine makes a raised status the rule's status) and do not
 * return; accept returns 0 and the caller pushes its result with failed =
 * true and error = c->error (rules_service_push_result does).
 */
int rules_service_failed(lua_State *L, struct rules_service_call *c);

/*
 * rules_service_too_big - whether m is larger than the service's max_size;
 * then the caller logs "skipped: ..." (done here) and pushes its result
 * with skipped = true, without calling.
 */
int rules_service_too_big(struct rules_service_call *c, const struct message *m);

/*
 * rules_service_push_result - push a new result table with the fields
 * every kind has: failed, error (c->error when failed, else nil),
 * skipped, ms and status = status.next(); the caller adds its own.
 */
void rules_service_push_result(lua_State *L, const struct rules_service_call *c, int failed,
                               int skipped);

/*
 * rules_service_need_msg - the message for a call of kind what ("ctx:clamd");
 * raises, naming the stage, before preq.
 */
struct message *rules_service_need_msg(lua_State *L, const char *what);

#endif
