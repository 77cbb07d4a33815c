-- predefined-functions - change the envelope and the message before it is
-- queued: vSL's predefined functions as ctx methods.
--
-- A company gateway for example.com. Every message it accepts:
--   * loses any X-Internal-Route header a sender put in (only our own
--     systems may set it: remove_header), and gains an X-Scanned-By
--     trailer header (append_header) and an X-Gateway header at the very
--     top, above the Received: line vsmtpd adds (prepend_header);
--   * from the retired domain legacy.example.com is sent on as coming from
--     example.com (rewrite_mail_from);
--   * to info@ goes to contact@ instead, in the envelope (rewrite_rcpt)
--     and in the To: header readers see (rewrite_to);
--   * to sales@ also goes to the CRM system, which is then listed in To:
--     (add_rcpt, add_to);
--   * to noreply@ is not delivered to that address, and noreply@ is taken
--     out of To: (remove_rcpt, remove_to); mail for noreply@ alone is
--     discarded (250 "Ok: discarded", nothing queued);
--   * is copied to the archive mailbox without any header showing it (bcc);
--   * to legal@ is also saved on disk, as the raw message (write) and as a
--     JSON record of the connection, envelope, variables and message
--     (dump), in [rules] app_dir: /var/lib/vsmtpd/legal/<queue id>.eml and
--     .json;
--   * is logged (log).
-- The envelope functions work from the mail stage on; the header and To:
-- functions, and write, work on the message, so from the preq stage on.
-- The files are written by the queue process for the rule (the session
-- itself can write no file); a rule cannot choose the file name, only the
-- folder.
--
-- user_exist(name) is shown by the local-users example; vSL's send_mail()
-- is send_mail(from, to, path [, relay]) here, a message file of the rules
-- folder (docs/rules.md, "send_mail").

local archive = "archive@example.com"
local crm = "crm@example.com"

return {
  preq = {
    action "headers" (function(ctx)
      ctx:remove_header("X-Internal-Route")
      ctx:append_header("X-Scanned-By", hostname())
      ctx:prepend_header("X-Gateway", "in; client=" .. ctx.client_ip)
    end),

    action "retired sender domain" (function(ctx)
      local from = ctx.mail_from
      if from.domain == "legacy.example.com" then
        ctx:rewrite_mail_from(from.local_part .. "@example.com")
      end
    end),

    action "aliases and copies" (function(ctx)
      if ctx:rewrite_rcpt("info@example.com", "contact@example.com") then
        ctx:rewrite_to("info@example.com", "contact@example.com")
      end
      for _, rcpt in ipairs(ctx.rcpt_list) do
        if rcpt == address("sales@example.com") and ctx:add_rcpt(crm) then
          ctx:add_to(crm)
        end
      end
      if ctx:remove_rcpt("noreply@example.com") then
        ctx:remove_to("noreply@example.com")
      end
    end),

    action "copies on disk" (function(ctx)
      for _, rcpt in ipairs(ctx.rcpt_list) do
        if rcpt.local_part == "legal" and rcpt.domain == "example.com" then
          ctx:write("legal")
          ctx:dump("legal")
          break
        end
      end
    end),

    action "archive" (function(ctx)
      if #ctx.rcpt_list > 0 then
        ctx:bcc(archive)
        log("info", string.format("%s: from <%s>, %d recipients, archived",
          ctx.message_id, tostring(ctx.mail_from), #ctx.rcpt_list))
      end
    end),
  },
}
