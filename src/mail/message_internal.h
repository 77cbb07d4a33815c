/*
 * message_internal.h - what message.c, message_addrlist.c, message_to.c and
 * message_raw.c share: the message and its fields, the byte helpers and field edits of
 * message.c, the growth step of their arrays, and the address list of a
 * field value as the tokenizer splits it into items.
 */
#ifndef VSMTPD_MESSAGE_INTERNAL_H
#define VSMTPD_MESSAGE_INTERNAL_H

#include <stddef.h>

/* The initial size of a growing array or string. */
#define GROW_MIN 16

struct field {
	const char *raw; /* name, colon, value, line ending */
	size_t len;
	size_t name_len; /* without the blanks before the colon */
	size_t colon;    /* offset of the colon in raw */
	char *own;       /* raw's allocation once an edit has written the field */
};

struct message {
	char *buf; /* the input */
	size_t buf_len;
	struct field *fields;
	size_t count;
	size_t cap;
	const char *sep; /* the empty line between header and body, if any */
	size_t sep_len;
	const char *body;
	size_t body_len;
	const char *eol; /* the line ending of the lines written by edits */
	char *body_own;  /* the body once replaced (message_raw.c) */
	int modified;
};

/* A growing byte string; failed records an allocation failure. */
struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	int failed;
};

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
void message_sb_put(struct sbuf *b, const char *s, size_t n);
void message_sb_str(struct sbuf *b, const char *s);
char *message_sb_take(struct sbuf *b, size_t *len);

/* message.c: fields. */
char *message_fold_field(const char *name, size_t name_len, const char *v, size_t n,
                         const char *eol, int strict, size_t *out_len);
int message_field_is(const struct field *f, const char *name, size_t len);
void message_field_replace(struct field *f, char *raw, size_t len, size_t name_len);
int message_add_field(struct message *m, int at_top, const char *name, const char *value);
int message_insert_field(struct message *m, size_t pos, char *raw, size_t len, size_t name_len);

/* message_addrlist.c: the tokenizer and what it tells of the items. */
int al_parse(struct al_list *l, const char *s, size_t n);
int al_addr_spec(const char *s, size_t a, size_t b, struct al_item *it);
int al_matches(const struct al_list *l, const struct al_item *it, const char *addr);
int al_is_empty(const char *s, size_t n);

#endif
