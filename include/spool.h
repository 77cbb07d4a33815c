/*
 * spool.h - the on-disk spool: layout, message ids and the file format.
 *
 * Only the queue process writes the spool. A message file is the content as
 * received, then the envelope as JSON, then a fixed-size trailer that gives
 * both lengths; a file is committed once it has a valid trailer and sits in
 * queue/. The format is described for administrators in docs/spool.md.
 */
#ifndef VSMTPD_SPOOL_H
#define VSMTPD_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

#define SPOOL_ID_LEN 16
#define SPOOL_INCOMING "incoming" /* files being received: never committed */
#define SPOOL_QUEUE "queue"       /* committed, waiting for delivery */
#define SPOOL_CORRUPT "corrupt"   /* committed-looking files that failed checks */
#define SPOOL_QUARANTINE "quarantine" /* quarantine/<name>/: kept by the rules, never delivered */
#define SPOOL_STATE "state"       /* state/<id>: delivery state of a message in queue/ or hold/ */
#define SPOOL_HOLD "hold"         /* held by the administrator: not delivered until released */
#define SPOOL_DEAD "dead"         /* failed messages whose bounce could not be sent either */
#define SPOOL_DMARC "dmarc"       /* dmarc/YYYY-MM-DD.jsonl: DMARC report records, by UTC day */
#define SPOOL_FOLDER_NAME_MAX 127

/* "\nVSMTPD-SPOOL-1 <content length: 16 hex> <envelope length: 8 hex>\n" */
#define SPOOL_TRAILER_MAGIC "VSMTPD-SPOOL-1"
#define SPOOL_TRAILER_LEN 42
#define SPOOL_ENVELOPE_MAX (16u << 20)

/*
 * spool_folder_name_ok - whether name may be a folder the rules name (a
 * quarantine, a write/dump folder): one path component of 1 to
 * SPOOL_FOLDER_NAME_MAX letters, digits, '.', '_' or '-', not starting
 * with '.'.
 */
int spool_folder_name_ok(const char *name);

/*
 * spool_id_next - a new message id: the time in microseconds as 16 hex
 * digits, forced to be larger than *last (which it updates), so ids are
 * unique within the spool and sort in arrival order.
 */
void spool_id_next(uint64_t *last, char id[SPOOL_ID_LEN + 1]);

/* spool_id_valid - 1 when id looks like one spool_id_next makes. */
int spool_id_valid(const char *id);

/* spool_id_value - the number an id encodes (0 if it is not valid). */
uint64_t spool_id_value(const char *id);

/* spool_trailer_format - the trailer for these lengths into buf (SPOOL_TRAILER_LEN bytes). */
void spool_trailer_format(char buf[SPOOL_TRAILER_LEN], uint64_t content_len, uint32_t env_len);

/*
 * spool_prepare - create the spool directories below dir if missing (mode
 * 0700), owned by uid/gid when those are not -1. Returns 0, or -1 with errno.
 */
int spool_prepare(const char *dir, int uid, int gid);

/* spool_prepare_dir - the same for one directory alone (the rules' app_dir). */
int spool_prepare_dir(const char *dir, int uid, int gid);

/*
 * spool_message_read - check a committed file and read its envelope.
 *
 * Verifies the trailer against the file size and parses the envelope into a
 * zeroed env. Returns 0 with *content_len set, or -1 when the file is not a
 * complete message (errno EINVAL) or cannot be read.
 */
int spool_message_read(int fd, struct envelope *env, uint64_t *content_len);

#endif
