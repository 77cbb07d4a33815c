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
#include "smtp_parse.h"
#include "tls_server.h"

#define MTA_LINE_MAX 2048    /* the longest reply line taken */
#define MTA_REPLY_LINES 100  /* the most lines in one reply */
#define MTA_FEED_CHUNK 65536 /* message bytes queued at a time */
#define MTA_WRITE_LOW 16384  /* queue more message once the output is below this */
#define MTA_QUIT_WAIT 5      /* seconds for the reply to QUIT at most */
/* "host[addr]": a whole mta_addr host, an address in brackets, the NUL. */
#define MTA_REMOTE_MAX (sizeof(((struct mta_addr *)0)->host) + INET6_ADDRSTRLEN + 2)

enum mta_state {
	MTA_S_NEW,        /* never connected */
	MTA_S_CONNECTING, /* TCP or unix connect under way */
	MTA_S_HANDSHAKE,  /* TLS handshake (implicit or after STARTTLS) */
	MTA_S_GREETING,
	MTA_S_EHLO, /* or LHLO */
	MTA_S_HELO,
	MTA_S_STARTTLS,
	MTA_S_AUTH,
	MTA_S_READY,     /* session up, no transaction */
	MTA_S_TX,        /* replies to [RSET] MAIL RCPT... DATA */
	MTA_S_CONTENT,   /* writing the message */
	MTA_S_DOT,       /* replies to the final dot */
	MTA_S_DOT_ABORT, /* the reply to a lone dot after a 354 with no recipient */
	MTA_S_QUIT,      /* closing: the caller forgot the connection */
	MTA_S_DEAD,      /* connection gone; a new job connects again */
};

/* What a reply answers during a transaction. */
enum mta_step { MTA_STEP_RSET, MTA_STEP_MAIL, MTA_STEP_RCPT, MTA_STEP_DATA };

/* Per recipient of the job under way. */
#define MTA_R_SET 0x1      /* results[i] holds its outcome */
#define MTA_R_ACCEPTED 0x2 /* RCPT got 2xx: waits for the final dot */
#define MTA_R_DSN 0x4      /* its RCPT carried the DSN parameters to a peer offering DSN */

/* The peer's service extensions, from its last EHLO/LHLO reply. */
struct mta_ext {
	int pipelining;
	int starttls;
	int auth_plain;
	int auth_login;
	int eightbitmime;
	int smtputf8;
	int dsn;
	int enhancedstatuscodes;
	int size;                    /* SIZE announced */
	unsigned long long size_max; /* its limit, 0 for none */
};

/* The reply being read. */
struct mta_reply {
	int code;
	unsigned nlines;
	char enhanced[16];
	char text[MTA_REPLY_MAX]; /* "550 5.1.1 ...", lines joined */
	size_t len;
};

struct mta_conn {
	struct event_base *base;
	struct mta_dest dest; /* its strings are ours */
	enum mta_state state;
	struct bufferevent *bev;
	unsigned gen; /* bumped when bev changes: a read loop on the old one stops */
	int fd;       /* while connecting */
	struct event *connect_ev;
	struct event *timer;     /* the deadline of the current wait */
	struct event *finish_ev; /* runs the done callback */

	/* the attempt: addresses in order */
	size_t addr;
	int plain_retry;                /* 1: MAY's handshake failed, 2: at it again without TLS */
	int all_5xx;                    /* -1 no failure yet, 1 every failure was a 5xx, 0 not */
	struct mta_result last; /* why the last attempt failed */
	char remote[MTA_REMOTE_MAX];   /* "host[addr]" of the address tried */
	char said[MTA_REMOTE_MAX];     /* the same once it replied */
	char where[MTA_REMOTE_MAX + 16]; /* "host[addr]:port" or the socket's path, for connect errors */

	/* the session */
	struct mta_ext ext, ext_new;
	int tls_active;
	int authed;
	int auth_login; /* AUTH LOGIN rather than PLAIN */
	int auth_step;
	int used;         /* a transaction ran: RSET before the next */
	int peer_closing; /* 421: the peer is going away */
	struct mta_reply reply;
	SSL_CTX *own_ctx; /* when dest.ca_file is not the shared context's */

	/* the job */
	const struct mta_job *job;
	mta_done_fn fn;
	void *fn_arg;
	struct mta_result *results;
	unsigned char *rstate; /* MTA_R_* per recipient */
	size_t *sent;          /* the recipients given to RCPT, in order */
	size_t nsent;
	size_t naccepted;
	int mail_ok;
	int tx_rset;
	size_t tx_steps, tx_written, tx_replied;
	size_t dot_next, dot_left;
	size_t feed_off;
	int feed_bol, feed_done;

	void (*idle_fn)(void *arg, struct mta_conn *conn);
	void *idle_arg;
};

static SSL_CTX *mta_ctx;
static char mta_ctx_ca[PATH_MAX];

static void mta_read_cb(struct bufferevent *bev, void *arg);
static void mta_write_cb(struct bufferevent *bev, void *arg);
static void mta_event_cb(struct bufferevent *bev, short what, void *arg);
static void mta_connect_next(struct mta_conn *c);
static void mta_session_next(struct mta_conn *c);
static void mta_job_finish(struct mta_conn *c, int keep);
static void mta_fail_result(struct mta_conn *c, const struct mta_result *r, int perm);

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
static int mta_set(const char *s)
{
	return s != NULL && *s != '\0';
}

