/*
 * smtpd_commands.c - the commands of an SMTP session (RFC 5321), and
 * their dispatch.
 *
 * A command table maps each verb to its handler, the session states it is
 * refused in (with the reply for each), and flags: whether it takes an
 * argument, whether it is allowed before STARTTLS on a listener that
 * requires TLS and before AUTH on one that requires it, whether the handler
 * checks the state itself, and whether it counts its own success. The
 * dispatch applies them in that order: syntax, state, TLS, AUTH; a handler
 * keeps only the checks that belong to it.
 *
 * HELO and EHLO identify the client and reset the transaction; STARTTLS
 * hands the connection to TLS after this read; AUTH (RFC 4954) runs an
 * exchange whose lines are responses, not commands, until it ends. The
 * transaction's commands (MAIL, RCPT, DATA, BDAT) are in smtpd_transaction.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"
#include "netaddr.h"
#include "rules.h"
#include "smtp_parse.h"
#include "smtpd_auth.h"
#include "smtpd_internal.h"

/* smtpd_starttls_offered - whether STARTTLS may be used now. */
static int smtpd_starttls_offered(const struct smtp_session *s)
{
	return s->tls != NULL && s->listener->tls != LISTENER_TLS_NONE && !s->tls_active;
}

/* smtpd_auth_plaintext_ok - whether this client may authenticate without
 * TLS: never on a listener that requires TLS first. */
static int smtpd_auth_plaintext_ok(const struct smtp_session *s)
{
	return s->cfg->auth_allow_plaintext && s->listener->tls != LISTENER_TLS_ENCRYPT &&
	       netaddr_list_contains(s->cfg->auth_plaintext_networks, s->client_ip);
}

/* smtpd_auth_offered - whether EHLO lists AUTH now. */
static int smtpd_auth_offered(const struct smtp_session *s)
{
	return s->sasl != NULL && !s->authenticated &&
	       (s->tls_active || smtpd_auth_plaintext_ok(s));
}

