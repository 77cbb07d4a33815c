-- temporary-refusal - greylisting-like: ask suspicious clients to come back.
--
-- A real mail server that gets a 4xx reply keeps the message and tries
-- again later; much spamware never does. Greylisting builds on that: the
-- first attempt from an unknown (client, sender, recipient) is refused
-- with 451 and a retry some minutes later is let through. That needs a
-- memory of past attempts shared by all sessions, which vsmtpd's rules do
-- not have: each session starts from the state the rules loaded with.
--
-- This policy does the stateless part: a client whose HELO name looks like
-- a home connection (an IP address written out, "dsl", "dynamic", "pool",
-- ...) or is an address literal ([203.0.113.5]) gets
--   451 4.7.1 Greylisted, please try again later   (codes.greylisted)
-- for each recipient, unless it is in [rules] trusted_networks. Nothing is
-- lost: a real server retries, and mail from it waits in its queue until
-- its administrator fixes the HELO name.
--
-- status.info(code) sends the code and leaves the session as it was; at
-- RCPT that refuses the recipient, as status.reject(code) would, and the
-- client may go on with the transaction. The code must be 4xx for a
-- temporary refusal: with a 5xx the sender gives up at once.

local dynamic_helo = regex("([0-9]{1,3}[-.]){3}[0-9]{1,3}|(^|[-.])(dsl|adsl|dyn|dynamic|dhcp|pool|cable|ppp)[-.0-9]", "i")

-- suspicious - why the HELO name looks like a home connection, or nil.
local function suspicious(helo)
  if helo:sub(1, 1) == "[" then
    return "address literal"
  end
  if dynamic_helo:match(helo) then
    return "dynamic name"
  end
  return nil
end

return {
  rcpt = {
    rule "trusted networks" (function(ctx)
      if config.trusted_networks:contains(ctx.client_ip) then
        return status.accept()
      end
      return status.next()
    end),

    rule "greylist-like" (function(ctx)
      local why = suspicious(ctx.helo)
      if why ~= nil then
        log("info", string.format("deferring %s[%s]: HELO %s", ctx.helo, ctx.client_ip, why))
        return status.info(codes.greylisted)
      end
      return status.next()
    end),
  },
}
