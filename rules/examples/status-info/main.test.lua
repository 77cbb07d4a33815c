-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "every client is told to retry: a temporary refusal",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "deferred", reply = "451 failed to understand you request, please retry.",
    stages = { connect = "info" },
  },
  {
    name = "trusted networks too: the rule does not look at the client",
    ip = "192.0.2.7", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "deferred", reply = "451 ",
  },
}
