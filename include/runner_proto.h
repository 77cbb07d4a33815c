/*
 * runner_proto.h - what a rule's ctx:command() (a session or the delivery
 * worker) and the command runner (src/runner/) say to each other.
 *
 * The master makes one SOCK_SEQPACKET socket pair when the configuration
 * has a [service:NAME] of kind command; the runner reads one end, and
 * every session process and the delivery worker keep the other
 * (runner_proto_fd()). A request is one JSON record (ipc_send_json) with
 * two descriptors: the message, in a memfd the program reads as its
 * standard input, and the write end of a pipe for the answer:
 *
 *   {"service": "NAME", "env": {"SENDER": "a@b.example", "RECIPIENTS": "c@d.example", ...}}
 *
 * The runner checks every part (runner_request_check): the service must
 * be one of its configuration's command services, the variables those
 * runner_env_names lists, each value printable. It answers on the pipe
 * with struct runner_reply and then the program's standard output
 * (out_len bytes, at most RUNNER_OUTPUT_MAX), and closes it.
 */
#ifndef VSMTPD_RUNNER_PROTO_H
#define VSMTPD_RUNNER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define RUNNER_OUTPUT_MAX 65536 /* bytes of a program's output kept; the rest is read and dropped */
#define RUNNER_VALUE_MAX 8192   /* bytes of one variable's value */
#define RUNNER_ENV_MAX 12       /* variables of a request */

/* The variables a request may set, in this order in the program's environment. */
extern const char *const runner_env_names[];

/* What became of a request. */
enum runner_status {
	RUNNER_RAN,        /* the program ran: exit_code or signal, timed_out */
	RUNNER_NO_SERVICE, /* the runner has no command service of that name */
	RUNNER_BAD,        /* the request was refused (err says why) */
	RUNNER_BUSY,       /* too many programs running */
	RUNNER_FAILED,     /* the program could not be started */
};

/* The runner's answer on the pipe, before out_len bytes of output. */
struct runner_reply {
	uint32_t status;    /* enum runner_status */
	int32_t exit_code;  /* -1 when killed by a signal or not run */
	int32_t signal;     /* the signal that ended it, 0 when none */
	uint32_t timed_out; /* killed at the service's timeout */
	uint32_t truncated; /* it wrote more than RUNNER_OUTPUT_MAX */
	uint32_t out_len;   /* bytes of output that follow */
	char error[200];    /* why, when status is not RUNNER_RAN */
};

/* A request as the runner checked it: pointers into the JSON it read. */
struct runner_request {
	const char *service;
	const char *env[RUNNER_ENV_MAX]; /* by runner_env_names index, NULL when not set */
};

/* runner_proto_set_fd - the process's end of the runner's socket (-1: none),
 * set by the master before it forks sessions and the delivery worker. */
void runner_proto_set_fd(int fd);

/* runner_proto_fd - the end set by runner_proto_set_fd, or -1. */
int runner_proto_fd(void);

/* runner_env_index - the index of name in runner_env_names, or -1. */
int runner_env_index(const char *name);

/*
 * runner_request_check - read a request record: 0 and req filled (pointing
 * into obj), or -1 with why in err: no service name or one that cannot be a
 * service's, an env that is not an object of strings, a variable not in
 * runner_env_names or given twice, a value longer than RUNNER_VALUE_MAX or
 * with a control character.
 */
int runner_request_check(const cJSON *obj, struct runner_request *req, char *err, size_t errlen);

/* runner_reply_check - whether r is a reply a runner could have sent (its
 * status known, out_len in bounds, error NUL-terminated): 0 or -1. */
int runner_reply_check(const struct runner_reply *r);

#endif
