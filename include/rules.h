/*
 * rules.h - the Lua rule engine: the administrator's policy at every stage.
 *
 * A rules file is compiled once, in the master (at start and on SIGHUP),
 * into a ruleset that owns its own Lua state; forked sessions inherit it
 * ready to run. A stage runs its rules top to bottom against a context
 * (struct rule_ctx) that the caller fills in, and ends with a verdict: go
 * on, accept, refuse, quarantine, or an error that must never turn into an
 * accept. The rule API seen from Lua is documented in docs/rules.md.
 */
#ifndef VSMTPD_RULES_H
#define VSMTPD_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "message.h"
#include "queue_client.h" /* enum queue_service */

enum rule_stage {
	RULE_STAGE_CONNECT,
	RULE_STAGE_AUTHENTICATE,
	RULE_STAGE_HELO,
	RULE_STAGE_MAIL,
	RULE_STAGE_RCPT,
	RULE_STAGE_PREQ,
	RULE_STAGE_POSTQ,
	RULE_STAGE_DELIVERY,
	RULE_STAGE_COUNT
};

/* What a stage decided. */
enum rule_status {
	RULE_NEXT,       /* every rule said next: carry on as usual */
	RULE_ACCEPT,     /* the rest of this stage is skipped */
	RULE_FACCEPT,    /* every later rule of every stage is skipped */
	RULE_DENY,       /* refuse; online: reply and close */
	RULE_REJECT,     /* refuse this command only */
	RULE_INFO,       /* reply with the code, nothing changes */
	RULE_QUARANTINE, /* normal reply; the message goes to quarantine/<name> */
	RULE_ERROR,      /* a rule failed: 451 4.3.0, never an accept */
	RULE_DELEGATE,   /* postq, delivery: a delegate rule; send the message to its filter */
};

#define RULE_TEXT_MAX 512
#define RULE_NAME_MAX 128
#define RULE_QUARANTINE_MAX 128
#define RULE_FILE_NAME_MAX 33 /* a queue id, NUL included */
#define RULE_HOLD_MAX 256     /* a hold reason, NUL included */
#define RULE_SERVICE_NAME_MAX 33 /* a [service:NAME] name, NUL included */

/*
 * How a recipient is to be delivered, as the delivery-stage rules chose
 * (ctx:deliver, ctx:forward, ...). ROUTE_DEFAULT when no rule chose.
 */
enum rule_route {
	ROUTE_DEFAULT, /* no choice: the local transport for local domains, else MX */
	ROUTE_DELIVER, /* ctx:deliver: the same, chosen explicitly */
	ROUTE_FORWARD, /* ctx:forward(rcpt, target): SMTP to target (host[:port], [addr]:port) */
	ROUTE_MAILDIR, /* ctx:maildir(rcpt) */
	ROUTE_MBOX,    /* ctx:mbox(rcpt) */
	ROUTE_LMTP,    /* ctx:lmtp(rcpt [, target]): target "" for [delivery] lmtp */
	ROUTE_NONE,    /* ctx:disable_delivery(rcpt): counted as delivered, sent nowhere */
};

#define RULE_ROUTE_TARGET_MAX 256

/*
 * A message a rule sends with send_mail(): the file (a whole message,
 * header and body) named by path in the rules folder, from the sender to
 * the recipients, through relay (host[:port]) or, when relay is "", the
 * usual routing. It is queued like any other message.
 */
struct rule_mail {
	const char *from;       /* "" for the null sender */
	const char *const *to;  /* addresses, at least one */
	size_t nto;
	const char *path;       /* relative to the rules folder */
	const char *relay;      /* "" for the usual routing */
};

/* An SMTP reply chosen by a rule. */
struct rule_reply {
	int code;                /* 200..599 */
	char enhanced[16];       /* "5.7.1", or "" */
	char text[RULE_TEXT_MAX];
};

