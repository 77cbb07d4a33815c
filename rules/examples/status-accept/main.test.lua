-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "connect accepts, mail resumes with next, the message is queued",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", reply = "250 2.0.0 Ok: queued",
    stages = { connect = "accept", mail = "next" },
  },
  {
    name = "the greeting is the normal one: accept without a code keeps it",
    ip = "198.51.100.20", from = "alice@example.org", rcpt = "bob@example.net",
    expect = "queued", stages = { connect = "accept" },
  },
}
