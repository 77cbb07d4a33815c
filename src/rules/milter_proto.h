/*
 * milter_proto.h - the Sendmail milter protocol, version 6, as Postfix
 * speaks it: the packets an MTA sends a milter and the replies it reads
 * back (milter_proto.c). Pure code, no I/O: the conversation
 * (rules_milter.c) writes what the builders put in a buffer and hands
 * what it reads to the reply parser.
 *
 * A packet is a 4-byte length in network order (the command byte and the
 * data), the command byte, then the data. Strings in the data are
 * NUL-terminated; integers are 4 bytes (2 for a port) in network order.
 * Every length the parser reads is bounded by MILTER_PACKET_MAX. Private
 * to the rule engine (the unit test and the fuzz target reach it here).
 */
#ifndef VSMTPD_MILTER_PROTO_H
#define VSMTPD_MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define MILTER_VERSION 6
#define MILTER_VERSION_MIN 2

/* The largest packet read from a milter (the data of SMFIP_MDS_1M and a byte). */
#define MILTER_PACKET_MAX (1024u * 1024u + 1u)
/* The largest body chunk sent (what every milter accepts). */
#define MILTER_CHUNK_MAX 65535u
/* The longest SMTP reply text kept from a custom reply, NUL included. */
#define MILTER_TEXT_MAX 512

/* Commands (SMFIC_*). */
enum milter_cmd {
	MILTER_ABORT = 'A',
	MILTER_BODY = 'B',
	MILTER_CONNECT = 'C',
	MILTER_MACRO = 'D',
	MILTER_BODYEOB = 'E',
	MILTER_HELO = 'H',
	MILTER_HEADER = 'L',
	MILTER_MAIL = 'M',
	MILTER_EOH = 'N',
	MILTER_OPTNEG = 'O',
	MILTER_QUIT = 'Q',
	MILTER_RCPT = 'R',
	MILTER_DATA = 'T',
};

/* Replies (SMFIR_*). */
enum milter_reply_code {
	MILTER_R_ADDRCPT = '+',
	MILTER_R_DELRCPT = '-',
	MILTER_R_ADDRCPT_PAR = '2',
	MILTER_R_SHUTDOWN = '4',
	MILTER_R_ACCEPT = 'a',
	MILTER_R_REPLBODY = 'b',
	MILTER_R_CONTINUE = 'c',
	MILTER_R_DISCARD = 'd',
	MILTER_R_CHGFROM = 'e',
	MILTER_R_CONN_FAIL = 'f',
	MILTER_R_ADDHEADER = 'h',
	MILTER_R_INSHEADER = 'i',
	MILTER_R_SETSYMLIST = 'l',
	MILTER_R_CHGHEADER = 'm',
	MILTER_R_PROGRESS = 'p',
	MILTER_R_QUARANTINE = 'q',
	MILTER_R_REJECT = 'r',
	MILTER_R_SKIP = 's',
	MILTER_R_TEMPFAIL = 't',
	MILTER_R_REPLYCODE = 'y',
	MILTER_R_OPTNEG = 'O',
};

/* Actions a milter may take (SMFIF_*). */
#define MILTER_F_ADDHDRS 0x01u
#define MILTER_F_CHGBODY 0x02u
#define MILTER_F_ADDRCPT 0x04u
#define MILTER_F_DELRCPT 0x08u
#define MILTER_F_CHGHDRS 0x10u
#define MILTER_F_QUARANTINE 0x20u
#define MILTER_F_CHGFROM 0x40u
#define MILTER_F_ADDRCPT_PAR 0x80u
#define MILTER_F_ALL 0xffu /* what vsmtpd applies (SETSYMLIST is not offered) */

/* Protocol steps (SMFIP_*): steps a milter skips, replies it does not send. */
#define MILTER_P_NOCONNECT 0x01u
#define MILTER_P_NOHELO 0x02u
#define MILTER_P_NOMAIL 0x04u
#define MILTER_P_NORCPT 0x08u
#define MILTER_P_NOBODY 0x10u
#define MILTER_P_NOHDRS 0x20u
#define MILTER_P_NOEOH 0x40u
#define MILTER_P_NR_HDR 0x80u
#define MILTER_P_NOUNKNOWN 0x100u
#define MILTER_P_NODATA 0x200u
#define MILTER_P_SKIP 0x400u
#define MILTER_P_RCPT_REJ 0x800u
#define MILTER_P_NR_CONN 0x1000u
#define MILTER_P_NR_HELO 0x2000u
#define MILTER_P_NR_MAIL 0x4000u
#define MILTER_P_NR_RCPT 0x8000u
#define MILTER_P_NR_DATA 0x10000u
#define MILTER_P_NR_UNKN 0x20000u
#define MILTER_P_NR_EOH 0x40000u
#define MILTER_P_NR_BODY 0x80000u
#define MILTER_P_HDR_LEADSPC 0x100000u
/* What vsmtpd offers: every step may be skipped or left unanswered, header
 * values may keep their leading space; not RCPT_REJ (refused recipients are
 * never sent). */
