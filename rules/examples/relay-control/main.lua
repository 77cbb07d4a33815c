-- relay-control - an allow-list by IP address, and no open relay.
--
-- The shape of the default policy (rules/main.lua), with the trusted
-- networks decided at connect:
--   * a client in [rules] trusted_networks (your own servers and users'
--     networks: config.trusted_networks) is force-accepted when it
--     connects: faccept skips every later rule of the connection, so it
--     may send mail to any domain;
--   * a client that authenticated (SMTP AUTH) may send mail anywhere too;
--   * everybody else may only send mail to the local domains: [rules]
--     local_domains (config.local_domains), the host name and "localhost",
--     and to the bare "postmaster" that RFC 5321 says must always work;
--     not to a local part that routes the mail on (user%elsewhere,
--     elsewhere!user, "user@elsewhere"), unless [rules]
--     allow_routing_local_parts = yes;
--   * any other recipient is refused with 554 5.7.1 Relay access denied.
--     The trailing rule uses reject, not deny: that one recipient is
--     refused and the client may go on with the others.
--
-- In vsmtpd.conf:
--   [rules]
--   local_domains = example.com
--   trusted_networks = 127.0.0.0/8 ::1 192.0.2.0/24

-- The host name in lower case, as address objects give domains.
local me = hostname()

-- is_local - whether mail for this domain stays here.
local function is_local(domain)
  return domain == me or domain == "localhost" or config.local_domains:contains(domain)
end

-- routes_on - whether a local part names a further destination: '%', '!'
-- or a quoted '@'.
local function routes_on(local_part)
  return local_part:find("[%%!@]") ~= nil
end

return {
  connect = {
    rule "trusted networks" (function(ctx)
      if config.trusted_networks:contains(ctx.client_ip) then
        return status.faccept()
      end
      return status.next()
    end),
  },

  rcpt = {
    -- RFC 5321 4.5.1: "postmaster" with no domain must be accepted.
    rule "postmaster" (function(ctx)
      if ctx.rcpt.domain == "" then
        return status.accept()
      end
      return status.next()
    end),

    rule "local domains" (function(ctx)
      if is_local(ctx.rcpt.domain) and routes_on(ctx.rcpt.local_part)
          and not config.allow_routing_local_parts then
        return status.reject(code(550, "5.7.1",
                                  "Recipient address rejected: no routing by the local part"))
      end
      if is_local(ctx.rcpt.domain) then
        return status.accept()
      end
      return status.next()
    end),

    rule "authenticated users" (function(ctx)
      if ctx.is_authenticated then
        return status.accept()
      end
      return status.next()
    end),

    rule "trailing" (function(ctx)
      return status.reject(codes.relay_denied)
    end),
  },
}
