-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a recipient at satan.org is denied with the default code",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "lucifer@satan.org",
    expect = "refused", reply = "554 5.7.1 Rejected by local policy",
    stages = { rcpt = "deny" },
  },
  {
    name = "the domain is compared in lower case",
    from = "alice@example.org", rcpt = "lucifer@Satan.ORG",
    expect = "refused", reply = "554 5.7.1", stages = { rcpt = "deny" },
  },
  {
    name = "deny ends the connection: the recipients after it are never tried",
    from = "alice@example.org", rcpt = { "bob@example.com", "x@satan.org", "carol@example.com" },
    expect = "refused", reply = "554 5.7.1",
  },
  {
    name = "any other recipient goes on",
    from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { rcpt = "next" },
  },
  {
    name = "a subdomain of satan.org is not satan.org",
    from = "alice@example.org", rcpt = "imp@hell.satan.org",
    expect = "queued",
  },
}
