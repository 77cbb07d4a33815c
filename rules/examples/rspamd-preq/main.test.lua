-- vsmtpctl rules test main.test.lua
--
-- Offline, without rspamd, these cases show who is not scanned. What rspamd
-- answers (reject, greylist, soft reject, add header, no action) is checked
-- by tests/e2e/test_service_rspamd.py, with the daemon running this file
-- and a server answering each action.
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a trusted client's message is not scanned",
    ip = "192.0.2.7", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { preq = "next" },
  },
  {
    name = "nor a logged-in user's",
    ip = "203.0.113.5", auth = "alice@example.com", from = "alice@example.com",
    rcpt = "carol@example.net",
    expect = "queued", stages = { preq = "next" },
  },
}
