/*
 * smtpd_auth.h - SMTP AUTH (RFC 4954) through Cyrus SASL.
 *
 * Cyrus SASL is initialised once, in the master, before privileges are
 * dropped: its plugins are loaded then and every session inherits them.
 * The options Cyrus would read from a file (pwcheck_method, sasldb_path,
 * saslauthd_path) come from vsmtpd.conf's [auth] instead, through a
 * callback, so that one file holds the whole configuration.
 */
#ifndef VSMTPD_SMTPD_AUTH_H
#define VSMTPD_SMTPD_AUTH_H

#include <stddef.h>

#include "config.h"

/* The longest AUTH response line (RFC 4954 4), CRLF excluded. */
#define SMTPD_AUTH_LINE_MAX 12288

/*
 * smtpd_auth_configure - initialise Cyrus SASL on first use, point it at
 * cfg's [auth] settings and check that every mechanism cfg names is provided
 * by the installed plugins. Returns 0, or -1 with a message naming the
 * setting's file and line. Called at start and on each reload; the settings
 * of the last successful call are the ones sessions use. Does nothing while
 * no listener offers AUTH.
 */
int smtpd_auth_configure(const struct config *cfg, char *err, size_t errlen);

struct smtp_auth;

/* What one step of an exchange came to. */
enum smtpd_auth_result {
	SMTPD_AUTH_CONTINUE,   /* send the challenge in 334, read another response */
	SMTPD_AUTH_OK,         /* the credentials are good */
	SMTPD_AUTH_FAIL,       /* they are not: 535 */
	SMTPD_AUTH_TEMP,       /* the password store cannot answer now: 454 */
	SMTPD_AUTH_BAD_BASE64, /* the client's response does not decode: 501 */
	SMTPD_AUTH_NOMECH,     /* no such mechanism: 504 */
};

/*
 * smtpd_auth_new - a SASL server connection for one session. local and
 * remote are "address;port" (Cyrus's form). NULL on failure (logged).
 */
struct smtp_auth *smtpd_auth_new(const struct config *cfg, const char *local,
				const char *remote);

/* smtpd_auth_free - release it (NULL is fine). */
void smtpd_auth_free(struct smtp_auth *a);

/* smtpd_auth_set_tls - the connection is now encrypted with a cipher of bits. */
void smtpd_auth_set_tls(struct smtp_auth *a, unsigned bits);

/*
 * smtpd_auth_mechanisms - the mechanisms to offer: those of [auth]
 * mechanisms that Cyrus provides for this connection, space separated.
 */
const char *smtpd_auth_mechanisms(struct smtp_auth *a);

/* smtpd_auth_offers - whether mech (any case) is among them. */
int smtpd_auth_offers(struct smtp_auth *a, const char *mech);

/*
 * smtpd_auth_start / smtpd_auth_step - run the exchange. response is the
 * client's base64 text (NULL for no initial response; "=" is an empty one).
 * On SMTPD_AUTH_CONTINUE, challenge holds the base64 text for the 334 reply.
 * why gets a short reason for the log on failure.
 */
enum smtpd_auth_result smtpd_auth_start(struct smtp_auth *a, const char *mech,
				      const char *response, char *challenge, size_t chlen,
				      const char **why);
enum smtpd_auth_result smtpd_auth_step(struct smtp_auth *a, const char *response, char *challenge,
				     size_t chlen, const char **why);

/* smtpd_auth_user - the authenticated user (authid), after SMTPD_AUTH_OK. */
const char *smtpd_auth_user(struct smtp_auth *a);

/* smtpd_auth_reset - forget any exchange, ready for another AUTH. */
int smtpd_auth_reset(struct smtp_auth *a);

#endif
