/*
 * message_to.c - the To helpers of message.h (message_to_add,
 * message_to_remove, message_to_rewrite) and the address-list edits under
 * them: a To field's value tokenized by message_addrlist.c, written anew
 * without the mailboxes removed or with the addresses rewritten, the
 * elements kept as they were.
 *
 * As everywhere in message.c, an edit builds every changed field before
 * changing any, so a failed edit leaves the message as it was.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "message_internal.h"

/* ---- Address-list edits (over message_addrlist.c's items) ---- */

/* al_put_item - append the text of item it. */
static void al_put_item(struct sbuf *b, const struct al_list *l, const struct al_item *it)
{
	message_sb_put(b, l->s + it->start, it->end - it->start);
}

/*
 * al_put_members - the members of group g that do not match addr, joined by
 * commas as they were; *removed counts the others.
 */
static void al_put_members(struct sbuf *b, const struct al_list *l, size_t g, const char *addr,
                           size_t *removed)
{
	size_t k, put = 0;

	for (k = g + 1; k <= g + l->items[g].members; k++) {
		if (al_matches(l, &l->items[k], addr)) {
			(*removed)++;
			continue;
		}
		if (put++)
			message_sb_put(b, ",", 1);
		al_put_item(b, l, &l->items[k]);
	}
}

/*
 * al_remove - the list without the mailboxes equal to addr. The elements
 * kept are written as they were, each with the blanks that preceded it, and
 * joined by commas as before.
 */
static void al_remove(const struct al_list *l, const char *addr, struct sbuf *b, size_t *removed)
{
	size_t i = 0, put = 0;

	while (i < l->count) {
		const struct al_item *it = &l->items[i];

		if (it->kind != AL_GROUP && al_matches(l, it, addr)) {
			(*removed)++;
			i++;
			continue;
		}
		if (put++)
			message_sb_put(b, ",", 1);
		if (it->kind != AL_GROUP) {
			al_put_item(b, l, it);
			i++;
			continue;
		}
		message_sb_put(b, l->s + it->start, it->colon + 1 - it->start);
		al_put_members(b, l, i, addr, removed);
		message_sb_put(b, l->s + it->semi, it->end - it->semi);
		i += 1 + it->members;
	}
}

/* al_rewrite - the list with new_addr for the addr-spec of each mailbox equal to addr. */
static void al_rewrite(const struct al_list *l, const char *addr, const char *new_addr,
                       struct sbuf *b, size_t *rewritten)
{
	size_t i, pos = 0;

	for (i = 0; i < l->count; i++) {
		const struct al_item *it = &l->items[i];

		if (!al_matches(l, it, addr))
			continue;
		message_sb_put(b, l->s + pos, it->addr - pos);
		message_sb_str(b, new_addr);
		pos = it->addr_end;
		(*rewritten)++;
	}
	message_sb_put(b, l->s + pos, l->n - pos);
}

/* ---- The To helpers ---- */

/* valid_addr - addr is a bare addr-spec the helpers can use. */
static int valid_addr(const char *addr)
{
	struct al_item it;
	size_t n;

	if (!addr || strpbrk(addr, "\r\n"))
		return 0;
	n = strlen(addr);
	if (n == 0 || n > MESSAGE_ADDR_MAX)
		return 0;
	return al_addr_spec(addr, 0, n, &it) && it.addr == 0 && it.addr_end == n;
}

/* A To field's new raw text, built before any field is changed. */
struct to_change {
	size_t index;
	char *raw; /* NULL: remove the field */
	size_t len;
};

/*
 * to_field_edit - the change of field index, if it has mailboxes equal to
 * addr: removed (new_addr NULL) or rewritten. *n gets how many; 0 leaves
 * ch->raw unset. -1 when out of memory.
 */
static int to_field_edit(const struct message *m, size_t index, const char *addr,
                         const char *new_addr, struct to_change *ch, size_t *n)
{
	const struct field *f = &m->fields[index];
	struct sbuf b = {0};
	struct al_list l;
	size_t vlen, len;
	char *v = message_field_value(m, index, &vlen);

	*n = 0;
	if (!v || al_parse(&l, v, vlen) < 0) {
		free(v);
		return -1;
	}
	if (!l.bad) {
		if (new_addr)
			al_rewrite(&l, addr, new_addr, &b, n);
		else
			al_remove(&l, addr, &b, n);
	}
	free(l.items);
	free(v);
	v = message_sb_take(&b, &len);
	if (!v)
		return -1;
	ch->index = index;
	ch->raw = NULL;
	if (*n == 0 || (!new_addr && al_is_empty(v, len))) {
		free(v);
		return 0; /* unchanged, or the field is to go */
	}
	ch->raw = message_fold_field(f->raw, f->name_len, v, len, m->eol, 0, &ch->len);
	free(v);
	return ch->raw ? 0 : -1;
}

