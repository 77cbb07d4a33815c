-- vsmtpctl rules test main.test.lua
--
-- Offline, the postq run stops at the delegate rule: the message would go
-- to clamsmtpd and stay queued until it comes back. With returned = true
-- the case's message is what clamsmtpd sends back, and postq goes on with
-- the rule's function. tests/e2e/test_delegate.py runs this file with a
-- real filter.
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
  {
    name = "back from clamsmtpd with a virus: quarantined",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    returned = true,
    message = "From: alice@example.org\r\nSubject: invoice\r\n"
      .. "X-Virus-Infected: Eicar-Test-Signature\r\n\r\nX5O!P%@AP\r\n",
    expect = "queued", stages = { postq = "quarantine" },
  },
  {
    name = "back from clamsmtpd clean: delivered",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    returned = true,
    message = "From: alice@example.org\r\nSubject: invoice\r\n\r\nhello\r\n",
    expect = "queued", stages = { postq = "next", delivery = "next" },
  },
}
