/*
 * smtpd_auth.c - the SASL side of SMTP AUTH, on Cyrus SASL 2.
 *
 * Cyrus does the mechanisms and the password checks (its sasldb auxprop
 * plugin, or saslauthd); this file gives it vsmtpd's settings, limits what
 * is offered to what the configuration names, and turns Cyrus's results into
 * the few outcomes the session answers differently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sasl/sasl.h>
#include <sasl/saslutil.h>

#include "log.h"
#include "smtpd_auth.h"

#define SMTPD_AUTH_MECHS_MAX 512

/* What the option callback answers: copies, since a reload frees the config. */
static struct {
	char pwcheck_method[16];
	char sasldb_path[4096];
	char saslauthd_path[128];
	char mechanisms[SMTPD_AUTH_MECHS_MAX];
} auth_options;

static int auth_initialised;

struct smtp_auth {
	sasl_conn_t *conn;
	const struct config *cfg;
	char local[64], remote[64];
	unsigned tls_bits;
	char offered[SMTPD_AUTH_MECHS_MAX];
	char user[256];
};

/* auth_getopt - Cyrus asks for an option: ours come from [auth]. */
static int auth_getopt(void *context, const char *plugin, const char *option,
		       const char **result, unsigned *len)
{
	const char *value = NULL;

	(void)context;
	(void)plugin;
	if (strcmp(option, "pwcheck_method") == 0)
		value = auth_options.pwcheck_method;
	else if (strcmp(option, "auxprop_plugin") == 0)
		value = "sasldb";
	else if (strcmp(option, "sasldb_path") == 0)
		value = auth_options.sasldb_path;
	else if (strcmp(option, "saslauthd_path") == 0)
		value = auth_options.saslauthd_path;
	if (value == NULL)
		return SASL_FAIL; /* Cyrus's default, or its own config file */
	*result = value;
	if (len != NULL)
		*len = (unsigned)strlen(value);
	return SASL_OK;
}

/* auth_log - Cyrus's messages into ours. */
static int auth_log(void *context, int level, const char *message)
{
	(void)context;
	/* Cyrus calls us at every level: its traces may hold passwords. */
	if (message == NULL || level >= SASL_LOG_TRACE)
		return SASL_OK;
	if (level <= SASL_LOG_ERR)
		log_err("sasl: %s", message);
	else if (level <= SASL_LOG_WARN)
		log_notice("sasl: %s", message);
	else
		log_debug("sasl: %s", message);
	return SASL_OK;
}

typedef int (*auth_cb_proc)(void);

static const sasl_callback_t auth_callbacks[] = {
	{SASL_CB_GETOPT, (auth_cb_proc)(void (*)(void))auth_getopt, NULL},
	{SASL_CB_LOG, (auth_cb_proc)(void (*)(void))auth_log, NULL},
	{SASL_CB_LIST_END, NULL, NULL},
};

/* auth_available - whether Cyrus has mechanism mech loaded. */
static int auth_available(const char *mech)
{
	const char **list = sasl_global_listmech();

	for (; list != NULL && *list != NULL; list++)
		if (strcasecmp(*list, mech) == 0)
			return 1;
	return 0;
}

/* auth_available_text - the loaded mechanisms, for a message. */
static void auth_available_text(char *buf, size_t len)
{
	const char **list = sasl_global_listmech();
	size_t used = 0;

	buf[0] = '\0';
	for (; list != NULL && *list != NULL && used < len; list++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? " " : "", *list);
	if (buf[0] == '\0')
		snprintf(buf, len, "none");
}

/* smtpd_auth_configure - initialise Cyrus once and take cfg's settings. */
int smtpd_auth_configure(const struct config *cfg, char *err, size_t errlen)
{
	char *copy, *tok, *save = NULL, avail[512];
	size_t i;
	int rc;

	/* Without a listener that offers AUTH, Cyrus and its plugins are not
	 * needed at all. */
	for (i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].auth != LISTENER_AUTH_NO)
			break;
	if (i == cfg->nlisteners)
		return 0;
	if (!auth_initialised) {
		/* The options callback must answer before init, which reads some. */
		snprintf(auth_options.pwcheck_method, sizeof(auth_options.pwcheck_method),
			 "auxprop");
		if ((rc = sasl_server_init(auth_callbacks, "vsmtpd")) != SASL_OK) {
			snprintf(err, errlen, "cannot initialise Cyrus SASL: %s",
				 sasl_errstring(rc, NULL, NULL));
			return -1;
		}
		auth_initialised = 1;
	}
	if ((copy = strdup(cfg->auth_mechanisms)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (!auth_available(tok)) {
			auth_available_text(avail, sizeof(avail));
			snprintf(err, errlen,
				 "%s: [auth] mechanisms: %s is not provided by the installed Cyrus "
				 "SASL plugins (they provide: %s; Debian's libsasl2-modules has "
				 "PLAIN, LOGIN, CRAM-MD5 and SCRAM)",
				 cfg->auth_mechanisms_where, tok, avail);
			free(copy);
			return -1;
		}
	}
	free(copy);
	snprintf(auth_options.pwcheck_method, sizeof(auth_options.pwcheck_method), "%s",
		 cfg->auth_backend == AUTH_BACKEND_SASLAUTHD ? "saslauthd" : "auxprop");
	snprintf(auth_options.sasldb_path, sizeof(auth_options.sasldb_path), "%s",
		 cfg->sasldb_path);
	snprintf(auth_options.saslauthd_path, sizeof(auth_options.saslauthd_path), "%s",
		 cfg->saslauthd_path);
	snprintf(auth_options.mechanisms, sizeof(auth_options.mechanisms), "%s",
		 cfg->auth_mechanisms);
	return 0;
}

