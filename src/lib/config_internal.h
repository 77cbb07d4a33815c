/*
 * config_internal.h - what the parts of the configuration loader share:
 * the sections, the key table's entry, the state of one config_load() call
 * and the functions that cross between config.c (loading and reporting),
 * config_keys.c (the key table and its per-key parsers), config_values.c
 * (the syntax of values: numbers, sizes, durations, domains, paths,
 * addresses), config_check.c (the checks that tie keys together) and
 * config_service.c (the [service:NAME] sections).
 */
#ifndef VSMTPD_CONFIG_INTERNAL_H
#define VSMTPD_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

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
	SEC_DKIM,
	SEC_AUTH,
	SEC_DELIVERY,
	SEC_SERVICE,
	SEC_COUNT,
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
	                  struct sni_config for [sni:NAME], struct dkim_config for
	                  [dkim:NAME], struct service_config for [service:NAME] */
	uint64_t min;  /* bounds of a number, size or duration */
	uint64_t max;
	const struct choice *choices; /* the words parse_choice() accepts */
	bool list;                    /* repeatable: each line adds values */
};

/* A listener address in binary form, to compare two of them. */
struct address_key {
	int family;
	unsigned char addr[16];
	unsigned port;
};

/* Room for the entries of config_keys[] in the loader's per-key arrays
 * (checked where the table is defined); config_nkeys is how many there are. */
#define CONFIG_KEYS_MAX 128

/* Every key, in config_keys.c, and how many. */
extern const struct key_def config_keys[];
extern const size_t config_nkeys;

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
	size_t listener;               /* the current [listener:NAME], an index */
	size_t sni;                    /* the current [sni:NAME], an index */
	size_t dkim;                   /* the current [dkim:NAME], an index */
	size_t service;                /* the current [service:NAME], an index */
	char label[SNI_NAME_MAX + 16]; /* "[server]", "[listener:smtp]" */
	int section_line[SEC_COUNT];
	int listener_line[CONFIG_MAX_LISTENERS];
	int sni_line[CONFIG_MAX_SNI];
	int dkim_line[CONFIG_MAX_DKIM];
	int service_line[CONFIG_MAX_SERVICES];
	bool addresses_overridden[CONFIG_MAX_LISTENERS];
	int key_lines[CONFIG_KEYS_MAX]; /* where each key of config_keys[] was set */
	int listener_key_lines[CONFIG_MAX_LISTENERS][CONFIG_KEYS_MAX]; /* the same, per listener */
	int sni_key_lines[CONFIG_MAX_SNI][CONFIG_KEYS_MAX];            /* and per [sni:NAME] */
	int dkim_key_lines[CONFIG_MAX_DKIM][CONFIG_KEYS_MAX];          /* and per [dkim:NAME] */
	int service_key_lines[CONFIG_MAX_SERVICES][CONFIG_KEYS_MAX];   /* and per [service:NAME] */
	char msg[1024];
};

/* config.c: where a message is located, and the errors it records. */
void config_where(const struct loader *ld, int line, char *out, size_t outlen);
__attribute__((format(printf, 3, 4))) int config_fail_at(struct loader *ld, int line,
                                                         const char *fmt, ...);
__attribute__((format(printf, 2, 3))) int config_fail(struct loader *ld, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) int config_fail_raw(struct loader *ld, const char *fmt, ...);
const char *config_shown(const char *text, char out[static 72]);
__attribute__((format(printf, 4, 5))) int config_bad_value(struct loader *ld,
                                                           const struct key_def *def,
                                                           const char *value, const char *fmt, ...);
int config_no_memory(struct loader *ld);
int config_replace_string(struct loader *ld, char **slot, const char *value);

/* config_keys.c: looking keys up. */
const struct key_def *config_find_key(enum section section, const char *key);
int *config_key_line(struct loader *ld, const struct key_def *def);

/* config_values.c: the syntax of values. */
int config_plain_number(const char *s, uint64_t *out);
bool config_valid_domain(const char *name);
char *config_absolute_path(const char *path);
const char *config_check_address(const char *text, struct address_key *key);
const char *config_check_domain_word(const char *word);
const char *config_check_network_word(const char *word);
const char *config_check_mechanism_word(const char *word);

/* config_check.c: the checks that span keys, and the computed defaults. */
int config_finish(struct loader *ld);

/* config.c: whether name is 1 to 32 of a-z, 0-9, _ and - (listeners, keys, services). */
bool config_valid_name(const char *name);

/* config_service.c: the [service:NAME] sections. */

/* config_enter_service - make [service:NAME] the current section, adding it
 * (with its defaults) when new. */
int config_enter_service(struct loader *ld, const char *name, int line);

/* config_finish_services - every service has its kind and what the kind needs. */
int config_finish_services(struct loader *ld);

/* config_free_services - release what the [service:NAME] sections hold. */
void config_free_services(struct config *cfg);

/* parse_service_address - [service:NAME] address: IPv4:port, [IPv6]:port or
 * an absolute Unix socket path. */
int parse_service_address(struct loader *ld, const struct key_def *def, void *field,
                          const char *value);

/* parse_service_path - [service:NAME] path: an HTTP path, "/" and printable
 * characters without blanks. */
int parse_service_path(struct loader *ld, const struct key_def *def, void *field,
                       const char *value);

/* parse_service_command - [service:NAME] command: an absolute program path
 * then its arguments, split on blanks, into a NULL-terminated argv. */
int parse_service_command(struct loader *ld, const struct key_def *def, void *field,
                          const char *value);

/* config_key_text.c: the parsers of the key table for files, text and lists. */

/* parse_hostname - [server] hostname: a domain name. */
int parse_hostname(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_file - a file; relative to the configuration file's folder, or on
 * the command line to the working directory. */
int parse_file(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_located_file - a file (as parse_file) and where it was set. */
int parse_located_file(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_socket - a unix socket path, which must fit a sockaddr_un. */
int parse_socket(struct loader *ld, const struct key_def *def, void *field, const char *value);

/*
 * parse_path_template - an absolute path in which %d stands for the
 * recipient's domain, %u for its local part and %% for a '%'; %u must be
 * there, or every recipient would share one mailbox.
 */
int parse_path_template(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_target - where a client connects: see config_target_split. */
int parse_target(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_optional_file - a file (as parse_file), or empty for none. */
int parse_optional_file(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_optional_hostname - a domain name, or empty for the default. */
int parse_optional_hostname(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_text - free text, possibly empty; printable ASCII only. */
int parse_text(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_located_text - free text (as parse_text) and where it was set. */
int parse_located_text(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_domains - [rules] local_domains. */
int parse_domains(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_networks - [rules] trusted_networks. */
int parse_networks(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_mechanisms - [auth] mechanisms, uppercased, with where they were set. */
int parse_mechanisms(struct loader *ld, const struct key_def *def, void *field, const char *value);

/* parse_dns_servers - [rules] dns_servers: addresses, each with an optional port. */
int parse_dns_servers(struct loader *ld, const struct key_def *def, void *field, const char *value);

#endif
