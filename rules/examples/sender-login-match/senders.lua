-- senders.lua - the addresses each user may send from, besides the login
-- itself. Loaded by main.lua with require("senders") when the rules load:
-- after an edit, reload vsmtpd (systemctl reload vsmtpd, i.e. SIGHUP).
--
-- One key per user, written as Cyrus SASL names them: user@realm (a user
-- who logs in without @realm gets [auth] realm, by default the host name).
-- Each value is a list of addresses; "@domain" stands for every address of
-- a domain. A bad address stops the load with the user's name, and the
-- running rules stay in place. A user without a line here may send from
-- the login only.

return {
  ["alice@example.com"] = { "alice.smith@example.com", "sales@example.com" },
  ["bob@example.com"] = { "robert@example.com" },
  -- the newsletter robot sends from any address of its own domain
  ["newsletter@example.com"] = { "@news.example.com" },
}
