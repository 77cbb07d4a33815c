/*
 * envelope.c - building, serializing and parsing message envelopes.
 *
 * JSON through cJSON: readable with standard tools when an administrator
 * inspects the spool, and extensible without a format version bump (readers
 * ignore keys they do not know).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "envelope.h"

/* envelope_set - replace a string field with a copy of value. */
int envelope_set(char **field, const char *value)
{
	char *copy = NULL;

	if (value != NULL && (copy = strdup(value)) == NULL)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

/* envelope_add_rcpt - append a recipient. */
int envelope_add_rcpt(struct envelope *env, const char *address, unsigned notify,
		      const char *orcpt_type, const char *orcpt)
{
	struct envelope_rcpt *rcpts, *r;

	rcpts = realloc(env->rcpts, (env->nrcpts + 1) * sizeof(*rcpts));
	if (rcpts == NULL)
		return -1;
	env->rcpts = rcpts;
	r = &rcpts[env->nrcpts];
	memset(r, 0, sizeof(*r));
	r->notify = notify;
	if (envelope_set(&r->address, address) < 0 || envelope_set(&r->orcpt_type, orcpt_type) < 0 ||
	    envelope_set(&r->orcpt, orcpt) < 0) {
		free(r->address);
		free(r->orcpt_type);
		free(r->orcpt);
		return -1;
	}
	env->nrcpts++;
	return 0;
}

/* envelope_copy_rcpts - copy sender and recipients. */
int envelope_copy_rcpts(struct envelope *dst, const struct envelope *src)
{
	size_t i;

	if (envelope_set(&dst->mail_from, src->mail_from) < 0)
		return -1;
	for (i = 0; i < src->nrcpts; i++)
		if (envelope_add_rcpt(dst, src->rcpts[i].address, src->rcpts[i].notify,
				      src->rcpts[i].orcpt_type, src->rcpts[i].orcpt) < 0)
			return -1;
	return 0;
}

/* envelope_swap_rcpts - exchange sender and recipients. */
void envelope_swap_rcpts(struct envelope *a, struct envelope *b)
{
	struct envelope_rcpt *rcpts = a->rcpts;
	size_t n = a->nrcpts;
	char *from = a->mail_from;

	a->rcpts = b->rcpts;
	a->nrcpts = b->nrcpts;
	a->mail_from = b->mail_from;
	b->rcpts = rcpts;
	b->nrcpts = n;
	b->mail_from = from;
}

/* envelope_remove_rcpt - drop one recipient. */
void envelope_remove_rcpt(struct envelope *env, size_t i)
{
	if (i >= env->nrcpts)
		return;
	free(env->rcpts[i].address);
	free(env->rcpts[i].orcpt_type);
	free(env->rcpts[i].orcpt);
	memmove(&env->rcpts[i], &env->rcpts[i + 1], (env->nrcpts - i - 1) * sizeof(env->rcpts[0]));
	env->nrcpts--;
}

/* json_add_string - add key: value when value is set. */
static int json_add_string(cJSON *obj, const char *key, const char *value)
{
	if (value == NULL)
		return 0;
	return cJSON_AddStringToObject(obj, key, value) ? 0 : -1;
}

/* json_add_number - add key: value. */
static int json_add_number(cJSON *obj, const char *key, double value)
{
	return cJSON_AddNumberToObject(obj, key, value) ? 0 : -1;
}

/* json_add_object - add key: the object of the JSON text when text is set. */
static int json_add_object(cJSON *obj, const char *key, const char *text)
{
	cJSON *item;

	if (text == NULL)
		return 0;
	if (!cJSON_IsObject(item = cJSON_Parse(text))) {
		cJSON_Delete(item);
		return -1;
	}
	cJSON_AddItemToObject(obj, key, item);
	return 0;
}

/* json_get_object - the object at key as JSON text into *field; a missing key is fine. */
static int json_get_object(const cJSON *obj, const char *key, char **field)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (item == NULL)
		return 0;
	return cJSON_IsObject(item) && (*field = cJSON_PrintUnformatted(item)) != NULL ? 0 : -1;
}

/* envelope_rcpt_to_json - one recipient as an object. */
static cJSON *envelope_rcpt_to_json(const struct envelope_rcpt *r)
{
	cJSON *obj = cJSON_CreateObject();

	if (obj == NULL || json_add_string(obj, "address", r->address) < 0 ||
	    json_add_number(obj, "notify", r->notify) < 0 ||
	    json_add_string(obj, "orcpt_type", r->orcpt_type) < 0 ||
	    json_add_string(obj, "orcpt", r->orcpt) < 0) {
		cJSON_Delete(obj);
		return NULL;
	}
	return obj;
}

