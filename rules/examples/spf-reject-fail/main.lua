-- spf-reject-fail - refuse at MAIL what SPF says is forged.
--
-- ctx:spf() checks the sender's domain (RFC 7208): may the client's
-- address send its mail? A domain that ends its record with "-all" says
-- every other address is forged: that is a "fail", refused here with
--   550 5.7.23 SPF: <domain> does not allow mail from <address>
-- (5.7.23 is RFC 7372's code for an SPF failure). The refusal is at MAIL,
-- before any recipient or data: the client may try another sender.
--
-- "softfail" (~all), "neutral", "none" and "permerror" (a broken record)
-- go on: only the domain's owner can fix them, and refusing them loses
-- real mail. When DNS could not say ("temperror": a timeout, SERVFAIL),
-- the client gets 451 and tries again later.
--
-- Clients in [rules] trusted_networks (our own hosts, which send for many
-- domains) are not checked. For the null sender of bounces, ctx:spf()
-- checks postmaster@ the HELO name. The lookups go to [rules] dns_servers.

return {
  mail = {
    rule "trusted networks" (function(ctx)
      if config.trusted_networks:contains(ctx.client_ip) then
        return status.accept()
      end
      return status.next()
    end),

    rule "spf" (function(ctx)
      local r = ctx:spf()
      if r.result == "fail" then
        log("info", string.format("SPF fail for %s from %s (%s)", r.domain, ctx.client_ip,
                                  r.mechanism or "-"))
        return status.reject(code(550, "5.7.23", "SPF: " .. r.domain
          .. " does not allow mail from " .. ctx.client_ip))
      elseif r.result == "temperror" then
        return status.reject(code(451, "4.4.3", "SPF: cannot check " .. r.domain
          .. " now, try again later"))
      end
      return status.next()
    end),
  },
}
