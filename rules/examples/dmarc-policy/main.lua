-- dmarc-policy - do what the sender's domain asks with DMARC, fully:
-- refuse the failures p=reject covers and quarantine those p=quarantine
-- covers (the shipped policy only refuses), and record the results.
--
-- For mail from outside only: authenticated users and trusted networks are
-- this host's own senders. A DNS failure (temperror) refuses nothing.

local function from_outside(ctx)
  return not ctx.is_authenticated and not config.trusted_networks:contains(ctx.client_ip)
end

return {
  preq = {
    rule "dmarc" (function(ctx)
      if not from_outside(ctx) then
        return status.next()
      end
      local d = ctx:dmarc()
      ctx:add_authentication_results()
      if d.disposition == "reject" then
        return status.reject(code(550, "5.7.1", "Rejected by the DMARC policy of "
                                  .. d.policy_domain))
      elseif d.disposition == "quarantine" then
        return status.quarantine("dmarc")
      end
      return status.next()
    end),
  },
}