struct rule_verdict {
	enum rule_status status;
	int has_reply;           /* reply holds the code to send */
	struct rule_reply reply; /* given by the rule, or the status's default */
	char quarantine[RULE_QUARANTINE_MAX]; /* RULE_QUARANTINE: the queue's name */
	char rule[RULE_NAME_MAX];             /* the rule that decided, "" for none */
	unsigned delegate_rule;               /* RULE_DELEGATE: the rule's index, from 1 */
	char delegate_service[RULE_SERVICE_NAME_MAX]; /* RULE_DELEGATE: its [service:NAME] */
};

/*
 * A hold the rules put on a message with ctx:hold([reason]): it is
 * committed into hold/ instead of queue/ and not delivered until an
 * administrator releases it. A mark, not a verdict: the rules go on.
 */
struct rule_hold {
	int set;
	char reason[RULE_HOLD_MAX];  /* the rule's reason, or one naming the rule */
	char rule[RULE_NAME_MAX];    /* the rule that held it */
	enum rule_stage stage;       /* the stage it ran at */
};

/*
 * What the rules see and may change. The caller owns everything; the engine
 * reads the fields when a rule asks and edits env and msg in place.
 */
struct rule_ctx {
	/* the connection */
	const char *client_ip;
	unsigned client_port;
	const char *server_ip;
	unsigned server_port;
	const char *server_name;
	const char *listener;       /* the listener's name */
	const char *listener_kind;  /* smtp, submission, submissions */
	int64_t connection_timestamp;
	int is_secured;
	const char *tls_version;    /* "TLSv1.3", when is_secured */
	const char *tls_cipher;
	int tls_bits;
	const char *tls_sni;        /* the name the client asked for, "" for none */
	int is_authenticated;
	const char *auth_mechanism; /* NULL when not authenticated */
	const char *auth_authid;
	const char *helo;           /* "" before HELO / EHLO */

	/* the transaction: env is NULL before MAIL */
	struct envelope *env;
	const char *rcpt;           /* the rcpt stage's recipient */
	int64_t mail_timestamp;
	struct message *msg;        /* from preq on, NULL before */

	/*
	 * What a rule may ask of the world outside the sandbox: whether an
	 * account exists, saving a copy of the message. 0, or an errno value
	 * (ENOENT: no such account). NULL when there is nobody to ask.
	 */
	int (*service)(void *arg, enum queue_service kind, const char *name, const char *file,
		       const char *data, size_t len);
	/*
	 * send_mail(): queue the message mail describes; id gets its queue id
	 * (SPOOL_ID_LEN + 1 bytes). 0, or an errno value: ENOENT (no such
	 * file), EACCES (a path outside the rules folder), EBADMSG (the file is
	 * no message that can be sent: see send_mail.h), EFBIG. With the same
	 * service_arg; NULL when there is nobody to ask.
	 */
	int (*send_mail)(void *arg, const struct rule_mail *mail, char *id);
	void *service_arg;

	/*
	 * The delivery stage's transport choices: route(arg, rcpt, kind,
	 * target) for one recipient (rcpt an address of env), or for every
	 * recipient when rcpt is NULL (the _all forms). target is "" unless
	 * kind takes one. Returns 0, ENOENT when rcpt is not a recipient,
	 * EINVAL when target is no destination. NULL outside the delivery
	 * stage: the methods then raise.
	 */
	int (*route)(void *arg, const char *rcpt, enum rule_route kind, const char *target);
	void *route_arg;

	/* connection-wide state the engine keeps between stages */
	int skip_all;               /* faccept or quarantine seen: no more rules */
	char quarantine[RULE_QUARANTINE_MAX]; /* set by a connect..helo quarantine */
	void *vars;                 /* connection variables (cJSON objects), engine-owned */
	void *tx_vars;              /* the transaction's */
	struct rule_hold hold;      /* ctx:hold() before MAIL: every message of the connection */
	struct rule_hold tx_hold;   /* ctx:hold() from MAIL on: this message */
	void *dkim;                 /* ctx:dkim()'s results for this message, engine-owned */
	void *spf;                  /* ctx:spf() / ctx:spf_helo() results kept, engine-owned */
	void *dmarc;                /* ctx:dmarc()'s result for this message, engine-owned */
	void *arc;                  /* ctx:arc()'s result for this message, engine-owned */
	void *milter;               /* ctx:milter()'s conversations of the connection, engine-owned */

