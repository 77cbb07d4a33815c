-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a listed address is denied before the greeting",
    ip = "198.51.100.66", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "refused", reply = "554 5.7.1 Client host [198.51.100.66] blocked",
    stages = { connect = "deny" },
  },
  {
    name = "so is any address of a listed network",
    ip = "203.0.113.200", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "refused", reply = "554 5.7.1 Client host [203.0.113.200] blocked",
  },
  {
    name = "and of a listed IPv6 network",
    ip = "2001:db8:bad::25", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "refused", stages = { connect = "deny" },
  },
  {
    name = "the other half of the /24 is not listed",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { connect = "next", mail = "next", rcpt = "next" },
  },
  {
    name = "a listed sender domain is refused at MAIL",
    ip = "203.0.113.5", from = "offers@spammer.example", rcpt = "bob@example.com",
    expect = "refused", reply = "550 5.7.1 Sender address rejected: domain blocked",
    stages = { mail = "reject" },
  },
  {
    name = "and its subdomains, through the .spammer.example line",
    ip = "203.0.113.5", from = "offers@mail.spammer.example", rcpt = "bob@example.com",
    expect = "refused", stages = { mail = "reject" },
  },
  {
    name = "phish.example has no dot line: its subdomains pass",
    ip = "203.0.113.5", from = "x@www.phish.example", rcpt = "bob@example.com",
    expect = "queued",
  },
  {
    name = "bounces are not refused",
    ip = "203.0.113.5", from = "", rcpt = "bob@example.com",
    expect = "queued",
  },
  {
    name = "a former user is unknown",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "john.smith@example.com",
    expect = "refused", reply = "550 5.1.1 Recipient address rejected: user unknown",
    stages = { rcpt = "reject" },
  },
  {
    name = "every address of a given-up domain, in any case",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "anyone@OLD-example.com",
    expect = "refused", reply = "550 5.1.1",
  },
  {
    name = "the other recipients of the message go on",
    ip = "203.0.113.5", from = "alice@example.org",
    rcpt = { "jane.roe@example.com", "bob@example.com" },
    expect = "queued",
  },
}
