/*
 * test_mta.c - the SMTP/LMTP client against real peers on loopback.
 *
 * Two kinds of peer: Postfix's smtp-sink (a real SMTP/LMTP server that can
 * refuse commands and dump what it received), and a scripted peer this test
 * forks: a child that accepts on a loopback socket and plays a script of
 * lines to send and commands to expect, with TLS when told (a certificate
 * made here), so that mixed replies, LMTP's per-recipient answers, broken
 * replies and TLS can be checked byte for byte. Every wait has a deadline
 * and every child is reaped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "mta.h"
#include "smtp_parse.h"

#define SINK "/usr/sbin/smtp-sink"

/* ---- a certificate for the TLS peer ------------------------------------ */

static EVP_PKEY *tls_key;
static X509 *tls_cert;
static char tmpdir[64];
static char ca_path[128];

/* cert_ext - add one extension given in openssl.cnf syntax. */
static void cert_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

/* cert_make - a self-signed certificate for "localhost", also the client's CA file. */
static void cert_make(void)
{
	X509_NAME *name;
	FILE *fp;

	tls_key = EVP_EC_gen("P-256");
	tls_cert = X509_new();
	assert_non_null(tls_key);
	X509_set_version(tls_cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(tls_cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(tls_cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(tls_cert), 86400);
	name = X509_get_subject_name(tls_cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
	                           -1, 0);
	X509_set_issuer_name(tls_cert, name);
	X509_set_pubkey(tls_cert, tls_key);
	cert_ext(tls_cert, NID_basic_constraints, "critical,CA:TRUE");
	cert_ext(tls_cert, NID_subject_alt_name, "DNS:localhost");
	assert_true(X509_sign(tls_cert, tls_key, EVP_sha256()) > 0);
	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", tmpdir);
	fp = fopen(ca_path, "w");
	assert_non_null(fp);
	PEM_write_X509(fp, tls_cert);
	fclose(fp);
}

/* ---- the scripted peer (a child process) ------------------------------- */

/*
 * A script is a list of steps, the first character says what:
 *   A        accept the next connection (closing the one before)
 *   S<text>  send text as is
 *   R<text>  read one line; it must start with text
 *   D<text>  read the message up to and including ".\r\n"; it must be text (if given)
 *   N        nothing more may come within 300 ms (no pipelining)
 *   T        TLS handshake as the server (must succeed); t: may fail, then stop
 *   W<ms>    sleep
 *   C        close the connection
 *   E        the client must close (end of file)
 * The child exits 0 when every step went as written.
 */
static int pc_fd = -1;
static SSL *pc_ssl;
static char pc_buf[1 << 16];
static size_t pc_len;

/* pc_fill - read more input; 0 on end of file or error. */
static int pc_fill(void)
{
	int n;

	if (pc_len == sizeof(pc_buf))
		return 0;
	if (pc_ssl != NULL)
		n = SSL_read(pc_ssl, pc_buf + pc_len, (int)(sizeof(pc_buf) - pc_len));
	else
		n = (int)read(pc_fd, pc_buf + pc_len, sizeof(pc_buf) - pc_len);
	if (n <= 0)
		return 0;
	pc_len += (size_t)n;
	return 1;
}

/* pc_take - remove n bytes of input into out (NUL-terminated). */
static void pc_take(char *out, size_t n)
{
	memcpy(out, pc_buf, n);
	out[n] = '\0';
	memmove(pc_buf, pc_buf + n, pc_len - n);
	pc_len -= n;
}

/* pc_line - one line of input without its CRLF; 0 on end of file. */
static int pc_line(char *out, size_t outlen)
{
	char *nl;

	while ((nl = memchr(pc_buf, '\n', pc_len)) == NULL)
		if (!pc_fill())
			return 0;
	if ((size_t)(nl - pc_buf) + 1 >= outlen)
		return 0;
	pc_take(out, (size_t)(nl - pc_buf) + 1);
	out[strcspn(out, "\r\n")] = '\0';
	return 1;
}

/* pc_message - the message as sent, up to and including the final dot line. */
static int pc_message(char *out, size_t outlen)
{
	char *end;

	for (;;) {
		if (pc_len >= 3 && memcmp(pc_buf, ".\r\n", 3) == 0) {
			end = pc_buf;
			break;
		}
		if ((end = memmem(pc_buf, pc_len, "\r\n.\r\n", 5)) != NULL) {
			end += 2;
			break;
		}
		if (!pc_fill())
			return 0;
	}
	if ((size_t)(end - pc_buf) + 3 >= outlen)
		return 0;
	pc_take(out, (size_t)(end - pc_buf) + 3);
	return 1;
}

/* pc_send - write text to the client. */
static void pc_send(const char *s)
{
	size_t n = strlen(s);

	if (pc_ssl != NULL)
		SSL_write(pc_ssl, s, (int)n);
	else if (write(pc_fd, s, n) != (ssize_t)n)
		_exit(90);
}

/* pc_close - end the connection. */
static void pc_close(void)
{
	if (pc_ssl != NULL)
		SSL_free(pc_ssl);
	pc_ssl = NULL;
	if (pc_fd >= 0)
		close(pc_fd);
	pc_fd = -1;
	pc_len = 0;
}

/* pc_tls - the server side of a handshake. */
static int pc_tls(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL || SSL_CTX_use_certificate(ctx, tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, tls_key) != 1 || pc_len != 0)
		return 0;
	pc_ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	SSL_set_fd(pc_ssl, pc_fd);
	return SSL_accept(pc_ssl) == 1;
}

/* pc_quiet - whether no input comes within 300 ms. */
static int pc_quiet(void)
{
	struct pollfd p = {.fd = pc_fd, .events = POLLIN};

	return pc_len == 0 && (pc_ssl == NULL || SSL_pending(pc_ssl) == 0) && poll(&p, 1, 300) == 0;
}

/* pc_run - play the script on listener lfd; the exit code of the child. */
static int pc_run(int lfd, const char *const *script)
{
	static char got[1 << 16];
	size_t i;

	for (i = 0; script[i] != NULL; i++) {
		const char *s = script[i], *arg = s + 1;
		int ok = 1;

		switch (s[0]) {
		case 'A':
			pc_close();
			ok = (pc_fd = accept(lfd, NULL, NULL)) >= 0;
			break;
		case 'S':
			pc_send(arg);
			break;
		case 'R':
			ok = pc_line(got, sizeof(got)) && strncmp(got, arg, strlen(arg)) == 0;
			break;
		case 'D':
			ok =
			    pc_message(got, sizeof(got)) && (*arg == '\0' || strcmp(got, arg) == 0);
			break;
		case 'N':
			ok = pc_quiet();
			break;
		case 'T':
			ok = pc_tls();
			break;
		case 't':
			pc_tls();
			return 0;
		case 'W':
			usleep((useconds_t)atoi(arg) * 1000);
			break;
		case 'C':
			pc_close();
			break;
		case 'E':
			ok = !pc_line(got, sizeof(got));
			break;
		}
		if (!ok) {
			fprintf(stderr, "peer: step %zu \"%s\" failed; got \"%s\"\n", i, s,
			        s[0] == 'R' || s[0] == 'D' || s[0] == 'E' ? got : "");
			return 100 + (int)i;
		}
	}
	return 0;
}

/* listen_any - a listening socket on 127.0.0.1, its port in *port. */
static int listen_any(int *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* free_port - a loopback port nobody listens on (right now). */
static int free_port(void)
{
	int port, fd = listen_any(&port);

	close(fd);
	return port;
}

/* peer_start - fork the scripted peer on a new port; its pid. */
static pid_t peer_start(const char *const *script, int *port)
{
	int lfd = listen_any(port);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(20);
		signal(SIGPIPE, SIG_IGN);
		_exit(pc_run(lfd, script));
	}
	close(lfd);
	return pid;
}

/* child_wait - reap a child within 5 s (killed past that); its exit code, or -1. */
static int child_wait(pid_t pid)
{
	int status, i;

	for (i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* ---- smtp-sink ---------------------------------------------------------- */

/* sink_ready - whether something accepts connections at the sink's address. */
static int sink_ready(int port, const char *path)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, ok;

	memset(&ss, 0, sizeof(ss));
	if (path != NULL) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;

		un->sun_family = AF_UNIX;
		assert_true(strlen(path) < sizeof(un->sun_path));
		memcpy(un->sun_path, path, strlen(path));
		len = sizeof(*un);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*in);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ok = connect(fd, (struct sockaddr *)&ss, len) == 0;
	close(fd);
	return ok;
}

/*
 * sink_start - run smtp-sink with opts (NULL-ended) on 127.0.0.1:port or
 * the unix socket path; wait until it listens. Dumps go to dump_dir/ when
 * given.
 */
static pid_t sink_start(const char *const *opts, int port, const char *path, const char *dump_dir)
{
	const char *argv[32];
	char where[160], dump[160];
	size_t n = 0, i;
	pid_t pid;

	argv[n++] = SINK;
	if (geteuid() == 0) {
		argv[n++] = "-u";
		argv[n++] = "nobody";
	}
	if (dump_dir != NULL) {
		snprintf(dump, sizeof(dump), "%s/", dump_dir);
		argv[n++] = "-d";
		argv[n++] = dump;
	}
	for (i = 0; opts != NULL && opts[i] != NULL && n < 28; i++)
		argv[n++] = opts[i];
	if (path != NULL)
		snprintf(where, sizeof(where), "unix:%s", path);
	else
		snprintf(where, sizeof(where), "127.0.0.1:%d", port);
	argv[n++] = where;
	argv[n++] = "16";
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 1);
		dup2(null, 2);
		execv(SINK, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 500 && !sink_ready(port, path); i++)
		usleep(10000);
	assert_true(i < 500);
	return pid;
}

