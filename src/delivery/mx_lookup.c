/*
 * mx_lookup.c - where mail for a domain goes: MX records, then the
 * addresses of the MX hosts, asynchronously through c-ares on the delivery
 * worker's libevent loop. The channel itself, its sockets and its timer on
 * that loop, and the resolver's lifetime are in mx_resolver.c.
 *
 * A lookup is one MX query; then an A and an AAAA query for each MX host
 * (the best MX_HOSTS_MAX, all at once), or for the domain itself when it
 * has no MX record (NODATA: the implicit MX of RFC 5321 5.1). Every query
 * goes through ares_query(), which asks the DNS servers only: no
 * /etc/hosts, no search domains, no host aliases. (ares_getaddrinfo()
 * would read /etc/hosts, and may answer "localhost" or a host name of the
 * machine from it.) The addresses of a host come IPv4 first, then IPv6:
 * many hosts have IPv6 addresses but no IPv6 route, and trying IPv4 first
 * keeps one broken family from costing a connect timeout per message.
 *
 * Lifetimes. c-ares calls a query's callback exactly once: with its
 * answer, on its timeout, or with ARES_EDESTRUCTION when the channel is
 * destroyed. A lookup counts its queries in flight and is freed only when
 * its result has been delivered and that count is zero: its own deadline
 * may end it while c-ares still has queries of it out, whose answers are
 * then dropped. The result is always delivered from an event of the
 * lookup's own (done_ev), never from inside mx_lookup() nor from inside
 * c-ares, so that the caller's callback may start lookups or free the
 * resolver.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ares.h>
#include <event2/event.h>

#include "log.h"
#include "mx_lookup_internal.h"

#define MX_FAMILY_ADDRS_MAX 4       /* addresses of one family of one MX host */
#define MX_NAME_LOG_MAX 64          /* bytes of a bad name quoted in a reason */
/* Room for the text of a reason after its "name: ", so that the whole fits. */
#define MX_REASON_TEXT_MAX (sizeof(((struct mx_result *)0)->reason) - MX_NAME_LOG_MAX - 2)

/* ---- names and reasons ------------------------------------------------- */

/* mx_name_for_log - name made safe for a log line: at most
 * MX_NAME_LOG_MAX bytes, anything but printable ASCII as '?'. */
static void mx_name_for_log(const char *name, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; name[i] != '\0' && i < MX_NAME_LOG_MAX && i + 1 < outlen; i++)
		out[i] = name[i] > 0x20 && name[i] < 0x7f ? name[i] : '?';
	out[i] = '\0';
}

/* mx_status_text - what an ARES_* status means, for a reason. */
static const char *mx_status_text(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
		return "Host or domain name not found (NXDOMAIN)";
	case ARES_ENODATA:
		return "no record of the type (NODATA)";
	case ARES_ETIMEOUT:
		return "DNS lookup timed out";
	case ARES_ESERVFAIL:
		return "DNS server failure (SERVFAIL)";
	case ARES_EREFUSED:
		return "DNS query refused (REFUSED)";
	case ARES_ENOTIMP:
		return "DNS query not implemented by the server (NOTIMP)";
	case ARES_EFORMERR:
	case ARES_EBADRESP:
		return "malformed DNS answer";
	case ARES_ECONNREFUSED:
		/* c-ares 1.18 also ends with it when every server refused or
		 * failed the query */
		return "DNS servers failed or unreachable";
	case ARES_EBADNAME:
		return "not a valid domain name";
	case ARES_ENOMEM:
		return "out of memory";
	default:
		return ares_strerror(status);
	}
}

/* mx_is_permanent - whether a failed query's status means "there is none". */
static int mx_is_permanent(int status)
{
	return status == ARES_ENOTFOUND || status == ARES_ENODATA || status == ARES_EBADNAME;
}

/* ---- results ------------------------------------------------------------ */

/* mx_on_done - deliver the result; free the lookup unless c-ares still
 * holds queries of it (their callbacks free it). After fn, l may be gone:
 * fn may have freed the resolver, and with it every listed lookup. */
static void mx_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct mx_lookup *l = arg;

	l->delivered = 1;
	if (l->pending > 0) {
		l->fn(l->arg, &l->res);
		return;
	}
	/* unlisted first, so that freeing the resolver from fn leaves l alone */
	mx_lookup_unlink(l);
	l->fn(l->arg, &l->res);
	mx_lookup_free(l);
}