/* to_apply - make the changes, in field order; fields changed to NULL go. */
static void to_apply(struct message *m, struct to_change *ch, size_t nch)
{
	size_t i, j = 0, k = 0;

	for (i = 0; i < m->count; i++) {
		if (k < nch && ch[k].index == i) {
			if (!ch[k].raw) {
				free(m->fields[i].own);
				k++;
				continue;
			}
			message_field_replace(&m->fields[i], ch[k].raw, ch[k].len, m->fields[i].name_len);
			k++;
		}
		m->fields[j++] = m->fields[i];
	}
	m->count = j;
	m->modified = 1;
}

/*
 * to_edit - remove (new_addr NULL) or rewrite the mailboxes equal to addr in
 * every To field. Returns how many, or -1.
 */
static ssize_t to_edit(struct message *m, const char *addr, const char *new_addr)
{
	size_t nto = message_header_count(m, "To");
	struct to_change *ch;
	size_t i, k = 0, nch = 0, total = 0, n;

	if (nto == 0)
		return 0;
	ch = calloc(nto, sizeof(*ch));
	if (!ch) {
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < m->count; i++) {
		if (!message_field_is(&m->fields[i], "To", 2))
			continue;
		if (to_field_edit(m, i, addr, new_addr, &ch[nch], &n) < 0)
			goto fail;
		if (n) {
			nch++;
			total += n;
		}
	}
	if (nch)
		to_apply(m, ch, nch);
	free(ch);
	return (ssize_t)total;
fail:
	for (k = 0; k < nch; k++)
		free(ch[k].raw);
	free(ch);
	errno = ENOMEM;
	return -1;
}

/* message_to_remove - remove every mailbox equal to addr from the To fields. */
ssize_t message_to_remove(struct message *m, const char *addr)
{
	if (!valid_addr(addr)) {
		errno = EINVAL;
		return -1;
	}
	return to_edit(m, addr, NULL);
}

/* message_to_rewrite - replace old_addr by new_addr in the To fields. */
ssize_t message_to_rewrite(struct message *m, const char *old_addr, const char *new_addr)
{
	if (!valid_addr(old_addr) || !valid_addr(new_addr)) {
		errno = EINVAL;
		return -1;
	}
	return to_edit(m, old_addr, new_addr);
}

/*
 * to_added - list v (n bytes, tokenized in l) with addr after it. An
 * unclosed group at the end is closed first, so addr does not join it.
 */
static char *to_added(const struct al_list *l, const char *v, size_t n, const char *addr,
                      size_t *len)
{
	struct sbuf b = {0};
	const struct al_item *last = NULL;
	int close_group;
	size_t k;

	for (k = 0; k < l->count; k += 1 + (l->items[k].kind == AL_GROUP ? l->items[k].members : 0))
		last = &l->items[k];
	close_group = last && last->kind == AL_GROUP && last->semi == n;
	message_sb_put(&b, v, n);
	if (close_group)
		message_sb_put(&b, ";", 1);
	if (n > 0)
		message_sb_str(&b, v[n - 1] == ',' && !close_group ? " " : ", ");
	message_sb_str(&b, addr);
	return message_sb_take(&b, len);
}

/* message_to_add - add addr to the first To field, or create one. */
int message_to_add(struct message *m, const char *addr)
{
	struct al_list l;
	struct field *f;
	char *v, *list, *raw;
	size_t vlen, list_len, len;
	ssize_t i;

	if (!valid_addr(addr)) {
		errno = EINVAL;
		return -1;
	}
	i = message_header_index(m, "To", 0);
	if (i < 0)
		return message_add_field(m, 0, "To", addr);
	v = message_field_value(m, (size_t)i, &vlen);
	if (!v || al_parse(&l, v, vlen) < 0) {
		free(v);
		return -1;
	}
	list = l.bad ? NULL : to_added(&l, v, vlen, addr, &list_len);
	free(l.items);
	free(v);
	if (!list) {
		if (l.bad)
			errno = EBADMSG;
		return -1;
	}
	f = &m->fields[i];
	raw = message_fold_field(f->raw, f->name_len, list, list_len, m->eol, 0, &len);
	free(list);
	if (!raw)
		return -1;
	message_field_replace(f, raw, len, f->name_len);
	m->modified = 1;
	return 0;
}
