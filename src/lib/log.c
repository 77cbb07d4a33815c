/*
 * log.c - logging to stderr or syslog.
 *
 * On stderr a line is "role[pid]: level: text", the form journald and a
 * terminal both read well; syslog gets the same text under the "vsmtpd"
 * ident with the configured facility.
 *
 * Much of what is logged comes from outside: a client's HELO name,
 * addresses, commands and login names, the messages of the rules' log().
 * A line break in one would start a line that looks like the daemon's own,
 * and other control characters can rewrite what a terminal shows. So every
 * control character in the text is written out, here and nowhere else: \n,
 * \r and \t as such, the others (and DEL) as \xNN. Bytes from 0x80 up pass
 * unchanged (UTF-8 names and addresses).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static enum log_target log_target = LOG_TARGET_STDERR;
static int log_level = LOG_INFO;
static int log_facility = LOG_MAIL;
static const char *log_role = "master";
static pid_t log_pid; /* this process's, set when its role is */

/* log_open - start logging to target at level and above. */
void log_open(enum log_target target, int level, int facility)
{
	log_target = target;
	log_level = level;
	log_facility = facility;
	/* An administrator starting the daemon by hand sees what it logs.
	 * LOG_NDELAY connects now: a confined process keeps the connection
	 * it has, as it may not make a new one. */
	if (target == LOG_TARGET_SYSLOG)
		openlog("vsmtpd", LOG_PID | LOG_NDELAY | (isatty(STDERR_FILENO) ? LOG_PERROR : 0),
			facility);
}

/* log_detach - forget the syslog connection before its descriptor is closed. */
void log_detach(void)
{
	if (log_target == LOG_TARGET_SYSLOG)
		closelog();
}

/* log_attach - connect to syslog again, after log_detach. */
void log_attach(void)
{
	if (log_target == LOG_TARGET_SYSLOG)
		log_open(log_target, log_level, log_facility);
}

/* log_set_role - name the process in the lines that follow. */
void log_set_role(const char *role)
{
	log_role = role;
	log_pid = getpid();
}

/* log_level_name - the word shown for a priority on stderr. */
static const char *log_level_name(int prio)
{
	static const char *const names[] = {"emerg", "alert", "crit",  "error",
					    "warning", "notice", "info", "debug"};
	return names[prio & 7];
}

/* log_escape - text with its control characters written out (\n, \r, \t,
 * \xNN) into out, cut short rather than split in the middle of one. */
void log_escape(const char *text, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)text;
	size_t o = 0;
	char esc[5];
	size_t n;

	if (outlen == 0)
		return;
	for (; *p != '\0'; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			esc[0] = (char)*p;
			n = 1;
		} else if (*p == '\n' || *p == '\r' || *p == '\t') {
			esc[0] = '\\';
			esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
			n = 2;
		} else {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[*p >> 4];
			esc[3] = hex[*p & 15];
			n = 4;
		}
		if (o + n >= outlen)
			break;
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o] = '\0';
}

/* log_vmsg - format and emit one line. */
static void log_vmsg(int prio, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void log_vmsg(int prio, const char *fmt, va_list ap)
{
	char text[2048], line[2048], out[2200];
	int saved = errno, n;

	if (prio > log_level)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	log_escape(text, line, sizeof(line));
	if (log_target == LOG_TARGET_SYSLOG) {
		syslog(prio, "%s: %s", log_role, line);
	} else {
		if (log_pid == 0)
			log_pid = getpid();
		/* One write per line, so lines of concurrent processes never mix. */
		n = snprintf(out, sizeof(out), "vsmtpd %s[%d]: %s: %s\n", log_role, (int)log_pid,
			     log_level_name(prio), line);
		if (n > (int)sizeof(out) - 1) {
			n = (int)sizeof(out) - 1;
			out[n - 1] = '\n';
		}
		if (write(STDERR_FILENO, out, (size_t)n) < 0)
			errno = saved; /* nowhere left to report it */
	}
	errno = saved;
}

/* log_msg - log at a syslog priority. */
void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(prio, fmt, ap);
	va_end(ap);
}

/* fatal - log a broken invariant and exit. */
void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
