/*
 * rules_spf_dns.c - libspf2's DNS layer for the rules: every query of an
 * SPF check goes through rules_dns_query() (rules_dns.c), so through the
 * rules' c-ares channel, its servers ([rules] dns_servers) and its timeout;
 * libspf2's own resolver layer (res_ninit, /etc/resolv.conf) is never made.
 *
 * How DNS flows: ctx:spf() (rules_spf.c) runs libspf2's interpreter with a
 * SPF_dns_server_t whose lookup is spf_dns_lookup() below. That asks
 * rules_dns_query() for the raw answer, parses it with c-ares'
 * ares_parse_*_reply and builds the SPF_dns_rr_t libspf2 expects: an
 * answer with its records (NETDB_SUCCESS), NXDOMAIN as HOST_NOT_FOUND, no
 * record of the type as NO_DATA (both give "none" or no match), and a
 * timeout, SERVFAIL, REFUSED, an answer that does not parse or no server
 * reached as TRY_AGAIN (temperror). The obsolete SPF RR type 99 (RFC 7208
 * §3.1) is answered NO_DATA without a query, so libspf2 falls through to
 * TXT at once.
 *
 * The limits of RFC 7208 §4.6.4 are kept here, for the whole check across
 * include: and redirect= (libspf2 counts per record only, and not void
 * lookups): a lookup is a term's own (a, mx, ptr, exists, include,
 * redirect; counted) unless it is the address lookup of a name the last
 * MX or PTR answer gave, in the order libspf2 asks them; the checked
 * domain's record and the exp= text are not counted. The 11th term, the
 * 3rd void lookup (a term's lookup answered NXDOMAIN or with no record) or
 * a check past RULES_SPF_TIME_MS is answered TRY_AGAIN, which ends the
 * evaluation at once; the caller then reads d->over and reports permerror
 * (temperror for the time).
 *
 * Every answer is kept for the check: a replay (d->replay) answers from
 * them without any query, and get_exp expands the exp= text with the
 * request's macros.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ares.h>

#include "rules_dns.h"
#include "rules_spf.h"
#include "rules_zone.h"

#define SPF_DNS_ADDRS_MAX 64 /* address records of one answer taken */
#define SPF_DNS_PTR_MAX 10   /* PTR names of one answer taken */

/* An answer kept for the check. */
struct rules_spf_cached {
	struct rules_spf_cached *next;
	SPF_dns_rr_t *rr;
};

/* spf_dns_now_ms - a monotonic clock in milliseconds. */
static uint64_t spf_dns_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* spf_dns_string_at - a string into record i of rr. 0, or -1. */
static int spf_dns_string_at(SPF_dns_rr_t *rr, int i, const char *s, size_t len)
{
	if (SPF_dns_rr_buf_realloc(rr, i, len + 1) != SPF_E_SUCCESS)
		return -1;
	memcpy(rr->rr[i]->txt, s, len);
	rr->rr[i]->txt[len] = '\0';
	return 0;
}

/* spf_dns_name_at - a name from an answer, without a trailing dot. */
static int spf_dns_name_at(SPF_dns_rr_t *rr, int i, const char *name)
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	return spf_dns_string_at(rr, i, name, len);
}

/* spf_dns_parse_addrs - A or AAAA records into rr. An ARES_* status. */
static int spf_dns_parse_addrs(SPF_dns_rr_t *rr, const unsigned char *buf, int len)
{
	struct ares_addrttl a4[SPF_DNS_ADDRS_MAX];
	struct ares_addr6ttl a6[SPF_DNS_ADDRS_MAX];
	int n = SPF_DNS_ADDRS_MAX, i, rc;

	if (rr->rr_type == ns_t_a)
		rc = ares_parse_a_reply(buf, len, NULL, a4, &n);
	else
		rc = ares_parse_aaaa_reply(buf, len, NULL, a6, &n);
	for (i = 0; rc == ARES_SUCCESS && i < n; i++) {
		if (SPF_dns_rr_buf_realloc(rr, i, sizeof(SPF_dns_rr_data_t)) != SPF_E_SUCCESS)
			return ARES_ENOMEM;
		if (rr->rr_type == ns_t_a)
			rr->rr[i]->a = a4[i].ipaddr;
		else
			memcpy(&rr->rr[i]->aaaa, &a6[i].ip6addr, sizeof(rr->rr[i]->aaaa));
		rr->num_rr = i + 1;
	}
	return rc;
}

