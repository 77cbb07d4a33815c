/*
 * config_service.c - the [service:NAME] sections of vsmtpd.conf: outside
 * services (clamd, spamd, rspamd, milters, commands, SMTP content filters)
 * that the rules call by name, as ctx:clamd("NAME").
 *
 * A section is added with its defaults when its header is read
 * (config_enter_service); its keys are in the key table of config_keys.c,
 * with the parsers of an address, an HTTP path and a command line here.
 * Once the whole file and the overrides are read, config_finish_services
 * checks that each service has a kind and what its kind needs (an address,
 * or a command for kind = command) and no key its kind does not use, so
 * that a typo is an error at start rather than a call that fails later.
 *
 * Addresses are IP literals or Unix socket paths, never host names: the
 * calls run in confined session processes, which cannot read the system's
 * resolver configuration, and a service on another host is named by its
 * address like a DNS server. config_service_sockaddr turns one into the
 * socket address the rules connect to.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"
#include "config_internal.h"

#define SERVICE_ARGS_MAX 64 /* words of a command line, the program included */

static const char *const service_kind_names[] = {
    [SERVICE_CLAMD] = "clamd",   [SERVICE_SPAMD] = "spamd",     [SERVICE_RSPAMD] = "rspamd",
    [SERVICE_MILTER] = "milter", [SERVICE_COMMAND] = "command", [SERVICE_DELEGATE] = "delegate",
};

static const char *const service_failure_names[] = {
    [SERVICE_FAIL_TEMPFAIL] = "tempfail",
    [SERVICE_FAIL_ACCEPT] = "accept",
    [SERVICE_FAIL_REJECT] = "reject",
};

/* The keys only some kinds use: a key set for another kind is an error. */
static const struct {
	const char *key;
	enum service_kind kind;
} service_kind_keys[] = {
    {"password", SERVICE_RSPAMD},
    {"path", SERVICE_RSPAMD},
    {"user", SERVICE_SPAMD},
    {"command", SERVICE_COMMAND},
};

/* config_service_kind_name - see config.h. */
const char *config_service_kind_name(enum service_kind kind)
{
	return (size_t)kind < sizeof(service_kind_names) / sizeof(service_kind_names[0])
	           ? service_kind_names[kind]
	           : "?";
}

/* config_service_failure_name - see config.h. */
const char *config_service_failure_name(enum service_failure f)
{
	return (size_t)f < sizeof(service_failure_names) / sizeof(service_failure_names[0])
	           ? service_failure_names[f]
	           : "?";
}

/* config_service_is_unix - see config.h. */
int config_service_is_unix(const char *address)
{
	return address != NULL && address[0] == '/';
}

/* service_port - the port after the colon at text: 1 to 65535, else 0. */
static unsigned service_port(const char *text)
{
	uint64_t port;

	if (config_plain_number(text, &port) < 0 || port < 1 || port > 65535)
		return 0;
	return (unsigned)port;
}

