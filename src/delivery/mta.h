/*
 * mta.h - the SMTP and LMTP client of the delivery worker.
 *
 * One struct mta_conn is one connection to one destination, driven by the
 * worker's libevent loop. It connects to the destination's addresses in
 * order (the next one when a connection fails or the greeting is not 2xx),
 * says EHLO (LHLO for LMTP), does STARTTLS or implicit TLS as the
 * destination asks, authenticates (PLAIN or LOGIN) when given credentials,
 * then carries one message at a time: MAIL, RCPT for each recipient (in one
 * batch when the peer offers PIPELINING), DATA with dot-stuffing, and the
 * reply to the final dot (one per accepted recipient with LMTP, RFC 2033).
 * After a message the connection can carry another one (RSET between two)
 * until mta_conn_close.
 *
 * With CLIENT_TLS_MAY a failed TLS handshake is followed by a new
 * connection to the same address without STARTTLS (as Postfix does); with
 * CLIENT_TLS_ENCRYPT or CLIENT_TLS_IMPLICIT it defers with 4.7.5.
 * Credentials are sent only over TLS, or to a loopback address or a unix
 * socket.
 *
 * Every recipient of a job gets exactly one outcome. Nothing here retries:
 * the worker decides what a deferral means.
 */
#ifndef VSMTPD_MTA_H
#define VSMTPD_MTA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

struct event_base;
struct mta_conn;

#define MTA_MAX_ADDRS 32
#define MTA_REPLY_MAX 512

/* One address to try, with the name it was found under. */
struct mta_addr {
	char host[256];                /* "mx1.example.org", or the literal */
	struct sockaddr_storage sa;    /* with the port set */
	socklen_t salen;
};

/* Where a connection goes and how it behaves there. */
struct mta_dest {
	int lmtp;                      /* LHLO and per-recipient final replies */
	const char *unix_path;         /* a unix socket, else the addresses */
	struct mta_addr addrs[MTA_MAX_ADDRS];
	size_t naddrs;                 /* tried in this order */
	enum client_tls tls;
	int tls_verify;                /* check the certificate chain and the host name */
	const char *tls_name;          /* SNI and the name to verify (NULL: addrs[i].host) */
	const char *ca_file;           /* NULL or "" for the system's store */
	const char *auth_user;         /* NULL or "": no AUTH */
	const char *auth_password;
	const char *helo_name;
	unsigned connect_timeout;      /* seconds, per address */
	unsigned command_timeout;      /* seconds, per reply */
	unsigned data_timeout;         /* seconds, for the reply to the final dot */
};

/* A recipient of a job. */
struct mta_rcpt {
	const char *address;           /* "user@domain" */
	unsigned notify;               /* SMTP_NOTIFY_* bits, 0: not given */
	const char *orcpt_type;        /* DSN ORCPT=, NULL when not given */
	const char *orcpt;
};

/* One message for one destination. */
struct mta_job {
	const char *mail_from;         /* "" for the null sender */
	const struct mta_rcpt *rcpts;
	size_t nrcpts;
	const char *content;           /* the message: CRLF lines, not dot-stuffed */
	size_t content_len;
	int body;                      /* enum smtp_body: BODY=8BITMIME when 2 and offered */
	int smtputf8;                  /* needs SMTPUTF8: refused by a peer without it */
	int ret;                       /* enum smtp_ret: DSN RET= when offered */
	const char *envid;             /* DSN ENVID=, NULL when not given */
};

/* What became of a recipient. */
enum mta_outcome {
	MTA_SENT,     /* 2xx: the peer took it */
	MTA_DEFERRED, /* 4xx, timeout, connection or TLS failure: try later */
	MTA_FAILED,   /* 5xx, or a permanent local reason: bounce */
};

struct mta_result {
	enum mta_outcome outcome;
	int code;                             /* the reply code, 0 when none came */
	char enhanced[16];                    /* "5.1.1", class as outcome; "4.0.0" when none came */
	/* What to log and to put in a bounce: "550 5.1.1 <bob@example.org>: no
	 * such user" as the peer said it (one line, continuation lines joined
	 * with spaces), or the local reason ("connect to 127.0.0.1:25:
	 * Connection refused"). */
	char reply[MTA_REPLY_MAX];
	int remote_said;                      /* reply came from the peer (Diagnostic-Code: smtp) */
	/* The peer offered DSN and got the recipient's NOTIFY and ORCPT with
	 * its RCPT: success notices are its business (RFC 3461 5.2.2). */
	int dsn_passed;
};

/*
 * Called once per job, when every recipient has its outcome: results has
 * job->nrcpts entries in the job's order. remote is "host[address]" of the
 * peer that answered (the socket's path for a unix socket; for logs and
 * Remote-MTA), "" when none did. The connection may be given another job
 * from this callback, or closed; results is valid during the call only.
 */
typedef void (*mta_done_fn)(void *arg, struct mta_conn *conn,
				    const struct mta_result *results, const char *remote);

/* mta_conn_new - a connection object for dest (copied); it connects on its first job. */
struct mta_conn *mta_conn_new(struct event_base *base, const struct mta_dest *dest);

/*
 * mta_conn_send - deliver job (which, with what it points to, must stay
 * valid until fn is called) on conn; fn is called exactly once, never from
 * inside this call. Only one job at a time per connection. A connection
 * that broke or was never made connects (again) from the first address.
 */
void mta_conn_send(struct mta_conn *conn, const struct mta_job *job,
		    mta_done_fn fn, void *arg);

/*
 * mta_conn_reusable - whether conn may take another job: connected, idle,
 * the last exchange ended well.
 */
int mta_conn_reusable(const struct mta_conn *conn);

/*
 * mta_conn_set_idle_fn - fn(arg, conn) is called when an idle connection
 * is closed by the peer or breaks, so the caller can forget it (and must
 * then call mta_conn_close). NULL removes it.
 */
void mta_conn_set_idle_fn(struct mta_conn *conn, void (*fn)(void *arg, struct mta_conn *conn),
			   void *arg);

/*
 * mta_conn_close - say QUIT when connected and idle, then free conn (in
 * the background: the caller forgets it now). A job under way gets no
 * callback.
 */
void mta_conn_close(struct mta_conn *conn);

/* mta_tls_init - make the shared client TLS context; 0 or -1 with err. */
int mta_tls_init(const char *ca_file, char *err, size_t errlen);

#endif