/* spf_dns_parse_mx - the MX hosts into rr, in the answer's order. */
static int spf_dns_parse_mx(SPF_dns_rr_t *rr, const unsigned char *buf, int len)
{
	struct ares_mx_reply *mx = NULL, *p;
	int rc = ares_parse_mx_reply(buf, len, &mx), i = 0;

	for (p = mx; rc == ARES_SUCCESS && p != NULL; p = p->next, i++) {
		if (spf_dns_name_at(rr, i, p->host) < 0)
			rc = ARES_ENOMEM;
		else
			rr->num_rr = i + 1;
	}
	if (mx != NULL)
		ares_free_data(mx);
	return rc;
}

/* spf_dns_parse_txt - one string per TXT record, its strings joined. */
static int spf_dns_parse_txt(SPF_dns_rr_t *rr, const unsigned char *buf, int len)
{
	struct ares_txt_ext *txt = NULL;
	const struct ares_txt_ext *p, *next;
	int rc = ares_parse_txt_reply_ext(buf, len, &txt), i = 0;
	size_t total, at;
	char *rec;

	for (p = txt; rc == ARES_SUCCESS && p != NULL; p = next, i++) {
		if ((rec = rules_dns_txt_join(p, &next, &total)) == NULL ||
		    SPF_dns_rr_buf_realloc(rr, i, total + 1) != SPF_E_SUCCESS) {
			free(rec);
			rc = ARES_ENOMEM;
			break;
		}
		/* libspf2 reads C strings: a NUL inside a record becomes a control
		 * character, which no valid SPF record holds (rules_spf_syntax.c) */
		for (at = 0; at < total; at++)
			if (rec[at] == '\0')
				rec[at] = '\1';
		memcpy(rr->rr[i]->txt, rec, total + 1);
		free(rec);
		rr->num_rr = i + 1;
	}
	if (txt != NULL)
		ares_free_data(txt);
	return rc;
}

/* spf_dns_parse_ptr - the PTR names into rr. */
static int spf_dns_parse_ptr(SPF_dns_rr_t *rr, const unsigned char *buf, int len)
{
	static const unsigned char any[4];
	struct hostent *host = NULL;
	char **alias;
	int rc, i = 0;

	/* the address only fills the hostent; the answer is matched by name */
	rc = ares_parse_ptr_reply(buf, len, any, sizeof(any), AF_INET, &host);
	/* RFC 7208 §4.6.4: of more than 10 names, the first 10 are used */
	for (alias = rc == ARES_SUCCESS ? host->h_aliases : NULL;
	     alias != NULL && *alias != NULL && i < SPF_DNS_PTR_MAX; alias++, i++) {
		if (spf_dns_name_at(rr, i, *alias) < 0) {
			rc = ARES_ENOMEM;
			break;
		}
		rr->num_rr = i + 1;
	}
	if (rc == ARES_SUCCESS && rr->num_rr == 0 && host->h_name != NULL && host->h_name[0] != '\0') {
		if (spf_dns_name_at(rr, 0, host->h_name) < 0)
			rc = ARES_ENOMEM;
		else
			rr->num_rr = 1;
	}
	if (host != NULL)
		ares_free_hostent(host);
	return rc;
}

/* What parses an answer of each type. */
static const struct {
	int type;
	int (*parse)(SPF_dns_rr_t *rr, const unsigned char *buf, int len);
} spf_dns_parsers[] = {
	{ns_t_a, spf_dns_parse_addrs},  {ns_t_aaaa, spf_dns_parse_addrs},
	{ns_t_mx, spf_dns_parse_mx},    {ns_t_txt, spf_dns_parse_txt},
	{ns_t_ptr, spf_dns_parse_ptr},
};

