-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "next then an action: the connect stage ends as usual",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { connect = "next" },
  },
}
