/*
 * config.c - load vsmtpd.conf: defaults, the INI file, the command-line
 * overrides and the checks that tie keys together.
 *
 * inih parses the file, reading it through line_reader(). The reader counts
 * lines (the Debian inih is built without INI_HANDLER_LINENO, so the handler
 * gets no line number), drops indentation so that inih never takes a line
 * for the continuation of the one before, refuses lines longer than inih's
 * buffer instead of letting it split them, and handles the "[section]"
 * headers itself, since inih tells a handler nothing about a section without
 * keys. Each key is looked up in keys[], which gives its section, its parser
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
#include "netaddr.h"
#include "resolver.h"

#define LISTENER_NAME_MAX 32
#define SNI_NAME_MAX 255
#define MAX_MESSAGE_SIZE_LIMIT (UINT64_C(1) << 40) /* 1T */
#define LINE_LIMIT_MAX ((size_t)1 << 20)           /* 1M, for the two line lengths */

/* Where a setting came from, besides a line number (> 0) of the file. */
#define LINE_NONE 0
#define LINE_CMDLINE (-1)

enum section {
	SEC_NONE,
	SEC_SERVER,
	SEC_LISTENER,
	SEC_LIMITS,
	SEC_TIMEOUTS,
	SEC_SMTP,
	SEC_RULES,
	SEC_TLS,
	SEC_SNI,
	SEC_AUTH,
	SEC_DELIVERY,
	SEC_COUNT,
};

static const char *const section_names[SEC_COUNT] = {
    [SEC_SERVER] = "server",     [SEC_LISTENER] = "listener", [SEC_LIMITS] = "limits",
    [SEC_TIMEOUTS] = "timeouts", [SEC_SMTP] = "smtp",         [SEC_RULES] = "rules",
    [SEC_TLS] = "tls",           [SEC_SNI] = "sni",           [SEC_AUTH] = "auth",
    [SEC_DELIVERY] = "delivery",
};

struct choice {
	const char *name;
	int value;
};

struct loader;
struct key_def;

typedef int (*key_parser)(struct loader *ld, const struct key_def *def, void *field,
                          const char *value);

/* One key: where it is, how its text is read and where the result goes. */
struct key_def {
	enum section section;
	const char *key;
	key_parser parse;
	size_t offset; /* in struct config, struct listener_config for [listener:NAME],
	                  struct sni_config for [sni:NAME] */
	uint64_t min;  /* bounds of a number, size or duration */
	uint64_t max;
	const struct choice *choices; /* the words parse_choice() accepts */
	bool list;                    /* repeatable: each line adds values */
};

static int parse_hostname(struct loader *ld, const struct key_def *def, void *field,
                          const char *value);
static int parse_dns_servers(struct loader *ld, const struct key_def *def, void *field,
                             const char *value);
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
static int parse_file(struct loader *ld, const struct key_def *def, void *field, const char *value);
static int parse_domains(struct loader *ld, const struct key_def *def, void *field,
                         const char *value);
static int parse_networks(struct loader *ld, const struct key_def *def, void *field,
                          const char *value);
static int parse_located_file(struct loader *ld, const struct key_def *def, void *field,
                              const char *value);
static int parse_text(struct loader *ld, const struct key_def *def, void *field,
                      const char *value);
static int parse_located_text(struct loader *ld, const struct key_def *def, void *field,
                              const char *value);
static int parse_mechanisms(struct loader *ld, const struct key_def *def, void *field,
                            const char *value);
static int parse_socket(struct loader *ld, const struct key_def *def, void *field,
                        const char *value);
static int parse_path_template(struct loader *ld, const struct key_def *def, void *field,
                               const char *value);
static int parse_target(struct loader *ld, const struct key_def *def, void *field,
                        const char *value);
static int parse_optional_file(struct loader *ld, const struct key_def *def, void *field,
                               const char *value);
