-- vsmtpctl rules test main.test.lua
--
-- The DNS answers come from dns.zone, so the cases run offline:
--   reject.example      SPF for 198.51.100.0/24, DMARC p=reject
--   quarantine.example  SPF for 198.51.100.0/24, DMARC p=quarantine
--   nodmarc.example     SPF for 198.51.100.0/24, no DMARC record
return {
  rules = "main.lua",
  dns_zone = "dns.zone",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a p=reject failure is refused",
    ip = "203.0.113.5", from = "alice@reject.example", rcpt = "bob@example.com",
    message = "From: <alice@reject.example>\r\nSubject: hi\r\n\r\nbody\r\n",
    expect = "refused", reply = "550 5.7.1 Rejected by the DMARC policy of reject.example",
  },
  {
    name = "the same from an address SPF allows passes",
    ip = "198.51.100.7", from = "alice@reject.example", rcpt = "bob@example.com",
    message = "From: <alice@reject.example>\r\nSubject: hi\r\n\r\nbody\r\n",
    expect = "queued", stages = { preq = "next" },
  },
  {
    name = "a p=quarantine failure is quarantined",
    ip = "203.0.113.5", from = "alice@quarantine.example", rcpt = "bob@example.com",
    message = "From: <alice@quarantine.example>\r\nSubject: hi\r\n\r\nbody\r\n",
    expect = "quarantined",
  },
  {
    name = "no DMARC record: nothing to do",
    ip = "203.0.113.5", from = "alice@nodmarc.example", rcpt = "bob@example.com",
    message = "From: <alice@nodmarc.example>\r\nSubject: hi\r\n\r\nbody\r\n",
    expect = "queued",
  },
  {
    name = "a trusted client is not checked",
    ip = "192.0.2.10", from = "alice@reject.example", rcpt = "bob@example.com",
    message = "From: <alice@reject.example>\r\nSubject: hi\r\n\r\nbody\r\n",
    expect = "queued",
  },
}
