-- status-next - status.next(): this rule is done, go on with the next one.
--
-- A stage whose rules all say next ends as if there were no rule: the
-- client gets its usual reply. An action's return value is ignored, so an
-- action never changes what happens; it is for work on the side (logging,
-- headers). print() writes its arguments to the log at debug level.

return {
  connect = {
    -- once "go to the next rule" is evaluated, the rule engine executes
    -- "another rule".
    rule "go to the next rule" (function(ctx)
      return status.next()
    end),
    action "another rule" (function(ctx)
      print("checking stuff ...")
    end),
  },
}
