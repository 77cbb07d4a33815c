/*
 * config_key_text.c - the per-key parsers of vsmtpd.conf for values that
 * name things rather than count them: host names, files and sockets, path templates,
 * delivery targets, free text, and lists of domains, networks, SASL
 * mechanisms and DNS servers. The table of keys (config_keys.c) points at
 * them; like the parsers there, each turns a value's text into its field
 * and records what is wrong through config_bad_value().
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
#include "resolver.h"

/* parse_hostname - [server] hostname: a domain name. */
int parse_hostname(struct loader *ld, const struct key_def *def, void *field,
                          const char *value)
{
	if (!config_valid_domain(value))
		return config_bad_value(ld, def, value, "is not a valid domain name");
	return config_replace_string(ld, field, value);
}

/* parse_file - a file; relative to the configuration file's folder, or on
 * the command line to the working directory. */
int parse_file(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	char **slot = field;
	char *joined = NULL, *path;
	const char *slash = strrchr(ld->cfg->path, '/');

	if (*value == '\0')
		return config_bad_value(ld, def, value, "is empty");
	if (value[0] != '/' && !ld->cmdline && slash != NULL) {
		if (asprintf(&joined, "%.*s/%s", (int)(slash - ld->cfg->path), ld->cfg->path,
		             value) < 0)
			return config_no_memory(ld);
		value = joined;
	}
	path = config_absolute_path(value);
	free(joined);
	if (path == NULL)
		return config_bad_value(ld, def, value, "cannot be made absolute: %s",
		                        strerror(errno));
	free(*slot);
	*slot = path;
	return 0;
}

/* parse_located_file - a file (as parse_file) and where it was set. */
int parse_located_file(struct loader *ld, const struct key_def *def, void *field,
                              const char *value)
{
	struct config_file *f = field;
	char at[PATH_MAX + 32];

	if (*value == '\0') {
		/* Empty: not set, as by default (-o tls.certificate= turns TLS off). */
		free(f->path);
		f->path = NULL;
		return 0;
	}
	if (parse_file(ld, def, &f->path, value) < 0)
		return -1;
	config_where(ld, ld->cmdline ? LINE_CMDLINE : ld->lineno, at, sizeof(at));
	return config_replace_string(ld, &f->where, at);
}

/* parse_socket - a unix socket path, which must fit a sockaddr_un. */
int parse_socket(struct loader *ld, const struct key_def *def, void *field,
                        const char *value)
{
	char **slot = field;

	if (parse_file(ld, def, slot, value) < 0)
		return -1;
	if (strlen(*slot) >= 108)
		return config_bad_value(ld, def, value,
		                        "is too long for a socket path (107 bytes at most)");
	return 0;
}

/*
 * parse_path_template - an absolute path in which %d stands for the
 * recipient's domain, %u for its local part and %% for a '%'; %u must be
 * there, or every recipient would share one mailbox.
 */
int parse_path_template(struct loader *ld, const struct key_def *def, void *field,
                               const char *value)
{
	const char *p;
	int user = 0;

	if (value[0] != '/')
		return config_bad_value(ld, def, value, "is not an absolute path");
	for (p = value; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return config_bad_value(ld, def, value, "holds a control character");
		if (*p != '%')
			continue;
		p++;
		if (*p == 'u')
			user = 1;
		else if (*p != 'd' && *p != '%')
			return config_bad_value(
			    ld, def, value,
			    "holds an unknown %%-escape (%%d domain, %%u user, %%%% a %%)");
	}
	if (!user)
		return config_bad_value(ld, def, value,
		                        "does not hold %%u (the recipient's local part)");
	return config_replace_string(ld, field, value);
}

/* parse_target - where a client connects: see config_target_split. */
int parse_target(struct loader *ld, const struct key_def *def, void *field,
                        const char *value)
{
	char host[256];
	unsigned port;
	const char *path;
	int bracketed;

	if (*value == '\0') {
		if (def->min > 0)
			return config_bad_value(ld, def, value, "is empty");
		return config_replace_string(ld, field, "");
	}
	if (config_target_split(value, host, sizeof(host), &port, &path, &bracketed) < 0)
		return config_bad_value(ld, def, value,
		                        "is not a destination (host, host:port, [address]:port or "
		                        "unix:/path)");
	return config_replace_string(ld, field, value);
}

/* parse_optional_file - a file (as parse_file), or empty for none. */
int parse_optional_file(struct loader *ld, const struct key_def *def, void *field,
                               const char *value)
{
	if (*value == '\0')
		return config_replace_string(ld, field, "");
	return parse_file(ld, def, field, value);
}

