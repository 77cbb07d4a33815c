-- offline-stages - rules for after the message is queued: postq and
-- delivery; and for authenticated clients: authenticate.
--
-- postq rules run once a message is safely queued and the client has its
-- 250; delivery rules run before each delivery attempt. They run in the
-- delivery process, "offline": there is no client to answer any more, so a
-- refusal there fails the recipients and the sender gets a bounce.
-- authenticate rules run after a successful SMTP AUTH.
--
-- vsmtpd has neither the delivery process nor SMTP AUTH yet: these stages
-- are compiled and checked when the rules load (vsmtpd -t, vsmtpctl rules
-- check), so a file written for them is ready, but their rules do not run.
-- Until then, the same checks belong at preq (see tag-and-quarantine).

return {
  authenticate = {
    action "log login" (function(ctx)
      log("info", "authenticated as " .. ctx.auth.authid .. " with " .. ctx.auth.mechanism)
    end),
  },

  postq = {
    rule "virus found after queueing" (function(ctx)
      if ctx:has_header("X-Virus-Infected") then
        return status.quarantine("virus_queue")
      end
      return status.next()
    end),
  },

  delivery = {
    action "log delivery" (function(ctx)
      log("info", ctx.message_id .. ": delivering to " .. #ctx.rcpt_list .. " recipient(s)")
    end),
  },
}
