/*
 * rules_dns_cache.c - the DNS answers a process's rules obtained, kept for
 * their time to live, so that the next message from the same domain asks
 * no server again: the SPF, DKIM key and DMARC records of a sender that
 * sends many messages, the client's PTR name.
 *
 * One cache per Lua state (rules_dns.c holds it), in the process that asks:
 * a session process keeps it across the connections it serves, as the
 * system resolver's cache would be kept, and the delivery worker across
 * messages. It holds public DNS data only, as the configured servers gave
 * it, never anything a client sent.
 *
 * What is kept, per name (compared in any case) and type:
 *  - an answer (NOERROR with records) for the smallest TTL of its answer
 *    section;
 *  - NXDOMAIN and NODATA for the negative TTL of RFC 2308 section 5: the
 *    smaller of the SOA record's TTL and its MINIMUM field, when the
 *    authority section has the SOA (without one, nothing is kept);
 *  - never a timeout or a failure: the next call asks again.
 * TTLs are capped at RULES_DNS_CACHE_TTL_MAX; a TTL of 0 keeps nothing. At
 * most RULES_DNS_CACHE_SIZE entries and RULES_DNS_CACHE_BYTES of answers:
 * a new entry replaces an expired one, else the one used longest ago.
 *
 * dns_cache_ttl() reads the TTLs from a message that came from the network;
 * every offset is checked against its length (a libFuzzer target runs it).
 */
#include <arpa/nameser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rules_dns_cache.h"

struct dns_cache_entry {
	char name[RULES_DNS_NAME_MAX + 1]; /* "" for a free slot */
	int type;
	enum rules_dns_result result;
	unsigned char *answer; /* RULES_DNS_ANSWER: the message, malloc'ed */
	size_t len;
	uint64_t expires_ms;
	uint64_t used; /* the cache's clock at the last hit or store */
};

struct rules_dns_cache {
	struct dns_cache_entry e[RULES_DNS_CACHE_SIZE];
	size_t bytes; /* answers held */
	uint64_t clock;
	struct rules_dns_cache_stats stats;
};

/* ---- reading TTLs ------------------------------------------------------- */

/* dns_u16 - the big-endian 16-bit number at p. */
static unsigned dns_u16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* dns_u32 - the big-endian 32-bit number at p. */
static uint32_t dns_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* dns_skip_name - the offset past the (possibly compressed) name at off,
 * or 0 when it runs past the message or is malformed. */
static size_t dns_skip_name(const unsigned char *m, size_t len, size_t off)
{
	size_t labels = 0;

	while (off < len && labels++ < 128) {
		unsigned c = m[off];

		if (c == 0)
			return off + 1;
		if ((c & 0xc0) == 0xc0) /* a pointer ends the name here */
			return off + 2 <= len ? off + 2 : 0;
		if ((c & 0xc0) != 0)
			return 0;
		off += 1 + c;
	}
	return 0;
}

/* dns_cache_ttl - see rules_dns_cache.h. */
long dns_cache_ttl(const unsigned char *m, size_t len, enum rules_dns_result result)
{
	unsigned qd, an, ns, i, type, rdlen;
	uint32_t ttl, best = UINT32_MAX;
	size_t off = 12, rr;

	if (len < 12)
		return -1;
	qd = dns_u16(m + 4);
	an = dns_u16(m + 6);
	ns = dns_u16(m + 8);
	for (i = 0; i < qd; i++) {
		if ((off = dns_skip_name(m, len, off)) == 0 || off + 4 > len)
			return -1;
		off += 4;
	}
	/* the answer section, then the authority section */
	for (i = 0; i < an + ns; i++) {
		if ((off = dns_skip_name(m, len, off)) == 0 || off + 10 > len)
			return -1;
		type = dns_u16(m + off);
		ttl = dns_u32(m + off + 4);
		rdlen = dns_u16(m + off + 8);
		rr = off + 10;
		if (rr + rdlen > len)
			return -1;
		if (ttl > INT32_MAX) /* RFC 2181 section 8: such a TTL is 0 */
			ttl = 0;
		if (result == RULES_DNS_ANSWER && i < an && ttl < best) {
			best = ttl;
		} else if (result != RULES_DNS_ANSWER && i >= an && type == ns_t_soa) {
			size_t p = dns_skip_name(m, rr + rdlen, rr); /* MNAME */

			if (p == 0 || (p = dns_skip_name(m, rr + rdlen, p)) == 0 || p + 20 > rr + rdlen)
				return -1;
			if (dns_u32(m + p + 16) < ttl) /* MINIMUM, after RNAME and four numbers */
				ttl = dns_u32(m + p + 16);
			if (ttl > INT32_MAX)
				ttl = 0;
			if (ttl < best)
				best = ttl;
		}
		off = rr + rdlen;
	}
	return best == UINT32_MAX ? -1 : (long)best;
}

/* ---- the cache ---------------------------------------------------------- */

/* rules_dns_cache_new - an empty cache, or NULL when out of memory. */
struct rules_dns_cache *rules_dns_cache_new(void)
{
	return calloc(1, sizeof(struct rules_dns_cache));
}

