-- vsmtpctl rules test main.test.lua
--
-- The calls go to the [service:clamav] of the configuration vsmtpctl
-- reads (vsmtpctl -c FILE): a clamd must answer there. expect is what the
-- client sees: the postq rule runs after the 250, and stages says what it
-- decided. The test message holds the EICAR test string (split in two
-- here so that this file is no test file itself).
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a clean message is queued for delivery",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\nSubject: invoice\r\n\r\nPlease pay.\r\n",
    expect = "queued", stages = { postq = "next" },
  },
  {
    name = "an infected message is quarantined by the postq rule",
    ip = "203.0.113.5", from = "alice@example.org", rcpt = "bob@example.com",
    message = "From: alice@example.org\r\nSubject: invoice\r\n\r\n"
      .. "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS"
      .. "-TEST-FILE!$H+H*\r\n",
    expect = "queued", stages = { postq = "quarantine" },
  },
}
