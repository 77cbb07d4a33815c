/*
 * config_check.c - the checks that tie keys together, run once the file and
 * the overrides are read: every listener has an address and no address is
 * listed twice, the TLS and AUTH settings agree with each other, the error
 * limits are ordered, and the defaults computed from other keys are set.
 * An error is located at the line that set the key most to blame.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "config_internal.h"

/* check_addresses_unique - no host:port may be listed twice. */
static int check_addresses_unique(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	struct address_key a, b;
	size_t i, j, k, m;

	for (i = 0; i < cfg->nlisteners; i++) {
		for (j = 0; j < cfg->listeners[i].naddresses; j++) {
			config_check_address(cfg->listeners[i].addresses[j], &a);
			for (k = 0; k <= i; k++) {
				size_t upto = k == i ? j : cfg->listeners[k].naddresses;

				for (m = 0; m < upto; m++) {
					config_check_address(cfg->listeners[k].addresses[m], &b);
					if (a.family == b.family && a.port == b.port &&
					    memcmp(a.addr, b.addr, sizeof(a.addr)) == 0)
						return config_fail_at(
						    ld,
						    ld->addresses_overridden[i]
						        ? LINE_CMDLINE
						        : ld->listener_line[i],
						    "[listener:%s] address %s is also listed in "
						    "[listener:%s]",
						    cfg->listeners[i].name,
						    cfg->listeners[i].addresses[j],
						    cfg->listeners[k].name);
				}
			}
		}
	}
	return 0;
}

/* set_line - where key of section was set (for [listener:NAME], listener i),
 * or fallback when it was not. */
static int set_line(const struct loader *ld, enum section section, const char *key, size_t i,
                    int fallback)
{
	const struct key_def *def = config_find_key(section, key);
	size_t k = (size_t)(def - config_keys);
	int line = section == SEC_LISTENER ? ld->listener_key_lines[i][k]
	           : section == SEC_SNI    ? ld->sni_key_lines[i][k]
	           : section == SEC_DKIM   ? ld->dkim_key_lines[i][k]
	           : section == SEC_SERVICE ? ld->service_key_lines[i][k]
	                                   : ld->key_lines[k];

	return line != 0 ? line : fallback;
}

/* finish_listener_tls - listener i's TLS and AUTH defaults, and their checks. */
static int finish_listener_tls(struct loader *ld, size_t i)
{
	struct listener_config *l = &ld->cfg->listeners[i];
	bool cert = ld->cfg->tls_certificate.path != NULL;
	int line = set_line(ld, SEC_LISTENER, "tls", i, ld->listener_line[i]);

	l->kind_id = strcmp(l->kind, "submissions") == 0  ? LISTENER_SUBMISSIONS
	             : strcmp(l->kind, "submission") == 0 ? LISTENER_SUBMISSION
	             : strcmp(l->kind, "delegation") == 0 ? LISTENER_DELEGATION
	                                                  : LISTENER_SMTP;
	if (l->kind_id == LISTENER_DELEGATION) {
		/* a filter on the same host sends back what it was given: nothing to secure */
		if ((l->tls != LISTENER_TLS_UNSET && l->tls != LISTENER_TLS_NONE) ||
		    (l->auth != LISTENER_AUTH_UNSET && l->auth != LISTENER_AUTH_NO))
			return config_fail_at(ld, line,
			                      "[listener:%s] a delegation listener has no TLS and no "
			                      "AUTH (the returned mail is checked by its token): "
			                      "leave tls and auth out",
			                      l->name);
		l->tls = LISTENER_TLS_NONE;
		l->auth = LISTENER_AUTH_NO;
		return 0;
	}
	if (l->kind_id == LISTENER_SUBMISSIONS && l->tls != LISTENER_TLS_UNSET &&
	    l->tls != LISTENER_TLS_ENCRYPT)
		return config_fail_at(
		    ld, line,
		    "[listener:%s] tls: a submissions listener is TLS from the first "
		    "byte: leave tls out or set it to encrypt",
		    l->name);
	if (l->tls == LISTENER_TLS_UNSET)
		l->tls = l->kind_id != LISTENER_SMTP ? LISTENER_TLS_ENCRYPT
		         : cert                      ? LISTENER_TLS_MAY
		                                     : LISTENER_TLS_NONE;
	if (l->auth == LISTENER_AUTH_UNSET)
		l->auth = l->kind_id == LISTENER_SMTP ? LISTENER_AUTH_NO : LISTENER_AUTH_REQUIRED;
	if (l->tls != LISTENER_TLS_NONE && !cert) {
		if (l->kind_id == LISTENER_SMTP || set_line(ld, SEC_LISTENER, "tls", i, 0) != 0)
			return config_fail_at(
			    ld, line,
			    "[listener:%s] tls = %s needs a certificate: set [tls] "
			    "certificate",
			    l->name, l->tls == LISTENER_TLS_MAY ? "may" : "encrypt");
		return config_fail_at(
		    ld, set_line(ld, SEC_LISTENER, "kind", i, line),
		    "[listener:%s] kind %s needs a certificate: set [tls] certificate "
		    "(or tls = none for a submission listener without TLS)",
		    l->name, l->kind);
	}
	return 0;
}