/* mx_finish - the result is decided: deliver it from the loop. */
static void mx_finish(struct mx_lookup *l)
{
	l->finished = 1;
	evtimer_del(l->deadline);
	event_active(l->done_ev, EV_TIMEOUT, 1);
}

/* mx_fail - finish with a failure and its reason, "name: text" (whole when
 * text is shorter than MX_REASON_TEXT_MAX). */
static void mx_fail(struct mx_lookup *l, enum mx_status status, const char *text)
{
	char name[MX_NAME_LOG_MAX + 1];

	mx_name_for_log(l->name, name, sizeof(name));
	l->res.status = status;
	l->res.naddrs = 0;
	snprintf(l->res.reason, sizeof(l->res.reason), "%s: %s", name, text);
	mx_finish(l);
}

/* mx_add_addr - one address (4 or 16 bytes of family) to the result. */
static void mx_add_addr(struct mx_lookup *l, const char *host, int family,
			const unsigned char *addr)
{
	struct mta_addr *a = &l->res.addrs[l->res.naddrs++];

	memset(a, 0, sizeof(*a));
	snprintf(a->host, sizeof(a->host), "%s", host);
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)l->port);
		memcpy(&sin->sin_addr, addr, 4);
		a->salen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->sa;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)l->port);
		memcpy(&sin6->sin6_addr, addr, 16);
		a->salen = sizeof(*sin6);
	}
}

/* mx_host_failure - why host h has no address: the status of a family
 * that failed for a while, else of one that has none. */
static int mx_host_failure(const struct mx_host *h, int *temporary)
{
	int f;

	for (f = MX_V4; f <= MX_V6; f++)
		if (h->fam[f].state == MX_FAM_TEMP) {
			*temporary = 1;
			return h->fam[f].status;
		}
	*temporary = 0;
	return h->fam[MX_V4].status == ARES_ENOTFOUND ? ARES_ENOTFOUND : h->fam[MX_V6].status;
}

/* mx_conclude_empty - no host has an address: why, and how permanent. */
static void mx_conclude_empty(struct mx_lookup *l)
{
	char text[MX_REASON_TEXT_MAX], host[MX_NAME_LOG_MAX + 1];
	const struct mx_host *why = NULL;
	int status = ARES_ENODATA, temporary = 0, t;
	size_t i;

	/* the first host that failed temporarily, else the first host */
	for (i = 0; i < l->nhosts; i++) {
		int st = mx_host_failure(&l->hosts[i], &t);

		if (why == NULL || (t && !temporary)) {
			why = &l->hosts[i];
			status = st;
			temporary = t;
		}
	}
	if (l->implicit && !temporary) {
		mx_fail(l, MX_NOTFOUND, "no MX and no address");
		return;
	}
	if (l->implicit || l->host_only) {
		mx_fail(l, temporary ? MX_TEMPFAIL : MX_NOTFOUND,
			status == ARES_ENODATA ? "no address (no A or AAAA record)"
					       : mx_status_text(status));
		return;
	}
	mx_name_for_log(why->name, host, sizeof(host));
	snprintf(text, sizeof(text), "no MX host has an address (%s: %s)", host,
		 status == ARES_ENODATA ? "no A or AAAA record" : mx_status_text(status));
	mx_fail(l, temporary ? MX_TEMPFAIL : MX_NOTFOUND, text);
}

/* mx_conclude - every host's queries are over (or the deadline passed):
 * the addresses in order, host by host, IPv4 first. */
static void mx_conclude(struct mx_lookup *l)
{
	static const int families[2] = {AF_INET, AF_INET6};
	size_t i, j;
	int f;

	l->res.naddrs = 0;
	for (i = 0; i < l->nhosts; i++)
		for (f = MX_V4; f <= MX_V6; f++)
			for (j = 0; j < l->hosts[i].fam[f].n && l->res.naddrs < MTA_MAX_ADDRS;
			     j++)
				mx_add_addr(l, l->hosts[i].name, families[f],
					    l->hosts[i].fam[f].addr[j]);
	if (l->res.naddrs == 0) {
		mx_conclude_empty(l);
		return;
	}
	l->res.status = MX_OK;
	l->res.reason[0] = '\0';
	mx_finish(l);
}

/* mx_check_done - conclude once no host waits for an answer. */
static void mx_check_done(struct mx_lookup *l)
{
	size_t i;

	if (l->issuing || l->finished)
		return;
	for (i = 0; i < l->nhosts; i++)
		if (l->hosts[i].fam[MX_V4].state == MX_FAM_PENDING ||
		    l->hosts[i].fam[MX_V6].state == MX_FAM_PENDING)
			return;
	mx_conclude(l);
}

