-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "the trusted source skips every later rule",
    ip = "192.168.1.10", from = "alice@example.org", rcpt = "bob@example.net",
    expect = "queued", reply = "250 2.0.0",
    stages = { connect = "faccept" },
  },
  {
    name = "any other client meets the mail rule",
    ip = "192.168.1.11", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "refused", reply = "550 5.7.1 Only our relay sends mail here",
    stages = { connect = "next", mail = "reject" },
  },
}
