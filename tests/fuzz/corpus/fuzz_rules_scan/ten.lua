-- ten.lua - the benchmark's ruleset: ten rules of the kinds a real policy
-- has (IP ranges, domain lists, header checks, a header added at preq).
-- smtp-source connects from 127.0.0.1 and sends from and to addresses at
-- the machine's host name, so every rule runs and the mail is accepted.

local blocked = ip_list("blocked_ips.txt")
local bad_senders = domain_list("bad_domains.txt")
local bad_helo = regex("^(localhost|unknown)$", "i")
local spam_subject = regex("(viagra|lottery|winner)", "i")

return {
  connect = {
    rule "block list" (function(ctx)
      if blocked:contains(ctx.client_ip) then return status.deny() end
      return status.next()
    end),
    rule "documentation ranges" (function(ctx)
      if net("192.0.2.0/24"):contains(ctx.client_ip) then return status.deny() end
      return status.next()
    end),
  },
  helo = {
    rule "helo name" (function(ctx)
      if bad_helo:match(ctx.helo) and not networks.loopback:contains(ctx.client_ip) then
        return status.reject(codes.bad_helo)
      end
      return status.next()
    end),
  },
  mail = {
    rule "sender domain" (function(ctx)
      if bad_senders:contains(ctx.mail_from) then return status.reject(codes.policy) end
      return status.next()
    end),
  },
  rcpt = {
    rule "local or trusted" (function(ctx)
      if config.local_domains:contains(ctx.rcpt.domain)
        or config.trusted_networks:contains(ctx.client_ip) then
        return status.accept()
      end
      return status.next()
    end),
    rule "trailing" (function(ctx) return status.reject(codes.relay_denied) end),
  },
  preq = {
    rule "too many hops" (function(ctx)
      if ctx:count_header("Received") > 30 then return status.deny(code(554, "5.4.6", "Too many hops")) end
      return status.next()
    end),
    rule "spam subject" (function(ctx)
      local subject = ctx:get_header("Subject")
      if subject and spam_subject:match(subject) then return status.quarantine("spam") end
      return status.next()
    end),
    rule "needs From" (function(ctx)
      if not ctx:has_header("From") then return status.reject(code(550, "5.6.0", "No From header")) end
      return status.next()
    end),
    action "tag" (function(ctx)
      ctx:append_header("X-Policy", "checked by " .. hostname())
    end),
  },
}
