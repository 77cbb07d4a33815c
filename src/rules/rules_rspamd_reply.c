/*
 * rules_rspamd_reply.c - rspamd's /checkv2 reply, a JSON object, read with
 * cJSON into struct rspamd_reply:
 *
 *   {"action": "add header", "score": 6.1, "required_score": 15,
 *    "symbols": {"GTUBE": {"name": "GTUBE", "score": 0, "options": [...]}},
 *    "subject": "*** SPAM *** hello",
 *    "milter": {"add_headers": {"X-Spam": "Yes",
 *                               "X-Spamd-Result": {"value": "...", "order": 0},
 *                               "X-Two": [{"value": "a"}, "b"]},
 *               "remove_headers": {"X-Spam": 0}}}
 *
 * Nothing here trusts rspamd: a reply that is not that shape, an action
 * this file does not know, or a header the message library could not take
 * as it is makes the whole reply an error (the call then fails as the
 * service's on_failure says), never a half-applied change. Header values
 * come folded from rspamd's milter_headers module; each fold becomes one
 * space here and the message library folds again when it writes the field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rules_rspamd.h"

/* rspamd's actions, as its replies spell them. */
static const char *const rspamd_actions[] = {
    [RSPAMD_NO_ACTION] = "no action",
    [RSPAMD_GREYLIST] = "greylist",
    [RSPAMD_ADD_HEADER] = "add header",
    [RSPAMD_REWRITE_SUBJECT] = "rewrite subject",
    [RSPAMD_SOFT_REJECT] = "soft reject",
    [RSPAMD_REJECT] = "reject",
};

#define RSPAMD_NACTIONS (sizeof(rspamd_actions) / sizeof(rspamd_actions[0]))

/* A reply holds at most this many symbols, headers and options each: a
 * bound on what one call may make the rules' state hold. */
#define RSPAMD_LIST_MAX 4096

/* rspamd_action_name - "no action", "greylist", ..., as rspamd spells them. */
const char *rspamd_action_name(enum rspamd_action action)
{
	return (size_t)action < RSPAMD_NACTIONS ? rspamd_actions[action] : "?";
}

/* rspamd_name_ok - a header name the message library takes: printable
 * ASCII without ':', 1 to 200 bytes. */
static int rspamd_name_ok(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++)
		if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f || name[i] == ':')
			return 0;
	return i > 0 && i <= 200;
}

/* rspamd_unfold - a malloc'ed copy of v unfolded: a line break and the
 * blanks after it become one space (rspamd folds with "\n\t"), other line
 * breaks are dropped; NULL when v holds another control character (a tab
 * is fine) or memory ran out. */
