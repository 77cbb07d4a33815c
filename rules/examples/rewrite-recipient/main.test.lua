-- vsmtpctl rules test main.test.lua
--
-- The rewritten envelope is checked by tests/e2e/test_rules_examples.py on
-- a queued message.
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "an alias is accepted (and rewritten)",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "info@example.com",
    expect = "queued", stages = { rcpt = "accept" },
  },
  {
    name = "the alias lookup ignores case",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "Abuse@Example.COM",
    expect = "queued",
  },
  {
    name = "a list alias and a plain local recipient",
    ip = "203.0.113.5", from = "carol@example.net",
    rcpt = { "team@example.com", "dave@example.com" },
    expect = "queued",
  },
  {
    name = "no relaying for outsiders",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "eve@example.org",
    expect = "refused", reply = "554 5.7.1 Relay access denied", stages = { rcpt = "reject" },
  },
  {
    name = "relaying for the trusted networks",
    ip = "192.0.2.7", from = "alice@example.com", rcpt = "eve@example.org",
    expect = "queued",
  },
}
