-- rspamd.lua - the benchmark's rspamd at preq (bench/milter.py --filter
-- rspamd): every message is scanned by [service:rspamd] over HTTP, the
-- headers rspamd asks for are added, and its action decides.
return {
  preq = {
    rule "rspamd" (function(ctx)
      return ctx:rspamd("rspamd").status
    end),
  },
}
