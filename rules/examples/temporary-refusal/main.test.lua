-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a HELO with the IP address in it is deferred",
    ip = "203.0.113.5", helo = "203-0-113-5.dsl.isp.example",
    from = "alice@example.org", rcpt = "bob@example.com",
    expect = "deferred", reply = "451 4.7.1 Greylisted, please try again later",
    stages = { rcpt = "info" },
  },
  {
    name = "so is a pool name",
    ip = "203.0.113.5", helo = "pool-17.cable.isp.example",
    from = "alice@example.org", rcpt = "bob@example.com",
    expect = "deferred", reply = "451 4.7.1",
  },
  {
    name = "and an address literal",
    ip = "203.0.113.5", helo = "[203.0.113.5]",
    from = "alice@example.org", rcpt = "bob@example.com",
    expect = "deferred", reply = "451 4.7.1",
  },
  {
    name = "a proper server name goes through",
    ip = "203.0.113.5", helo = "mail.example.org",
    from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { rcpt = "next" },
  },
  {
    name = "a word that only contains 'pool' is not a pool",
    ip = "203.0.113.5", helo = "liverpool.example.org",
    from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued",
  },
  {
    name = "a name without any of the markers goes through",
    ip = "203.0.113.5", helo = "client.example",
    from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued",
  },
  {
    name = "trusted networks are never deferred",
    ip = "192.0.2.7", helo = "192-0-2-7.dsl.isp.example",
    from = "alice@example.com", rcpt = "bob@example.com",
    expect = "queued", stages = { rcpt = "accept" },
  },
}
