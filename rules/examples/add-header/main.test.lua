-- vsmtpctl rules test main.test.lua
--
-- The header itself is checked by tests/e2e/test_rules_examples.py on a
-- queued message.
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "an outside client's message is queued with the header",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { connect = "next", preq = "next" },
  },
  {
    name = "a trusted client's too",
    ip = "192.0.2.7", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "queued",
  },
  {
    name = "a forged copy does not get in the way",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "X-Relay-Client: forged\r\nX-Relay-Client: forged again\r\n\r\nbody\r\n",
    expect = "queued",
  },
}