/* parse_optional_hostname - a domain name, or empty for the default. */
int parse_optional_hostname(struct loader *ld, const struct key_def *def, void *field,
                                   const char *value)
{
	if (*value == '\0')
		return config_replace_string(ld, field, "");
	return parse_hostname(ld, def, field, value);
}

/* parse_text - free text, possibly empty; printable ASCII only. */
int parse_text(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	const char *p;

	for (p = value; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return config_bad_value(ld, def, value,
			                        "holds a non-printing or non-ASCII character");
	return config_replace_string(ld, field, value);
}

/* parse_located_text - free text (as parse_text) and where it was set. */
int parse_located_text(struct loader *ld, const struct key_def *def, void *field,
                              const char *value)
{
	struct config_text *t = field;
	char at[PATH_MAX + 32];

	if (parse_text(ld, def, &t->value, value) < 0)
		return -1;
	config_where(ld, ld->cmdline ? LINE_CMDLINE : ld->lineno, at, sizeof(at));
	return config_replace_string(ld, &t->where, at);
}

/* word_list - check each word of a comma or blank separated list with check
 * (which returns NULL or why the word is wrong) and store the words in *slot,
 * lowercased when lower is set, separated by single spaces. */
static int word_list(struct loader *ld, const struct key_def *def, char **slot, const char *value,
                     const char *(*check)(const char *word), bool lower)
{
	char *copy = strdup(value), *out = calloc(1, strlen(value) + 1);
	char *tok, *save = NULL, *p;
	const char *why;
	size_t used = 0;

	if (copy == NULL || out == NULL) {
		free(copy);
		free(out);
		return config_no_memory(ld);
	}
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if ((why = check(tok)) != NULL) {
			int ret = config_bad_value(ld, def, tok, "%s", why);

			free(copy);
			free(out);
			return ret;
		}
		if (used > 0)
			out[used++] = ' ';
		for (p = tok; *p; p++)
			out[used++] = lower && *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
		out[used] = '\0';
	}
	free(copy);
	free(*slot);
	*slot = out;
	return 0;
}

/* parse_domains - [rules] local_domains. */
int parse_domains(struct loader *ld, const struct key_def *def, void *field,
                         const char *value)
{
	return word_list(ld, def, field, value, config_check_domain_word, true);
}

/* parse_networks - [rules] trusted_networks. */
int parse_networks(struct loader *ld, const struct key_def *def, void *field,
                          const char *value)
{
	return word_list(ld, def, field, value, config_check_network_word, false);
}

/* parse_mechanisms - [auth] mechanisms, uppercased, with where they were set. */
int parse_mechanisms(struct loader *ld, const struct key_def *def, void *field,
                            const char *value)
{
	char at[PATH_MAX + 32];
	char *p;

	if (word_list(ld, def, field, value, config_check_mechanism_word, false) < 0)
		return -1;
	if (**(char **)field == '\0')
		return config_bad_value(ld, def, value, "names no mechanism");
	for (p = *(char **)field; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	config_where(ld, ld->cmdline ? LINE_CMDLINE : ld->lineno, at, sizeof(at));
	return config_replace_string(ld, &ld->cfg->auth_mechanisms_where, at);
}

/* parse_dns_servers - [rules] dns_servers: addresses, each with an optional port. */
int parse_dns_servers(struct loader *ld, const struct key_def *def, void *field,
                             const char *value)
{
	return word_list(ld, def, field, value, resolver_check_server, false);
}

/* config_find_key - the entry of config_keys[] for key in section, or NULL. */
const struct key_def *config_find_key(enum section section, const char *key)
{
	size_t i;

	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].section == section && strcmp(config_keys[i].key, key) == 0)
			return &config_keys[i];
	return NULL;
}

/* config_key_line - where the key def of the current section was set. */
int *config_key_line(struct loader *ld, const struct key_def *def)
{
	size_t k = (size_t)(def - config_keys);

	if (def->section == SEC_LISTENER)
		return &ld->listener_key_lines[ld->listener][k];
	if (def->section == SEC_SNI)
		return &ld->sni_key_lines[ld->sni][k];
	if (def->section == SEC_DKIM)
		return &ld->dkim_key_lines[ld->dkim][k];
	if (def->section == SEC_SERVICE)
		return &ld->service_key_lines[ld->service][k];
	return &ld->key_lines[k];
}
