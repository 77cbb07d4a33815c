/*
 * rules_milter_apply.c - what a milter's answers do: the modifications it
 * sends at the end of a message, applied to the message and the envelope
 * the rules see, and the status its decision gives the rule.
 *
 * A modification needs the action the milter asked for when the
 * conversation began (a milter that did not ask to change the sender may
 * not); one that is not allowed, or that names no valid address or field,
 * fails the call, as Postfix does, rather than being dropped in silence.
 * Header values keep the milter's folding (message_field_insert_raw), so a
 * signature computed over its own field stays valid. Recipients are
 * compared as ctx:remove_rcpt compares them. ESMTP arguments of a changed
 * sender or an added recipient are not kept. One end of message may make at
 * most MILTER_CHANGES_MAX changes of MILTER_CHANGE_BYTES_MAX bytes in all.
 *
 * Statuses follow Postfix: a reject refuses the command (550 5.7.1
 * "Command rejected"), at connect it ends the session (554); a tempfail
 * gives 451 4.7.1 (421 at connect); a custom reply replaces either; a
 * discard accepts the message and keeps it out of delivery, in the
 * quarantine queue "discard"; a quarantine puts the message in the
 * quarantine queue named after the service.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rule_objects.h"
#include "rules_internal.h"
#include "rules_milter.h"

static const char *const milter_action_names[] = {
	[MILTER_CONTINUE] = "continue", [MILTER_ACCEPT] = "accept",
	[MILTER_REJECT] = "reject",     [MILTER_TEMPFAIL] = "tempfail",
	[MILTER_DISCARD] = "discard",   [MILTER_QUARANTINE] = "quarantine",
};

/* milter_action_name - the action's name. */
const char *milter_action_name(enum milter_action a)
{
	return a <= MILTER_QUARANTINE ? milter_action_names[a] : "?";
}

/* milter_check_addr_fn - lua_CFunction: the address at 1 checked (a sender
 * when 2 is true), pushed as "local@domain". */
static int milter_check_addr_fn(lua_State *L)
{
	char out[RULE_ADDRESS_TEXT_MAX];

	if (lua_toboolean(L, 2))
		rule_sender_check(L, 1, out, sizeof(out));
	else
		rule_address_check(L, 1, out, sizeof(out));
	lua_pushstring(L, out);
	return 1;
}

/* milter_addr - a milter's "<address>" checked into out; 0, or -1 (err). */
static int milter_addr(lua_State *L, const char *addr, int sender, char *out, size_t outlen,
		       char *err, size_t errlen)
{
	size_t len = strlen(addr);
	int ok;

	if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
		addr++;
		len -= 2;
	}
	lua_pushcfunction(L, milter_check_addr_fn);
	lua_pushlstring(L, addr, len);
	lua_pushboolean(L, sender);
	ok = lua_pcall(L, 2, 1, 0) == LUA_OK;
	if (ok)
		snprintf(out, outlen, "%s", lua_tostring(L, -1));
	else
		snprintf(err, errlen, "the milter sent an invalid address");
	lua_pop(L, 1);
	return ok ? 0 : -1;
}

/* milter_header_edit - ADDHEADER, INSHEADER, CHGHEADER on msg. */
static int milter_header_edit(struct message *msg, const char *sep, const struct milter_reply *r)
{
	ssize_t pos;

	if (r->code == MILTER_R_ADDHEADER)
		return message_field_insert_raw(msg, message_field_count(msg), r->name, sep,
						r->value);
	if (r->code == MILTER_R_INSHEADER)
		return message_field_insert_raw(msg, r->index, r->name, sep, r->value);
	pos = message_header_index(msg, r->name, r->index > 0 ? r->index - 1 : 0);
	if (pos < 0) /* as sendmail: a change past the last such field adds one */
		return r->value[0] == '\0'
			   ? 0
			   : message_field_insert_raw(msg, message_field_count(msg), r->name, sep,
						      r->value);
	if (r->value[0] == '\0')
		return message_field_remove(msg, (size_t)pos);
	return message_field_set_raw(msg, (size_t)pos, sep, r->value);
}

/* milter_rcpt_edit - ADDRCPT(_PAR) and DELRCPT on env. */
static int milter_rcpt_edit(struct envelope *env, const char *addr, int add)
{
	long i;

	if (add)
		return ctx_find_rcpt(env, addr) >= 0 ? 0 : envelope_add_rcpt(env, addr, 0, NULL, NULL);
	while ((i = ctx_find_rcpt(env, addr)) >= 0)
		envelope_remove_rcpt(env, (size_t)i);
	return 0;
}

