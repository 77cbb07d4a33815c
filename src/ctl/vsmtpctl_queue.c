/*
 * vsmtpctl_queue.c - vsmtpctl's queue and quarantine commands.
 *
 *   vsmtpctl [-c FILE] queue list [--sender S] [--recipient R] [--queue Q]
 *                                 [--min-age AGE] [--max-age AGE]
 *   vsmtpctl [-c FILE] queue show ID
 *   vsmtpctl [-c FILE] queue remove|hold|release|requeue ID...
 *   vsmtpctl [-c FILE] queue flush [ID...]
 *   vsmtpctl [-c FILE] quarantine list [NAME]
 *   vsmtpctl [-c FILE] quarantine release|remove NAME ID...
 *
 * Every one of them also takes -s / --socket PATH, --json and -h / --help
 * anywhere after the group's name (getopt_long permutes); the help text is
 * vsmtpctl.c's, ctl_usage().
 *
 * Each command is one request to the running daemon over its control socket
 * ([server] control_socket, or -s PATH): a JSON object on one line, answered
 * by one JSON object on one line (docs/architecture.md). The daemon's queue
 * process does the work; this side only builds the request and prints the
 * answer, as a table or, with --json, as the daemon sent it.
 * Exit status: 0 done, 1 the daemon refused the request or failed for some
 * id, 2 usage or configuration error, 3 the daemon cannot be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "config.h"
#include "spool.h"
#include "vsmtpctl_queue.h"

#define CTL_DEFAULT_SOCKET "/run/vsmtpd/control"
#define CTL_ANSWER_MAX (256u << 20)  /* bytes of an answer: a list of a very large queue */
#define CTL_ANSWER_TIMEOUT_MS 120000 /* the daemon may take a while over a large list */
#define CTL_INDENT 49                /* where recipients start in the list table */

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2, CTL_UNREACHABLE = 3 };

/* The command line of one queue or quarantine command. */
struct ctl_args {
	const char *socket;
	const char *sender, *recipient, *queue, *min_age, *max_age;
	int json;
	int nargs; /* positional arguments after the subcommand */
	char **args;
};

/* The options of list that have no short letter, and --json. */
enum { OPT_SENDER = CLI_LONG_ONLY, OPT_RECIPIENT, OPT_QUEUE, OPT_MIN_AGE, OPT_MAX_AGE, OPT_JSON };

#define CTL_QUEUE_OPTIONS ":s:h"

/* ctl_parse_args - options and positional arguments; 0, 1 for --help, or -1
 * after a message on a usage error. */
