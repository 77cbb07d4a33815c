/*
 * smtpd_internal.h - what the files of the SMTP session share.
 *
 * The session is one connection (struct smtp_session, smtpd_session.c: the
 * socket, replies, timers, limits and the end of it); its commands
 * (smtpd_commands.c: the command table and its handlers); and the
 * transaction (struct smtpd_tx, smtpd_transaction.c: MAIL, RCPT, the message
 * file, DATA and BDAT content, the preq rules and the commit to the queue);
 * the deadlines (struct smtpd_deadlines, smtpd_deadline.c: a command
 * line, a message transfer, the session). Nothing here is seen outside
 * src/session.
 */
#ifndef VSMTPD_SMTPD_INTERNAL_H
#define VSMTPD_SMTPD_INTERNAL_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "data_filter.h"
#include "envelope.h"
#include "rules.h"
#include "smtp_parse.h"
#include "smtpd_auth.h"
#include "tls_server.h"

#define SMTPD_WRITE_BUFFER (64u * 1024)
#define SMTPD_IDS_LOG_MAX 512

enum smtpd_state {
	SMTPD_STATE_INIT,  /* greeted, waiting for HELO / EHLO */
	SMTPD_STATE_READY, /* no transaction */
	SMTPD_STATE_MAIL,  /* MAIL accepted */
	SMTPD_STATE_RCPT,  /* at least one recipient */
	SMTPD_STATE_DATA,  /* reading DATA content */
	SMTPD_STATE_BDAT,  /* reading the bytes of a BDAT chunk */
	SMTPD_STATE_COUNT
};

enum smtpd_wait {
	SMTPD_WAIT_NONE,
	SMTPD_WAIT_CREATE, /* the queue is creating the message file */
	SMTPD_WAIT_COMMIT, /* the queue is committing the message */
	SMTPD_WAIT_SPACE,  /* DATA or the first BDAT: may the content come? */
	SMTPD_WAIT_DELAY,  /* error delay past the soft limit */
};

/* The deadlines (smtpd_deadline.c): one timer each, armed per command line,
 * per transfer and once per session, never per read. */
struct smtpd_deadlines {
	struct event *command_ev; /* the whole next command line */
	struct event *data_ev;    /* the transfer's minimum rate */
	struct event *session_ev; /* the whole session */
	int line_taken;           /* a line was taken since command_ev was armed */
	int transfer;             /* a DATA or BDAT transfer is under way */
	struct timespec transfer_start;
	uint64_t transfer_bytes;  /* content bytes of the transfer so far */
	int session_over;         /* the cap struck while the queue had to answer */
};

/* The transaction: from MAIL to the reply to the end of the message. */
struct smtpd_tx {
	struct envelope env;
	int fd;                   /* the message file, from the queue */
	int utf8;                 /* MAIL carried SMTPUTF8 */
	int chunking;             /* BDAT has started the content */
	uint64_t size_hint;       /* MAIL's SIZE=, 0 without */
	struct data_filter df;
	uint64_t written;         /* content bytes written to fd */
	int write_error;          /* errno of the first failed write */
	int has_mail_reply, has_final_reply; /* a rule's accept code replaces ours */
	struct rule_reply mail_reply, final_reply;
	struct rule_hold hold;    /* ctx:hold(): committed into hold/, for the log */
	size_t wlen;
	char wbuf[SMTPD_WRITE_BUFFER]; /* last: not zeroed by smtpd_tx_new */
};

struct smtp_session {
	const struct config *cfg;
	const struct listener_config *listener;
	struct event_base *base;
	struct bufferevent *bev;
	int queue_fd;
	struct event *queue_ev, *delay_ev, *term_ev;
	struct smtpd_deadlines dl;

	struct rules *rules;
	struct rule_ctx rctx;
	int conn_skip_all;   /* rctx.skip_all as the connection stages left it */
	char conn_quarantine[RULE_QUARANTINE_MAX];
	int connect_skip_all; /* the same after the connect stage alone: STARTTLS */
	char connect_quarantine[RULE_QUARANTINE_MAX];

	struct tls_server *tls; /* NULL when no certificate is configured */
	int tls_pending;        /* STARTTLS answered: the handshake starts after this read */
	int tls_handshaking;
	int tls_active;
	struct tls_info tls_info;

	struct smtp_auth *sasl; /* NULL when the listener offers no AUTH */
	int auth_pending;       /* inside an AUTH exchange: lines are responses */
	char auth_mech[24];
	int authenticated;
	char authid[256];
	unsigned auth_failures;

	char client_ip[INET6_ADDRSTRLEN];
	unsigned client_port;
	char server_ip[INET6_ADDRSTRLEN];
	unsigned server_port;
	char helo[SMTP_DOMAIN_MAX + 1];
	int esmtp;

	enum smtpd_state state;
	enum smtpd_wait wait;
	struct smtpd_tx *tx;

	/* BDAT chunk being read */
	uint64_t bdat_left;
	int bdat_last;
	enum smtpd_state bdat_prev; /* where a refused chunk returns to */
	const char *bdat_refusal; /* the chunk is read only to be refused */

	int discarding;      /* inside an overlong command line */
	int last_code;       /* of the latest reply */
	int last_uncounted;  /* the latest reply, a 4xx, is no error of the client's */
	unsigned errors;
	int shutdown;        /* SIGTERM: leave at the next idle point */
	int eof;             /* the client has sent all it will send */
	int closing;
	int finished;        /* the summary is logged, the loop told to stop */
	const char *result;  /* for the summary line */
	char *summary;       /* where the summary line goes */
	size_t summary_len;