/* dns_cache_drop - empty one slot. */
static void dns_cache_drop(struct rules_dns_cache *c, struct dns_cache_entry *e)
{
	c->bytes -= e->len;
	free(e->answer);
	memset(e, 0, sizeof(*e));
}

/* rules_dns_cache_free - the cache and every answer in it. */
void rules_dns_cache_free(struct rules_dns_cache *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < RULES_DNS_CACHE_SIZE; i++)
		free(c->e[i].answer);
	free(c);
}

/* dns_cache_find - the live entry of name and type, or NULL; an expired
 * one found on the way is dropped. */
static struct dns_cache_entry *dns_cache_find(struct rules_dns_cache *c, const char *name,
					      int type, uint64_t now_ms)
{
	struct dns_cache_entry *e;
	size_t i;

	for (i = 0; i < RULES_DNS_CACHE_SIZE; i++) {
		e = &c->e[i];
		if (e->name[0] == '\0' || e->type != type || strcasecmp(e->name, name) != 0)
			continue;
		if (e->expires_ms <= now_ms) {
			dns_cache_drop(c, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

/* rules_dns_cache_get - see rules_dns_cache.h. */
int rules_dns_cache_get(struct rules_dns_cache *c, const char *name, int type, uint64_t now_ms,
			enum rules_dns_result *result, unsigned char **answer, size_t *len)
{
	struct dns_cache_entry *e;

	*answer = NULL;
	*len = 0;
	if (c == NULL || (e = dns_cache_find(c, name, type, now_ms)) == NULL) {
		if (c != NULL)
			c->stats.misses++;
		return 0;
	}
	if (e->result == RULES_DNS_ANSWER) {
		if ((*answer = malloc(e->len)) == NULL)
			return 0;
		memcpy(*answer, e->answer, e->len);
		*len = e->len;
	}
	*result = e->result;
	e->used = ++c->clock;
	c->stats.hits++;
	return 1;
}

/* dns_cache_slot - the slot a new entry goes into: a free or expired one,
 * else the one used longest ago (emptied). */
static struct dns_cache_entry *dns_cache_slot(struct rules_dns_cache *c, uint64_t now_ms)
{
	struct dns_cache_entry *e, *oldest = &c->e[0];
	size_t i;

	for (i = 0; i < RULES_DNS_CACHE_SIZE; i++) {
		e = &c->e[i];
		if (e->name[0] == '\0' || e->expires_ms <= now_ms) {
			if (e->name[0] != '\0')
				dns_cache_drop(c, e);
			return e;
		}
		if (e->used < oldest->used)
			oldest = e;
	}
	dns_cache_drop(c, oldest);
	return oldest;
}

/* dns_cache_make_room - drop the entries used longest ago until len more
 * bytes fit under RULES_DNS_CACHE_BYTES. */
static void dns_cache_make_room(struct rules_dns_cache *c, size_t len)
{
	struct dns_cache_entry *oldest;
	size_t i;

	while (c->bytes + len > RULES_DNS_CACHE_BYTES) {
		oldest = NULL;
		for (i = 0; i < RULES_DNS_CACHE_SIZE; i++)
			if (c->e[i].len > 0 && (oldest == NULL || c->e[i].used < oldest->used))
				oldest = &c->e[i];
		if (oldest == NULL)
			return;
		dns_cache_drop(c, oldest);
	}
}

/* rules_dns_cache_put - see rules_dns_cache.h. */
void rules_dns_cache_put(struct rules_dns_cache *c, const char *name, int type, uint64_t now_ms,
			 enum rules_dns_result result, const unsigned char *msg, size_t len)
{
	struct dns_cache_entry *e;
	unsigned char *copy = NULL;
	long ttl;

	if (c == NULL || msg == NULL || strlen(name) > RULES_DNS_NAME_MAX ||
	    (result != RULES_DNS_ANSWER && result != RULES_DNS_NXDOMAIN &&
	     result != RULES_DNS_NODATA) ||
	    len > RULES_DNS_CACHE_BYTES / 8)
		return;
	if ((ttl = dns_cache_ttl(msg, len, result)) <= 0)
		return;
	if (ttl > RULES_DNS_CACHE_TTL_MAX)
		ttl = RULES_DNS_CACHE_TTL_MAX;
	if (result == RULES_DNS_ANSWER) {
		if ((copy = malloc(len)) == NULL)
			return;
		memcpy(copy, msg, len);
	}
	if ((e = dns_cache_find(c, name, type, now_ms)) != NULL)
		dns_cache_drop(c, e);
	if (copy != NULL)
		dns_cache_make_room(c, len);
	e = dns_cache_slot(c, now_ms);
	memcpy(e->name, name, strlen(name) + 1);
	e->type = type;
	e->result = result;
	e->answer = copy;
	e->len = copy != NULL ? len : 0;
	e->expires_ms = now_ms + (uint64_t)ttl * 1000;
	e->used = ++c->clock;
	c->bytes += e->len;
	c->stats.stored++;
}

/* rules_dns_cache_stats - see rules_dns_cache.h. */
struct rules_dns_cache_stats rules_dns_cache_stats(const struct rules_dns_cache *c)
{
	struct rules_dns_cache_stats none = {0};

	return c != NULL ? c->stats : none;
}
