-- add-header - record who sent the message in a header of our own.
--
-- Every queued message gets
--   X-Relay-Client: client.example [203.0.113.5] trusted=no
-- naming the client's HELO name and address, and whether it was in
-- [rules] trusted_networks, for mailbox filters and for whoever reads the
-- message's source later.
--
-- A sender may put any header in its message, including a forged
-- X-Relay-Client, so every copy the client sent is removed before ours
-- is added. The trust decision is taken once per connection, at connect,
-- and kept in a connection variable (ctx:set); the preq rule reads it back
-- with ctx:get. Variables also end up in the queued envelope ("vars").

return {
  connect = {
    action "classify client" (function(ctx)
      ctx:set("trusted", config.trusted_networks:contains(ctx.client_ip))
    end),
  },

  preq = {
    action "relay client header" (function(ctx)
      ctx:remove_header("X-Relay-Client")
      ctx:append_header("X-Relay-Client", string.format("%s [%s] trusted=%s",
        ctx.helo, ctx.client_ip, ctx:get("trusted") and "yes" or "no"))
    end),
  },
}
