-- vsmtpctl rules test main.test.lua
--
-- expect is what the client sees: a flagged message is queued (250), then
-- the postq rule, which the delivery worker runs, quarantines it; stages
-- says so. The authenticate rules run for a client that logs in
-- (auth = "user@realm").
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a client that does not log in meets no rule: the message is queued",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { connect = "next", preq = "next" },
  },
  {
    name = "a flagged message is queued, then quarantined by the postq rules",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "X-Virus-Infected: yes\r\n\r\nbody\r\n",
    expect = "queued",
    stages = { postq = "quarantine" },
  },
  {
    name = "a client that logs in: the authenticate stage runs and lets the 235 go",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "203.0.113.5", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { authenticate = "next" },
  },
}
