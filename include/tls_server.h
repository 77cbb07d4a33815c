/*
 * tls_server.h - the server side of TLS: certificates, SNI and settings.
 *
 * The master loads everything once (at start, as root, and again on SIGHUP)
 * into OpenSSL contexts that every session process inherits. Sessions only
 * create a connection object from them, so a session never opens a file,
 * and the ticket keys, made with the default context, are the same in every
 * session: a ticket one session issued resumes in another.
 */
#ifndef VSMTPD_TLS_SERVER_H
#define VSMTPD_TLS_SERVER_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

struct tls_server;

/* What a handshake settled, for logs, Received: and the rules. */
struct tls_info {
	char version[16]; /* "TLSv1.3" */
	char cipher[64];  /* "TLS_AES_256_GCM_SHA384" */
	int bits;         /* the cipher's strength in use */
	int alg_bits;     /* and as designed */
	char sni[256];    /* the name the client asked for, "" when none */
};

/*
 * tls_server_load - the contexts for cfg's [tls] and [sni:NAME] settings.
 * Returns NULL with err[0] == '\0' when cfg sets no certificate, NULL with
 * a message naming the setting's file and line when a file is unreadable,
 * a certificate has expired, a key does not match its certificate or an
 * OpenSSL setting is refused.
 */
struct tls_server *tls_server_load(const struct config *cfg, char *err, size_t errlen);

/* tls_server_free - release what tls_server_load made (NULL is fine). */
void tls_server_free(struct tls_server *tls);

/* tls_server_connection - a new server connection object, or NULL. */
SSL *tls_server_connection(struct tls_server *tls);

/* tls_info_get - describe the finished handshake of ssl. */
void tls_info_get(SSL *ssl, struct tls_info *info);

/* tls_error_text - the oldest queued OpenSSL error as text (and clear the
 * queue), or fallback when there is none. */
const char *tls_error_text(char *buf, size_t len, const char *fallback);

#endif
