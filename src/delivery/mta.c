/*
 * mta.c - the SMTP and LMTP client of the delivery worker.
 *
 * A connection is one state machine on the worker's libevent loop. Every
 * reply is read whole (bounded: 2048 bytes a line, 100 lines) before it is
 * handed to the state it answers; a transaction's replies are matched to
 * its commands by order, which is what lets MAIL, the RCPTs and DATA go out
 * in one write when the peer offers PIPELINING (RFC 2920).
 *
 * Outcomes are set per recipient as soon as they are known (a refused RCPT,
 * a refused MAIL for all) and whatever is left when the connection fails
 * gets the local reason, so every recipient ends with exactly one outcome.
 * The caller's callback always runs from an event of its own, never from
 * inside a call into this module, and this module touches nothing of the
 * connection after calling it: the callback may send, close or free.
 *
 * With CLIENT_TLS_MAY a failed STARTTLS handshake is not the end: like
 * Postfix, the client connects to the same address again and stays in
 * plaintext there. Message content is written by reference to the job's
 * buffer, dot-stuffed on the fly, 64 KiB at a time.
 *
 * This file holds the connection: connecting, TLS, the end of a job and
 * failures, the interface; mta_reply.c reads the replies and takes the
 * connection's events, mta_transaction.c writes the commands and keeps
 * the results (see mta_internal.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "mta.h"
#include "mta_internal.h"
#include "smtp_parse.h"
#include "tls_server.h"

static SSL_CTX *mta_ctx;
static char mta_ctx_ca[PATH_MAX];

static void mta_connect_next(struct mta_conn *c);

/* ---- small helpers ------------------------------------------------------ */

/* mta_strdup - a copy of s, NULL for NULL; out of memory is fatal. */
static char *mta_strdup(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		fatal("smtp client: out of memory");
	return d;
}

/* mta_set - whether an optional string is given. */
int mta_set(const char *s)
{
	return s != NULL && *s != '\0';
}

/* mta_is_ip_literal - whether name is an address, not a host name. */
static int mta_is_ip_literal(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];
	char tmp[256];
	size_t n = strlen(name);

	if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
		if (n - 2 >= sizeof(tmp))
			return 1;
		memcpy(tmp, name + 1, n - 2);
		tmp[n - 2] = '\0';
		name = strncasecmp(tmp, "IPv6:", 5) == 0 ? tmp + 5 : tmp;
	}
	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* mta_addr_text - the address of sa as text, its port in *port. */
static void mta_addr_text(const struct sockaddr_storage *sa, char *buf, size_t len, unsigned *port)
{
	buf[0] = '\0';
	*port = 0;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)len);
		*port = ntohs(in->sin_port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(in6->sin6_port);
	}
}

