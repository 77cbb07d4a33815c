/*
 * config_keys.c - every key of vsmtpd.conf in one table, config_keys[]:
 * its section, name, parser and field, with the bounds of a number and the
 * words of a choice, and the per-key parsers of numbers, sizes, durations,
 * choices, accounts and listener addresses, which turn a value's text into
 * the field, recording what is wrong through config_bad_value(). The
 * parsers of names, files, text and lists are in config_key_text.c.
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

#include <openssl/ssl.h>

#include "config.h"
#include "config_internal.h"
#include "resolver.h"

static int parse_banner(struct loader *ld, const struct key_def *def, void *field,
                        const char *value);
static int parse_account(struct loader *ld, const struct key_def *def, void *field,
                         const char *value);
static int parse_dir(struct loader *ld, const struct key_def *def, void *field, const char *value);
static int parse_choice(struct loader *ld, const struct key_def *def, void *field,
                        const char *value);
static int parse_count(struct loader *ld, const struct key_def *def, void *field,
                       const char *value);
static int parse_size64(struct loader *ld, const struct key_def *def, void *field,
                        const char *value);
static int parse_size(struct loader *ld, const struct key_def *def, void *field, const char *value);
static int parse_ms(struct loader *ld, const struct key_def *def, void *field, const char *value);
static int parse_seconds(struct loader *ld, const struct key_def *def, void *field,
                         const char *value);
static int parse_kind(struct loader *ld, const struct key_def *def, void *field, const char *value);
static int parse_addresses(struct loader *ld, const struct key_def *def, void *field,
                           const char *value);

static const struct choice log_targets[] = {
    {"stderr", LOG_TARGET_STDERR},
    {"syslog", LOG_TARGET_SYSLOG},
    {NULL, 0},
};

static const struct choice log_levels[] = {
    {"debug", LOG_DEBUG},     {"info", LOG_INFO}, {"notice", LOG_NOTICE},
    {"warning", LOG_WARNING}, {"err", LOG_ERR},   {NULL, 0},
};

static const struct choice facilities[] = {
    {"mail", LOG_MAIL},
    {"daemon", LOG_DAEMON},
    {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1},
    {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3},
    {"local4", LOG_LOCAL4},
    {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6},
    {"local7", LOG_LOCAL7},
    {NULL, 0},
};

static const struct choice bare_eols[] = {
    {"reject", BARE_EOL_REJECT},
    {"normalize", BARE_EOL_NORMALIZE},
    {NULL, 0},
};

static const struct choice tls_levels[] = {
    {"none", LISTENER_TLS_NONE},
    {"may", LISTENER_TLS_MAY},
    {"encrypt", LISTENER_TLS_ENCRYPT},
    {NULL, 0},
};

static const struct choice auth_levels[] = {
    {"no", LISTENER_AUTH_NO},
    {"yes", LISTENER_AUTH_YES},
    {"required", LISTENER_AUTH_REQUIRED},
    {NULL, 0},
};

static const struct choice tls_protocols[] = {
    {"TLSv1.2", TLS1_2_VERSION},
    {"TLSv1.3", TLS1_3_VERSION},
    {NULL, 0},
};

static const struct choice auth_backends[] = {
    {"sasldb", AUTH_BACKEND_SASLDB},
    {"saslauthd", AUTH_BACKEND_SASLAUTHD},
    {NULL, 0},
};

static const struct choice local_transports[] = {
    {"maildir", LOCAL_MAILDIR},
    {"mbox", LOCAL_MBOX},
    {"lmtp", LOCAL_LMTP},
    {NULL, 0},
};

static const struct choice relay_tls_levels[] = {
    {"none", CLIENT_TLS_NONE},
    {"may", CLIENT_TLS_MAY},
    {"encrypt", CLIENT_TLS_ENCRYPT},
    {"implicit", CLIENT_TLS_IMPLICIT},
    {NULL, 0},
};

static const struct choice mx_tls_levels[] = {
    {"none", CLIENT_TLS_NONE},
    {"may", CLIENT_TLS_MAY},
    {NULL, 0},
};

static const struct choice service_kinds[] = {
    {"clamd", SERVICE_CLAMD},     {"spamd", SERVICE_SPAMD},     {"rspamd", SERVICE_RSPAMD},
    {"milter", SERVICE_MILTER},   {"command", SERVICE_COMMAND}, {"delegate", SERVICE_DELEGATE},
    {NULL, 0},
};

static const struct choice service_failures[] = {
    {"tempfail", SERVICE_FAIL_TEMPFAIL},
    {"accept", SERVICE_FAIL_ACCEPT},
    {"reject", SERVICE_FAIL_REJECT},
    {NULL, 0},
};

static const struct choice booleans[] = {
    {"no", 0},
    {"yes", 1},
    {NULL, 0},
};

/* parse_choice() stores an int into these. */
_Static_assert(sizeof(enum log_target) == sizeof(int), "enum log_target is not int-sized");
_Static_assert(sizeof(enum bare_eol_policy) == sizeof(int),
               "enum bare_eol_policy is not int-sized");
