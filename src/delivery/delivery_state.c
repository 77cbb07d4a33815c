/*
 * delivery_state.c - a message's delivery state, in the delivery worker.
 *
 * An attempt maps the message file the queue opened for it and reads its
 * envelope, then the state file that came with it: the counters and each
 * recipient's status, reply and success notice, matched to the envelope's
 * recipients by position. After the attempt the state goes back to the
 * queue as JSON text in a memfd; the worker never writes the spool. The
 * members the queue keeps there itself (how often a worker died on the
 * message) are carried over unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "delivery_internal.h"
#include "io.h"
#include "log.h"
#include "spool.h"

#define DLV_STATE_REPLY_MAX 400 /* bytes of a reply kept in the state */

const char *const dlv_status_names[] = {"pending", "deferred", "sent", "failed", "none"};

/* The state's members the queue writes (queue_suspect.c): carried over as they are. */
static const char *const kept_names[] = {"worker_failures", "worker_failure"};

/* A success notice's state, as in the state file, by enum dlv_notice. */
static const char *const notice_names[] = {"", "delivered", "relayed", "sent"};

/* dlv_status_parse - a status name from the state file. */
static enum dlv_status dlv_status_parse(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(dlv_status_names) / sizeof(dlv_status_names[0]); i++)
		if (strcmp(name, dlv_status_names[i]) == 0)
			return (enum dlv_status)i;
	return RCPT_PENDING;
}

/* dlv_json_int - a number member, def when absent. */
int64_t dlv_json_int(const cJSON *obj, const char *key, int64_t def)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(n) ? (int64_t)n->valuedouble : def;
}

/* dlv_json_copy - a string member into buf. */
static void dlv_json_copy(const cJSON *obj, const char *key, char *buf, size_t len)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));

	snprintf(buf, len, "%s", s ? s : "");
}

/* dlv_notice_parse - a success notice's state from the state file ("": none). */
static enum dlv_notice dlv_notice_parse(const char *name)
{
	size_t i;

	for (i = 1; name != NULL && i < sizeof(notice_names) / sizeof(notice_names[0]); i++)
		if (strcmp(name, notice_names[i]) == 0)
			return (enum dlv_notice)i;
	return NOTICE_NONE;
}

/* dlv_state_keep - set aside the members of state the queue owns. */
static void dlv_state_keep(struct dlv_attempt *a, const cJSON *state)
{
	const cJSON *item;
	size_t i;

	for (i = 0; i < sizeof(kept_names) / sizeof(kept_names[0]); i++) {
		if ((item = cJSON_GetObjectItemCaseSensitive(state, kept_names[i])) == NULL)
			continue;
		if (a->kept == NULL && (a->kept = cJSON_CreateObject()) == NULL)
			return;
		cJSON_AddItemToObject(a->kept, kept_names[i], cJSON_Duplicate(item, 1));
	}
}

/* dlv_state_load - the recipients' statuses and the counters from a state file. */
static void dlv_state_load(struct dlv_attempt *a, int fd)
{
	struct stat st;
	const cJSON *rcpts, *r;
	cJSON *state = NULL;
	char *text;
	size_t i = 0;

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (4 << 20) ||
	    (text = malloc((size_t)st.st_size)) == NULL)
		return;
	if (pread(fd, text, (size_t)st.st_size, 0) == st.st_size)
		state = cJSON_ParseWithLength(text, (size_t)st.st_size);
	free(text);
	if (!cJSON_IsObject(state)) {
		log_warn("%s: delivery state unreadable: every recipient is tried", a->m->id);
		cJSON_Delete(state);
		return;
	}
	a->attempts = (int)dlv_json_int(state, "attempts", 0);
	a->first_attempt = dlv_json_int(state, "first_attempt", 0);
	a->postq = dlv_json_int(state, "postq", 0) != 0;
	a->released = dlv_json_int(state, "released", 0) != 0;
	a->warned = dlv_json_int(state, "warned", 0) != 0;
	a->faccept = dlv_json_int(state, "faccept", 0) != 0;
	dlv_state_keep(a, state);
	rcpts = cJSON_GetObjectItemCaseSensitive(state, "rcpts");
	cJSON_ArrayForEach(r, rcpts)
	{
		const char *addr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "address"));
		struct dlv_rcpt *dr;

		if (i >= a->env.nrcpts)
			break;
		/* Statuses belong to recipients by position; a state that does
		 * not match the envelope is ignored from there on. */
		if (addr == NULL || strcmp(addr, a->env.rcpts[i].address) != 0)
			break;
		dr = &a->rcpts[i++];
		dr->status = dlv_status_parse(
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "status")));
		dlv_json_copy(r, "reply", dr->reply, sizeof(dr->reply));
		dlv_json_copy(r, "remote", dr->remote, sizeof(dr->remote));
		dlv_json_copy(r, "enhanced", dr->enhanced, sizeof(dr->enhanced));
		dr->at = dlv_json_int(r, "at", 0);
		dr->remote_said = dlv_json_int(r, "remote_said", 0) != 0;
		if (dr->status == RCPT_SENT)
			dr->notice = dlv_notice_parse(cJSON_GetStringValue(
			    cJSON_GetObjectItemCaseSensitive(r, "success_notice")));
	}
	cJSON_Delete(state);
}

