-- vsmtpctl rules test main.test.lua
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "127.0.0.0/8 ::1 192.0.2.0/24" },
  {
    name = "anyone may send to a local domain",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    expect = "queued", stages = { connect = "next", rcpt = "accept" },
  },
  {
    name = "the domain is compared in any case",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@EXAMPLE.COM",
    expect = "queued",
  },
  {
    name = "the host name itself is local",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "root@mx.example.com",
    expect = "queued",
  },
  {
    name = "bare postmaster is always accepted",
    ip = "203.0.113.5", from = "", rcpt = "postmaster",
    expect = "queued", stages = { rcpt = "accept" },
  },
  {
    name = "an authenticated user may relay from anywhere",
    ip = "203.0.113.5", tls = true, auth = "alice@example.com",
    from = "alice@example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { authenticate = "next", rcpt = "accept" },
  },
  {
    name = "an outsider may not relay",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "carol@example.net",
    expect = "refused", reply = "554 5.7.1 Relay access denied",
    stages = { rcpt = "reject" },
  },
  {
    name = "no routing by the local part of a local address",
    ip = "203.0.113.5", from = "alice@example.org",
    rcpt = { "relaytest%remote.test@example.com", "remote.test!relaytest@example.com",
             "\"relaytest@remote.test\"@example.com" },
    expect = "refused",
    reply = "550 5.7.1 Recipient address rejected: no routing by the local part",
    stages = { rcpt = "reject" },
  },
  {
    name = "a subdomain of a local domain is not local",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@sub.example.com",
    expect = "refused", reply = "554 5.7.1 Relay access denied",
  },
  {
    name = "the relayed recipient is dropped, the local one is kept",
    ip = "203.0.113.5", from = "alice@example.org",
    rcpt = { "carol@example.net", "bob@example.com" },
    expect = "queued",
  },
  {
    name = "a trusted network relays anywhere",
    ip = "192.0.2.25", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { connect = "faccept" },
  },
  {
    name = "IPv6 loopback is trusted",
    ip = "::1", from = "root@mx.example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { connect = "faccept" },
  },
  {
    name = "the network next door is not",
    ip = "192.0.3.1", from = "alice@example.org", rcpt = "carol@example.net",
    expect = "refused",
  },
}
