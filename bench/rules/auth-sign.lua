-- auth-sign.lua - the benchmark's signing (bench/auth.py): every message
-- gets a DKIM signature at preq with the key of [dkim:bench].
return {
  preq = {
    action "sign" (function(ctx)
      ctx:dkim_sign("bench")
    end),
  },
}