static int ctl_parse_args(int argc, char **argv, struct ctl_args *a)
{
	static const struct option opts[] = {
	    {"sender", required_argument, NULL, OPT_SENDER},
	    {"recipient", required_argument, NULL, OPT_RECIPIENT},
	    {"queue", required_argument, NULL, OPT_QUEUE},
	    {"min-age", required_argument, NULL, OPT_MIN_AGE},
	    {"max-age", required_argument, NULL, OPT_MAX_AGE},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	memset(a, 0, sizeof(*a));
	optind = 0; /* a full restart of getopt: main's scan stopped at the command */
	while ((opt = getopt_long(argc, argv, CTL_QUEUE_OPTIONS, opts, NULL)) != -1) {
		switch (opt) {
		case OPT_SENDER:
			a->sender = optarg;
			break;
		case OPT_RECIPIENT:
			a->recipient = optarg;
			break;
		case OPT_QUEUE:
			a->queue = optarg;
			break;
		case OPT_MIN_AGE:
			a->min_age = optarg;
			break;
		case OPT_MAX_AGE:
			a->max_age = optarg;
			break;
		case OPT_JSON:
			a->json = 1;
			break;
		case 's':
			a->socket = optarg;
			break;
		case 'h':
			return 1;
		default:
			cli_option_error("vsmtpctl", opt, argv, CTL_QUEUE_OPTIONS);
			return -1;
		}
	}
	/* argv[0] is the command word itself ("queue"), as getopt expects. */
	if (optind >= argc) {
		fprintf(stderr, "vsmtpctl: %s needs a command\n", argv[0]);
		return -1;
	}
	a->args = argv + optind;
	a->nargs = argc - optind;
	return 0;
}

/* ctl_socket_path - -s, else the configuration's control_socket; NULL on a config error. */
static char *ctl_socket_path(const char *conf, const char *override)
{
	struct config *cfg;
	char err[1024], *path;

	if (override != NULL)
		return strdup(override);
	/* Without -c, a configuration we may not read (it can hold a relay
	 * password) leaves the default socket: the daemon decides who may talk. */
	if (conf == NULL && access(CONFIG_DEFAULT_PATH, R_OK) < 0)
		return strdup(CTL_DEFAULT_SOCKET);
	if ((cfg = config_load(conf, NULL, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "vsmtpctl: %s\n", err);
		return NULL;
	}
	path = strdup(cfg->control_socket);
	config_free(cfg);
	return path;
}

/* ctl_connect - connect to the control socket; the fd, or -1 after a message. */
static int ctl_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "vsmtpctl: control socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		fprintf(stderr, "vsmtpctl: socket: %s\n", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	err = errno;
	close(fd);
	if (err == EACCES || err == EPERM)
		fprintf(stderr,
		        "vsmtpctl: cannot reach vsmtpd at %s: %s (run as root or as a "
		        "member of "
		        "the admin group)\n",
		        path, strerror(err));
	else
		fprintf(stderr, "vsmtpctl: cannot reach vsmtpd at %s: %s (is vsmtpd running?)\n",
		        path, strerror(err));
	return -1;
}

/* ctl_send_all - write the whole request; 0 or -1. */
static int ctl_send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ctl_recv_line - the answer line (malloc'ed, without its newline); NULL after a message. */
static char *ctl_recv_line(int fd, const char *path, size_t *lenp)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap), *nl;
	ssize_t n;
	int pr;

	while (buf != NULL) {
		if ((pr = poll(&pfd, 1, CTL_ANSWER_TIMEOUT_MS)) == 0) {
			fprintf(stderr, "vsmtpctl: no answer from vsmtpd at %s within %d s\n", path,
			        CTL_ANSWER_TIMEOUT_MS / 1000);
			break;
		}
		if (pr < 0 && errno == EINTR)
			continue;
		n = pr < 0 ? -1 : recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "vsmtpctl: reading from vsmtpd at %s: %s\n", path,
			        strerror(errno));
			break;
		}
		if (n == 0) {
			/* The master closes a connection from a user it does not accept. */
			fprintf(stderr,
			        "vsmtpctl: vsmtpd at %s closed the connection without an answer "
			        "(run as root or as a member of the admin group)\n",
			        path);
			break;
		}
		if ((nl = memchr(buf + len, '\n', (size_t)n)) != NULL) {
			*nl = '\0';
			*lenp = (size_t)(nl - buf);
			return buf;
		}
		len += (size_t)n;
		if (len == cap) {
			char *bigger = cap < CTL_ANSWER_MAX ? realloc(buf, cap * 2) : NULL;

			if (bigger == NULL) {
				fprintf(stderr, "vsmtpctl: the answer of vsmtpd is too large\n");
				break;
			}
			buf = bigger;
			cap *= 2;
		}
	}
	free(buf);
	return NULL;
}

