-- vsmtpctl rules test main.test.lua
local many = {}
for i = 1, 21 do
  many[i] = "user" .. i .. "@example.net"
end

local attachment = "From: alice@example.org\r\nSubject: the report\r\n"
  .. "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
  .. "Content-Type: application/octet-stream\r\n"
  .. "Content-Disposition: attachment; filename=\"report.pdf.exe\"\r\n\r\nTVqQ\r\n--b--\r\n"

return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a login sending to 21 recipients is held, the client sees 250",
    ip = "203.0.113.5", auth = "alice@example.org", from = "alice@example.org",
    rcpt = many, expect = "held", hold_reason = "more than 20 recipients from one login",
    reply = "250 2.0.0 Ok: queued as",
  },
  {
    name = "twenty are fine",
    ip = "203.0.113.5", auth = "alice@example.org", from = "alice@example.org",
    rcpt = { table.unpack(many, 1, 20) }, expect = "queued",
  },
  {
    name = "an executable attachment is held",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "bob@example.com",
    message = attachment, expect = "held", hold_reason = "executable attachment",
  },
  {
    name = "held, then refused by a later rule: nothing is queued",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "bob@example.com",
    message = "Subject: no From\r\nContent-Disposition: attachment; filename=x.scr\r\n\r\nx\r\n",
    expect = "refused", reply = "550 5.6.0", stages = { preq = "reject" },
  },
  {
    name = "ordinary mail is queued",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "bob@example.com",
    message = "From: carol@example.net\r\nSubject: hello\r\n\r\nhi\r\n", expect = "queued",
  },
  {
    name = "no relay for strangers",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "eve@example.org",
    expect = "refused", reply = "554 5.7.1 Relay access denied",
  },
}
