-- vsmtpctl rules test main.test.lua
--
-- Offline, the postq run stops at the delegate rule: the message would go
-- to clamsmtpd and stay queued until it comes back. What the function does
-- with the returned copy is tested with a real filter in
-- tests/e2e/test_delegate.py.
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "every message goes to the filter after it is queued",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\nSubject: invoice\r\n\r\nhello\r\n",
    expect = "queued", reply = "250 2.0.0 Ok: queued as",
    stages = { preq = "next", postq = "delegate" },
  },
}
