-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "the known client is accepted",
    ip = "192.168.1.254", from = "alice@example.org", rcpt = "bob@example.net",
    expect = "queued", stages = { connect = "accept" },
  },
  {
    name = "any other client is denied by the trailing rule",
    ip = "192.168.1.253", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "refused", reply = "554 5.7.1 Rejected by local policy",
    stages = { connect = "deny" },
  },
  {
    name = "trusted networks make no difference here: only the rules decide",
    ip = "192.0.2.7", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "refused", reply = "554 5.7.1",
  },
  {
    name = "IPv6 loopback is not the known client either",
    ip = "::1", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "refused",
  },
}