/* ctl_call - send req (takes it), return the parsed answer or NULL with *rc set. */
static cJSON *ctl_call(const char *path, cJSON *req, int *rc, char **raw)
{
	char *text = cJSON_PrintUnformatted(req), *line = NULL;
	cJSON *ans = NULL;
	size_t len = 0;
	int fd;

	cJSON_Delete(req);
	*rc = CTL_UNREACHABLE;
	if (text == NULL) {
		fprintf(stderr, "vsmtpctl: out of memory\n");
		*rc = CTL_FAILED;
		return NULL;
	}
	if ((fd = ctl_connect(path)) >= 0) {
		/* A failed write is no reason to stop: the master may have
		 * answered (refused us) and closed before it read the request. */
		if (ctl_send_all(fd, text, strlen(text)) == 0)
			ctl_send_all(fd, "\n", 1);
		line = ctl_recv_line(fd, path, &len);
		close(fd);
	}
	free(text);
	if (line == NULL)
		return NULL;
	if ((ans = cJSON_ParseWithLength(line, len)) == NULL || !cJSON_IsObject(ans)) {
		fprintf(stderr, "vsmtpctl: vsmtpd sent an answer that is not a JSON object\n");
		cJSON_Delete(ans);
		free(line);
		*rc = CTL_FAILED;
		return NULL;
	}
	*raw = line;
	*rc = CTL_OK;
	return ans;
}

/* ---- printing ---- */

/* ctl_str - a string member, NULL when absent or not a string. */
static const char *ctl_str(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* ctl_strd - a string member, dflt when absent or not a string. */
static const char *ctl_strd(const cJSON *obj, const char *key, const char *dflt)
{
	const char *s = ctl_str(obj, key);

	return s ? s : dflt;
}

/* ctl_num - a number member, 0 when absent. */
static double ctl_num(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(it) ? it->valuedouble : 0;
}

/* ctl_time - a Unix time as local time: mailq's short form, or in full with the zone. */
static const char *ctl_time(double t, int full, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	size_t n = 0;

	if (localtime_r(&tt, &tm) != NULL)
		n = full ? strftime(buf, len, "%Y-%m-%d %H:%M:%S %z", &tm)
		         : strftime(buf, len, "%a %b %e %H:%M:%S", &tm);
	if (n == 0)
		snprintf(buf, len, "%.0f", t);
	return buf;
}

/* ctl_mark - the mailq mark after a queue id: '*' active, '!' hold, '#' dead, '?' corrupt. */
static char ctl_mark(const char *queue)
{
	if (queue == NULL)
		return ' ';
	if (strcmp(queue, "active") == 0)
		return '*';
	if (strcmp(queue, "hold") == 0)
		return '!';
	if (strcmp(queue, "dead") == 0)
		return '#';
	return strcmp(queue, "corrupt") == 0 ? '?' : ' ';
}

/* ctl_print_rcpts - the recipients still to do, each group's last reply in parentheses. */
static void ctl_print_rcpts(const cJSON *msg)
{
	const char *last = NULL, *status, *reply;
	const cJSON *r;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(msg, "recipients"))
	{
		status = ctl_str(r, "status");
		if (status && (strcmp(status, "sent") == 0 || strcmp(status, "none") == 0))
			continue;
		reply = ctl_str(r, "reply");
		if (status && (strcmp(status, "deferred") == 0 || strcmp(status, "failed") == 0) &&
		    reply && (last == NULL || strcmp(last, reply) != 0)) {
			printf("(%s%s)\n", strcmp(status, "failed") == 0 ? "failed: " : "", reply);
			last = reply;
		}
		printf("%*s%s\n", CTL_INDENT, "", ctl_strd(r, "address", ""));
	}
}

/* ctl_print_entry - one message of the table. */
static void ctl_print_entry(const cJSON *msg)
{
	const char *id = ctl_str(msg, "id"), *sender = ctl_str(msg, "sender");
	const char *qname = ctl_str(msg, "quarantine");
	char when[64];

	if (sender == NULL)
		sender = "(no valid envelope)";
	else if (sender[0] == '\0')
		sender = "<>";
	printf("%-16s%c %8.0f %20s  %s\n", id ? id : "?", ctl_mark(ctl_str(msg, "queue")),
	       ctl_num(msg, "size"), ctl_time(ctl_num(msg, "arrival"), 0, when, sizeof(when)),
	       sender);
	if (qname != NULL)
		printf("(quarantine %s)\n", qname);
	if (ctl_str(msg, "hold_reason") != NULL)
		printf("(held: %s)\n", ctl_str(msg, "hold_reason"));
	ctl_print_rcpts(msg);
	printf("\n");
}

