-- clamav-quarantine - every message scanned by ClamAV; what it finds
-- infected is kept aside in quarantine/virus_queue/, not delivered.
--
-- The seed's example, which hands the message to a clamsmtpd content
-- filter (delegate svc::clamsmtpd) and quarantines it when the filter
-- flagged it, with clamd asked directly: vsmtpd.conf declares the scanner
--
--   [service:clamav]
--   kind = clamd
--   address = /run/clamav/clamd.ctl   (Debian's clamav-daemon)
--   on_failure = tempfail
--   max_size = 20M                    (below clamd's StreamMaxLength)
--
-- and ctx:clamd("clamav") sends it the message with INSTREAM. The rule runs
-- at postq, in the delivery worker, once the message is queued: the client
-- has its 250 at once, whatever clamd takes. When clamd cannot be reached
-- or does not answer in time, on_failure = tempfail keeps the message in
-- the queue to be scanned again at its next attempt: nothing unscanned is
-- delivered. The same rule at preq would scan while the client waits and
-- tell it 451 when clamd is away.
--
-- An administrator lists the quarantine with "vsmtpctl quarantine list
-- virus_queue", delivers a false positive with "vsmtpctl quarantine release
-- virus_queue ID" and deletes the rest with "vsmtpctl quarantine remove".

return {
  postq = {
    rule "check email for virus" (function(ctx)
      local scan = ctx:clamd("clamav")
      if scan.virus then
        log("notice", "virus " .. scan.virus .. " in a message from " .. ctx.client_ip)
        return ctx:quarantine("virus_queue")
      end
      return scan.status
    end),
  },
}