static int parse_optional_hostname(struct loader *ld, const struct key_def *def, void *field,
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
_Static_assert(sizeof(enum local_transport) == sizeof(int), "enum local_transport is not int-sized");
_Static_assert(sizeof(enum client_tls) == sizeof(int), "enum client_tls is not int-sized");

#define CFG(f) offsetof(struct config, f)
#define LST(f) offsetof(struct listener_config, f)
#define SNI(f) offsetof(struct sni_config, f)

/*
 * Every key: its section, name, parser and field, then on the second line the
 * bounds of a number, the words of a choice and whether each line adds to a list.
 */
/* clang-format off */
static const struct key_def keys[] = {
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
	{SEC_LIMITS,   "max_sessions",        parse_count,     CFG(max_sessions),
	                                      1,   UINT_MAX,               NULL,        false},
	{SEC_LIMITS,   "max_sessions_per_ip", parse_count,     CFG(max_sessions_per_ip),
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
	{SEC_TIMEOUTS, "shutdown_grace",      parse_seconds,   CFG(shutdown_grace),
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
};
/* clang-format on */

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* The state of one config_load() call. */
struct loader {
	struct config *cfg;
	const char *file; /* the path as given, for messages */
	FILE *fp;
	char *buf; /* getline() buffer */
	size_t bufsize;
	int lineno;   /* of the line being read; 0 on the command line */
	bool cmdline; /* applying an override */
	bool failed;
	int fail_line; /* line of the first error, to order it against inih's */
	enum section section;
	size_t listener;                    /* the current [listener:NAME], an index */
	size_t sni;                         /* the current [sni:NAME], an index */
	char label[SNI_NAME_MAX + 16];      /* "[server]", "[listener:smtp]" */
	int section_line[SEC_COUNT];
	int listener_line[CONFIG_MAX_LISTENERS];
	int sni_line[CONFIG_MAX_SNI];
	bool addresses_overridden[CONFIG_MAX_LISTENERS];
	int key_lines[NKEYS];                                /* where each key of keys[] was set */
	int listener_key_lines[CONFIG_MAX_LISTENERS][NKEYS]; /* the same, per listener */
	int sni_key_lines[CONFIG_MAX_SNI][NKEYS];            /* and per [sni:NAME] */
	char msg[1024];
};

/* where - the "file:line" or "command line" that a message starts with. */
static void where(const struct loader *ld, int line, char *out, size_t outlen)
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
	where(ld, line, ld->msg, sizeof(ld->msg) - 2);
	len = strlen(ld->msg);
	memcpy(ld->msg + len, ": ", 3);
	len += 2;
	vsnprintf(ld->msg + len, sizeof(ld->msg) - len, fmt, ap);
	ld->failed = true;
	ld->fail_line = line > 0 ? line : INT_MAX;
	return -1;
}

/* fail_at - record an error located at line (or LINE_NONE, LINE_CMDLINE). */
__attribute__((format(printf, 3, 4))) static int fail_at(struct loader *ld, int line,
                                                         const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(ld, line, fmt, ap);
	va_end(ap);
	return -1;
}

/* fail - record an error located at the line being read. */
__attribute__((format(printf, 2, 3))) static int fail(struct loader *ld, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(ld, ld->cmdline ? LINE_CMDLINE : ld->lineno, fmt, ap);
	va_end(ap);
	return -1;
}

/* fail_raw - record an error message as it is, without a location. */
__attribute__((format(printf, 2, 3))) static int fail_raw(struct loader *ld, const char *fmt, ...)
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

/* shown - text fit for a message: non-printing bytes as '?', cut at 64. */
static const char *shown(const char *text, char out[static 72])
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

/* bad_value - record "[section] key: "value" reason" at the current line. */
__attribute__((format(printf, 4, 5))) static int
bad_value(struct loader *ld, const struct key_def *def, const char *value, const char *fmt, ...)
{
	char reason[256];
	char val[72];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return fail(ld, "%s %s: \"%s\" %s", ld->label, def->key, shown(value, val), reason);
}

/* no_memory - record an allocation failure. */
static int no_memory(struct loader *ld)
{
	return fail_raw(ld, "out of memory");
}

/* read_number - an unsigned decimal prefix of s, overflow checked. */
static int read_number(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*end = s;
	*out = v;
	return 0;
}

/* parse_plain_number - the whole of s as an unsigned decimal number. */
static int parse_plain_number(const char *s, uint64_t *out)
{
	const char *end;

	if (read_number(s, &end, out) < 0 || *end != '\0')
		return -1;
	return 0;
}

/* config_parse_size - a byte count with an optional k, M, G or T suffix. */
int config_parse_size(const char *text, uint64_t *bytes)
{
	const char *end;
	uint64_t v;
	unsigned shift;

	if (read_number(text, &end, &v) < 0)
		return -1;
	switch (*end) {
	case '\0':
		shift = 0;
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		return -1;
	}
	if (shift != 0 && end[1] != '\0')
		return -1;
	if (v > (UINT64_MAX >> shift))
		return -1;
	*bytes = v << shift;
	return 0;
}

/* config_parse_duration - a time with an optional ms, s, m or h unit. */
int config_parse_duration(const char *text, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
	    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	const char *end;
	uint64_t v;
	size_t i;

	if (read_number(text, &end, &v) < 0)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].unit) != 0)
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -1;
		*ms = v * units[i].ms;
		return 0;
	}
	return -1;
}

