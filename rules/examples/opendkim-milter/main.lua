-- opendkim-milter - sign outgoing mail with OpenDKIM running as a milter.
--
-- OpenDKIM listens on loopback, in signing mode (/etc/opendkim.conf):
--   Mode         s
--   Domain       example.com
--   Selector     mail
--   KeyFile      /etc/dkimkeys/mail.private   (made by opendkim-genkey)
--   Socket       inet:8891@127.0.0.1
-- and vsmtpd.conf declares it as a service:
--   [service:opendkim]
--   kind = milter
--   address = 127.0.0.1:8891
--   timeout = 10s
--   on_failure = accept
--
-- Mail from the trusted networks and from authenticated clients goes
-- through OpenDKIM at preq, which inserts its DKIM-Signature field on top
-- of the message; the folding OpenDKIM chose is kept, so the signature
-- verifies even with simple header canonicalization. Mail from outside is
-- not shown to it. With on_failure = accept an OpenDKIM that is down or
-- slow lets the mail through unsigned (the log says why) instead of
-- refusing it; leave on_failure out (tempfail) to have clients retry
-- until it is back.

return {
  preq = {
    rule "dkim signing milter" (function(ctx)
      if not (ctx.is_authenticated or config.trusted_networks:contains(ctx.client_ip)) then
        return status.next()
      end
      local r = ctx:milter("opendkim")
      if r.failed then
        log("warning", "message not signed: " .. r.error)
      end
      return r.status
    end),
  },
}
