/*
 * queue_rules.c - the rules' requests the queue serves for sessions, which
 * can open no file: whether an account exists (user_exist()), saving a
 * copy of the message or a dump under app_dir (write(), dump()), and
 * opening a file of the rules folder for send_mail(), never one outside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "ipc.h"
#include "log.h"
#include "send_mail.h"
#include "spool.h"
#include "queue_internal.h"

/* queue_rule_user - IPC_RULE_USER: user_exist() from a rule. */
static void queue_rule_user(struct queue_client *c, const struct ipc_msg *req)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int err;

	err = getpwnam_r(req->text, &pw, buf, sizeof(buf), &found);
	if (err == 0 && found == NULL)
		err = ENOENT;
	queue_reply(c, IPC_RULE_DONE, err, req->id, -1);
}

/* queue_rule_copy - copy all of in to out. 0 or an errno value. */
static int queue_rule_copy(int in, int out, uint64_t limit)
{
	char buf[65536];
	uint64_t total = 0;
	off_t off = 0;
	ssize_t n;
	int err;

	while ((n = pread(in, buf, sizeof(buf), off)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if ((total += (uint64_t)n) > limit)
			return EFBIG;
		off += n;
		if ((err = io_write_all(out, buf, (size_t)n, -1, NULL)) != 0)
			return err;
	}
	return 0;
}

/* queue_rule_save - IPC_RULE_SAVE: write() and dump() from a rule, into
 * app_dir/<folder>/<id>.eml or .json, whole or not at all. */
static int queue_rule_save(struct queue *q, const struct ipc_msg *req, int fd)
{
	char name[SPOOL_ID_LEN + 8], tmp[SPOOL_ID_LEN + 16];
	int app, dir, out, err = 0;
	size_t i;

	if (fd < 0 || !spool_folder_name_ok(req->text) || strlen(req->id) != SPOOL_ID_LEN)
		return EINVAL;
	for (i = 0; i < SPOOL_ID_LEN; i++)
		if (!((req->id[i] >= '0' && req->id[i] <= '9') || (req->id[i] >= 'A' && req->id[i] <= 'F')))
			return EINVAL;
	snprintf(name, sizeof(name), "%s.%s", req->id, req->a ? "json" : "eml");
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	if ((app = open(q->cfg->app_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return errno;
	dir = queue_subdir(app, req->text);
	err = dir < 0 ? errno : 0;
	close(app);
	if (err != 0)
		return err;
	if ((out = openat(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) <
	    0) {
		err = errno;
		close(dir);
		return err;
	}
	err = queue_rule_copy(fd, out, 2 * q->max_message_size + SPOOL_ENVELOPE_MAX);
	if (close(out) < 0 && err == 0)
		err = errno;
	if (err == 0 && renameat(dir, tmp, dir, name) < 0)
		err = errno;
	if (err != 0)
		unlinkat(dir, tmp, 0);
	close(dir);
	return err;
}

/*
 * queue_rule_file - IPC_RULE_FILE: open a file of the rules folder for
 * send_mail() in a session or the delivery worker, which may not open
 * files themselves; *out gets the descriptor. 0 or an errno value.
 */
static int queue_rule_file(struct queue *q, int pathfd, int *out)
{
	char path[SEND_MAIL_PATH_MAX + 1];
	ssize_t n;
	int err = 0;

	*out = -1;
	if (pathfd < 0 || (n = pread(pathfd, path, sizeof(path), 0)) <= 0 ||
	    (size_t)n > SEND_MAIL_PATH_MAX)
		return EINVAL;
	path[n] = '\0';
	if (strlen(path) != (size_t)n)
		return EINVAL;
	if ((*out = send_mail_open_rules(q->cfg->rules_file, path, q->max_message_size)) < 0) {
		err = errno;
		log_warn("rules: send_mail: %s (rules folder of %s): %s", path, q->cfg->rules_file,
			 strerror(err));
	}
	return err;
}

/* queue_serve_user - IPC_RULE_USER: does an account exist? */
void queue_serve_user(struct queue_client *c, struct ipc_msg *m, int passfd)
{
	queue_rule_user(c, m);
}

/* queue_serve_save - IPC_RULE_SAVE: write() or dump() from a rule. */
void queue_serve_save(struct queue_client *c, struct ipc_msg *m, int passfd)
{
	int err = queue_rule_save(c->q, m, passfd);

	if (err != 0)
		log_warn("rules: cannot save %s/%s: %s", m->text, m->id, strerror(err));
	queue_reply(c, IPC_RULE_DONE, err, m->id, -1);
}

/* queue_serve_file - IPC_RULE_FILE: a file of the rules folder, opened. */
void queue_serve_file(struct queue_client *c, struct ipc_msg *m, int passfd)
{
	int file = -1, err = queue_rule_file(c->q, passfd, &file);

	queue_reply(c, IPC_RULE_DONE, err, m->id, file);
	if (file != -1)
		close(file);
}