/* sink_stop - end smtp-sink (its dumps are complete once it is gone). */
static void sink_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	child_wait(pid);
}

/* dump_dir_new - an empty directory the sink (maybe as nobody) can write. */
static void dump_dir_new(char *dir, size_t len, const char *name)
{
	snprintf(dir, len, "%s/%s", tmpdir, name);
	assert_int_equal(mkdir(dir, 0777), 0);
	chmod(dir, 0777);
}

/* dump_read - the one message dumped in dir into buf ("" when none); the number of dumps. */
static int dump_read(const char *dir, char *buf, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int count = 0;

	buf[0] = '\0';
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[512];
		FILE *fp;
		size_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		fp = fopen(path, "r");
		assert_non_null(fp);
		n = fread(buf, 1, len - 1, fp);
		buf[n] = '\0';
		fclose(fp);
		count++;
	}
	closedir(d);
	return count;
}

/* dump_body - the message in a dump: after smtp-sink's Received: header. */
static const char *dump_body(const char *dump)
{
	const char *p = strstr(dump, "\nReceived: ");

	assert_non_null(p);
	for (p++;;) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
		if (*p != '\t')
			return p;
	}
}

/* ---- driving the client ------------------------------------------------- */

struct outcome {
	int done;
	int calls;
	size_t n;
	struct mta_result r[8];
	char remote[300];
	/* what the callback does next */
	const struct mta_job *next_job;
	struct outcome *next_out;
	int close_in_cb;
};

static int in_send; /* the done callback must never run inside mta_conn_send */
static int deadline_hit;
static int idle_calls;

static void on_done(void *arg, struct mta_conn *conn, const struct mta_result *res,
                    const char *remote);

/* send_job - mta_conn_send, watching that the callback does not come from inside. */
static void send_job(struct mta_conn *conn, const struct mta_job *job, struct outcome *o)
{
	in_send = 1;
	mta_conn_send(conn, job, on_done, o);
	in_send = 0;
}

/* on_done - keep the results; then what the test asked for (another job, close). */
static void on_done(void *arg, struct mta_conn *conn, const struct mta_result *res,
                    const char *remote)
{
	struct outcome *o = arg;
	size_t i;

	assert_false(in_send);
	o->calls++;
	o->done = 1;
	for (i = 0; i < o->n && i < 8; i++)
		o->r[i] = res[i];
	snprintf(o->remote, sizeof(o->remote), "%s", remote);
	if (o->next_job != NULL) {
		assert_true(mta_conn_reusable(conn));
		send_job(conn, o->next_job, o->next_out);
	} else if (o->close_in_cb) {
		mta_conn_close(conn);
	}
}

/* on_idle - the peer closed an idle connection: forget it. */
static void on_idle(void *arg, struct mta_conn *conn)
{
	idle_calls++;
	mta_conn_close(conn);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	deadline_hit = 1;
}

/* run_until - run the loop until *flag is set or seconds pass; whether it was set. */
static int run_until(struct event_base *base, const int *flag, int seconds)
{
	struct timeval tv = {seconds, 0};
	struct event *t = evtimer_new(base, deadline_cb, NULL);

	deadline_hit = 0;
	evtimer_add(t, &tv);
	while (!*flag && !deadline_hit)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return *flag;
}

