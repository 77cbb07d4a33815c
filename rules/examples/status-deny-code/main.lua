-- status-deny-code - status.deny(code): refuse with a reply of your own.
--
-- As status-deny, but the client reads "550 satan.org is not welcome here."
-- A code is either code(550, "5.7.1", "text") or a table with the fields
-- code, enhanced and text, as here; enhanced may be "" for none. The code
-- is checked when it is built: a deny code must be 4xx or 5xx, and an
-- enhanced code must have the class of the code (5.x.x with 5xx).

-- Built once, when the rules load, and shared by every connection.
local error_code = { code = 550, enhanced = "", text = "satan.org is not welcome here." }

return {
  rcpt = {
    rule "check for satan" (function(ctx)
      -- The client is denied if a recipient's domain matches satan.org.
      if ctx.rcpt.domain == "satan.org" then
        return status.deny(error_code)
      end
      return status.next()
    end),
  },
}
