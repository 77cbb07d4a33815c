-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a flagged message is quarantined, the client sees 250",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\nX-Virus-Infected: Eicar-Test-Signature\r\n"
      .. "Subject: invoice\r\n\r\nX5O!P%@AP\r\n",
    expect = "quarantined", reply = "250 2.0.0 Ok: queued as",
    stages = { preq = "quarantine" },
  },
  {
    name = "the header name is matched in any case",
    from = "alice@example.org", rcpt = "bob@example.com",
    message = "x-virus-infected: yes\r\n\r\nbody\r\n",
    expect = "quarantined",
  },
  {
    name = "a clean message is queued",
    from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\nSubject: invoice\r\n\r\nhello\r\n",
    expect = "queued", stages = { preq = "next" },
  },
}