/* smtpd_cmd_helo - HELO and EHLO: identify the client, reset the transaction. */
static void smtpd_cmd_helo(struct smtp_session *s, const char *args, int esmtp)
{
	const char *err = smtp_helo_parse(args);
	char helo[sizeof(s->helo)];
	const char *greeting = s->cfg->hostname, *auth;
	struct rule_verdict v;
	int starttls;
	size_t len;

	if (err != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	args += strspn(args, " \t");
	len = strlen(args);
	while (len > 0 && (args[len - 1] == ' ' || args[len - 1] == '\t'))
		len--;
	snprintf(helo, sizeof(helo), "%.*s", (int)len, args);
	smtpd_tx_reset(s);
	s->rctx.helo = helo;
	smtpd_rules(s, RULE_STAGE_HELO, &v);
	s->rctx.helo = s->helo;
	if (smtpd_rules_refused(s, RULE_STAGE_HELO, &v))
		return;
	memcpy(s->helo, helo, sizeof(s->helo));
	s->conn_skip_all = s->rctx.skip_all;
	memcpy(s->conn_quarantine, s->rctx.quarantine, sizeof(s->conn_quarantine));
	s->esmtp = esmtp;
	s->state = SMTPD_STATE_READY;
	if (smtpd_rules_accept_reply(&v) && v.reply.text[0])
		greeting = v.reply.text;
	if (!esmtp) {
		smtpd_reply(s, "250 %s", greeting);
		return;
	}
	smtpd_reply(s, "250-%s", greeting);
	smtpd_reply(s, "250-PIPELINING");
	smtpd_reply(s, "250-SIZE %" PRIu64, s->cfg->max_message_size);
	smtpd_reply(s, "250-8BITMIME");
	smtpd_reply(s, "250-SMTPUTF8");
	smtpd_reply(s, "250-ENHANCEDSTATUSCODES");
	smtpd_reply(s, "250-CHUNKING");
	starttls = smtpd_starttls_offered(s);
	auth = smtpd_auth_offered(s) ? smtpd_auth_mechanisms(s->sasl) : "";
	smtpd_reply(s, "250%sDSN", starttls || auth[0] ? "-" : " ");
	if (starttls)
		smtpd_reply(s, "250%sSTARTTLS", auth[0] ? "-" : " ");
	if (auth[0])
		smtpd_reply(s, "250 AUTH %s", auth);
}

/* smtpd_cmd_ehlo - EHLO. */
static void smtpd_cmd_ehlo(struct smtp_session *s, const char *args)
{
	smtpd_cmd_helo(s, args, 1);
}

/* smtpd_cmd_helo_plain - HELO. */
static void smtpd_cmd_helo_plain(struct smtp_session *s, const char *args)
{
	smtpd_cmd_helo(s, args, 0);
}

/* smtpd_cmd_rset - RSET. */
static void smtpd_cmd_rset(struct smtp_session *s, const char *args)
{
	smtpd_tx_reset(s);
	smtpd_reply(s, "250 2.0.0 Ok");
}

/* smtpd_cmd_noop - NOOP (an argument is allowed and ignored). */
static void smtpd_cmd_noop(struct smtp_session *s, const char *args)
{
	smtpd_reply(s, "250 2.0.0 Ok");
}

/* smtpd_cmd_quit - QUIT. */
static void smtpd_cmd_quit(struct smtp_session *s, const char *args)
{
	smtpd_reply(s, "221 2.0.0 Bye");
	smtpd_close(s, "ok");
}

/* smtpd_cmd_help - HELP. */
static void smtpd_cmd_help(struct smtp_session *s, const char *args)
{
	smtpd_reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT");
	smtpd_reply(s, "214 2.0.0 HELP VRFY EXPN STARTTLS AUTH; see RFC 5321");
}

/* smtpd_cmd_vrfy - VRFY: never tells whether a user exists. */
static void smtpd_cmd_vrfy(struct smtp_session *s, const char *args)
{
	if (*args == '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	smtpd_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

/* smtpd_cmd_expn - EXPN: lists are not disclosed. */
static void smtpd_cmd_expn(struct smtp_session *s, const char *args)
{
	smtpd_reply(s, "502 5.5.1 Error: EXPN not supported");
}

/* smtpd_cmd_unknown - anything else. */
static void smtpd_cmd_unknown(struct smtp_session *s, const char *args)
{
	smtpd_reply(s, "500 5.5.2 Error: command not recognized");
}

/* smtpd_cmd_starttls - STARTTLS (RFC 3207): the handshake follows this read. */
static void smtpd_cmd_starttls(struct smtp_session *s, const char *args)
{
	const char *err;

	if (s->tls_active) {
		smtpd_reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (!smtpd_starttls_offered(s)) {
		smtpd_reply(s, "502 5.5.1 Error: STARTTLS not available");
		return;
	}
	if ((err = smtpd_state_refusal(s, SMTP_VERB_STARTTLS)) != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	s->tls_pending = 1;
}

/* smtpd_auth_failed - count a failed AUTH; past the limit, hang up. */
static void smtpd_auth_failed(struct smtp_session *s)
{
	if (++s->auth_failures < s->cfg->auth_max_failures)
		return;
	log_notice("%s: too many failed authentication attempts (%u)", s->client_ip,
		   s->auth_failures);
	smtpd_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts",
		   s->cfg->hostname);
	smtpd_close(s, "too many failed authentication attempts");
}

/* smtpd_auth_end - an exchange is over without success: a fresh start for the next. */
static void smtpd_auth_end(struct smtp_session *s)
{
	s->auth_pending = 0;
	if (smtpd_auth_reset(s->sasl) < 0)
		log_err("%s: cannot reset the SASL state", s->client_ip);
}

/* smtpd_auth_accepted - Cyrus accepted the credentials: now the rules decide. */
static void smtpd_auth_accepted(struct smtp_session *s)
{
	struct rule_verdict v;

	s->auth_pending = 0;
	snprintf(s->authid, sizeof(s->authid), "%s", smtpd_auth_user(s->sasl));
	s->rctx.is_authenticated = 1;
	s->rctx.auth_mechanism = s->auth_mech;
	s->rctx.auth_authid = s->authid;
	smtpd_rules(s, RULE_STAGE_AUTHENTICATE, &v);
	if (v.status == RULE_DENY || v.status == RULE_REJECT || v.status == RULE_INFO ||
	    v.status == RULE_ERROR) {
		s->rctx.is_authenticated = 0;
		s->rctx.auth_mechanism = NULL;
		s->rctx.auth_authid = NULL;
		log_notice("%s: authentication of %s with %s refused by rule \"%s\": %s",
			   s->client_ip, s->authid, s->auth_mech, v.rule,
			   rules_status_name(v.status));
		s->authid[0] = '\0';
		smtpd_auth_end(s);
		if (v.status == RULE_ERROR) {
			smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
			return;
		}
		smtpd_reply(s, "535 5.7.8 Error: authentication failed");
		if (v.status == RULE_DENY)
			smtpd_close(s, "denied by rules");
		else
			smtpd_auth_failed(s);
		return;
	}
	s->authenticated = 1;
	/* Decided outside a transaction: a faccept or quarantine here lasts
	 * for the connection, as one at connect or helo does. */
	s->conn_skip_all = s->rctx.skip_all;
	memcpy(s->conn_quarantine, s->rctx.quarantine, sizeof(s->conn_quarantine));
	s->cmd_ok[SMTP_VERB_AUTH]++;
	log_info("%s: authenticated as %s with %s", s->client_ip, s->authid, s->auth_mech);
	smtpd_reply(s, "235 2.7.0 Authentication successful");
}

/* smtpd_auth_outcome - answer one step of the exchange. */
static void smtpd_auth_outcome(struct smtp_session *s, enum smtpd_auth_result r,
			      const char *challenge, const char *why)
{
	switch (r) {
	case SMTPD_AUTH_CONTINUE:
		/* Not through smtpd_reply: a challenge may be longer than its line. */
		s->auth_pending = 1;
		s->last_code = 334;
		log_debug("%s: >>> 334 (challenge, %zu bytes)", s->client_ip, strlen(challenge));
		evbuffer_add_printf(bufferevent_get_output(s->bev), "334 %s\r\n", challenge);
		return;
	case SMTPD_AUTH_OK:
		smtpd_auth_accepted(s);
		return;
	case SMTPD_AUTH_NOMECH:
		smtpd_auth_end(s);
		smtpd_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	case SMTPD_AUTH_TEMP:
		log_warn("%s: authentication with %s could not be checked: %s", s->client_ip,
			 s->auth_mech, why);
		smtpd_auth_end(s);
		smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	case SMTPD_AUTH_BAD_BASE64:
		log_notice("%s: authentication failed with %s: %s", s->client_ip, s->auth_mech,
			   why);
		smtpd_auth_end(s);
		smtpd_reply(s, "501 5.5.2 Error: cannot decode response");
		smtpd_auth_failed(s);
		return;
	case SMTPD_AUTH_FAIL:
		log_notice("%s: authentication failed with %s: %s", s->client_ip, s->auth_mech,
			   why);
		smtpd_auth_end(s);
		smtpd_reply(s, "535 5.7.8 Error: authentication failed");
		smtpd_auth_failed(s);
		return;
	}
}

/* smtpd_auth_response - a line of the client inside an AUTH exchange. */
void smtpd_auth_response(struct smtp_session *s, const char *line)
{
	char challenge[SMTPD_AUTH_LINE_MAX + 4];
	const char *why = "";
	enum smtpd_auth_result r;

	log_debug("%s: <<< (AUTH response, %zu bytes)", s->client_ip, strlen(line));
	s->last_code = 0;
	if (strcmp(line, "*") == 0) {
		log_notice("%s: authentication with %s cancelled by the client", s->client_ip,
			   s->auth_mech);
		smtpd_auth_end(s);
		smtpd_reply(s, "501 5.0.0 Authentication cancelled");
		smtpd_auth_failed(s);
		return;
	}
	r = smtpd_auth_step(s->sasl, line, challenge, sizeof(challenge), &why);
	smtpd_auth_outcome(s, r, challenge, why);
}

/* smtpd_auth_too_long - a response past SMTPD_AUTH_LINE_MAX ends the exchange. */
void smtpd_auth_too_long(struct smtp_session *s)
{
	log_notice("%s: authentication with %s: response line too long", s->client_ip,
		   s->auth_mech);
	smtpd_auth_end(s);
	smtpd_reply(s, "500 5.5.6 Authentication exchange line is too long");
	smtpd_auth_failed(s);
}

/* smtpd_cmd_auth - AUTH mechanism [initial-response] (RFC 4954). */
static void smtpd_cmd_auth(struct smtp_session *s, const char *args)
{
	char challenge[SMTPD_AUTH_LINE_MAX + 4], mech[sizeof(s->auth_mech)];
	const char *response = NULL, *why = "", *sp;
	enum smtpd_auth_result r;
	size_t n;

	if (s->listener->auth == LISTENER_AUTH_NO) {
		smtpd_reply(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (s->sasl == NULL) {
		smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	if (s->state == SMTPD_STATE_INIT) {
		smtpd_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->authenticated) {
		smtpd_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->tx != NULL) {
		smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (!s->tls_active && !smtpd_auth_plaintext_ok(s)) {
		if (s->listener->tls == LISTENER_TLS_ENCRYPT)
			smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		else
			smtpd_reply(s, "538 5.7.11 Encryption required for requested "
				      "authentication mechanism");
		return;
	}
	n = strcspn(args, " ");
	sp = args + n;
	if (n == 0 || n >= sizeof(mech) || (*sp == ' ' && (sp[1] == '\0' || strchr(sp + 1, ' ')))) {
		smtpd_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	memcpy(mech, args, n);
	mech[n] = '\0';
	for (char *p = mech; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	if (*sp == ' ')
		response = sp + 1;
	memcpy(s->auth_mech, mech, sizeof(mech));
	r = smtpd_auth_start(s->sasl, mech, response, challenge, sizeof(challenge), &why);
	smtpd_auth_outcome(s, r, challenge, why);
}

/* What the command table says of a verb, besides its handler. */
enum smtpd_cmd_flag {
	SMTPD_CMD_NO_ARGS = 1 << 0,   /* an argument is refused: "501 5.5.4 Syntax: VERB" */
	SMTPD_CMD_PRE_TLS = 1 << 1,   /* allowed before STARTTLS where the listener requires it */
	SMTPD_CMD_PRE_AUTH = 1 << 2,  /* allowed before AUTH where the listener requires it */
	SMTPD_CMD_OWN_STATE = 1 << 3, /* the handler checks the state after checks of its own */
	SMTPD_CMD_OWN_COUNT = 1 << 4, /* counts its own success: its positive reply may come later */
};

#define SMTPD_CMD_ANYTIME (SMTPD_CMD_PRE_TLS | SMTPD_CMD_PRE_AUTH)

/* A verb: its handler, its reply in each session state it is refused in
 * (NULL: allowed in every state), and its flags. */
struct smtpd_cmd {
	void (*handler)(struct smtp_session *s, const char *args);
	const char *const *refusals; /* indexed by enum smtpd_state */
	unsigned flags;
};

/* MAIL: after HELO/EHLO, outside a transaction. */
static const char *const smtpd_mail_refusals[SMTPD_STATE_COUNT] = {
	[SMTPD_STATE_INIT] = "503 5.5.1 Error: send HELO/EHLO first",
	[SMTPD_STATE_MAIL] = "503 5.5.1 Error: nested MAIL command",
	[SMTPD_STATE_RCPT] = "503 5.5.1 Error: nested MAIL command",
	[SMTPD_STATE_DATA] = "503 5.5.1 Error: nested MAIL command",
	[SMTPD_STATE_BDAT] = "503 5.5.1 Error: nested MAIL command",
};

/* RCPT: inside a transaction. */
static const char *const smtpd_rcpt_refusals[SMTPD_STATE_COUNT] = {
	[SMTPD_STATE_INIT] = "503 5.5.1 Error: need MAIL command",
	[SMTPD_STATE_READY] = "503 5.5.1 Error: need MAIL command",
	[SMTPD_STATE_DATA] = "503 5.5.1 Error: need MAIL command",
	[SMTPD_STATE_BDAT] = "503 5.5.1 Error: need MAIL command",
};

/* DATA and BDAT: once there is a recipient. */
static const char *const smtpd_content_refusals[SMTPD_STATE_COUNT] = {
	[SMTPD_STATE_INIT] = "503 5.5.1 Error: need MAIL command",
	[SMTPD_STATE_READY] = "503 5.5.1 Error: need MAIL command",
	[SMTPD_STATE_MAIL] = "503 5.5.1 Error: need RCPT command",
};

/* STARTTLS: after EHLO, outside a transaction. */
static const char *const smtpd_starttls_refusals[SMTPD_STATE_COUNT] = {
	[SMTPD_STATE_INIT] = "503 5.5.1 Error: send EHLO first",
	[SMTPD_STATE_MAIL] = "503 5.5.1 Error: MAIL transaction in progress",
	[SMTPD_STATE_RCPT] = "503 5.5.1 Error: MAIL transaction in progress",
	[SMTPD_STATE_DATA] = "503 5.5.1 Error: MAIL transaction in progress",
	[SMTPD_STATE_BDAT] = "503 5.5.1 Error: MAIL transaction in progress",
};

/*
 * The commands. BDAT reads its chunk before it answers, refused or not;
 * STARTTLS refuses what TLS cannot do before its state; AUTH checks the
 * state among its own checks (RFC 4954's order of replies).
 */
static const struct smtpd_cmd smtpd_commands[SMTP_VERB_COUNT] = {
	[SMTP_VERB_UNKNOWN] = {smtpd_cmd_unknown, NULL, SMTPD_CMD_ANYTIME},
	[SMTP_VERB_HELO] = {smtpd_cmd_helo_plain, NULL, SMTPD_CMD_ANYTIME},
	[SMTP_VERB_EHLO] = {smtpd_cmd_ehlo, NULL, SMTPD_CMD_ANYTIME},
	[SMTP_VERB_MAIL] = {smtpd_cmd_mail, smtpd_mail_refusals, SMTPD_CMD_OWN_COUNT},
	[SMTP_VERB_RCPT] = {smtpd_cmd_rcpt, smtpd_rcpt_refusals, 0},
	[SMTP_VERB_DATA] = {smtpd_cmd_data, smtpd_content_refusals,
			    SMTPD_CMD_NO_ARGS | SMTPD_CMD_OWN_COUNT},
	[SMTP_VERB_BDAT] = {smtpd_cmd_bdat, smtpd_content_refusals,
			    SMTPD_CMD_ANYTIME | SMTPD_CMD_OWN_STATE | SMTPD_CMD_OWN_COUNT},
	[SMTP_VERB_RSET] = {smtpd_cmd_rset, NULL, SMTPD_CMD_ANYTIME | SMTPD_CMD_NO_ARGS},
	[SMTP_VERB_NOOP] = {smtpd_cmd_noop, NULL, SMTPD_CMD_ANYTIME},
	[SMTP_VERB_QUIT] = {smtpd_cmd_quit, NULL, SMTPD_CMD_ANYTIME | SMTPD_CMD_NO_ARGS},
	[SMTP_VERB_HELP] = {smtpd_cmd_help, NULL, SMTPD_CMD_ANYTIME},
	[SMTP_VERB_VRFY] = {smtpd_cmd_vrfy, NULL, SMTPD_CMD_ANYTIME},
	[SMTP_VERB_EXPN] = {smtpd_cmd_expn, NULL, SMTPD_CMD_ANYTIME},
	[SMTP_VERB_STARTTLS] = {smtpd_cmd_starttls, smtpd_starttls_refusals,
				SMTPD_CMD_ANYTIME | SMTPD_CMD_NO_ARGS | SMTPD_CMD_OWN_STATE},
	[SMTP_VERB_AUTH] = {smtpd_cmd_auth, NULL,
			    SMTPD_CMD_ANYTIME | SMTPD_CMD_OWN_STATE | SMTPD_CMD_OWN_COUNT},
};

/* smtpd_state_refusal - the command table's reply to verb in this state, or NULL. */
const char *smtpd_state_refusal(const struct smtp_session *s, enum smtp_verb verb)
{
	const char *const *refusals = smtpd_commands[verb].refusals;

	return refusals != NULL ? refusals[s->state] : NULL;
}

/* smtpd_command_allowed - the table's checks before a handler: 1 when it
 * runs, 0 when the command is refused (the reply is sent). */
static int smtpd_command_allowed(struct smtp_session *s, enum smtp_verb verb, const char *args)
{
	const struct smtpd_cmd *cmd = &smtpd_commands[verb];
	const char *err = NULL;

	if ((cmd->flags & SMTPD_CMD_NO_ARGS) && *args != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: %s", smtp_verb_name(verb));
		return 0;
	}
	if (!(cmd->flags & SMTPD_CMD_OWN_STATE))
		err = smtpd_state_refusal(s, verb);
	if (err == NULL && !(cmd->flags & SMTPD_CMD_PRE_TLS) &&
	    s->listener->tls == LISTENER_TLS_ENCRYPT && !s->tls_active)
		err = "530 5.7.0 Must issue a STARTTLS command first";
	if (err == NULL && !(cmd->flags & SMTPD_CMD_PRE_AUTH) &&
	    s->listener->auth == LISTENER_AUTH_REQUIRED && !s->authenticated)
		err = "530 5.7.0 Authentication required";
	if (err != NULL)
		smtpd_reply(s, "%s", err);
	return err == NULL;
}

/* smtpd_command - run one command line. */
void smtpd_command(struct smtp_session *s, const char *line, size_t len)
{
	const char *err, *args;
	enum smtp_verb verb = smtp_verb_parse(line, &args);

	if (s->shutdown && s->tx == NULL) {
		smtpd_reply(s, "421 4.3.2 %s Service shutting down, closing connection",
			   s->cfg->hostname);
		smtpd_close(s, "shutdown");
		return;
	}
	/* An AUTH line may carry a password, and so may a line that is no
	 * command (a response pipelined behind a refused AUTH): log the
	 * mechanism, or the length, only. */
	switch (verb) {
	case SMTP_VERB_AUTH:
		log_debug("%s: <<< AUTH %.*s ...", s->client_ip, (int)strcspn(args, " \t"), args);
		break;
	case SMTP_VERB_UNKNOWN:
		log_debug("%s: <<< (not a command, %zu bytes)", s->client_ip, len);
		break;
	default:
		log_debug("%s: <<< %.*s", s->client_ip, (int)len, line);
	}
	s->last_code = 0;
	if ((err = smtp_line_check(line, len, 1)) != NULL) {
		s->cmd_total[SMTP_VERB_UNKNOWN]++;
		smtpd_reply(s, "%s", err);
	} else {
		s->cmd_total[verb]++;
		if (smtpd_command_allowed(s, verb, args))
			smtpd_commands[verb].handler(s, args);
		if (s->last_code != 0 && s->last_code < 400 &&
		    !(smtpd_commands[verb].flags & SMTPD_CMD_OWN_COUNT))
			s->cmd_ok[verb]++;
	}
	smtpd_error_limits(s);
}

