/*
 * delegation.c - the delegation key and the tokens made with it.
 *
 * The key lives in the spool, beside the mail it protects, so that a
 * filter that sends a message back after vsmtpd restarted is still
 * believed; it is made once, from getrandom(), written to a temporary
 * file, synced and linked into place, so two masters starting at once
 * agree on one key. Tokens are short printable text (see delegation.h)
 * that any filter keeps in a header field as it is; the parser takes
 * nothing on trust: fixed widths, digits only, the MAC compared in
 * constant time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "delegation.h"
#include "io.h"

#define DELEGATION_MAC_HEX 32

static unsigned char delegation_key[DELEGATION_KEY_LEN];
static int delegation_have_key;

/* delegation_key_set - use key from now on. */
void delegation_key_set(const unsigned char key[DELEGATION_KEY_LEN])
{
	memcpy(delegation_key, key, DELEGATION_KEY_LEN);
	delegation_have_key = 1;
}

/* delegation_key_forget - no key in this process from now on. */
void delegation_key_forget(void)
{
	OPENSSL_cleanse(delegation_key, sizeof(delegation_key));
	delegation_have_key = 0;
}

/* delegation_key_ready - whether a key is there. */
int delegation_key_ready(void)
{
	return delegation_have_key;
}

/* delegation_key_read - read exactly the key from fd; 0 or -1. */
static int delegation_key_read(int fd, unsigned char key[DELEGATION_KEY_LEN])
{
	struct stat st;
	size_t off = 0;
	ssize_t n;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != DELEGATION_KEY_LEN)
		return -1;
	while (off < DELEGATION_KEY_LEN) {
		n = pread(fd, key + off, DELEGATION_KEY_LEN - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* delegation_key_create - a new key into dir/delegation.key (linked, never over one). */
static int delegation_key_create(int dir, char *err, size_t errlen)
{
	unsigned char key[DELEGATION_KEY_LEN];
	char tmp[64];
	int fd, rc = -1;

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		snprintf(err, errlen, "cannot make a delegation key: %s", strerror(errno));
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.%ld", DELEGATION_KEY_FILE, (long)getpid());
	unlinkat(dir, tmp, 0);
	if ((fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (io_write_all(fd, key, sizeof(key), 0, NULL) != 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
	} else if (linkat(dir, tmp, dir, DELEGATION_KEY_FILE, 0) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot make %s: %s", DELEGATION_KEY_FILE, strerror(errno));
	} else if (fsync(dir) < 0) {
		snprintf(err, errlen, "cannot sync the spool: %s", strerror(errno));
	} else {
		rc = 0;
	}
	close(fd);
	unlinkat(dir, tmp, 0);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* delegation_key_load - the spool's key, made on first use. */
int delegation_key_load(const char *spool_dir, char *err, size_t errlen)
{
	unsigned char key[DELEGATION_KEY_LEN];
	int dir, fd, rc = -1;

	if ((dir = open(spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot open %s: %s", spool_dir, strerror(errno));
		return -1;
	}
	fd = openat(dir, DELEGATION_KEY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		if (delegation_key_create(dir, err, errlen) < 0) {
			close(dir);
			return -1;
		}
		fd = openat(dir, DELEGATION_KEY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		snprintf(err, errlen, "cannot open %s/%s: %s", spool_dir, DELEGATION_KEY_FILE,
		         strerror(errno));
	else if (delegation_key_read(fd, key) < 0)
		snprintf(err, errlen, "%s/%s: not a key of %d bytes (remove it: a new one is made)",
		         spool_dir, DELEGATION_KEY_FILE, DELEGATION_KEY_LEN);
	else
		rc = 0;
	if (rc == 0)
		delegation_key_set(key);
	OPENSSL_cleanse(key, sizeof(key));
	if (fd >= 0)
		close(fd);
	close(dir);
	return rc;
}

/* delegation_mac - the hex MAC of the token's signed part "1.<id>.<stage><rule>". */
static int delegation_mac(const char *signed_part, size_t len, char hex[DELEGATION_MAC_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i;

	if (HMAC(EVP_sha256(), delegation_key, DELEGATION_KEY_LEN,
	         (const unsigned char *)signed_part, len, md, &mdlen) == NULL ||
	    mdlen < DELEGATION_MAC_HEX / 2)
		return -1;
	for (i = 0; i < DELEGATION_MAC_HEX / 2; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[DELEGATION_MAC_HEX] = '\0';
	return 0;
}

/* delegation_token_make - "1.<id>.<stage><rule>.<mac>". */
int delegation_token_make(const struct delegation_token *t, char *buf, size_t len)
{
	char part[DELEGATION_TOKEN_MAX], mac[DELEGATION_MAC_HEX + 1];
	int n;

	if (!delegation_have_key || !spool_id_valid(t->id) || t->rule < 1 ||
	    t->rule > DELEGATION_RULE_MAX ||
	    (t->stage != DELEGATION_POSTQ && t->stage != DELEGATION_DELIVERY))
		return -1;
	n = snprintf(part, sizeof(part), "1.%s.%c%u", t->id, t->stage, t->rule);
	if (n < 0 || (size_t)n >= sizeof(part) || delegation_mac(part, (size_t)n, mac) < 0)
		return -1;
	n = snprintf(buf, len, "%s.%s", part, mac);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* delegation_blank - folding white space around a field value. */
static int delegation_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* delegation_token_parse - read a token's form. */
int delegation_token_parse(const char *text, size_t len, struct delegation_token *t, char *buf)
{
	const char *p, *end = text + len, *rule_at, *mac_at;
	unsigned long rule = 0;
	size_t i;

	while (text < end && delegation_blank(*text))
		text++;
	while (end > text && delegation_blank(end[-1]))
		end--;
	/* "1." + 16 hex id + "." + stage letter + 1..6 digits + "." + 32 hex */
	if (end - text < 2 + SPOOL_ID_LEN + 1 + 2 + 1 + DELEGATION_MAC_HEX ||
	    end - text > DELEGATION_TOKEN_MAX - 1 || text[0] != '1' || text[1] != '.')
		return -1;
	memcpy(t->id, text + 2, SPOOL_ID_LEN);
	t->id[SPOOL_ID_LEN] = '\0';
	if (!spool_id_valid(t->id) || text[2 + SPOOL_ID_LEN] != '.')
		return -1;
	t->stage = text[2 + SPOOL_ID_LEN + 1];
	if (t->stage != DELEGATION_POSTQ && t->stage != DELEGATION_DELIVERY)
		return -1;
	rule_at = text + 2 + SPOOL_ID_LEN + 2;
	mac_at = end - DELEGATION_MAC_HEX;
	if (mac_at - 1 <= rule_at || mac_at[-1] != '.' || mac_at - 1 - rule_at > 6 ||
	    rule_at[0] == '0')
		return -1;
	for (p = rule_at; p < mac_at - 1; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		rule = rule * 10 + (unsigned long)(*p - '0');
	}
	if (rule < 1 || rule > DELEGATION_RULE_MAX)
		return -1;
	for (i = 0; i < DELEGATION_MAC_HEX; i++)
		if (!((mac_at[i] >= '0' && mac_at[i] <= '9') ||
		      (mac_at[i] >= 'a' && mac_at[i] <= 'f')))
			return -1;
	t->rule = (unsigned)rule;
	memcpy(buf, text, (size_t)(end - text));
	buf[end - text] = '\0';
	return 0;
}

/* delegation_token_verify - read a token and check its MAC. */
int delegation_token_verify(const char *text, size_t len, struct delegation_token *t,
                            const char **why)
{
	char canon[DELEGATION_TOKEN_MAX], mac[DELEGATION_MAC_HEX + 1];
	size_t clen;

	*why = "malformed";
	if (delegation_token_parse(text, len, t, canon) < 0)
		return -1;
	if (!delegation_have_key) {
		*why = "no key";
		return -1;
	}
	clen = strlen(canon);
	if (delegation_mac(canon, clen - DELEGATION_MAC_HEX - 1, mac) < 0 ||
	    CRYPTO_memcmp(mac, canon + clen - DELEGATION_MAC_HEX, DELEGATION_MAC_HEX) != 0) {
		*why = "bad signature";
		return -1;
	}
	*why = NULL;
	return 0;
}
