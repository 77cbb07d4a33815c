/*
 * config.h - vsmtpd configuration: the INI file, its defaults and overrides.
 *
 * The file is read with inih. Every section and key is known in advance; an
 * unknown one, or a value that does not parse, makes config_load() fail with
 * a message naming the file, the line and the key. Overrides given on the
 * command line ("-o section.key=value") are applied after the file, with the
 * same checks, and reported as line 0 of "command line".
 */
#ifndef VSMTPD_CONFIG_H
#define VSMTPD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "data_filter.h" /* enum bare_eol_policy */
#include "log.h"         /* enum log_target */

#define CONFIG_DEFAULT_PATH "/etc/vsmtpd/vsmtpd.conf"
#define CONFIG_DEFAULT_RULES "/etc/vsmtpd/rules/main.lua"
#define CONFIG_MAX_LISTENERS 16
#define CONFIG_MAX_ADDRESSES 16
#define CONFIG_MAX_SNI 64
#define CONFIG_MAX_DKIM 64
#define CONFIG_MAX_SERVICES 64



/* What a listener speaks. */
enum listener_kind {
	LISTENER_SMTP,        /* port 25: mail from other servers */
	LISTENER_SUBMISSION,  /* port 587: clients, STARTTLS and AUTH */
	LISTENER_SUBMISSIONS, /* port 465: clients, TLS from the first byte */
	LISTENER_DELEGATION,  /* mail coming back from delegate rules' filters: no TLS, no AUTH */
};

/* A listener's TLS security level; UNSET until config_load's defaults. */
enum listener_tls {
	LISTENER_TLS_UNSET,
	LISTENER_TLS_NONE,    /* no STARTTLS */
	LISTENER_TLS_MAY,     /* STARTTLS offered */
	LISTENER_TLS_ENCRYPT, /* STARTTLS before MAIL and AUTH (or implicit TLS) */
};

/* Whether a listener offers SMTP AUTH; UNSET until config_load's defaults. */
enum listener_auth {
	LISTENER_AUTH_UNSET,
	LISTENER_AUTH_NO,
	LISTENER_AUTH_YES,      /* offered, optional */
	LISTENER_AUTH_REQUIRED, /* MAIL needs it */
};

enum auth_backend { AUTH_BACKEND_SASLDB, AUTH_BACKEND_SASLAUTHD };

/* Where mail for the local domains goes when the rules chose nothing. */
enum local_transport { LOCAL_MAILDIR, LOCAL_MBOX, LOCAL_LMTP };

/* TLS when vsmtpd is the client (relay_tls, mx_tls). */
enum client_tls {
	CLIENT_TLS_NONE,     /* never STARTTLS */
	CLIENT_TLS_MAY,      /* STARTTLS when offered, plaintext otherwise */
	CLIENT_TLS_ENCRYPT,  /* STARTTLS or the delivery is deferred */
	CLIENT_TLS_IMPLICIT, /* TLS from the first byte (port 465) */
};

struct listener_config {
	char *name;                                /* "smtp" in [listener:smtp] */
	char *kind;                                /* "smtp", "submission", "submissions", "delegation" */
	enum listener_kind kind_id;                /* the same */
	enum listener_tls tls;
	enum listener_auth auth;
	char *addresses[CONFIG_MAX_ADDRESSES];     /* "127.0.0.1:25", "[::1]:25" */
	size_t naddresses;
	char *milters;  /* [service:NAME]s of kind milter run before each stage's rules:
	                 * "name1 name2", NULL for none */
};

/* A file named by a setting, with "file:line" of that setting for messages
 * about the file's content (which config_load does not read). */
struct config_file {
	char *path;  /* absolute, NULL when not set */
	char *where; /* "/etc/vsmtpd/vsmtpd.conf:42" or "command line" */
};

/* A text setting with "file:line" of where it was set, for the same reason. */
struct config_text {
	char *value;
	char *where; /* NULL when left at its default */
};

/* [sni:NAME]: a certificate for clients asking for NAME. */
struct sni_config {
	char *name; /* lowercased host name, or "*.domain" */
	struct config_file certificate, key;
};

/* [dkim:NAME]: a DKIM signing key, used by the rules' ctx:dkim_sign("NAME"). */
struct dkim_config {
	char *name;     /* 1 to 32 of a-z, 0-9, _ and - */
	char *domain;   /* d= */
	char *selector; /* s= */
	struct config_file key; /* a PEM private key: RSA of 2048 bits or more, or Ed25519 */
};

/* [service:NAME] kind: the protocol vsmtpd speaks to the service. */
enum service_kind { SERVICE_CLAMD, SERVICE_SPAMD, SERVICE_RSPAMD, SERVICE_MILTER,
                    SERVICE_COMMAND, SERVICE_DELEGATE };

