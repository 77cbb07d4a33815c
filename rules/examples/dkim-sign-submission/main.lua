-- dkim-sign-submission - sign what this host's own users send: clients
-- that logged in (submission) and the trusted networks. Each sending
-- domain has its key in vsmtpd.conf, read by the master, never by a
-- session:
--
--   [dkim:example_com]
--   domain = example.com
--   selector = s2025
--   key = /etc/vsmtpd/dkim/s2025.example.com.pem
--
-- The key is chosen by the domain of the sender; mail from a domain
-- without a key goes out unsigned. The signature is made last, at preq,
-- after every other edit of the message: an edit after it would break it.

-- The signing key of each domain, by its [dkim:NAME] name.
local keys = {
  ["example.com"] = "example_com",
}

local function ours(ctx)
  return ctx.is_authenticated or config.trusted_networks:contains(ctx.client_ip)
end

return {
  preq = {
    rule "sign outbound" (function(ctx)
      local key = keys[ctx.mail_from.domain]
      if ours(ctx) and key then
        ctx:dkim_sign(key)
        log("info", "signed for " .. ctx.mail_from.domain .. " with [dkim:" .. key .. "]")
      end
      return status.next()
    end),
  },
}
