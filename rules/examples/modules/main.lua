-- modules - split a policy into modules loaded with require().
--
-- require("lib.relay") loads lib/relay.lua from the rules folder (dots in
-- the name are folders) once, when the rules load, and returns what the
-- module returned; a second require of the same name gives the same value.
-- Modules are ordinary rules code: they may call rule(), ip_list() and the
-- like, and their list files are found relative to the rules folder too.
-- require() works only at the top level (not inside a rule), and only for
-- files under the rules folder: no Lua package path, no C modules.
--
-- lib/relay.lua holds the relay control (local domains, trusted networks)
-- as a list of rules; this file adds a rule of its own in front of it.

local relay = require("lib.relay")

-- The host name as domains are compared: lowercased.
local me = hostname()

-- The rcpt stage: our rule first, then the module's, in order.
local rcpt = {
  rule "no mail for the host name" (function(ctx)
    if ctx.rcpt.domain == me then
      return status.reject(codes.unknown_user)
    end
    return status.next()
  end),
}
for _, r in ipairs(relay.rules) do
  rcpt[#rcpt + 1] = r
end

return {
  rcpt = rcpt,
}
