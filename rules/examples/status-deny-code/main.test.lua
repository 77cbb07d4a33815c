-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "satan.org gets the custom reply",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "lucifer@satan.org",
    expect = "refused", reply = "550 satan.org is not welcome here.",
    stages = { rcpt = "deny" },
  },
  {
    name = "other recipients are not concerned",
    from = "alice@example.org", rcpt = { "bob@example.com", "carol@example.net" },
    expect = "queued",
  },
}