/* valid_domain - whether name is a domain: dot-separated LDH labels. */
static bool valid_domain(const char *name)
{
	size_t len = strlen(name), label = 0, i;

	if (len == 0 || len > 253)
		return false;
	for (i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || name[i - 1] == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '-') {
			if (label == 0 && c == '-')
				return false;
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* absolute_path - path made absolute against the working directory, tidied. */
static char *absolute_path(const char *path)
{
	char *cwd = NULL, *joined, *out, *tok, *save = NULL;
	size_t len = 1;

	if (path[0] != '/') {
		cwd = getcwd(NULL, 0);
		if (cwd == NULL)
			return NULL;
	}
	if (asprintf(&joined, "%s/%s", cwd ? cwd : "", path) < 0) {
		free(cwd);
		errno = ENOMEM;
		return NULL;
	}
	free(cwd);
	out = malloc(strlen(joined) + 2);
	if (out == NULL) {
		free(joined);
		return NULL;
	}
	out[0] = '/';
	out[1] = '\0';
	for (tok = strtok_r(joined, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		size_t n = strlen(tok);

		if (strcmp(tok, ".") == 0)
			continue;
		if (len > 1)
			out[len++] = '/';
		memcpy(out + len, tok, n + 1);
		len += n;
	}
	free(joined);
	return out;
}

/* replace_string - store a copy of value (NULL for none) in *slot. */
static int replace_string(struct loader *ld, char **slot, const char *value)
{
	char *copy = NULL;

	if (value != NULL) {
		copy = strdup(value);
		if (copy == NULL)
			return no_memory(ld);
	}
	free(*slot);
	*slot = copy;
	return 0;
}

/* parse_hostname - [server] hostname: a domain name. */
static int parse_hostname(struct loader *ld, const struct key_def *def, void *field,
                          const char *value)
{
	if (!valid_domain(value))
		return bad_value(ld, def, value, "is not a valid domain name");
	return replace_string(ld, field, value);
}

/* parse_banner - [server] banner: printable ASCII text. */
static int parse_banner(struct loader *ld, const struct key_def *def, void *field,
                        const char *value)
{
	const char *p;

	for (p = value; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			return bad_value(ld, def, value,
			                 "holds a character other than printable ASCII");
	return replace_string(ld, field, value);
}

/* parse_account - user or group name; empty means none when def->min is 0. */
static int parse_account(struct loader *ld, const struct key_def *def, void *field,
                         const char *value)
{
	const char *p;

	if (*value == '\0') {
		if (def->min > 0)
			return bad_value(ld, def, value, "is empty");
		return replace_string(ld, field, NULL);
	}
	for (p = value; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == ':' || *p == '/')
			return bad_value(ld, def, value, "is not a valid account name");
	return replace_string(ld, field, value);
}

/* parse_dir - a directory; a relative one is taken from the working directory. */
static int parse_dir(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	char **slot = field;
	char *path;

	if (*value == '\0')
		return bad_value(ld, def, value, "is empty");
	path = absolute_path(value);
	if (path == NULL)
		return bad_value(ld, def, value, "cannot be made absolute: %s", strerror(errno));
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
	return bad_value(ld, def, value, "is not one of %s", list);
}

/* check_bounds - whether v lies within def's bounds; records why not. */
static int check_bounds(struct loader *ld, const struct key_def *def, const char *value, uint64_t v,
                        const char *unit)
{
	if (v < def->min)
		return bad_value(ld, def, value, "is less than the minimum, %llu%s",
		                 (unsigned long long)def->min, unit);
	if (v > def->max)
		return bad_value(ld, def, value, "is more than the maximum, %llu%s",
		                 (unsigned long long)def->max, unit);
	return 0;
}

/* parse_count - a plain number, stored as unsigned. */
static int parse_count(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	uint64_t v;

	if (parse_plain_number(value, &v) < 0)
		return bad_value(ld, def, value, "is not a number");
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
		return bad_value(ld, def, value, "is not a size (such as 10240000, 512k, 25M, 1G)");
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
		return bad_value(ld, def, value, "is not a size (such as 2048, 4k, 1M)");
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
		return bad_value(ld, def, value, "is not a duration (such as 250ms, 1s, 5m, 1h)");
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
		return bad_value(ld, def, value, "is not a duration (such as 30s, 5m, 1h)");
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
	    strcmp(value, "submissions") == 0)
		return replace_string(ld, field, value);
	return bad_value(ld, def, value,
	                 "is not a listener kind: smtp, submission or submissions");
}

/* A listener address in binary form, to compare two of them. */
struct address_key {
	int family;
	unsigned char addr[16];
	unsigned port;
};

/* check_address - validate "1.2.3.4:25" or "[::1]:25"; NULL or why not. */
static const char *check_address(const char *text, struct address_key *key)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port, *close;
	size_t hostlen;
	uint64_t v;

	memset(key, 0, sizeof(*key));
	if (text[0] == '[') {
		close = strchr(text, ']');
		if (close == NULL)
			return "has no closing ']'";
		if (close[1] != ':')
			return "is not [IPv6 address]:port";
		hostlen = (size_t)(close - text - 1);
		if (hostlen >= sizeof(host))
			return "is not [IPv6 address]:port";
		memcpy(host, text + 1, hostlen);
		host[hostlen] = '\0';
		key->family = AF_INET6;
		port = close + 2;
	} else {
		port = strrchr(text, ':');
		if (port == NULL)
			return "is not host:port (such as 127.0.0.1:25 or [::1]:25)";
		hostlen = (size_t)(port - text);
		if (memchr(text, ':', hostlen) != NULL)
			return "is not host:port: an IPv6 address goes in brackets, as in [::1]:25";
		if (hostlen >= sizeof(host))
			return "is not IPv4-address:port";
		memcpy(host, text, hostlen);
		host[hostlen] = '\0';
		key->family = AF_INET;
		port++;
	}
	if (inet_pton(key->family, host, key->addr) != 1)
		return key->family == AF_INET6 ? "does not hold an IPv6 address"
		                               : "does not start with an IPv4 address (a host name "
		                                 "is not accepted)";
	if (parse_plain_number(port, &v) < 0 || v < 1 || v > 65535)
		return "does not end in a port from 1 to 65535";
	key->port = (unsigned)v;
	return NULL;
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
		return no_memory(ld);
	tok = strtok_r(copy, " \t,", &save);
	if (tok == NULL)
		ret = bad_value(ld, def, value, "holds no address");
	for (; tok && ret == 0; tok = strtok_r(NULL, " \t,", &save)) {
		why = check_address(tok, &key);
		if (why != NULL) {
			ret = bad_value(ld, def, tok, "%s", why);
		} else if (l->naddresses == CONFIG_MAX_ADDRESSES) {
			ret = bad_value(ld, def, tok, "is one address too many (at most %d)",
			                CONFIG_MAX_ADDRESSES);
		} else {
			l->addresses[l->naddresses] = strdup(tok);
			if (l->addresses[l->naddresses] == NULL)
				ret = no_memory(ld);
			else
				l->naddresses++;
		}
	}
	free(copy);
	return ret;
}

/* parse_file - a file; relative to the configuration file's folder, or on
 * the command line to the working directory. */
static int parse_file(struct loader *ld, const struct key_def *def, void *field, const char *value)
{
	char **slot = field;
	char *joined = NULL, *path;
	const char *slash = strrchr(ld->cfg->path, '/');

	if (*value == '\0')
		return bad_value(ld, def, value, "is empty");
	if (value[0] != '/' && !ld->cmdline && slash != NULL) {
		if (asprintf(&joined, "%.*s/%s", (int)(slash - ld->cfg->path), ld->cfg->path,
		             value) < 0)
			return no_memory(ld);
		value = joined;
	}
	path = absolute_path(value);
	free(joined);
	if (path == NULL)
		return bad_value(ld, def, value, "cannot be made absolute: %s", strerror(errno));
	free(*slot);
	*slot = path;
	return 0;
}

/* parse_located_file - a file (as parse_file) and where it was set. */
static int parse_located_file(struct loader *ld, const struct key_def *def, void *field,
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
	where(ld, ld->cmdline ? LINE_CMDLINE : ld->lineno, at, sizeof(at));
	return replace_string(ld, &f->where, at);
}

/* parse_socket - a unix socket path, which must fit a sockaddr_un. */
static int parse_socket(struct loader *ld, const struct key_def *def, void *field,
                        const char *value)
{
	char **slot = field;

	if (parse_file(ld, def, slot, value) < 0)
		return -1;
	if (strlen(*slot) >= 108)
		return bad_value(ld, def, value, "is too long for a socket path (107 bytes at most)");
	return 0;
}

/*
 * parse_path_template - an absolute path in which %d stands for the
 * recipient's domain, %u for its local part and %% for a '%'; %u must be
 * there, or every recipient would share one mailbox.
 */
static int parse_path_template(struct loader *ld, const struct key_def *def, void *field,
                               const char *value)
{
	const char *p;
	int user = 0;

	if (value[0] != '/')
		return bad_value(ld, def, value, "is not an absolute path");
	for (p = value; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return bad_value(ld, def, value, "holds a control character");
		if (*p != '%')
			continue;
		p++;
		if (*p == 'u')
			user = 1;
		else if (*p != 'd' && *p != '%')
			return bad_value(ld, def, value,
			                 "holds an unknown %%-escape (%%d domain, %%u user, %%%% a %%)");
	}
	if (!user)
		return bad_value(ld, def, value, "does not hold %%u (the recipient's local part)");
	return replace_string(ld, field, value);
}

/*
 * config_target_split - "unix:/path", "host", "host:port", "[host]:port" or
 * "[v6addr]:port" into its parts: *path for a unix socket (the rest empty),
 * else host (brackets removed) and *port (0 when not given). *bracketed
 * tells that the host was in brackets (no MX lookup). 0, or -1 when the
 * text is no such target.
 */
int config_target_split(const char *text, char *host, size_t hostlen, unsigned *port,
                        const char **path, int *bracketed)
{
	const char *colon, *end;
	size_t len;
	uint64_t v;

	*path = NULL;
	*port = 0;
	*bracketed = 0;
	host[0] = '\0';
	if (strncmp(text, "unix:", 5) == 0) {
		if (text[5] != '/' || strlen(text + 5) >= 108)
			return -1;
		*path = text + 5;
		return 0;
	}
	if (text[0] == '[') {
		if ((end = strchr(text, ']')) == NULL)
			return -1;
		*bracketed = 1;
		len = (size_t)(end - text - 1);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
		text++;
	} else {
		colon = strrchr(text, ':');
		len = colon ? (size_t)(colon - text) : strlen(text);
	}
	if (len == 0 || len >= hostlen)
		return -1;
	memcpy(host, text, len);
	host[len] = '\0';
	if (colon != NULL) {
		if (read_number(colon + 1, &end, &v) < 0 || *end != '\0' || v == 0 || v > 65535)
			return -1;
		*port = (unsigned)v;
	}
	if (strchr(host, ':') != NULL && !*bracketed)
		return -1; /* an IPv6 address needs brackets */
	if (!*bracketed || strchr(host, ':') == NULL) {
		struct in_addr a4;

		if (!valid_domain(host) && inet_pton(AF_INET, host, &a4) != 1)
			return -1;
	} else {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, host, &a6) != 1)
			return -1;
	}
	return 0;
}

