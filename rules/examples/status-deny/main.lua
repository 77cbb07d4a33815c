-- status-deny - status.deny() refuses and ends the connection.
--
-- A recipient in the domain satan.org is refused with the default code,
-- 554 5.7.1 Rejected by local policy, and the connection is closed: deny is
-- for clients you do not want to talk to any more. (To refuse one recipient
-- and let the client go on with the others, return status.reject().)
-- A block list, sort of.
--
-- Compared with the vSL original: its rcpt() is ctx.rcpt, an address
-- object whose .domain is lowercased, so "Satan.ORG" is caught too.

return {
  rcpt = {
    rule "check for satan" (function(ctx)
      -- The client is denied if a recipient's domain matches satan.org.
      if ctx.rcpt.domain == "satan.org" then
        return status.deny()
      end
      return status.next()
    end),
  },
}
