/*
 * rules_auth_results.h - Authentication-Results (RFC 8601) for the rules
 * (rules_auth_results.c): ctx:add_authentication_results(), and the parser
 * of a field's authserv-id it uses to find forged fields. Private to the
 * rule engine (the fuzz target reaches the parser through it).
 */
#ifndef VSMTPD_RULES_AUTH_RESULTS_H
#define VSMTPD_RULES_AUTH_RESULTS_H

#include <stddef.h>
#include <sys/types.h>

#include <lauxlib.h>

/* The longest authserv-id kept, its NUL included (a host name is at most 253). */
#define RULES_AR_ID_MAX 256

/*
 * rules_ar_authserv_id - the authserv-id of an Authentication-Results
 * field's unfolded value (RFC 8601 section 2.2: CFWS, then the id, a
 * token or a quoted-string, then CFWS, ';' or the end), unquoted, into out
 * (outlen bytes, NUL-terminated). Whatever follows the id (a version, the
 * results) is not read. Returns the id's length, or -1 when the value does
 * not start with one (an unterminated comment or quoted-string, an empty
 * id, a character that may not follow it, a NUL in it) or it does not fit.
 */
ssize_t rules_ar_authserv_id(const char *value, size_t len, char *out, size_t outlen);

struct rule_ctx;

/*
 * rules_ar_push_value - push the value ctx:add_authentication_results()
 * would add under the authserv-id id: id, then every result kept in ctx so
 * far, or "none"; returns it. ctx:arc_seal() makes its
 * ARC-Authentication-Results of it (rules_arc_seal.c).
 */
const char *rules_ar_push_value(lua_State *L, const struct rule_ctx *ctx, const char *id);

struct rules;
struct offline_auth;

/*
 * rules_ar_summary - the results kept in ctx so far into *out, for `rules
 * run` and `rules test` (rules_offline.c): each method's result, and the
 * text of the field without its authserv-id ("" when nothing ran).
 */
void rules_ar_summary(struct rules *r, const struct rule_ctx *ctx, struct offline_auth *out);

/* The ctx method ctx:add_authentication_results() (rules_ctx_open adds it). */
extern const luaL_Reg ctx_auth_results_methods[];

#endif
