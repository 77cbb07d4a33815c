/*
 * message_internal.h - what message.c and message_addrlist.c share: the
 * byte helpers of message.c, the growth step of their arrays, and the
 * address list of a field value as the tokenizer splits it into items.
 */
#ifndef VSMTPD_MESSAGE_INTERNAL_H
#define VSMTPD_MESSAGE_INTERNAL_H

#include <stddef.h>

/* The initial size of a growing array or string. */
#define GROW_MIN 16

/* What an element of an address list is. */
enum al_kind {
	AL_EMPTY,   /* nothing but blanks and comments */
	AL_MAILBOX, /* a mailbox whose addr-spec was found */
	AL_GROUP,   /* "display-name:" members ";" */
	AL_OTHER,   /* not understood: kept as it is */
};

/*
 * An element: the text between its separators (top-level commas, or for a
 * group member the group's colon, commas and semicolon). A group's members
 * are the items right after it.
 */
struct al_item {
	enum al_kind kind;
	size_t start;
	size_t end;
	size_t addr; /* AL_MAILBOX: its addr-spec */
	size_t addr_end;
	size_t colon;   /* AL_GROUP: its ':' */
	size_t semi;    /* AL_GROUP: its ';' (the end of the list when missing) */
	size_t members; /* AL_GROUP: how many items that follow are its members */
};

struct al_list {
	const char *s;
	size_t n;
	struct al_item *items;
	size_t count;
	size_t cap;
	int bad;   /* not lexically sound: the list must not be changed */
	int nomem; /* the items could not all be stored */
};

#define AL_ERR ((size_t)-1)

/* message.c: bytes. */
int message_is_wsp(char c);
int message_case_eq(const char *a, size_t alen, const char *b, size_t blen);

/* message_addrlist.c: the tokenizer and what it tells of the items. */
int al_parse(struct al_list *l, const char *s, size_t n);
int al_addr_spec(const char *s, size_t a, size_t b, struct al_item *it);
int al_matches(const struct al_list *l, const struct al_item *it, const char *addr);
int al_is_empty(const char *s, size_t n);

#endif
