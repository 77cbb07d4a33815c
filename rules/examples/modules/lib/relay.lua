-- lib/relay.lua - relay control as a module: require("lib.relay").
--
-- Returns a table with
--   is_local(domain)  whether mail for the domain stays here
--   may_relay(ctx)    whether the client may send mail anywhere
--   rules             the rcpt-stage rules: local domains and trusted
--                     clients accepted, everything else refused

local M = {}

function M.is_local(domain)
  return config.local_domains:contains(domain) or domain == "localhost"
end

function M.may_relay(ctx)
  return ctx.is_authenticated or config.trusted_networks:contains(ctx.client_ip)
end

M.rules = {
  rule "local domains" (function(ctx)
    if M.is_local(ctx.rcpt.domain) then
      return status.accept()
    end
    return status.next()
  end),

  rule "relay for trusted clients" (function(ctx)
    if M.may_relay(ctx) then
      return status.accept()
    end
    return status.next()
  end),

  rule "trailing" (function(ctx)
    return status.reject(codes.relay_denied)
  end),
}

return M
