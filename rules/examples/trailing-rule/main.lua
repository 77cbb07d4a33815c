-- trailing-rule - end a stage with a rule that refuses what nothing accepted.
--
-- Rules of a stage run top to bottom. When the client ip is not the known
-- 192.168.1.254, the rule engine goes on to "trailing", which denies the
-- connection at once: 554 5.7.1 instead of the greeting.
--
-- As with firewall rules, the best practice is to deny everything and only
-- accept authorized and known clients. Each stage of a policy should end
-- with such a trailing rule, so that a case nobody thought of is refused,
-- not waved through.
--
-- accept() ends only the connect stage: the stages after it run their
-- rules as usual. With faccept() instead, nothing after it would run for
-- this client at all (the variant vSL's own recommendation shows).

return {
  connect = {
    -- This rule is executed once a new client connects to the server.
    rule "check client ip" (function(ctx)
      if ctx.client_ip == "192.168.1.254" then
        return status.accept()
      end
      return status.next()
    end),

    -- If the client ip is not known, the connection is denied.
    rule "trailing" (function(ctx)
      return status.deny()
    end),
  },
}