/* drain - run the loop until nothing is left in it (closing connections freed), 6 s at most. */
static void drain(struct event_base *base)
{
	struct timeval tv = {6, 0};
	struct event *t = evtimer_new(base, deadline_cb, NULL);

	deadline_hit = 0;
	evtimer_add(t, &tv);
	while (!deadline_hit && event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED |
	                                                            EVENT_BASE_COUNT_ACTIVE) > 1)
		event_base_loop(base, EVLOOP_ONCE);
	assert_false(deadline_hit);
	event_free(t);
}

/* dest_init - a destination with short timeouts and no address yet. */
static void dest_init(struct mta_dest *d)
{
	memset(d, 0, sizeof(*d));
	d->tls = CLIENT_TLS_NONE;
	d->helo_name = "client.test";
	d->connect_timeout = 2;
	d->command_timeout = 3;
	d->data_timeout = 3;
}

/* dest_add - another address: 127.0.0.1:port named host. */
static void dest_add(struct mta_dest *d, const char *host, int port)
{
	struct mta_addr *a = &d->addrs[d->naddrs++];
	struct sockaddr_in *in = (struct sockaddr_in *)&a->sa;

	snprintf(a->host, sizeof(a->host), "%s", host);
	memset(&a->sa, 0, sizeof(a->sa));
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->salen = sizeof(*in);
}

static const struct mta_rcpt rcpts3[] = {
    {"a@example.org", 0, NULL, NULL},
    {"b@example.org", 0, NULL, NULL},
    {"c@example.org", 0, NULL, NULL},
};

static const char short_msg[] = "Subject: hi\r\n\r\nhello\r\n";

/* job_init - a job for the first n of rcpts3 with a short message. */
static void job_init(struct mta_job *j, size_t n)
{
	memset(j, 0, sizeof(*j));
	j->mail_from = "sender@example.net";
	j->rcpts = rcpts3;
	j->nrcpts = n;
	j->content = short_msg;
	j->content_len = strlen(short_msg);
}

/* deliver - one job on a new connection to d, then QUIT; the outcome in o. */
static void deliver(const struct mta_dest *d, const struct mta_job *j,
                    struct outcome *o, int seconds)
{
	struct event_base *base = event_base_new();
	struct mta_conn *conn = mta_conn_new(base, d);

	memset(o, 0, sizeof(*o));
	o->n = j->nrcpts;
	send_job(conn, j, o);
	assert_false(o->done);
	assert_true(run_until(base, &o->done, seconds));
	assert_int_equal(o->calls, 1);
	mta_conn_close(conn);
	drain(base);
	event_base_free(base);
}

/* assert_result - outcome, code and the start of the reply of one recipient. */
static void assert_result(const struct mta_result *r, enum mta_outcome outcome,
                          int code, const char *enhanced, const char *reply_start)
{
	if (r->outcome != outcome || r->code != code || strcmp(r->enhanced, enhanced) != 0 ||
	    strncmp(r->reply, reply_start, strlen(reply_start)) != 0)
		fail_msg("got outcome %d code %d enhanced \"%s\" reply \"%s\"; wanted %d %d \"%s\" "
		         "\"%s...\"",
		         r->outcome, r->code, r->enhanced, r->reply, outcome, code, enhanced,
		         reply_start);
}

/* ---- against smtp-sink -------------------------------------------------- */

/* A message arrives byte for byte: dot-stuffing undone by the peer, a final CRLF added. */
static void test_sink_delivery_is_exact(void **state)
{
	static const char msg[] = "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n"
	                          "middle\r\n. space\r\nno final newline";
	static const struct mta_rcpt r[] = {
	    {"bob@example.org", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, "rfc822",
	     "bob+x@example.org"},
	};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	char dir[128], dump[8192];
	int port = free_port();
	pid_t sink;

	dump_dir_new(dir, sizeof(dir), "exact");
	sink = sink_start(NULL, port, NULL, dir);
	dest_init(&d);
	dest_add(&d, "localhost", port);
	job_init(&j, 1);
	j.rcpts = r;
	j.content = msg;
	j.content_len = strlen(msg);
	j.body = SMTP_BODY_8BITMIME;
	j.ret = SMTP_RET_HDRS;
	j.envid = "env+1";
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 Ok");
	assert_int_equal(o.r[0].remote_said, 1);
	/* smtp-sink offers DSN and got NOTIFY: its notices, not ours */
	assert_int_equal(o.r[0].dsn_passed, 1);
	assert_string_equal(o.remote, "localhost[127.0.0.1]");
	assert_int_equal(dump_read(dir, dump, sizeof(dump)), 1);
	assert_string_equal(dump_body(dump), "Subject: dots\n\n.leading dot\n..two dots\n.\n"
	                                     "middle\n. space\nno final newline\n\n");
	assert_non_null(strstr(dump, "X-Mail-Args: <sender@example.net> BODY=8BITMIME RET=HDRS "
	                             "ENVID=env+2B1\n"));
	assert_non_null(strstr(dump, "X-Rcpt-Args: <bob@example.org> NOTIFY=SUCCESS,FAILURE "
	                             "ORCPT=rfc822;bob+2Bx@example.org\n"));
	assert_non_null(strstr(dump, "X-Helo-Args: client.test\n"));
}

