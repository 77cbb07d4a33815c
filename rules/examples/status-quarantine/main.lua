-- status-quarantine - status.quarantine(name): keep a message aside.
--
-- The client gets the normal "250 2.0.0 Ok: queued as ID", but the message
-- is written to <spool>/quarantine/<name>/ID (same file format as
-- queue/) instead of the queue, and is not delivered. The rules after it
-- are skipped. An administrator lists it with "vsmtpctl quarantine list",
-- then delivers it after all ("vsmtpctl quarantine release virus_queue ID")
-- or deletes it ("vsmtpctl quarantine remove virus_queue ID").
--
-- Compared with the vSL original: it runs the check at postq,
-- after a virus scanning service (delegate svc::clamsmtpd) added its
-- verdict header. vsmtpd has no services to delegate to, so the verdict
-- header is there when the message arrives: a scanner in front of this
-- server (a content filter relaying to us) or the sending system added it.
-- The rule runs at preq, on the header as it arrives; a postq rule would
-- do the same once the message is queued (see the offline-stages
-- example). ctx:quarantine(name) is the same as status.quarantine(name).

return {
  preq = {
    rule "check email for virus" (function(ctx)
      -- the email is placed in quarantine if a virus scanner flagged it.
      if ctx:has_header("X-Virus-Infected") then
        return ctx:quarantine("virus_queue")
      end
      return status.next()
    end),
  },
}
