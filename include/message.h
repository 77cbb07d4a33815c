/*
 * message.h - an Internet message (RFC 5322, RFC 6532) held in memory: its
 * top-level header fields, queried and edited, and the message written back.
 *
 * Pure C, no I/O. The rule engine parses the received message at the "preq"
 * stage, edits its header, and rewrites the spool file only when
 * message_modified() says something changed.
 *
 * The message is a list of header fields, an optional separator line (the
 * empty line) and the body. Every field keeps its raw bytes (name, colon,
 * folded value and line ending), so an untouched field is written back
 * exactly and serializing an unedited message reproduces its input byte for
 * byte, whatever the input. Parsing rules:
 *
 *  - a line ends at LF; a CR right before it belongs to the line ending.
 *    CRLF and bare LF are both accepted and kept as they are;
 *  - a field starts with a line "name WSP* ':'", the name being printable
 *    ASCII 33..126 except ':' (RFC 5322 2.2; the blanks before the colon are
 *    the obsolete syntax of 4.5); lines starting with SP or HTAB continue it;
 *  - the first empty line is the separator; the body is all that follows;
 *  - a line that is neither a field nor a continuation (no colon, a
 *    continuation before any field, ...) ends the header section: it and all
 *    that follows are the body, and there is no separator;
 *  - without any of these, the whole message is header; an empty message is
 *    valid (no field, no body).
 *
 * Field names given by the caller are compared case-insensitively (ASCII).
 * Edits refuse an invalid name (it must be 1 or more bytes 33..126 other
 * than ':'); lookups take any non-NULL string and an invalid one matches
 * nothing.
 *
 * Values given by the caller are NUL-terminated strings and may hold any
 * byte but CR and LF (so no NUL either), UTF-8 included; their leading and
 * trailing blanks are dropped (unfolding would drop them anyway). A field
 * the library writes is "Name: value" and the message's line ending (CRLF,
 * unless the first line of the input ended in a bare LF), folded before
 * blanks so that no line is longer than 78 characters when the value's
 * blanks allow it, and never longer than 998: a value with a word (a run
 * without blanks) that cannot fit on a 998-character line ("Name: " before
 * the first word, the blanks before a later one counted) is refused.
 *
 * Edits return -1 with errno set on failure and then change nothing:
 * EINVAL for a bad name, value or address, ENOMEM when out of memory.
 *
 * Pointers returned into the message (names, raw fields, body) stay valid
 * until the next edit or message_free(). Time and memory are linear in the
 * size of the message; an edit costs at most one pass over the fields.
 */
#ifndef VSMTPD_MESSAGE_H
#define VSMTPD_MESSAGE_H

#include <stddef.h>
#include <sys/types.h>

/* RFC 5322 2.1.1 line lengths, in characters, the line ending excluded. */
#define MESSAGE_LINE_SOFT_MAX 78
#define MESSAGE_LINE_MAX 998

/* The longest address the To helpers accept (RFC 5321 4.5.3.1.3, path without <>). */
#define MESSAGE_ADDR_MAX 254

struct message;

/* Called with the serialized message in order, never with len 0. */
typedef void (*message_sink)(void *arg, const char *buf, size_t len);

/*
 * message_parse - parse the len bytes at buf (NULL allowed when len is 0).
 *
 * The bytes are copied: buf may be freed on return. Any input parses.
 * Returns the message, to be freed with message_free(), or NULL (ENOMEM).
 */
struct message *message_parse(const char *buf, size_t len);

/*
 * message_parse_take - message_parse() without the copy: on success the
 * message owns buf (which must come from malloc) and frees it in
 * message_free(). On failure (NULL, ENOMEM) buf is still the caller's.
 */
struct message *message_parse_take(char *buf, size_t len);

/* message_free - free m and all it owns; NULL is ignored. */
void message_free(struct message *m);

/* message_modified - non-zero once an edit has changed the message. */
int message_modified(const struct message *m);

/* ---- Fields by position (0 is the first field) ---- */

