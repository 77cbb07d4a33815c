/*
 * config.c - load vsmtpd.conf: defaults, the INI file and the command-line
 * overrides; the key table and its parsers are in config_keys.c, the
 * syntax of values in config_values.c, the checks that tie keys
 * together in config_check.c and the [service:NAME] sections in
 * config_service.c.
 *
 * inih parses the file, reading it through line_reader(). The reader counts
 * lines (the Debian inih is built without INI_HANDLER_LINENO, so the handler
 * gets no line number), drops indentation so that inih never takes a line
 * for the continuation of the one before, refuses lines longer than inih's
 * buffer instead of letting it split them, and handles the "[section]"
 * headers itself, since inih tells a handler nothing about a section without
 * keys. Each key is looked up in config_keys[], which gives its section, its parser
 * and where its value lives.
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

#include <ini.h>
#include <openssl/ssl.h>

#include "config.h"
#include "config_internal.h"

static const char *const section_names[SEC_COUNT] = {
    [SEC_SERVER] = "server",     [SEC_LISTENER] = "listener", [SEC_LIMITS] = "limits",
    [SEC_TIMEOUTS] = "timeouts", [SEC_SMTP] = "smtp",         [SEC_RULES] = "rules",
    [SEC_TLS] = "tls",           [SEC_SNI] = "sni",           [SEC_AUTH] = "auth",
    [SEC_DELIVERY] = "delivery", [SEC_DKIM] = "dkim",         [SEC_SERVICE] = "service",
};

/* config_where - the "file:line" or "command line" that a message starts with. */
void config_where(const struct loader *ld, int line, char *out, size_t outlen)
{
	if (line == LINE_CMDLINE)
		snprintf(out, outlen, "command line");
	else if (line == LINE_NONE)
		snprintf(out, outlen, "%s", ld->file);
	else
		snprintf(out, outlen, "%s:%d", ld->file, line);
}

/* vfail_at - record the first error, located at line, and return -1. */
__attribute__((format(printf, 3, 0))) static int vfail_at(struct loader *ld, int line,
                                                          const char *fmt, va_list ap)
{
	size_t len;

	if (ld->failed)
		return -1;
	config_where(ld, line, ld->msg, sizeof(ld->msg) - 2);
	len = strlen(ld->msg);
	memcpy(ld->msg + len, ": ", 3);
	len += 2;
	vsnprintf(ld->msg + len, sizeof(ld->msg) - len, fmt, ap);
	ld->failed = true;
	ld->fail_line = line > 0 ? line : INT_MAX;
	return -1;
}

/* config_fail_at - record an error located at line (or LINE_NONE, LINE_CMDLINE). */
__attribute__((format(printf, 3, 4))) int config_fail_at(struct loader *ld, int line,
                                                         const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(ld, line, fmt, ap);
	va_end(ap);
	return -1;
}

/* config_fail - record an error located at the line being read. */
__attribute__((format(printf, 2, 3))) int config_fail(struct loader *ld, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(ld, ld->cmdline ? LINE_CMDLINE : ld->lineno, fmt, ap);
	va_end(ap);
	return -1;
}

/* config_fail_raw - record an error message as it is, without a location. */
__attribute__((format(printf, 2, 3))) int config_fail_raw(struct loader *ld, const char *fmt, ...)
{
	va_list ap;

	if (ld->failed)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ld->msg, sizeof(ld->msg), fmt, ap);
	va_end(ap);
	ld->failed = true;
	ld->fail_line = INT_MAX;
	return -1;
}

