/*
 * scoreboard.h - what the delivery worker is doing, kept in memory it
 * shares with the queue, so that when the worker dies the queue knows the
 * message it died on.
 *
 * The queue makes the scoreboard (a sealed memfd of fixed size, so the
 * worker can neither shrink nor grow it under the queue's mapping) and hands
 * it to each worker it serves. The worker notes the message and the step
 * before any work it does on one message alone (reading it, its rules, the
 * end of its attempt) and clears the note after: plain stores into the
 * shared page, no system call. When a rule runs past [rules] time_limit,
 * the worker's signal handler adds the rule's name and place before the
 * process exits (memory copies only: async-signal-safe). Whatever ends the
 * worker, the queue reads the page once the worker's channel has closed; a
 * note still there names the message that took the worker down. The queue
 * trusts nothing it reads there: scoreboard_read checks and copies.
 */
#ifndef VSMTPD_SCOREBOARD_H
#define VSMTPD_SCOREBOARD_H

#include "spool.h"

/* What the worker is doing with the message it names. */
enum scoreboard_step {
	SCOREBOARD_IDLE,     /* nothing with one message alone */
	SCOREBOARD_PREPARE,  /* reading the file, its envelope and state; parsing, routing */
	SCOREBOARD_POSTQ,    /* running the postq rules on it */
	SCOREBOARD_DELIVERY, /* running the delivery rules on it */
	SCOREBOARD_END,      /* ending its attempt: outcomes, notices, bounces */
	SCOREBOARD_STEPS
};

#define SCOREBOARD_RULE_MAX 128  /* bytes of a rule's name kept, NUL included */
#define SCOREBOARD_WHERE_MAX 256 /* bytes of its "file:line" kept, NUL included */

struct scoreboard; /* the shared page */

/* A checked copy of what the scoreboard says. */
struct scoreboard_entry {
	enum scoreboard_step step;
	char id[SPOOL_ID_LEN + 1];
	int overrun;                     /* a rule ran past [rules] time_limit */
	char rule[SCOREBOARD_RULE_MAX];  /* that rule's name, "" when unknown */
	char where[SCOREBOARD_WHERE_MAX]; /* its "file:line", "" when unknown */
};

/* scoreboard_create - a new, sealed scoreboard file; its descriptor, or -1 with errno. */
int scoreboard_create(void);

/*
 * scoreboard_map - map the scoreboard file fd (shared, read-write); NULL
 * with errno when it is no scoreboard (its size differs). fd may be closed
 * afterwards.
 */
struct scoreboard *scoreboard_map(int fd);

/* scoreboard_unmap - undo scoreboard_map (NULL is fine). */
void scoreboard_unmap(struct scoreboard *sb);

/* scoreboard_enter - the worker starts step on message id (sb NULL: nothing). */
void scoreboard_enter(struct scoreboard *sb, const char *id, enum scoreboard_step step);

/* scoreboard_leave - the worker is done with the message it named (sb NULL: nothing). */
void scoreboard_leave(struct scoreboard *sb);

/*
 * scoreboard_overrun - from a signal handler: the rule (name, "file:line";
 * either may be NULL) ran past its time. Async-signal-safe.
 */
void scoreboard_overrun(struct scoreboard *sb, const char *rule, const char *where);

/*
 * scoreboard_read - what the page says, checked: 1 with *e filled when it
 * names a message, 0 when idle or when what is there makes no sense (a
 * step out of range, no valid queue id). Control characters of the rule's
 * name and place become '?'.
 */
int scoreboard_read(const struct scoreboard *sb, struct scoreboard_entry *e);

/* scoreboard_clear - back to idle (the queue, once it has read a dead worker's note). */
void scoreboard_clear(struct scoreboard *sb);

#endif