_Static_assert(sizeof(enum listener_tls) == sizeof(int), "enum listener_tls is not int-sized");
_Static_assert(sizeof(enum listener_auth) == sizeof(int), "enum listener_auth is not int-sized");
_Static_assert(sizeof(enum auth_backend) == sizeof(int), "enum auth_backend is not int-sized");
_Static_assert(sizeof(enum local_transport) == sizeof(int),
               "enum local_transport is not int-sized");
_Static_assert(sizeof(enum client_tls) == sizeof(int), "enum client_tls is not int-sized");
_Static_assert(sizeof(enum service_kind) == sizeof(int), "enum service_kind is not int-sized");
_Static_assert(sizeof(enum service_failure) == sizeof(int),
               "enum service_failure is not int-sized");

#define CFG(f) offsetof(struct config, f)
#define LST(f) offsetof(struct listener_config, f)
#define SNI(f) offsetof(struct sni_config, f)
#define DKM(f) offsetof(struct dkim_config, f)
#define SVC(f) offsetof(struct service_config, f)

/*
 * Every key: its section, name, parser and field, then on the second line the
 * bounds of a number, the words of a choice and whether each line adds to a list.
 */
/* clang-format off */
const struct key_def config_keys[] = {
	{SEC_SERVER,   "hostname",            parse_hostname,  CFG(hostname),
	                                      0,   0,                      NULL,        false},
	{SEC_SERVER,   "banner",              parse_banner,    CFG(banner),
	                                      0,   0,                      NULL,        false},
	{SEC_SERVER,   "user",                parse_account,   CFG(user),
	                                      1,   0,                      NULL,        false},
	{SEC_SERVER,   "group",               parse_account,   CFG(group),
	                                      0,   0,                      NULL,        false},
	{SEC_SERVER,   "spool_dir",           parse_dir,       CFG(spool_dir),
	                                      0,   0,                      NULL,        false},
	{SEC_SERVER,   "log",                 parse_choice,    CFG(log_target),
	                                      0,   0,                      log_targets, false},
	{SEC_SERVER,   "log_level",           parse_choice,    CFG(log_level),
	                                      0,   0,                      log_levels,  false},
	{SEC_SERVER,   "syslog_facility",     parse_choice,    CFG(syslog_facility),
	                                      0,   0,                      facilities,  false},
	{SEC_LISTENER, "address",             parse_addresses, LST(addresses),
	                                      0,   0,                      NULL,        true},
	{SEC_LISTENER, "kind",                parse_kind,      LST(kind),
	                                      0,   0,                      NULL,        false},
	{SEC_LISTENER, "tls",                 parse_choice,    LST(tls),
	                                      0,   0,                      tls_levels,  false},
	{SEC_LISTENER, "auth",                parse_choice,    LST(auth),
	                                      0,   0,                      auth_levels, false},
	{SEC_LISTENER, "milters",             parse_milters,   LST(milters),
	                                      0,   0,                      NULL,        false},
	{SEC_LIMITS,   "max_sessions",        parse_count,     CFG(max_sessions),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_LIMITS,   "max_sessions_per_ip", parse_count,     CFG(max_sessions_per_ip),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_LIMITS,   "spare_processes",     parse_count,     CFG(spare_processes),
	                                      0,   UINT_MAX,               NULL,        false},
	{SEC_LIMITS,   "max_use",             parse_count,     CFG(max_use),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_LIMITS,   "max_message_size",    parse_size64,    CFG(max_message_size),
	                                      1,   MAX_MESSAGE_SIZE_LIMIT, NULL,        false},
	{SEC_LIMITS,   "max_recipients",      parse_count,     CFG(max_recipients),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_LIMITS,   "max_command_line",    parse_size,      CFG(max_command_line),
	                                      512, LINE_LIMIT_MAX,         NULL,        false},
	{SEC_LIMITS,   "max_text_line",       parse_size,      CFG(max_text_line),
	                                      80,  LINE_LIMIT_MAX,         NULL,        false},
	{SEC_LIMITS,   "soft_error_limit",    parse_count,     CFG(soft_error_limit),
	                                      0,   UINT_MAX,               NULL,        false},
	{SEC_LIMITS,   "hard_error_limit",    parse_count,     CFG(hard_error_limit),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_LIMITS,   "error_delay",         parse_ms,        CFG(error_delay_ms),
	                                      0,   UINT_MAX,               NULL,        false},
	{SEC_LIMITS,   "min_free_space",      parse_size64,    CFG(min_free_space),
	                                      0,   UINT64_MAX,             NULL,        false},
	{SEC_TIMEOUTS, "command",             parse_seconds,   CFG(timeout_command),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_TIMEOUTS, "data",                parse_seconds,   CFG(timeout_data),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_TIMEOUTS, "command_deadline",    parse_seconds,   CFG(timeout_command_deadline),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_TIMEOUTS, "data_min_rate",       parse_size,      CFG(timeout_data_min_rate),
	                                      0,   1u << 30,               NULL,        false},
	{SEC_TIMEOUTS, "data_rate_grace",     parse_seconds,   CFG(timeout_data_grace),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_TIMEOUTS, "session",             parse_seconds,   CFG(timeout_session),
	                                      0,   UINT_MAX,               NULL,        false},
	{SEC_TIMEOUTS, "shutdown_grace",      parse_seconds,   CFG(shutdown_grace),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_TIMEOUTS, "max_idle",            parse_seconds,   CFG(max_idle),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_SMTP,     "bare_line_endings",   parse_choice,    CFG(bare_eol),
	                                      0,   0,                      bare_eols,   false},
	{SEC_RULES,    "file",                parse_file,      CFG(rules_file),
	                                      0,   0,                      NULL,        false},
	{SEC_RULES,    "instruction_limit",   parse_count,     CFG(rules_instruction_limit),
	                                      1000, UINT_MAX,              NULL,        false},
	{SEC_RULES,    "time_limit",          parse_ms,        CFG(rules_time_limit_ms),
	                                      10,  UINT_MAX,               NULL,        false},
	{SEC_RULES,    "memory_limit",        parse_size64,    CFG(rules_memory_limit),
	                                      1 << 20, UINT64_C(1) << 34,  NULL,        false},
	{SEC_RULES,    "load_time_limit",     parse_ms,        CFG(rules_load_time_limit_ms),
	                                      10,  600000,                 NULL,        false},
	{SEC_RULES,    "app_dir",             parse_dir,       CFG(app_dir),
	                                      0,   0,                      NULL,        false},
	{SEC_RULES,    "local_domains",       parse_domains,   CFG(local_domains),
	                                      0,   0,                      NULL,        false},
	{SEC_RULES,    "allow_routing_local_parts", parse_choice, CFG(allow_routing_local_parts),
	                                      0,   0,                      booleans,    false},
	{SEC_RULES,    "trusted_networks",    parse_networks,  CFG(trusted_networks),
	                                      0,   0,                      NULL,        false},
	{SEC_RULES,    "dns_servers",         parse_dns_servers, CFG(rules_dns_servers),
	                                      0,   0,                      NULL,        false},
	{SEC_RULES,    "dns_timeout",         parse_ms,        CFG(rules_dns_timeout_ms),
	                                      100, 60000,                  NULL,        false},
	{SEC_TLS,      "certificate",         parse_located_file, CFG(tls_certificate),
	                                      0,   0,                      NULL,        false},
	{SEC_TLS,      "key",                 parse_located_file, CFG(tls_key),
	                                      0,   0,                      NULL,        false},
	{SEC_TLS,      "min_protocol",        parse_choice,    CFG(tls_min_protocol),
	                                      0,   0,                      tls_protocols, false},
	{SEC_TLS,      "ciphers",             parse_located_text, CFG(tls_ciphers),
	                                      0,   0,                      NULL,        false},
	{SEC_TLS,      "ciphersuites",        parse_located_text, CFG(tls_ciphersuites),
	                                      0,   0,                      NULL,        false},
	{SEC_TLS,      "handshake_timeout",   parse_seconds,   CFG(tls_handshake_timeout),
	                                      1,   3600,                   NULL,        false},
	{SEC_SNI,      "certificate",         parse_located_file, SNI(certificate),
	                                      0,   0,                      NULL,        false},
	{SEC_SNI,      "key",                 parse_located_file, SNI(key),
	                                      0,   0,                      NULL,        false},
	{SEC_DKIM,     "domain",              parse_hostname,  DKM(domain),
	                                      0,   0,                      NULL,        false},
	{SEC_DKIM,     "selector",            parse_hostname,  DKM(selector),
	                                      0,   0,                      NULL,        false},
	{SEC_DKIM,     "key",                 parse_located_file, DKM(key),
	                                      0,   0,                      NULL,        false},
	{SEC_AUTH,     "mechanisms",          parse_mechanisms, CFG(auth_mechanisms),
	                                      0,   0,                      NULL,        false},
	{SEC_AUTH,     "backend",             parse_choice,    CFG(auth_backend),
	                                      0,   0,                      auth_backends, false},
	{SEC_AUTH,     "sasldb_path",         parse_file,      CFG(sasldb_path),
	                                      0,   0,                      NULL,        false},
	{SEC_AUTH,     "saslauthd_path",      parse_socket,    CFG(saslauthd_path),
	                                      0,   0,                      NULL,        false},
	{SEC_AUTH,     "realm",               parse_text,      CFG(auth_realm),
	                                      0,   0,                      NULL,        false},
	{SEC_AUTH,     "allow_plaintext",     parse_choice,    CFG(auth_allow_plaintext),
	                                      0,   0,                      booleans,    false},
	{SEC_AUTH,     "plaintext_networks",  parse_networks,  CFG(auth_plaintext_networks),
	                                      0,   0,                      NULL,        false},
	{SEC_AUTH,     "max_failures",        parse_count,     CFG(auth_max_failures),
	                                      1,   100,                    NULL,        false},
	{SEC_SERVER,   "control_socket",      parse_socket,    CFG(control_socket),
	                                      0,   0,                      NULL,        false},
	{SEC_SERVER,   "admin_group",         parse_account,   CFG(admin_group),
	                                      0,   0,                      NULL,        false},
	{SEC_DELIVERY, "max_deliveries",      parse_count,     CFG(delivery_max_concurrency),
	                                      1,   10000,                  NULL,        false},
	{SEC_DELIVERY, "max_per_destination", parse_count,     CFG(delivery_max_per_destination),
	                                      1,   10000,                  NULL,        false},
	{SEC_DELIVERY, "local_transport",     parse_choice,    CFG(local_transport),
	                                      0,   0,                      local_transports, false},
	{SEC_DELIVERY, "maildir_path",        parse_path_template, CFG(maildir_path),
	                                      0,   0,                      NULL,        false},
	{SEC_DELIVERY, "mbox_path",           parse_path_template, CFG(mbox_path),
	                                      0,   0,                      NULL,        false},
	{SEC_DELIVERY, "lmtp",                parse_target,    CFG(lmtp_target),
	                                      1,   0,                      NULL,        false},
	{SEC_DELIVERY, "relay_host",          parse_target,    CFG(relay_host),
	                                      0,   0,                      NULL,        false},
	{SEC_DELIVERY, "relay_tls",           parse_choice,    CFG(relay_tls),
	                                      0,   0,                      relay_tls_levels, false},
	{SEC_DELIVERY, "relay_tls_verify",    parse_choice,    CFG(relay_tls_verify),
	                                      0,   0,                      booleans,    false},
	{SEC_DELIVERY, "relay_auth_user",     parse_text,      CFG(relay_auth_user),
	                                      0,   0,                      NULL,        false},
	{SEC_DELIVERY, "relay_auth_password", parse_text,      CFG(relay_auth_password),
	                                      0,   0,                      NULL,        false},
	{SEC_DELIVERY, "mx_tls",              parse_choice,    CFG(mx_tls),
	                                      0,   0,                      mx_tls_levels, false},
	{SEC_DELIVERY, "mx_port",             parse_count,     CFG(mx_port),
	                                      1,   65535,                  NULL,        false},
	{SEC_DELIVERY, "dns_servers",         parse_dns_servers, CFG(delivery_dns_servers),
	                                      0,   0,                      NULL,        false},
	{SEC_DELIVERY, "dns_timeout",         parse_ms,        CFG(delivery_dns_timeout_ms),
	                                      100, 60000,                  NULL,        false},
	{SEC_DELIVERY, "tls_ca_file",         parse_optional_file, CFG(tls_ca_file),
	                                      0,   0,                      NULL,        false},
	{SEC_DELIVERY, "helo_name",           parse_optional_hostname, CFG(helo_name),
	                                      0,   0,                      NULL,        false},
	{SEC_DELIVERY, "connect_timeout",     parse_seconds,   CFG(connect_timeout),
	                                      1,   3600,                   NULL,        false},
	{SEC_DELIVERY, "command_timeout",     parse_seconds,   CFG(command_timeout),
	                                      1,   3600,                   NULL,        false},
	{SEC_DELIVERY, "data_timeout",        parse_seconds,   CFG(data_timeout),
	                                      1,   3600,                   NULL,        false},
	{SEC_DELIVERY, "connection_cache_time", parse_seconds, CFG(connection_cache_time),
	                                      0,   300,                    NULL,        false},
	{SEC_DELIVERY, "retry_min",           parse_seconds,   CFG(retry_min),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_DELIVERY, "retry_max",           parse_seconds,   CFG(retry_max),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_DELIVERY, "max_queue_lifetime",  parse_seconds,   CFG(max_queue_lifetime),
	                                      0,   UINT_MAX,               NULL,        false},
	{SEC_DELIVERY, "bounce_queue_lifetime", parse_seconds, CFG(bounce_queue_lifetime),
	                                      0,   UINT_MAX,               NULL,        false},
	{SEC_DELIVERY, "delay_warning",       parse_seconds,   CFG(delay_warning),
	                                      0,   UINT_MAX,               NULL,        false},
	{SEC_DELIVERY, "dsn_attach_limit",    parse_size,      CFG(dsn_attach_limit),
	                                      0,   1u << 30,               NULL,        false},
	{SEC_DELIVERY, "max_worker_failures", parse_count,     CFG(max_worker_failures),
	                                      1,   100,                    NULL,        false},
	{SEC_SERVICE,  "kind",                parse_choice,    SVC(kind),
	                                      0,   0,                      service_kinds, false},
	{SEC_SERVICE,  "address",             parse_service_address, SVC(address),
	                                      0,   0,                      NULL,        false},
	{SEC_SERVICE,  "connect_timeout",     parse_ms,        SVC(connect_timeout_ms),
	                                      10,  3600000,                NULL,        false},
	{SEC_SERVICE,  "timeout",             parse_ms,        SVC(timeout_ms),
	                                      10,  3600000,                NULL,        false},
	{SEC_SERVICE,  "on_failure",          parse_choice,    SVC(on_failure),
	                                      0,   0,                      service_failures, false},
	{SEC_SERVICE,  "max_size",            parse_size64,    SVC(max_size),
	                                      0,   MAX_MESSAGE_SIZE_LIMIT, NULL,        false},
	{SEC_SERVICE,  "password",            parse_text,      SVC(password),
	                                      0,   0,                      NULL,        false},
	{SEC_SERVICE,  "path",                parse_service_path, SVC(path),
	                                      0,   0,                      NULL,        false},
	{SEC_SERVICE,  "user",                parse_text,      SVC(user),
	                                      0,   0,                      NULL,        false},
	{SEC_SERVICE,  "command",             parse_service_command, SVC(argv),
	                                      0,   0,                      NULL,        false},
};
/* clang-format on */