/* mx_on_deadline - the lookup took too long: what is not in yet counts as
 * timed out. */
static void mx_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct mx_lookup *l = arg;
	size_t i;
	int f;

	if (!l->mx_done) {
		mx_fail(l, MX_TEMPFAIL, mx_status_text(ARES_ETIMEOUT));
		return;
	}
	for (i = 0; i < l->nhosts; i++)
		for (f = MX_V4; f <= MX_V6; f++)
			if (l->hosts[i].fam[f].state == MX_FAM_PENDING) {
				l->hosts[i].fam[f].state = MX_FAM_TEMP;
				l->hosts[i].fam[f].status = ARES_ETIMEOUT;
			}
	mx_conclude(l);
}

/* ---- queries ------------------------------------------------------------ */

static void mx_on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

/* mx_send - one query of l; its answer comes to mx_on_answer. c-ares may
 * call back before this returns (a query that cannot be sent). */
static void mx_send(struct mx_lookup *l, struct mx_query *q, const char *name, int type)
{
	l->pending++;
	ares_query(l->r->channel, name, ns_c_in, type, mx_on_answer, q);
}

/* mx_resolve_hosts - send the A and AAAA queries of every host. */
static void mx_resolve_hosts(struct mx_lookup *l)
{
	size_t i;
	int f;

	l->mx_done = 1;
	l->issuing = 1;
	for (i = 0; i < l->nhosts && !l->finished; i++)
		for (f = MX_V4; f <= MX_V6; f++) {
			struct mx_query *q = &l->q[1 + 2 * i + (size_t)f];

			q->l = l;
			q->host = (int)i;
			q->family = f;
			mx_send(l, q, l->hosts[i].name, f == MX_V4 ? ns_t_a : ns_t_aaaa);
		}
	l->issuing = 0;
	mx_check_done(l);
}

/* mx_host_add - a host to look up, the domain itself for the implicit MX. */
static void mx_host_add(struct mx_lookup *l, const char *name, unsigned preference, long tiebreak)
{
	struct mx_host *h = &l->hosts[l->nhosts++];

	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->preference = preference;
	h->tiebreak = tiebreak;
}

/* mx_before - MX order: preference, then the random tiebreak. */
static int mx_before(const struct mx_host *a, const struct mx_host *b)
{
	if (a->preference != b->preference)
		return a->preference < b->preference;
	return a->tiebreak < b->tiebreak;
}

/* mx_host_insert - keep the best MX_HOSTS_MAX MX hosts, sorted; a name
 * listed twice is kept once (the first seen). */
static void mx_host_insert(struct mx_lookup *l, const struct ares_mx_reply *mx)
{
	size_t i, j, len = resolver_name_check(mx->host, strlen(mx->host));
	struct mx_host h;

	if (len == 0)
		return; /* no name we could ask for */
	memset(&h, 0, sizeof(h));
	memcpy(h.name, mx->host, len);
	h.name[len] = '\0';
	for (i = 0; i < l->nhosts; i++)
		if (strcasecmp(l->hosts[i].name, h.name) == 0)
			return;
	h.preference = mx->priority;
	h.tiebreak = nrand48(l->r->xsubi);
	for (i = l->nhosts; i > 0 && mx_before(&h, &l->hosts[i - 1]); i--)
		;
	if (i == MX_HOSTS_MAX)
		return;
	j = l->nhosts < MX_HOSTS_MAX ? l->nhosts++ : l->nhosts - 1;
	for (; j > i; j--)
		l->hosts[j] = l->hosts[j - 1];
	l->hosts[i] = h;
}

/* mx_take_mx - the MX answer: a null MX, or hosts to resolve. */
static void mx_take_mx(struct mx_lookup *l, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *list = NULL, *mx;
	int rc;

	rc = ares_parse_mx_reply(abuf, alen, &list);
	if (rc == ARES_ENODATA) { /* only other records, a CNAME say */
		l->implicit = 1;
		mx_host_add(l, l->name, 0, 0);
		mx_resolve_hosts(l);
		return;
	}
	if (rc != ARES_SUCCESS) {
		mx_fail(l, MX_TEMPFAIL, mx_status_text(rc == ARES_ENOMEM ? rc : ARES_EBADRESP));
		return;
	}
	/* RFC 7505: "." (which c-ares gives as "") means no mail; a domain
	 * with it must have no other MX, and any such record wins. */
	for (mx = list; mx != NULL; mx = mx->next)
		if (mx->host[0] == '\0' || strcmp(mx->host, ".") == 0) {
			ares_free_data(list);
			mx_fail(l, MX_NULL, "null MX: the domain accepts no mail");
			return;
		}
	for (mx = list; mx != NULL; mx = mx->next)
		mx_host_insert(l, mx);
	ares_free_data(list);
	if (l->nhosts == 0) {
		mx_fail(l, MX_NOTFOUND, "no valid MX host name");
		return;
	}
	mx_resolve_hosts(l);
}