/* mta_safe - whether s can go on a command line: no control characters. */
static int mta_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* mta_xtext - s encoded as RFC 3461 xtext; the caller frees it. */
static char *mta_xtext(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *p = out;

	if (out == NULL)
		fatal("smtp client: out of memory");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch >= 33 && ch <= 126 && ch != '+' && ch != '=') {
			*p++ = (char)ch;
		} else {
			*p++ = '+';
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 15];
		}
	}
	*p = '\0';
	return out;
}

/* mta_base64 - s (n bytes) in base64; the caller frees it. */
static char *mta_base64(const char *s, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out == NULL || n > INT_MAX / 2)
		fatal("smtp client: out of memory");
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	return out;
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
static int mta_is_local(const struct mta_conn *c)
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

/* ---- results ------------------------------------------------------------ */

/* mta_outcome_of - what a reply code means for a recipient. */
static enum mta_outcome mta_outcome_of(int code)
{
	if (code >= 200 && code < 300)
		return MTA_SENT;
	if (code >= 500 && code < 600)
		return MTA_FAILED;
	return MTA_DEFERRED;
}

/* mta_result_fix - the enhanced code's class follows the outcome ("x.0.0" when none came). */
static void mta_result_fix(struct mta_result *r)
{
	char cls = r->outcome == MTA_SENT       ? '2'
	           : r->outcome == MTA_DEFERRED ? '4'
	                                                : '5';

	if (r->enhanced[0] == '\0')
		snprintf(r->enhanced, sizeof(r->enhanced), "%c.0.0", cls);
	else
		r->enhanced[0] = cls;
}

/* mta_result_local - r as a local reason: no reply from the peer. */
static void mta_result_local(struct mta_result *r, enum mta_outcome outcome,
                              const char *enhanced, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static void mta_result_local(struct mta_result *r, enum mta_outcome outcome,
                              const char *enhanced, const char *fmt, va_list ap)
{
	memset(r, 0, sizeof(*r));
	r->outcome = outcome;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	vsnprintf(r->reply, sizeof(r->reply), fmt, ap);
	mta_result_fix(r);
}

/* mta_result_reply - r from the reply just read, enhanced replacing the peer's when given. */
static void mta_result_reply(const struct mta_conn *c, struct mta_result *r,
                              enum mta_outcome outcome, const char *enhanced)
{
	memset(r, 0, sizeof(*r));
	r->outcome = outcome;
	r->code = c->reply.code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s",
	         enhanced != NULL ? enhanced : c->reply.enhanced);
	snprintf(r->reply, sizeof(r->reply), "%s", c->reply.text);
	r->remote_said = 1;
	mta_result_fix(r);
}

/* mta_rcpt_set - recipient i's outcome, unless it has one already. */
static void mta_rcpt_set(struct mta_conn *c, size_t i, const struct mta_result *r)
{
	if (c->rstate[i] & MTA_R_SET)
		return;
	c->results[i] = *r;
	c->rstate[i] |= MTA_R_SET;
}

/* mta_rcpt_set_all - every recipient without an outcome gets r. */
static void mta_rcpt_set_all(struct mta_conn *c, const struct mta_result *r)
{
	size_t i;

	for (i = 0; i < c->job->nrcpts; i++)
		mta_rcpt_set(c, i, r);
}

/* mta_rcpt_fail_all - every recipient without an outcome: a local reason. */
__attribute__((format(printf, 4, 5))) static void
mta_rcpt_fail_all(struct mta_conn *c, enum mta_outcome outcome, const char *enhanced,
                   const char *fmt, ...)
{
	struct mta_result r;
	va_list ap;

	va_start(ap, fmt);
	mta_result_local(&r, outcome, enhanced, fmt, ap);
	va_end(ap);
	mta_rcpt_set_all(c, &r);
}

/* ---- the connection's plumbing ------------------------------------------ */

/* mta_wait - arm the deadline of the current wait. */
static void mta_wait(struct mta_conn *c, unsigned seconds)
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
static void mta_conn_free(struct mta_conn *c)
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
__attribute__((format(printf, 3, 4))) static void mta_cmd(struct mta_conn *c, int secret,
                                                           const char *fmt, ...)
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
static const char *mta_wait_name(const struct mta_conn *c)
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
__attribute__((format(printf, 3, 4))) static void
mta_fail(struct mta_conn *c, const char *enhanced, const char *fmt, ...)
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
static void mta_fail_reply(struct mta_conn *c, const char *enhanced)
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

/* mta_conn_ctx - the TLS context for this destination, made when first needed. */
static SSL_CTX *mta_conn_ctx(struct mta_conn *c, char *err, size_t errlen);

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
__attribute__((format(printf, 2, 3))) static void mta_tls_fail(struct mta_conn *c,
                                                                const char *fmt, ...)
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
static void mta_tls_start(struct mta_conn *c)
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
static void mta_tls_failed_text(struct mta_conn *c, char *buf, size_t len)
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

/* ---- the session -------------------------------------------------------- */

/* mta_send_ehlo - EHLO, or LHLO for LMTP. */
static void mta_send_ehlo(struct mta_conn *c)
{
	memset(&c->ext_new, 0, sizeof(c->ext_new));
	mta_cmd(c, 0, "%s %s", c->dest.lmtp ? "LHLO" : "EHLO", c->dest.helo_name);
	c->state = MTA_S_EHLO;
	mta_wait(c, c->dest.command_timeout);
}

