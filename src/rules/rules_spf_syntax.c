/*
 * rules_spf_syntax.c - the syntax of an SPF record (RFC 7208 section 12),
 * checked before libspf2 evaluates it. libspf2 1.2.10 accepts records the
 * RFC calls errors (a domain without a top label, "exp=" twice, a CIDR
 * length on exists:, a control character between terms, a macro letter
 * only exp= may use in a domain, a prefix of /33) and evaluates them as if
 * they were valid; RFC 7208 section 4.6 says such a record gives
 * permerror. rules_spf_dns.c runs this on each SPF record a check fetches
 * (the domain's own, include: and redirect= targets) and ends the check
 * with permerror and the reason this gives.
 *
 * It reads the record as the ABNF writes it: "v=spf1", then terms after
 * one or more spaces, each a directive (an optional qualifier and one of
 * the eight mechanisms, their names in any case) or a modifier (name "="
 * value). A domain-spec is a macro-string whose end is a macro or "." and
 * a top label (letters, digits and inner hyphens, not all digits). A
 * record that does not start with "v=spf1" is no SPF record: that is for
 * the caller (and libspf2) to see, not an error here.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rules_spf.h"

/* What a term's value must be. */
enum spf_arg {
	SPF_ARG_NONE,   /* all */
	SPF_ARG_DOMAIN, /* include:, exists: a domain-spec, required */
	SPF_ARG_HOST,   /* a, mx: [":" domain-spec] [dual-cidr-length] */
	SPF_ARG_PTR,    /* ptr: [":" domain-spec] */
	SPF_ARG_IP4,    /* ip4: ":" address [cidr] */
	SPF_ARG_IP6,    /* ip6: ":" address [cidr] */
};

static const struct {
	const char *name;
	enum spf_arg arg;
} spf_mechanisms[] = {
    {"all", SPF_ARG_NONE},  {"include", SPF_ARG_DOMAIN}, {"exists", SPF_ARG_DOMAIN},
    {"a", SPF_ARG_HOST},    {"mx", SPF_ARG_HOST},        {"ptr", SPF_ARG_PTR},
    {"ip4", SPF_ARG_IP4},   {"ip6", SPF_ARG_IP6},
};

/* spf_why - the reason into why; -1. */
__attribute__((format(printf, 3, 4))) static int spf_why(char *why, size_t whylen,
							     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

/* spf_alnum, spf_alpha - ASCII classes, whatever the locale. */
static int spf_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int spf_alnum(char c)
{
	return spf_alpha(c) || (c >= '0' && c <= '9');
}

/* spf_macro - the length of the macro-expand at s (n bytes, s[0] '%'),
 * or 0 when it is none; letters c, r and t only when exp_letters. */
static size_t spf_macro(const char *s, size_t n, int exp_letters)
{
	size_t i;
	char c;

	if (n >= 2 && (s[1] == '%' || s[1] == '_' || s[1] == '-'))
		return 2;
	if (n < 4 || s[1] != '{')
		return 0;
	c = (char)(s[2] | 0x20);
	if (strchr(exp_letters ? "slodiphcrtv" : "slodiphv", c) == NULL || !spf_alpha(s[2]))
		return 0;
	for (i = 3; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (i < n && (s[i] == 'r' || s[i] == 'R'))
		i++;
	while (i < n && strchr(".-+,/_=", s[i]) != NULL)
		i++;
	return i < n && s[i] == '}' ? i + 1 : 0;
}

/* spf_macro_string - whether s (n bytes) is a macro-string: visible
 * characters and valid macros; *last_macro_end gets the offset just past
 * the last macro (0 when none). */
static int spf_macro_string(const char *s, size_t n, int exp_letters, size_t *last_macro_end)
{
	size_t i = 0, m;

	*last_macro_end = 0;
	while (i < n) {
		if (s[i] == '%') {
			if ((m = spf_macro(s + i, n - i, exp_letters)) == 0)
				return 0;
			i += m;
			*last_macro_end = i;
		} else if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
			return 0;
		} else {
			i++;
		}
	}
	return 1;
}

/* spf_toplabel - whether s (n bytes) is a toplabel: letters, digits and
 * hyphens, not starting or ending with one, and not all digits. */
static int spf_toplabel(const char *s, size_t n)
{
	size_t i;
	int alpha = 0, hyphen = 0;

	if (n == 0 || !spf_alnum(s[0]) || !spf_alnum(s[n - 1]))
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '-')
			hyphen = 1;
		else if (spf_alpha(s[i]))
			alpha = 1;
		else if (!spf_alnum(s[i]))
			return 0;
	}
	return alpha || hyphen;
}

/* spf_domain_spec - whether s (n bytes) is a domain-spec. */
static int spf_domain_spec(const char *s, size_t n)
{
	size_t macro_end, dot;

	if (n == 0 || !spf_macro_string(s, n, 0, &macro_end))
		return 0;
	if (macro_end == n) /* domain-end = macro-expand */
		return 1;
	/* domain-end = "." toplabel [ "." ], all of it after the last macro */
	if (s[n - 1] == '.')
		n--;
	for (dot = n; dot > macro_end && s[dot - 1] != '.'; dot--)
		;
	return dot > macro_end && spf_toplabel(s + dot, n - dot);
}

/* spf_cidr - whether s (n bytes) is "/" and a length of 0 to max, no
 * leading zero. */