/* finish_dkim - every [dkim:NAME] has its domain, selector and key. */
static int finish_dkim(struct loader *ld)
{
	const struct dkim_config *d;
	size_t i;

	for (i = 0; i < ld->cfg->ndkim; i++) {
		d = &ld->cfg->dkim[i];
		if (d->domain == NULL || d->selector == NULL || d->key.path == NULL)
			return config_fail_at(ld, ld->dkim_line[i],
			                      "[dkim:%s] needs domain, selector and key", d->name);
	}
	return 0;
}

/* finish_tls_auth - the checks of [tls], [sni:NAME] and [auth]. */
static int finish_tls_auth(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	size_t i;

	for (i = 0; i < cfg->nsni; i++) {
		if (cfg->sni[i].certificate.path == NULL)
			return config_fail_at(ld, ld->sni_line[i], "[sni:%s] has no certificate",
			                      cfg->sni[i].name);
		if (cfg->tls_certificate.path == NULL)
			return config_fail_at(
			    ld, ld->sni_line[i],
			    "[sni:%s] needs [tls] certificate, the one for clients that "
			    "ask for no name or another name",
			    cfg->sni[i].name);
	}
	if (cfg->tls_key.path != NULL && cfg->tls_certificate.path == NULL)
		return config_fail_at(ld, set_line(ld, SEC_TLS, "key", 0, LINE_NONE),
		                      "[tls] key is set but certificate is not");
	for (i = 0; i < cfg->nlisteners; i++)
		if (finish_listener_tls(ld, i) < 0)
			return -1;
	if (cfg->auth_backend == AUTH_BACKEND_SASLAUTHD) {
		char *copy = strdup(cfg->auth_mechanisms), *tok, *save = NULL;
		int ret = 0;

		if (copy == NULL)
			return config_no_memory(ld);
		for (tok = strtok_r(copy, " ", &save); tok && ret == 0;
		     tok = strtok_r(NULL, " ", &save))
			if (strcmp(tok, "PLAIN") != 0 && strcmp(tok, "LOGIN") != 0)
				ret = config_fail_at(
				    ld,
				    set_line(ld, SEC_AUTH, "mechanisms", 0,
				             set_line(ld, SEC_AUTH, "backend", 0, LINE_NONE)),
				    "[auth] mechanisms: %s needs the password itself, which "
				    "saslauthd does not give: use backend = sasldb, or only "
				    "PLAIN and LOGIN",
				    tok);
		free(copy);
		if (ret < 0)
			return -1;
	}
	if (cfg->auth_mechanisms_where == NULL) {
		char at[PATH_MAX + 32];

		config_where(ld, LINE_NONE, at, sizeof(at));
		if (config_replace_string(ld, &cfg->auth_mechanisms_where, at) < 0)
			return -1;
	}
	return 0;
}

