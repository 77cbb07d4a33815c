-- arc-forwarder - a host that forwards mail on (a mailing list, an alias
-- to another provider) and seals it with ARC (RFC 8617), so that the
-- next receiver can trust the authentication results this host saw even
-- though forwarding broke SPF, and perhaps DKIM:
--
--   [dkim:forwarder]
--   domain = lists.example.com
--   selector = arc2025
--   key = /etc/vsmtpd/dkim/arc2025.lists.example.com.pem   (RSA, 2048 bits or more)
--
-- Mail to lists.example.com is checked (SPF, DKIM, DMARC, the ARC chain
-- it came with), the results recorded in Authentication-Results, then
-- sealed with them as the ARC-Authentication-Results. A chain that
-- arrived broken is sealed with cv=fail, as the RFC has it: the next
-- receiver sees it. The seal is the last edit of the message.

local function forwarded(ctx)
  for _, rcpt in ipairs(ctx.rcpt_list) do
    if rcpt.domain == "lists.example.com" then
      return true
    end
  end
  return false
end

return {
  preq = {
    rule "check and seal" (function(ctx)
      if not forwarded(ctx) then
        return status.next()
      end
      ctx:spf()
      ctx:dkim()
      ctx:dmarc()
      local chain = ctx:arc()
      local results = ctx:add_authentication_results()
      local ok, err = pcall(ctx.arc_seal, ctx, "forwarder")
      if not ok then
        -- the key cannot sign now: try later rather than forward unsealed
        return status.reject(code(451, "4.7.0", "cannot seal now"))
      end
      log("info", "sealed (chain " .. chain.result .. "): " .. results)
      return status.next()
    end),
  },
}
