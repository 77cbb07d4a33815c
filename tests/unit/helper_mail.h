/*
 * helper_mail.h - what the unit tests of mail authentication share (and
 * the scratch folder that many other tests use too): a folder made for
 * the tests of a program and removed after them, whole files read and
 * written, DKIM key records as dnsmasq options, messages
 * passed through an independent tool (python3-dkim's dkimsign, arcsign),
 * text edits, and a DNS server that never answers. Every function fails
 * the running cmocka test on error.
 */
#ifndef VSMTPD_TEST_HELPER_MAIL_H
#define VSMTPD_TEST_HELPER_MAIL_H

#include <stddef.h>

/* test_dir - the scratch folder test_dir_setup made. */
extern char test_dir[64];

/* test_dir_setup - a cmocka group setup: a new folder
 * /tmp/vsmtpd-<program>.XXXXXX in test_dir. */
int test_dir_setup(void **state);

/* test_dir_teardown - a cmocka group teardown: test_dir and all in it
 * removed; -1 when that failed. */
int test_dir_teardown(void **state);

/* test_read_file - a whole file, malloc'ed and NUL-terminated; its length
 * in *len when len is not NULL. */
char *test_read_file(const char *path, size_t *len);

/* test_write_file - len bytes of text into path. */
void test_write_file(const char *path, const char *text, size_t len);

/* test_txt_record - "txt-record=name,..." with the record in the file
 * dir/file (trailing line ends dropped) cut into character-strings of at
 * most 255 bytes, as dnsmasq takes them. */
void test_txt_record(char *out, size_t outlen, const char *name, const char *dir,
		     const char *file);

/* test_tool - text passed through command (run with sh in the folder
 * data, the message on its standard input) by way of files in dir; its
 * output, malloc'ed. what names the tool in the failure message. */
char *test_tool(const char *dir, const char *data, const char *command, const char *text,
		const char *what);

/* test_replace - text with the first from replaced by to, malloc'ed. */
char *test_replace(const char *text, const char *from, const char *to);

/* test_silent_udp - a UDP socket on 127.0.0.1 that nobody reads (a DNS
 * server that times out); its descriptor, its port in *port; -1 on failure. */
int test_silent_udp(unsigned *port);

#endif
