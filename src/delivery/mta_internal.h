/*
 * mta_internal.h - the parts of the SMTP and LMTP client and what they
 * share: the connection object and its state machine. mta.c connects,
 * brings up TLS, ends jobs and handles failures; mta_reply.c reads whole
 * replies and dispatches them to the state they answer; mta_transaction.c
 * says EHLO, STARTTLS and AUTH, writes the transaction's commands and the
 * content, and sets each recipient's result.
 */
#ifndef VSMTPD_MTA_INTERNAL_H
#define VSMTPD_MTA_INTERNAL_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>

#include <event2/util.h>
#include <openssl/ssl.h>

#include "mta.h"

struct bufferevent;
struct event;
struct event_base;

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

/* ---- mta.c: the connection ---- */

/* mta_set - whether an optional string is given. */
int mta_set(const char *s);

/* mta_is_local - a unix socket or a loopback address: AUTH needs no TLS there. */
int mta_is_local(const struct mta_conn *c);

/* mta_cmd - write one command line; shown at debug unless secret. */
void mta_cmd(struct mta_conn *c, int secret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* mta_fail - the current wait failed for a local reason. */
void mta_fail(struct mta_conn *c, const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* mta_wait - arm the deadline of the current wait. */
void mta_wait(struct mta_conn *c, unsigned seconds);

/* mta_conn_free - release everything; the connection is gone. */
void mta_conn_free(struct mta_conn *c);

/* mta_wait_name - what the current wait is for, for messages. */
const char *mta_wait_name(const struct mta_conn *c);

/* mta_fail_reply - the current wait failed on the peer's reply. */
void mta_fail_reply(struct mta_conn *c, const char *enhanced);

/* mta_tls_start - put TLS over the connection and start the handshake. */
void mta_tls_start(struct mta_conn *c);

/* mta_tls_fail - TLS did not come up: MAY tries plaintext, the rest defers. */
void mta_tls_fail(struct mta_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* mta_tls_failed_text - why the handshake on bev failed. */
void mta_tls_failed_text(struct mta_conn *c, char *buf, size_t len);

/* mta_job_finish - every recipient has its outcome: hand them over from an event. */
void mta_job_finish(struct mta_conn *c, int keep);

/* mta_idle_broken - the peer closed or broke an idle connection. */
void mta_idle_broken(struct mta_conn *c);

/* mta_fail_result - the current wait failed with r: what that means depends on the state. */
void mta_fail_result(struct mta_conn *c, const struct mta_result *r, int perm);

/* mta_conn_ctx - the TLS context for this destination, made when first needed. */
SSL_CTX *mta_conn_ctx(struct mta_conn *c, char *err, size_t errlen);

/* ---- mta_reply.c: reading replies, the connection's events ---- */

/*
 * mta_read_cb - read whole replies while the same connection lasts. The
 * paths that may free c (QUIT, the idle callback) return at once; the
 * others stop the loop when the connection changed (TLS, a new address).
 */
void mta_read_cb(struct bufferevent *bev, void *arg);

/* mta_write_cb - the output drained: queue more of the message, or wait for its reply. */
void mta_write_cb(struct bufferevent *bev, void *arg);

/* mta_event_cb - handshake done, end of file or error. */
void mta_event_cb(struct bufferevent *bev, short what, void *arg);

/* mta_timer_cb - the current wait took too long. */
void mta_timer_cb(evutil_socket_t fd, short what, void *arg);

/* ---- mta_transaction.c: the session's commands and the transaction ---- */

/* mta_outcome_of - what a reply code means for a recipient. */
enum mta_outcome mta_outcome_of(int code);

/* mta_result_local - r as a local reason: no reply from the peer. */
void mta_result_local(struct mta_result *r, enum mta_outcome outcome, const char *enhanced,
		      const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/* mta_result_fix - the enhanced code's class follows the outcome ("x.0.0" when none came). */
void mta_result_fix(struct mta_result *r);

/* mta_result_reply - r from the reply just read, enhanced replacing the peer's when given. */
void mta_result_reply(const struct mta_conn *c, struct mta_result *r, enum mta_outcome outcome,
		      const char *enhanced);

/* mta_rcpt_set - recipient i's outcome, unless it has one already. */
void mta_rcpt_set(struct mta_conn *c, size_t i, const struct mta_result *r);

/* mta_rcpt_set_all - every recipient without an outcome gets r. */
void mta_rcpt_set_all(struct mta_conn *c, const struct mta_result *r);

/* mta_ext_line - note the extension that one line of the EHLO reply names. */
void mta_ext_line(struct mta_ext *e, const char *text);

/* mta_on_greeting - the peer's first reply: 2xx says go on. */
void mta_on_greeting(struct mta_conn *c);

/* mta_on_ehlo - extensions known, or HELO after a 5xx (not with LMTP). */
void mta_on_ehlo(struct mta_conn *c);

/* mta_on_helo - the plain SMTP greeting is done, or not. */
void mta_on_helo(struct mta_conn *c);

/* mta_on_starttls - 220: the handshake; otherwise MAY goes on in plaintext. */
void mta_on_starttls(struct mta_conn *c);

/* mta_tls_done - the handshake finished: log it, then greet or say EHLO again. */
void mta_tls_done(struct mta_conn *c);

/* mta_on_auth - the reply to AUTH or to one of its lines. */
void mta_on_auth(struct mta_conn *c);

/* mta_tx_begin - the session is ready: start the job's transaction. */
void mta_tx_begin(struct mta_conn *c);

/* mta_content_feed - queue the next piece of the message, dot-stuffed, by reference. */
void mta_content_feed(struct mta_conn *c);

/* mta_content_sent - the message is out: wait for the dot's reply (one per recipient, LMTP). */
void mta_content_sent(struct mta_conn *c);

/* mta_on_tx - a reply to RSET, MAIL, RCPT or DATA, in the order they were sent. */
void mta_on_tx(struct mta_conn *c);

/* mta_on_dot - the reply to the final dot: for all (SMTP) or the next recipient (LMTP). */
void mta_on_dot(struct mta_conn *c);

/* mta_on_early - a reply while the message is still going out: the peer gave up on it. */
void mta_on_early(struct mta_conn *c);

/* mta_tx_fail - the connection failed during a transaction. */
void mta_tx_fail(struct mta_conn *c, const struct mta_result *r);

#endif