/* mta_is_local - a unix socket or a loopback address: AUTH needs no TLS there. */
int mta_is_local(const struct mta_conn *c)
{
	const struct sockaddr_storage *sa;

	if (mta_set(c->dest.unix_path))
		return 1;
	sa = &c->dest.addrs[c->addr].sa;
	if (sa->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return 0;
}

/* mta_naddrs - how many addresses the destination has to try. */
static size_t mta_naddrs(const struct mta_conn *c)
{
	return mta_set(c->dest.unix_path) ? 1 : c->dest.naddrs;
}

/* ---- the connection's plumbing ------------------------------------------ */

/* mta_wait - arm the deadline of the current wait. */
void mta_wait(struct mta_conn *c, unsigned seconds)
{
	struct timeval tv = {seconds > 0 ? (time_t)seconds : 1, 0};

	evtimer_add(c->timer, &tv);
}

/* mta_teardown - drop the connection (socket, TLS, connect in progress). */
static void mta_teardown(struct mta_conn *c)
{
	if (c->bev != NULL) {
		struct evbuffer *out = bufferevent_get_output(c->bev);

		/* libevent frees a bufferevent only once its pending deferred
		 * callbacks have run; until then it could still write. Its
		 * output may reference the job's message, which the caller
		 * frees after the done callback: nothing of it may stay. */
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		evbuffer_drain(out, evbuffer_get_length(out));
		bufferevent_free(c->bev);
	}
	c->bev = NULL;
	if (c->connect_ev != NULL)
		event_free(c->connect_ev);
	c->connect_ev = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->gen++;
	evtimer_del(c->timer);
	c->tls_active = 0;
	c->authed = 0;
	c->peer_closing = 0;
	c->reply.nlines = 0;
	c->state = MTA_S_DEAD;
}

/* mta_job_clear - forget the job's bookkeeping (not the results). */
static void mta_job_clear(struct mta_conn *c)
{
	free(c->rstate);
	free(c->sent);
	c->rstate = NULL;
	c->sent = NULL;
	c->job = NULL;
	c->fn = NULL;
	c->fn_arg = NULL;
}

/* mta_conn_free - release everything; the connection is gone. */
void mta_conn_free(struct mta_conn *c)
{
	mta_teardown(c);
	event_free(c->timer);
	event_free(c->finish_ev);
	mta_job_clear(c);
	free(c->results);
	if (c->own_ctx != NULL)
		SSL_CTX_free(c->own_ctx);
	free((char *)c->dest.unix_path);
	free((char *)c->dest.tls_name);
	free((char *)c->dest.ca_file);
	free((char *)c->dest.auth_user);
	if (c->dest.auth_password != NULL) {
		OPENSSL_cleanse((char *)c->dest.auth_password, strlen(c->dest.auth_password));
		free((char *)c->dest.auth_password);
	}
	free((char *)c->dest.helo_name);
	free(c);
}

/* mta_cmd - write one command line; shown at debug unless secret. */
void mta_cmd(struct mta_conn *c, int secret, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char *line;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("smtp client: out of memory");
	evbuffer_add(out, line, (size_t)n);
	evbuffer_add(out, "\r\n", 2);
	if (secret)
		log_debug("%s: > (AUTH data, not logged)", c->remote);
	else
		log_debug("%s: > %s", c->remote, line);
	OPENSSL_cleanse(line, (size_t)n);
	free(line);
}

/* mta_wait_name - what the current wait is for, for messages. */
const char *mta_wait_name(const struct mta_conn *c)
{
	size_t step;

	switch (c->state) {
	case MTA_S_GREETING:
		return "the greeting";
	case MTA_S_EHLO:
		return c->dest.lmtp ? "the reply to LHLO" : "the reply to EHLO";
	case MTA_S_HELO:
		return "the reply to HELO";
	case MTA_S_STARTTLS:
		return "the reply to STARTTLS";
	case MTA_S_AUTH:
		return "the reply to AUTH";
	case MTA_S_TX:
		step = c->tx_replied - (size_t)c->tx_rset;
		if (c->tx_rset && c->tx_replied == 0)
			return "the reply to RSET";
		if (step == 0)
			return "the reply to MAIL";
		return step <= c->nsent ? "the reply to RCPT" : "the reply to DATA";
	case MTA_S_DOT:
	case MTA_S_DOT_ABORT:
		return "the reply to the end of the message";
	case MTA_S_QUIT:
		return "the reply to QUIT";
	default:
		return "a reply";
	}
}

/* mta_fail - the current wait failed for a local reason. */
void mta_fail(struct mta_conn *c, const char *enhanced, const char *fmt, ...)
{
	struct mta_result r;
	va_list ap;

	va_start(ap, fmt);
	mta_result_local(&r, MTA_DEFERRED, enhanced, fmt, ap);
	va_end(ap);
	log_debug("%s: %s", c->remote, r.reply);
	mta_fail_result(c, &r, 0);
}

/* mta_fail_reply - the current wait failed on the peer's reply. */
void mta_fail_reply(struct mta_conn *c, const char *enhanced)
{
	struct mta_result r;
	int perm =
	    c->reply.code >= 500 && (c->state == MTA_S_GREETING || c->state == MTA_S_HELO ||
	                             (c->state == MTA_S_EHLO && c->dest.lmtp));

	mta_result_reply(c, &r, mta_outcome_of(c->reply.code), enhanced);
	mta_fail_result(c, &r, perm);
}

/* ---- connecting --------------------------------------------------------- */

/* mta_attempt_fail - this address did not work out: the next one, or the end. */
static void mta_attempt_fail(struct mta_conn *c, const struct mta_result *r, int perm)
{
	c->last = *r;
	if (!perm)
		c->all_5xx = 0;
	else if (c->all_5xx < 0)
		c->all_5xx = 1;
	mta_teardown(c);
	if (c->plain_retry == 1) {
		c->plain_retry = 2;
		log_info("%s: TLS failed, trying again without TLS", c->remote);
	} else {
		c->plain_retry = 0;
		c->addr++;
	}
	mta_connect_next(c);
}

/* mta_attempt_exhausted - no address is left: the job ends with the last reason. */
static void mta_attempt_exhausted(struct mta_conn *c)
{
	struct mta_result r = c->last;

	if (r.reply[0] == '\0')
		snprintf(r.reply, sizeof(r.reply), "no address to connect to");
	r.outcome = c->all_5xx == 1 ? MTA_FAILED : MTA_DEFERRED;
	if (r.enhanced[0] == '\0')
		snprintf(r.enhanced, sizeof(r.enhanced), "4.4.1");
	mta_result_fix(&r);
	mta_rcpt_set_all(c, &r);
	mta_job_finish(c, 0);
}

/* mta_bev_setup - c->bev is the new way to the peer: callbacks, reading on. */
static void mta_bev_setup(struct mta_conn *c)
{
	c->gen++;
	bufferevent_setcb(c->bev, mta_read_cb, mta_write_cb, mta_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* mta_tls_name - the name for SNI and verification ("" for none). */
static const char *mta_tls_name(const struct mta_conn *c)
{
	if (mta_set(c->dest.tls_name))
		return c->dest.tls_name;
	if (mta_set(c->dest.unix_path))
		return "";
	return c->dest.addrs[c->addr].host;
}

/* mta_tls_fail - TLS did not come up: MAY tries plaintext, the rest defers. */
void mta_tls_fail(struct mta_conn *c, const char *fmt, ...)
{
	struct mta_result r;
	va_list ap;

	va_start(ap, fmt);
	mta_result_local(&r, MTA_DEFERRED, "4.7.5", fmt, ap);
	va_end(ap);
	log_info("%s", r.reply);
	if (c->dest.tls == CLIENT_TLS_MAY && c->plain_retry == 0)
		c->plain_retry = 1;
	mta_fail_result(c, &r, 0);
}

/* mta_tls_start - put TLS over the connection and start the handshake. */
void mta_tls_start(struct mta_conn *c)
{
	const char *name = mta_tls_name(c);
	struct bufferevent *tls_bev;
	char err[256];
	SSL_CTX *ctx;
	SSL *ssl;

	if ((ctx = mta_conn_ctx(c, err, sizeof(err))) == NULL) {
		mta_tls_fail(c, "cannot use TLS with %s: %s", c->remote, err);
		return;
	}
	if ((ssl = SSL_new(ctx)) == NULL)
		fatal("smtp client: cannot start TLS: %s",
		      tls_error_text(err, sizeof(err), "out of memory"));
	if (*name != '\0' && !mta_is_ip_literal(name))
		SSL_set_tlsext_host_name(ssl, name);
	if (c->dest.tls_verify) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (*name != '\0' && mta_is_ip_literal(name))
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
		else if (*name != '\0')
			SSL_set1_host(ssl, name);
	} else {
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	}
	/* Deferred callbacks: the TLS layer would otherwise call back from
	 * inside a write of ours. On failure libevent has freed the SSL and
	 * perhaps the socket's bufferevent: nothing is left to talk through. */
	tls_bev = bufferevent_openssl_filter_new(c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tls_bev == NULL)
		fatal("smtp client: cannot start TLS: %s",
		      tls_error_text(err, sizeof(err), "out of memory"));
	bufferevent_openssl_set_allow_dirty_shutdown(tls_bev, 1);
	c->bev = tls_bev;
	mta_bev_setup(c);
	c->state = MTA_S_HANDSHAKE;
	mta_wait(c, c->dest.command_timeout);
}

/* mta_tls_failed_text - why the handshake on bev failed. */
void mta_tls_failed_text(struct mta_conn *c, char *buf, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	unsigned long e, first = 0;
	long v;

	while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
		if (first == 0)
			first = e;
	if (c->dest.tls_verify && ssl != NULL && (v = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(buf, len, "certificate verification failed: %s",
		         X509_verify_cert_error_string(v));
		return;
	}
	if (first != 0)
		ERR_error_string_n(first, buf, len);
	else
		snprintf(buf, len, "the connection was closed");
	ERR_clear_error();
}

/* mta_connected - the transport is up: TLS at once, or wait for the greeting. */
static void mta_connected(struct mta_conn *c)
{
	c->bev =
	    bufferevent_socket_new(c->base, c->fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL)
		fatal("smtp client: out of memory");
	c->fd = -1;
	mta_bev_setup(c);
	log_debug("%s: connected", c->remote);
	if (c->dest.tls == CLIENT_TLS_IMPLICIT) {
		mta_tls_start(c);
		return;
	}
	c->state = MTA_S_GREETING;
	mta_wait(c, c->dest.command_timeout);
}

/* mta_connect_cb - the non-blocking connect finished or timed out. */
static void mta_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mta_conn *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	event_free(c->connect_ev);
	c->connect_ev = NULL;
	if (what & EV_TIMEOUT) {
		mta_fail(c, "4.4.1", "connect to %s: Connection timed out", c->where);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		mta_fail(c, "4.4.1", "connect to %s: %s", c->where, strerror(err));
		return;
	}
	mta_connected(c);
}

/* mta_connect_addr - where to connect: the socket address and its name for messages. */
static int mta_connect_addr(struct mta_conn *c, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char *where = c->where;
	size_t wlen = sizeof(c->where);
	const struct mta_addr *a;
	char text[INET6_ADDRSTRLEN];
	unsigned port;

	if (mta_set(c->dest.unix_path)) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;

		snprintf(c->remote, sizeof(c->remote), "%s", c->dest.unix_path);
		snprintf(where, wlen, "%s", c->dest.unix_path);
		if (strlen(c->dest.unix_path) >= sizeof(un->sun_path))
			return -1;
		memset(un, 0, sizeof(*un));
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, c->dest.unix_path, strlen(c->dest.unix_path));
		*sslen = (socklen_t)sizeof(*un);
		return 0;
	}
	a = &c->dest.addrs[c->addr];
	mta_addr_text(&a->sa, text, sizeof(text), &port);
	snprintf(c->remote, sizeof(c->remote), "%s[%s]", a->host, text);
	snprintf(where, wlen, "%s:%u", c->remote, port);
	if (a->salen == 0 || a->salen > sizeof(*ss) ||
	    (a->sa.ss_family != AF_INET && a->sa.ss_family != AF_INET6))
		return -1;
	memcpy(ss, &a->sa, a->salen);
	*sslen = a->salen;
	return 0;
}

