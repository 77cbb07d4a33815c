/*
 * dmarc_report.c - RFC 7489 aggregate reports from the queue's DMARC
 * records (one JSON object a line, see docs/spool.md).
 *
 * A record counts when its time falls in the report's range and a DMARC
 * record was published for its From domain (it has a policy domain and
 * p=): nobody asked for a report otherwise. Records are grouped by policy
 * domain, one report each, whose policy_published is the one of the
 * latest record seen; within a report, the messages that agree on
 * everything a row says (source IP, applied disposition, DMARC-aligned
 * DKIM and SPF, the reason for an override, header and envelope From, the
 * DKIM and SPF results) make one row with their count. The disposition is
 * what was applied (rejected: reject, quarantined: quarantine, otherwise
 * none); when it differs from what the policy asked, the reason is
 * sampled_out (pct left the message out) or local_policy. Rows are found
 * by a hash of their JSON text; the XML is printed with every text
 * escaped.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "dmarc_report.h"

#define DMARC_REPORT_BUCKETS 4096

struct dmarc_row {
	cJSON *row;      /* what the row says (source_ip, disposition, ..., auth) */
	char *key;       /* row printed, with the policy domain: the group */
	uint64_t count;
	struct dmarc_row *hnext;
};

struct dmarc_domain {
	char *name;
	cJSON *policy; /* domain, adkim, aspf, p, sp, pct of the latest record */
	struct dmarc_row **rows;
	size_t nrows, cap;
};

struct dmarc_report_set {
	struct dmarc_domain *domains;
	size_t ndomains, cap;
	struct dmarc_row *buckets[DMARC_REPORT_BUCKETS];
};

/* The applied disposition of each action the queue records. */
static const struct {
	const char *action, *disposition;
} dmarc_actions[] = {
    {"rejected", "reject"},
    {"quarantined", "quarantine"},
    {"queued", "none"},
    {"held", "none"},
};

/* The results appendix C allows; anything else is reported as the last. */
static const char *const dmarc_dkim_results[] = {"pass",      "fail",      "policy", "neutral",
						 "temperror", "permerror", "none"};
static const char *const dmarc_spf_results[] = {"pass",      "fail",      "softfail", "neutral",
						"temperror", "permerror", "none"};

/* dmarc_report_set_new - see dmarc_report.h. */
struct dmarc_report_set *dmarc_report_set_new(void)
{
	return calloc(1, sizeof(struct dmarc_report_set));
}

/* dmarc_report_set_free - see dmarc_report.h. */
void dmarc_report_set_free(struct dmarc_report_set *set)
{
	size_t i, j;

	if (set == NULL)
		return;
	for (i = 0; i < set->ndomains; i++) {
		for (j = 0; j < set->domains[i].nrows; j++) {
			cJSON_Delete(set->domains[i].rows[j]->row);
			free(set->domains[i].rows[j]->key);
			free(set->domains[i].rows[j]);
		}
		free(set->domains[i].rows);
		free(set->domains[i].name);
		cJSON_Delete(set->domains[i].policy);
	}
	free(set->domains);
	free(set);
}

/* dmarc_str - the string at key of obj, NULL when absent or not a string. */
static const char *dmarc_str(const cJSON *obj, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* dmarc_in - s when it is one of the n names of list, else the last name. */
static const char *dmarc_in(const char *s, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; s != NULL && i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return list[i];
	return list[n - 1];
}

/* dmarc_hash - FNV-1a of s. */
static size_t dmarc_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)(h % DMARC_REPORT_BUCKETS);
}

/* dmarc_domain_of - the report of policy domain name, added when new; NULL out of memory. */
static struct dmarc_domain *dmarc_domain_of(struct dmarc_report_set *set, const char *name)
{
	struct dmarc_domain *d;
	size_t i;

	for (i = 0; i < set->ndomains; i++)
		if (strcmp(set->domains[i].name, name) == 0)
			return &set->domains[i];
	if (set->ndomains == set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 8;

		if ((d = realloc(set->domains, cap * sizeof(*d))) == NULL)
			return NULL;
		set->domains = d;
		set->cap = cap;
	}
	d = &set->domains[set->ndomains];
	memset(d, 0, sizeof(*d));
	if ((d->name = strdup(name)) == NULL)
		return NULL;
	set->ndomains++;
	return d;
}