	/*
	 * postq of a message queued again at a delegate rule: the rule's index
	 * (from 1) the stage starts at, 0 for the first rule. delegated_rule
	 * is that index too when the message came back from the rule's
	 * filter: the rule's function runs; otherwise the rule stops the
	 * stage with RULE_DELEGATE (the message goes to the filter). A message
	 * back from a delivery delegate rule has delegated_delivery set and
	 * delegated_rule that rule's index in the delivery stage, which runs
	 * from the start as always.
	 */
	unsigned postq_start;
	unsigned delegated_rule;
	int delegated_delivery;
};

struct rules;

struct rules_limits {
	unsigned instructions; /* per rule call */
	uint64_t memory;       /* bytes a rule call may add to the state */
	unsigned cpu_ms;       /* CPU time per rule call, 0 for none: see below */
	unsigned load_ms;      /* CPU time loading the file may take, 0 for 250 ms */
};

struct config;
struct dkim_config;
struct service_config;
/* rules_limits_of - the limits a configuration sets for its rules. */
struct rules_limits rules_limits_of(const struct config *cfg);

/*
 * The CPU time limit is the backstop for what the instruction budget cannot
 * see: time spent inside one library call (a backtracking string pattern).
 * Such a call cannot be stopped safely, so the process is: when a rule call
 * runs past cpu_ms, fn (async-signal-safe, set with rules_set_overrun) is
 * called from the signal handler and the process exits with status
 * RULES_EXIT_OVERRUN. Without fn, a line goes to stderr first. fn may read
 * rules_running() to name the rule.
 */
#define RULES_EXIT_OVERRUN 3
typedef void (*rules_overrun_fn)(void);
void rules_set_overrun(rules_overrun_fn fn);

/*
 * The rule call under way in this process: its stage, the rule's name and
 * "file:line", as the log names rules; rule and where are NULL between
 * calls. The strings stay valid until the call returns, so an overrun
 * handler may copy them (they are read, never written, from the handler).
 */
struct rules_running {
	enum rule_stage stage;
	const char *rule;
	const char *where;
};

/* rules_running - the rule call under way (see above); async-signal-safe. */
const volatile struct rules_running *rules_running(void);

/* Settings from the configuration that the rules can read as `config`. */
struct rules_settings {
	const char *hostname;
	const char *local_domains;    /* space-separated */
	const char *trusted_networks; /* space-separated */
	int allow_routing_local_parts; /* [rules] allow_routing_local_parts */
	const char *dns_servers;      /* for `dns`: NULL or "" for the system's resolvers */
	unsigned dns_timeout_ms;      /* per dns.* call; 0 for the default (5 s) */
	const char *dns_zone; /* NULL, or a zone file answering all DNS instead (offline tests) */
	const struct dkim_config *dkim; /* [dkim:NAME] signing keys, read when the rules load */
	size_t ndkim;
	/* [service:NAME]: kept as pointers, the configuration outlives the rules */
	const struct service_config *services;
	size_t nservices;
};

/*
 * rules_load - compile the rules file at path (and the modules and lists it
 * loads). Returns the ruleset, or NULL with "file:line: reason" in err.
 */
struct rules *rules_load(const char *path, const struct rules_limits *limits,
			 const struct rules_settings *settings, char *err, size_t errlen);

/*
 * rules_load_config - rules_load() with the file, limits and settings of a
 * configuration.
 */
struct rules *rules_load_config(const struct config *cfg, char *err, size_t errlen);

/* rules_free - release a ruleset (NULL is fine). */
void rules_free(struct rules *r);

/*
 * rules_forked - in a process just forked from the one that holds r,
 * before it closes the descriptors it inherited: let go of what belonged
 * to the parent (the DNS channel and its sockets, which the child makes
 * again at its first lookup). NULL is fine.
 */
void rules_forked(struct rules *r);

/* rules_path - the rules file a ruleset was compiled from (absolute). */
const char *rules_path(const struct rules *r);

/* rules_stage_used - whether the stage has any rule. */
int rules_stage_used(const struct rules *r, enum rule_stage stage);