/* auth_set_props - no SASL security layer; TLS's strength as external. */
static int auth_set_props(struct smtp_auth *a)
{
	sasl_security_properties_t props = {
		.min_ssf = 0,
		.max_ssf = 0, /* SMTP over vsmtpd has no SASL security layer */
		.maxbufsize = 0,
		.security_flags = SASL_SEC_NOANONYMOUS,
	};
	sasl_ssf_t ssf = a->tls_bits;

	if (sasl_setprop(a->conn, SASL_SEC_PROPS, &props) != SASL_OK ||
	    sasl_setprop(a->conn, SASL_SSF_EXTERNAL, &ssf) != SASL_OK)
		return -1;
	return 0;
}

/* auth_open - a new Cyrus server connection for a. */
static int auth_open(struct smtp_auth *a)
{
	const char *realm = a->cfg->auth_realm[0] ? a->cfg->auth_realm : a->cfg->hostname;
	int rc;

	rc = sasl_server_new("smtp", a->cfg->hostname, realm, a->local, a->remote, NULL, 0,
			     &a->conn);
	if (rc != SASL_OK) {
		log_err("cannot start a SASL connection: %s", sasl_errstring(rc, NULL, NULL));
		a->conn = NULL;
		return -1;
	}
	if (auth_set_props(a) < 0) {
		log_err("cannot set SASL properties: %s", sasl_errdetail(a->conn));
		sasl_dispose(&a->conn);
		return -1;
	}
	a->offered[0] = '\0';
	a->user[0] = '\0';
	return 0;
}

/* smtpd_auth_new - the SASL state of one session. */
struct smtp_auth *smtpd_auth_new(const struct config *cfg, const char *local, const char *remote)
{
	struct smtp_auth *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->cfg = cfg;
	snprintf(a->local, sizeof(a->local), "%s", local);
	snprintf(a->remote, sizeof(a->remote), "%s", remote);
	if (auth_open(a) < 0) {
		free(a);
		return NULL;
	}
	return a;
}

/* smtpd_auth_free - dispose of the Cyrus connection. */
void smtpd_auth_free(struct smtp_auth *a)
{
	if (a == NULL)
		return;
	if (a->conn != NULL)
		sasl_dispose(&a->conn);
	free(a);
}

/* smtpd_auth_reset - a fresh Cyrus connection: Cyrus has no "abort". */
int smtpd_auth_reset(struct smtp_auth *a)
{
	if (a->conn != NULL)
		sasl_dispose(&a->conn);
	return auth_open(a);
}

/* smtpd_auth_set_tls - tell Cyrus the connection is encrypted. */
void smtpd_auth_set_tls(struct smtp_auth *a, unsigned bits)
{
	a->tls_bits = bits;
	if (a->conn != NULL && auth_set_props(a) < 0)
		log_warn("cannot tell SASL about TLS: %s", sasl_errdetail(a->conn));
	a->offered[0] = '\0';
}

/* smtpd_auth_mechanisms - [auth] mechanisms that Cyrus offers here. */
const char *smtpd_auth_mechanisms(struct smtp_auth *a)
{
	const char *list = NULL;
	char copy[SMTPD_AUTH_MECHS_MAX], *tok, *save = NULL;
	size_t used = 0;
	unsigned len;
	int count;

	if (a->offered[0] != '\0' || a->conn == NULL)
		return a->offered;
	if (sasl_listmech(a->conn, NULL, " ", " ", " ", &list, &len, &count) != SASL_OK)
		return a->offered;
	/* In the order of the configuration, which is the administrator's preference. */
	snprintf(copy, sizeof(copy), "%s", auth_options.mechanisms);
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char padded[SMTPD_AUTH_MECHS_MAX + 2];

		snprintf(padded, sizeof(padded), " %s ", tok);
		if (strcasestr(list, padded) == NULL)
			continue;
		used += (size_t)snprintf(a->offered + used, sizeof(a->offered) - used, "%s%s",
					 used ? " " : "", tok);
		if (used >= sizeof(a->offered))
			break;
	}
	return a->offered;
}

/* smtpd_auth_offers - whether mech is one we offer. */
int smtpd_auth_offers(struct smtp_auth *a, const char *mech)
{
	char copy[SMTPD_AUTH_MECHS_MAX], *tok, *save = NULL;

	snprintf(copy, sizeof(copy), "%s", smtpd_auth_mechanisms(a));
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (strcasecmp(tok, mech) == 0)
			return 1;
	return 0;
}

