-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "an infected message is quarantined; the client sees 250",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\nSubject: invoice\r\n"
      .. "X-Virus-Status: Infected (Eicar-Signature)\r\n\r\nbody\r\n",
    expect = "quarantined", reply = "250 2.0.0 Ok: queued as", stages = { preq = "quarantine" },
  },
  {
    name = "a clean verdict is delivered",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\nSubject: invoice\r\nX-Virus-Status: Clean\r\n\r\nbody\r\n",
    expect = "queued", stages = { preq = "next" },
  },
  {
    name = "spam is tagged, not refused",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\nSubject: You have WON the lottery\r\n\r\nbody\r\n",
    expect = "queued",
  },
  {
    name = "so is mail the spam scanner flagged",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\nX-Spam-Flag: YES\r\nSubject: hi\r\n\r\nbody\r\n",
    expect = "queued",
  },
  {
    name = "a message without any of these headers",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "\r\nbody without header\r\n",
    expect = "queued",
  },
}