/* ctl_print_list - the mailq-style table of a list answer. */
static void ctl_print_list(const cJSON *ans, const char *empty)
{
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(ans, "messages"), *m;
	double count = ctl_num(ans, "count"), total = ctl_num(ans, "total_size");

	if (count == 0) {
		printf("%s\n", empty);
		return;
	}
	printf("-Queue ID-------- --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
	cJSON_ArrayForEach(m, msgs)
	{
		ctl_print_entry(m);
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "truncated")))
		printf("-- (only the first %d listed)\n", cJSON_GetArraySize(msgs));
	printf("-- %llu Kbytes in %.0f Request%s.\n", ((unsigned long long)total + 1023) / 1024,
	       count, count == 1 ? "" : "s");
}

/* ctl_base64_value - the value of a base64 digit, -1 for another byte. */
static int ctl_base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* ctl_base64_write - decode base64 text onto stdout; 0, or -1 when it is not base64. */
static int ctl_base64_write(const char *text)
{
	size_t n = strlen(text), i, k = 0;
	unsigned char *out = malloc(n / 4 * 3 + 3);
	unsigned v = 0;
	int bits = 0, d;

	if (out == NULL)
		return -1;
	for (i = 0; i < n && text[i] != '='; i++) {
		if ((d = ctl_base64_value((unsigned char)text[i])) < 0) {
			free(out);
			return -1;
		}
		v = (v << 6) | (unsigned)d;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[k++] = (unsigned char)(v >> bits);
		}
	}
	fwrite(out, 1, k, stdout);
	free(out);
	return 0;
}

/* ctl_state_rcpt - the delivery state's entry for address, NULL when none. */
static const cJSON *ctl_state_rcpt(const cJSON *state, const char *address)
{
	const cJSON *s;
	const char *a;

	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(state, "rcpts"))
	{
		if ((a = ctl_str(s, "address")) != NULL && address != NULL &&
		    strcmp(a, address) == 0)
			return s;
	}
	return NULL;
}

/* ctl_print_show_rcpts - each recipient with its delivery status from the state. */
static void ctl_print_show_rcpts(const cJSON *env, const cJSON *state)
{
	const char *addr, *reply, *remote;
	const cJSON *r, *found;

	printf("Recipients:\n");
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(env, "rcpts"))
	{
		addr = ctl_str(r, "address");
		found = ctl_state_rcpt(state, addr);
		reply = ctl_str(found, "reply");
		remote = ctl_str(found, "remote");
		printf("  %s: %s", ctl_strd(r, "address", "?"),
		       ctl_strd(found, "status", "pending"));
		if (reply)
			printf(" (%s%s%s)", reply, remote ? " from " : "", remote ? remote : "");
		printf("\n");
	}
}