/* message_field_count - the number of header fields. */
size_t message_field_count(const struct message *m);

/*
 * message_field_name - the name of field index as written (the blanks before
 * the colon left out), not NUL-terminated, its length in *len. Returns NULL
 * when index is out of range.
 */
const char *message_field_name(const struct message *m, size_t index, size_t *len);

/*
 * message_field_raw - the raw bytes of field index (name to line ending
 * included; the last field of a message may lack a line ending), not
 * NUL-terminated, its length in *len. NULL when index is out of range.
 */
const char *message_field_raw(const struct message *m, size_t index, size_t *len);

/*
 * message_field_value - the unfolded value of field index (RFC 5322 3.2.2:
 * every line break inside the field removed, then the leading and trailing
 * SP / HTAB), in a NUL-terminated malloc'ed string the caller frees. The
 * value may itself hold NUL bytes: *len (when len is not NULL) gives its
 * length. Returns NULL with errno ENOENT when index is out of range, ENOMEM.
 */
char *message_field_value(const struct message *m, size_t index, size_t *len);

/* ---- Fields by name ---- */

/* message_header_count - how many fields are called name. */
size_t message_header_count(const struct message *m, const char *name);

/* message_header_index - position of the nth (0-based) field called name, or -1. */
ssize_t message_header_index(const struct message *m, const char *name, size_t nth);

/*
 * message_header_get - the unfolded value of the nth (0-based) field called
 * name, as message_field_value(). NULL with errno ENOENT when there is no
 * such field, ENOMEM.
 */
char *message_header_get(const struct message *m, const char *name, size_t nth, size_t *len);

/* message_header_append - add "name: value" after the last field. 0 or -1. */
int message_header_append(struct message *m, const char *name, const char *value);

/*
 * message_header_prepend - add "name: value" before the first field, at the
 * very top of the message (above the server's own Received:). 0 or -1.
 */
int message_header_prepend(struct message *m, const char *name, const char *value);

/*
 * message_header_set - give the first field called name the value, keeping
 * its place and the spelling of its name; further fields of that name are
 * left as they are (remove them first for a single one). The field is
 * written anew ("Name: value", refolded; blanks before its colon dropped).
 * Without such a field, appends one. 0 or -1.
 */
int message_header_set(struct message *m, const char *name, const char *value);

/*
 * message_header_rename - give every field called old_name the name
 * new_name; what follows the colon (value, folding, line endings) is kept
 * byte for byte, blanks before the colon are dropped. EINVAL also when the
 * longer name would push a first line past 998 characters. Returns the
 * number of fields renamed (0 when none), or -1.
 */
ssize_t message_header_rename(struct message *m, const char *old_name, const char *new_name);

/* message_header_remove - remove every field called name. Returns how many, or -1. */
ssize_t message_header_remove(struct message *m, const char *name);

/* ---- The author (RFC 5322 3.6.2 From) ---- */

/* What message_from_domain() found. */
enum message_from {
	MESSAGE_FROM_ONE,        /* one From field with one mailbox: its domain */
	MESSAGE_FROM_NONE,       /* no From field */
	MESSAGE_FROM_FIELDS,     /* more than one From field */
	MESSAGE_FROM_NO_MAILBOX, /* a From field without a mailbox */
	MESSAGE_FROM_MAILBOXES,  /* several mailboxes, or a group */
	MESSAGE_FROM_BAD,        /* a mailbox that cannot be understood */
	MESSAGE_FROM_LITERAL,    /* the domain is an address literal ("[192.0.2.1]") */
	MESSAGE_FROM_NOMEM,
};

/*
 * message_from_domain - the domain of the single mailbox of the single From
 * field of m (the RFC5322.From domain of RFC 7489 3.1), lowercased and
 * without a trailing dot, into out (outlen bytes, 256 for any domain);
 * MESSAGE_FROM_ONE, or what stood in the way (out is then "").
 */
enum message_from message_from_domain(const struct message *m, char *out, size_t outlen);

