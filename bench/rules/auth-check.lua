-- auth-check.lua - the benchmark's mail authentication (bench/auth.py):
-- SPF, DKIM and DMARC checked for every message at preq, as an MX does;
-- a message DMARC would have refused is refused, so a run whose
-- records are wrong fails rather than measuring nothing.
return {
  preq = {
    rule "authenticate" (function(ctx)
      local spf = ctx:spf()
      local dkim = ctx:dkim()
      local dmarc = ctx:dmarc()
      if spf.result ~= "pass" or #dkim ~= 1 or dkim[1].result ~= "pass"
          or dmarc.result ~= "pass" then
        return status.deny(code(550, "5.7.1", "bench: authentication did not pass"))
      end
      return status.next()
    end),
  },
}
