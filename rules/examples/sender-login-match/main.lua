-- sender-login-match - a user who logged in sends only as themselves.
--
-- Once a client authenticated (SMTP AUTH, on a submission listener or any
-- other where auth is offered), its MAIL FROM must be an address the user
-- owns: the login itself (ctx.auth.authid, e.g. alice@example.com), or one
-- of the addresses senders.lua lists for that user (aliases, role
-- addresses, "@domain" for a whole domain). Any other sender is refused at
-- MAIL with
--   553 5.7.1 Sender address rejected: not owned by user alice@example.com
-- (status.reject: the session goes on, and the mail program may try again
-- with the right address). A stolen password then cannot be used to send
-- as someone else, and users cannot forge each other's addresses.
--
--   * Clients that did not log in are not concerned: mail from other
--     servers on port 25 goes through untouched. On a submission or
--     submissions listener they never reach this rule: auth = required
--     (the default of those kinds) already answers their MAIL with
--     530 5.7.0 Authentication required.
--   * The null sender (MAIL FROM:<>) is let through: it belongs to no one,
--     and mail programs send delivery and read reports with it.
--   * Addresses compare as address objects do: the domain in any case, the
--     local part as written. List another spelling of a local part in
--     senders.lua if a user needs it.
--
-- senders.lua is a module, not a list file: a list file holds entries, not
-- a user and their addresses. It is read when the rules load, and each
-- user's addresses become an address_list, so a bad address is caught then
-- and each check is one hash lookup.
--
-- In vsmtpd.conf, the listener users send on:
--   [listener:submission]
--   address = 0.0.0.0:587
--   kind = submission

local senders = require("senders")

-- login_key - a login as the table below is keyed: the domain lowercased,
-- as address objects have it. A login that is no address is kept as is.
local function login_key(authid)
  local ok, a = pcall(address, authid)
  if ok and not a.is_null then
    return a.local_part .. "@" .. a.domain
  end
  return authid
end

-- owned: login -> address_list of the other addresses it may send from.
local owned = {}
for user, addresses in pairs(senders) do
  local ok, list = pcall(address_list, addresses)
  if not ok then
    error("senders.lua: user " .. user .. ": " .. tostring(list))
  end
  owned[login_key(user)] = list
end

-- owns - whether the user logged in as authid may send from address from.
local function owns(authid, from)
  local ok, login = pcall(address, authid)
  if ok and from == login then
    return true
  end
  local list = owned[login_key(authid)]
  return list ~= nil and list:contains(from)
end

return {
  mail = {
    rule "sender owned by the login" (function(ctx)
      if not ctx.is_authenticated or ctx.mail_from.is_null then
        return status.next()
      end
      local authid = ctx.auth.authid
      if owns(authid, ctx.mail_from) then
        return status.next()
      end
      -- A reply is printable ASCII: a login with other bytes is shown with "?".
      return status.reject(code(553, "5.7.1",
        "Sender address rejected: not owned by user " .. (authid:gsub("[^!-~]", "?"))))
    end),
  },
}
