-- tag-and-quarantine - mark likely spam, keep virus-infected mail aside.
--
-- For a server behind (or in front of) content scanners that report in
-- headers: SpamAssassin's "X-Spam-Flag: YES", ClamAV's "X-Virus-Status:
-- Infected (...)". At preq, once the whole message is in:
--   * a message whose X-Virus-Status says infected is quarantined: the
--     client gets its usual 250, the message goes to
--     <spool>/quarantine/virus/ and is not delivered (unless an
--     administrator releases it: "vsmtpctl quarantine release virus ID");
--   * a message flagged by the spam scanner, or whose Subject looks like
--     spam, gets an "X-Spam: yes" header (appended at the end of the
--     header), which mailbox filters can sort on. It is still delivered;
--   * every other message goes through untouched.
--
-- Only trust such headers when your own scanner adds them: without one,
-- they come from the sender, who may write anything.

-- Built once when the rules load; "i" ignores case.
local spam_subject = regex("viagra|casino|lottery|you have won|\\$\\$\\$", "i")
local infected = regex("^infected", "i")

return {
  preq = {
    rule "virus" (function(ctx)
      local verdict = ctx:get_header("X-Virus-Status")
      if verdict ~= nil and infected:match(verdict) then
        log("notice", ctx.message_id .. ": virus: " .. verdict)
        return status.quarantine("virus")
      end
      return status.next()
    end),

    action "spam tag" (function(ctx)
      local flag = ctx:get_header("X-Spam-Flag")
      local subject = ctx:get_header("Subject") or ""
      if (flag ~= nil and flag:upper() == "YES") or spam_subject:match(subject) then
        ctx:append_header("X-Spam", "yes")
      end
    end),
  },
}
