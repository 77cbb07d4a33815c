/*
 * rules_scan.c - catch, in the rules file's source, the mistakes Lua lets
 * pass without a word.
 *
 * In a table constructor a repeated key silently replaces the first one, so
 * `return { connect = {...}, connect = {...} }` would drop a whole stage of
 * rules; a second `function on_connect` silently replaces the first. The
 * seeds make "a stage declared twice" a configuration error, so this small
 * Lua tokenizer (comments, short and long strings, names, punctuation) looks
 * for stage names used as keys twice in one constructor and hook functions
 * defined twice, and reports the line of the second.
 */
#include <stdio.h>
#include <string.h>

#include "rules_internal.h"

#define SCAN_DEPTH_MAX 200
#define SCAN_HISTORY 4

enum tok_type { TOK_NAME, TOK_STRING, TOK_NUMBER, TOK_PUNCT, TOK_ASSIGN };

struct tok {
	enum tok_type type;
	char text[32]; /* names and strings, truncated; punctuation as itself */
	int line;
};

struct scanner {
	const char *p, *end;
	int line;
	struct tok hist[SCAN_HISTORY]; /* the latest tokens, hist[0] newest */
	char stack[SCAN_DEPTH_MAX];    /* open brackets: ( [ { */
	int seen[SCAN_DEPTH_MAX][RULE_STAGE_COUNT]; /* stage keys per open { */
	int depth;
	int overflow; /* deeper than SCAN_DEPTH_MAX: stop checking */
};

/* scan_long_bracket - at "[", "[=*[": the level, or -1 when not a long bracket. */
static int scan_long_bracket(const struct scanner *s, const char *p)
{
	int level = 0;

	if (p >= s->end || *p != '[')
		return -1;
	for (p++; p < s->end && *p == '='; p++)
		level++;
	return p < s->end && *p == '[' ? level : -1;
}

/* scan_skip_long - skip a long string or comment of the given level. */
static void scan_skip_long(struct scanner *s, int level)
{
	s->p += level + 2;
	while (s->p < s->end) {
		if (*s->p == '\n')
			s->line++;
		if (*s->p == ']') {
			const char *q = s->p + 1;
			int n = 0;

			while (q < s->end && *q == '=') {
				q++;
				n++;
			}
			if (n == level && q < s->end && *q == ']') {
				s->p = q + 1;
				return;
			}
		}
		s->p++;
	}
}

/* scan_skip_space - skip blanks and comments. */
static void scan_skip_space(struct scanner *s)
{
	int level;

	while (s->p < s->end) {
		char c = *s->p;

		if (c == '\n') {
			s->line++;
			s->p++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
			s->p++;
		} else if (c == '-' && s->p + 1 < s->end && s->p[1] == '-') {
			s->p += 2;
			if ((level = scan_long_bracket(s, s->p)) >= 0) {
				scan_skip_long(s, level);
				continue;
			}
			while (s->p < s->end && *s->p != '\n')
				s->p++;
		} else {
			return;
		}
	}
}

/* scan_short_string - a quoted string; its text (truncated) into t. */
static void scan_short_string(struct scanner *s, struct tok *t)
{
	char quote = *s->p++;
	size_t n = 0;

	while (s->p < s->end && *s->p != quote && *s->p != '\n') {
		if (*s->p == '\\' && s->p + 1 < s->end) {
			s->p++;
			if (*s->p == '\n')
				s->line++;
		}
		if (n + 1 < sizeof(t->text))
			t->text[n++] = *s->p;
		s->p++;
	}
	t->text[n] = '\0';
	if (s->p < s->end && *s->p == quote)
		s->p++;
}

/* scan_next - read one token into t; 0 at the end of the text. */
static int scan_next(struct scanner *s, struct tok *t)
{
	const char *start;
	int level;
	size_t n;

	scan_skip_space(s);
	if (s->p >= s->end)
		return 0;
	t->line = s->line;
	t->text[0] = '\0';
	start = s->p;
	if ((*s->p >= 'a' && *s->p <= 'z') || (*s->p >= 'A' && *s->p <= 'Z') || *s->p == '_') {
		while (s->p < s->end && ((*s->p >= 'a' && *s->p <= 'z') ||
					 (*s->p >= 'A' && *s->p <= 'Z') ||
					 (*s->p >= '0' && *s->p <= '9') || *s->p == '_'))
			s->p++;
		n = (size_t)(s->p - start);
		if (n >= sizeof(t->text))
			n = sizeof(t->text) - 1;
		memcpy(t->text, start, n);
		t->text[n] = '\0';
		t->type = TOK_NAME;
	} else if (*s->p >= '0' && *s->p <= '9') {
		while (s->p < s->end &&
		       ((*s->p >= '0' && *s->p <= '9') || (*s->p >= 'a' && *s->p <= 'z') ||
			(*s->p >= 'A' && *s->p <= 'Z') || *s->p == '.' ||
			((*s->p == '+' || *s->p == '-') && strchr("eEpP", s->p[-1]) != NULL)))
			s->p++;
		t->type = TOK_NUMBER;
	} else if (*s->p == '"' || *s->p == '\'') {
		scan_short_string(s, t);
		t->type = TOK_STRING;
	} else if ((level = scan_long_bracket(s, s->p)) >= 0) {
		scan_skip_long(s, level);
		t->type = TOK_STRING;
	} else if (*s->p == '=' && s->p + 1 < s->end && s->p[1] == '=') {
		s->p += 2;
		t->type = TOK_PUNCT;
		strcpy(t->text, "==");
	} else if (*s->p == '=') {
		s->p++;
		t->type = TOK_ASSIGN;
		strcpy(t->text, "=");
	} else {
		/* ~= <= >= are two punctuation tokens here: neither is a key's "=". */
		t->type = TOK_PUNCT;
		t->text[0] = *s->p++;
		t->text[1] = '\0';
	}
	return 1;
}

