-- vsmtpctl rules test main.test.lua
--
-- vsmtpctl reads the [dkim:forwarder] key of its configuration (-c), as
-- the daemon does; the DNS answers come from dns.zone, so the cases run
-- offline. tests/e2e/test_rules_examples.py checks the seal the daemon
-- makes with python3-dkim's ARC verifier.
return {
  rules = "main.lua",
  dns_zone = "dns.zone",
  config = { hostname = "mx.example.com", local_domains = "example.com lists.example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "mail to the list: checked and sealed",
    ip = "198.51.100.7", from = "alice@sender.example", rcpt = "members@lists.example.com",
    message = "From: Alice <alice@sender.example>\r\nTo: members@lists.example.com\r\n"
              .. "Subject: hi\r\n\r\nhi\r\n",
    expect = "queued", stages = { preq = "next" },
    results = { spf = "pass", dkim = "none", dmarc = "pass" },
  },
  {
    name = "forged: still sealed, with what was found",
    ip = "203.0.113.5", from = "alice@sender.example", rcpt = "members@lists.example.com",
    message = "From: Alice <alice@sender.example>\r\nTo: members@lists.example.com\r\n"
              .. "Subject: hi\r\n\r\nhi\r\n",
    expect = "queued", results = { spf = "fail", dmarc = "fail" },
  },
  {
    name = "mail for the host itself is not sealed",
    ip = "198.51.100.7", from = "alice@sender.example", rcpt = "bob@example.com",
    expect = "queued", stages = { preq = "next" },
  },
}
