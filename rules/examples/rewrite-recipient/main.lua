-- rewrite-recipient - aliases: deliver mail for one address to another.
--
-- Role addresses of example.com are not mailboxes: at RCPT, mail for them
-- is redirected to the people who read it. The envelope recipient is
-- rewritten (ctx:rewrite_rcpt) and the message is delivered to the new
-- address only; the To: header is left as the sender wrote it, as aliases
-- always do. An alias for several people rewrites the recipient to the
-- first and adds the others (ctx:add_rcpt).
--
-- The rest is the usual relay control: local domains accepted from
-- anyone, relaying for the trusted networks only, a trailing rule that
-- refuses everything else.

-- Keys in lower case: the lookup lowercases the address.
local aliases = {
  ["postmaster@example.com"] = { "admin@example.com" },
  ["abuse@example.com"] = { "admin@example.com" },
  ["info@example.com"] = { "sales@example.com" },
  ["team@example.com"] = { "alice@example.com", "bob@example.com" },
}

return {
  rcpt = {
    rule "aliases" (function(ctx)
      local targets = aliases[string.lower(ctx.rcpt.address)]
      if targets == nil then
        return status.next()
      end
      ctx:rewrite_rcpt(ctx.rcpt, targets[1])
      for i = 2, #targets do
        ctx:add_rcpt(targets[i])
      end
      log("info", "alias " .. ctx.rcpt.address .. " -> " .. table.concat(targets, ", "))
      return status.accept()
    end),

    rule "local domains" (function(ctx)
      if config.local_domains:contains(ctx.rcpt) then
        return status.accept()
      end
      return status.next()
    end),

    rule "relay for trusted clients" (function(ctx)
      if config.trusted_networks:contains(ctx.client_ip) then
        return status.accept()
      end
      return status.next()
    end),

    rule "trailing" (function(ctx)
      return status.reject(codes.relay_denied)
    end),
  },
}
