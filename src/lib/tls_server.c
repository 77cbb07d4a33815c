/*
 * tls_server.c - OpenSSL contexts for the listeners: the default
 * certificate, one context per [sni:NAME], and the protocol settings.
 *
 * Every file is read here, in the master, and checked the way an
 * administrator would want to hear about it before clients do: a missing
 * or unreadable file, an expired certificate and a key that does not match
 * stop the start (or a reload) with the setting's file and line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls_server.h"

/* The session id context: tickets and sessions are ours only. */
static const unsigned char tls_sid_context[] = "vsmtpd";

struct tls_sni {
	char *name; /* lowercased, "*.domain" for a wildcard */
	SSL_CTX *ctx;
};

struct tls_server {
	SSL_CTX *ctx; /* the default certificate; its ticket keys serve every name */
	struct tls_sni *sni;
	size_t nsni;
};

/* tls_error_text - the oldest queued OpenSSL error, or fallback. */
const char *tls_error_text(char *buf, size_t len, const char *fallback)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "%s", fallback);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* tls_readable - 0 when path can be opened for reading, else errno. */
static int tls_readable(const char *path)
{
	FILE *fp = fopen(path, "re");

	if (fp == NULL)
		return errno;
	fclose(fp);
	return 0;
}

/* tls_time_text - an ASN.1 time as "Nov 20 12:00:00 2026 GMT". */
static void tls_time_text(const ASN1_TIME *t, char *buf, size_t len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int n = 0;

	buf[0] = '\0';
	if (bio != NULL && ASN1_TIME_print(bio, t) == 1)
		n = BIO_read(bio, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(bio);
}

/*
 * tls_use_files - put a certificate (with its chain) and its key in ctx.
 * label names the section ("[tls]", "[sni:NAME]") in messages.
 */
static int tls_use_files(SSL_CTX *ctx, const char *label, const struct config_file *cert,
			 const struct config_file *key, char *err, size_t errlen)
{
	const char *kpath = key->path != NULL ? key->path : cert->path;
	const char *kwhere = key->path != NULL ? key->where : cert->where;
	char why[256], when[64];
	X509 *x;
	int e;

	if ((e = tls_readable(cert->path)) != 0) {
		snprintf(err, errlen, "%s: %s certificate: cannot read %s: %s", cert->where, label,
			 cert->path, strerror(e));
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert->path) != 1) {
		snprintf(err, errlen, "%s: %s certificate: %s holds no usable PEM certificate: %s",
			 cert->where, label, cert->path,
			 tls_error_text(why, sizeof(why), "unknown error"));
		return -1;
	}
	x = SSL_CTX_get0_certificate(ctx);
	if (x != NULL && X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		tls_time_text(X509_get0_notAfter(x), when, sizeof(when));
		snprintf(err, errlen, "%s: %s certificate: %s expired on %s", cert->where, label,
			 cert->path, when);
		return -1;
	}
	if (x != NULL && X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
		tls_time_text(X509_get0_notBefore(x), when, sizeof(when));
		snprintf(err, errlen, "%s: %s certificate: %s is not valid before %s", cert->where,
			 label, cert->path, when);
		return -1;
	}
	if ((e = tls_readable(kpath)) != 0) {
		snprintf(err, errlen, "%s: %s key: cannot read %s: %s", kwhere, label, kpath,
			 strerror(e));
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, kpath, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL checks the pair as it loads the key: say so plainly. */
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			snprintf(err, errlen, "%s: %s key: %s does not match the certificate %s",
				 kwhere, label, kpath, cert->path);
			return -1;
		}
		snprintf(err, errlen, "%s: %s key: %s holds no usable PEM private key: %s", kwhere,
			 label, kpath, tls_error_text(why, sizeof(why), "unknown error"));
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "%s: %s key: %s does not match the certificate %s", kwhere,
			 label, kpath, cert->path);
		return -1;
	}
	return 0;
}

/* tls_ctx_new - a server context with cfg's protocol settings. */
static SSL_CTX *tls_ctx_new(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char why[256];

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context: %s",
			 tls_error_text(why, sizeof(why), "out of memory"));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, cfg->tls_min_protocol);
	/* No compression (CRIME), no renegotiation: neither has a use in SMTP. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, tls_sid_context, sizeof(tls_sid_context) - 1);
	/* A session process serves connection after connection: a cache of
	 * sessions would carry one connection's TLS session into the next.
	 * Tickets, whose keys every process shares, resume without it. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (cfg->tls_ciphers.value[0] != '\0' &&
	    SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers.value) != 1) {
		snprintf(err, errlen, "%s: [tls] ciphers: \"%s\" is not an OpenSSL cipher list: %s",
			 cfg->tls_ciphers.where, cfg->tls_ciphers.value,
			 tls_error_text(why, sizeof(why), "refused"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (cfg->tls_ciphersuites.value[0] != '\0' &&
	    SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites.value) != 1) {
		snprintf(err, errlen,
			 "%s: [tls] ciphersuites: \"%s\" is not a list of TLS 1.3 cipher suites: %s",
			 cfg->tls_ciphersuites.where, cfg->tls_ciphersuites.value,
			 tls_error_text(why, sizeof(why), "refused"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* tls_sni_match - whether the client's name falls under pattern. */
static int tls_sni_match(const char *pattern, const char *name)
{
	const char *dot;

	if (strncmp(pattern, "*.", 2) != 0)
		return strcasecmp(pattern, name) == 0;
	/* A wildcard covers exactly one more label, as in certificates. */
	dot = strchr(name, '.');
	return dot != NULL && dot != name && strcasecmp(pattern + 1, dot) == 0;
}

