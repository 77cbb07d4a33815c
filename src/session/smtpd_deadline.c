/*
 * smtpd_deadline.c - the deadlines of an SMTP session, besides its idle
 * timers.
 *
 * The idle timers ([timeouts] command and data, on the bufferevent) are
 * reset by every byte, so a client sending one byte every few seconds is
 * never cut by them. Three deadlines bound what such a client can hold:
 *
 * - command_deadline: the whole next command line (or AUTH response) must
 *   be in within this time of the session being ready for it: the greeting,
 *   the previous reply, the end of a queue request or an error delay. It
 *   does not run while the session waits on the queue, during an error
 *   delay, a TLS handshake, or message content.
 * - data_min_rate and data_rate_grace: a message transfer (DATA content, or
 *   the chunks of a BDAT message from the first BDAT to the last) must end
 *   within grace + bytes / rate of its start, bytes being what it has sent
 *   so far: past the grace, the client keeps an average of at least
 *   data_min_rate bytes per second. A refused BDAT chunk is a transfer of
 *   its own.
 * - session: the whole connection. A cap that strikes while the queue is
 *   creating or committing a message waits for the answer (a committed
 *   message is acknowledged first); anywhere else it cuts at once, and a
 *   message being received is then not acknowledged: the queue drops its
 *   file and the client still has it.
 *
 * Each is one event timer, armed per command line, per transfer and once per
 * session, never per read: the rate timer wakes at the time the transfer
 * would be due if nothing more came, moves itself to the new due time when
 * more has come, and cuts when nothing has moved it. A deadline cuts with
 * 421 4.4.2 and a log line naming its key; a command deadline that finds
 * nothing of a line received after at least [timeouts] command is plain
 * idleness, answered as the idle timer answers it.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "smtpd_internal.h"

static void smtpd_deadline_command_cb(evutil_socket_t fd, short what, void *arg);
static void smtpd_deadline_data_cb(evutil_socket_t fd, short what, void *arg);
static void smtpd_deadline_session_cb(evutil_socket_t fd, short what, void *arg);

/* smtpd_deadline_arm - run ev in ms milliseconds. */
static void smtpd_deadline_arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(ev, &tv);
}

/* smtpd_deadline_init - the session's deadline timers; the session cap starts. */
int smtpd_deadline_init(struct smtp_session *s)
{
	struct smtpd_deadlines *dl = &s->dl;

	if ((dl->command_ev = evtimer_new(s->base, smtpd_deadline_command_cb, s)) == NULL ||
	    (dl->data_ev = evtimer_new(s->base, smtpd_deadline_data_cb, s)) == NULL ||
	    (dl->session_ev = evtimer_new(s->base, smtpd_deadline_session_cb, s)) == NULL)
		return -1;
	if (s->cfg->timeout_session > 0)
		smtpd_deadline_arm(dl->session_ev, (uint64_t)s->cfg->timeout_session * 1000);
	return 0;
}

/* smtpd_deadline_id - the queue id of the transaction, for log lines. */
static const char *smtpd_deadline_id(const struct smtp_session *s)
{
	return s->tx != NULL && s->tx->env.id[0] ? s->tx->env.id : "NOQUEUE";
}

/* smtpd_deadline_cut - 421 4.4.2 and close, as a deadline does. */
static void smtpd_deadline_cut(struct smtp_session *s, const char *result, const char *text)
{
	if (s->wait == SMTPD_WAIT_DELAY) {
		/* The reply held back goes out before ours. */
		evtimer_del(s->delay_ev);
		s->wait = SMTPD_WAIT_NONE;
	}
	smtpd_reply(s, "421 4.4.2 %s Error: %s", s->cfg->hostname, text);
	smtpd_close(s, result);
}

/* smtpd_deadline_update - after input processing: run the command deadline
 * while the session waits for a command line, stop it otherwise. */
void smtpd_deadline_update(struct smtp_session *s)
{
	struct smtpd_deadlines *dl = &s->dl;

	if (s->closing)
		return;
	if (s->wait != SMTPD_WAIT_NONE || s->tls_pending || s->tls_handshaking ||
	    s->state == SMTPD_STATE_DATA || s->state == SMTPD_STATE_BDAT) {
		evtimer_del(dl->command_ev);
		return;
	}
	if (dl->line_taken || !evtimer_pending(dl->command_ev, NULL)) {
		dl->line_taken = 0;
		smtpd_deadline_arm(dl->command_ev,
				   (uint64_t)s->cfg->timeout_command_deadline * 1000);
	}
}

/* smtpd_deadline_command_cb - no whole command line within command_deadline. */
static void smtpd_deadline_command_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	size_t partial = evbuffer_get_length(bufferevent_get_input(s->bev));
	char text[128];

	if (s->closing)
		return;
	if (partial == 0 && !s->discarding &&
	    s->cfg->timeout_command <= s->cfg->timeout_command_deadline) {
		smtpd_idle_timeout(s);
		return;
	}
	log_notice("%s: %s[%s]: cut by [timeouts] command_deadline: no whole command line "
		   "within %us (%zu bytes of one received%s)",
		   smtpd_deadline_id(s), s->helo[0] ? s->helo : "unknown", s->client_ip,
		   s->cfg->timeout_command_deadline, partial,
		   s->discarding ? ", after an overlong part" : "");
	snprintf(text, sizeof(text), "command not received in full within %u seconds",
		 s->cfg->timeout_command_deadline);
	smtpd_deadline_cut(s, "command deadline exceeded", text);
}

