-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "the module accepts a local domain",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "bob@example.com",
    expect = "queued", stages = { rcpt = "accept" },
  },
  {
    name = "the module refuses relaying",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "eve@example.org",
    expect = "refused", reply = "554 5.7.1 Relay access denied", stages = { rcpt = "reject" },
  },
  {
    name = "the module relays for a trusted client",
    ip = "192.0.2.7", from = "alice@example.com", rcpt = "eve@example.org",
    expect = "queued",
  },
  {
    name = "the main file's own rule comes first",
    ip = "192.0.2.7", from = "alice@example.com", rcpt = "root@mx.example.com",
    expect = "refused", reply = "550 5.1.1", stages = { rcpt = "reject" },
  },
}
