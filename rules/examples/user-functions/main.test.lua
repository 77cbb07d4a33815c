-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "john is removed, the others are kept, faccept queues the message",
    ip = "203.0.113.5", from = "alice@example.org",
    rcpt = { "john.doe@example.com", "jane.doe@example.com" },
    expect = "queued", reply = "250 2.0.0 Ok: queued",
    stages = { preq = "faccept" },
  },
  {
    name = "mail for john alone is discarded: no recipient is left",
    from = "alice@example.org", rcpt = "john.doe@example.com",
    expect = "discarded", reply = "250 2.0.0 Ok: discarded",
  },
  {
    name = "the domain of the address is compared in any case",
    from = "alice@example.org", rcpt = "john.doe@EXAMPLE.com",
    expect = "discarded",
  },
}