/* [service:NAME] on_failure: what a call that fails means. */
enum service_failure { SERVICE_FAIL_TEMPFAIL, SERVICE_FAIL_ACCEPT, SERVICE_FAIL_REJECT };

/* [service:NAME]: an outside service the rules call (ctx:clamd("NAME"), ...). */
struct service_config {
	char *name;              /* 1 to 32 of a-z, 0-9, _ and - */
	enum service_kind kind;
	char *address;           /* "127.0.0.1:3310", "[::1]:11333", "/run/clamav/clamd.ctl"; NULL for command */
	unsigned connect_timeout_ms;
	unsigned timeout_ms;     /* the whole call */
	enum service_failure on_failure;
	uint64_t max_size;       /* 0: no limit */
	char *password;          /* rspamd */
	char *path;              /* rspamd: "/checkv2" */
	char *user;              /* spamd */
	char **argv;             /* command: NULL-terminated, argv[0] absolute */
	char *where;             /* "file:line" of the section, for messages */
};

struct config {
	char *path; /* the file this was read from, made absolute */

	/* [server] */
	char *hostname;    /* default: gethostname() */
	char *banner;      /* text after "220 hostname " */
	char *user;        /* account to run as when started as root */
	char *group;       /* its group; default: the user's primary group */
	char *spool_dir;
	enum log_target log_target;
	int log_level;       /* a syslog priority: LOG_DEBUG .. LOG_ERR */
	int syslog_facility; /* LOG_MAIL by default */

	/* [listener:NAME] sections, in file order */
	struct listener_config listeners[CONFIG_MAX_LISTENERS];
	size_t nlisteners;

	/* [limits] */
	unsigned max_sessions;
	unsigned max_sessions_per_ip;
	unsigned spare_processes;   /* idle session processes kept ready */
	unsigned max_use;           /* connections one session process serves */
	uint64_t max_message_size;  /* bytes; SIZE= above it gets 552 at MAIL */
	unsigned max_recipients;    /* past it RCPT gets 452 4.5.3 */
	size_t max_command_line;    /* bytes, CRLF included */
	size_t max_text_line;       /* bytes, CRLF included (DATA / BDAT lines) */
	unsigned soft_error_limit;  /* past it every reply is delayed */
	unsigned hard_error_limit;  /* at it: 421 and close */
	unsigned error_delay_ms;    /* the delay past the soft limit */
	uint64_t min_free_space;    /* bytes the spool file system keeps free */

	/* [timeouts], seconds */
	unsigned timeout_command;   /* waiting for a command */
	unsigned timeout_data;      /* waiting for more DATA / BDAT bytes */
	unsigned timeout_command_deadline; /* a whole command line, from the previous reply */
	size_t timeout_data_min_rate; /* bytes per second a transfer keeps up; 0: none */
	unsigned timeout_data_grace; /* seconds of a transfer before the rate counts */
	unsigned timeout_session;   /* the whole session; 0: no limit */
	unsigned shutdown_grace;    /* SIGTERM: how long running sessions get */
	unsigned max_idle;          /* an idle session process past spare_processes exits */

	/* [smtp] */
	enum bare_eol_policy bare_eol;

	/* [rules] */
	char *rules_file;                 /* absolute */
	char *app_dir;                    /* where write() and dump() put files, absolute */
	unsigned rules_instruction_limit; /* Lua VM instructions per rule call */
	uint64_t rules_memory_limit;      /* bytes a rule call may add to the Lua state */
	unsigned rules_time_limit_ms;     /* CPU time of a rule call before its session ends */
	unsigned rules_load_time_limit_ms; /* CPU time loading the rules may take */
	char *local_domains;              /* lowercased domains, separated by single spaces */
	char *trusted_networks;           /* addresses and address/prefix, single spaces */
	int allow_routing_local_parts;    /* config.allow_routing_local_parts for the rules */
	char *rules_dns_servers;          /* "" (the system's) or address[:port], single spaces */
	unsigned rules_dns_timeout_ms;    /* bound of one dns.lookup / dns.rlookup call */

	/* [tls] and [sni:NAME] */
	struct config_file tls_certificate; /* path NULL: no TLS */
	struct config_file tls_key;         /* path NULL: in the certificate file */
	int tls_min_protocol;               /* TLS1_2_VERSION or TLS1_3_VERSION */
	struct config_text tls_ciphers;     /* "" for OpenSSL's default */
	struct config_text tls_ciphersuites; /* "" for OpenSSL's default */
	unsigned tls_handshake_timeout;     /* seconds */
	struct sni_config sni[CONFIG_MAX_SNI];
	size_t nsni;

	/* [dkim:NAME] */
	struct dkim_config dkim[CONFIG_MAX_DKIM];
	size_t ndkim;

	/* [service:NAME] */
	struct service_config service[CONFIG_MAX_SERVICES];
	size_t nservice;

