return {
 connect = {}, --[==[ connect = {} ]==]
 ["helo"] = { "x = {", [[ ]] },
}
function on_mail_from(ctx) end