/* dlv_state_text - the state of an attempt as JSON text (malloc'ed). */
static char *dlv_state_text(const struct dlv_attempt *a, int64_t next)
{
	cJSON *s = cJSON_CreateObject(), *rcpts, *r;
	char *text = NULL;
	size_t i;

	if (s == NULL || cJSON_AddNumberToObject(s, "attempts", a->attempts) == NULL ||
	    cJSON_AddNumberToObject(s, "first_attempt", (double)a->first_attempt) == NULL ||
	    cJSON_AddNumberToObject(s, "last_attempt", (double)a->started) == NULL ||
	    cJSON_AddNumberToObject(s, "next_attempt", (double)next) == NULL ||
	    (a->postq && cJSON_AddNumberToObject(s, "postq", 1) == NULL) ||
	    (a->released && cJSON_AddNumberToObject(s, "released", 1) == NULL) ||
	    (a->warned && cJSON_AddNumberToObject(s, "warned", 1) == NULL) ||
	    (a->faccept && cJSON_AddNumberToObject(s, "faccept", 1) == NULL) ||
	    (rcpts = cJSON_AddArrayToObject(s, "rcpts")) == NULL)
		goto out;
	for (r = a->kept ? a->kept->child : NULL; r != NULL; r = r->next)
		cJSON_AddItemToObject(s, r->string, cJSON_Duplicate(r, 1));
	/* waiting for a delegate rule's filter to send it back */
	if (a->delegate_sent_at != 0 &&
	    ((r = cJSON_AddObjectToObject(s, "delegated")) == NULL ||
	     cJSON_AddStringToObject(r, "service", a->delegate_svc->name) == NULL ||
	     cJSON_AddStringToObject(r, "stage", rules_stage_name(a->delegate_stage)) == NULL ||
	     cJSON_AddNumberToObject(r, "rule", a->delegate_rule) == NULL ||
	     cJSON_AddNumberToObject(r, "sent_at", (double)a->delegate_sent_at) == NULL))
		goto out;
	for (i = 0; i < a->env.nrcpts; i++) {
		const struct dlv_rcpt *dr = &a->rcpts[i];
		char reply[DLV_STATE_REPLY_MAX];

		snprintf(reply, sizeof(reply), "%.399s", dr->reply);
		if ((r = cJSON_CreateObject()) == NULL)
			goto out;
		cJSON_AddItemToArray(rcpts, r);
		if (cJSON_AddStringToObject(r, "address", a->env.rcpts[i].address) == NULL ||
		    cJSON_AddStringToObject(r, "status", dlv_status_names[dr->status]) == NULL ||
		    (dr->reply[0] && cJSON_AddStringToObject(r, "reply", reply) == NULL) ||
		    (dr->enhanced[0] && cJSON_AddStringToObject(r, "enhanced", dr->enhanced) == NULL) ||
		    (dr->remote[0] && cJSON_AddStringToObject(r, "remote", dr->remote) == NULL) ||
		    (dr->remote_said && cJSON_AddNumberToObject(r, "remote_said", 1) == NULL) ||
		    (dr->at && cJSON_AddNumberToObject(r, "at", (double)dr->at) == NULL) ||
		    (dr->notice != NOTICE_NONE &&
		     cJSON_AddStringToObject(r, "success_notice", notice_names[dr->notice]) == NULL))
			goto out;
	}
	text = cJSON_PrintUnformatted(s);
out:
	cJSON_Delete(s);
	return text;
}

/* dlv_state_save - hand the state to the queue (through a memfd). */
void dlv_state_save(struct dlv_attempt *a, int64_t next)
{
	char *text = dlv_state_text(a, next);
	size_t len;
	int fd, err;

	if (text == NULL) {
		log_err("%s: out of memory saving its delivery state", a->m->id);
		return;
	}
	len = strlen(text);
	if ((fd = memfd_create("vsmtpd-state", MFD_CLOEXEC)) < 0) {
		log_err("%s: cannot save its delivery state: %s", a->m->id, strerror(errno));
		free(text);
		return;
	}
	if ((err = io_write_all(fd, text, len, -1, NULL)) == 0)
		dlv_send(a->m->w, "state", a->m->id, NULL, NULL, NULL, NULL, fd);
	else
		log_err("%s: cannot save its delivery state: %s", a->m->id, strerror(err));
	close(fd);
	free(text);
}

/* dlv_attempt_load - map the file, read its envelope and state. 0 or -1. */
int dlv_attempt_load(struct dlv_attempt *a, int fd, int state_fd)
{
	uint64_t clen;
	struct stat st;

	if (fstat(fd, &st) < 0 || spool_message_read(fd, &a->env, &clen) < 0) {
		log_err("%s: cannot read the message file: %s", a->m->id, strerror(errno));
		return -1;
	}
	a->map_len = (size_t)st.st_size;
	a->map = mmap(NULL, a->map_len ? a->map_len : 1, PROT_READ, MAP_PRIVATE, fd, 0);
	if (a->map == MAP_FAILED) {
		a->map = NULL;
		log_err("%s: cannot map the message file: %s", a->m->id, strerror(errno));
		return -1;
	}
	a->content = a->map;
	a->content_len = (size_t)clen;
	if ((a->rcpts = calloc(a->env.nrcpts, sizeof(*a->rcpts))) == NULL)
		return -1;
	a->nrcpts = a->env.nrcpts;
	dlv_state_load(a, state_fd);
	return 0;
}

/* dlv_attempt_free - release what an attempt holds. */
void dlv_attempt_free(struct dlv_attempt *a)
{
	if (a->map != NULL)
		munmap(a->map, a->map_len);
	envelope_clear(&a->env);
	free(a->edited);
	free(a->rcpts);
	free(a->jobs);
	free(a->crcpts);
	free(a->index);
	free(a->results);
	cJSON_Delete(a->kept);
	free(a);
}
