-- vsmtpctl rules test main.test.lua
--
-- Mail from outside is not shown to the milter. The signing itself, with
-- a real OpenDKIM, is checked by tests/e2e/test_milter.py.
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "an outside client's message is queued, not signed",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { preq = "next" },
  },
}