/* mx_on_mx - the answer to the MX query. */
static void mx_on_mx(struct mx_lookup *l, int status, const unsigned char *abuf, int alen)
{
	switch (status) {
	case ARES_SUCCESS:
		mx_take_mx(l, abuf, alen);
		break;
	case ARES_ENODATA: /* the domain exists, without MX: it is its own MX */
		l->implicit = 1;
		mx_host_add(l, l->name, 0, 0);
		mx_resolve_hosts(l);
		break;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:
		mx_fail(l, MX_NOTFOUND, mx_status_text(status));
		break;
	default:
		mx_fail(l, MX_TEMPFAIL, mx_status_text(status));
		break;
	}
}

/* mx_parse_addrs - the A or AAAA records of an answer into fam. ARES_* status. */
static int mx_parse_addrs(struct mx_family *fam, int family, size_t max,
			  const unsigned char *abuf, int alen)
{
	struct ares_addrttl a4[MX_HOST_FAMILY_ADDRS_MAX];
	struct ares_addr6ttl a6[MX_HOST_FAMILY_ADDRS_MAX];
	int n = (int)max, i, rc;

	if (family == MX_V4)
		rc = ares_parse_a_reply(abuf, alen, NULL, a4, &n);
	else
		rc = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n);
	if (rc != ARES_SUCCESS)
		return rc;
	for (i = 0; i < n && fam->n < max; i++) {
		if (family == MX_V4)
			memcpy(fam->addr[fam->n++], &a4[i].ipaddr, 4);
		else
			memcpy(fam->addr[fam->n++], &a6[i].ip6addr, 16);
	}
	return fam->n > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

/* mx_on_addr - the answer to a host's A or AAAA query. */
static void mx_on_addr(struct mx_lookup *l, const struct mx_query *q, int status,
		       const unsigned char *abuf, int alen)
{
	struct mx_family *fam = &l->hosts[q->host].fam[q->family];

	if (status == ARES_SUCCESS) {
		status = mx_parse_addrs(fam, q->family, l->fam_max, abuf, alen);
		if (status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOMEM)
			status = ARES_EBADRESP;
	}
	fam->status = status;
	if (status == ARES_SUCCESS)
		fam->state = MX_FAM_OK;
	else if (mx_is_permanent(status))
		fam->state = MX_FAM_NONE;
	else
		fam->state = MX_FAM_TEMP;
	mx_check_done(l);
}

/* mx_on_answer - c-ares is done with a query: pass it on, unless the
 * lookup is over (or the resolver going away). */
static void mx_on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mx_query *q = arg;
	struct mx_lookup *l = q->l;

	l->pending--;
	if (l->r->freeing)
		return; /* ARES_EDESTRUCTION or ARES_ECANCELLED; mx_resolver_free frees l */
	if (l->finished) {
		if (l->delivered && l->pending == 0) {
			mx_lookup_unlink(l);
			mx_lookup_free(l);
		}
		return;
	}
	if (status == ARES_SUCCESS && (abuf == NULL || alen <= 0))
		status = ARES_EBADRESP;
	if (q->host < 0)
		mx_on_mx(l, status, abuf, alen);
	else
		mx_on_addr(l, q, status, abuf, alen);
}

/* ---- starting lookups --------------------------------------------------- */

/* mx_lookup_unlink - take l off its resolver's list. */
void mx_lookup_unlink(struct mx_lookup *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		l->r->lookups = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
}

/* mx_lookup_free - free l (unlisted, or its resolver is being freed). */
void mx_lookup_free(struct mx_lookup *l)
{
	event_free(l->deadline);
	event_free(l->done_ev);
	free(l);
}

/* mx_lookup_new - a listed lookup with its events, its deadline armed.
 * Without memory it cannot keep its promise of one callback: fatal. */
