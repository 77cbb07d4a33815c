-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "every stage logs and goes on: the message is queued",
    ip = "203.0.113.5", helo = "client.example", from = "alice@example.org",
    rcpt = { "bob@example.com", "carol@example.net" },
    message = "From: alice@example.org\r\nSubject: hello\r\n\r\nhi\r\n",
    expect = "queued", reply = "250 2.0.0",
    stages = { connect = "next", helo = "next", mail = "next", rcpt = "next", preq = "next" },
  },
  {
    name = "a client that logged in: on_auth logs the user and lets the 235 go",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "203.0.113.5", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "queued",
    stages = { authenticate = "next", mail = "next" },
  },
  {
    name = "the null sender of a bounce is logged too",
    ip = "203.0.113.5", from = "", rcpt = "postmaster@example.com",
    expect = "queued",
    stages = { mail = "next" },
  },
  {
    name = "a message without a subject",
    from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\n\r\nno subject\r\n",
    expect = "queued", stages = { preq = "next" },
  },
}