/* spf_dns_ask - one query through the rules' channel, as libspf2's rr. */
static SPF_dns_rr_t *spf_dns_ask(struct rules_spf_dns *d, const char *domain, ns_type type)
{
	unsigned char *answer = NULL;
	size_t len = 0, i;
	uint64_t now = spf_dns_now_ms();
	enum rules_dns_result res;
	SPF_dns_rr_t *rr;
	int rc = ARES_ENOTIMP;

	if (now >= d->deadline_ms) {
		d->over = RULES_SPF_OVER_TIME;
		return SPF_dns_rr_new_init(&d->server, domain, type, 0, TRY_AGAIN);
	}
	if (rules_zone_name_check(domain, strlen(domain)) == 0)
		return SPF_dns_rr_new_init(&d->server, domain, type, 0, HOST_NOT_FOUND);
	d->queries++;
	res = rules_dns_query(d->L, domain, type, (unsigned)(d->deadline_ms - now), &answer, &len);
	if (res == RULES_DNS_NXDOMAIN)
		return SPF_dns_rr_new_init(&d->server, domain, type, 0, HOST_NOT_FOUND);
	if (res == RULES_DNS_NODATA)
		return SPF_dns_rr_new_init(&d->server, domain, type, 0, NO_DATA);
	if (res != RULES_DNS_ANSWER) {
		d->failed = 1;
		return SPF_dns_rr_new_init(&d->server, domain, type, 0, TRY_AGAIN);
	}
	rr = SPF_dns_rr_new_init(&d->server, domain, type, 0, NETDB_SUCCESS);
	for (i = 0; rr != NULL && i < sizeof(spf_dns_parsers) / sizeof(spf_dns_parsers[0]); i++)
		if (spf_dns_parsers[i].type == (int)type)
			rc = spf_dns_parsers[i].parse(rr, answer, (int)len);
	free(answer);
	if (rr != NULL && rc != ARES_SUCCESS) {
		rr->num_rr = 0;
		rr->herrno = rc == ARES_ENODATA ? NO_DATA : TRY_AGAIN;
	}
	return rr;
}

/* spf_dns_kept - a copy of the answer kept for (domain, type), or NULL. */
static SPF_dns_rr_t *spf_dns_kept(struct rules_spf_dns *d, const char *domain, ns_type type)
{
	struct rules_spf_cached *c;
	SPF_dns_rr_t *copy = NULL;

	for (c = d->kept; c != NULL; c = c->next)
		if (c->rr->rr_type == type && c->rr->domain != NULL &&
		    strcasecmp(c->rr->domain, domain) == 0) {
			if (SPF_dns_rr_dup(&copy, c->rr) != SPF_E_SUCCESS && copy != NULL) {
				SPF_dns_rr_free(copy);
				copy = NULL;
			}
			return copy;
		}
	return NULL;
}

/* spf_dns_keep - keep a copy of an answer (not failures: they end the check). */
static void spf_dns_keep(struct rules_spf_dns *d, SPF_dns_rr_t *rr)
{
	struct rules_spf_cached *c;

	if (rr->herrno == TRY_AGAIN || rr->domain == NULL || (c = malloc(sizeof(*c))) == NULL)
		return;
	if (SPF_dns_rr_dup(&c->rr, rr) != SPF_E_SUCCESS) {
		if (c->rr != NULL)
			SPF_dns_rr_free(c->rr);
		free(c);
		return;
	}
	c->next = d->kept;
	d->kept = c;
}

/* spf_dns_is_follow_up - whether this lookup is for the addresses of the
 * next name the last MX or PTR answer gave (not a term of its own). */
static int spf_dns_is_follow_up(struct rules_spf_dns *d, const char *domain, ns_type type)
{
	if ((type == ns_t_a || type == ns_t_aaaa) && d->next < d->nfollow &&
	    strcasecmp(d->follow[d->next], domain) == 0) {
		d->next++;
		return 1;
	}
	d->nfollow = d->next = 0;
	return 0;
}

/* spf_dns_note_follow - the names of an MX or PTR answer, looked up next. */
static void spf_dns_note_follow(struct rules_spf_dns *d, const SPF_dns_rr_t *rr)
{
	int i;

	d->nfollow = d->next = 0;
	d->follow_ptr = rr->rr_type == ns_t_ptr;
	if (rr->herrno != NETDB_SUCCESS || (rr->rr_type != ns_t_mx && rr->rr_type != ns_t_ptr))
		return;
	for (i = 0; i < rr->num_rr && d->nfollow < RULES_SPF_FOLLOW_MAX; i++)
		if (strlen(rr->rr[i]->mx) < RULES_SPF_NAME_MAX)
			strcpy(d->follow[d->nfollow++], rr->rr[i]->mx);
}