/* config_service_sockaddr - see config.h. */
int config_service_sockaddr(const char *address, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon;
	unsigned port;
	size_t n;

	memset(ss, 0, sizeof(*ss));
	if (config_service_is_unix(address)) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;

		n = strlen(address);
		if (n >= sizeof(sun->sun_path))
			return -1;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, address, n + 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	if (address[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		const char *close = strchr(address, ']');

		if (close == NULL || close[1] != ':' || (n = (size_t)(close - address - 1)) >= sizeof(host))
			return -1;
		memcpy(host, address + 1, n);
		host[n] = '\0';
		if ((port = service_port(close + 2)) == 0 ||
		    inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	colon = strchr(address, ':');
	if (colon == NULL || (n = (size_t)(colon - address)) >= sizeof(host))
		return -1;
	memcpy(host, address, n);
	host[n] = '\0';
	{
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if ((port = service_port(colon + 1)) == 0 ||
		    inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
	}
	return 0;
}

/* config_enter_service - see config_internal.h. */
int config_enter_service(struct loader *ld, const char *name, int line)
{
	struct config *cfg = ld->cfg;
	struct service_config *s;
	char shown_name[72], at[PATH_MAX + 32];
	size_t i;

	if (!config_valid_name(name))
		return config_fail(ld,
		                   "[service:%s]: a service name is 1 to %d characters of a-z, 0-9, _ "
		                   "and -",
		                   config_shown(name, shown_name), LISTENER_NAME_MAX);
	for (i = 0; i < cfg->nservice; i++)
		if (strcmp(cfg->service[i].name, name) == 0)
			break;
	if (i < cfg->nservice && !ld->cmdline)
		return config_fail(ld, "duplicate section [service:%s], first on line %d", name,
		                   ld->service_line[i]);
	if (i == cfg->nservice) {
		if (cfg->nservice == CONFIG_MAX_SERVICES)
			return config_fail(ld, "[service:%s] is one too many (at most %d)", name,
			                   CONFIG_MAX_SERVICES);
		s = &cfg->service[i];
		memset(s, 0, sizeof(*s));
		config_where(ld, line, at, sizeof(at));
		if ((s->name = strdup(name)) == NULL || (s->where = strdup(at)) == NULL) {
			free(s->name);
			s->name = NULL;
			return config_no_memory(ld);
		}
		s->connect_timeout_ms = 5000;
		s->timeout_ms = 30000;
		s->on_failure = SERVICE_FAIL_TEMPFAIL;
		ld->service_line[i] = line;
		cfg->nservice++;
	}
	ld->section = SEC_SERVICE;
	ld->service = i;
	snprintf(ld->label, sizeof(ld->label), "[service:%s]", name);
	return 0;
}

/* parse_service_address - see config_internal.h. */
int parse_service_address(struct loader *ld, const struct key_def *def, void *field,
                          const char *value)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (config_service_is_unix(value)) {
		if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return config_bad_value(ld, def, value,
			                        "is longer than a Unix socket path may be (%zu bytes)",
			                        sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	} else if (config_service_sockaddr(value, &ss, &len) < 0) {
		return config_bad_value(ld, def, value,
		                        "is not IPv4:port, [IPv6]:port or an absolute Unix socket "
		                        "path (host names are not looked up)");
	}
	return config_replace_string(ld, field, value);
}

/* parse_service_path - see config_internal.h. */
int parse_service_path(struct loader *ld, const struct key_def *def, void *field,
                       const char *value)
{
	const char *p;

	if (value[0] != '/')
		return config_bad_value(ld, def, value, "does not start with /");
	for (p = value; *p; p++)
		if (*p <= 0x20 || *p > 0x7e)
			return config_bad_value(ld, def, value,
			                        "holds a blank, non-printing or non-ASCII character");
	return config_replace_string(ld, field, value);
}

/* free_argv - free a NULL-terminated argv (NULL is fine). */
static void free_argv(char **argv)
{
	size_t i;

	for (i = 0; argv != NULL && argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/* parse_service_command - see config_internal.h. */
int parse_service_command(struct loader *ld, const struct key_def *def, void *field,
                          const char *value)
{
	char ***slot = field;
	char **argv = calloc(SERVICE_ARGS_MAX + 1, sizeof(*argv));
	char *copy = strdup(value), *tok, *save = NULL;
	const char *p;
	size_t n = 0;
	int ret = 0;

	if (argv == NULL || copy == NULL) {
		free(argv);
		free(copy);
		return config_no_memory(ld);
	}
	for (p = value; *p && ret == 0; p++)
		if ((*p < 0x20 && *p != '\t') || *p > 0x7e)
			ret = config_bad_value(ld, def, value,
			                       "holds a non-printing or non-ASCII character");
	for (tok = strtok_r(copy, " \t", &save); tok && ret == 0; tok = strtok_r(NULL, " \t", &save)) {
		if (n == SERVICE_ARGS_MAX)
			ret = config_bad_value(ld, def, value, "has more than %d words",
			                       SERVICE_ARGS_MAX);
		else if ((argv[n++] = strdup(tok)) == NULL)
			ret = config_no_memory(ld);
	}
	if (ret == 0 && n == 0)
		ret = config_bad_value(ld, def, value, "names no program");
	if (ret == 0 && argv[0][0] != '/')
		ret = config_bad_value(ld, def, value,
		                       "does not start with an absolute program path (no shell, no "
		                       "PATH search)");
	free(copy);
	if (ret < 0) {
		free_argv(argv);
		return ret;
	}
	free_argv(*slot);
	*slot = argv;
	return 0;
}

/* key_line - where key of service i was set, 0 when it was not. */
static int key_line(const struct loader *ld, size_t i, const char *key)
{
	const struct key_def *def = config_find_key(SEC_SERVICE, key);

	return ld->service_key_lines[i][def - config_keys];
}

/* finish_service - the checks of service i. */
static int finish_service(struct loader *ld, size_t i)
{
	struct service_config *s = &ld->cfg->service[i];
	int line;
	size_t k;

	if (key_line(ld, i, "kind") == 0)
		return config_fail_at(ld, ld->service_line[i],
		                      "[service:%s] needs kind: clamd, spamd, rspamd, milter, "
		                      "command or delegate",
		                      s->name);
	for (k = 0; k < sizeof(service_kind_keys) / sizeof(service_kind_keys[0]); k++) {
		line = key_line(ld, i, service_kind_keys[k].key);
		if (line != 0 && service_kind_keys[k].kind != s->kind)
			return config_fail_at(ld, line, "[service:%s] %s is for kind %s, not %s",
			                      s->name, service_kind_keys[k].key,
			                      config_service_kind_name(service_kind_keys[k].kind),
			                      config_service_kind_name(s->kind));
	}
	if (s->kind == SERVICE_COMMAND) {
		if ((line = key_line(ld, i, "address")) != 0)
			return config_fail_at(ld, line,
			                      "[service:%s] address: a command service runs a "
			                      "program, named by command, and has no address",
			                      s->name);
		if (s->argv == NULL)
			return config_fail_at(ld, ld->service_line[i],
			                      "[service:%s] needs command (the program's absolute "
			                      "path and its arguments)",
			                      s->name);
	} else if (s->address == NULL) {
		return config_fail_at(ld, ld->service_line[i],
		                      "[service:%s] needs address (IPv4:port, [IPv6]:port or a Unix "
		                      "socket path)",
		                      s->name);
	}
	if (s->kind == SERVICE_RSPAMD && config_service_is_unix(s->address))
		return config_fail_at(ld, key_line(ld, i, "address"),
		                      "[service:%s] address: rspamd is reached over TCP "
		                      "(IPv4:port or [IPv6]:port), not a Unix socket",
		                      s->name);
	if (s->kind == SERVICE_RSPAMD && s->path == NULL &&
	    config_replace_string(ld, &s->path, "/checkv2") < 0)
		return -1;
	if (s->kind == SERVICE_DELEGATE) {
		/* the filter sends the message back to a delegation listener */
		for (k = 0; k < ld->cfg->nlisteners; k++)
			if (strcmp(ld->cfg->listeners[k].kind, "delegation") == 0)
				break;
		if (k == ld->cfg->nlisteners)
			return config_fail_at(ld, ld->service_line[i],
			                      "[service:%s] kind delegate: the filter sends mail back "
			                      "to a [listener:NAME] with kind = delegation; declare one",
			                      s->name);
	}
	return 0;
}

/* config_finish_services - see config_internal.h. */
int config_finish_services(struct loader *ld)
{
	size_t i;

	for (i = 0; i < ld->cfg->nservice; i++)
		if (finish_service(ld, i) < 0)
			return -1;
	return 0;
}

/* config_free_services - see config_internal.h. */
void config_free_services(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nservice; i++) {
		struct service_config *s = &cfg->service[i];

		free(s->name);
		free(s->address);
		free(s->password);
		free(s->path);
		free(s->user);
		free_argv(s->argv);
		free(s->where);
	}
}