/* dmarc_policy - the published policy of a record: domain, adkim, aspf, p, sp, pct. */
static cJSON *dmarc_policy(const cJSON *rec, const char *domain)
{
	static const char *const keys[] = {"adkim", "aspf", "p", "sp"};
	const cJSON *pct = cJSON_GetObjectItemCaseSensitive(rec, "pct");
	cJSON *p = cJSON_CreateObject();
	const char *v;
	size_t i;

	if (p == NULL || cJSON_AddStringToObject(p, "domain", domain) == NULL)
		goto fail;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if ((v = dmarc_str(rec, keys[i])) != NULL && cJSON_AddStringToObject(p, keys[i], v) == NULL)
			goto fail;
	if (cJSON_AddNumberToObject(p, "pct", cJSON_IsNumber(pct) ? pct->valuedouble : 100) == NULL)
		goto fail;
	return p;
fail:
	cJSON_Delete(p);
	return NULL;
}

/* dmarc_applied - the applied disposition of a record and the reason it
 * differs from the evaluated one (NULL when it does not). */
static const char *dmarc_applied(const cJSON *rec, const char **reason)
{
	const char *action = dmarc_str(rec, "action"), *evaluated = dmarc_str(rec, "disposition");
	const char *applied = "none";
	size_t i;

	for (i = 0; action != NULL && i < sizeof(dmarc_actions) / sizeof(dmarc_actions[0]); i++)
		if (strcmp(action, dmarc_actions[i].action) == 0)
			applied = dmarc_actions[i].disposition;
	if (evaluated == NULL)
		evaluated = "none";
	*reason = strcmp(applied, evaluated) == 0 ? NULL
		  : cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rec, "sampled")) ? "sampled_out"
										      : "local_policy";
	return applied;
}

/* dmarc_auth - the auth_results of a record: its DKIM signatures and its SPF result. */
static cJSON *dmarc_auth(const cJSON *rec)
{
	const cJSON *dkim = cJSON_GetObjectItemCaseSensitive(rec, "dkim"), *sig;
	const cJSON *spf = cJSON_GetObjectItemCaseSensitive(rec, "spf");
	cJSON *auth = cJSON_CreateObject(), *list, *o;
	const char *from = dmarc_str(rec, "envelope_from");

	if (auth == NULL || (list = cJSON_AddArrayToObject(auth, "dkim")) == NULL)
		goto fail;
	cJSON_ArrayForEach(sig, dkim)
	{
		if ((o = cJSON_CreateObject()) == NULL)
			goto fail;
		cJSON_AddItemToArray(list, o);
		if (cJSON_AddStringToObject(o, "domain", dmarc_str(sig, "domain") ? dmarc_str(sig, "domain") : "") == NULL ||
		    cJSON_AddStringToObject(o, "selector", dmarc_str(sig, "selector") ? dmarc_str(sig, "selector") : "") == NULL ||
		    cJSON_AddStringToObject(o, "result", dmarc_in(dmarc_str(sig, "result"), dmarc_dkim_results, sizeof(dmarc_dkim_results) / sizeof(dmarc_dkim_results[0]))) == NULL)
			goto fail;
	}
	if ((o = cJSON_AddObjectToObject(auth, "spf")) == NULL ||
	    cJSON_AddStringToObject(o, "domain", dmarc_str(spf, "domain") ? dmarc_str(spf, "domain") : from ? from : "") == NULL ||
	    cJSON_AddStringToObject(o, "scope", dmarc_str(spf, "scope") && strcmp(dmarc_str(spf, "scope"), "helo") == 0 ? "helo" : "mfrom") == NULL ||
	    cJSON_AddStringToObject(o, "result", dmarc_in(dmarc_str(spf, "result"), dmarc_spf_results, sizeof(dmarc_spf_results) / sizeof(dmarc_spf_results[0]))) == NULL)
		goto fail;
	return auth;
fail:
	cJSON_Delete(auth);
	return NULL;
}

/* dmarc_row_of - what a record's row says; NULL when it lacks a source or From. */
static cJSON *dmarc_row_of(const cJSON *rec)
{
	const char *ip = dmarc_str(rec, "source_ip"), *from = dmarc_str(rec, "header_from");
	const char *reason, *applied = dmarc_applied(rec, &reason);
	const char *envfrom = dmarc_str(rec, "envelope_from");
	cJSON *row, *auth;

	if (ip == NULL || from == NULL || (row = cJSON_CreateObject()) == NULL)
		return NULL;
	if (cJSON_AddStringToObject(row, "source_ip", ip) == NULL ||
	    cJSON_AddStringToObject(row, "disposition", applied) == NULL ||
	    cJSON_AddStringToObject(row, "dkim", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "dkim_aligned")) ? "pass" : "fail") == NULL ||
	    cJSON_AddStringToObject(row, "spf", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "spf_aligned")) ? "pass" : "fail") == NULL ||
	    (reason != NULL && cJSON_AddStringToObject(row, "reason", reason) == NULL) ||
	    cJSON_AddStringToObject(row, "header_from", from) == NULL ||
	    cJSON_AddStringToObject(row, "envelope_from", envfrom != NULL ? envfrom : "") == NULL ||
	    (auth = dmarc_auth(rec)) == NULL) {
		cJSON_Delete(row);
		return NULL;
	}
	cJSON_AddItemToObject(row, "auth", auth);
	return row;
}

