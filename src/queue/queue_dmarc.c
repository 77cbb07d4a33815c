/*
 * queue_dmarc.c - the records DMARC aggregate reports are made from: one
 * JSON line per message whose rules called ctx:dmarc(), appended to
 * <spool>/dmarc/YYYY-MM-DD.jsonl (the UTC day the line is written).
 *
 * A session puts what ctx:dmarc() found in the envelope's "dmarc" object
 * (rules_dmarc_record); the queue reads it when it checks the commit, adds
 * the message's id, its time and what became of it ("queued",
 * "quarantined", "held") and appends the line once the flush has made the
 * message durable and the session has been told: the 250 never waits for
 * it. A message the preq rules refused for good (5xx) has no commit: the
 * session sends its record alone (IPC_DMARC_RECORD, in a memfd) and the
 * queue writes it with "rejected". The session is not trusted with the
 * format: its object is parsed and printed again, so a line is one JSON
 * object whatever it sent. The lines are written without fsync: a crash
 * may lose the last ones, which only makes a report short.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "io.h"
#include "ipc.h"
#include "log.h"
#include "spool.h"
#include "queue_internal.h"

/* queue_dmarc_line - the line for one message: the session's record object
 * text with id, time and action set by the queue; malloc'ed, NULL when the
 * record is not a JSON object (or out of memory). */
char *queue_dmarc_line(const char *record, size_t len, const char *id, int64_t when,
		       const char *action)
{
	cJSON *obj = cJSON_ParseWithLength(record, len);
	char *line = NULL;
	static const char *const ours[] = {"id", "time", "action"};
	size_t i;

	if (!cJSON_IsObject(obj))
		goto out;
	for (i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		cJSON_DeleteItemFromObjectCaseSensitive(obj, ours[i]);
	if (cJSON_AddStringToObject(obj, "id", id) != NULL &&
	    cJSON_AddNumberToObject(obj, "time", (double)when) != NULL &&
	    cJSON_AddStringToObject(obj, "action", action) != NULL)
		line = cJSON_PrintUnformatted(obj);
out:
	cJSON_Delete(obj);
	return line;
}

/* queue_dmarc_append - append line (and a newline) to today's record file. */
void queue_dmarc_append(struct queue *q, const char *line)
{
	char name[32];
	struct tm tm;
	time_t now = time(NULL);
	size_t len = strlen(line);
	char *buf;
	int dir, fd, err = 0;

	gmtime_r(&now, &tm);
	strftime(name, sizeof(name), "%Y-%m-%d.jsonl", &tm);
	if ((dir = queue_subdir(q->spool_fd, SPOOL_DMARC)) < 0) {
		log_warn("dmarc: cannot open %s/: %s", SPOOL_DMARC, strerror(errno));
		return;
	}
	fd = openat(dir, name, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	err = fd < 0 ? errno : 0;
	close(dir);
	if (fd < 0) {
		log_warn("dmarc: cannot open %s/%s: %s", SPOOL_DMARC, name, strerror(err));
		return;
	}
	/* one write: O_APPEND keeps the line whole */
	if ((buf = malloc(len + 1)) == NULL) {
		err = ENOMEM;
	} else {
		memcpy(buf, line, len);
		buf[len] = '\n';
		if (write(fd, buf, len + 1) != (ssize_t)(len + 1))
			err = errno ? errno : EIO;
		free(buf);
	}
	if (close(fd) < 0 && err == 0)
		err = errno;
	if (err != 0)
		log_warn("dmarc: cannot write %s/%s: %s", SPOOL_DMARC, name, strerror(err));
}

/* queue_serve_dmarc - IPC_DMARC_RECORD: the record of a message refused at preq. */
void queue_serve_dmarc(struct queue_client *c, struct ipc_msg *m, int passfd)
{
	char buf[IPC_JSON_MAX], *line;
	ssize_t n;

	if (passfd < 0 || !spool_id_valid(m->id) ||
	    (n = pread(passfd, buf, sizeof(buf), 0)) <= 0 || (size_t)n >= sizeof(buf)) {
		log_warn("dmarc: a session sent a record that cannot be read");
		return;
	}
	if ((line = queue_dmarc_line(buf, (size_t)n, m->id, time(NULL), "rejected")) == NULL) {
		log_warn("%s: dmarc: the session's record is not a JSON object", m->id);
		return;
	}
	queue_dmarc_append(c->q, line);
	free(line);
}
