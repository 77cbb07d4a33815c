-- vsmtpctl rules test main.test.lua
--
-- vsmtpctl reads the [dkim:example_com] key of its configuration (-c), as
-- the daemon does; tests/e2e/test_rules_examples.py checks the signature
-- the daemon makes with python3-dkim's verifier.
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a user who logged in: signed",
    ip = "203.0.113.5", auth = "alice@example.com", tls = true,
    from = "alice@example.com", rcpt = "bob@example.net",
    message = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nhi\r\n",
    expect = "queued", stages = { preq = "next" },
  },
  {
    name = "the trusted network: signed",
    ip = "192.0.2.7", from = "alice@example.com", rcpt = "bob@example.net",
    message = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nhi\r\n",
    expect = "queued",
  },
  {
    name = "a domain without a key: unsigned, still sent",
    ip = "192.0.2.7", from = "carol@other.example", rcpt = "bob@example.net",
    expect = "queued",
  },
  {
    name = "mail from outside is not signed (and not relayed: no other rule here)",
    ip = "203.0.113.5", from = "alice@example.com", rcpt = "bob@example.com",
    expect = "queued",
  },
}
