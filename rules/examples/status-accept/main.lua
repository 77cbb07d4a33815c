-- status-accept - status.accept() ends the stage it is given in.
--
-- accept() skips the rules left in the current stage; the next stage starts
-- from its first rule again. Here the connect stage accepts every client, so
-- the action after it never runs, and the mail stage still runs its rule.
--
-- Compared with the vSL original: its "resume rules" is a rule
-- whose body only prints. In Lua a rule must return a status, so it prints
-- and returns status.next(); print() writes to the log at debug level.

return {
  connect = {
    -- "ignore checks" is skipped because this rule returns accept.
    rule "accept" (function(ctx)
      return status.accept()
    end),
    action "ignore checks" (function(ctx)
      print("this will be ignored because the previous rule used accept().")
    end),
  },

  mail = {
    -- rule evaluation is resumed in the next stage.
    rule "resume rules" (function(ctx)
      print("evaluation resumed!")
      return status.next()
    end),
  },
}
