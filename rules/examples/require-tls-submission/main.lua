-- require-tls-submission - no mail on the submission listener without TLS.
--
-- Users' mail programs send on port 587; their passwords and mail must not
-- cross the network in clear text. This refuses MAIL FROM on the
-- submission listener until the session is encrypted (STARTTLS done:
-- ctx.is_secured), with 530 5.7.0 Must issue a STARTTLS command first
-- (codes.tls_required), the reply mail programs understand. Port 25 (the
-- "smtp" listener) is not concerned: other servers may still send in clear.
--
-- A listener of kind submission does this already: its tls level defaults
-- to encrypt, and vsmtpd itself answers MAIL (and AUTH) before STARTTLS
-- with that same 530, before any rule runs. The rule is still worth
-- having:
--   * for a listener that serves users but whose security level is only
--     "may": a kind = smtp listener on port 587 (or another port) named
--     "submission", or a submission listener set to tls = may;
--   * as defence in depth: if someone edits vsmtpd.conf and lowers the
--     level, the rules still hold the line.
-- It matches the listener by its name and by its kind, so a submission
-- listener named otherwise ("msa") is covered too.
--
-- In vsmtpd.conf:
--   [listener:submission]
--   address = 0.0.0.0:587
--   kind = submission
--   # tls = encrypt and auth = required are the defaults of this kind
--
-- A submissions listener (port 465) is encrypted from the first byte:
-- ctx.is_secured is true from the connect stage on, and this never refuses
-- there.

return {
  mail = {
    rule "tls on submission" (function(ctx)
      local submission = ctx.listener == "submission" or ctx.listener_kind == "submission"
      if submission and not ctx.is_secured then
        return status.reject(codes.tls_required)
      end
      return status.next()
    end),
  },
}
