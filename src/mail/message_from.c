/*
 * message_from.c - the author's domain (message_from_domain in message.h):
 * the RFC5322.From domain that DMARC (RFC 7489 §3.1) checks. The From
 * fields are counted, the one field's value is tokenized by
 * message_addrlist.c (quoted strings, comments, angle-addrs and groups
 * skipped whole), and the domain of its one mailbox is returned lowercased,
 * without a trailing dot. Anything else is told apart by the result, for
 * the caller to name it: no field, several fields, no mailbox or several,
 * a mailbox that cannot be understood, a domain that is a literal.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "message_internal.h"

/* from_domain_of - the domain of the addr-spec s[a, b) into out; the result. */
static enum message_from from_domain_of(const char *s, size_t a, size_t b, char *out,
					size_t outlen)
{
	size_t at = b, n, i;

	/* the last '@' of an addr-spec starts its domain (a quoted local part
	 * may hold one of its own) */
	while (at > a && s[at - 1] != '@')
		at--;
	if (at == a)
		return MESSAGE_FROM_BAD;
	n = b - at;
	while (n > 0 && s[at + n - 1] == '.')
		n--;
	if (n == 0)
		return MESSAGE_FROM_BAD;
	if (s[at] == '[')
		return MESSAGE_FROM_LITERAL;
	if (n >= outlen)
		return MESSAGE_FROM_BAD;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[at + i]);
	out[n] = '\0';
	return MESSAGE_FROM_ONE;
}

/* message_from_domain - see message.h. */
enum message_from message_from_domain(const struct message *m, char *out, size_t outlen)
{
	struct al_list l;
	enum message_from res = MESSAGE_FROM_NO_MAILBOX;
	const struct al_item *one = NULL;
	size_t i, len, mailboxes = 0, n = message_header_count(m, "From");
	char *value;

	if (outlen > 0)
		out[0] = '\0';
	if (n == 0)
		return MESSAGE_FROM_NONE;
	if (n > 1)
		return MESSAGE_FROM_FIELDS;
	if ((value = message_header_get(m, "From", 0, &len)) == NULL)
		return MESSAGE_FROM_NOMEM;
	if (al_parse(&l, value, len) < 0) {
		free(value);
		return MESSAGE_FROM_NOMEM;
	}
	for (i = 0; i < l.count; i++) {
		if (l.items[i].kind == AL_EMPTY)
			continue;
		if (l.items[i].kind != AL_MAILBOX) {
			/* a group, or something not understood */
			res = l.items[i].kind == AL_GROUP ? MESSAGE_FROM_MAILBOXES : MESSAGE_FROM_BAD;
			mailboxes = 2;
			break;
		}
		one = &l.items[i];
		mailboxes++;
	}
	if (l.bad)
		res = MESSAGE_FROM_BAD;
	else if (mailboxes > 1 && res == MESSAGE_FROM_NO_MAILBOX)
		res = MESSAGE_FROM_MAILBOXES;
	else if (mailboxes == 1)
		res = from_domain_of(value, one->addr, one->addr_end, out, outlen);
	free(l.items);
	free(value);
	return res;
}
