-- vsmtpctl rules test main.test.lua
--
-- The cases need DNS answers: dns.zone holds them, so that the cases run
-- offline, whatever the configuration's dns_servers:
--   spf-fail.example   TXT "v=spf1 ip4:198.51.100.0/24 -all"
--   spf-soft.example   TXT "v=spf1 ip4:198.51.100.0/24 ~all"
--   nospf.example      no TXT record
--   elsewhere.example  TIMEOUT: DNS cannot say
return {
  rules = "main.lua",
  dns_zone = "dns.zone",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a fail is refused at MAIL",
    ip = "203.0.113.5", helo = "mail.spf-fail.example",
    from = "alice@spf-fail.example", rcpt = "bob@example.com",
    expect = "refused",
    reply = "550 5.7.23 SPF: spf-fail.example does not allow mail from 203.0.113.5",
    stages = { mail = "reject" },
  },
  {
    name = "an address the record lists passes",
    ip = "198.51.100.7", helo = "mail.spf-fail.example",
    from = "alice@spf-fail.example", rcpt = "bob@example.com",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "a softfail goes on",
    ip = "203.0.113.5", helo = "mail.spf-soft.example",
    from = "alice@spf-soft.example", rcpt = "bob@example.com",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "no SPF record goes on",
    ip = "203.0.113.5", helo = "mail.nospf.example",
    from = "alice@nospf.example", rcpt = "bob@example.com",
    expect = "queued",
  },
  {
    name = "a bounce is checked against the HELO name",
    ip = "203.0.113.5", helo = "spf-fail.example",
    from = "", rcpt = "bob@example.com",
    expect = "refused", reply = "550 5.7.23",
  },
  {
    name = "DNS cannot say: try again later",
    ip = "203.0.113.5", helo = "mail.elsewhere.example",
    from = "alice@elsewhere.example", rcpt = "bob@example.com",
    expect = "deferred", reply = "451 4.4.3",
  },
  {
    name = "trusted networks are not checked",
    ip = "192.0.2.7", helo = "mail.spf-fail.example",
    from = "alice@spf-fail.example", rcpt = "bob@example.com",
    expect = "queued", stages = { mail = "accept" },
  },
}