static int spf_cidr(const char *s, size_t n, unsigned max)
{
	unsigned v = 0;
	size_t i;

	if (n < 2 || n > 4 || s[0] != '/' || (s[1] == '0' && n > 2))
		return 0;
	for (i = 1; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v <= max;
}

/* spf_dual_cidr - whether s (n bytes) is a dual-cidr-length:
 * [ "/" ip4-length ] [ "//" ip6-length ]. */
static int spf_dual_cidr(const char *s, size_t n)
{
	const char *six = NULL;
	size_t i;

	for (i = 0; i + 1 < n; i++)
		if (s[i] == '/' && s[i + 1] == '/') {
			six = s + i;
			break;
		}
	if (six != NULL && !spf_cidr(six + 1, n - i - 1, 128))
		return 0;
	n = six != NULL ? i : n;
	return n == 0 || spf_cidr(s, n, 32);
}

/* spf_address - whether s (n bytes) is an IPv4 (family 4) or IPv6
 * address, then an optional CIDR length. */
static int spf_address(const char *s, size_t n, int family)
{
	const char *slash = memchr(s, '/', n);
	size_t alen = slash != NULL ? (size_t)(slash - s) : n;
	unsigned char buf[16];
	char addr[64];

	if (alen == 0 || alen >= sizeof(addr))
		return 0;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(family == 4 ? AF_INET : AF_INET6, addr, buf) != 1)
		return 0;
	return slash == NULL || spf_cidr(slash, n - alen, family == 4 ? 32 : 128);
}

/* spf_host_arg - whether s (n bytes) is what a or mx may take:
 * [ ":" domain-spec ] [ dual-cidr-length ]. A domain-spec may hold "/"
 * ("foo:bar/baz.example.com"), so each "/" is tried as the start of the
 * lengths. */
static int spf_host_arg(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '/')
			continue;
		if (!spf_dual_cidr(s + i, n - i))
			continue;
		if (i == 0 || (s[0] == ':' && spf_domain_spec(s + 1, i - 1)))
			return 1;
	}
	return 0;
}

/* spf_directive - check one directive (qualifier stripped); -1 with why. */
static int spf_directive(const char *t, size_t n, char *why, size_t whylen)
{
	size_t i, name, rest;
	const char *arg;

	for (name = 0; name < n && t[name] != ':' && t[name] != '/'; name++)
		;
	for (i = 0; i < sizeof(spf_mechanisms) / sizeof(spf_mechanisms[0]); i++)
		if (strlen(spf_mechanisms[i].name) == name &&
		    strncasecmp(t, spf_mechanisms[i].name, name) == 0)
			break;
	if (i == sizeof(spf_mechanisms) / sizeof(spf_mechanisms[0]))
		return spf_why(why, whylen, "unknown mechanism \"%.*s\"", (int)(name > 40 ? 40 : name), t);
	arg = t + name;
	rest = n - name;
	switch (spf_mechanisms[i].arg) {
	case SPF_ARG_NONE:
		if (rest == 0)
			return 0;
		break;
	case SPF_ARG_DOMAIN:
		if (rest > 0 && arg[0] == ':' && spf_domain_spec(arg + 1, rest - 1))
			return 0;
		break;
	case SPF_ARG_PTR:
		if (rest == 0 || (arg[0] == ':' && spf_domain_spec(arg + 1, rest - 1)))
			return 0;
		break;
	case SPF_ARG_HOST:
		if (spf_host_arg(arg, rest))
			return 0;
		break;
	case SPF_ARG_IP4:
	case SPF_ARG_IP6:
		if (rest > 1 && arg[0] == ':' &&
		    spf_address(arg + 1, rest - 1, spf_mechanisms[i].arg == SPF_ARG_IP4 ? 4 : 6))
			return 0;
		break;
	}
	return spf_why(why, whylen, "invalid %s mechanism \"%.*s\"", spf_mechanisms[i].name,
		       (int)(n > 60 ? 60 : n), t);
}

/* rules_spf_syntax_check - see rules_spf.h. */
int rules_spf_syntax_check(const char *rec, size_t len, char *why, size_t whylen)
{
	size_t i = 6, start, n, name, macro_end;
	int redirects = 0, exps = 0;
	const char *t;

	if (len < 6 || strncasecmp(rec, "v=spf1", 6) != 0 || (len > 6 && rec[6] != ' '))
		return 0; /* no SPF record: not for this check */
	for (;;) {
		while (i < len && rec[i] == ' ')
			i++;
		if (i == len)
			return 0;
		start = i;
		while (i < len && rec[i] != ' ')
			i++;
		t = rec + start;
		n = i - start;
		/* a modifier: name "=" value, the name ALPHA *( ALPHA / DIGIT / - _ . ) */
		for (name = 0; name < n && (spf_alnum(t[name]) || strchr("-_.", t[name]) != NULL);
		     name++)
			;
		if (name > 0 && name < n && t[name] == '=' && spf_alpha(t[0])) {
			int is_redirect = name == 8 && strncasecmp(t, "redirect", 8) == 0;
			int is_exp = name == 3 && strncasecmp(t, "exp", 3) == 0;

			if ((is_redirect && ++redirects > 1) || (is_exp && ++exps > 1))
				return spf_why(why, whylen, "%s= given twice (RFC 7208 section 6)",
					       is_redirect ? "redirect" : "exp");
			if ((is_redirect || is_exp) ? !spf_domain_spec(t + name + 1, n - name - 1)
						    : !spf_macro_string(t + name + 1, n - name - 1, 1,
									&macro_end))
				return spf_why(why, whylen, "invalid modifier \"%.*s\"",
					       (int)(n > 60 ? 60 : n), t);
			continue;
		}
		if (strchr("+-?~", t[0]) != NULL) {
			t++;
			n--;
		}
		if (n == 0 || spf_directive(t, n, why, whylen) < 0) {
			if (n == 0)
				spf_why(why, whylen, "a qualifier without a mechanism");
			return -1;
		}
	}
}
