-- require-tls-submission - no mail on the submission listener without TLS.
--
-- Users' mail programs send on port 587 (a listener named "submission" in
-- vsmtpd.conf); their passwords and mail must not cross the network in
-- clear text. This refuses MAIL FROM on that listener until the session is
-- encrypted, with 530 5.7.0 Must issue a STARTTLS command first
-- (codes.tls_required), the reply mail programs understand. Port 25 (the
-- "smtp" listener) is not concerned: other servers may still send in clear.
--
-- vsmtpd has no STARTTLS yet, so ctx.is_secured is always false today and
-- this refuses all mail on the submission listener. That is the point:
-- once TLS arrives, the same rule lets encrypted sessions through.
--
-- In vsmtpd.conf (kind = smtp until vsmtpd has a submission kind):
--   [listener:submission]
--   address = 0.0.0.0:587

return {
  mail = {
    rule "tls on submission" (function(ctx)
      if ctx.listener == "submission" and not ctx.is_secured then
        return status.reject(codes.tls_required)
      end
      return status.next()
    end),
  },
}