/* smtpd_deadline_elapsed_ms - milliseconds since the transfer started. */
static uint64_t smtpd_deadline_elapsed_ms(const struct smtpd_deadlines *dl)
{
	struct timespec now;
	int64_t ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(now.tv_sec - dl->transfer_start.tv_sec) * 1000 +
	     (now.tv_nsec - dl->transfer_start.tv_nsec) / 1000000;
	return ms > 0 ? (uint64_t)ms : 0;
}

/* smtpd_deadline_due_ms - when the transfer is due, from its start: the grace
 * and a second for every data_min_rate bytes it has sent (saturating). */
static uint64_t smtpd_deadline_due_ms(const struct smtp_session *s)
{
	uint64_t rate = s->cfg->timeout_data_min_rate, bytes = s->dl.transfer_bytes;
	uint64_t grace = (uint64_t)s->cfg->timeout_data_grace * 1000, credit;

	if (bytes / rate > UINT64_MAX / 2000)
		return UINT64_MAX;
	credit = bytes / rate * 1000 + bytes % rate * 1000 / rate;
	return grace + credit;
}

/* smtpd_deadline_data_cb - the transfer's due time: moved by what came, or the cut. */
static void smtpd_deadline_data_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct smtpd_deadlines *dl = &s->dl;
	uint64_t elapsed = smtpd_deadline_elapsed_ms(dl), due = smtpd_deadline_due_ms(s);
	char text[128];

	if (s->closing || !dl->transfer)
		return;
	if (due > elapsed) {
		smtpd_deadline_arm(dl->data_ev, due - elapsed);
		return;
	}
	log_notice("%s: %s[%s]: cut by [timeouts] data_min_rate: %" PRIu64 " bytes of message "
		   "data in %" PRIu64 ".%03us, under %zu bytes/s past the %us grace; not queued",
		   smtpd_deadline_id(s), s->helo[0] ? s->helo : "unknown", s->client_ip,
		   dl->transfer_bytes, elapsed / 1000, (unsigned)(elapsed % 1000),
		   s->cfg->timeout_data_min_rate, s->cfg->timeout_data_grace);
	snprintf(text, sizeof(text), "message data too slow (under %zu bytes per second)",
		 s->cfg->timeout_data_min_rate);
	smtpd_deadline_cut(s, "data too slow", text);
}

/* smtpd_deadline_transfer_start - DATA or BDAT: the rate clock starts (once a message). */
void smtpd_deadline_transfer_start(struct smtp_session *s)
{
	struct smtpd_deadlines *dl = &s->dl;

	if (dl->transfer || s->cfg->timeout_data_min_rate == 0)
		return;
	dl->transfer = 1;
	dl->transfer_bytes = 0;
	clock_gettime(CLOCK_MONOTONIC, &dl->transfer_start);
	smtpd_deadline_arm(dl->data_ev, (uint64_t)s->cfg->timeout_data_grace * 1000);
}

/* smtpd_deadline_transfer_end - the content is complete or abandoned. */
void smtpd_deadline_transfer_end(struct smtp_session *s)
{
	if (!s->dl.transfer)
		return;
	s->dl.transfer = 0;
	evtimer_del(s->dl.data_ev);
}

/* smtpd_deadline_session_cut - the session cap: 421 and close. */
static void smtpd_deadline_session_cut(struct smtp_session *s)
{
	char text[128];
	int receiving = s->state == SMTPD_STATE_DATA || s->state == SMTPD_STATE_BDAT ||
			(s->tx != NULL && s->tx->chunking);

	log_notice("%s: %s[%s]: cut by [timeouts] session: connected for more than %us%s",
		   smtpd_deadline_id(s), s->helo[0] ? s->helo : "unknown", s->client_ip,
		   s->cfg->timeout_session,
		   receiving ? "; the message being received is not acknowledged, nor queued" : "");
	snprintf(text, sizeof(text), "session time limit of %u seconds exceeded",
		 s->cfg->timeout_session);
	smtpd_deadline_cut(s, "session time limit exceeded", text);
}

/* smtpd_deadline_session_cb - the session has lasted [timeouts] session. */
static void smtpd_deadline_session_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (s->closing || s->finished)
		return;
	if (s->tls_handshaking) {
		/* Nothing can be said in the clear, nor yet in TLS. */
		log_notice("%s: %s[%s]: cut by [timeouts] session during the TLS handshake",
			   smtpd_deadline_id(s), s->helo[0] ? s->helo : "unknown", s->client_ip);
		s->result = "session time limit exceeded";
		smtpd_finish(s);
		return;
	}
	if (s->wait == SMTPD_WAIT_CREATE || s->wait == SMTPD_WAIT_COMMIT) {
		/* Its answer first: a committed message must be acknowledged. */
		s->dl.session_over = 1;
		return;
	}
	smtpd_deadline_session_cut(s);
}

/* smtpd_deadline_session_due - cut a session whose cap struck during a queue
 * request, once it is answered; 1 when the session is cut. */
int smtpd_deadline_session_due(struct smtp_session *s)
{
	if (!s->dl.session_over || s->closing || s->wait != SMTPD_WAIT_NONE)
		return 0;
	s->dl.session_over = 0;
	smtpd_deadline_session_cut(s);
	return 1;
}