#define MILTER_P_OFFER 0x1ff7ffu

/* A growing packet buffer; failed records an allocation failure or a
 * string too long for a packet. */
struct milter_buf {
	char *p;
	size_t len;
	size_t cap;
	int failed;
};

/* milter_buf_free - release b's memory and empty it. */
void milter_buf_free(struct milter_buf *b);

/* milter_buf_add - append len bytes as they are (a body being gathered): 0 or -1. */
int milter_buf_add(struct milter_buf *b, const void *data, size_t len);

/*
 * milter_put - append one packet: cmd and the n parts (parts[i] of
 * lens[i] bytes, concatenated). 0, or -1 (b->failed set) when out of
 * memory or the data would pass MILTER_PACKET_MAX.
 */
int milter_put(struct milter_buf *b, char cmd, const void *const *parts, const size_t *lens,
	       size_t n);

/* milter_put_empty - a packet without data (DATA, EOH, BODYEOB, QUIT, ABORT). */
int milter_put_empty(struct milter_buf *b, char cmd);

/* milter_put_optneg - SMFIC_OPTNEG: version 6, the actions and steps offered. */
int milter_put_optneg(struct milter_buf *b, uint32_t actions, uint32_t protocol);

/*
 * milter_put_connect - SMFIC_CONNECT: the client's host name, then family
 * '4' or '6' with port and address, or 'U' (unknown) when addr is NULL.
 */
int milter_put_connect(struct milter_buf *b, const char *host, char family, unsigned port,
		       const char *addr);

/* milter_put_strings - cmd with each of the n strings NUL-terminated
 * (HELO: the name; MAIL, RCPT: "<address>" then ESMTP arguments). */
int milter_put_strings(struct milter_buf *b, char cmd, const char *const *s, size_t n);

/* milter_put_header - SMFIC_HEADER: name and value. */
int milter_put_header(struct milter_buf *b, const char *name, size_t nlen, const char *value,
		      size_t vlen);

/* milter_put_body - SMFIC_BODY packets of at most MILTER_CHUNK_MAX bytes each. */
int milter_put_body(struct milter_buf *b, const char *data, size_t len);

/*
 * milter_put_macros - SMFIC_MACRO for the command cmd: the n name/value
 * pairs (pairs[2i] the name, pairs[2i + 1] the value); pairs whose value
 * is NULL are left out, and nothing is written when none is left.
 */
int milter_put_macros(struct milter_buf *b, char cmd, const char *const *pairs, size_t n);

/* A reply, its strings pointing into the packet's data. */
struct milter_reply {
	char code;             /* enum milter_reply_code */
	uint32_t version, actions, protocol; /* OPTNEG */
	uint32_t index;        /* INSHEADER: position; CHGHEADER: nth of its name, from 1 */
	const char *name;      /* ADD/INS/CHGHEADER: the field name */
	const char *value;     /* ADD/INS/CHGHEADER: the value ("" deletes for CHGHEADER) */
	const char *addr;      /* ADDRCPT(_PAR), DELRCPT, CHGFROM: the address */
	const char *args;      /* ADDRCPT_PAR, CHGFROM: ESMTP arguments, or NULL */
	const char *reason;    /* QUARANTINE */
	const char *data;      /* REPLBODY: a piece of the new body */
	size_t len;            /* REPLBODY: its length */
	int smtp;              /* REPLYCODE: 400..599 */
	char enhanced[16];     /* REPLYCODE: "5.7.1", or "" */
	char text[MILTER_TEXT_MAX]; /* REPLYCODE: the text, lines joined by a space */
};

/*
 * milter_reply_next - the next reply at the start of the len bytes at buf:
 * 1 when one is complete (*used: its size, r filled), 0 when more bytes are
 * needed, -1 when the bytes are no valid reply (err says why). r's
 * strings point into buf.
 */
int milter_reply_next(const char *buf, size_t len, size_t *used, struct milter_reply *r,
		      char *err, size_t errlen);

/* milter_reply_name - a reply's name for messages ("continue", "addheader"). */
const char *milter_reply_name(char code);

#endif