/* tls_servername_cb - switch to the certificate of the name asked for. */
static int tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_server *tls = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *chosen = NULL;
	size_t i;

	(void)alert;
	if (name == NULL)
		return SSL_TLSEXT_ERR_OK;
	/* An exact name wins over a wildcard, whatever their order. */
	for (i = 0; i < tls->nsni && chosen == NULL; i++)
		if (tls->sni[i].name[0] != '*' && tls_sni_match(tls->sni[i].name, name))
			chosen = tls->sni[i].ctx;
	for (i = 0; i < tls->nsni && chosen == NULL; i++)
		if (tls->sni[i].name[0] == '*' && tls_sni_match(tls->sni[i].name, name))
			chosen = tls->sni[i].ctx;
	if (chosen != NULL)
		SSL_set_SSL_CTX(ssl, chosen);
	return SSL_TLSEXT_ERR_OK;
}

/*
 * tls_warm_up - one handshake in memory, client and server in this process.
 * OpenSSL fetches and caches its algorithms on first use; done here, in the
 * master, the caches are made once and every session inherits them, instead
 * of each session process building them again for its single handshake.
 */
static void tls_warm_up(SSL_CTX *server_ctx, int version)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *client = NULL, *server = NULL;
	BIO *c2s = NULL, *s2c = NULL;
	int i, cdone = 0, sdone = 0;

	if (cctx == NULL)
		goto out;
	SSL_CTX_set_min_proto_version(cctx, version);
	SSL_CTX_set_max_proto_version(cctx, version);
	if ((client = SSL_new(cctx)) == NULL || (server = SSL_new(server_ctx)) == NULL ||
	    BIO_new_bio_pair(&c2s, 0, &s2c, 0) != 1)
		goto out;
	SSL_set_bio(client, c2s, c2s);
	SSL_set_bio(server, s2c, s2c);
	c2s = s2c = NULL;
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	for (i = 0; i < 16 && !(cdone && sdone); i++) {
		if (!cdone)
			cdone = SSL_do_handshake(client) == 1;
		if (!sdone)
			sdone = SSL_do_handshake(server) == 1;
	}
out:
	ERR_clear_error();
	SSL_free(client);
	SSL_free(server);
	BIO_free(c2s);
	BIO_free(s2c);
	SSL_CTX_free(cctx);
}

/* tls_server_load - every context cfg asks for. */
struct tls_server *tls_server_load(const struct config *cfg, char *err, size_t errlen)
{
	struct tls_server *tls;
	char label[300];
	size_t i;

	err[0] = '\0';
	if (cfg->tls_certificate.path == NULL)
		return NULL;
	if ((tls = calloc(1, sizeof(*tls))) == NULL ||
	    (cfg->nsni > 0 && (tls->sni = calloc(cfg->nsni, sizeof(*tls->sni))) == NULL)) {
		snprintf(err, errlen, "out of memory");
		tls_server_free(tls);
		return NULL;
	}
	if ((tls->ctx = tls_ctx_new(cfg, err, errlen)) == NULL ||
	    tls_use_files(tls->ctx, "[tls]", &cfg->tls_certificate, &cfg->tls_key, err, errlen) <
		    0) {
		tls_server_free(tls);
		return NULL;
	}
	for (i = 0; i < cfg->nsni; i++) {
		struct tls_sni *s = &tls->sni[i];

		snprintf(label, sizeof(label), "[sni:%s]", cfg->sni[i].name);
		tls->nsni++;
		if ((s->name = strdup(cfg->sni[i].name)) == NULL) {
			snprintf(err, errlen, "out of memory");
			tls_server_free(tls);
			return NULL;
		}
		if ((s->ctx = tls_ctx_new(cfg, err, errlen)) == NULL ||
		    tls_use_files(s->ctx, label, &cfg->sni[i].certificate, &cfg->sni[i].key, err,
				  errlen) < 0) {
			tls_server_free(tls);
			return NULL;
		}
	}
	SSL_CTX_set_tlsext_servername_callback(tls->ctx, tls_servername_cb);
	SSL_CTX_set_tlsext_servername_arg(tls->ctx, tls);
	if (cfg->tls_min_protocol <= TLS1_2_VERSION)
		tls_warm_up(tls->ctx, TLS1_2_VERSION);
	tls_warm_up(tls->ctx, TLS1_3_VERSION);
	return tls;
}

/* tls_server_free - release the contexts. */
void tls_server_free(struct tls_server *tls)
{
	size_t i;

	if (tls == NULL)
		return;
	for (i = 0; i < tls->nsni; i++) {
		free(tls->sni[i].name);
		SSL_CTX_free(tls->sni[i].ctx);
	}
	free(tls->sni);
	SSL_CTX_free(tls->ctx);
	free(tls);
}

/* tls_server_connection - a connection object on the default context. */
SSL *tls_server_connection(struct tls_server *tls)
{
	return SSL_new(tls->ctx);
}

/* tls_info_get - what the handshake of ssl settled on. */
void tls_info_get(SSL *ssl, struct tls_info *info)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	snprintf(info->version, sizeof(info->version), "%s", SSL_get_version(ssl));
	snprintf(info->cipher, sizeof(info->cipher), "%s", SSL_get_cipher_name(ssl));
	info->bits = SSL_get_cipher_bits(ssl, &info->alg_bits);
	/* The name is the client's word: keep it only when it looks like one. */
	if (name == NULL || strlen(name) >= sizeof(info->sni) ||
	    name[strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")] !=
		    '\0')
		name = "";
	snprintf(info->sni, sizeof(info->sni), "%s", name);
}