/* mta_connect_start - begin connecting to the current address; -1 when it failed at once. */
static int mta_connect_start(struct mta_conn *c)
{
	struct sockaddr_storage ss;
	struct timeval tv = {c->dest.connect_timeout > 0 ? (time_t)c->dest.connect_timeout : 1, 0};
	struct mta_result r;
	socklen_t sslen = 0;
	int fd;

	c->said[0] = '\0';
	c->state = MTA_S_CONNECTING;
	memset(&ss, 0, sizeof(ss));
	if (mta_connect_addr(c, &ss, &sslen) < 0) {
		errno = EINVAL;
		goto failed;
	}
	log_debug("connecting to %s", c->where);
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto failed;
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0 && errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		errno = e;
		goto failed;
	}
	c->fd = fd;
	c->connect_ev = event_new(c->base, fd, EV_WRITE, mta_connect_cb, c);
	if (c->connect_ev == NULL)
		fatal("smtp client: out of memory");
	event_add(c->connect_ev, &tv);
	return 0;
failed:
	memset(&r, 0, sizeof(r));
	r.outcome = MTA_DEFERRED;
	snprintf(r.enhanced, sizeof(r.enhanced), "4.4.1");
	snprintf(r.reply, sizeof(r.reply), "connect to %s: %s", c->where, strerror(errno));
	log_debug("%s", r.reply);
	c->last = r;
	c->all_5xx = 0;
	c->state = MTA_S_DEAD;
	return -1;
}