/* The action each modification needs. */
static const struct {
	char code;
	uint32_t needs;
} milter_needs[] = {
    {MILTER_R_ADDHEADER, MILTER_F_ADDHDRS},     {MILTER_R_INSHEADER, MILTER_F_ADDHDRS},
    {MILTER_R_CHGHEADER, MILTER_F_CHGHDRS},     {MILTER_R_CHGFROM, MILTER_F_CHGFROM},
    {MILTER_R_ADDRCPT, MILTER_F_ADDRCPT},       {MILTER_R_ADDRCPT_PAR, MILTER_F_ADDRCPT_PAR},
    {MILTER_R_DELRCPT, MILTER_F_DELRCPT},       {MILTER_R_REPLBODY, MILTER_F_CHGBODY},
    {MILTER_R_QUARANTINE, MILTER_F_QUARANTINE},
};

/* milter_apply - one modification. */
int milter_apply(lua_State *L, struct rule_ctx *ctx, uint32_t actions, int leadspc,
		 const struct milter_reply *r, struct milter_edits *e, struct milter_outcome *o,
		 char *err, size_t errlen)
{
	char addr[RULE_ADDRESS_TEXT_MAX];
	size_t i, n;
	int rc = 0;

	n = r->code == MILTER_R_REPLBODY ? r->len
	    : r->name != NULL           ? strlen(r->name) + strlen(r->value)
	    : r->addr != NULL           ? strlen(r->addr)
				        : 0;
	if (o->changes >= MILTER_CHANGES_MAX || n > MILTER_CHANGE_BYTES_MAX - e->bytes) {
		snprintf(err, errlen, "the milter's changes pass %d changes or %u MB",
			 MILTER_CHANGES_MAX, MILTER_CHANGE_BYTES_MAX >> 20);
		return -1;
	}
	e->bytes += n;
	for (i = 0; i < sizeof(milter_needs) / sizeof(milter_needs[0]); i++)
		if (milter_needs[i].code == r->code && !(actions & milter_needs[i].needs)) {
			snprintf(err, errlen, "the milter sent %s without asking for it",
				 milter_reply_name(r->code));
			return -1;
		}
	errno = 0;
	switch (r->code) {
	case MILTER_R_ADDHEADER:
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
		if ((rc = milter_header_edit(ctx->msg, leadspc ? "" : " ", r)) < 0)
			snprintf(err, errlen, "%s %s: %s", milter_reply_name(r->code), r->name,
				 errno == ENOMEM ? "out of memory" : "invalid name or value");
		break;
	case MILTER_R_CHGFROM:
		if (milter_addr(L, r->addr, 1, addr, sizeof(addr), err, errlen) < 0)
			return -1;
		if ((rc = envelope_set(&ctx->env->mail_from, addr)) < 0)
			snprintf(err, errlen, "out of memory");
		break;
	case MILTER_R_ADDRCPT:
	case MILTER_R_ADDRCPT_PAR:
	case MILTER_R_DELRCPT:
		if (milter_addr(L, r->addr, 0, addr, sizeof(addr), err, errlen) < 0)
			return -1;
		if ((rc = milter_rcpt_edit(ctx->env, addr, r->code != MILTER_R_DELRCPT)) < 0)
			snprintf(err, errlen, "out of memory");
		break;
	case MILTER_R_REPLBODY:
		e->replace_body = 1;
		if ((rc = milter_buf_add(&e->body, r->data, r->len)) < 0)
			snprintf(err, errlen, "out of memory");
		break;
	case MILTER_R_QUARANTINE:
		snprintf(o->reason, sizeof(o->reason), "%s", r->reason[0] ? r->reason : "milter");
		break;
	default:
		snprintf(err, errlen, "unexpected %s at the end of the message",
			 milter_reply_name(r->code));
		return -1;
	}
	if (rc == 0)
		o->changes++;
	return rc;
}

/* milter_apply_body - the body gathered replaces the message's. */
int milter_apply_body(struct rule_ctx *ctx, struct milter_edits *e, struct milter_outcome *o,
		      char *err, size_t errlen)
{
	if (!e->replace_body)
		return 0;
	if (message_body_replace(ctx->msg, e->body.p ? e->body.p : "", e->body.len) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	(void)o;
	return 0;
}

/* milter_push_status - the status of an outcome at stage. */
void milter_push_status(lua_State *L, const struct milter_outcome *o, enum rule_stage stage,
			const char *service)
{
	int connect = stage == RULE_STAGE_CONNECT;
	enum rule_status st = connect ? RULE_DENY : RULE_REJECT;

	switch (o->action) {
	case MILTER_REJECT:
	case MILTER_TEMPFAIL:
		if (o->has_reply)
			rules_status_push_reply(L, st, o->reply.code, o->reply.enhanced,
						o->reply.text);
		else if (o->action == MILTER_REJECT)
			rules_status_push_reply(L, st, connect ? 554 : 550, "5.7.1",
						"Command rejected");
		else
			rules_status_push_reply(L, st, connect ? 421 : 451, "4.7.1",
						"Service unavailable - try again later");
		break;
	case MILTER_DISCARD:
		rules_status_push_quarantine(L, "discard");
		break;
	case MILTER_QUARANTINE:
		rules_status_push_quarantine(L, service);
		break;
	default:
		rules_status_push_reply(L, RULE_NEXT, 0, NULL, NULL);
		break;
	}
}
