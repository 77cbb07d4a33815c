-- vsmtpctl rules test main.test.lua
--
-- These cases check the outcome; the changes to the message are checked by
-- tests/e2e/test_rules_examples.py, which reads the queued file.
local message = table.concat({
  "From: Alice <alice@legacy.example.com>",
  "To: Info <info@example.com>, noreply@example.com, sales@example.com",
  "X-Internal-Route: forged",
  "Subject: hello",
  "",
  "hello",
  "",
}, "\r\n")

return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "every edit at once: the message is queued",
    ip = "203.0.113.5", from = "alice@legacy.example.com",
    rcpt = { "info@example.com", "noreply@example.com", "sales@example.com" },
    message = message,
    expect = "queued", reply = "250 2.0.0 Ok: queued", stages = { preq = "next" },
  },
  {
    name = "mail for noreply alone is discarded, not archived",
    from = "alice@example.org", rcpt = "noreply@example.com",
    expect = "discarded", reply = "250 2.0.0 Ok: discarded",
  },
  {
    name = "mail for legal@ is also saved on disk",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "legal@example.com",
    expect = "queued",
  },
  {
    name = "the null sender is kept as it is",
    from = "", rcpt = "info@example.com",
    expect = "queued",
  },
  {
    name = "a message without To: is fine",
    from = "alice@example.org", rcpt = "info@example.com",
    message = "From: alice@example.org\r\nSubject: no to\r\n\r\nbody\r\n",
    expect = "queued",
  },
}