/* envelope_to_json - serialize env. */
char *envelope_to_json(const struct envelope *env)
{
	cJSON *obj = cJSON_CreateObject(), *rcpts, *r;
	char *text = NULL;
	size_t i;

	if (obj == NULL)
		return NULL;
	if (json_add_string(obj, "id", env->id) < 0 ||
	    json_add_number(obj, "received_at", (double)env->received_at) < 0 ||
	    json_add_string(obj, "listener", env->listener) < 0 ||
	    json_add_string(obj, "client_ip", env->client_ip) < 0 ||
	    json_add_number(obj, "client_port", env->client_port) < 0 ||
	    json_add_string(obj, "helo", env->helo) < 0 ||
	    json_add_string(obj, "protocol", env->protocol) < 0 ||
	    json_add_string(obj, "mail_from", env->mail_from ? env->mail_from : "") < 0 ||
	    json_add_number(obj, "body", env->body) < 0 ||
	    json_add_number(obj, "smtputf8", env->smtputf8) < 0 ||
	    json_add_number(obj, "ret", env->ret) < 0 ||
	    json_add_string(obj, "envid", env->envid) < 0 ||
	    json_add_string(obj, "auth", env->auth) < 0 ||
	    json_add_string(obj, "authid", env->authid) < 0 ||
	    json_add_string(obj, "auth_mechanism", env->auth_mechanism) < 0 ||
	    json_add_string(obj, "tls_version", env->tls_version) < 0 ||
	    json_add_string(obj, "tls_cipher", env->tls_cipher) < 0 ||
	    json_add_string(obj, "quarantine", env->quarantine) < 0 ||
	    json_add_string(obj, "hold", env->hold) < 0 ||
	    json_add_string(obj, "relay", env->relay) < 0 ||
	    json_add_string(obj, "delegated_from", env->delegated_from) < 0 ||
	    json_add_string(obj, "delegation_token", env->delegation_token) < 0 ||
	    (env->postq_start && json_add_number(obj, "postq_start", env->postq_start) < 0) ||
	    (env->delegated_rule && json_add_number(obj, "delegated_rule", env->delegated_rule) < 0) ||
	    json_add_string(obj, "delegated_stage", env->delegated_delivery ? "delivery" : NULL) < 0 ||
	    (rcpts = cJSON_AddArrayToObject(obj, "rcpts")) == NULL)
		goto out;
	if ((env->postq_done && cJSON_AddNumberToObject(obj, "postq", 1) == NULL) ||
	    (env->faccept && cJSON_AddNumberToObject(obj, "faccept", 1) == NULL))
		goto out;
	if (json_add_object(obj, "vars", env->vars) < 0 ||
	    json_add_object(obj, "dmarc", env->dmarc) < 0)
		goto out;
	for (i = 0; i < env->nrcpts; i++) {
		if ((r = envelope_rcpt_to_json(&env->rcpts[i])) == NULL)
			goto out;
		cJSON_AddItemToArray(rcpts, r);
	}
	text = cJSON_PrintUnformatted(obj);
out:
	cJSON_Delete(obj);
	return text;
}

/* json_get_string - copy the string at key into *field; a missing key is fine
 * unless required. */
static int json_get_string(const cJSON *obj, const char *key, char **field, int required)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (item == NULL)
		return required ? -1 : 0;
	if (!cJSON_IsString(item))
		return -1;
	return envelope_set(field, item->valuestring);
}

/* json_get_number - the number at key, or def when absent; -1 when not a number. */
static int json_get_number(const cJSON *obj, const char *key, double def, double *out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (item == NULL) {
		*out = def;
		return 0;
	}
	if (!cJSON_IsNumber(item))
		return -1;
	*out = item->valuedouble;
	return 0;
}

/* envelope_rcpt_from_json - parse one recipient object and append it. */
static int envelope_rcpt_from_json(struct envelope *env, const cJSON *obj)
{
	struct envelope_rcpt r = {0};
	double notify;
	int rc = -1;

	if (!cJSON_IsObject(obj) || json_get_string(obj, "address", &r.address, 1) < 0 ||
	    json_get_string(obj, "orcpt_type", &r.orcpt_type, 0) < 0 ||
	    json_get_string(obj, "orcpt", &r.orcpt, 0) < 0 ||
	    json_get_number(obj, "notify", 0, &notify) < 0)
		goto out;
	rc = envelope_add_rcpt(env, r.address, (unsigned)notify, r.orcpt_type, r.orcpt);
out:
	free(r.address);
	free(r.orcpt_type);
	free(r.orcpt);
	return rc;
}

