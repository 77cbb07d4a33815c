/*
 * log.h - logging to stderr or syslog, one line per event.
 *
 * Every line carries the process role ("master", "queue", "smtp") so that a
 * grep over the journal follows one message through the processes.
 */
#ifndef VSMTPD_LOG_H
#define VSMTPD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <syslog.h>

/* Where log lines go ([server] log). */
enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG };

/* log_open - start logging; before it, everything goes to stderr. */
void log_open(enum log_target target, int level, int facility);

/*
 * log_detach, log_attach - a child that closes the descriptors it
 * inherited detaches first (the C library forgets its syslog connection)
 * and attaches after: a connection of its own, made before it confines
 * itself. Nothing for stderr, whose descriptor every process keeps.
 */
void log_detach(void);
void log_attach(void);

/* log_set_role - name the process in every following line (after a fork). */
void log_set_role(const char *role);

/* log_escape - text with its control characters written out (\n, \r, \t,
 * \xNN) into out: what every log line goes through. */
void log_escape(const char *text, char *out, size_t outlen);

/* log_msg - log at a syslog priority, printf style. */
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fatal - log at LOG_CRIT and exit(1): for broken invariants only. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)

#endif