/* mta_ext_line - note the extension that one line of the EHLO reply names. */
static void mta_ext_line(struct mta_ext *e, const char *text)
{
	char kw[32];
	size_t n = strcspn(text, " =");
	const char *arg = text[n] != '\0' ? text + n + 1 : text + n;

	if (n == 0 || n >= sizeof(kw))
		return;
	memcpy(kw, text, n);
	kw[n] = '\0';
	if (strcasecmp(kw, "PIPELINING") == 0)
		e->pipelining = 1;
	else if (strcasecmp(kw, "STARTTLS") == 0)
		e->starttls = 1;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		e->eightbitmime = 1;
	else if (strcasecmp(kw, "SMTPUTF8") == 0)
		e->smtputf8 = 1;
	else if (strcasecmp(kw, "DSN") == 0)
		e->dsn = 1;
	else if (strcasecmp(kw, "ENHANCEDSTATUSCODES") == 0)
		e->enhancedstatuscodes = 1;
	else if (strcasecmp(kw, "SIZE") == 0) {
		char *end;
		unsigned long long v;

		e->size = 1;
		errno = 0;
		v = strtoull(arg, &end, 10);
		e->size_max = (errno == 0 && end != arg && *arg >= '0' && *arg <= '9') ? v : 0;
	} else if (strcasecmp(kw, "AUTH") == 0) {
		char mechs[MTA_LINE_MAX + 1], *tok, *save = NULL;

		snprintf(mechs, sizeof(mechs), "%s", arg);
		for (tok = strtok_r(mechs, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
			if (strcasecmp(tok, "PLAIN") == 0)
				e->auth_plain = 1;
			else if (strcasecmp(tok, "LOGIN") == 0)
				e->auth_login = 1;
		}
	}
}

/* mta_on_greeting - the peer's first reply: 2xx says go on. */
static void mta_on_greeting(struct mta_conn *c)
{
	if (c->reply.code / 100 != 2) {
		mta_fail_reply(c, NULL);
		return;
	}
	mta_send_ehlo(c);
}

/* mta_on_ehlo - extensions known, or HELO after a 5xx (not with LMTP). */
static void mta_on_ehlo(struct mta_conn *c)
{
	if (c->reply.code / 100 == 2) {
		c->ext = c->ext_new;
		mta_session_next(c);
		return;
	}
	if (c->reply.code / 100 == 5 && !c->dest.lmtp) {
		memset(&c->ext, 0, sizeof(c->ext));
		mta_cmd(c, 0, "HELO %s", c->dest.helo_name);
		c->state = MTA_S_HELO;
		mta_wait(c, c->dest.command_timeout);
		return;
	}
	mta_fail_reply(c, NULL);
}

/* mta_on_helo - the plain SMTP greeting is done, or not. */
static void mta_on_helo(struct mta_conn *c)
{
	if (c->reply.code / 100 != 2) {
		mta_fail_reply(c, NULL);
		return;
	}
	mta_session_next(c);
}

/* mta_on_starttls - 220: the handshake; otherwise MAY goes on in plaintext. */
static void mta_on_starttls(struct mta_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t injected = evbuffer_get_length(in);

	if (c->reply.code / 100 == 2) {
		/* Nothing the peer sent behind its 220 may count once TLS is
		 * up: that would be an injection (CVE-2011-0411 turned around). */
		if (injected > 0) {
			log_notice("%s: discarded %zu bytes sent before the TLS handshake",
			           c->remote, injected);
			evbuffer_drain(in, injected);
		}
		mta_tls_start(c);
		return;
	}
	if (c->dest.tls == CLIENT_TLS_MAY) {
		log_info("%s: STARTTLS refused (%s), going on without TLS", c->remote,
		         c->reply.text);
		c->ext.starttls = 0;
		mta_session_next(c);
		return;
	}
	mta_fail_reply(c, "4.7.5");
}

/* mta_tls_done - the handshake finished: log it, then greet or say EHLO again. */
static void mta_tls_done(struct mta_conn *c)
{
	struct tls_info info;

	evtimer_del(c->timer);
	tls_info_get(bufferevent_openssl_get_ssl(c->bev), &info);
	log_info("TLS established to %s: %s %s", c->remote, info.version, info.cipher);
	c->tls_active = 1;
	if (c->dest.tls == CLIENT_TLS_IMPLICIT) {
		c->state = MTA_S_GREETING;
		mta_wait(c, c->dest.command_timeout);
		/* The greeting may have come with the end of the handshake. */
		mta_read_cb(c->bev, c);
		return;
	}
	/* RFC 3207 4.2: what the peer said before TLS counts no more. */
	mta_send_ehlo(c);
}

/* mta_auth_plain - the PLAIN response (RFC 4616) in base64; the caller cleanses and frees it. */
static char *mta_auth_plain(const struct mta_conn *c)
{
	const char *user = c->dest.auth_user;
	const char *pass = c->dest.auth_password != NULL ? c->dest.auth_password : "";
	size_t ul = strlen(user), pl = strlen(pass);
	char *raw = malloc(ul + pl + 2), *b64;

	if (raw == NULL)
		fatal("smtp client: out of memory");
	raw[0] = '\0';
	memcpy(raw + 1, user, ul);
	raw[ul + 1] = '\0';
	memcpy(raw + ul + 2, pass, pl);
	b64 = mta_base64(raw, ul + pl + 2);
	OPENSSL_cleanse(raw, ul + pl + 2);
	free(raw);
	return b64;
}

/* mta_auth_begin - AUTH PLAIN (preferred) or LOGIN. */
static void mta_auth_begin(struct mta_conn *c)
{
	if (!c->tls_active && !mta_is_local(c)) {
		mta_fail(c, "4.7.8", "not sending credentials to %s without TLS", c->remote);
		return;
	}
	c->auth_step = 0;
	c->state = MTA_S_AUTH;
	if (c->ext.auth_plain) {
		char *b64 = mta_auth_plain(c);

		c->auth_login = 0;
		mta_cmd(c, 1, "AUTH PLAIN %s", b64);
		OPENSSL_cleanse(b64, strlen(b64));
		free(b64);
	} else if (c->ext.auth_login) {
		c->auth_login = 1;
		mta_cmd(c, 0, "AUTH LOGIN");
	} else {
		mta_fail(c, "4.7.8", "no usable AUTH mechanism offered by %s (PLAIN or LOGIN)",
		          c->remote);
		return;
	}
	mta_wait(c, c->dest.command_timeout);
}

/* mta_auth_send - one base64 line: the PLAIN response (part NULL) or a LOGIN part. */
static void mta_auth_send(struct mta_conn *c, const char *part)
{
	char *b64 = part == NULL ? mta_auth_plain(c) : mta_base64(part, strlen(part));

	mta_cmd(c, 1, "%s", b64);
	OPENSSL_cleanse(b64, strlen(b64));
	free(b64);
	c->auth_step++;
	mta_wait(c, c->dest.command_timeout);
}

/* mta_on_auth - the reply to AUTH or to one of its lines. */
static void mta_on_auth(struct mta_conn *c)
{
	struct mta_result r;
	int code = c->reply.code;
	const char *pass = c->dest.auth_password != NULL ? c->dest.auth_password : "";

	if (code / 100 == 2) {
		c->authed = 1;
		log_debug("%s: authenticated as %s", c->remote, c->dest.auth_user);
		mta_session_next(c);
		return;
	}
	if (code == 334 && !c->auth_login && c->auth_step == 0) {
		mta_auth_send(c, NULL);
		return;
	}
	if (code == 334 && c->auth_login && c->auth_step < 2) {
		mta_auth_send(c, c->auth_step == 0 ? c->dest.auth_user : pass);
		return;
	}
	/* Wrong credentials are for an administrator to fix: the mail waits. */
	log_warn("%s: authentication as %s failed: %s", c->remote, c->dest.auth_user,
	         c->reply.text);
	mta_result_reply(c, &r, MTA_DEFERRED, "4.7.8");
	mta_fail_result(c, &r, 0);
}

/* mta_want_starttls - whether this session should say STARTTLS now. */
static int mta_want_starttls(const struct mta_conn *c)
{
	if (c->tls_active)
		return 0;
	return c->dest.tls == CLIENT_TLS_ENCRYPT ||
	       (c->dest.tls == CLIENT_TLS_MAY && c->plain_retry != 2);
}

static void mta_tx_begin(struct mta_conn *c);

/* mta_session_next - after EHLO: STARTTLS, AUTH, then the transaction. */
static void mta_session_next(struct mta_conn *c)
{
	char err[256];

	if (mta_want_starttls(c)) {
		if (c->ext.starttls && mta_conn_ctx(c, err, sizeof(err)) != NULL) {
			mta_cmd(c, 0, "STARTTLS");
			c->state = MTA_S_STARTTLS;
			mta_wait(c, c->dest.command_timeout);
			return;
		}
		if (c->dest.tls == CLIENT_TLS_ENCRYPT) {
			if (c->ext.starttls)
				mta_fail(c, "4.7.5", "cannot use TLS with %s: %s", c->remote, err);
			else
				mta_fail(c, "4.7.5", "TLS is required, but was not offered by %s",
				          c->remote);
			return;
		}
		if (c->ext.starttls)
			log_warn("%s: STARTTLS offered but unusable: %s", c->remote, err);
	}
	if (mta_set(c->dest.auth_user) && !c->authed) {
		mta_auth_begin(c);
		return;
	}
	c->state = MTA_S_READY;
	evtimer_del(c->timer);
	if (c->job != NULL)
		mta_tx_begin(c);
}

/* ---- the transaction ---------------------------------------------------- */

/* mta_tx_write_mail - MAIL FROM with the parameters the peer understands. */
static void mta_tx_write_mail(struct mta_conn *c)
{
	const struct mta_job *j = c->job;
	char size[32] = "", *envid = NULL;
	const char *ret = "";

	if (c->ext.size)
		snprintf(size, sizeof(size), " SIZE=%zu", j->content_len);
	if (c->ext.dsn && j->ret == SMTP_RET_FULL)
		ret = " RET=FULL";
	else if (c->ext.dsn && j->ret == SMTP_RET_HDRS)
		ret = " RET=HDRS";
	if (c->ext.dsn && mta_set(j->envid))
		envid = mta_xtext(j->envid);
	mta_cmd(c, 0, "MAIL FROM:<%s>%s%s%s%s%s%s", j->mail_from != NULL ? j->mail_from : "", size,
	         j->body == SMTP_BODY_8BITMIME && c->ext.eightbitmime ? " BODY=8BITMIME" : "",
	         j->smtputf8 ? " SMTPUTF8" : "", ret, envid != NULL ? " ENVID=" : "",
	         envid != NULL ? envid : "");
	free(envid);
}

/* mta_tx_write_rcpt - RCPT TO for one recipient, with its DSN parameters when offered. */
static void mta_tx_write_rcpt(struct mta_conn *c, const struct mta_rcpt *r)
{
	char notify[64] = "", *orcpt = NULL;

	if (c->ext.dsn && r->notify != 0) {
		if (r->notify & SMTP_NOTIFY_NEVER)
			snprintf(notify, sizeof(notify), " NOTIFY=NEVER");
		else
			snprintf(notify, sizeof(notify), " NOTIFY=%s%s%s%s%s",
			         r->notify & SMTP_NOTIFY_SUCCESS ? "SUCCESS" : "",
			         (r->notify & SMTP_NOTIFY_SUCCESS) &&
			                 (r->notify & (SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY))
			             ? ","
			             : "",
			         r->notify & SMTP_NOTIFY_FAILURE ? "FAILURE" : "",
			         (r->notify & SMTP_NOTIFY_FAILURE) &&
			                 (r->notify & SMTP_NOTIFY_DELAY)
			             ? ","
			             : "",
			         r->notify & SMTP_NOTIFY_DELAY ? "DELAY" : "");
	}
	if (c->ext.dsn && mta_set(r->orcpt_type) && mta_set(r->orcpt))
		orcpt = mta_xtext(r->orcpt);
	mta_cmd(c, 0, "RCPT TO:<%s>%s%s%s%s%s", r->address, notify, orcpt != NULL ? " ORCPT=" : "",
	         orcpt != NULL ? r->orcpt_type : "", orcpt != NULL ? ";" : "",
	         orcpt != NULL ? orcpt : "");
	free(orcpt);
}

/* mta_step_of - what the reply to transaction step s answers, and for which recipient. */
static enum mta_step mta_step_of(const struct mta_conn *c, size_t s, size_t *rcpt)
{
	if (c->tx_rset) {
		if (s == 0)
			return MTA_STEP_RSET;
		s--;
	}
	if (s == 0)
		return MTA_STEP_MAIL;
	if (s <= c->nsent) {
		*rcpt = s - 1;
		return MTA_STEP_RCPT;
	}
	return MTA_STEP_DATA;
}

/* mta_tx_write_step - the command of transaction step s. */
static void mta_tx_write_step(struct mta_conn *c, size_t s)
{
	size_t k = 0;

	switch (mta_step_of(c, s, &k)) {
	case MTA_STEP_RSET:
		mta_cmd(c, 0, "RSET");
		break;
	case MTA_STEP_MAIL:
		mta_tx_write_mail(c);
		break;
	case MTA_STEP_RCPT:
		if (c->ext.dsn)
			c->rstate[c->sent[k]] |= MTA_R_DSN;
		mta_tx_write_rcpt(c, &c->job->rcpts[c->sent[k]]);
		break;
	case MTA_STEP_DATA:
		mta_cmd(c, 0, "DATA");
		break;
	}
}

/* mta_tx_write - the next command, or with PIPELINING all that are left, in one write. */
static void mta_tx_write(struct mta_conn *c)
{
	do
		mta_tx_write_step(c, c->tx_written++);
	while (c->ext.pipelining && c->tx_written < c->tx_steps);
	mta_wait(c, c->dest.command_timeout);
}

/* mta_tx_refuse - the job cannot go to this peer: every recipient fails, no MAIL is sent. */
static int mta_tx_refuse(struct mta_conn *c)
{
	const struct mta_job *j = c->job;

	if (j->smtputf8 && !c->ext.smtputf8) {
		mta_rcpt_fail_all(c, MTA_FAILED, "5.6.7", "SMTPUTF8 not supported by %s",
		                   c->remote);
		return 1;
	}
	if (c->ext.size && c->ext.size_max > 0 && j->content_len > c->ext.size_max) {
		mta_rcpt_fail_all(c, MTA_FAILED, "5.3.4",
		                   "message size %zu exceeds size limit %llu of %s", j->content_len,
		                   c->ext.size_max, c->remote);
		return 1;
	}
	if ((j->mail_from != NULL && !mta_safe(j->mail_from)) ||
	    (mta_set(j->envid) && !mta_safe(j->envid))) {
		mta_rcpt_fail_all(c, MTA_FAILED, "5.1.7", "bad sender address syntax");
		return 1;
	}
	return 0;
}

/* mta_tx_begin - the session is ready: start the job's transaction. */
static void mta_tx_begin(struct mta_conn *c)
{
	const struct mta_job *j = c->job;
	struct mta_result bad;
	size_t i;

	if (mta_tx_refuse(c)) {
		mta_job_finish(c, 1);
		return;
	}
	memset(&bad, 0, sizeof(bad));
	bad.outcome = MTA_FAILED;
	snprintf(bad.enhanced, sizeof(bad.enhanced), "5.1.3");
	snprintf(bad.reply, sizeof(bad.reply), "bad recipient address syntax");
	c->nsent = c->naccepted = 0;
	for (i = 0; i < j->nrcpts; i++) {
		const struct mta_rcpt *r = &j->rcpts[i];

		if (r->address == NULL || !mta_safe(r->address) ||
		    (r->orcpt_type != NULL && !mta_safe(r->orcpt_type)) ||
		    (r->orcpt != NULL && !mta_safe(r->orcpt)))
			mta_rcpt_set(c, i, &bad);
		else
			c->sent[c->nsent++] = i;
	}
	if (c->nsent == 0) {
		mta_job_finish(c, 1);
		return;
	}
	c->tx_rset = c->used;
	c->used = 1;
	c->mail_ok = 0;
	c->tx_steps = (size_t)c->tx_rset + 1 + c->nsent + 1;
	c->tx_written = c->tx_replied = 0;
	c->state = MTA_S_TX;
	mta_tx_write(c);
}

/* mta_content_feed - queue the next piece of the message, dot-stuffed, by reference. */
static void mta_content_feed(struct mta_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const char *m = c->job->content;
	size_t len = c->job->content_len, off = c->feed_off, seg = off;
	size_t end = len - off > MTA_FEED_CHUNK ? off + MTA_FEED_CHUNK : len;
	const char *nl;

	while (off < end) {
		if (c->feed_bol && m[off] == '.') {
			if (off > seg)
				evbuffer_add_reference(out, m + seg, off - seg, NULL, NULL);
			evbuffer_add(out, ".", 1);
			seg = off;
		}
		if ((nl = memchr(m + off, '\n', end - off)) == NULL) {
			c->feed_bol = 0;
			off = end;
			break;
		}
		off = (size_t)(nl - m) + 1;
		c->feed_bol = 1;
	}
	if (end > seg)
		evbuffer_add_reference(out, m + seg, end - seg, NULL, NULL);
	c->feed_off = end;
	if (end < len)
		return;
	if (len > 0 && !(len >= 2 && m[len - 2] == '\r' && m[len - 1] == '\n'))
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
	c->feed_done = 1;
	/* Called back once all of it is out: then the wait for the reply begins. */
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

/* mta_content_start - the peer said 354: send the message. */
static void mta_content_start(struct mta_conn *c)
{
	c->state = MTA_S_CONTENT;
	c->feed_off = 0;
	c->feed_bol = 1;
	c->feed_done = 0;
	log_debug("%s: > (message, %zu bytes)", c->remote, c->job->content_len);
	bufferevent_setwatermark(c->bev, EV_WRITE, MTA_WRITE_LOW, 0);
	mta_content_feed(c);
	mta_wait(c, c->dest.data_timeout);
}

/* mta_content_sent - the message is out: wait for the dot's reply (one per recipient, LMTP). */
static void mta_content_sent(struct mta_conn *c)
{
	c->state = MTA_S_DOT;
	c->dot_next = 0;
	c->dot_left = c->dest.lmtp ? c->naccepted : 1;
	mta_wait(c, c->dest.data_timeout);
}

/* mta_tx_data_reply - the reply to DATA: 354 sends the message, anything else ends it. */
static void mta_tx_data_reply(struct mta_conn *c)
{
	struct mta_result r;
	size_t i;

	if (c->reply.code == 354 && c->naccepted > 0) {
		mta_content_start(c);
		return;
	}
	if (c->reply.code == 354) {
		/* No recipient to take the message, yet the peer waits for it:
		 * an empty message with no recipient ends the transaction. */
		mta_cmd(c, 0, ".");
		c->state = MTA_S_DOT_ABORT;
		mta_wait(c, c->dest.command_timeout);
		return;
	}
	mta_result_reply(c, &r, c->reply.code >= 500 ? MTA_FAILED : MTA_DEFERRED,
	                  NULL);
	for (i = 0; i < c->nsent; i++)
		if (c->rstate[c->sent[i]] & MTA_R_ACCEPTED)
			mta_rcpt_set(c, c->sent[i], &r);
	mta_job_finish(c, 1);
}

/* mta_on_tx - a reply to RSET, MAIL, RCPT or DATA, in the order they were sent. */
static void mta_on_tx(struct mta_conn *c)
{
	struct mta_result r;
	size_t k = 0, s = c->tx_replied++;
	int ok = c->reply.code / 100 == 2;

	switch (mta_step_of(c, s, &k)) {
	case MTA_STEP_RSET:
		break;
	case MTA_STEP_MAIL:
		c->mail_ok = ok;
		if (!ok) {
			mta_result_reply(c, &r, mta_outcome_of(c->reply.code), NULL);
			mta_rcpt_set_all(c, &r);
		}
		break;
	case MTA_STEP_RCPT:
		if (ok && c->mail_ok && !(c->rstate[c->sent[k]] & MTA_R_SET)) {
			c->rstate[c->sent[k]] |= MTA_R_ACCEPTED;
			c->naccepted++;
		} else if (!ok) {
			mta_result_reply(c, &r, mta_outcome_of(c->reply.code), NULL);
			mta_rcpt_set(c, c->sent[k], &r);
		}
		break;
	case MTA_STEP_DATA:
		mta_tx_data_reply(c);
		return;
	}
	if (c->tx_replied < c->tx_written) {
		mta_wait(c, c->dest.command_timeout);
		return;
	}
	/* Without PIPELINING: stop as soon as nothing can come of it. */
	if (!c->mail_ok && mta_step_of(c, s, &k) != MTA_STEP_RSET) {
		mta_job_finish(c, 1);
		return;
	}
	if (c->tx_written == c->tx_steps - 1 && c->naccepted == 0) {
		mta_job_finish(c, 1);
		return;
	}
	mta_tx_write(c);
}

/* mta_on_dot - the reply to the final dot: for all (SMTP) or the next recipient (LMTP). */
static void mta_on_dot(struct mta_conn *c)
{
	struct mta_result r;
	enum mta_outcome o = mta_outcome_of(c->reply.code);

	mta_result_reply(c, &r, o, NULL);
	if (!c->dest.lmtp) {
		size_t i;

		for (i = 0; i < c->nsent; i++)
			if (c->rstate[c->sent[i]] & MTA_R_ACCEPTED)
				mta_rcpt_set(c, c->sent[i], &r);
	} else {
		while (c->dot_next < c->nsent &&
		       !(c->rstate[c->sent[c->dot_next]] & MTA_R_ACCEPTED))
			c->dot_next++;
		if (c->dot_next < c->nsent)
			mta_rcpt_set(c, c->sent[c->dot_next++], &r);
	}
	if (--c->dot_left > 0) {
		mta_wait(c, c->dest.data_timeout);
		return;
	}
	mta_job_finish(c, 1);
}

/* mta_on_early - a reply while the message is still going out: the peer gave up on it. */
static void mta_on_early(struct mta_conn *c)
{
	struct mta_result r;
	size_t i;

	if (c->feed_done && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		/* All of it was out; the write callback is still to come. */
		mta_content_sent(c);
		mta_on_dot(c);
		return;
	}
	mta_result_reply(c, &r, c->reply.code >= 500 ? MTA_FAILED : MTA_DEFERRED,
	                  NULL);
	for (i = 0; i < c->nsent; i++)
		if (c->rstate[c->sent[i]] & MTA_R_ACCEPTED)
			mta_rcpt_set(c, c->sent[i], &r);
	/* The rest of the message cannot be taken back: the connection goes. */
	mta_job_finish(c, 0);
}

/* mta_tx_fail - the connection failed during a transaction. */
static void mta_tx_fail(struct mta_conn *c, const struct mta_result *r)
{
	mta_rcpt_set_all(c, r);
	mta_job_finish(c, 0);
}

/* ---- job end, idle, failure dispatch ------------------------------------ */

/* mta_job_finish - every recipient has its outcome: hand them over from an event. */
static void mta_job_finish(struct mta_conn *c, int keep)
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
static void mta_idle_broken(struct mta_conn *c)
{
	int had_job = c->job != NULL;

	log_debug("%s: connection closed while idle", c->remote);
	mta_teardown(c);
	/* Last: the idle callback may close (free) the connection. */
	if (!had_job && c->idle_fn != NULL)
		c->idle_fn(c->idle_arg, c);
}

/* mta_fail_result - the current wait failed with r: what that means depends on the state. */
static void mta_fail_result(struct mta_conn *c, const struct mta_result *r, int perm)
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

/* ---- reading replies ---------------------------------------------------- */

/* mta_line_get - the next line of input into buf; 1 got one, 0 needs more, -1 too long. */
static int mta_line_get(struct evbuffer *in, char *buf, size_t *len)
{
	struct evbuffer_ptr p;
	size_t eol_len = 0, i;

	p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (p.pos < 0)
		return evbuffer_get_length(in) > MTA_LINE_MAX ? -1 : 0;
	if ((size_t)p.pos > MTA_LINE_MAX)
		return -1;
	evbuffer_remove(in, buf, (size_t)p.pos);
	evbuffer_drain(in, eol_len);
	*len = (size_t)p.pos;
	buf[*len] = '\0';
	/* Replies end up in logs and bounces: printable ASCII only. */
	for (i = 0; i < *len; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (ch < 0x20 || ch == 0x7f)
			buf[i] = ' ';
		else if (ch >= 0x80)
			buf[i] = '?';
	}
	return 1;
}

/* mta_enhanced_parse - "5.1.1" at the start of text when its class matches code. */
static size_t mta_enhanced_parse(const char *text, int code, char *out, size_t outlen)
{
	const char *p = text;
	int part;

	if (*p != '0' + code / 100)
		return 0;
	p++;
	for (part = 0; part < 2; part++) {
		size_t n = 0;

		if (*p++ != '.')
			return 0;
		while (p[n] >= '0' && p[n] <= '9')
			n++;
		if (n < 1 || n > 3)
			return 0;
		p += n;
	}
	if (*p != '\0' && *p != ' ')
		return 0;
	if (out != NULL)
		snprintf(out, outlen, "%.*s", (int)(p - text), text);
	return (size_t)(p - text);
}

/* mta_reply_append - add s to the joined text of the reply, as room allows. */
static void mta_reply_append(struct mta_reply *r, const char *s)
{
	size_t n = strlen(s), room = sizeof(r->text) - 1 - r->len;

	if (n > room)
		n = room;
	memcpy(r->text + r->len, s, n);
	r->len += n;
	r->text[r->len] = '\0';
}

/* mta_reply_line - take one line of a reply; 1 when it was the last, -1 on a protocol error. */
static int mta_reply_line(struct mta_conn *c, const char *line, size_t len)
{
	struct mta_reply *r = &c->reply;
	const char *text = len > 4 ? line + 4 : "";
	int code;

	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-'))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines == 0) {
		r->code = code;
		r->enhanced[0] = '\0';
		r->len = 0;
		snprintf(r->text, sizeof(r->text), "%d", code);
		r->len = 3;
		mta_enhanced_parse(text, code, r->enhanced, sizeof(r->enhanced));
	} else {
		size_t skip;

		if (code != r->code)
			return -1;
		/* A continuation repeats the enhanced code: once is enough. */
		skip = mta_enhanced_parse(text, code, NULL, 0);
		if (skip > 0 && strncmp(text, r->enhanced, skip) == 0)
			text += skip + (text[skip] == ' ');
	}
	if (++r->nlines > MTA_REPLY_LINES)
		return -1;
	if (*text != '\0') {
		mta_reply_append(r, " ");
		mta_reply_append(r, text);
	}
	if (c->state == MTA_S_EHLO && r->nlines > 1 && code / 100 == 2)
		mta_ext_line(&c->ext_new, text);
	return len == 3 || line[3] == ' ';
}

/* mta_reply_dispatch - a whole reply came: to the state it answers; 1 when c may be gone. */
static int mta_reply_dispatch(struct mta_conn *c)
{
	log_debug("%s: < %s", c->remote, c->reply.text);
	memcpy(c->said, c->remote, sizeof(c->said));
	evtimer_del(c->timer);
	if (c->reply.code == 421)
		c->peer_closing = 1;
	switch (c->state) {
	case MTA_S_GREETING:
		mta_on_greeting(c);
		break;
	case MTA_S_EHLO:
		mta_on_ehlo(c);
		break;
	case MTA_S_HELO:
		mta_on_helo(c);
		break;
	case MTA_S_STARTTLS:
		mta_on_starttls(c);
		break;
	case MTA_S_AUTH:
		mta_on_auth(c);
		break;
	case MTA_S_TX:
		mta_on_tx(c);
		break;
	case MTA_S_CONTENT:
		mta_on_early(c);
		break;
	case MTA_S_DOT:
		mta_on_dot(c);
		break;
	case MTA_S_DOT_ABORT:
		mta_job_finish(c, 1);
		break;
	case MTA_S_QUIT:
		mta_conn_free(c);
		return 1;
	default:
		/* Nothing was asked: an idle peer talking is going away. */
		mta_idle_broken(c);
		return 1;
	}
	return 0;
}

/*
 * mta_read_cb - read whole replies while the same connection lasts. The
 * paths that may free c (QUIT, the idle callback) return at once; the
 * others stop the loop when the connection changed (TLS, a new address).
 */
static void mta_read_cb(struct bufferevent *bev, void *arg)
{
	struct mta_conn *c = arg;
	char line[MTA_LINE_MAX + 1];
	unsigned gen = c->gen;
	size_t len;
	int got;

	if (c->state == MTA_S_HANDSHAKE || c->state == MTA_S_CONNECTING)
		return;
	for (;;) {
		struct evbuffer *in = bufferevent_get_input(c->bev);

		if ((got = mta_line_get(in, line, &len)) == 0)
			return;
		if (got < 0) {
			mta_fail(c, "4.5.0", "protocol error from %s: reply line too long",
			          c->remote);
			return;
		}
		if (c->reply.nlines == 0 && c->state == MTA_S_READY) {
			mta_idle_broken(c);
			return;
		}
		if ((got = mta_reply_line(c, line, len)) < 0) {
			c->reply.nlines = 0;
			mta_fail(c, "4.5.0", "protocol error from %s: malformed reply", c->remote);
			return;
		}
		if (got == 0)
			continue;
		c->reply.nlines = 0;
		if (mta_reply_dispatch(c) || c->gen != gen || c->bev == NULL)
			return;
	}
}

/* mta_write_cb - the output drained: queue more of the message, or wait for its reply. */
static void mta_write_cb(struct bufferevent *bev, void *arg)
{
	struct mta_conn *c = arg;

	if (c->state != MTA_S_CONTENT)
		return;
	if (!c->feed_done) {
		mta_content_feed(c);
		mta_wait(c, c->dest.data_timeout);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		mta_content_sent(c);
}

/* mta_lost - the connection closed or broke: what it means depends on what was under way. */
static void mta_lost(struct mta_conn *c)
{
	if (c->state == MTA_S_QUIT) {
		mta_conn_free(c);
		return;
	}
	if (c->state == MTA_S_READY) {
		mta_idle_broken(c);
		return;
	}
	if (c->state == MTA_S_CONTENT)
		mta_fail(c, "4.4.2", "lost connection with %s while sending the message",
		          c->remote);
	else
		mta_fail(c, "4.4.2", "lost connection with %s while waiting for %s", c->remote,
		          mta_wait_name(c));
}

/* mta_event_cb - handshake done, end of file or error. */
static void mta_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mta_conn *c = arg;
	unsigned gen = c->gen;
	char why[256];

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == MTA_S_HANDSHAKE)
			mta_tls_done(c);
		return;
	}
	if (c->state == MTA_S_HANDSHAKE) {
		mta_tls_failed_text(c, why, sizeof(why));
		mta_tls_fail(c, "TLS handshake with %s failed: %s", c->remote, why);
		return;
	}
	/* A last reply ("421 ... closing") may sit in the input still. */
	if (c->state != MTA_S_QUIT && c->state != MTA_S_READY) {
		mta_read_cb(bev, c);
		if (c->gen != gen || c->bev == NULL)
			return;
	}
	mta_lost(c);
}

/* mta_timer_cb - the current wait took too long. */
static void mta_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mta_conn *c = arg;

	switch (c->state) {
	case MTA_S_QUIT:
		mta_conn_free(c);
		break;
	case MTA_S_HANDSHAKE:
		mta_tls_fail(c, "timeout during the TLS handshake with %s", c->remote);
		break;
	case MTA_S_CONTENT:
		mta_fail(c, "4.4.2", "timeout sending the message to %s", c->remote);
		break;
	default:
		mta_fail(c, "4.4.2", "timeout waiting for %s from %s", mta_wait_name(c),
		          c->remote);
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
static SSL_CTX *mta_conn_ctx(struct mta_conn *c, char *err, size_t errlen)
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