/* mta_connect_next - connect to this address or a later one; past the last, the job fails. */
static void mta_connect_next(struct mta_conn *c)
{
	memset(&c->ext, 0, sizeof(c->ext));
	for (; c->addr < mta_naddrs(c); c->addr++, c->plain_retry = 0)
		if (mta_connect_start(c) == 0)
			return;
	mta_attempt_exhausted(c);
}

/* ---- job end, idle, failure dispatch ------------------------------------ */

/* mta_job_finish - every recipient has its outcome: hand them over from an event. */
void mta_job_finish(struct mta_conn *c, int keep)
{
	struct mta_result r;
	size_t i;

	/* Every recipient has one outcome, whatever path led here. */
	memset(&r, 0, sizeof(r));
	r.outcome = MTA_DEFERRED;
	snprintf(r.enhanced, sizeof(r.enhanced), "4.4.2");
	snprintf(r.reply, sizeof(r.reply), "no reply from %s", c->remote);
	for (i = 0; i < c->job->nrcpts; i++) {
		mta_rcpt_set(c, i, &r);
		c->results[i].dsn_passed = (c->rstate[i] & MTA_R_DSN) != 0;
	}
	if (c->peer_closing || c->bev == NULL)
		keep = 0;
	if (keep) {
		c->state = MTA_S_READY;
		evtimer_del(c->timer);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	} else {
		mta_teardown(c);
	}
	event_active(c->finish_ev, EV_TIMEOUT, 1);
}