_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) <= CONFIG_KEYS_MAX,
               "config_keys[] has more entries than CONFIG_KEYS_MAX makes room for");
const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

/* parse_banner - [server] banner: printable ASCII text. */
static int parse_banner(struct loader *ld, const struct key_def *def, void *field,
                        const char *value)
{
	const char *p;

	for (p = value; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			return config_bad_value(ld, def, value,
			                        "holds a character other than printable ASCII");
	return config_replace_string(ld, field, value);
}

/* parse_account - user or group name; empty means none when def->min is 0. */
static int parse_account(struct loader *ld, const struct key_def *def, void *field,
                         const char *value)
{
	const char *p;

	if (*value == '\0') {
		if (def->min > 0)
			return config_bad_value(ld, def, value, "is empty");
		return config_replace_string(ld, field, NULL);
	}
	for (p = value; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == ':' || *p == '/')
			return config_bad_value(ld, def, value, "is not a valid account name");
	return config_replace_string(ld, field, value);
}

/* parse_dir - a directory; a relative one is taken from the working directory. */
static int parse_dir(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	char **slot = field;
	char *path;

	if (*value == '\0')
		return config_bad_value(ld, def, value, "is empty");
	path = config_absolute_path(value);
	if (path == NULL)
		return config_bad_value(ld, def, value, "cannot be made absolute: %s",
		                        strerror(errno));
	free(*slot);
	*slot = path;
	return 0;
}

/* parse_choice - one of the words in def->choices, stored as its int. */
static int parse_choice(struct loader *ld, const struct key_def *def, void *field,
                        const char *value)
{
	char list[256] = "";
	size_t used = 0;
	const struct choice *c;

	for (c = def->choices; c->name; c++) {
		if (strcasecmp(value, c->name) == 0) {
			*(int *)field = c->value;
			return 0;
		}
	}
	for (c = def->choices; c->name && used < sizeof(list); c++) {
		int n = snprintf(list + used, sizeof(list) - used, "%s%s",
		                 c == def->choices ? "" : ", ", c->name);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return config_bad_value(ld, def, value, "is not one of %s", list);
}

/* check_bounds - whether v lies within def's bounds; records why not. */
static int check_bounds(struct loader *ld, const struct key_def *def, const char *value, uint64_t v,
                        const char *unit)
{
	if (v < def->min)
		return config_bad_value(ld, def, value, "is less than the minimum, %llu%s",
		                        (unsigned long long)def->min, unit);
	if (v > def->max)
		return config_bad_value(ld, def, value, "is more than the maximum, %llu%s",
		                        (unsigned long long)def->max, unit);
	return 0;
}

/* parse_count - a plain number, stored as unsigned. */
static int parse_count(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	uint64_t v;

	if (config_plain_number(value, &v) < 0)
		return config_bad_value(ld, def, value, "is not a number");
	if (check_bounds(ld, def, value, v, "") < 0)
		return -1;
	*(unsigned *)field = (unsigned)v;
	return 0;
}

/* parse_size64 - a size in bytes, stored as uint64_t. */
static int parse_size64(struct loader *ld, const struct key_def *def, void *field,
                        const char *value)
{
	uint64_t v;

	if (config_parse_size(value, &v) < 0)
		return config_bad_value(ld, def, value,
		                        "is not a size (such as 10240000, 512k, 25M, 1G)");
	if (check_bounds(ld, def, value, v, " bytes") < 0)
		return -1;
	*(uint64_t *)field = v;
	return 0;
}

/* parse_size - a size in bytes, stored as size_t. */
static int parse_size(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	uint64_t v;

	if (config_parse_size(value, &v) < 0)
		return config_bad_value(ld, def, value, "is not a size (such as 2048, 4k, 1M)");
	if (check_bounds(ld, def, value, v, " bytes") < 0)
		return -1;
	*(size_t *)field = (size_t)v;
	return 0;
}

/* parse_ms - a duration, stored as unsigned milliseconds. */
static int parse_ms(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	uint64_t ms;

	if (config_parse_duration(value, &ms) < 0)
		return config_bad_value(ld, def, value,
		                        "is not a duration (such as 250ms, 1s, 5m, 1h)");
	if (check_bounds(ld, def, value, ms, "ms") < 0)
		return -1;
	*(unsigned *)field = (unsigned)ms;
	return 0;
}

/* parse_seconds - a duration, stored as unsigned seconds rounded up. */
static int parse_seconds(struct loader *ld, const struct key_def *def, void *field,
                         const char *value)
{
	uint64_t ms, s;

	if (config_parse_duration(value, &ms) < 0)
		return config_bad_value(ld, def, value, "is not a duration (such as 30s, 5m, 1h)");
	s = ms / 1000 + (ms % 1000 != 0);
	if (check_bounds(ld, def, value, s, "s") < 0)
		return -1;
	*(unsigned *)field = (unsigned)s;
	return 0;
}

/* parse_kind - [listener:NAME] kind: what the listener speaks. */
static int parse_kind(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	if (strcmp(value, "smtp") == 0 || strcmp(value, "submission") == 0 ||
	    strcmp(value, "submissions") == 0 || strcmp(value, "delegation") == 0)
		return config_replace_string(ld, field, value);
	return config_bad_value(ld, def, value, "is not a listener kind: smtp, submission, "
	                                        "submissions or delegation");
}

/* parse_addresses - [listener:NAME] address: add each host:port of the list. */
static int parse_addresses(struct loader *ld, const struct key_def *def, void *field,
                           const char *value)
{
	struct listener_config *l = &ld->cfg->listeners[ld->listener];
	struct address_key key;
	char *copy, *tok, *save = NULL;
	const char *why;
	int ret = 0;

	(void)field;
	copy = strdup(value);
	if (copy == NULL)
		return config_no_memory(ld);
	tok = strtok_r(copy, " \t,", &save);
	if (tok == NULL)
		ret = config_bad_value(ld, def, value, "holds no address");
	for (; tok && ret == 0; tok = strtok_r(NULL, " \t,", &save)) {
		why = config_check_address(tok, &key);
		if (why != NULL) {
			ret = config_bad_value(ld, def, tok, "%s", why);
		} else if (l->naddresses == CONFIG_MAX_ADDRESSES) {
			ret = config_bad_value(ld, def, tok, "is one address too many (at most %d)",
			                       CONFIG_MAX_ADDRESSES);
		} else {
			l->addresses[l->naddresses] = strdup(tok);
			if (l->addresses[l->naddresses] == NULL)
				ret = config_no_memory(ld);
			else
				l->naddresses++;
		}
	}
	free(copy);
	return ret;
}
