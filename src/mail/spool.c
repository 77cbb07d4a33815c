/*
 * spool.c - spool layout, message ids and the committed file format.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "spool.h"

/* spool_id_next - make a new, strictly increasing id. */
void spool_id_next(uint64_t *last, char id[SPOOL_ID_LEN + 1])
{
	struct timeval tv;
	uint64_t now;

	gettimeofday(&tv, NULL);
	now = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	if (now <= *last)
		now = *last + 1;
	*last = now;
	snprintf(id, SPOOL_ID_LEN + 1, "%016" PRIX64, now);
}

/* spool_id_valid - check the shape of an id. */
int spool_id_valid(const char *id)
{
	size_t i;

	for (i = 0; i < SPOOL_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
			return 0;
	return id[SPOOL_ID_LEN] == '\0';
}

/* spool_id_value - decode an id. */
uint64_t spool_id_value(const char *id)
{
	return spool_id_valid(id) ? strtoull(id, NULL, 16) : 0;
}

/* spool_trailer_format - write the trailer for the given lengths. */
void spool_trailer_format(char buf[SPOOL_TRAILER_LEN], uint64_t content_len, uint32_t env_len)
{
	char tmp[SPOOL_TRAILER_LEN + 1];

	snprintf(tmp, sizeof(tmp), "\n%s %016" PRIx64 " %08" PRIx32 "\n", SPOOL_TRAILER_MAGIC,
		 content_len, env_len);
	memcpy(buf, tmp, SPOOL_TRAILER_LEN);
}

/* spool_trailer_parse - the lengths a trailer gives; -1 when it is not one. */
static int spool_trailer_parse(const char buf[SPOOL_TRAILER_LEN], uint64_t *content_len,
			       uint32_t *env_len)
{
	char expect[SPOOL_TRAILER_LEN];
	char tmp[SPOOL_TRAILER_LEN + 1];
	uint64_t clen;
	uint32_t elen;

	memcpy(tmp, buf, SPOOL_TRAILER_LEN);
	tmp[SPOOL_TRAILER_LEN] = '\0';
	if (sscanf(tmp, "\n" SPOOL_TRAILER_MAGIC " %16" SCNx64 " %8" SCNx32, &clen, &elen) != 2)
		return -1;
	/* Accept only the exact form we write, so a torn trailer never parses. */
	spool_trailer_format(expect, clen, elen);
	if (memcmp(expect, buf, SPOOL_TRAILER_LEN) != 0)
		return -1;
	*content_len = clen;
	*env_len = elen;
	return 0;
}

/* spool_mkdir - create one directory with the spool's owner and mode. */
static int spool_mkdir(const char *path, int uid, int gid)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	if ((uid != -1 || gid != -1) && chown(path, (uid_t)uid, (gid_t)gid) < 0)
		return -1;
	return chmod(path, 0700);
}

/* spool_folder_name_ok - a safe folder name from the rules. */
int spool_folder_name_ok(const char *name)
{
	size_t i, len = strlen(name);

	if (len == 0 || len > SPOOL_FOLDER_NAME_MAX || name[0] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '.' || name[i] == '_' ||
		      name[i] == '-'))
			return 0;
	return 1;
}

/* spool_prepare_dir - create one owned directory. */
int spool_prepare_dir(const char *dir, int uid, int gid)
{
	return spool_mkdir(dir, uid, gid);
}

/* spool_prepare - create the spool tree. */
int spool_prepare(const char *dir, int uid, int gid)
{
	static const char *const subdirs[] = {SPOOL_INCOMING, SPOOL_QUEUE, SPOOL_CORRUPT,
						SPOOL_STATE,    SPOOL_HOLD,  SPOOL_DEAD};
	char path[4096];
	size_t i;

	if (spool_mkdir(dir, uid, gid) < 0)
		return -1;
	for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]) >= sizeof(path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (spool_mkdir(path, uid, gid) < 0)
			return -1;
	}
	return 0;
}

/* spool_message_read - verify a committed file and parse its envelope. */
int spool_message_read(int fd, struct envelope *env, uint64_t *content_len)
{
	char trailer[SPOOL_TRAILER_LEN];
	struct stat st;
	uint64_t clen;
	uint32_t elen;
	char *text;
	int rc;

	if (fstat(fd, &st) < 0)
		return -1;
	if (st.st_size < SPOOL_TRAILER_LEN ||
	    pread(fd, trailer, sizeof(trailer), st.st_size - SPOOL_TRAILER_LEN) !=
		    (ssize_t)sizeof(trailer) ||
	    spool_trailer_parse(trailer, &clen, &elen) < 0 || elen > SPOOL_ENVELOPE_MAX ||
	    clen + elen + SPOOL_TRAILER_LEN != (uint64_t)st.st_size) {
		errno = EINVAL;
		return -1;
	}
	if ((text = malloc(elen)) == NULL)
		return -1;
	if (pread(fd, text, elen, (off_t)clen) != (ssize_t)elen) {
		free(text);
		errno = EINVAL;
		return -1;
	}
	rc = envelope_from_json(env, text, elen);
	free(text);
	if (rc < 0) {
		envelope_clear(env);
		errno = EINVAL;
		return -1;
	}
	*content_len = clen;
	return 0;
}
