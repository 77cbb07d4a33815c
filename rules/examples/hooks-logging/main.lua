-- hooks-logging - log every step of the SMTP transaction.
--
-- The hook form of a rules file: one global function per stage, named
-- on_<stage>, each returning a status. Nothing is refused; the log shows,
-- for each connection, who connected, the HELO name, the user who logged
-- in (if any), the sender, the recipients as they come and the message
-- once it is complete:
--
--   vsmtpd smtp[9120]: info: rules: /etc/vsmtpd/rules/main.lua:32: A client just connected
--
-- Compared with the vSL original:
--   * its ctx.sender is ctx.mail_from here, ctx.recipients is
--     ctx.rcpt_list and ctx.mail is the message itself (ctx.raw, ctx.size,
--     ctx:get_header()). A Lua list has no readable text of its own
--     (tostring gives "table: 0x..."), so the recipients are joined first.
--   * it logs the whole mail; a log line per message body would flood
--     the log, so on_pre_queue logs its size and subject instead.
--   * on_auth runs after a successful SMTP AUTH (Cyrus SASL has checked
--     the password), before the 235 reply; a client that never
--     authenticates never calls it. It logs the user, as user@realm.

-- addresses - the text of a list of address objects: "a@b, c@d".
local function addresses(list)
  local out = {}
  for _, a in ipairs(list) do
    out[#out + 1] = tostring(a)
  end
  return table.concat(out, ", ")
end

function on_connect(ctx)
  log("info", "A client just connected")
  return status.next()
end

function on_auth(ctx)
  log("info", "Authentication id: " .. ctx.auth.authid)
  return status.next()
end

function on_helo(ctx)
  log("info", "server identifier: " .. ctx.helo)
  return status.next()
end

function on_mail_from(ctx)
  -- The null sender (MAIL FROM:<>) of bounces is an address whose text is "".
  log("info", "Sender address received: <" .. tostring(ctx.mail_from) .. ">")
  return status.next()
end

function on_rcpt_to(ctx)
  log("info", "Updated recipient list: " .. addresses(ctx.rcpt_list))
  return status.next()
end

function on_pre_queue(ctx)
  log("info", string.format("Email received: %d bytes, subject %q",
    ctx.size, ctx:get_header("Subject") or ""))
  return status.next()
end