/* config_shown - text fit for a message: non-printing bytes as '?', cut at 64. */
const char *config_shown(const char *text, char out[static 72])
{
	size_t i;

	for (i = 0; text[i] != '\0' && i < 64; i++)
		out[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
	if (text[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* config_bad_value - record "[section] key: "value" reason" at the current line. */
__attribute__((format(printf, 4, 5))) int config_bad_value(struct loader *ld,
                                                           const struct key_def *def,
                                                           const char *value, const char *fmt, ...)
{
	char reason[256];
	char val[72];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return config_fail(ld, "%s %s: \"%s\" %s", ld->label, def->key, config_shown(value, val),
	                   reason);
}

/* config_no_memory - record an allocation failure. */
int config_no_memory(struct loader *ld)
{
	return config_fail_raw(ld, "out of memory");
}

/* config_replace_string - store a copy of value (NULL for none) in *slot. */
int config_replace_string(struct loader *ld, char **slot, const char *value)
{
	char *copy = NULL;

	if (value != NULL) {
		copy = strdup(value);
		if (copy == NULL)
			return config_no_memory(ld);
	}
	free(*slot);
	*slot = copy;
	return 0;
}

/* config_valid_name - whether name is 1 to 32 of [a-z0-9_-]. */
bool config_valid_name(const char *name)
{
	size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-");

	return n > 0 && n <= LISTENER_NAME_MAX && name[n] == '\0';
}

/* find_listener - the index of the listener called name, or -1. */
static int find_listener(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nlisteners; i++)
		if (strcmp(cfg->listeners[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* add_listener - a new listener called name, of kind smtp with no address. */
static int add_listener(struct loader *ld, const char *name, int line)
{
	struct config *cfg = ld->cfg;
	struct listener_config *l;

	if (cfg->nlisteners == CONFIG_MAX_LISTENERS)
		return config_fail(ld, "[listener:%s] is one listener too many (at most %d)", name,
		                   CONFIG_MAX_LISTENERS);
	l = &cfg->listeners[cfg->nlisteners];
	l->name = strdup(name);
	l->kind = strdup("smtp");
	if (l->name == NULL || l->kind == NULL) {
		free(l->name);
		free(l->kind);
		l->name = l->kind = NULL;
		return config_no_memory(ld);
	}
	ld->listener_line[cfg->nlisteners] = line;
	return (int)cfg->nlisteners++;
}

/* valid_sni_name - a host name, or "*." and a domain. */
static bool valid_sni_name(const char *name)
{
	if (strncmp(name, "*.", 2) == 0)
		name += 2;
	return strlen(name) <= SNI_NAME_MAX && config_valid_domain(name);
}

/* enter_sni - make [sni:NAME] the current section, adding it when new. */
static int enter_sni(struct loader *ld, const char *name, int line)
{
	struct config *cfg = ld->cfg;
	char shown_name[72];
	char *lower, *p;
	size_t i;

	if (!valid_sni_name(name))
		return config_fail(ld, "[sni:%s]: NAME must be a host name or *.domain",
		                   config_shown(name, shown_name));
	if ((lower = strdup(name)) == NULL)
		return config_no_memory(ld);
	for (p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	for (i = 0; i < cfg->nsni; i++)
		if (strcmp(cfg->sni[i].name, lower) == 0)
			break;
	if (i < cfg->nsni && !ld->cmdline) {
		free(lower);
		return config_fail(ld, "duplicate section [sni:%s], first on line %d", name,
		                   ld->sni_line[i]);
	}
	if (i == cfg->nsni) {
		if (cfg->nsni == CONFIG_MAX_SNI) {
			free(lower);
			return config_fail(ld, "[sni:%s] is one too many (at most %d)", name,
			                   CONFIG_MAX_SNI);
		}
		cfg->sni[i].name = lower;
		ld->sni_line[i] = line;
		cfg->nsni++;
	} else {
		free(lower);
	}
	ld->section = SEC_SNI;
	ld->sni = i;
	snprintf(ld->label, sizeof(ld->label), "[sni:%s]", name);
	return 0;
}

/* enter_dkim - make [dkim:NAME] the current section, adding it when new. */
static int enter_dkim(struct loader *ld, const char *name, int line)
{
	struct config *cfg = ld->cfg;
	char shown_name[72];
	size_t i;

	if (!config_valid_name(name))
		return config_fail(ld, "[dkim:%s]: a key name is 1 to %d characters of a-z, 0-9, _ and -",
		                   config_shown(name, shown_name), LISTENER_NAME_MAX);
	for (i = 0; i < cfg->ndkim; i++)
		if (strcmp(cfg->dkim[i].name, name) == 0)
			break;
	if (i < cfg->ndkim && !ld->cmdline)
		return config_fail(ld, "duplicate section [dkim:%s], first on line %d", name,
		                   ld->dkim_line[i]);
	if (i == cfg->ndkim) {
		if (cfg->ndkim == CONFIG_MAX_DKIM)
			return config_fail(ld, "[dkim:%s] is one too many (at most %d)", name,
			                   CONFIG_MAX_DKIM);
		if ((cfg->dkim[i].name = strdup(name)) == NULL)
			return config_no_memory(ld);
		ld->dkim_line[i] = line;
		cfg->ndkim++;
	}
	ld->section = SEC_DKIM;
	ld->dkim = i;
	snprintf(ld->label, sizeof(ld->label), "[dkim:%s]", name);
	return 0;
}

/* enter_section - make name ("server", "listener:smtp") the current section. */
static int enter_section(struct loader *ld, const char *name)
{
	char shown_name[72];
	enum section s;
	int line = ld->cmdline ? LINE_CMDLINE : ld->lineno;
	int i;

	if (strncmp(name, "listener:", 9) == 0) {
		const char *lname = name + 9;

		if (!config_valid_name(lname))
			return config_fail(
			    ld, "[%s]: a listener name is 1 to %d characters of a-z, 0-9, _ and -",
			    config_shown(name, shown_name), LISTENER_NAME_MAX);
		i = find_listener(ld->cfg, lname);
		if (i >= 0 && !ld->cmdline)
			return config_fail(ld, "duplicate listener [%s], first on line %d", name,
			                   ld->listener_line[i]);
		if (i < 0) {
			i = add_listener(ld, lname, line);
			if (i < 0)
				return -1;
		}
		ld->section = SEC_LISTENER;
		ld->listener = (size_t)i;
		snprintf(ld->label, sizeof(ld->label), "[%s]", name);
		return 0;
	}
	if (strncmp(name, "sni:", 4) == 0)
		return enter_sni(ld, name + 4, line);
	if (strncmp(name, "dkim:", 5) == 0)
		return enter_dkim(ld, name + 5, line);
	if (strncmp(name, "service:", 8) == 0)
		return config_enter_service(ld, name + 8, line);
	for (s = SEC_SERVER; s < SEC_COUNT; s++)
		if (s != SEC_LISTENER && s != SEC_SNI && s != SEC_DKIM && s != SEC_SERVICE &&
		    strcmp(name, section_names[s]) == 0)
			break;
	if (s == SEC_COUNT) {
		if (strcmp(name, "listener") == 0)
			return config_fail(
			    ld, "section [listener] needs a name, as in [listener:smtp]");
		if (strcmp(name, "sni") == 0)
			return config_fail(
			    ld, "section [sni] needs a host name, as in [sni:mail.example.org]");
		if (strcmp(name, "dkim") == 0)
			return config_fail(ld, "section [dkim] needs a key name, as in [dkim:main]");
		if (strcmp(name, "service") == 0)
			return config_fail(ld,
			                   "section [service] needs a name, as in [service:clamav]");
		return config_fail(ld, "unknown section [%s]", config_shown(name, shown_name));
	}
	if (!ld->cmdline) {
		if (ld->section_line[s] != 0)
			return config_fail(ld, "duplicate section [%s], first on line %d", name,
			                   ld->section_line[s]);
		ld->section_line[s] = line;
	}
	ld->section = s;
	snprintf(ld->label, sizeof(ld->label), "[%s]", name);
	return 0;
}

/* set_key - parse value into key of the current section. */
static int set_key(struct loader *ld, const char *key, const char *value)
{
	const struct key_def *def;
	char shown_key[72];
	char *base;
	int *line;

	def = config_find_key(ld->section, key);
	if (def == NULL)
		return config_fail(ld, "%s unknown key \"%s\"", ld->label,
		                   config_shown(key, shown_key));
	line = config_key_line(ld, def);
	if (!def->list && !ld->cmdline && *line > 0)
		return config_fail(ld, "%s %s: already set on line %d", ld->label, key, *line);
	if (def->section == SEC_LISTENER) {
		struct listener_config *l = &ld->cfg->listeners[ld->listener];

		base = (char *)l;
		if (def->list && ld->cmdline && !ld->addresses_overridden[ld->listener]) {
			/* The first override of a list replaces the file's values. */
			while (l->naddresses > 0) {
				l->naddresses--;
				free(l->addresses[l->naddresses]);
				l->addresses[l->naddresses] = NULL;
			}
			ld->addresses_overridden[ld->listener] = true;
		}
	} else if (def->section == SEC_SNI) {
		base = (char *)&ld->cfg->sni[ld->sni];
	} else if (def->section == SEC_DKIM) {
		base = (char *)&ld->cfg->dkim[ld->dkim];
	} else if (def->section == SEC_SERVICE) {
		base = (char *)&ld->cfg->service[ld->service];
	} else {
		base = (char *)ld->cfg;
	}
	if (def->parse(ld, def, base + def->offset, value) < 0)
		return -1;
	*line = ld->cmdline ? LINE_CMDLINE : ld->lineno;
	return 0;
}

/* on_key - inih's handler: one "key = value" line of the file. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	char shown_key[72];

	(void)section; /* the same as the header line_reader() saw */
	if (ld->failed)
		return 1;
	if (ld->section == SEC_NONE) {
		config_fail(ld, "\"%s\" comes before any [section]", config_shown(name, shown_key));
		return 0;
	}
	return set_key(ld, name, value) == 0;
}

/* section_header - handle a "[name]" line, already stripped of blanks. */
static int section_header(struct loader *ld, char *line)
{
	char *close = strchr(line, ']');
	char *rest;

	if (close == NULL)
		return config_fail(ld, "section header without a closing ']'");
	for (rest = close + 1; *rest == ' ' || *rest == '\t'; rest++)
		;
	if (*rest != '\0' && *rest != ';' && *rest != '#')
		return config_fail(ld, "text after the section header");
	*close = '\0';
	if (enter_section(ld, line + 1) < 0)
		return -1;
	*close = ']';
	return 0;
}

/* line_reader - inih's reader: the next line, counted, unindented, checked. */
static char *line_reader(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	char *line, *end;
	ssize_t n;
	size_t len;

	if (ld->failed)
		return NULL;
	errno = 0;
	n = getline(&ld->buf, &ld->bufsize, ld->fp);
	if (n < 0) {
		if (ferror(ld->fp)) {
			config_fail_raw(ld, "cannot read %s: %s", ld->file,
			                strerror(errno ? errno : EIO));
		}
		return NULL;
	}
	ld->lineno++;
	line = ld->buf;
	if (strlen(line) != (size_t)n) {
		config_fail(ld, "the line holds a NUL byte");
		return NULL;
	}
	if (ld->lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3; /* a UTF-8 byte order mark */
	line += strspn(line, " \t\r\n\v\f");
	end = line + strlen(line);
	while (end > line && strchr(" \t\r\n\v\f", end[-1]) != NULL)
		end--;
	*end = '\0';
	len = (size_t)(end - line);
	if (num < 1 || len >= (size_t)num) {
		config_fail(ld, "the line is longer than %d characters", num - 1);
		return NULL;
	}
	if (line[0] == '[' && section_header(ld, line) < 0)
		return NULL;
	memcpy(str, line, len + 1);
	return str;
}

/* apply_override - one "section.key=value" from the command line. */
static int apply_override(struct loader *ld, const char *text)
{
	char shown_text[72];
	char *copy, *eq, *dot, *section, *key, *value;
	int ret;

	copy = strdup(text);
	if (copy == NULL)
		return config_no_memory(ld);
	eq = strchr(copy, '=');
	/* The last dot: keys have none, [sni:mail.example.org] has some. */
	dot = eq ? memrchr(copy, '.', (size_t)(eq - copy)) : NULL;
	if (dot == NULL) {
		free(copy);
		return config_fail(ld,
		                   "-o \"%s\": expected section.key=value, as in server.log=stderr",
		                   config_shown(text, shown_text));
	}
	*eq = '\0';
	*dot = '\0';
	section = copy + strspn(copy, " \t");
	key = dot + 1 + strspn(dot + 1, " \t");
	value = eq + 1 + strspn(eq + 1, " \t");
	for (char *s = eq; s > key && (s[-1] == ' ' || s[-1] == '\t'); s--)
		s[-1] = '\0';
	for (char *s = value + strlen(value); s > value && (s[-1] == ' ' || s[-1] == '\t'); s--)
		s[-1] = '\0';
	ret = enter_section(ld, section);
	if (ret == 0)
		ret = set_key(ld, key, value);
	free(copy);
	return ret;
}

/* config_new - a config holding every default that does not need the system. */
static struct config *config_new(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return NULL;
	cfg->banner = strdup("ESMTP vsmtpd");
	cfg->user = strdup("vsmtpd");
	cfg->spool_dir = strdup("/var/spool/vsmtpd");
	cfg->log_target = LOG_TARGET_SYSLOG;
	cfg->log_level = LOG_INFO;
	cfg->syslog_facility = LOG_MAIL;
	cfg->max_sessions = 100;
	cfg->max_sessions_per_ip = 10;
	cfg->spare_processes = 4;
	cfg->max_use = 100;
	cfg->max_message_size = 25 << 20;
	cfg->max_recipients = 100;
	cfg->max_command_line = 2048;
	cfg->max_text_line = 1000;
	cfg->soft_error_limit = 10;
	cfg->hard_error_limit = 20;
	cfg->error_delay_ms = 1000;
	cfg->min_free_space = 0;
	cfg->timeout_command = 300;
	cfg->timeout_data = 300;
	cfg->timeout_command_deadline = 0; /* computed: the value of command */
	cfg->timeout_data_min_rate = 500;
	cfg->timeout_data_grace = 0; /* computed: the value of data */
	cfg->timeout_session = 3600;
	cfg->shutdown_grace = 30;
	cfg->max_idle = 60;
	cfg->bare_eol = BARE_EOL_REJECT;
	cfg->rules_file = strdup(CONFIG_DEFAULT_RULES);
	cfg->app_dir = strdup("/var/lib/vsmtpd");
	cfg->rules_instruction_limit = 10000000;
	cfg->rules_memory_limit = 64 << 20;
	cfg->rules_time_limit_ms = 2000;
	cfg->rules_load_time_limit_ms = 250;
	cfg->local_domains = strdup("");
	cfg->trusted_networks = strdup("127.0.0.0/8 ::1");
	cfg->rules_dns_servers = strdup("");
	cfg->rules_dns_timeout_ms = 5000;
	cfg->tls_min_protocol = TLS1_2_VERSION;
	cfg->tls_ciphers.value = strdup("");
	cfg->tls_ciphersuites.value = strdup("");
	cfg->tls_handshake_timeout = 30;
	cfg->auth_mechanisms = strdup("PLAIN LOGIN");
	cfg->auth_backend = AUTH_BACKEND_SASLDB;
	cfg->sasldb_path = strdup("/etc/sasldb2");
	cfg->saslauthd_path = strdup("/var/run/saslauthd/mux");
	cfg->auth_realm = strdup("");
	cfg->auth_plaintext_networks = strdup("127.0.0.0/8 ::1");
	cfg->auth_max_failures = 3;
	cfg->control_socket = strdup("/run/vsmtpd/control");
	cfg->delivery_max_concurrency = 100;
	cfg->delivery_max_per_destination = 20;
	cfg->local_transport = LOCAL_MAILDIR;
	cfg->maildir_path = strdup("/var/vmail/%d/%u/Maildir");
	cfg->mbox_path = strdup("/var/mail/%u");
	cfg->lmtp_target = strdup("unix:/run/dovecot/lmtp");
	cfg->relay_host = strdup("");
	cfg->relay_tls = CLIENT_TLS_MAY;
	cfg->relay_auth_user = strdup("");
	cfg->relay_auth_password = strdup("");
	cfg->mx_tls = CLIENT_TLS_MAY;
	cfg->mx_port = 25;
	cfg->delivery_dns_servers = strdup("");
	cfg->delivery_dns_timeout_ms = 10000;
	cfg->tls_ca_file = strdup("");
	cfg->helo_name = strdup("");
	cfg->connect_timeout = 30;
	cfg->command_timeout = 300;
	cfg->data_timeout = 600;
	cfg->connection_cache_time = 2;
	cfg->retry_min = 300;
	cfg->retry_max = 4000;
	cfg->max_queue_lifetime = 5 * 86400;
	cfg->bounce_queue_lifetime = 5 * 86400;
	cfg->delay_warning = 0;
	cfg->dsn_attach_limit = 64 << 10;
	cfg->max_worker_failures = 3;
	if (cfg->control_socket == NULL || cfg->maildir_path == NULL || cfg->mbox_path == NULL ||
	    cfg->lmtp_target == NULL || cfg->relay_host == NULL || cfg->relay_auth_user == NULL ||
	    cfg->relay_auth_password == NULL || cfg->delivery_dns_servers == NULL ||
	    cfg->tls_ca_file == NULL || cfg->helo_name == NULL) {
		config_free(cfg);
		return NULL;
	}
	if (cfg->tls_ciphers.value == NULL || cfg->tls_ciphersuites.value == NULL ||
	    cfg->auth_mechanisms == NULL || cfg->sasldb_path == NULL ||
	    cfg->saslauthd_path == NULL || cfg->auth_realm == NULL ||
	    cfg->auth_plaintext_networks == NULL) {
		config_free(cfg);
		return NULL;
	}
	if (cfg->banner == NULL || cfg->user == NULL || cfg->spool_dir == NULL ||
	    cfg->rules_file == NULL || cfg->app_dir == NULL || cfg->local_domains == NULL ||
	    cfg->trusted_networks == NULL || cfg->rules_dns_servers == NULL) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* read_file - parse the open file into ld->cfg. */
static int read_file(struct loader *ld)
{
	int ret = ini_parse_stream(line_reader, ld, on_key, ld);

	/* inih reports the first line it could not parse; keep the earlier error. */
	if (ret > 0 && (!ld->failed || ret < ld->fail_line)) {
		ld->failed = false;
		return config_fail_at(ld, ret,
		                      "syntax error: expected \"key = value\", \"[section]\" or a "
		                      "comment");
	}
	if (ret < 0 && !ld->failed)
		return config_no_memory(ld);
	return ld->failed ? -1 : 0;
}

/* config_load - read the file at path, then apply the overrides. */
struct config *config_load(const char *path, char *const *overrides, size_t noverrides, char *err,
                           size_t errlen)
{
	struct loader ld;
	size_t i;
	int ret = -1;

	if (path == NULL)
		path = CONFIG_DEFAULT_PATH;
	memset(&ld, 0, sizeof(ld));
	ld.file = path;
	ld.cfg = config_new();
	if (ld.cfg == NULL) {
		config_no_memory(&ld);
		goto out;
	}
	ld.cfg->path = config_absolute_path(path);
	if (ld.cfg->path == NULL) {
		config_fail_raw(&ld, "cannot resolve %s: %s", path, strerror(errno));
		goto out;
	}
	ld.fp = fopen(path, "re");
	if (ld.fp == NULL) {
		config_fail_raw(&ld, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (read_file(&ld) < 0)
		goto out;
	ld.cmdline = true;
	ld.lineno = 0;
	for (i = 0; i < noverrides; i++)
		if (apply_override(&ld, overrides[i]) < 0)
			goto out;
	ret = config_finish(&ld);
out:
	if (ld.fp != NULL)
		fclose(ld.fp);
	free(ld.buf);
	if (ret < 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s", ld.msg);
		config_free(ld.cfg);
		return NULL;
	}
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	return ld.cfg;
}

/* config_free - release a config from config_load (NULL is fine). */
void config_free(struct config *cfg)
{
	size_t i, j;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nlisteners; i++) {
		free(cfg->listeners[i].name);
		free(cfg->listeners[i].kind);
		for (j = 0; j < cfg->listeners[i].naddresses; j++)
			free(cfg->listeners[i].addresses[j]);
	}
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->banner);
	free(cfg->user);
	free(cfg->group);
	free(cfg->spool_dir);
	free(cfg->rules_file);
	free(cfg->app_dir);
	free(cfg->local_domains);
	free(cfg->trusted_networks);
	free(cfg->rules_dns_servers);
	free(cfg->tls_certificate.path);
	free(cfg->tls_certificate.where);
	free(cfg->tls_key.path);
	free(cfg->tls_key.where);
	free(cfg->tls_ciphers.value);
	free(cfg->tls_ciphers.where);
	free(cfg->tls_ciphersuites.value);
	free(cfg->tls_ciphersuites.where);
	for (i = 0; i < cfg->ndkim; i++) {
		free(cfg->dkim[i].name);
		free(cfg->dkim[i].domain);
		free(cfg->dkim[i].selector);
		free(cfg->dkim[i].key.path);
		free(cfg->dkim[i].key.where);
	}
	config_free_services(cfg);
	for (i = 0; i < cfg->nsni; i++) {
		free(cfg->sni[i].name);
		free(cfg->sni[i].certificate.path);
		free(cfg->sni[i].certificate.where);
		free(cfg->sni[i].key.path);
		free(cfg->sni[i].key.where);
	}
	free(cfg->auth_mechanisms);
	free(cfg->auth_mechanisms_where);
	free(cfg->sasldb_path);
	free(cfg->saslauthd_path);
	free(cfg->auth_realm);
	free(cfg->auth_plaintext_networks);
	free(cfg->control_socket);
	free(cfg->admin_group);
	free(cfg->maildir_path);
	free(cfg->mbox_path);
	free(cfg->lmtp_target);
	free(cfg->relay_host);
	free(cfg->relay_auth_user);
	free(cfg->relay_auth_password);
	free(cfg->delivery_dns_servers);
	free(cfg->tls_ca_file);
	free(cfg->helo_name);
	free(cfg);
}