/* rules_count - how many rules and actions the stage holds. */
size_t rules_count(const struct rules *r, enum rule_stage stage);

/*
 * rules_run - run the stage's rules against ctx; fills *v. Rules that fail
 * are logged with their name, file and line and give RULE_ERROR; a rule
 * whose error is a status (raised by a failed service call) gives that
 * status. A ctx with
 * skip_all set runs nothing (RULE_NEXT, or RULE_QUARANTINE when ctx holds a
 * quarantine name). Returns v->status.
 */
enum rule_status rules_run(struct rules *r, enum rule_stage stage, struct rule_ctx *ctx,
			   struct rule_verdict *v);

/*
 * rules_run_milters - run the milters of a listener ([listener:NAME]
 * milters: service names separated by single spaces) at stage (connect to
 * preq), in order, each as a rule calling ctx:milter(name) would; the
 * first whose status is not next decides v (v->rule "milter NAME").
 * Nothing runs for a ctx with skip_all set. Returns v->status; the
 * stage's rules run after them when it is RULE_NEXT.
 */
enum rule_status rules_run_milters(struct rules *r, enum rule_stage stage, struct rule_ctx *ctx,
				   const char *names, struct rule_verdict *v);

/* rules_ctx_release - free what the engine keeps in ctx (its variables, holds,
 * SPF results). */
void rules_ctx_release(struct rule_ctx *ctx);

/*
 * rules_hold - the hold the rules put on the transaction's message: the
 * transaction's own, else the connection's; NULL when none.
 */
const struct rule_hold *rules_hold(const struct rule_ctx *ctx);

/* rules_tx_end - the transaction is over: forget its variables, its hold and
 * its SPF, DKIM and DMARC results. */
void rules_tx_end(struct rule_ctx *ctx);

/*
 * rules_tx_vars - the variables set so far for the transaction in ctx
 * (connection ones overridden by transaction ones) as a JSON object text to
 * store in the envelope; malloc'ed, NULL when there are none.
 */
char *rules_tx_vars(const struct rule_ctx *ctx);

/*
 * rules_dmarc_record - what an RFC 7489 aggregate report needs of the
 * transaction's message, when ctx:dmarc() ran for it: a JSON object text
 * (source_ip, envelope_from, header_from, result, disposition, the
 * published policy, the SPF and DKIM results; see docs/spool.md) for the
 * envelope's "dmarc"; malloc'ed, NULL when ctx:dmarc() did not run.
 */
char *rules_dmarc_record(const struct rule_ctx *ctx);

/*
 * rules_restore - bring everything the rules can reach back to what the
 * rules file left when it was loaded: its locals (upvalues), its tables and
 * their metatables, its modules, the globals and libraries; tables made
 * since become garbage. math.random is seeded afresh. So a connection
 * served after it sees the rules as a freshly forked session process would.
 * Called by a session process between two connections; cheap when no rule
 * ran since the last restore (nothing is done), otherwise it compares every
 * table the rules can reach with its copy (see src/rules/rules_snapshot.c
 * for the cost). The registry is put back too: no reference taken with
 * luaL_ref() after the load may be held across it, and it is called
 * between stages, never from inside a rule call. The delivery worker and
 * vsmtpctl do not call it: there the file's own state lives on across
 * messages.
 * 0, or -1 when the state cannot be restored (out of memory): the caller
 * must then not serve another connection with r. NULL is fine.
 */
int rules_restore(struct rules *r);

/* rules_reseed - seed math.random afresh: call once in each forked process. */
void rules_reseed(struct rules *r);

/* rules_stage_name - "connect" ... "delivery". */
const char *rules_stage_name(enum rule_stage stage);

/* rules_status_name - "next", "accept", ... */
const char *rules_status_name(enum rule_status status);

/*
 * rules_trace - when set, called after each rule with its name, file:line,
 * what it returned; used by `vsmtpctl rules run`. NULL by default.
 */
typedef void (*rules_trace_fn)(void *arg, enum rule_stage stage, const char *rule,
			       const char *where, const char *result);
void rules_set_trace(struct rules *r, rules_trace_fn fn, void *arg);

#endif