/*
 * message_field_remove - remove the field at index (the later fields move
 * up by one). 0, or -1 with errno ENOENT when index is out of range.
 */
int message_field_remove(struct message *m, size_t index);

/* ---- The To: field (RFC 5322 3.4 address-list) ----
 *
 * Addresses given are bare addr-specs ("john@example.com", a quoted local
 * part allowed), at most MESSAGE_ADDR_MAX bytes, else EINVAL. A mailbox in
 * a To field matches when its addr-spec has the same local part, byte for
 * byte as written, and the same domain ignoring ASCII case. The list is
 * tokenized with its quoted strings, comments, angle-addrs, domain literals
 * and groups; a mailbox that cannot be understood (no '@', stray '<', a ';'
 * used as separator, ...) is left as it is, and a To field that is not
 * even lexically sound (unterminated quoted string, comment or angle-addr)
 * is never changed. A changed To field is rewritten unfolded then refolded
 * as "To: list", with the name spelled as it was; folding never fails on
 * words that were already in the field.
 */

/*
 * message_to_add - add addr to the first To field (", addr" after its list),
 * or append "To: addr" when there is none. 0 or -1: EINVAL for a bad
 * address, EBADMSG when the existing To field is not lexically sound (the
 * address would end up inside its broken quoted string or comment).
 */
int message_to_add(struct message *m, const char *addr);

/*
 * message_to_remove - remove every mailbox equal to addr from every To
 * field, each with its display name and comments; the rest of the list is
 * kept as written. Inside a group only the member goes (an emptied group
 * "name:;" stays). A field left with no mailbox and no group is removed.
 * Returns how many mailboxes were removed, or -1.
 */
ssize_t message_to_remove(struct message *m, const char *addr);

/*
 * message_to_rewrite - replace the addr-spec of every mailbox equal to
 * old_addr in every To field by new_addr, keeping display names and
 * comments ("John" <old> becomes "John" <new>, a bare old becomes new).
 * Returns how many were rewritten, or -1.
 */
ssize_t message_to_rewrite(struct message *m, const char *old_addr, const char *new_addr);

/* ---- Edits with the writer's folding, and the body (message_raw.c) ---- */

/*
 * message_field_insert_raw - insert the field "name:" sep value at
 * position pos (0 the top; past the last field it is appended). value may
 * hold line breaks (CRLF or LF), each followed by a blank: they are kept,
 * written with the message's line ending, so that a field signed as
 * folded stays as signed. No line may pass 998 characters. 0 or -1
 * (EINVAL, ENOMEM).
 */
int message_field_insert_raw(struct message *m, size_t pos, const char *name, const char *sep,
			     const char *value);

/*
 * message_field_set_raw - give the field at index the value sep value as
 * message_field_insert_raw() writes it, its name kept as spelled. 0 or -1
 * (ENOENT, EINVAL, ENOMEM).
 */
int message_field_set_raw(struct message *m, size_t index, const char *sep, const char *value);

/*
 * message_body_replace - the body becomes a copy of the len bytes at body
 * (the header is kept; a separator is added when there was none). 0 or -1
 * (ENOMEM).
 */
int message_body_replace(struct message *m, const char *body, size_t len);

/* ---- Writing the message back ---- */

/* message_size - the length of the serialized message. */
size_t message_size(const struct message *m);

/* message_header_size - the length of the header section, separator included. */
size_t message_header_size(const struct message *m);

/*
 * message_body - the body (after the separator, or from the line that ended
 * the header section), not NUL-terminated, its length in *len.
 */
const char *message_body(const struct message *m, size_t *len);

/* message_write - hand the whole message to sink, in order. */
void message_write(const struct message *m, message_sink sink, void *arg);

/* message_write_header - hand the header section, separator included, to sink. */
void message_write_header(const struct message *m, message_sink sink, void *arg);

/*
 * message_serialize - the whole message in a malloc'ed buffer the caller
 * frees, NUL-terminated for convenience (not counted in *len). NULL: ENOMEM.
 */
char *message_serialize(const struct message *m, size_t *len);

#endif
