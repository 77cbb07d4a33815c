-- hold-for-review - keep some mail from delivery until an administrator
-- has looked at it, as Postfix's HOLD action does.
--
-- Two common cases: a user who logged in sending to many recipients at
-- once (a stolen password is often used that way), and a message with an
-- executable attachment. ctx:hold(reason) marks the message: the client
-- gets its usual "250 2.0.0 Ok: queued as ID", the message is committed
-- into <spool>/hold/ instead of the queue, and "vsmtpctl queue list" shows
-- it with the reason until "vsmtpctl queue release ID" delivers it (the
-- postq rules do not run for it) or "vsmtpctl queue remove ID" deletes it.
-- A hold is a mark, not a status: the rules after it still run, and may
-- refuse the message; a message held and then refused is not queued.

local MANY = 20
local executable = regex('filename="?[^"]*\\.(exe|scr|js|vbs|bat|cmd)"?', "i")

return {
  rcpt = {
    rule "local domains, or users who logged in" (function(ctx)
      if config.local_domains:contains(ctx.rcpt) or ctx.is_authenticated then
        return status.accept()
      end
      return status.reject(codes.relay_denied)
    end),
  },

  preq = {
    action "many recipients from one login" (function(ctx)
      if ctx.is_authenticated and #ctx.rcpt_list > MANY then
        -- The reason is printable ASCII: the login, which may not be,
        -- goes to the log instead.
        log("notice", "holding mail of " .. ctx.auth.authid .. " to "
          .. #ctx.rcpt_list .. " recipients")
        ctx:hold("more than " .. MANY .. " recipients from one login")
      end
    end),

    action "executable attachment" (function(ctx)
      if executable:match(ctx.body) then
        ctx:hold("executable attachment")
      end
    end),

    rule "a From header" (function(ctx)
      if not ctx:has_header("From") then
        return status.reject(code(550, "5.6.0", "No From header"))
      end
      return status.next()
    end),
  },
}