/* mta_finish_cb - call the job's callback; nothing of c is touched after it. */
static void mta_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mta_conn *c = arg;
	struct mta_result *results = c->results;
	mta_done_fn fn = c->fn;
	void *fn_arg = c->fn_arg;
	char remote[sizeof(c->said)];

	memcpy(remote, c->said, sizeof(remote));
	c->results = NULL;
	mta_job_clear(c);
	fn(fn_arg, c, results, remote);
	free(results);
}

/* mta_idle_broken - the peer closed or broke an idle connection. */
void mta_idle_broken(struct mta_conn *c)
{
	int had_job = c->job != NULL;

	log_debug("%s: connection closed while idle", c->remote);
	mta_teardown(c);
	/* Last: the idle callback may close (free) the connection. */
	if (!had_job && c->idle_fn != NULL)
		c->idle_fn(c->idle_arg, c);
}

/* mta_fail_result - the current wait failed with r: what that means depends on the state. */
void mta_fail_result(struct mta_conn *c, const struct mta_result *r, int perm)
{
	switch (c->state) {
	case MTA_S_CONNECTING:
	case MTA_S_HANDSHAKE:
	case MTA_S_GREETING:
	case MTA_S_EHLO:
	case MTA_S_HELO:
	case MTA_S_STARTTLS:
	case MTA_S_AUTH:
		mta_attempt_fail(c, r, perm);
		break;
	case MTA_S_TX:
	case MTA_S_CONTENT:
	case MTA_S_DOT:
	case MTA_S_DOT_ABORT:
		mta_tx_fail(c, r);
		break;
	case MTA_S_READY:
		mta_idle_broken(c);
		break;
	case MTA_S_QUIT:
		mta_conn_free(c);
		break;
	case MTA_S_NEW:
	case MTA_S_DEAD:
		break;
	}
}

/* ---- TLS context -------------------------------------------------------- */