static struct mx_lookup *mx_lookup_new(struct mx_resolver *r, unsigned port, mx_done_fn fn,
				       void *arg)
{
	struct timeval tv = {(time_t)(r->timeout_ms / 1000),
			     (suseconds_t)(r->timeout_ms % 1000 * 1000)};
	struct mx_lookup *l = calloc(1, sizeof(*l));

	if (l == NULL || (l->deadline = evtimer_new(r->base, mx_on_deadline, l)) == NULL ||
	    (l->done_ev = evtimer_new(r->base, mx_on_done, l)) == NULL)
		fatal("mx: cannot start a DNS lookup: out of memory");
	l->r = r;
	l->port = port;
	l->fn = fn;
	l->arg = arg;
	l->fam_max = MX_FAMILY_ADDRS_MAX;
	l->next = r->lookups;
	if (r->lookups != NULL)
		r->lookups->prev = l;
	r->lookups = l;
	evtimer_add(l->deadline, &tv);
	return l;
}

/* mx_parse_literal - an IP address given as itself: "192.0.2.1",
 * "2001:db8::1", or as an address literal, "[192.0.2.1]",
 * "[IPv6:2001:db8::1]" (RFC 5321 4.1.3; "[2001:db8::1]" is taken too).
 * AF_INET or AF_INET6 with the address in addr, or 0. */
static int mx_parse_literal(const char *text, unsigned char addr[16])
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(text);

	if (len >= sizeof(buf))
		return 0;
	if (text[0] == '[') {
		if (len < 3 || text[len - 1] != ']')
			return 0;
		memcpy(buf, text + 1, len - 2);
		buf[len - 2] = '\0';
		if (strncasecmp(buf, "IPv6:", 5) == 0)
			return inet_pton(AF_INET6, buf + 5, addr) == 1 ? AF_INET6 : 0;
	} else {
		memcpy(buf, text, len + 1);
	}
	if (inet_pton(AF_INET, buf, addr) == 1)
		return AF_INET;
	return inet_pton(AF_INET6, buf, addr) == 1 ? AF_INET6 : 0;
}

/* mx_take_literal - the result is the address itself. */
static void mx_take_literal(struct mx_lookup *l, const char *text, int family,
			    const unsigned char *addr)
{
	char name[MX_NAME_LOG_MAX + 1];

	mx_name_for_log(text, name, sizeof(name));
	mx_add_addr(l, name, family, addr);
	l->res.status = MX_OK;
	mx_finish(l);
}

/* mx_set_name - the name to ask for, without its trailing dot; 0, or -1
 * (the lookup failed) when it is no domain name. */
static int mx_set_name(struct mx_lookup *l, const char *name)
{
	size_t n = strnlen(name, RESOLVER_NAME_MAX + 2);

	n = resolver_name_check(name, n);
	if (n == 0) {
		snprintf(l->name, sizeof(l->name), "%.*s", MX_NAME_LOG_MAX, name);
		mx_fail(l, MX_NOTFOUND, mx_status_text(ARES_EBADNAME));
		return -1;
	}
	memcpy(l->name, name, n);
	l->name[n] = '\0';
	return 0;
}

/* mx_lookup - the MX hosts of domain and their addresses. */
void mx_lookup(struct mx_resolver *r, const char *domain, unsigned port, mx_done_fn fn,
	       void *arg)
{
	struct mx_lookup *l = mx_lookup_new(r, port, fn, arg);
	unsigned char addr[16];
	int family;

	if (domain[0] == '[' && (family = mx_parse_literal(domain, addr)) != 0) {
		mx_take_literal(l, domain, family, addr);
		return;
	}
	if (mx_set_name(l, domain) < 0)
		return;
	l->q[0].l = l;
	l->q[0].host = -1;
	mx_send(l, &l->q[0], l->name, ns_t_mx);
	mx_timer_update(r);
}

/* mx_lookup_host - the addresses of one host, no MX. */
void mx_lookup_host(struct mx_resolver *r, const char *host, unsigned port, mx_done_fn fn,
		    void *arg)
{
	struct mx_lookup *l = mx_lookup_new(r, port, fn, arg);
	unsigned char addr[16];
	int family;

	l->host_only = 1;
	l->fam_max = MX_HOST_FAMILY_ADDRS_MAX;
	if ((family = mx_parse_literal(host, addr)) != 0) {
		mx_take_literal(l, host, family, addr);
		return;
	}
	if (mx_set_name(l, host) < 0)
		return;
	mx_host_add(l, l->name, 0, 0);
	mx_resolve_hosts(l);
	mx_timer_update(r);
}
