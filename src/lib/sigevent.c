/*
 * sigevent.c - signalfd-backed signal events for child processes.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sigevent.h"

struct sigevent_handler {
	sigevent_cb cb;
	void *arg;
};

/* sigevent_read_cb - drain the signalfd and report each signal. */
static void sigevent_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sigevent_handler *se = arg;
	struct signalfd_siginfo si;

	while (read((int)fd, &si, sizeof(si)) == sizeof(si))
		se->cb((int)si.ssi_signo, se->arg);
}

/* sigevent_new - route sigs to cb through base. */
struct event *sigevent_new(struct event_base *base, const int *sigs, size_t nsigs, sigevent_cb cb,
			   void *arg)
{
	struct sigevent_handler *se;
	struct event *ev;
	sigset_t set;
	size_t i;
	int fd;

	sigemptyset(&set);
	for (i = 0; i < nsigs; i++)
		sigaddset(&set, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return NULL;
	if ((fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return NULL;
	if ((se = malloc(sizeof(*se))) == NULL) {
		close(fd);
		return NULL;
	}
	se->cb = cb;
	se->arg = arg;
	ev = event_new(base, fd, EV_READ | EV_PERSIST, sigevent_read_cb, se);
	if (ev == NULL || event_add(ev, NULL) < 0) {
		if (ev != NULL)
			event_free(ev);
		free(se);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	return ev;
}