/* dmarc_count - add one message to row of domain d; 1, or -1 out of memory. */
static int dmarc_count(struct dmarc_report_set *set, struct dmarc_domain *d, cJSON *row)
{
	char *text = cJSON_PrintUnformatted(row), *key;
	struct dmarc_row *r, **rows;
	size_t h, len;

	if (text == NULL)
		return -1;
	len = strlen(d->name) + strlen(text) + 2;
	if ((key = malloc(len)) == NULL) {
		free(text);
		return -1;
	}
	snprintf(key, len, "%s %s", d->name, text);
	free(text);
	h = dmarc_hash(key);
	for (r = set->buckets[h]; r != NULL && strcmp(r->key, key) != 0; r = r->hnext)
		;
	if (r != NULL) {
		r->count++;
		free(key);
		cJSON_Delete(row);
		return 1;
	}
	if (d->nrows == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 16;

		if ((rows = realloc(d->rows, cap * sizeof(*rows))) == NULL)
			goto fail;
		d->rows = rows;
		d->cap = cap;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto fail;
	r->row = row;
	r->key = key;
	r->count = 1;
	r->hnext = set->buckets[h];
	set->buckets[h] = r;
	d->rows[d->nrows++] = r;
	return 1;
fail:
	free(key);
	cJSON_Delete(row);
	return -1;
}

/* dmarc_report_add - see dmarc_report.h. */
int dmarc_report_add(struct dmarc_report_set *set, const char *line, size_t len, int64_t begin,
		     int64_t end, const char *only)
{
	cJSON *rec = cJSON_ParseWithLength(line, len), *row, *policy;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "time");
	const char *domain = dmarc_str(rec, "policy_domain");
	struct dmarc_domain *d;
	int rc = -1;

	if (!cJSON_IsObject(rec) || !cJSON_IsNumber(t))
		goto out;
	rc = 0;
	if ((int64_t)t->valuedouble < begin || (int64_t)t->valuedouble > end || domain == NULL ||
	    dmarc_str(rec, "p") == NULL || (only != NULL && strcasecmp(only, domain) != 0))
		goto out;
	rc = -1;
	if ((row = dmarc_row_of(rec)) == NULL)
		goto out;
	if ((d = dmarc_domain_of(set, domain)) == NULL || (policy = dmarc_policy(rec, domain)) == NULL) {
		cJSON_Delete(row);
		goto out;
	}
	cJSON_Delete(d->policy);
	d->policy = policy;
	rc = dmarc_count(set, d, row);
out:
	cJSON_Delete(rec);
	return rc;
}

/* dmarc_report_count - see dmarc_report.h. */
size_t dmarc_report_count(const struct dmarc_report_set *set)
{
	return set->ndomains;
}

/* dmarc_report_domain - see dmarc_report.h. */
const char *dmarc_report_domain(const struct dmarc_report_set *set, size_t i)
{
	return i < set->ndomains ? set->domains[i].name : NULL;
}

/* dmarc_xml - one element <name>text</name> at the indent, text escaped. */
static void dmarc_xml(FILE *fp, int indent, const char *name, const char *text)
{
	fprintf(fp, "%*s<%s>", indent, "", name);
	for (; text != NULL && *text != '\0'; text++) {
		switch (*text) {
		case '&': fputs("&amp;", fp); break;
		case '<': fputs("&lt;", fp); break;
		case '>': fputs("&gt;", fp); break;
		case '"': fputs("&quot;", fp); break;
		case '\'': fputs("&apos;", fp); break;
		default:
			/* no control character is allowed in XML 1.0 but these */
			if ((unsigned char)*text >= 0x20 || strchr("\t\n\r", *text) != NULL)
				fputc(*text, fp);
		}
	}
	fprintf(fp, "</%s>\n", name);
}

