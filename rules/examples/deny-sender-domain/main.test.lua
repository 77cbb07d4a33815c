-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a blocked domain is refused at MAIL",
    ip = "203.0.113.5", from = "offers@spammer.example", rcpt = "bob@example.com",
    expect = "refused",
    reply = "550 5.7.1 Sender address rejected: spammer.example is not welcome here",
    stages = { mail = "reject" },
  },
  {
    name = "so is a subdomain, whatever its case",
    ip = "203.0.113.5", from = "offers@News.Spammer.Example", rcpt = "bob@example.com",
    expect = "refused", reply = "550 5.7.1 Sender address rejected: news.spammer.example",
  },
  {
    name = "a domain that only ends with the same letters is not blocked",
    ip = "203.0.113.5", from = "alice@notspammer.example", rcpt = "bob@example.com",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "bounces (the null sender) are never refused",
    ip = "203.0.113.5", from = "", rcpt = "bob@example.com",
    expect = "queued",
  },
  {
    name = "other senders go on",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued",
  },
}