/* spf_dns_note_record - keep the checked domain's SPF record text. */
static void spf_dns_note_record(struct rules_spf_dns *d, const SPF_dns_rr_t *rr)
{
	const char *txt; /* libspf2's txt[1] is allocated longer: index a pointer */
	int i;

	for (i = 0; rr->herrno == NETDB_SUCCESS && i < rr->num_rr && d->record == NULL; i++) {
		txt = rr->rr[i]->txt;
		if (strncasecmp(txt, "v=spf1", 6) == 0 && (txt[6] == ' ' || txt[6] == '\0'))
			d->record = strdup(txt);
	}
}

/* spf_dns_void - whether an answer is a void lookup (RFC 7208 §4.6.4). */
static int spf_dns_void(const SPF_dns_rr_t *rr)
{
	return rr->herrno == HOST_NOT_FOUND || rr->herrno == NO_DATA ||
	       (rr->herrno == NETDB_SUCCESS && rr->num_rr == 0);
}

/* spf_dns_bad_record - whether a TXT answer holds an SPF record with a
 * syntax error; then the check ends (rr answers TRY_AGAIN) with permerror
 * and the reason in d->syntax. */
static int spf_dns_bad_record(struct rules_spf_dns *d, const char *domain, SPF_dns_rr_t *rr)
{
	char why[128];
	int i;

	for (i = 0; rr->herrno == NETDB_SUCCESS && i < rr->num_rr; i++)
		if (rules_spf_syntax_check(rr->rr[i]->txt, strlen(rr->rr[i]->txt), why,
					   sizeof(why)) < 0) {
			d->over = RULES_SPF_SYNTAX;
			snprintf(d->syntax, sizeof(d->syntax), "the SPF record of %.60s: %s", domain,
				 why);
			rr->herrno = TRY_AGAIN;
			rr->num_rr = 0;
			return 1;
		}
	return 0;
}

/* spf_dns_lookup - libspf2's lookup: counted, asked, kept. Never NULL
 * unless memory ran out (libspf2 then aborts). */
static SPF_dns_rr_t *spf_dns_lookup(SPF_dns_server_t *server, const char *domain, ns_type type,
				    int should_cache)
{
	struct rules_spf_dns *d = server->hook;
	SPF_dns_rr_t *rr;
	int term, top, failed;

	(void)should_cache;
	if (type == ns_t_spf)
		return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
	if (d->replay) {
		rr = spf_dns_kept(d, domain, type);
		return rr != NULL ? rr : SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
	}
	top = !d->started && type == ns_t_txt;
	d->started = 1;
	term = !top && !spf_dns_is_follow_up(d, domain, type);
	if (term && ++d->terms > RULES_SPF_TERMS_MAX) {
		d->over = RULES_SPF_OVER_TERMS;
		return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
	}
	failed = d->failed;
	if ((rr = spf_dns_kept(d, domain, type)) == NULL) {
		if ((rr = spf_dns_ask(d, domain, type)) == NULL)
			return NULL;
		spf_dns_keep(d, rr);
	}
	/* RFC 7208 §5.5: a PTR name whose addresses cannot be had is skipped */
	if (!top && !term && d->follow_ptr && rr->herrno == TRY_AGAIN &&
	    d->over == RULES_SPF_WITHIN) {
		rr->herrno = HOST_NOT_FOUND;
		d->failed = failed;
	}
	if (term && spf_dns_void(rr) && ++d->voids > RULES_SPF_VOIDS_MAX) {
		d->over = RULES_SPF_OVER_VOIDS;
		rr->herrno = TRY_AGAIN;
		rr->num_rr = 0;
		return rr;
	}
	if (type == ns_t_txt && spf_dns_bad_record(d, domain, rr))
		return rr;
	if (top)
		spf_dns_note_record(d, rr);
	if (term)
		spf_dns_note_follow(d, rr);
	return rr;
}

/* spf_dns_expand - one macro-string of the exp= text, expanded, appended to
 * out (a malloc'ed string, *out NULL at first). */