/* dmarc_xml_field - dmarc_xml of obj's string at key, when it has one. */
static void dmarc_xml_field(FILE *fp, int indent, const cJSON *obj, const char *key)
{
	if (dmarc_str(obj, key) != NULL)
		dmarc_xml(fp, indent, key, dmarc_str(obj, key));
}

/* dmarc_xml_row - one <record>. */
static void dmarc_xml_row(FILE *fp, const struct dmarc_row *r)
{
	const cJSON *auth = cJSON_GetObjectItemCaseSensitive(r->row, "auth"), *sig;
	char count[32];

	snprintf(count, sizeof(count), "%llu", (unsigned long long)r->count);
	fputs("  <record>\n    <row>\n", fp);
	dmarc_xml_field(fp, 6, r->row, "source_ip");
	dmarc_xml(fp, 6, "count", count);
	fputs("      <policy_evaluated>\n", fp);
	dmarc_xml_field(fp, 8, r->row, "disposition");
	dmarc_xml_field(fp, 8, r->row, "dkim");
	dmarc_xml_field(fp, 8, r->row, "spf");
	if (dmarc_str(r->row, "reason") != NULL) {
		fputs("        <reason>\n", fp);
		dmarc_xml(fp, 10, "type", dmarc_str(r->row, "reason"));
		fputs("        </reason>\n", fp);
	}
	fputs("      </policy_evaluated>\n    </row>\n    <identifiers>\n", fp);
	dmarc_xml_field(fp, 6, r->row, "envelope_from");
	dmarc_xml_field(fp, 6, r->row, "header_from");
	fputs("    </identifiers>\n    <auth_results>\n", fp);
	cJSON_ArrayForEach(sig, cJSON_GetObjectItemCaseSensitive(auth, "dkim"))
	{
		fputs("      <dkim>\n", fp);
		dmarc_xml_field(fp, 8, sig, "domain");
		if (dmarc_str(sig, "selector")[0] != '\0')
			dmarc_xml_field(fp, 8, sig, "selector");
		dmarc_xml_field(fp, 8, sig, "result");
		fputs("      </dkim>\n", fp);
	}
	fputs("      <spf>\n", fp);
	dmarc_xml_field(fp, 8, cJSON_GetObjectItemCaseSensitive(auth, "spf"), "domain");
	dmarc_xml_field(fp, 8, cJSON_GetObjectItemCaseSensitive(auth, "spf"), "scope");
	dmarc_xml_field(fp, 8, cJSON_GetObjectItemCaseSensitive(auth, "spf"), "result");
	fputs("      </spf>\n    </auth_results>\n  </record>\n", fp);
}

/* dmarc_report_write - see dmarc_report.h. */
int dmarc_report_write(const struct dmarc_report_set *set, size_t i,
		       const struct dmarc_report_meta *meta, FILE *fp)
{
	const struct dmarc_domain *d = &set->domains[i];
	char num[320];
	size_t j;

	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n", fp);
	dmarc_xml(fp, 2, "version", "1.0");
	fputs("  <report_metadata>\n", fp);
	dmarc_xml(fp, 4, "org_name", meta->org_name);
	dmarc_xml(fp, 4, "email", meta->email);
	snprintf(num, sizeof(num), "%s.%lld.%lld", d->name, (long long)meta->begin,
		 (long long)meta->end);
	dmarc_xml(fp, 4, "report_id", num);
	fputs("    <date_range>\n", fp);
	snprintf(num, sizeof(num), "%lld", (long long)meta->begin);
	dmarc_xml(fp, 6, "begin", num);
	snprintf(num, sizeof(num), "%lld", (long long)meta->end);
	dmarc_xml(fp, 6, "end", num);
	fputs("    </date_range>\n  </report_metadata>\n  <policy_published>\n", fp);
	dmarc_xml_field(fp, 4, d->policy, "domain");
	dmarc_xml_field(fp, 4, d->policy, "adkim");
	dmarc_xml_field(fp, 4, d->policy, "aspf");
	dmarc_xml_field(fp, 4, d->policy, "p");
	dmarc_xml_field(fp, 4, d->policy, "sp");
	snprintf(num, sizeof(num), "%d",
		 cJSON_GetObjectItemCaseSensitive(d->policy, "pct")->valueint);
	dmarc_xml(fp, 4, "pct", num);
	fputs("  </policy_published>\n", fp);
	for (j = 0; j < d->nrows; j++)
		dmarc_xml_row(fp, d->rows[j]);
	fputs("</feedback>\n", fp);
	return fflush(fp) == 0 && !ferror(fp) ? 0 : -1;
}
