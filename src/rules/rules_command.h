/*
 * rules_command.h - ctx:command(name) (rules_command.c): a kind = command
 * service's program run by the command runner. Private to the rule engine.
 */
#ifndef VSMTPD_RULES_COMMAND_H
#define VSMTPD_RULES_COMMAND_H

#include <lauxlib.h>

/* The ctx method ctx:command() (rules_ctx_open adds it). */
extern const luaL_Reg ctx_command_methods[];

#endif