/* ctl_print_show - a message: its envelope, its delivery state, its text. */
static void ctl_print_show(const cJSON *ans)
{
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(ans, "envelope");
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(ans, "state");
	const char *content = ctl_str(ans, "content"), *enc = ctl_str(ans, "content_encoding");
	const char *qname = ctl_str(ans, "quarantine");
	char when[64];

	printf("Queue ID:   %s\n", ctl_strd(ans, "id", "?"));
	printf("Queue:      %s%s%s\n", ctl_strd(ans, "queue", "?"), qname ? " " : "",
	       qname ? qname : "");
	printf("Arrival:    %s\n", ctl_time(ctl_num(ans, "arrival"), 1, when, sizeof(when)));
	printf("Size:       %.0f bytes\n", ctl_num(ans, "size"));
	if (cJSON_IsObject(env)) {
		printf("Sender:     <%s>\n", ctl_strd(env, "mail_from", ""));
		printf("Client:     %s [%s]:%.0f on %s (%s%s%s)\n", ctl_strd(env, "helo", ""),
		       ctl_strd(env, "client_ip", "?"), ctl_num(env, "client_port"),
		       ctl_strd(env, "listener", "?"), ctl_strd(env, "protocol", "?"),
		       ctl_str(env, "authid") ? ", authenticated as " : "",
		       ctl_strd(env, "authid", ""));
	} else {
		printf("Envelope:   none valid (the file is corrupt)\n");
	}
	if (cJSON_IsObject(state)) {
		printf("Attempts:   %.0f", ctl_num(state, "attempts"));
		if (ctl_num(state, "next_attempt") > 0)
			printf(", next %s",
			       ctl_time(ctl_num(state, "next_attempt"), 1, when, sizeof(when)));
		printf("\n");
		if (ctl_num(state, "worker_failures") > 0)
			printf("Worker failures: %.0f, the last while %s\n",
			       ctl_num(state, "worker_failures"), ctl_strd(state, "worker_failure", "?"));
	} else if (cJSON_IsObject(env)) {
		printf("Attempts:   none yet\n");
	}
	if (ctl_str(ans, "hold_reason") != NULL)
		printf("Held:       %s\n", ctl_str(ans, "hold_reason"));
	if (cJSON_IsObject(env))
		ctl_print_show_rcpts(env, state);
	printf("\n");
	fflush(stdout);
	if (content != NULL && enc != NULL && strcmp(enc, "base64") == 0) {
		if (ctl_base64_write(content) < 0)
			fprintf(stderr, "vsmtpctl: the message text in the answer is not base64\n");
	} else if (content != NULL)
		fputs(content, stdout);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "truncated")))
		printf("\n[... truncated: %.0f bytes in all]\n", ctl_num(ans, "size"));
}

/* ctl_print_results - one line per id; the exit status. */
static int ctl_print_results(const cJSON *ans, const char *done)
{
	const cJSON *results = cJSON_GetObjectItemCaseSensitive(ans, "results"), *r;
	int rc = CTL_OK;

	cJSON_ArrayForEach(r, results)
	{
		const char *id = ctl_str(r, "id");

		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"))) {
			printf("%s: %s\n", id ? id : "?", done);
		} else {
			fprintf(stderr, "vsmtpctl: %s: %s\n", id && id[0] ? id : "(not a string)",
			        ctl_strd(r, "error", "failed"));
			rc = CTL_FAILED;
		}
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok")) && rc == CTL_OK) {
		fprintf(stderr, "vsmtpctl: %s\n", ctl_strd(ans, "error", "failed"));
		rc = CTL_FAILED;
	}
	return rc;
}

/* ---- commands ---- */

/* ctl_age - a duration argument in seconds into obj[key]; 0, or -1 on a bad value. */
static int ctl_age(cJSON *req, const char *key, const char *text)
{
	uint64_t ms;

	if (text == NULL)
		return 0;
	if (config_parse_duration(text, &ms) < 0) {
		fprintf(stderr, "vsmtpctl: not a duration: %s (30s, 5m, 1h, 2d)\n", text);
		return -1;
	}
	cJSON_AddNumberToObject(req, key, (double)(ms / 1000));
	return 0;
}

/* ctl_queue_ok - whether --queue names a queue. */
static int ctl_queue_ok(const char *q)
{
	static const char *const names[] = {"active",     "deferred", "hold",
	                                    "quarantine", "dead",     "corrupt"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(q, names[i]) == 0)
			return 1;
	fprintf(stderr,
	        "vsmtpctl: unknown queue %s (active, deferred, hold, quarantine, "
	        "dead, corrupt)\n",
	        q);
	return 0;
}

