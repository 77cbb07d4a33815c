-- status-info - status.info(code) sends a reply and changes nothing.
--
-- info answers the client with the code given, which must be a 4xx or 5xx
-- one, and leaves the session as it was, so the client may send the
-- command again. At connect there is nothing to retry: the code replaces
-- the greeting and the connection is closed.
--
-- As in the vSL original, this asks every client to come back later: 451 at
-- connect, before any greeting. It is the shape of a maintenance switch;
-- a real policy would decide on something (the client, the hour).

local info_code = { code = 451, enhanced = "",
                    text = "failed to understand you request, please retry." }

return {
  connect = {
    rule "please retry" (function(ctx)
      return status.info(info_code)
    end),
  },
}
