-- vsmtpctl rules test main.test.lua
--
-- What these cases show is today's behaviour: the postq rule does not run,
-- so even a flagged message is queued. They will change with the delivery
-- process.
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "no online stage has a rule: the message is queued",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { connect = "next", preq = "next" },
  },
  {
    name = "postq does not run yet: a flagged message is queued, not quarantined",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "X-Virus-Infected: yes\r\n\r\nbody\r\n",
    expect = "queued",
  },
}