/* tok_is - whether t is the punctuation c. */
static int tok_is(const struct tok *t, char c)
{
	return t->type == TOK_PUNCT && t->text[0] == c && t->text[1] == '\0';
}

/* scan_bracket - keep the stack of open brackets. */
static void scan_bracket(struct scanner *s, const struct tok *t)
{
	if (t->type != TOK_PUNCT || t->text[1] != '\0')
		return;
	switch (t->text[0]) {
	case '(':
	case '[':
	case '{':
		if (s->depth == SCAN_DEPTH_MAX) {
			s->overflow = 1;
			return;
		}
		s->stack[s->depth] = t->text[0];
		memset(s->seen[s->depth], 0, sizeof(s->seen[s->depth]));
		s->depth++;
		break;
	case ')':
	case ']':
	case '}':
		if (s->depth > 0)
			s->depth--;
		break;
	}
}

/* scan_start - a scanner over text, past a "#!" first line. */
static void scan_start(struct scanner *s, const char *text, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->p = text;
	s->end = text + len;
	s->line = 1;
	if (len >= 1 && text[0] == '#')
		while (s->p < s->end && *s->p != '\n')
			s->p++;
}

/* scan_advance - read the next token into the history; 0 at the end. */
static int scan_advance(struct scanner *s)
{
	struct tok t;

	if (s->overflow || !scan_next(s, &t))
		return 0;
	memmove(&s->hist[1], &s->hist[0], sizeof(s->hist[0]) * (SCAN_HISTORY - 1));
	s->hist[0] = t;
	scan_bracket(s, &t);
	return 1;
}

/* scan_key_name - the name of a "key =" that just ended, or NULL. */
static const char *scan_key_name(const struct scanner *s)
{
	const struct tok *h = s->hist;

	if (h[0].type != TOK_ASSIGN || s->depth == 0 || s->stack[s->depth - 1] != '{')
		return NULL;
	if (h[1].type == TOK_NAME && (tok_is(&h[2], '{') || tok_is(&h[2], ',') || tok_is(&h[2], ';')))
		return h[1].text;
	if (tok_is(&h[1], ']') && h[2].type == TOK_STRING && tok_is(&h[3], '['))
		return h[2].text;
	return NULL;
}

/* scan_hook_name - the name of a "function name(" that just ended, or NULL. */
static const char *scan_hook_name(const struct scanner *s)
{
	const struct tok *h = s->hist;

	if (tok_is(&h[0], '(') && h[1].type == TOK_NAME && h[2].type == TOK_NAME &&
	    strcmp(h[2].text, "function") == 0 &&
	    !(h[3].type == TOK_NAME && strcmp(h[3].text, "local") == 0))
		return h[1].text;
	return NULL;
}

/* rules_scan_line_of - find where a key or hook name appears. */
int rules_scan_line_of(const struct rules_scan *scan, const char *name, int hook)
{
	struct scanner s;
	const char *found;

	if (scan->text == NULL)
		return 0;
	scan_start(&s, scan->text, scan->len);
	while (scan_advance(&s)) {
		found = hook ? scan_hook_name(&s) : scan_key_name(&s);
		if (found != NULL && strcmp(found, name) == 0)
			return s.hist[0].line;
	}
	return 0;
}

/* rules_scan_source - look for repeated stage keys and hook functions. */
int rules_scan_source(const char *path, const char *text, size_t len, struct rules_scan *scan,
		      char *err, size_t errlen)
{
	struct scanner s;
	const char *name;
	int stage, *first;

	memset(scan, 0, sizeof(*scan));
	scan_start(&s, text, len);
	while (scan_advance(&s)) {
		const struct tok t = s.hist[0];

		if ((name = scan_key_name(&s)) != NULL && (stage = rules_stage_from_name(name)) >= 0) {
			first = &s.seen[s.depth - 1][stage];
			if (*first != 0) {
				snprintf(err, errlen, "%s:%d: stage \"%s\" declared twice (first on line %d)",
					 path, t.line, rules_stage_name(stage), *first);
				return -1;
			}
			*first = t.line;
			if (scan->stage_line[stage] == 0)
				scan->stage_line[stage] = t.line;
		}
		if ((name = scan_hook_name(&s)) != NULL && (stage = rules_stage_from_hook(name)) >= 0) {
			if (scan->hook_line[stage] != 0) {
				snprintf(err, errlen, "%s:%d: function %s defined twice (first on line %d)",
					 path, t.line, s.hist[1].text, scan->hook_line[stage]);
				return -1;
			}
			scan->hook_line[stage] = t.line;
		}
	}
	return 0;
}
