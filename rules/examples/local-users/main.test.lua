-- vsmtpctl rules test main.test.lua
--
-- "root" exists on every Linux host; "no-such-user-4711" on none.
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "an existing account is accepted",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "root@example.com",
    expect = "queued", stages = { rcpt = "accept" },
  },
  {
    name = "a role address maps to an account",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "Abuse@example.com",
    expect = "queued",
  },
  {
    name = "bare postmaster always works",
    ip = "203.0.113.5", from = "", rcpt = "postmaster",
    expect = "queued",
  },
  {
    name = "an unknown user is refused at RCPT",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "no-such-user-4711@example.com",
    expect = "refused", reply = "550 5.1.1 Recipient address rejected: user unknown",
    stages = { rcpt = "reject" },
  },
  {
    name = "even from a trusted network",
    ip = "192.0.2.7", from = "alice@example.com", rcpt = "no-such-user-4711@example.com",
    expect = "refused", reply = "550 5.1.1",
  },
  {
    name = "a trusted network relays elsewhere",
    ip = "192.0.2.7", from = "root@example.com", rcpt = "carol@example.net",
    expect = "queued",
  },
  {
    name = "an outsider does not",
    ip = "203.0.113.5", from = "carol@example.net", rcpt = "dave@example.org",
    expect = "refused", reply = "554 5.7.1 Relay access denied",
  },
}
