-- offline-stages - rules for after the message is queued: postq and
-- delivery; and for authenticated clients: authenticate.
--
-- postq rules run once a message is safely queued and the client has its
-- 250; delivery rules run before each delivery attempt. They run in the
-- delivery process, "offline": there is no client to answer any more, so a
-- refusal there fails the recipients and the sender gets a bounce.
--
-- A postq rule that changes the message (a header) makes the worker queue
-- the changed copy; delivery rules run at every attempt and choose the
-- transport of each recipient (docs/rules.md, "Delivery").
--
-- authenticate is no offline stage: its rules run in the session, after
-- Cyrus SASL accepted the password of an AUTH command and before the 235
-- reply, with ctx.auth = {mechanism = "PLAIN", authid = "alice@example.org"}.
-- It is here because it also runs outside the usual connect ... preq path:
-- only for clients that log in. A refusal there answers 535 5.7.8 (deny
-- also closes the connection); this file only logs the login.

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
