-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "mail on the submission listener without TLS is refused",
    listener = "submission",
    ip = "198.51.100.20", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "refused", reply = "530 5.7.0 Must issue a STARTTLS command first",
    stages = { mail = "reject" },
  },
  {
    name = "even from a trusted network: TLS protects the password, not the relay",
    listener = "submission",
    ip = "192.0.2.7", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "refused", reply = "530 5.7.0",
  },
  {
    name = "after STARTTLS (and AUTH, which the listener requires) the mail is queued",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "198.51.100.20", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "port 25 is not concerned",
    listener = "smtp",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "alice@example.com",
    expect = "queued", stages = { mail = "next" },
  },
}