/* ctl_list_request - {"cmd":"list", filters}; NULL on a usage error. */
static cJSON *ctl_list_request(const struct ctl_args *a)
{
	cJSON *req = cJSON_CreateObject();

	cJSON_AddStringToObject(req, "cmd", "list");
	if (a->sender)
		cJSON_AddStringToObject(req, "sender", a->sender);
	if (a->recipient)
		cJSON_AddStringToObject(req, "recipient", a->recipient);
	if (a->queue)
		cJSON_AddStringToObject(req, "queue", a->queue);
	if ((a->queue && !ctl_queue_ok(a->queue)) || ctl_age(req, "min_age", a->min_age) < 0 ||
	    ctl_age(req, "max_age", a->max_age) < 0) {
		cJSON_Delete(req);
		return NULL;
	}
	return req;
}

/* ctl_ids_request - {"cmd":cmd,"name"?,"ids":[...]}; NULL on a bad id. */
static cJSON *ctl_ids_request(const char *cmd, const char *name, char **ids, int nids)
{
	cJSON *req = cJSON_CreateObject(), *arr;

	cJSON_AddStringToObject(req, "cmd", cmd);
	if (name != NULL)
		cJSON_AddStringToObject(req, "name", name);
	if (nids == 0)
		return req; /* flush without ids: everything */
	arr = cJSON_AddArrayToObject(req, "ids");
	for (int i = 0; i < nids; i++) {
		if (!spool_id_valid(ids[i])) {
			fprintf(
			    stderr,
			    "vsmtpctl: not a queue id: %s (16 hexadecimal digits, upper case)\n",
			    ids[i]);
			cJSON_Delete(req);
			return NULL;
		}
		cJSON_AddItemToArray(arr, cJSON_CreateString(ids[i]));
	}
	return req;
}

/* ctl_done_word - what the per-id line says once a command succeeded. */
static const char *ctl_done_word(const char *cmd)
{
	static const char *const words[][2] = {
	    {"remove", "removed"},
	    {"hold", "held"},
	    {"release", "released"},
	    {"flush", "flushed"},
	    {"requeue", "requeued"},
	    {"quarantine-release", "released to the queue"},
	    {"quarantine-remove", "removed"},
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(cmd, words[i][0]) == 0)
			return words[i][1];
	return "done";
}

/* ctl_build - the request of a parsed command line; NULL on a usage error (*usage set). */
static cJSON *ctl_build(int quarantine, const struct ctl_args *a, const char **cmd, int *usage)
{
	const char *sub = a->args[0];
	int n = a->nargs - 1,
	    filters = a->sender || a->recipient || a->queue || a->min_age || a->max_age;
	cJSON *req;

	*usage = 1;
	if (filters && (quarantine || strcmp(sub, "list") != 0))
		return NULL;
	if (!quarantine && strcmp(sub, "list") == 0 && n == 0) {
		*cmd = "list";
		*usage = 0;
		return ctl_list_request(a);
	}
	if (!quarantine && strcmp(sub, "show") == 0 && n == 1) {
		*cmd = "show";
		*usage = 0;
		if (!spool_id_valid(a->args[1])) {
			fprintf(stderr, "vsmtpctl: not a queue id: %s\n", a->args[1]);
			return NULL;
		}
		req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "cmd", "show");
		cJSON_AddStringToObject(req, "id", a->args[1]);
		return req;
	}
	if (!quarantine &&
	    (strcmp(sub, "flush") == 0 ||
	     (n > 0 && (strcmp(sub, "remove") == 0 || strcmp(sub, "hold") == 0 ||
	                strcmp(sub, "release") == 0 || strcmp(sub, "requeue") == 0)))) {
		*cmd = sub;
		req = ctl_ids_request(sub, NULL, a->args + 1, n);
		*usage = 0;
		return req;
	}
	if (quarantine && strcmp(sub, "list") == 0 && n <= 1) {
		*cmd = "quarantine-list";
		*usage = 0;
		if (n == 1 && !spool_folder_name_ok(a->args[1])) {
			fprintf(stderr, "vsmtpctl: not a quarantine name: %s\n", a->args[1]);
			return NULL;
		}
		req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "cmd", "quarantine-list");
		if (n == 1)
			cJSON_AddStringToObject(req, "name", a->args[1]);
		return req;
	}
	if (quarantine && n >= 2 && (strcmp(sub, "release") == 0 || strcmp(sub, "remove") == 0)) {
		*cmd = strcmp(sub, "release") == 0 ? "quarantine-release" : "quarantine-remove";
		*usage = 0;
		if (!spool_folder_name_ok(a->args[1])) {
			fprintf(stderr, "vsmtpctl: not a quarantine name: %s\n", a->args[1]);
			return NULL;
		}
		return ctl_ids_request(*cmd, a->args[1], a->args + 2, n - 1);
	}
	return NULL;
}

