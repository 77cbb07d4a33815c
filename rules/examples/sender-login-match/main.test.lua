-- vsmtpctl rules test main.test.lua
--
-- The users and their addresses are those of senders.lua. The
-- authenticated cases are sessions on the submission listener, over TLS,
-- as the daemon requires there.
return {
  rules = "main.lua",
  config = { hostname = "mx.example.com", local_domains = "example.com",
             trusted_networks = "192.0.2.0/24" },
  {
    name = "a user sends from the login: queued",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "198.51.100.20", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { authenticate = "next", mail = "next" },
  },
  {
    name = "the domain of the login in another case is the same address",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "198.51.100.20", from = "alice@Example.COM", rcpt = "carol@example.net",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "an alias of the user from senders.lua: queued",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "198.51.100.20", from = "alice.smith@example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "a shared role address listed for the user: queued",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "198.51.100.20", from = "sales@example.com", rcpt = "carol@example.net",
    expect = "queued",
  },
  {
    name = "someone else's address is refused at MAIL",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "198.51.100.20", from = "bob@example.com", rcpt = "carol@example.net",
    expect = "refused",
    reply = "553 5.7.1 Sender address rejected: not owned by user alice@example.com",
    stages = { authenticate = "next", mail = "reject" },
  },
  {
    name = "so is an alias of another user",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "198.51.100.20", from = "robert@example.com", rcpt = "carol@example.net",
    expect = "refused", reply = "553 5.7.1 Sender address rejected: not owned by user alice",
    stages = { mail = "reject" },
  },
  {
    name = "a local part is compared as written",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "198.51.100.20", from = "Alice@example.com", rcpt = "carol@example.net",
    expect = "refused", reply = "553 5.7.1", stages = { mail = "reject" },
  },
  {
    name = "a user without a line in senders.lua sends from the login",
    listener = "submission", tls = true, auth = "dave@example.com",
    ip = "198.51.100.20", from = "dave@example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "and only from it",
    listener = "submission", tls = true, auth = "dave@example.com",
    ip = "198.51.100.20", from = "alice@example.com", rcpt = "carol@example.net",
    expect = "refused",
    reply = "553 5.7.1 Sender address rejected: not owned by user dave@example.com",
  },
  {
    name = "an @domain line: any address of that domain",
    listener = "submission", tls = true, auth = "newsletter@example.com",
    ip = "198.51.100.20", from = "offers-2024@news.example.com", rcpt = "carol@example.net",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "but not of its parent domain",
    listener = "submission", tls = true, auth = "newsletter@example.com",
    ip = "198.51.100.20", from = "offers@example.com", rcpt = "carol@example.net",
    expect = "refused", reply = "553 5.7.1",
  },
  {
    name = "nor of its subdomains",
    listener = "submission", tls = true, auth = "newsletter@example.com",
    ip = "198.51.100.20", from = "offers@eu.news.example.com", rcpt = "carol@example.net",
    expect = "refused", reply = "553 5.7.1",
  },
  {
    name = "the null sender of a report passes",
    listener = "submission", tls = true, auth = "alice@example.com",
    ip = "198.51.100.20", from = "", rcpt = "carol@example.net",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "mail from another server on port 25 is untouched",
    listener = "smtp",
    ip = "203.0.113.5", from = "bob@example.org", rcpt = "alice@example.com",
    expect = "queued", stages = { mail = "next" },
  },
  {
    name = "even when it claims a local sender: not this rule's business",
    listener = "smtp",
    ip = "203.0.113.5", from = "alice@example.com", rcpt = "bob@example.com",
    expect = "queued", stages = { mail = "next" },
  },
}
