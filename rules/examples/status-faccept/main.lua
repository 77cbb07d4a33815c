-- status-faccept - status.faccept() trusts a client for good.
--
-- faccept ("force accept") skips every later rule of every stage. Given at
-- connect (or helo) it holds for the whole connection, every message of it
-- included; given at mail, rcpt or preq, for the rest of that message.
-- Return it only for clients you trust completely.
--
-- Here 192.168.1.10 is a trusted source (a relay of our own, say): it skips
-- the mail stage's rule, which refuses every other client's mail. The vSL
-- original leaves that rule's body as "doing stuff"; refusing is the simplest body
-- that shows the difference faccept makes.

return {
  connect = {
    -- Here we imagine that "192.168.1.10" is a trusted source, so we can
    -- force accept: no rule after this one runs for its connections.
    rule "check for trusted source" (function(ctx)
      if ctx.client_ip == "192.168.1.10" then
        return status.faccept()
      end
      return status.next()
    end),
  },

  -- Not evaluated when ctx.client_ip == "192.168.1.10".
  mail = {
    rule "another rule" (function(ctx)
      return status.reject(code(550, "5.7.1", "Only our relay sends mail here"))
    end),
  },
}