	unsigned cmd_total[SMTP_VERB_COUNT];
	unsigned cmd_ok[SMTP_VERB_COUNT];
	unsigned queued;
	char ids[SMTPD_IDS_LOG_MAX];
};

/* smtpd_session.c: the connection. */

/* smtpd_reply - send one reply line (printf style, CRLF added). */
void smtpd_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* smtpd_set_read_timeout - the inactivity limit for what we wait for now. */
void smtpd_set_read_timeout(struct smtp_session *s, unsigned seconds);
/* smtpd_reply_rule - send a reply a rule chose. */
void smtpd_reply_rule(struct smtp_session *s, const struct rule_reply *r);
/* smtpd_rules - run a stage's rules for the session. */
enum rule_status smtpd_rules(struct smtp_session *s, enum rule_stage stage,
			     struct rule_verdict *v);

/* smtpd_rules_used - whether anything runs at stage: rules, or the
 * listener's milters ([listener:NAME] milters, before the rules). */
int smtpd_rules_used(const struct smtp_session *s, enum rule_stage stage);
/* smtpd_rules_refused - act on a verdict that refuses: 1 when the command is refused. */
int smtpd_rules_refused(struct smtp_session *s, enum rule_stage stage,
			const struct rule_verdict *v);
/* smtpd_rules_accept_reply - whether the verdict's accept code replaces ours. */
int smtpd_rules_accept_reply(const struct rule_verdict *v);
/* smtpd_reply_uncounted - the reply just sent counts as no error. */
void smtpd_reply_uncounted(struct smtp_session *s);

/* smtpd_error_limits - after a failed command: slow down or hang up. */
void smtpd_error_limits(struct smtp_session *s);
/* smtpd_input_process - handle whatever the client sent, as far as we may. */
void smtpd_input_process(struct smtp_session *s);
/* smtpd_close - stop reading; finish once the last reply is out. */
void smtpd_close(struct smtp_session *s, const char *result);
/* smtpd_finish - write the summary line and stop the loop. */
void smtpd_finish(struct smtp_session *s);
/* smtpd_idle_timeout - the client stayed silent too long: 421 and close. */
void smtpd_idle_timeout(struct smtp_session *s);

/* smtpd_deadline.c: the deadlines. */

/* smtpd_deadline_init - the session's deadline timers; the session cap starts. */
int smtpd_deadline_init(struct smtp_session *s);
/* smtpd_deadline_update - after input processing: run the command deadline
 * while the session waits for a command line, stop it otherwise. */
void smtpd_deadline_update(struct smtp_session *s);
/* smtpd_deadline_session_due - cut a session whose cap struck during a queue
 * request, once it is answered; 1 when the session is cut. */
int smtpd_deadline_session_due(struct smtp_session *s);
/* smtpd_deadline_transfer_start - DATA or BDAT: the rate clock starts (once a message). */
void smtpd_deadline_transfer_start(struct smtp_session *s);
/* smtpd_deadline_transfer_end - the content is complete or abandoned. */
void smtpd_deadline_transfer_end(struct smtp_session *s);

/* smtpd_commands.c: the commands. */

/* smtpd_command - run one command line. */
void smtpd_command(struct smtp_session *s, const char *line, size_t len);
/* smtpd_state_refusal - the command table's reply to verb in this state, or NULL. */
const char *smtpd_state_refusal(const struct smtp_session *s, enum smtp_verb verb);
/* smtpd_auth_response - a line of the client inside an AUTH exchange. */
void smtpd_auth_response(struct smtp_session *s, const char *line);
/* smtpd_auth_too_long - a response past SMTPD_AUTH_LINE_MAX ends the exchange. */
void smtpd_auth_too_long(struct smtp_session *s);

/* smtpd_transaction.c: the transaction. */

/* smtpd_tx_free - end the transaction; the queue drops an uncommitted file. */
void smtpd_tx_free(struct smtp_session *s, int tell_queue);
/* smtpd_tx_reset - abandon any transaction and go back to the ready state. */
void smtpd_tx_reset(struct smtp_session *s);
/* smtpd_queue_cb - answers from the queue process. */
void smtpd_queue_cb(evutil_socket_t fd, short what, void *arg);
/* smtpd_content_process - feed DATA or BDAT bytes; 0 when more is needed. */
int smtpd_content_process(struct smtp_session *s, struct evbuffer *in);
/* smtpd_cmd_mail - MAIL: start a transaction; the queue creates its file. */
void smtpd_cmd_mail(struct smtp_session *s, const char *args);
/* smtpd_cmd_rcpt - RCPT: add a recipient. */
void smtpd_cmd_rcpt(struct smtp_session *s, const char *args);
/* smtpd_cmd_data - DATA: receive dot-terminated content. */
void smtpd_cmd_data(struct smtp_session *s, const char *args);
/* smtpd_cmd_bdat - BDAT (RFC 3030): a chunk of exactly the given size. */
void smtpd_cmd_bdat(struct smtp_session *s, const char *args);
struct message;
/* smtpd_preq_load - read the message back from its file (for the rules). */
struct message *smtpd_preq_load(struct smtpd_tx *tx);
/* smtpd_preq_store - write a changed message over the file's content; 0 or an errno value. */
int smtpd_preq_store(struct smtpd_tx *tx, const struct message *msg);

/* smtpd_delegation.c: a delegation listener's returned mail. */

/* smtpd_delegation_check - check the token and mark the envelope: 1 when refused (replied). */
int smtpd_delegation_check(struct smtp_session *s);

#endif
