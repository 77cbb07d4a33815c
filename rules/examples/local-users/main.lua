-- local-users - accept mail only for accounts that exist on this host.
--
-- For a host whose users are its system accounts (/etc/passwd, or NSS:
-- LDAP, sssd): mail for alice@example.com is accepted only when the
-- account "alice" exists, checked with user_exist(name). A recipient that
-- does not exist is refused at RCPT with 550 5.1.1 user unknown, so the
-- sender learns it at once instead of getting a bounce later, and no
-- backscatter is sent to forged senders.
--
-- The bare "postmaster" and the role addresses in the table below are
-- mapped to accounts first: RFC 5321 requires postmaster to work.
-- Domains that are not local are left to the relay rules: here, refused
-- unless the client is in [rules] trusted_networks.
--
-- user_exist() is answered by the queue process (a session process cannot
-- read the account database); it only works inside a rule, not while the
-- rules load. Names are compared as the system does, in their case.

local roles = { postmaster = "root", abuse = "root", hostmaster = "root" }

-- account - the account a local part stands for.
local function account(local_part)
  return roles[string.lower(local_part)] or local_part
end

return {
  rcpt = {
    rule "postmaster" (function(ctx)
      if ctx.rcpt.domain == "" then
        return status.accept()
      end
      return status.next()
    end),

    rule "local accounts" (function(ctx)
      if not config.local_domains:contains(ctx.rcpt) then
        return status.next()
      end
      if user_exist(account(ctx.rcpt.local_part)) then
        return status.accept()
      end
      return status.reject(codes.unknown_user)
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