/* mta_ctx_new - a client context with the CA store of ca_file (or the system's). */
static SSL_CTX *mta_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int ok;

	if (ctx == NULL) {
		tls_error_text(err, errlen, "cannot make a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (mta_set(ca_file))
		ok = SSL_CTX_load_verify_locations(ctx, ca_file, NULL);
	else
		ok = SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		char why[200];

		snprintf(err, errlen, "cannot load the CA certificates of %s: %s",
		         mta_set(ca_file) ? ca_file : "the system",
		         tls_error_text(why, sizeof(why), "unknown error"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* mta_tls_init - make the shared client TLS context; 0 or -1 with err. */
int mta_tls_init(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = mta_ctx_new(ca_file, err, errlen);

	if (ctx == NULL)
		return -1;
	/* Connections under way keep a reference to the old one. */
	if (mta_ctx != NULL)
		SSL_CTX_free(mta_ctx);
	mta_ctx = ctx;
	snprintf(mta_ctx_ca, sizeof(mta_ctx_ca), "%s",
	         ca_file != NULL ? ca_file : "");
	return 0;
}

/* mta_conn_ctx - the TLS context for this destination, made when first needed. */
SSL_CTX *mta_conn_ctx(struct mta_conn *c, char *err, size_t errlen)
{
	const char *ca = c->dest.ca_file != NULL ? c->dest.ca_file : "";

	if (mta_ctx != NULL && strcmp(ca, mta_ctx_ca) == 0)
		return mta_ctx;
	if (mta_ctx == NULL && *ca == '\0') {
		if (mta_tls_init(ca, err, errlen) < 0)
			return NULL;
		return mta_ctx;
	}
	/* A destination with a CA file of its own: a context for it alone. */
	if (c->own_ctx == NULL)
		c->own_ctx = mta_ctx_new(ca, err, errlen);
	return c->own_ctx;
}

/* ---- the interface ------------------------------------------------------ */

/* mta_conn_new - a connection object for dest (copied); it connects on its first job. */
struct mta_conn *mta_conn_new(struct event_base *base, const struct mta_dest *dest)
{
	struct mta_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		fatal("smtp client: out of memory");
	c->base = base;
	c->dest = *dest;
	if (c->dest.naddrs > MTA_MAX_ADDRS)
		c->dest.naddrs = MTA_MAX_ADDRS;
	c->dest.unix_path = mta_strdup(dest->unix_path);
	c->dest.tls_name = mta_strdup(dest->tls_name);
	c->dest.ca_file = mta_strdup(dest->ca_file);
	c->dest.auth_user = mta_strdup(dest->auth_user);
	c->dest.auth_password = mta_strdup(dest->auth_password);
	c->dest.helo_name = mta_strdup(mta_set(dest->helo_name) ? dest->helo_name : "localhost");
	c->fd = -1;
	c->state = MTA_S_NEW;
	c->timer = evtimer_new(base, mta_timer_cb, c);
	c->finish_ev = event_new(base, -1, 0, mta_finish_cb, c);
	if (c->timer == NULL || c->finish_ev == NULL)
		fatal("smtp client: out of memory");
	return c;
}

/* mta_conn_send - deliver job on conn; fn is called exactly once, never from inside this call. */
void mta_conn_send(struct mta_conn *conn, const struct mta_job *job,
                    mta_done_fn fn, void *arg)
{
	struct mta_conn *c = conn;

	if (c->job != NULL || c->state == MTA_S_QUIT)
		fatal("smtp client: a job given to a busy or closed connection");
	c->job = job;
	c->fn = fn;
	c->fn_arg = arg;
	c->results = calloc(job->nrcpts > 0 ? job->nrcpts : 1, sizeof(*c->results));
	c->rstate = calloc(job->nrcpts > 0 ? job->nrcpts : 1, 1);
	c->sent = calloc(job->nrcpts > 0 ? job->nrcpts : 1, sizeof(*c->sent));
	if (c->results == NULL || c->rstate == NULL || c->sent == NULL)
		fatal("smtp client: out of memory");
	c->nsent = c->naccepted = 0;
	if (job->nrcpts == 0) {
		event_active(c->finish_ev, EV_TIMEOUT, 1);
		return;
	}
	if (c->state == MTA_S_READY && c->bev != NULL) {
		mta_tx_begin(c);
		return;
	}
	/* Never connected, or the connection went: start over. */
	mta_teardown(c);
	c->addr = 0;
	c->plain_retry = 0;
	c->all_5xx = -1;
	c->used = 0;
	memset(&c->last, 0, sizeof(c->last));
	mta_connect_next(c);
}

/* mta_conn_reusable - whether conn may take another job. */
int mta_conn_reusable(const struct mta_conn *conn)
{
	return conn->state == MTA_S_READY && conn->bev != NULL && conn->job == NULL &&
	       !conn->peer_closing;
}

/* mta_conn_set_idle_fn - fn(arg, conn) when an idle connection breaks. */
void mta_conn_set_idle_fn(struct mta_conn *conn, void (*fn)(void *arg, struct mta_conn *conn),
                           void *arg)
{
	conn->idle_fn = fn;
	conn->idle_arg = fn != NULL ? arg : NULL;
}

/* mta_conn_close - QUIT when connected and idle, then free conn in the background. */
void mta_conn_close(struct mta_conn *conn)
{
	struct mta_conn *c = conn;
	struct timeval tv = {MTA_QUIT_WAIT, 0};

	if (c->state != MTA_S_READY || c->bev == NULL || c->job != NULL) {
		mta_conn_free(c);
		return;
	}
	event_del(c->finish_ev);
	c->idle_fn = NULL;
	mta_cmd(c, 0, "QUIT");
	c->state = MTA_S_QUIT;
	if (c->dest.command_timeout > 0 && c->dest.command_timeout < MTA_QUIT_WAIT)
		tv.tv_sec = c->dest.command_timeout;
	evtimer_add(c->timer, &tv);
}