static char *rspamd_unfold(const char *v)
{
	char *out = malloc(strlen(v) + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;

		if (c == '\r' || c == '\n') {
			if (v[1] == ' ' || v[1] == '\t') {
				while (v[1] == ' ' || v[1] == '\t')
					v++;
				*o++ = ' ';
			}
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			free(out);
			return NULL;
		}
		*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

/* rspamd_grow - make room for one more element of size in *arr: 0 or -1. */
static int rspamd_grow(void *arr, size_t n, size_t size)
{
	void **p = arr, *nw;

	if (n >= RSPAMD_LIST_MAX)
		return -1;
	if ((n & (n - 1)) != 0 && n != 0)
		return 0; /* not a power of two: room is left */
	nw = realloc(*p, (n == 0 ? 1 : n * 2) * size);
	if (nw == NULL)
		return -1;
	*p = nw;
	return 0;
}

/* rspamd_fail - write why into err; returns -1. */
static int rspamd_fail(char *err, size_t errlen, const char *why, const char *name)
{
	if (name != NULL)
		snprintf(err, errlen, "%s: \"%.64s\"", why, name);
	else
		snprintf(err, errlen, "%s", why);
	return -1;
}

/* rspamd_parse_symbol - one entry of "symbols" into r: 0 or -1. */
static int rspamd_parse_symbol(const cJSON *sym, struct rspamd_reply *r, char *err, size_t errlen)
{
	const cJSON *score = cJSON_GetObjectItemCaseSensitive(sym, "score");
	const cJSON *options = cJSON_GetObjectItemCaseSensitive(sym, "options"), *o;
	struct rspamd_symbol *s;

	if (!cJSON_IsObject(sym) || sym->string == NULL)
		return rspamd_fail(err, errlen, "a symbol is not an object", NULL);
	if (rspamd_grow(&r->symbols, r->nsymbols, sizeof(*r->symbols)) < 0)
		return rspamd_fail(err, errlen, "too many symbols or out of memory", NULL);
	s = &r->symbols[r->nsymbols];
	memset(s, 0, sizeof(*s));
	if ((s->name = strdup(sym->string)) == NULL)
		return rspamd_fail(err, errlen, "out of memory", NULL);
	r->nsymbols++;
	if (score != NULL && !cJSON_IsNumber(score))
		return rspamd_fail(err, errlen, "a symbol's score is not a number", s->name);
	s->score = score != NULL ? score->valuedouble : 0;
	if (options == NULL)
		return 0;
	if (!cJSON_IsArray(options))
		return rspamd_fail(err, errlen, "a symbol's options are not a list", s->name);
	cJSON_ArrayForEach(o, options) {
		if (!cJSON_IsString(o))
			return rspamd_fail(err, errlen, "a symbol's option is not a string", s->name);
		if (rspamd_grow(&s->options, s->noptions, sizeof(*s->options)) < 0 ||
		    (s->options[s->noptions] = strdup(o->valuestring)) == NULL)
			return rspamd_fail(err, errlen, "too many options or out of memory", s->name);
		s->noptions++;
	}
	return 0;
}

/* rspamd_add_one - one value of milter.add_headers[name]: a string or
 * {value = string [, order = n]}. 0 or -1. */
static int rspamd_add_one(const char *name, const cJSON *v, struct rspamd_reply *r, char *err,
			  size_t errlen)
{
	const cJSON *value = v, *order = NULL;
	struct rspamd_header *h;

	if (cJSON_IsObject(v)) {
		value = cJSON_GetObjectItemCaseSensitive(v, "value");
		order = cJSON_GetObjectItemCaseSensitive(v, "order");
	}
	if (!cJSON_IsString(value))
		return rspamd_fail(err, errlen, "a header to add has no string value", name);
	if (order != NULL && !cJSON_IsNumber(order))
		return rspamd_fail(err, errlen, "a header's order is not a number", name);
	if (rspamd_grow(&r->add, r->nadd, sizeof(*r->add)) < 0)
		return rspamd_fail(err, errlen, "too many headers or out of memory", name);
	h = &r->add[r->nadd];
	memset(h, 0, sizeof(*h));
	h->order = order == NULL || order->valuedouble < 0 ? -1
		   : order->valuedouble > 1e6		  ? 1000000
							  : (long)order->valuedouble;
	if ((h->name = strdup(name)) == NULL)
		return rspamd_fail(err, errlen, "out of memory", NULL);
	r->nadd++;
	if ((h->value = rspamd_unfold(value->valuestring)) == NULL)
		return rspamd_fail(err, errlen, "a header value holds a control character", name);
	return 0;
}

/* rspamd_parse_milter - the "milter" object: headers to add and remove. */
static int rspamd_parse_milter(const cJSON *milter, struct rspamd_reply *r, char *err,
			       size_t errlen)
{
	const cJSON *add = cJSON_GetObjectItemCaseSensitive(milter, "add_headers");
	const cJSON *rem = cJSON_GetObjectItemCaseSensitive(milter, "remove_headers");
	const cJSON *h, *v;

	if (!cJSON_IsObject(milter))
		return rspamd_fail(err, errlen, "\"milter\" is not an object", NULL);
	if (add != NULL && !cJSON_IsObject(add))
		return rspamd_fail(err, errlen, "\"add_headers\" is not an object", NULL);
	if (rem != NULL && !cJSON_IsObject(rem))
		return rspamd_fail(err, errlen, "\"remove_headers\" is not an object", NULL);
	cJSON_ArrayForEach(h, add) {
		if (!rspamd_name_ok(h->string))
			return rspamd_fail(err, errlen, "not a header name", h->string);
		if (!cJSON_IsArray(h))
			v = h;
		else if ((v = h->child) == NULL)
			continue;
		for (; v != NULL; v = cJSON_IsArray(h) ? v->next : NULL)
			if (rspamd_add_one(h->string, v, r, err, errlen) < 0)
				return -1;
	}
	cJSON_ArrayForEach(h, rem) {
		if (!rspamd_name_ok(h->string))
			return rspamd_fail(err, errlen, "not a header name", h->string);
		if (!cJSON_IsNumber(h))
			return rspamd_fail(err, errlen, "a header to remove has no number", h->string);
		if (rspamd_grow(&r->remove, r->nremove, sizeof(*r->remove)) < 0 ||
		    (r->remove[r->nremove].name = strdup(h->string)) == NULL)
			return rspamd_fail(err, errlen, "too many headers or out of memory", NULL);
		r->remove[r->nremove++].nth = h->valuedouble > 1e6    ? 1000000
					      : h->valuedouble < -1e6 ? -1000000
								      : (long)h->valuedouble;
	}
	return 0;
}

/* rspamd_parse_top - the reply object's fields into r: 0 or -1. */
static int rspamd_parse_top(const cJSON *root, struct rspamd_reply *r, char *err, size_t errlen)
{
	const cJSON *action = cJSON_GetObjectItemCaseSensitive(root, "action");
	const cJSON *score = cJSON_GetObjectItemCaseSensitive(root, "score");
	const cJSON *required = cJSON_GetObjectItemCaseSensitive(root, "required_score");
	const cJSON *symbols = cJSON_GetObjectItemCaseSensitive(root, "symbols");
	const cJSON *subject = cJSON_GetObjectItemCaseSensitive(root, "subject");
	const cJSON *milter = cJSON_GetObjectItemCaseSensitive(root, "milter"), *s;
	size_t i;

	if (!cJSON_IsObject(root))
		return rspamd_fail(err, errlen, "the reply is not a JSON object", NULL);
	if (!cJSON_IsString(action))
		return rspamd_fail(err, errlen, "the reply has no action", NULL);
	for (i = 0; i < RSPAMD_NACTIONS; i++)
		if (strcmp(action->valuestring, rspamd_actions[i]) == 0)
			break;
	if (i == RSPAMD_NACTIONS)
		return rspamd_fail(err, errlen, "unknown action", action->valuestring);
	r->action = (enum rspamd_action)i;
	if (!cJSON_IsNumber(score))
		return rspamd_fail(err, errlen, "the reply has no score", NULL);
	r->score = score->valuedouble;
	if (required != NULL && !cJSON_IsNumber(required))
		return rspamd_fail(err, errlen, "required_score is not a number", NULL);
	r->required_score = required != NULL ? required->valuedouble : 0;
	if (symbols != NULL && !cJSON_IsObject(symbols))
		return rspamd_fail(err, errlen, "\"symbols\" is not an object", NULL);
	cJSON_ArrayForEach(s, symbols)
		if (rspamd_parse_symbol(s, r, err, errlen) < 0)
			return -1;
	if (subject != NULL) {
		if (!cJSON_IsString(subject))
			return rspamd_fail(err, errlen, "\"subject\" is not a string", NULL);
		if ((r->subject = rspamd_unfold(subject->valuestring)) == NULL)
			return rspamd_fail(err, errlen, "the subject holds a control character",
					   NULL);
	}
	if (milter != NULL && rspamd_parse_milter(milter, r, err, errlen) < 0)
		return -1;
	return 0;
}

/* rspamd_reply_parse - rspamd's JSON reply into r: 0, or -1 with why in err. */
int rspamd_reply_parse(const char *json, size_t len, struct rspamd_reply *r, char *err,
		       size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(json, len);
	int rc;

	memset(r, 0, sizeof(*r));
	if (root == NULL)
		return rspamd_fail(err, errlen, "the reply is not JSON", NULL);
	rc = rspamd_parse_top(root, r, err, errlen);
	cJSON_Delete(root);
	if (rc < 0)
		rspamd_reply_free(r);
	return rc;
}

/* rspamd_reply_free - free what r holds and zero it. */
void rspamd_reply_free(struct rspamd_reply *r)
{
	size_t i, j;

	for (i = 0; i < r->nsymbols; i++) {
		for (j = 0; j < r->symbols[i].noptions; j++)
			free(r->symbols[i].options[j]);
		free(r->symbols[i].options);
		free(r->symbols[i].name);
	}
	free(r->symbols);
	for (i = 0; i < r->nadd; i++) {
		free(r->add[i].name);
		free(r->add[i].value);
	}
	free(r->add);
	for (i = 0; i < r->nremove; i++)
		free(r->remove[i].name);
	free(r->remove);
	free(r->subject);
	memset(r, 0, sizeof(*r));
}
