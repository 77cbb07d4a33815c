-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "192.168.1.254 is force-accepted: the mail action is skipped",
    ip = "192.168.1.254", from = "alice@example.org", rcpt = "bob@example.net",
    expect = "queued", stages = { connect = "faccept" },
  },
  {
    name = "another client: connect says next, the mail action runs",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { connect = "next", mail = "next" },
  },
}
