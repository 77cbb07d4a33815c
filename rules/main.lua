-- main.lua - the default policy of vsmtpd.
--
-- Installed as /etc/vsmtpd/rules/main.lua; [rules] file in vsmtpd.conf names
-- another. docs/rules.md describes every stage, status and function.
--
-- What it does:
--   * mail for a local domain is accepted from anyone: the domains of
--     [rules] local_domains, the server's own host name and "localhost";
--     but not to a local part that routes the mail on (user%elsewhere,
--     elsewhere!user, "user@elsewhere"), which vsmtpd would deliver to a
--     local mailbox of that name and relay scanners report as an open
--     relay: 550 5.7.1, unless [rules] allow_routing_local_parts = yes;
--   * mail for any other domain is relayed only for authenticated sessions
--     and for clients in [rules] trusted_networks (default: this host);
--   * everything else is refused with 554 5.7.1 Relay access denied, so the
--     server is no open relay;
--   * mail from outside (neither authenticated nor from a trusted network)
--     is checked with SPF, DKIM and DMARC when it has arrived, the results
--     go into an Authentication-Results header on top of it (forged ones
--     carrying this host's name are removed), and only what the From
--     domain's DMARC policy asks receivers to reject (p=reject, or sp= for
--     a subdomain, after pct) is refused, with 550 5.7.1. That is the
--     choice to change: rules/examples/ has stricter ones (quarantine
--     p=quarantine failures, refuse SPF -all failures at MAIL).
--
-- The rcpt stage ends with a trailing rule, as every stage of a policy
-- should: a recipient no rule accepted is refused. The trailing rule uses
-- status.reject, which refuses that one RCPT and lets the client go on with
-- its other recipients; status.deny would close the connection.

-- is_local - whether mail for this domain stays here.
local function is_local(domain)
  domain = string.lower(domain)
  return domain == hostname() or domain == "localhost" or config.local_domains:contains(domain)
end

-- routes_on - whether a local part names a further destination: the
-- percent hack (user%elsewhere), a bang path (elsewhere!user) or an '@'
-- (which only a quoted local part can hold).
local function routes_on(local_part)
  return local_part:find("[%%!@]") ~= nil
end

-- may_relay - whether this client may send mail anywhere.
local function may_relay(ctx)
  return ctx.is_authenticated or config.trusted_networks:contains(ctx.client_ip)
end

return {
  rcpt = {
    -- RFC 5321 4.5.1: "postmaster" (with no domain) must always be accepted.
    rule "postmaster" (function(ctx)
      if ctx.rcpt.domain == "" then
        return status.accept()
      end
      return status.next()
    end),

    rule "no routing through local parts" (function(ctx)
      if is_local(ctx.rcpt.domain) and routes_on(ctx.rcpt.local_part)
          and not config.allow_routing_local_parts then
        return status.reject(code(550, "5.7.1",
                                  "Recipient address rejected: no routing by the local part"))
      end
      return status.next()
    end),

    rule "local domains" (function(ctx)
      if is_local(ctx.rcpt.domain) then
        return status.accept()
      end
      return status.next()
    end),

    rule "relay for trusted clients" (function(ctx)
      if may_relay(ctx) then
        return status.accept()
      end
      return status.next()
    end),

    rule "trailing" (function(ctx)
      return status.reject(codes.relay_denied)
    end),
  },

  preq = {
    -- Each check looks its records up once and keeps its result for the
    -- header; a DNS failure is a temperror, which refuses nothing.
    rule "mail authentication" (function(ctx)
      if may_relay(ctx) then
        return status.next()
      end
      ctx:spf()
      ctx:dkim()
      local dmarc = ctx:dmarc()
      ctx:add_authentication_results()
      if dmarc.disposition == "reject" then
        return status.reject(code(550, "5.7.1", "Rejected by the DMARC policy of "
                                  .. dmarc.policy_domain))
      end
      return status.next()
    end),
  },
}