static SPF_errcode_t spf_dns_expand(struct rules_spf_dns *d, SPF_response_t *scratch,
				    const char *piece, char **out)
{
	SPF_server_t *server = d->request->spf_server;
	SPF_macro_t *macro = NULL;
	char *buf = NULL, *joined;
	size_t buflen = 0, had = *out != NULL ? strlen(*out) : 0;
	SPF_errcode_t err = SPF_record_compile_macro(server, scratch, &macro, piece);

	if (err == SPF_E_SUCCESS)
		/* the macro's data follows its header (libspf2's SPF_macro_data) */
		err = SPF_record_expand_data(server, d->request, scratch,
					     (SPF_data_t *)((char *)macro + sizeof(*macro)),
					     macro->macro_len, &buf, &buflen);
	if (err == SPF_E_SUCCESS && buf != NULL) {
		if ((joined = realloc(*out, had + strlen(buf) + 2)) == NULL) {
			err = SPF_E_NO_MEMORY;
		} else {
			snprintf(joined + had, strlen(buf) + 2, "%s%s", had > 0 ? " " : "", buf);
			*out = joined;
		}
	}
	free(buf);
	if (macro != NULL)
		SPF_macro_free(macro);
	return err;
}

/* spf_dns_is_ascii - whether s is printable US-ASCII and spaces only. */
static int spf_dns_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || (unsigned char)*s > '~')
			return 0;
	return 1;
}

/* spf_dns_get_exp - the exp= text of domain, its macros expanded, into
 * *bufp. Not counted (RFC 7208 §6.2); no text unless exactly one TXT
 * record. libspf2's macro compiler stops at a space, so each word of the
 * explain-string (RFC 7208 §6.2: macro-strings and spaces) is expanded
 * alone. */
static SPF_errcode_t spf_dns_get_exp(SPF_server_t *spf_server, const char *domain, char **bufp,
				     size_t *buflenp)
{
	struct rules_spf_dns *d = spf_server->resolver->hook;
	SPF_errcode_t err = SPF_E_SUCCESS;
	SPF_response_t *scratch;
	char *text, *word, *save = NULL, *out = NULL;
	SPF_dns_rr_t *rr;
	size_t len;

	if (d->replay || d->request == NULL)
		return SPF_E_DNS_ERROR;
	if ((rr = spf_dns_kept(d, domain, ns_t_txt)) == NULL &&
	    (rr = spf_dns_ask(d, domain, ns_t_txt)) == NULL)
		return SPF_E_NO_MEMORY;
	/* RFC 7208 §6.2: an explanation that is not US-ASCII is ignored */
	if (rr->herrno != NETDB_SUCCESS || rr->num_rr != 1 || !spf_dns_is_ascii(rr->rr[0]->txt) ||
	    (text = strdup(rr->rr[0]->txt)) == NULL) {
		SPF_dns_rr_free(rr);
		return SPF_E_DNS_ERROR;
	}
	SPF_dns_rr_free(rr);
	if ((scratch = SPF_response_new(d->request)) == NULL) {
		free(text);
		return SPF_E_NO_MEMORY;
	}
	for (word = strtok_r(text, " ", &save); word != NULL && err == SPF_E_SUCCESS;
	     word = strtok_r(NULL, " ", &save))
		err = spf_dns_expand(d, scratch, word, &out);
	if (err == SPF_E_SUCCESS && out != NULL) {
		len = strlen(out) + 1;
		if (*buflenp < len) {
			free(*bufp);
			*bufp = malloc(len);
			*buflenp = *bufp != NULL ? len : 0;
		}
		if (*bufp == NULL)
			err = SPF_E_NO_MEMORY;
		else
			memcpy(*bufp, out, len);
		free(d->explanation);
		d->explanation = out;
		out = NULL;
	}
	free(out);
	free(text);
	SPF_response_free(scratch);
	return err;
}

/* rules_spf_dns_init - see rules_spf.h. */
void rules_spf_dns_init(struct rules_spf_dns *d, lua_State *L)
{
	memset(d, 0, sizeof(*d));
	d->server.lookup = spf_dns_lookup;
	d->server.get_exp = spf_dns_get_exp;
	d->server.name = "vsmtpd";
	d->server.hook = d;
	/* destroy stays NULL: the server is ours, libspf2 never frees it */
	d->L = L;
	d->deadline_ms = spf_dns_now_ms() + RULES_SPF_TIME_MS;
}

/* rules_spf_dns_free - see rules_spf.h. */
void rules_spf_dns_free(struct rules_spf_dns *d)
{
	struct rules_spf_cached *c;

	while ((c = d->kept) != NULL) {
		d->kept = c->next;
		SPF_dns_rr_free(c->rr);
		free(c);
	}
	free(d->record);
	free(d->explanation);
	d->record = d->explanation = NULL;
}
