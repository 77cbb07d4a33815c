/*
 * rules_clamd.h - ctx:clamd(name): the message scanned by ClamAV's clamd
 * over its INSTREAM command (rules_clamd.c), and the parser of clamd's
 * answer, a pure function the unit tests and the fuzzer call. Private to
 * the rule engine.
 */
#ifndef VSMTPD_RULES_CLAMD_H
#define VSMTPD_RULES_CLAMD_H

#include <stddef.h>

#include <lauxlib.h>

#define RULES_CLAMD_VIRUS_MAX 256 /* a virus name, NUL included */

/* What clamd answered. */
enum rules_clamd_verdict {
	RULES_CLAMD_CLEAN,    /* "stream: OK" */
	RULES_CLAMD_INFECTED, /* "stream: NAME FOUND" */
	RULES_CLAMD_ERROR,    /* "... ERROR": clamd could not scan */
	RULES_CLAMD_GARBAGE,  /* anything else */
};

/*
 * rules_clamd_parse - read clamd's answer to zINSTREAM (len bytes at
 * reply, the terminating NUL or newline included or not). For
 * RULES_CLAMD_INFECTED the virus name goes to virus (NUL-terminated,
 * printable ASCII, at most RULES_CLAMD_VIRUS_MAX - 1 bytes); for
 * RULES_CLAMD_ERROR and RULES_CLAMD_GARBAGE a description for the log
 * goes to virus instead (printable, shortened).
 */
enum rules_clamd_verdict rules_clamd_parse(const char *reply, size_t len,
                                           char virus[RULES_CLAMD_VIRUS_MAX]);

/* The ctx method ctx:clamd(name) (rules_clamd.c). */
extern const luaL_Reg ctx_clamd_methods[];

#endif