/* Without 8BITMIME and DSN offered, MAIL carries neither BODY= nor RET=. */
static void test_sink_no_8bitmime_no_params(void **state)
{
	static const char *const opts[] = {"-8", "-N", NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	char dir[128], dump[8192];
	int port = free_port();
	pid_t sink;

	dump_dir_new(dir, sizeof(dir), "no8bit");
	sink = sink_start(opts, port, NULL, dir);
	dest_init(&d);
	dest_add(&d, "localhost", port);
	job_init(&j, 1);
	j.body = SMTP_BODY_8BITMIME;
	j.ret = SMTP_RET_FULL;
	j.envid = "e1";
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	assert_int_equal(o.r[0].outcome, MTA_SENT);
	assert_int_equal(o.r[0].dsn_passed, 0);
	assert_int_equal(dump_read(dir, dump, sizeof(dump)), 1);
	assert_non_null(strstr(dump, "X-Mail-Args: <sender@example.net>\n"));
}

/* A message that needs SMTPUTF8 fails for every recipient, and no MAIL is sent. */
static void test_sink_smtputf8_not_offered_fails(void **state)
{
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	char dir[128], dump[64];
	int port = free_port();
	pid_t sink;

	dump_dir_new(dir, sizeof(dir), "utf8");
	sink = sink_start(NULL, port, NULL, dir);
	dest_init(&d);
	dest_add(&d, "mx.example.org", port);
	job_init(&j, 2);
	j.smtputf8 = 1;
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	assert_result(&o.r[0], MTA_FAILED, 0, "5.6.7",
	              "SMTPUTF8 not supported by mx.example.org[127.0.0.1]");
	assert_result(&o.r[1], MTA_FAILED, 0, "5.6.7", "SMTPUTF8 not supported");
	assert_int_equal(o.r[0].remote_said, 0);
	assert_int_equal(dump_read(dir, dump, sizeof(dump)), 0);
}

/* Without PIPELINING every command waits for its reply; the mail still goes. */
static void test_sink_without_pipelining(void **state)
{
	static const char *const opts[] = {"-p", NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port = free_port();
	pid_t sink = sink_start(opts, port, NULL, NULL);

	dest_init(&d);
	dest_add(&d, "localhost", port);
	job_init(&j, 3);
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 Ok");
	assert_result(&o.r[2], MTA_SENT, 250, "2.0.0", "250 2.0.0 Ok");
}

/* RCPT refused with 4xx defers, with 5xx fails; the peer's words are kept. */
static void test_sink_rcpt_refused(void **state)
{
	static const char *const soft[] = {"-r", "RCPT", NULL};
	static const char *const hard[] = {"-f", "RCPT", NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port = free_port();
	pid_t sink = sink_start(soft, port, NULL, NULL);

	dest_init(&d);
	dest_add(&d, "localhost", port);
	job_init(&j, 2);
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	assert_result(&o.r[0], MTA_DEFERRED, 450, "4.3.0",
	              "450 4.3.0 Error: command failed");
	assert_int_equal(o.r[0].remote_said, 1);
	assert_int_equal(o.r[1].outcome, MTA_DEFERRED);

	port = free_port();
	sink = sink_start(hard, port, NULL, NULL);
	dest_init(&d);
	dest_add(&d, "localhost", port);
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	assert_result(&o.r[0], MTA_FAILED, 500, "5.3.0", "500 5.3.0 Error: command failed");
	assert_int_equal(o.r[1].outcome, MTA_FAILED);
}

/* A refused end of message fails every accepted recipient. */
static void test_sink_dot_refused(void **state)
{
	static const char *const opts[] = {"-f", ".", NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port = free_port();
	pid_t sink = sink_start(opts, port, NULL, NULL);

	dest_init(&d);
	dest_add(&d, "localhost", port);
	job_init(&j, 2);
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	assert_result(&o.r[0], MTA_FAILED, 500, "5.3.0", "500 5.3.0");
	assert_result(&o.r[1], MTA_FAILED, 500, "5.3.0", "500 5.3.0");
}

/* A refused connection moves on to the next address. */
static void test_sink_fallback_after_refused(void **state)
{
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int dead = free_port(), port = free_port();
	pid_t sink = sink_start(NULL, port, NULL, NULL);

	dest_init(&d);
	dest_add(&d, "mx1.example.org", dead);
	dest_add(&d, "mx2.example.org", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	assert_int_equal(o.r[0].outcome, MTA_SENT);
	assert_string_equal(o.remote, "mx2.example.org[127.0.0.1]");
}

/* No address answers: deferred with the local reason, nothing from a peer. */
static void test_all_refused_defers(void **state)
{
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	char want[128];
	int dead = free_port();

	dest_init(&d);
	dest_add(&d, "mx.example.org", dead);
	job_init(&j, 2);
	deliver(&d, &j, &o, 10);
	snprintf(want, sizeof(want), "connect to mx.example.org[127.0.0.1]:%d: Connection refused",
	         dead);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.4.1", want);
	assert_result(&o.r[1], MTA_DEFERRED, 0, "4.4.1", want);
	assert_int_equal(o.r[0].remote_said, 0);
	assert_string_equal(o.remote, "");

	/* No address at all: the same, still from the loop. */
	d.naddrs = 0;
	deliver(&d, &j, &o, 10);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.4.1", "no address to connect to");
}

/* A peer that never greets is given up after the command timeout. */
static void test_greeting_timeout(void **state)
{
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port, lfd = listen_any(&port);
	time_t start = time(NULL);

	dest_init(&d);
	d.connect_timeout = 1;
	d.command_timeout = 1;
	dest_add(&d, "slow.example.org", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	close(lfd);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.4.2",
	              "timeout waiting for the greeting from slow.example.org[127.0.0.1]");
	assert_true(time(NULL) - start <= 4);
}

/* LMTP over a unix socket: one final reply per recipient. */
static void test_sink_lmtp_unix(void **state)
{
	static const char *const opts[] = {"-L", NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	char path[128];
	pid_t sink;

	snprintf(path, sizeof(path), "%s/lmtp.sock", tmpdir);
	sink = sink_start(opts, 0, path, NULL);
	dest_init(&d);
	d.lmtp = 1;
	d.unix_path = path;
	job_init(&j, 3);
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	unlink(path);
	/* smtp-sink's LMTP answer to the dot, once per recipient */
	assert_result(&o.r[0], MTA_SENT, 250, "2.2.0", "250 2.2.0 Ok");
	assert_result(&o.r[1], MTA_SENT, 250, "2.2.0", "250 2.2.0 Ok");
	assert_result(&o.r[2], MTA_SENT, 250, "2.2.0", "250 2.2.0 Ok");
	assert_string_equal(o.remote, path);
	assert_int_equal(o.r[0].dsn_passed, 1); /* smtp-sink's LHLO offers DSN too */
}

/* TLS required but STARTTLS not offered: deferred 4.7.5. */
static void test_sink_tls_required_not_offered(void **state)
{
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port = free_port();
	pid_t sink = sink_start(NULL, port, NULL, NULL);

	dest_init(&d);
	d.tls = CLIENT_TLS_ENCRYPT;
	dest_add(&d, "relay.example.org", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	sink_stop(sink);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.7.5",
	              "TLS is required, but was not offered by relay.example.org[127.0.0.1]");
}

/* ---- against the scripted peer ------------------------------------------ */

#define EHLO_PIPE "S250-peer\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"

/* With PIPELINING, MAIL, RCPTs and DATA come before any reply; mixed RCPT replies. */
static void test_pipelined_mixed_rcpts(void **state)
{
	static const char *const script[] = {
	    "A",
	    "S220 peer ESMTP\r\n",
	    "REHLO client.test",
	    EHLO_PIPE,
	    "RMAIL FROM:<sender@example.net>",
	    "RRCPT TO:<a@example.org>",
	    "RRCPT TO:<b@example.org>",
	    "RRCPT TO:<c@example.org>",
	    "RDATA",
	    "S250 2.1.0 ok\r\n250 2.1.5 ok\r\n550-5.1.1 <b@example.org>: no such\r\n"
	    "550 5.1.1 user here\r\n451 4.3.0 try later\r\n354 go\r\n",
	    "DSubject: hi\r\n\r\nhello\r\n.\r\n",
	    "S250 2.0.0 queued as X\r\n",
	    "RQUIT",
	    "S221 bye\r\n",
	    "E",
	    NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	dest_add(&d, "peer.example.org", port);
	job_init(&j, 3);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 queued as X");
	assert_result(&o.r[1], MTA_FAILED, 550, "5.1.1",
	              "550 5.1.1 <b@example.org>: no such user here");
	assert_result(&o.r[2], MTA_DEFERRED, 451, "4.3.0", "451 4.3.0 try later");
}

/*
 * A peer offering DSN gets each recipient's NOTIFY and ORCPT, and every
 * recipient it was given is marked dsn_passed (its notices are the peer's
 * business), refused or not; one never given to it (a bad address) is not.
 * The same job to a peer without DSN: nothing is marked.
 */
static void test_dsn_passed_per_recipient(void **state)
{
	static const char *const with_dsn[] = {
	    "A",
	    "S220 peer ESMTP\r\n",
	    "REHLO client.test",
	    "S250-peer\r\n250-PIPELINING\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n",
	    "RMAIL FROM:<sender@example.net>",
	    "RRCPT TO:<a@example.org> NOTIFY=SUCCESS",
	    "RRCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.org",
	    "RDATA",
	    "S250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n",
	    "DSubject: hi\r\n\r\nhello\r\n.\r\n",
	    "S250 2.0.0 queued\r\n",
	    "RQUIT",
	    "S221 bye\r\n",
	    NULL};
	static const char *const without_dsn[] = {
	    "A",
	    "S220 peer ESMTP\r\n",
	    "REHLO client.test",
	    EHLO_PIPE,
	    "RMAIL FROM:<sender@example.net>",
	    "RRCPT TO:<a@example.org>",
	    "RRCPT TO:<b@example.org>",
	    "RDATA",
	    "S250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n",
	    "DSubject: hi\r\n\r\nhello\r\n.\r\n",
	    "S250 2.0.0 queued\r\n",
	    "RQUIT",
	    "S221 bye\r\n",
	    NULL};
	static const struct mta_rcpt r[] = {
	    {"a@example.org", SMTP_NOTIFY_SUCCESS, NULL, NULL},
	    {"b@example.org", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, "rfc822",
	     "b+x@example.org"},
	    {"c\r\nRSET@example.org", SMTP_NOTIFY_SUCCESS, NULL, NULL},
	};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(with_dsn, &port);

	dest_init(&d);
	dest_add(&d, "peer.example.org", port);
	job_init(&j, 3);
	j.rcpts = r;
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 queued");
	assert_result(&o.r[1], MTA_FAILED, 550, "5.1.1", "550 5.1.1 no such user");
	assert_result(&o.r[2], MTA_FAILED, 0, "5.1.3", "bad recipient address syntax");
	assert_int_equal(o.r[0].dsn_passed, 1);
	assert_int_equal(o.r[1].dsn_passed, 1);
	assert_int_equal(o.r[2].dsn_passed, 0);

	peer = peer_start(without_dsn, &port);
	dest_init(&d);
	dest_add(&d, "peer.example.org", port);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 queued");
	assert_int_equal(o.r[0].dsn_passed, 0);
	assert_int_equal(o.r[1].dsn_passed, 0);
	assert_int_equal(o.r[2].dsn_passed, 0);
}

/* Without PIPELINING the next command waits for the reply; all RCPTs refused: no DATA. */
static void test_no_pipelining_waits(void **state)
{
	static const char *const script[] = {"A",
	                                     "S220 peer\r\n",
	                                     "REHLO",
	                                     "S250 peer\r\n",
	                                     "RMAIL FROM:<sender@example.net>",
	                                     "N",
	                                     "S250 ok\r\n",
	                                     "RRCPT TO:<a@example.org>",
	                                     "N",
	                                     "S550 no\r\n",
	                                     "RRCPT TO:<b@example.org>",
	                                     "N",
	                                     "S450 later\r\n",
	                                     "RQUIT",
	                                     "S221 bye\r\n",
	                                     NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	dest_add(&d, "peer", port);
	job_init(&j, 2);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_FAILED, 550, "5.0.0", "550 no");
	assert_result(&o.r[1], MTA_DEFERRED, 450, "4.0.0", "450 later");
}

/* LMTP: after the dot, one reply per accepted recipient, in order. */
static void test_lmtp_per_recipient_replies(void **state)
{
	static const char *const script[] = {
	    "A",
	    "S220 lmtp\r\n",
	    "RLHLO client.test",
	    EHLO_PIPE,
	    "RMAIL",
	    "RRCPT TO:<a@",
	    "RRCPT TO:<b@",
	    "RRCPT TO:<c@",
	    "RDATA",
	    "S250 ok\r\n250 ok\r\n550 5.1.1 unknown b\r\n250 ok\r\n354 go\r\n",
	    "DSubject: hi\r\n\r\nhello\r\n.\r\n",
	    "S250 2.0.0 a saved\r\n",
	    "S452 4.2.2 c is over quota\r\n",
	    "RQUIT",
	    "S221 bye\r\n",
	    NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	d.lmtp = 1;
	dest_add(&d, "localhost", port);
	job_init(&j, 3);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 a saved");
	assert_result(&o.r[1], MTA_FAILED, 550, "5.1.1", "550 5.1.1 unknown b");
	assert_result(&o.r[2], MTA_DEFERRED, 452, "4.2.2", "452 4.2.2 c is over quota");
}

/* A 5xx greeting from every address fails; a 4xx among them defers. */
static void test_greeting_5xx(void **state)
{
	static const char *const no[] = {"A", "S554 5.7.1 go away\r\n", "E", NULL};
	static const char *const later[] = {"A", "S421 4.3.2 busy\r\n", "E", NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int p1, p2;
	pid_t a = peer_start(no, &p1), b = peer_start(no, &p2);

	dest_init(&d);
	dest_add(&d, "mx1", p1);
	dest_add(&d, "mx2", p2);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(a), 0);
	assert_int_equal(child_wait(b), 0);
	assert_result(&o.r[0], MTA_FAILED, 554, "5.7.1", "554 5.7.1 go away");
	assert_string_equal(o.remote, "mx2[127.0.0.1]");

	a = peer_start(later, &p1);
	b = peer_start(no, &p2);
	dest_init(&d);
	dest_add(&d, "mx1", p1);
	dest_add(&d, "mx2", p2);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(a), 0);
	assert_int_equal(child_wait(b), 0);
	assert_result(&o.r[0], MTA_DEFERRED, 554, "4.7.1", "554 5.7.1 go away");
}

/* EHLO refused with 5xx: HELO, and no extension is used. */
static void test_helo_fallback(void **state)
{
	static const char *const script[] = {"A",
	                                     "S220 old\r\n",
	                                     "REHLO client.test",
	                                     "S502 what\r\n",
	                                     "RHELO client.test",
	                                     "S250 old\r\n",
	                                     "RMAIL FROM:<sender@example.net>",
	                                     "N",
	                                     "S250 ok\r\n",
	                                     "RRCPT TO:<a@example.org>",
	                                     "S250 ok\r\n",
	                                     "RDATA",
	                                     "S354 go\r\n",
	                                     "DSubject: hi\r\n\r\nhello\r\n.\r\n",
	                                     "S250 ok\r\n",
	                                     "RQUIT",
	                                     "S221 bye\r\n",
	                                     NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	dest_add(&d, "old", port);
	job_init(&j, 1);
	j.ret = SMTP_RET_FULL;
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 ok");
}

/* SIZE: MAIL says the size; a message over the peer's limit fails 5.3.4 before MAIL. */
static void test_size_limit(void **state)
{
	static const char *const big[] = {
	    "A", "S220 p\r\n", "REHLO", "S250-p\r\n250 SIZE 10\r\n", "RQUIT", "S221 bye\r\n", NULL};
	static const char *const fits[] = {"A",
	                                   "S220 p\r\n",
	                                   "REHLO",
	                                   "S250-p\r\n250 SIZE 1000\r\n",
	                                   "RMAIL FROM:<sender@example.net> SIZE=22",
	                                   "S250 ok\r\n",
	                                   "RRCPT",
	                                   "S250 ok\r\n",
	                                   "RDATA",
	                                   "S354 go\r\n",
	                                   "D",
	                                   "S250 ok\r\n",
	                                   "RQUIT",
	                                   NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(big, &port);

	dest_init(&d);
	dest_add(&d, "small", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_FAILED, 0, "5.3.4",
	              "message size 22 exceeds size limit 10 of small[127.0.0.1]");

	/* Under the limit: MAIL says SIZE= (the peer checks it). */
	peer = peer_start(fits, &port);
	d.naddrs = 0;
	dest_add(&d, "small", port);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_int_equal(o.r[0].outcome, MTA_SENT);
}

/* Replies are bounded: an endless line is a protocol error, the mail waits. */
static void test_overlong_reply_line(void **state)
{
	static char longline[4200];
	static const char *script[] = {"A", "S220 p\r\n", "REHLO", NULL, "E", NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer;

	longline[0] = 'S';
	memcpy(longline + 1, "250-", 4);
	memset(longline + 5, 'x', sizeof(longline) - 8);
	memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
	script[3] = longline;
	peer = peer_start(script, &port);
	dest_init(&d);
	dest_add(&d, "chatty", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.5.0",
	              "protocol error from chatty[127.0.0.1]: reply line too long");
}

/* More than 100 lines in one reply is a protocol error too. */
static void test_too_many_reply_lines(void **state)
{
	static char many[101 * 8 + 16];
	static const char *script[] = {"A", "S220 p\r\n", "REHLO", NULL, "E", NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	size_t i, n = 0;
	int port;
	pid_t peer;

	many[n++] = 'S';
	for (i = 0; i < 101; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "250-x\r\n");
	snprintf(many + n, sizeof(many) - n, "250 x\r\n");
	script[3] = many;
	peer = peer_start(script, &port);
	dest_init(&d);
	dest_add(&d, "chatty", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.5.0", "protocol error from chatty");
}

/* No reply to RCPT: the wait ends with the command timeout, naming RCPT. */
static void test_rcpt_reply_timeout(void **state)
{
	static const char *const script[] = {"A",          "S220 p\r\n", "REHLO",
	                                     "S250 p\r\n", "RMAIL",      "S250 ok\r\n",
	                                     "RRCPT",      "W2500",      NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	d.command_timeout = 1;
	dest_add(&d, "mute", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	child_wait(peer);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.4.2",
	              "timeout waiting for the reply to RCPT from mute[127.0.0.1]");
}

/* The peer goes away in the middle of a big message: deferred, lost connection. */
static void test_lost_during_message(void **state)
{
	static const char *const script[] = {"A",     "S220 p\r\n",  "REHLO", "S250 p\r\n",
	                                     "RMAIL", "S250 ok\r\n", "RRCPT", "S250 ok\r\n",
	                                     "RDATA", "S354 go\r\n", "W200",  "C",
	                                     NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	size_t len = 8 << 20, i;
	char *big = malloc(len);
	int port;
	pid_t peer = peer_start(script, &port);

	assert_non_null(big);
	for (i = 0; i < len; i++)
		big[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : (i % 80 == 0) ? '.' : 'm';
	dest_init(&d);
	dest_add(&d, "gone", port);
	job_init(&j, 1);
	j.content = big;
	j.content_len = len;
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	free(big);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.4.2",
	              "lost connection with gone[127.0.0.1]");
}

/* Two jobs on one connection, the second sent from the callback: RSET pipelined with MAIL. */
static void test_connection_reuse(void **state)
{
	static const char *const script[] = {"A",
	                                     "S220 p\r\n",
	                                     "REHLO",
	                                     EHLO_PIPE,
	                                     "RMAIL",
	                                     "RRCPT",
	                                     "RDATA",
	                                     "S250 ok\r\n250 ok\r\n354 go\r\n",
	                                     "DSubject: hi\r\n\r\nhello\r\n.\r\n",
	                                     "S250 2.0.0 first\r\n",
	                                     "RRSET",
	                                     "RMAIL",
	                                     "RRCPT",
	                                     "RRCPT",
	                                     "RDATA",
	                                     "S250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
	                                     "DSubject: hi\r\n\r\nhello\r\n.\r\n",
	                                     "S250 2.0.0 second\r\n",
	                                     "RQUIT",
	                                     "S221 bye\r\n",
	                                     NULL};
	struct mta_dest d;
	struct mta_job j1, j2;
	struct outcome o1, o2;
	struct event_base *base = event_base_new();
	struct mta_conn *conn;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	dest_add(&d, "reuse", port);
	job_init(&j1, 1);
	job_init(&j2, 2);
	memset(&o1, 0, sizeof(o1));
	memset(&o2, 0, sizeof(o2));
	o1.n = 1;
	o2.n = 2;
	o1.next_job = &j2;
	o1.next_out = &o2;
	conn = mta_conn_new(base, &d);
	assert_false(mta_conn_reusable(conn));
	send_job(conn, &j1, &o1);
	assert_true(run_until(base, &o2.done, 10));
	assert_int_equal(o1.calls, 1);
	assert_int_equal(o2.calls, 1);
	assert_true(mta_conn_reusable(conn));
	mta_conn_close(conn);
	drain(base);
	event_base_free(base);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o1.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 first");
	assert_result(&o2.r[1], MTA_SENT, 250, "2.0.0", "250 2.0.0 second");
}

/* The peer closes an idle connection: the idle callback hears of it. */
static void test_idle_close_calls_idle_fn(void **state)
{
	static const char *const script[] = {"A",     "S220 p\r\n",          "REHLO", "S250 p\r\n",
	                                     "RMAIL", "S250 ok\r\n",         "RRCPT", "S250 ok\r\n",
	                                     "RDATA", "S354 go\r\n",         "D",     "S250 ok\r\n",
	                                     "W100",  "S421 4.4.2 idle\r\n", "C",     NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	struct event_base *base = event_base_new();
	struct mta_conn *conn;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	dest_add(&d, "idle", port);
	job_init(&j, 1);
	memset(&o, 0, sizeof(o));
	o.n = 1;
	idle_calls = 0;
	conn = mta_conn_new(base, &d);
	mta_conn_set_idle_fn(conn, on_idle, NULL);
	send_job(conn, &j, &o);
	assert_true(run_until(base, &o.done, 10));
	assert_int_equal(o.r[0].outcome, MTA_SENT);
	/* on_idle closes (frees) the connection. */
	drain(base);
	event_base_free(base);
	assert_int_equal(idle_calls, 1);
	child_wait(peer);
}

/* Closing from the done callback, and a job with no recipient, never call back from inside. */
static void test_close_from_callback(void **state)
{
	static const char *const script[] = {"A",     "S220 p\r\n",   "REHLO", "S250 p\r\n",
	                                     "RQUIT", "S221 bye\r\n", "E",     NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	struct event_base *base = event_base_new();
	struct mta_conn *conn;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	dest_add(&d, "p", port);
	job_init(&j, 1);
	j.smtputf8 = 1; /* refused without MAIL: the connection stays good */
	memset(&o, 0, sizeof(o));
	o.n = 1;
	o.close_in_cb = 1;
	conn = mta_conn_new(base, &d);
	send_job(conn, &j, &o);
	assert_true(run_until(base, &o.done, 10));
	drain(base);
	event_base_free(base);
	assert_int_equal(child_wait(peer), 0);
	assert_int_equal(o.r[0].outcome, MTA_FAILED);
}

/* AUTH PLAIN with the credentials; a refusal defers 4.7.8 (never a bounce). */
static void test_auth_plain(void **state)
{
	static const char *const ok[] = {"A",
	                                 "S220 p\r\n",
	                                 "REHLO",
	                                 "S250-p\r\n250 AUTH LOGIN PLAIN\r\n",
	                                 "RAUTH PLAIN AGJvYgBzZWNyZXQ=",
	                                 "S235 2.7.0 ok\r\n",
	                                 "RMAIL",
	                                 "S250 ok\r\n",
	                                 "RRCPT",
	                                 "S250 ok\r\n",
	                                 "RDATA",
	                                 "S354 go\r\n",
	                                 "D",
	                                 "S250 ok\r\n",
	                                 "RQUIT",
	                                 NULL};
	static const char *const no[] = {"A",
	                                 "S220 p\r\n",
	                                 "REHLO",
	                                 "S250-p\r\n250 AUTH PLAIN\r\n",
	                                 "RAUTH PLAIN AGJvYgBzZWNyZXQ=",
	                                 "S535 5.7.8 bad credentials\r\n",
	                                 "E",
	                                 NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(ok, &port);

	dest_init(&d);
	d.auth_user = "bob";
	d.auth_password = "secret";
	dest_add(&d, "relay", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_int_equal(o.r[0].outcome, MTA_SENT);

	peer = peer_start(no, &port);
	d.naddrs = 0;
	dest_add(&d, "relay", port);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_DEFERRED, 535, "4.7.8", "535 5.7.8 bad credentials");
}

/* AUTH LOGIN when PLAIN is not offered; no mechanism at all defers. */
static void test_auth_login(void **state)
{
	static const char *const ok[] = {"A",           "S220 p\r\n",
	                                 "REHLO",       "S250-p\r\n250 AUTH LOGIN\r\n",
	                                 "RAUTH LOGIN", "S334 VXNlcm5hbWU6\r\n",
	                                 "RYm9i",       "S334 UGFzc3dvcmQ6\r\n",
	                                 "Rc2VjcmV0",   "S235 ok\r\n",
	                                 "RMAIL",       "S451 not now\r\n",
	                                 "RQUIT",       NULL};
	static const char *const none[] = {
	    "A", "S220 p\r\n", "REHLO", "S250-p\r\n250 AUTH CRAM-MD5\r\n", "E", NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(ok, &port);

	dest_init(&d);
	d.auth_user = "bob";
	d.auth_password = "secret";
	dest_add(&d, "relay", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_DEFERRED, 451, "4.0.0", "451 not now");

	peer = peer_start(none, &port);
	d.naddrs = 0;
	dest_add(&d, "relay", port);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.7.8", "no usable AUTH mechanism");
}

/* STARTTLS with a verified certificate, then EHLO again inside TLS. */
static void test_starttls_verified(void **state)
{
	static const char *const script[] = {"A",
	                                     "S220 p\r\n",
	                                     "REHLO client.test",
	                                     "S250-p\r\n250-STARTTLS\r\n250 PIPELINING\r\n",
	                                     "RSTARTTLS",
	                                     "S220 go ahead\r\n",
	                                     "T",
	                                     "REHLO client.test",
	                                     "S250-p\r\n250 PIPELINING\r\n",
	                                     "RMAIL",
	                                     "RRCPT",
	                                     "RDATA",
	                                     "S250 ok\r\n250 ok\r\n354 go\r\n",
	                                     "DSubject: hi\r\n\r\nhello\r\n.\r\n",
	                                     "S250 2.0.0 over tls\r\n",
	                                     "RQUIT",
	                                     "S221 bye\r\n",
	                                     NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	d.tls = CLIENT_TLS_ENCRYPT;
	d.tls_verify = 1;
	d.ca_file = ca_path;
	dest_add(&d, "localhost", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 over tls");
}

/* A certificate for another name: deferred 4.7.5, the message is not sent. */
static void test_starttls_wrong_name_defers(void **state)
{
	static const char *const script[] = {
	    "A",         "S220 p\r\n",        "REHLO", "S250-p\r\n250 STARTTLS\r\n",
	    "RSTARTTLS", "S220 go ahead\r\n", "t",     NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	d.tls = CLIENT_TLS_ENCRYPT;
	d.tls_verify = 1;
	d.tls_name = "mx.other.example";
	d.ca_file = ca_path;
	dest_add(&d, "localhost", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	child_wait(peer);
	assert_result(&o.r[0], MTA_DEFERRED, 0, "4.7.5", "TLS handshake with localhost");
	assert_non_null(strstr(o.r[0].reply, "certificate verification failed"));
}

/* TLS from the first byte (port 465 style). */
static void test_implicit_tls(void **state)
{
	static const char *const script[] = {"A",
	                                     "T",
	                                     "S220 tls\r\n",
	                                     "REHLO",
	                                     "S250 p\r\n",
	                                     "RMAIL",
	                                     "S250 ok\r\n",
	                                     "RRCPT",
	                                     "S250 ok\r\n",
	                                     "RDATA",
	                                     "S354 go\r\n",
	                                     "DSubject: hi\r\n\r\nhello\r\n.\r\n",
	                                     "S250 2.0.0 implicit\r\n",
	                                     "RQUIT",
	                                     "S221 bye\r\n",
	                                     NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	d.tls = CLIENT_TLS_IMPLICIT;
	d.tls_verify = 1;
	d.ca_file = ca_path;
	dest_add(&d, "localhost", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 implicit");
}

/* MAY: a failed handshake reconnects to the same address and stays in plaintext. */
static void test_may_falls_back_to_plaintext(void **state)
{
	static const char *const script[] = {"A",
	                                     "S220 p\r\n",
	                                     "REHLO",
	                                     "S250-p\r\n250 STARTTLS\r\n",
	                                     "RSTARTTLS",
	                                     "S220 go ahead\r\n",
	                                     "Snot tls at all\r\n",
	                                     "A",
	                                     "S220 p\r\n",
	                                     "REHLO",
	                                     "S250-p\r\n250 STARTTLS\r\n",
	                                     "RMAIL",
	                                     "S250 ok\r\n",
	                                     "RRCPT",
	                                     "S250 ok\r\n",
	                                     "RDATA",
	                                     "S354 go\r\n",
	                                     "D",
	                                     "S250 2.0.0 plain\r\n",
	                                     "RQUIT",
	                                     NULL};
	struct mta_dest d;
	struct mta_job j;
	struct outcome o;
	int port;
	pid_t peer = peer_start(script, &port);

	dest_init(&d);
	d.tls = CLIENT_TLS_MAY;
	dest_add(&d, "localhost", port);
	job_init(&j, 1);
	deliver(&d, &j, &o, 10);
	assert_int_equal(child_wait(peer), 0);
	assert_result(&o.r[0], MTA_SENT, 250, "2.0.0", "250 2.0.0 plain");
}

/* ---- setup -------------------------------------------------------------- */

static int group_setup(void **state)
{
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	/* VSMTPD_TEST_DEBUG=1 shows the dialogues. */
	if (getenv("VSMTPD_TEST_DEBUG") != NULL)
		log_open(LOG_TARGET_STDERR, LOG_DEBUG, LOG_MAIL);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vsmtpd-client-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	chmod(tmpdir, 0755);
	cert_make();
	if (mta_tls_init(ca_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

/* group_teardown - remove what the tests left in tmpdir. */
static int group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return -1;
	EVP_PKEY_free(tls_key);
	X509_free(tls_cert);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sink_delivery_is_exact),
	    cmocka_unit_test(test_sink_no_8bitmime_no_params),
	    cmocka_unit_test(test_sink_smtputf8_not_offered_fails),
	    cmocka_unit_test(test_sink_without_pipelining),
	    cmocka_unit_test(test_sink_rcpt_refused),
	    cmocka_unit_test(test_sink_dot_refused),
	    cmocka_unit_test(test_sink_fallback_after_refused),
	    cmocka_unit_test(test_all_refused_defers),
	    cmocka_unit_test(test_greeting_timeout),
	    cmocka_unit_test(test_sink_lmtp_unix),
	    cmocka_unit_test(test_sink_tls_required_not_offered),
	    cmocka_unit_test(test_pipelined_mixed_rcpts),
	    cmocka_unit_test(test_dsn_passed_per_recipient),
	    cmocka_unit_test(test_no_pipelining_waits),
	    cmocka_unit_test(test_lmtp_per_recipient_replies),
	    cmocka_unit_test(test_greeting_5xx),
	    cmocka_unit_test(test_helo_fallback),
	    cmocka_unit_test(test_size_limit),
	    cmocka_unit_test(test_overlong_reply_line),
	    cmocka_unit_test(test_too_many_reply_lines),
	    cmocka_unit_test(test_rcpt_reply_timeout),
	    cmocka_unit_test(test_lost_during_message),
	    cmocka_unit_test(test_connection_reuse),
	    cmocka_unit_test(test_idle_close_calls_idle_fn),
	    cmocka_unit_test(test_close_from_callback),
	    cmocka_unit_test(test_auth_plain),
	    cmocka_unit_test(test_auth_login),
	    cmocka_unit_test(test_starttls_verified),
	    cmocka_unit_test(test_starttls_wrong_name_defers),
	    cmocka_unit_test(test_implicit_tls),
	    cmocka_unit_test(test_may_falls_back_to_plaintext),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