/* parse_target - where a client connects: see config_target_split. */
static int parse_target(struct loader *ld, const struct key_def *def, void *field,
                        const char *value)
{
	char host[256];
	unsigned port;
	const char *path;
	int bracketed;

	if (*value == '\0') {
		if (def->min > 0)
			return bad_value(ld, def, value, "is empty");
		return replace_string(ld, field, "");
	}
	if (config_target_split(value, host, sizeof(host), &port, &path, &bracketed) < 0)
		return bad_value(ld, def, value,
		                 "is not a destination (host, host:port, [address]:port or "
		                 "unix:/path)");
	return replace_string(ld, field, value);
}

/* parse_optional_file - a file (as parse_file), or empty for none. */
static int parse_optional_file(struct loader *ld, const struct key_def *def, void *field,
                               const char *value)
{
	if (*value == '\0')
		return replace_string(ld, field, "");
	return parse_file(ld, def, field, value);
}

/* parse_optional_hostname - a domain name, or empty for the default. */
static int parse_optional_hostname(struct loader *ld, const struct key_def *def, void *field,
                                   const char *value)
{
	if (*value == '\0')
		return replace_string(ld, field, "");
	return parse_hostname(ld, def, field, value);
}

/* parse_text - free text, possibly empty; printable ASCII only. */
static int parse_text(struct loader *ld, const struct key_def *def, void *field,
                      const char *value)
{
	const char *p;

	for (p = value; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return bad_value(ld, def, value, "holds a non-printing or non-ASCII character");
	return replace_string(ld, field, value);
}

/* parse_located_text - free text (as parse_text) and where it was set. */
static int parse_located_text(struct loader *ld, const struct key_def *def, void *field,
                              const char *value)
{
	struct config_text *t = field;
	char at[PATH_MAX + 32];

	if (parse_text(ld, def, &t->value, value) < 0)
		return -1;
	where(ld, ld->cmdline ? LINE_CMDLINE : ld->lineno, at, sizeof(at));
	return replace_string(ld, &t->where, at);
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
		return no_memory(ld);
	}
	for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if ((why = check(tok)) != NULL) {
			int ret = bad_value(ld, def, tok, "%s", why);

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

/* check_domain_word - a word of local_domains. */
static const char *check_domain_word(const char *word)
{
	return valid_domain(word) ? NULL : "is not a valid domain name";
}

/* check_network_word - a word of trusted_networks: parsed as the rules
 * will parse it, so a mistake is reported here, with its line. */
static const char *check_network_word(const char *word)
{
	struct netaddr_net net;

	switch (netaddr_net_parse(word, &net)) {
	case NETADDR_OK:
		return NULL;
	case NETADDR_HOST_BITS:
		return "has bits set past its prefix (10.0.0.0/8, not 10.0.0.1/8)";
	default:
		return "is not an IP network (address/prefix, as in 192.168.0.0/16)";
	}
}

/* parse_domains - [rules] local_domains. */
static int parse_domains(struct loader *ld, const struct key_def *def, void *field,
                         const char *value)
{
	return word_list(ld, def, field, value, check_domain_word, true);
}

/* parse_networks - [rules] trusted_networks. */
static int parse_networks(struct loader *ld, const struct key_def *def, void *field,
                          const char *value)
{
	return word_list(ld, def, field, value, check_network_word, false);
}

/* check_mechanism_word - a word of [auth] mechanisms: a SASL name (RFC 4422 3.1). */
static const char *check_mechanism_word(const char *word)
{
	size_t n = strspn(word, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

	if (n == 0 || n > 20 || word[n] != '\0')
		return "is not a SASL mechanism name (1 to 20 of A-Z, 0-9, - and _)";
	if (strcasecmp(word, "ANONYMOUS") == 0 || strcasecmp(word, "EXTERNAL") == 0)
		return "is not offered by vsmtpd: AUTH is for users with a password";
	return NULL;
}

/* parse_mechanisms - [auth] mechanisms, uppercased, with where they were set. */
static int parse_mechanisms(struct loader *ld, const struct key_def *def, void *field,
                            const char *value)
{
	char at[PATH_MAX + 32];
	char *p;

	if (word_list(ld, def, field, value, check_mechanism_word, false) < 0)
		return -1;
	if (**(char **)field == '\0')
		return bad_value(ld, def, value, "names no mechanism");
	for (p = *(char **)field; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	where(ld, ld->cmdline ? LINE_CMDLINE : ld->lineno, at, sizeof(at));
	return replace_string(ld, &ld->cfg->auth_mechanisms_where, at);
}

/* parse_dns_servers - [rules] dns_servers: addresses, each with an optional port. */
static int parse_dns_servers(struct loader *ld, const struct key_def *def, void *field,
                             const char *value)
{
	return word_list(ld, def, field, value, resolver_check_server, false);
}

/* find_key - the entry of keys[] for key in section, or NULL. */
static const struct key_def *find_key(enum section section, const char *key)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (keys[i].section == section && strcmp(keys[i].key, key) == 0)
			return &keys[i];
	return NULL;
}

/* key_line - where the key def of the current section was set. */
static int *key_line(struct loader *ld, const struct key_def *def)
{
	size_t k = (size_t)(def - keys);

	if (def->section == SEC_LISTENER)
		return &ld->listener_key_lines[ld->listener][k];
	if (def->section == SEC_SNI)
		return &ld->sni_key_lines[ld->sni][k];
	return &ld->key_lines[k];
}

/* valid_listener_name - whether name is 1 to 32 of [a-z0-9_-]. */
static bool valid_listener_name(const char *name)
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
		return fail(ld, "[listener:%s] is one listener too many (at most %d)", name,
		            CONFIG_MAX_LISTENERS);
	l = &cfg->listeners[cfg->nlisteners];
	l->name = strdup(name);
	l->kind = strdup("smtp");
	if (l->name == NULL || l->kind == NULL) {
		free(l->name);
		free(l->kind);
		l->name = l->kind = NULL;
		return no_memory(ld);
	}
	ld->listener_line[cfg->nlisteners] = line;
	return (int)cfg->nlisteners++;
}

/* valid_sni_name - a host name, or "*." and a domain. */
static bool valid_sni_name(const char *name)
{
	if (strncmp(name, "*.", 2) == 0)
		name += 2;
	return strlen(name) <= SNI_NAME_MAX && valid_domain(name);
}

/* enter_sni - make [sni:NAME] the current section, adding it when new. */
static int enter_sni(struct loader *ld, const char *name, int line)
{
	struct config *cfg = ld->cfg;
	char shown_name[72];
	char *lower, *p;
	size_t i;

	if (!valid_sni_name(name))
		return fail(ld, "[sni:%s]: NAME must be a host name or *.domain",
		            shown(name, shown_name));
	if ((lower = strdup(name)) == NULL)
		return no_memory(ld);
	for (p = lower; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	for (i = 0; i < cfg->nsni; i++)
		if (strcmp(cfg->sni[i].name, lower) == 0)
			break;
	if (i < cfg->nsni && !ld->cmdline) {
		free(lower);
		return fail(ld, "duplicate section [sni:%s], first on line %d", name, ld->sni_line[i]);
	}
	if (i == cfg->nsni) {
		if (cfg->nsni == CONFIG_MAX_SNI) {
			free(lower);
			return fail(ld, "[sni:%s] is one too many (at most %d)", name, CONFIG_MAX_SNI);
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

/* enter_section - make name ("server", "listener:smtp") the current section. */
static int enter_section(struct loader *ld, const char *name)
{
	char shown_name[72];
	enum section s;
	int line = ld->cmdline ? LINE_CMDLINE : ld->lineno;
	int i;

	if (strncmp(name, "listener:", 9) == 0) {
		const char *lname = name + 9;

		if (!valid_listener_name(lname))
			return fail(
			    ld, "[%s]: a listener name is 1 to %d characters of a-z, 0-9, _ and -",
			    shown(name, shown_name), LISTENER_NAME_MAX);
		i = find_listener(ld->cfg, lname);
		if (i >= 0 && !ld->cmdline)
			return fail(ld, "duplicate listener [%s], first on line %d", name,
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
	for (s = SEC_SERVER; s < SEC_COUNT; s++)
		if (s != SEC_LISTENER && s != SEC_SNI && strcmp(name, section_names[s]) == 0)
			break;
	if (s == SEC_COUNT) {
		if (strcmp(name, "listener") == 0)
			return fail(ld, "section [listener] needs a name, as in [listener:smtp]");
		if (strcmp(name, "sni") == 0)
			return fail(ld, "section [sni] needs a host name, as in [sni:mail.example.org]");
		return fail(ld, "unknown section [%s]", shown(name, shown_name));
	}
	if (!ld->cmdline) {
		if (ld->section_line[s] != 0)
			return fail(ld, "duplicate section [%s], first on line %d", name,
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

	def = find_key(ld->section, key);
	if (def == NULL)
		return fail(ld, "%s unknown key \"%s\"", ld->label, shown(key, shown_key));
	line = key_line(ld, def);
	if (!def->list && !ld->cmdline && *line > 0)
		return fail(ld, "%s %s: already set on line %d", ld->label, key, *line);
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
		fail(ld, "\"%s\" comes before any [section]", shown(name, shown_key));
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
		return fail(ld, "section header without a closing ']'");
	for (rest = close + 1; *rest == ' ' || *rest == '\t'; rest++)
		;
	if (*rest != '\0' && *rest != ';' && *rest != '#')
		return fail(ld, "text after the section header");
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
			fail_raw(ld, "cannot read %s: %s", ld->file, strerror(errno ? errno : EIO));
		}
		return NULL;
	}
	ld->lineno++;
	line = ld->buf;
	if (strlen(line) != (size_t)n) {
		fail(ld, "the line holds a NUL byte");
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
		fail(ld, "the line is longer than %d characters", num - 1);
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
		return no_memory(ld);
	eq = strchr(copy, '=');
	/* The last dot: keys have none, [sni:mail.example.org] has some. */
	dot = eq ? memrchr(copy, '.', (size_t)(eq - copy)) : NULL;
	if (dot == NULL) {
		free(copy);
		return fail(ld, "-o \"%s\": expected section.key=value, as in server.log=stderr",
		            shown(text, shown_text));
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

/* check_addresses_unique - no host:port may be listed twice. */
static int check_addresses_unique(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	struct address_key a, b;
	size_t i, j, k, m;

	for (i = 0; i < cfg->nlisteners; i++) {
		for (j = 0; j < cfg->listeners[i].naddresses; j++) {
			check_address(cfg->listeners[i].addresses[j], &a);
			for (k = 0; k <= i; k++) {
				size_t upto = k == i ? j : cfg->listeners[k].naddresses;

				for (m = 0; m < upto; m++) {
					check_address(cfg->listeners[k].addresses[m], &b);
					if (a.family == b.family && a.port == b.port &&
					    memcmp(a.addr, b.addr, sizeof(a.addr)) == 0)
						return fail_at(
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
	const struct key_def *def = find_key(section, key);
	size_t k = (size_t)(def - keys);
	int line = section == SEC_LISTENER ? ld->listener_key_lines[i][k]
	           : section == SEC_SNI    ? ld->sni_key_lines[i][k]
	                                   : ld->key_lines[k];

	return line != 0 ? line : fallback;
}

/* finish_listener_tls - listener i's TLS and AUTH defaults, and their checks. */
static int finish_listener_tls(struct loader *ld, size_t i)
{
	struct listener_config *l = &ld->cfg->listeners[i];
	bool cert = ld->cfg->tls_certificate.path != NULL;
	int line = set_line(ld, SEC_LISTENER, "tls", i, ld->listener_line[i]);

	l->kind_id = strcmp(l->kind, "submissions") == 0 ? LISTENER_SUBMISSIONS
	             : strcmp(l->kind, "submission") == 0 ? LISTENER_SUBMISSION
	                                                  : LISTENER_SMTP;
	if (l->kind_id == LISTENER_SUBMISSIONS && l->tls != LISTENER_TLS_UNSET &&
	    l->tls != LISTENER_TLS_ENCRYPT)
		return fail_at(ld, line,
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
			return fail_at(ld, line,
			               "[listener:%s] tls = %s needs a certificate: set [tls] "
			               "certificate",
			               l->name, l->tls == LISTENER_TLS_MAY ? "may" : "encrypt");
		return fail_at(ld, set_line(ld, SEC_LISTENER, "kind", i, line),
		               "[listener:%s] kind %s needs a certificate: set [tls] certificate "
		               "(or tls = none for a submission listener without TLS)",
		               l->name, l->kind);
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
			return fail_at(ld, ld->sni_line[i], "[sni:%s] has no certificate",
			               cfg->sni[i].name);
		if (cfg->tls_certificate.path == NULL)
			return fail_at(ld, ld->sni_line[i],
			               "[sni:%s] needs [tls] certificate, the one for clients that "
			               "ask for no name or another name",
			               cfg->sni[i].name);
	}
	if (cfg->tls_key.path != NULL && cfg->tls_certificate.path == NULL)
		return fail_at(ld, set_line(ld, SEC_TLS, "key", 0, LINE_NONE),
		               "[tls] key is set but certificate is not");
	for (i = 0; i < cfg->nlisteners; i++)
		if (finish_listener_tls(ld, i) < 0)
			return -1;
	if (cfg->auth_backend == AUTH_BACKEND_SASLAUTHD) {
		char *copy = strdup(cfg->auth_mechanisms), *tok, *save = NULL;
		int ret = 0;

		if (copy == NULL)
			return no_memory(ld);
		for (tok = strtok_r(copy, " ", &save); tok && ret == 0;
		     tok = strtok_r(NULL, " ", &save))
			if (strcmp(tok, "PLAIN") != 0 && strcmp(tok, "LOGIN") != 0)
				ret = fail_at(ld, set_line(ld, SEC_AUTH, "mechanisms", 0,
				                           set_line(ld, SEC_AUTH, "backend", 0,
				                                    LINE_NONE)),
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

		where(ld, LINE_NONE, at, sizeof(at));
		if (replace_string(ld, &cfg->auth_mechanisms_where, at) < 0)
			return -1;
	}
	return 0;
}

/* finish - the checks that span keys, and the computed defaults. */
static int finish(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	const struct key_def *soft = find_key(SEC_LIMITS, "soft_error_limit");
	const struct key_def *hard = find_key(SEC_LIMITS, "hard_error_limit");
	size_t i;

	if (cfg->nlisteners == 0)
		return fail_at(ld, LINE_NONE,
		               "no [listener:NAME] section: vsmtpd would listen nowhere");
	for (i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].naddresses == 0)
			return fail_at(ld, ld->listener_line[i], "[listener:%s] has no address",
			               cfg->listeners[i].name);
	if (check_addresses_unique(ld) < 0 || finish_tls_auth(ld) < 0)
		return -1;
	if (cfg->hard_error_limit <= cfg->soft_error_limit) {
		int hline = ld->key_lines[hard - keys], sline = ld->key_lines[soft - keys];
		int line = hline > sline ? hline : sline; /* the later one in the file */

		if (hline == LINE_CMDLINE || sline == LINE_CMDLINE)
			line = LINE_CMDLINE;
		return fail_at(ld, line,
		               "[limits] hard_error_limit (%u) must be greater than "
		               "soft_error_limit (%u)",
		               cfg->hard_error_limit, cfg->soft_error_limit);
	}
	if (cfg->min_free_space == 0)
		cfg->min_free_space = cfg->max_message_size + cfg->max_message_size / 2;
	if (cfg->hostname == NULL) {
		char name[HOST_NAME_MAX + 1];
		char shown_name[72];

		if (gethostname(name, sizeof(name)) < 0)
			return fail_at(ld, LINE_NONE,
			               "[server] hostname is not set and gethostname() failed: %s",
			               strerror(errno));
		name[sizeof(name) - 1] = '\0';
		if (!valid_domain(name))
			return fail_at(ld, LINE_NONE,
			               "[server] hostname is not set and the system's host name "
			               "\"%s\" is not a valid domain name",
			               shown(name, shown_name));
		cfg->hostname = strdup(name);
		if (cfg->hostname == NULL)
			return no_memory(ld);
	}
	return 0;
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
	cfg->shutdown_grace = 30;
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
	    cfg->rules_file == NULL || cfg->app_dir == NULL || cfg->local_domains == NULL || cfg->trusted_networks == NULL ||
	    cfg->rules_dns_servers == NULL) {
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
		return fail_at(ld, ret,
		               "syntax error: expected \"key = value\", \"[section]\" or a "
		               "comment");
	}
	if (ret < 0 && !ld->failed)
		return no_memory(ld);
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
		no_memory(&ld);
		goto out;
	}
	ld.cfg->path = absolute_path(path);
	if (ld.cfg->path == NULL) {
		fail_raw(&ld, "cannot resolve %s: %s", path, strerror(errno));
		goto out;
	}
	ld.fp = fopen(path, "re");
	if (ld.fp == NULL) {
		fail_raw(&ld, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (read_file(&ld) < 0)
		goto out;
	ld.cmdline = true;
	ld.lineno = 0;
	for (i = 0; i < noverrides; i++)
		if (apply_override(&ld, overrides[i]) < 0)
			goto out;
	ret = finish(&ld);
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