/* envelope_from_json - parse an envelope. */
int envelope_from_json(struct envelope *env, const char *text, size_t len)
{
	cJSON *obj = cJSON_ParseWithLength(text, len);
	const cJSON *rcpts, *r, *id;
	double received, port, body, utf8, ret, postq, faccept, drule, pstart;
	char *dstage = NULL;
	int rc = -1;

	if (obj == NULL || !cJSON_IsObject(obj))
		goto out;
	id = cJSON_GetObjectItemCaseSensitive(obj, "id");
	if (!cJSON_IsString(id) || strlen(id->valuestring) > ENVELOPE_ID_MAX)
		goto out;
	strcpy(env->id, id->valuestring);
	if (json_get_number(obj, "received_at", 0, &received) < 0 ||
	    json_get_number(obj, "client_port", 0, &port) < 0 ||
	    json_get_number(obj, "body", 0, &body) < 0 ||
	    json_get_number(obj, "smtputf8", 0, &utf8) < 0 ||
	    json_get_number(obj, "ret", 0, &ret) < 0 ||
	    json_get_number(obj, "postq", 0, &postq) < 0 ||
	    json_get_number(obj, "faccept", 0, &faccept) < 0 ||
	    json_get_number(obj, "delegated_rule", 0, &drule) < 0 || drule < 0 || drule > 1e6 ||
	    json_get_string(obj, "delegated_from", &env->delegated_from, 0) < 0 ||
	    json_get_string(obj, "delegation_token", &env->delegation_token, 0) < 0 ||
	    json_get_string(obj, "delegated_stage", &dstage, 0) < 0 ||
	    json_get_number(obj, "postq_start", 0, &pstart) < 0 || pstart < 0 || pstart > 1e6 ||
	    json_get_string(obj, "listener", &env->listener, 0) < 0 ||
	    json_get_string(obj, "client_ip", &env->client_ip, 0) < 0 ||
	    json_get_string(obj, "helo", &env->helo, 0) < 0 ||
	    json_get_string(obj, "protocol", &env->protocol, 0) < 0 ||
	    json_get_string(obj, "mail_from", &env->mail_from, 1) < 0 ||
	    json_get_string(obj, "envid", &env->envid, 0) < 0 ||
	    json_get_string(obj, "auth", &env->auth, 0) < 0 ||
	    json_get_string(obj, "authid", &env->authid, 0) < 0 ||
	    json_get_string(obj, "auth_mechanism", &env->auth_mechanism, 0) < 0 ||
	    json_get_string(obj, "tls_version", &env->tls_version, 0) < 0 ||
	    json_get_string(obj, "tls_cipher", &env->tls_cipher, 0) < 0 ||
	    json_get_string(obj, "quarantine", &env->quarantine, 0) < 0 ||
	    json_get_string(obj, "hold", &env->hold, 0) < 0 ||
	    json_get_string(obj, "relay", &env->relay, 0) < 0)
		goto out;
	if (json_get_object(obj, "vars", &env->vars) < 0 ||
	    json_get_object(obj, "dmarc", &env->dmarc) < 0)
		goto out;
	env->received_at = (int64_t)received;
	env->client_port = (unsigned)port;
	env->body = (int)body;
	env->smtputf8 = (int)utf8;
	env->ret = (int)ret;
	env->postq_done = postq != 0;
	env->faccept = faccept != 0;
	env->delegated_rule = (unsigned)drule;
	env->postq_start = (unsigned)pstart;
	env->delegated_delivery = dstage != NULL && strcmp(dstage, "delivery") == 0;
	rcpts = cJSON_GetObjectItemCaseSensitive(obj, "rcpts");
	if (!cJSON_IsArray(rcpts) || cJSON_GetArraySize(rcpts) == 0)
		goto out;
	cJSON_ArrayForEach(r, rcpts)
	{
		if (envelope_rcpt_from_json(env, r) < 0)
			goto out;
	}
	rc = 0;
out:
	free(dstage);
	cJSON_Delete(obj);
	return rc;
}

/* envelope_init_local - the envelope of vsmtpd's own messages. */
int envelope_init_local(struct envelope *env, const char *host, const char *from)
{
	env->received_at = time(NULL);
	env->postq_done = 1;
	return envelope_set(&env->listener, "local") < 0 ||
			       envelope_set(&env->client_ip, "127.0.0.1") < 0 ||
			       envelope_set(&env->helo, host) < 0 ||
			       envelope_set(&env->protocol, "ESMTP") < 0 ||
			       envelope_set(&env->mail_from, from) < 0
		   ? -1
		   : 0;
}

/* envelope_clear - free everything env holds. */
void envelope_clear(struct envelope *env)
{
	size_t i;

	for (i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i].address);
		free(env->rcpts[i].orcpt_type);
		free(env->rcpts[i].orcpt);
	}
	free(env->rcpts);
	free(env->listener);
	free(env->client_ip);
	free(env->helo);
	free(env->protocol);
	free(env->mail_from);
	free(env->envid);
	free(env->auth);
	free(env->authid);
	free(env->auth_mechanism);
	free(env->tls_version);
	free(env->tls_cipher);
	free(env->quarantine);
	free(env->hold);
	free(env->relay);
	free(env->delegated_from);
	free(env->delegation_token);
	free(env->vars);
	free(env->dmarc);
	memset(env, 0, sizeof(*env));
}
