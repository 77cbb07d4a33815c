-- stage-syntax - the table form: stages, each a list of rules and actions.
--
-- The file returns a table whose keys are stage names and whose values are
-- lists, run top to bottom. A stage that is not needed is left out; a stage
-- may appear only once (a second "connect = {...}" in the same table is an
-- error when the rules load, not a silent replacement). The order of the
-- keys does not matter, but writing them in the order the stages run
-- (connect, authenticate, helo, mail, rcpt, preq, postq, delivery) makes the
-- file easier to read.
--
-- Here the client 192.168.1.254 is trusted (faccept: no later rule runs for
-- it), and every new transaction is logged. The postq stage runs after the
-- message is queued, once, in the delivery worker.

return {
  connect = {
    -- This rule is executed once a new client connects to the server.
    rule "check client ip" (function(ctx)
      if ctx.client_ip == "192.168.1.254" then
        return status.faccept()
      end
      return status.next()
    end),
  },

  mail = {
    -- This action is executed once the server receives the MAIL FROM command.
    action "log incoming transaction" (function(ctx)
      log("info", "new transaction from <" .. tostring(ctx.mail_from) .. "> at "
        .. ctx.client_ip)
    end),
  },

  postq = {
    -- Offline, in the delivery worker: the client already has its 250.
    action "log queued message" (function(ctx)
      log("info", "queued " .. ctx.message_id .. " for "
        .. #ctx.rcpt_list .. " recipient(s)")
    end),
  },
}
