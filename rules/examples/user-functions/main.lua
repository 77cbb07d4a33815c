-- user-functions - your own functions as rules and actions.
--
-- A rule's body is any Lua function that takes ctx and returns a status,
-- so common steps can be written once as plain functions and used by
-- several rules, or passed to rule "name" (...) directly.
--
-- my_faccept logs and returns faccept: the rule that returns its result
-- force-accepts. my_custom_action removes john from the recipients and
-- returns next: the rule engine goes on with the next rule.
--
-- Compared with the vSL original: it runs my_custom_action at
-- the mail stage. When MAIL arrives there is no recipient yet, so there it
-- would remove nothing; it runs at preq here, when the recipient list is
-- complete. If john was the only recipient, nothing is left to deliver:
-- the client still gets 250 ("Ok: discarded") and nothing is queued.

-- my_faccept - log, then force-accept.
local function my_faccept()
  log("info", "Hello world !!!")
  return status.faccept()
end

-- my_custom_action - take john off the recipient list, then go on.
local function my_custom_action(ctx)
  log("info", "remove john from rcpt")
  ctx:remove_rcpt("john.doe@example.com")
  return status.next()
end

return {
  preq = {
    -- the return value of my_custom_action (next) is also returned by this
    -- rule, telling the server to read the next rule.
    rule "remove john" (my_custom_action),

    -- my_faccept returns faccept, thus telling the rule engine to accept
    -- everything at this point without evaluating other rules.
    rule "faccept" (function(ctx)
      return my_faccept()
    end),

    rule "never reached" (function(ctx)
      return status.deny()
    end),
  },
}
