-- blocklists - refuse clients, senders and recipients listed in files.
--
-- Three plain text files beside this one, one entry a line, '#' comments:
--   blocked_ips.txt       client addresses and networks (ip_list)
--   blocked_domains.txt   sender domains; ".example" also blocks every
--                         subdomain (domain_list)
--   former_users.txt      recipients that no longer exist; "@domain"
--                         stands for every address of a domain (address_list)
-- The files are read when the rules load: after editing one, reload vsmtpd
-- (systemctl reload vsmtpd, i.e. SIGHUP). A bad line stops the load with
-- its file and line number, and the running rules stay in place. Lookups
-- are fast however long the lists are (sorted networks, hash tables), but
-- reading them counts against [rules] load_time_limit (250 ms of CPU by
-- default): lists of several hundred thousand entries need a higher one.
--
--   * a listed client is turned away before the greeting (554 5.7.1, and
--     the connection is closed): deny;
--   * a listed sender domain is refused at MAIL (550 5.7.1): reject, the
--     client may try another sender;
--   * a former user is refused at RCPT (550 5.1.1 user unknown): reject,
--     the other recipients of the message go on.

local blocked_ips = ip_list("blocked_ips.txt")
local blocked_domains = domain_list("blocked_domains.txt")
local former_users = address_list("former_users.txt")

return {
  connect = {
    rule "blocked clients" (function(ctx)
      if blocked_ips:contains(ctx.client_ip) then
        return status.deny(code(554, "5.7.1", "Client host [" .. ctx.client_ip .. "] blocked"))
      end
      return status.next()
    end),
  },

  mail = {
    rule "blocked sender domains" (function(ctx)
      if not ctx.mail_from.is_null and blocked_domains:contains(ctx.mail_from) then
        return status.reject(code(550, "5.7.1", "Sender address rejected: domain blocked"))
      end
      return status.next()
    end),
  },

  rcpt = {
    rule "former users" (function(ctx)
      if former_users:contains(ctx.rcpt) then
        return status.reject(codes.unknown_user)
      end
      return status.next()
    end),
  },
}