/* finish_milters - every name in a listener's milters is a milter service. */
static int finish_milters(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	char name[64];
	const char *p, *end;
	size_t i, k, len;

	for (i = 0; i < cfg->nlisteners; i++) {
		for (p = cfg->listeners[i].milters; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
			end = strchr(p, ' ');
			end = end ? end : p + strlen(p);
			len = (size_t)(end - p) < sizeof(name) ? (size_t)(end - p) : sizeof(name) - 1;
			memcpy(name, p, len);
			name[len] = '\0';
			for (k = 0; k < cfg->nservice; k++)
				if (strcmp(cfg->service[k].name, name) == 0)
					break;
			if (k == cfg->nservice || cfg->service[k].kind != SERVICE_MILTER)
				return config_fail_at(ld, set_line(ld, SEC_LISTENER, "milters", i,
				                                   ld->listener_line[i]),
				                      "[listener:%s] milters: \"%s\" is not a "
				                      "[service:NAME] of kind milter",
				                      cfg->listeners[i].name, name);
		}
	}
	return 0;
}

/* config_finish - the checks that span keys, and the computed defaults. */
int config_finish(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	const struct key_def *soft = config_find_key(SEC_LIMITS, "soft_error_limit");
	const struct key_def *hard = config_find_key(SEC_LIMITS, "hard_error_limit");
	size_t i;

	if (cfg->nlisteners == 0)
		return config_fail_at(ld, LINE_NONE,
		                      "no [listener:NAME] section: vsmtpd would listen nowhere");
	for (i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].naddresses == 0)
			return config_fail_at(ld, ld->listener_line[i],
			                      "[listener:%s] has no address",
			                      cfg->listeners[i].name);
	if (check_addresses_unique(ld) < 0 || finish_tls_auth(ld) < 0 || finish_dkim(ld) < 0 ||
	    config_finish_services(ld) < 0 || finish_milters(ld) < 0)
		return -1;
	if (cfg->hard_error_limit <= cfg->soft_error_limit) {
		int hline = ld->key_lines[hard - config_keys],
		    sline = ld->key_lines[soft - config_keys];
		int line = hline > sline ? hline : sline; /* the later one in the file */

		if (hline == LINE_CMDLINE || sline == LINE_CMDLINE)
			line = LINE_CMDLINE;
		return config_fail_at(ld, line,
		                      "[limits] hard_error_limit (%u) must be greater than "
		                      "soft_error_limit (%u)",
		                      cfg->hard_error_limit, cfg->soft_error_limit);
	}
	if (cfg->min_free_space == 0)
		cfg->min_free_space = cfg->max_message_size + cfg->max_message_size / 2;
	/* Unset (their minimum is 1): as long as the idle timers they go with. */
	if (cfg->timeout_command_deadline == 0)
		cfg->timeout_command_deadline = cfg->timeout_command;
	if (cfg->timeout_data_grace == 0)
		cfg->timeout_data_grace = cfg->timeout_data;
	if (cfg->hostname == NULL) {
		char name[HOST_NAME_MAX + 1];
		char shown_name[72];

		if (gethostname(name, sizeof(name)) < 0)
			return config_fail_at(
			    ld, LINE_NONE,
			    "[server] hostname is not set and gethostname() failed: %s",
			    strerror(errno));
		name[sizeof(name) - 1] = '\0';
		if (!config_valid_domain(name))
			return config_fail_at(
			    ld, LINE_NONE,
			    "[server] hostname is not set and the system's host name "
			    "\"%s\" is not a valid domain name",
			    config_shown(name, shown_name));
		cfg->hostname = strdup(name);
		if (cfg->hostname == NULL)
			return config_no_memory(ld);
	}
	return 0;
}