	/* [auth] */
	char *auth_mechanisms;        /* uppercased, separated by single spaces */
	char *auth_mechanisms_where;  /* "file:line" of the setting, or of the file */
	enum auth_backend auth_backend;
	char *sasldb_path;            /* absolute */
	char *saslauthd_path;         /* absolute */
	char *auth_realm;             /* "" for the host name */
	int auth_allow_plaintext;     /* offer AUTH without TLS to plaintext_networks */
	char *auth_plaintext_networks; /* addresses and address/prefix, single spaces */
	unsigned auth_max_failures;

	/* [server], continued: the control socket of vsmtpctl */
	char *control_socket;         /* absolute */
	char *admin_group;            /* "" for root and the vsmtpd user only */

	/* [delivery] */
	unsigned delivery_max_concurrency;  /* deliveries in flight in all */
	unsigned delivery_max_per_destination; /* to one destination */
	enum local_transport local_transport;
	char *maildir_path;           /* template: %d domain, %u local part, %% */
	char *mbox_path;              /* template, the same */
	char *lmtp_target;            /* "unix:/path", "host:port", "[v6]:port" */
	char *relay_host;             /* "" for MX delivery; "host:port" or "[host]:port" */
	enum client_tls relay_tls;
	int relay_tls_verify;         /* check the relay's certificate and name */
	char *relay_auth_user;        /* "" for no AUTH */
	char *relay_auth_password;
	enum client_tls mx_tls;       /* CLIENT_TLS_NONE or CLIENT_TLS_MAY */
	unsigned mx_port;             /* the port of MX hosts, 25 */
	char *delivery_dns_servers;   /* "" (the system's) or address[:port], single spaces */
	unsigned delivery_dns_timeout_ms;
	char *tls_ca_file;            /* "" for the system's CA store */
	char *helo_name;              /* "" for hostname */
	unsigned connect_timeout;     /* seconds */
	unsigned command_timeout;     /* seconds, for each reply */
	unsigned data_timeout;        /* seconds, for the reply to the final dot */
	unsigned connection_cache_time; /* seconds an idle connection is kept for reuse */
	unsigned retry_min;           /* seconds before the first retry */
	unsigned retry_max;           /* the longest wait between two attempts */
	unsigned max_queue_lifetime;  /* seconds a deferred message is tried */
	unsigned bounce_queue_lifetime; /* the same for a bounce (null sender) */
	unsigned delay_warning;       /* seconds before a delay warning, 0 for none */
	size_t dsn_attach_limit;      /* bytes of the original a bounce carries at most */
	unsigned max_worker_failures; /* worker deaths on one message before it is held */
};

/*
 * config_load - read the file at path, then apply the overrides.
 *
 * overrides are "section.key=value" strings (noverrides of them, may be 0).
 * Returns a new config, or NULL with a one-line message in err (which names
 * the file, the line and the key) when anything is wrong.
 */
struct config *config_load(const char *path, char *const *overrides, size_t noverrides,
			   char *err, size_t errlen);

/* config_free - release a config from config_load (NULL is fine). */
void config_free(struct config *cfg);

/*
 * config_parse_size - "10240000", "512k", "25M", "1G" (powers of 1024) to bytes.
 * config_parse_duration - "300", "300s", "5m", "1h", "250ms" to milliseconds.
 * Both return 0 on success, -1 when the text is not such a value.
 */
int config_parse_size(const char *text, uint64_t *bytes);

/*
 * config_target_split - a destination as [delivery] lmtp and relay_host
 * take it: "unix:/path" gives *path (an absolute socket path); "host",
 * "host:port", "[host]:port" or "[IPv6]:port" give host (without brackets)
 * and *port (0 when not given; the caller picks the default). *bracketed
 * says the host was in brackets: use it as is, no MX lookup. 0, or -1
 * when text is no such destination.
 */
int config_target_split(const char *text, char *host, size_t hostlen, unsigned *port,
			const char **path, int *bracketed);
int config_parse_duration(const char *text, uint64_t *ms);

/* config_service_kind_name - "clamd", "spamd", ... */
const char *config_service_kind_name(enum service_kind kind);

/* config_service_failure_name - "tempfail", "accept" or "reject". */
const char *config_service_failure_name(enum service_failure f);

/*
 * config_service_is_unix - whether a [service:NAME] address is a Unix
 * socket path (else it is IP:port or [IPv6]:port).
 */
int config_service_is_unix(const char *address);

/*
 * config_service_sockaddr - the socket address of a [service:NAME] address
 * as parse_service_address accepts it: 0, or -1 when it is no such address.
 */
int config_service_sockaddr(const char *address, struct sockaddr_storage *ss, socklen_t *len);

/*
 * config_backoff - seconds to wait before attempt n + 1 (n >= 1): retry_min,
 * doubled at each attempt, never more than retry_max.
 */
uint64_t config_backoff(unsigned retry_min, unsigned retry_max, unsigned n);

#endif
