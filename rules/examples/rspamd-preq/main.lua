-- rspamd-preq - rspamd's verdict on each message from outside, before the
-- 250: refuse what it rejects (550, and the connection ends), greylist what
-- it greylists (451: the client's server tries again later), tag what it
-- would add a header to, and add rspamd's own header fields (X-Spamd-Result,
-- ... as its milter_headers module says) to every message that is queued.
--
-- vsmtpd.conf:
--
--   [service:rspamd]
--   kind = rspamd
--   address = 127.0.0.1:11333   # rspamd's normal worker
--   timeout = 20s
--   on_failure = tempfail       # rspamd down: 451, the message comes back later
--
-- Authenticated users and trusted networks are this host's own senders:
-- their mail is not scanned.

local function from_outside(ctx)
  return not ctx.is_authenticated and not config.trusted_networks:contains(ctx.client_ip)
end

return {
  preq = {
    rule "rspamd" (function(ctx)
      if not from_outside(ctx) then
        return status.next()
      end
      local r = ctx:rspamd("rspamd")
      if r.action == "reject" then
        return status.deny(code(550, "5.7.1",
                                string.format("Spam message rejected (score %.1f)", r.score)))
      elseif r.action == "greylist" or r.action == "soft reject" then
        return status.reject(codes.greylisted)
      elseif r.action == "add header" or r.action == "rewrite subject" then
        ctx:set_header("X-Spam", "Yes")
        ctx:set_header("X-Spam-Score", string.format("%.2f / %.2f", r.score, r.required_score))
      end
      return status.next()
    end),
  },
}