/* auth_decode - the client's base64 into buf; -1 if invalid. An empty
 * response is "=" as an initial response, an empty line later on. */
static int auth_decode(const char *b64, int initial, char *buf, size_t buflen, unsigned *outlen)
{
	size_t len = strlen(b64);

	if (initial ? strcmp(b64, "=") == 0 : len == 0) {
		*outlen = 0;
		buf[0] = '\0';
		return 0;
	}
	if (len == 0 || len > SMTPD_AUTH_LINE_MAX)
		return -1;
	if (sasl_decode64(b64, (unsigned)len, buf, (unsigned)buflen, outlen) != SASL_OK)
		return -1;
	return 0;
}

/* auth_result - Cyrus's answer as ours; the challenge encoded on CONTINUE. */
static enum smtpd_auth_result auth_result(struct smtp_auth *a, int rc, const char *out,
					 unsigned outlen, char *challenge, size_t chlen,
					 const char **why)
{
	const void *user = NULL;
	unsigned enclen;

	switch (rc) {
	case SASL_CONTINUE:
		if (sasl_encode64(out, outlen, challenge, (unsigned)chlen, &enclen) != SASL_OK) {
			*why = "challenge too long";
			return SMTPD_AUTH_TEMP;
		}
		return SMTPD_AUTH_CONTINUE;
	case SASL_OK:
		if (sasl_getprop(a->conn, SASL_USERNAME, &user) != SASL_OK || user == NULL) {
			*why = "no user name from SASL";
			return SMTPD_AUTH_TEMP;
		}
		if (strlen(user) >= sizeof(a->user)) {
			*why = "user name too long";
			return SMTPD_AUTH_FAIL;
		}
		snprintf(a->user, sizeof(a->user), "%s", (const char *)user);
		return SMTPD_AUTH_OK;
	case SASL_NOMECH:
	case SASL_TOOWEAK:
	case SASL_ENCRYPT:
		*why = sasl_errstring(rc, NULL, NULL);
		return SMTPD_AUTH_NOMECH;
	case SASL_BADPROT:
		/* The client's data does not fit the mechanism: its fault. */
		*why = sasl_errdetail(a->conn);
		return SMTPD_AUTH_FAIL;
	case SASL_BADAUTH:
	case SASL_NOUSER:
	case SASL_NOAUTHZ:
	case SASL_EXPIRED:
	case SASL_DISABLED:
	case SASL_BADVERS:
	case SASL_NOVERIFY:
	case SASL_WEAKPASS:
		*why = sasl_errdetail(a->conn);
		return SMTPD_AUTH_FAIL;
	default:
		/* SASL_TRYAGAIN, SASL_UNAVAIL, SASL_FAIL, SASL_NOMEM...: the store. */
		*why = sasl_errdetail(a->conn);
		return SMTPD_AUTH_TEMP;
	}
}

/* smtpd_auth_start - AUTH mech [initial-response]. */
enum smtpd_auth_result smtpd_auth_start(struct smtp_auth *a, const char *mech,
				      const char *response, char *challenge, size_t chlen,
				      const char **why)
{
	char buf[SMTPD_AUTH_LINE_MAX];
	const char *out = NULL;
	unsigned inlen = 0, outlen = 0;
	int rc;

	*why = "";
	if (a->conn == NULL && auth_open(a) < 0) {
		*why = "no SASL connection";
		return SMTPD_AUTH_TEMP;
	}
	if (!smtpd_auth_offers(a, mech)) {
		*why = "mechanism not offered";
		return SMTPD_AUTH_NOMECH;
	}
	if (response != NULL && auth_decode(response, 1, buf, sizeof(buf), &inlen) < 0) {
		*why = "bad base64";
		return SMTPD_AUTH_BAD_BASE64;
	}
	rc = sasl_server_start(a->conn, mech, response ? buf : NULL, inlen, &out, &outlen);
	return auth_result(a, rc, out, outlen, challenge, chlen, why);
}

/* smtpd_auth_step - one more response from the client. */
enum smtpd_auth_result smtpd_auth_step(struct smtp_auth *a, const char *response, char *challenge,
				     size_t chlen, const char **why)
{
	char buf[SMTPD_AUTH_LINE_MAX];
	const char *out = NULL;
	unsigned inlen = 0, outlen = 0;
	int rc;

	*why = "";
	if (auth_decode(response, 0, buf, sizeof(buf), &inlen) < 0) {
		*why = "bad base64";
		return SMTPD_AUTH_BAD_BASE64;
	}
	rc = sasl_server_step(a->conn, buf, inlen, &out, &outlen);
	return auth_result(a, rc, out, outlen, challenge, chlen, why);
}

/* smtpd_auth_user - who authenticated. */
const char *smtpd_auth_user(struct smtp_auth *a)
{
	return a->user;
}
