-- delegate-virus-filter - the seeds' delegate example: a content filter at
-- postq.
--
-- Every queued message is sent to clamsmtpd, a content filter that speaks
-- SMTP: it scans the message, adds X-Virus-Infected when it finds a virus,
-- and sends the message on to vsmtpd's delegation listener. The rule's
-- function runs on the message as it came back: an infected one is
-- quarantined in quarantine/virus_queue/, a clean one goes on to delivery.
-- While the filter has it, the message stays queued; a filter that loses
-- it gets it again after the service's timeout.
--
-- The configuration it needs; in clamsmtpd.conf: "Listen: 127.0.0.1:10025",
-- "OutAddress: 10026" (where it sends the message on) and "Action: pass"
-- (an infected message is passed on with an X-Virus-Infected field;
-- clamsmtpd's default, drop, would never send it back, and vsmtpd would
-- send it again after each timeout until its queue lifetime ends):
--
--   [service:clamsmtpd]
--   kind = delegate
--   address = 127.0.0.1:10025
--   timeout = 10m
--
--   [listener:filtered]
--   address = 127.0.0.1:10026
--   kind = delegation
--
-- Compared with the vSL original (delegate svc::clamsmtpd "..." || { ... }):
-- the service is named by a string, declared in vsmtpd.conf rather than in
-- a services module, and the block is a function returning a status.

return {
  postq = {
    delegate "check email for virus" ("clamsmtpd", function(ctx)
      -- the email is placed in quarantine if a virus is detected by the
      -- service.
      if ctx:has_header("X-Virus-Infected") then
        return status.quarantine("virus_queue")
      end
      return status.next()
    end),
  },
}
