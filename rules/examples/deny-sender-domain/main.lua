-- deny-sender-domain - refuse mail from some sender domains.
--
-- MAIL FROM:<anyone@spammer.example> is answered 550 5.7.1, and so is any
-- subdomain of it (news.spammer.example). The rule uses status.reject: the
-- client is told no for that message and may start another transaction
-- (a legitimate message from another sender on the same connection). With
-- status.deny the connection would be closed too.
--
-- The null sender (MAIL FROM:<>, used by bounces) has no domain and is
-- never refused here: refusing bounces breaks mail for everyone.
--
-- For a long list, keep the domains in a file: see the blocklists example
-- (domain_list).

local blocked = { "spammer.example", "phish.example" }

-- blocked_domain - the blocked domain d is or is under, or nil.
local function blocked_domain(d)
  for _, b in ipairs(blocked) do
    if d == b or d:sub(-(#b + 1)) == "." .. b then
      return b
    end
  end
  return nil
end

return {
  mail = {
    rule "blocked sender domains" (function(ctx)
      local from = ctx.mail_from
      if not from.is_null and blocked_domain(from.domain) then
        return status.reject(code(550, "5.7.1",
          "Sender address rejected: " .. from.domain .. " is not welcome here"))
      end
      return status.next()
    end),
  },
}