/* ctl_report - print an answer as its command wants; the exit status. */
static int ctl_report(const char *cmd, const cJSON *ans, const char *raw, int json)
{
	int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok"));

	if (json) {
		printf("%s\n", raw);
		return ok ? CTL_OK : CTL_FAILED;
	}
	if (cJSON_GetObjectItemCaseSensitive(ans, "results") != NULL) {
		if (strcmp(cmd, "flush") == 0 &&
		    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ans, "results")) == 0 &&
		    ok) {
			printf("flushed: every deferred message is due now\n");
			return CTL_OK;
		}
		return ctl_print_results(ans, ctl_done_word(cmd));
	}
	if (!ok) {
		fprintf(stderr, "vsmtpctl: %s\n", ctl_strd(ans, "error", "failed"));
		return CTL_FAILED;
	}
	if (strcmp(cmd, "show") == 0)
		ctl_print_show(ans);
	else
		ctl_print_list(ans, strcmp(cmd, "list") == 0 ? "Mail queue is empty"
		                                             : "Quarantine is empty");
	return CTL_OK;
}

/* ctl_master_refusal - the master's own answers: not allowed, no queue process. */
static int ctl_master_refusal(const cJSON *ans, const char *path)
{
	const char *error = ctl_str(ans, "error");

	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok")) || error == NULL ||
	    cJSON_GetObjectItemCaseSensitive(ans, "results") != NULL)
		return CTL_OK;
	if (strcmp(error, "permission denied") == 0) {
		fprintf(
		    stderr,
		    "vsmtpctl: cannot reach vsmtpd at %s: Permission denied (run as root or as a "
		    "member of the admin group)\n",
		    path);
		return CTL_UNREACHABLE;
	}
	if (strncmp(error, "the queue process is not running", 32) == 0) {
		fprintf(stderr, "vsmtpctl: cannot reach vsmtpd at %s: %s\n", path, error);
		return CTL_UNREACHABLE;
	}
	return CTL_OK;
}

/* ctl_queue_main - run a queue or quarantine command. */
int ctl_queue_main(const char *conf, int argc, char **argv)
{
	int quarantine = strcmp(argv[0], "quarantine") == 0, usage, rc;
	const char *cmd = NULL;
	struct ctl_args a;
	char *path, *raw = NULL;
	cJSON *req, *ans;

	if ((rc = ctl_parse_args(argc, argv, &a)) != 0) {
		if (rc < 0)
			return ctl_usage_error(argv[0]);
		ctl_usage(stdout, argv[0]);
		return CTL_OK;
	}
	if ((req = ctl_build(quarantine, &a, &cmd, &usage)) == NULL) {
		if (!usage)
			return CTL_USAGE;
		fprintf(stderr, "vsmtpctl: %s %s: unknown command or wrong arguments\n", argv[0],
		        a.args[0]);
		return ctl_usage_error(argv[0]);
	}
	if ((path = ctl_socket_path(conf, a.socket)) == NULL) {
		cJSON_Delete(req);
		return CTL_USAGE;
	}
	ans = ctl_call(path, req, &rc, &raw);
	if (ans != NULL && (rc = ctl_master_refusal(ans, path)) == CTL_OK)
		rc = ctl_report(cmd, ans, raw, a.json);
	free(path);
	cJSON_Delete(ans);
	free(raw);
	return rc;
}
