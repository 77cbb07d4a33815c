"""DNS lookups from the rules (dns.lookup, dns.rlookup) against a real DNS
server: dnsmasq on a loopback port, with fixed records.

The rules run at the rcpt stage, in the confined session process (Landlock:
no file can be opened there, /etc/resolv.conf included). A recipient
`<what>@<domain>` makes the rule look <domain> up in the way named by
<what> and refuse the recipient with "550 5.7.1 <result>", where the result
is "ok a,b,c" for a list (MX entries as preference:exchange) or
"nil <reason>". The `policy` recipient is the kind of rule a site writes:
accept when the domain has MX records, deny when it has none, try again
later when DNS could not say.
"""
import subprocess
import time

import pytest

import dnsserver

TIMEOUT_S = 2  # [rules] dns_timeout

LONG_TXT = ["a" * 250, "b" * 250, "c" * 250]  # 750 bytes: over UDP's 512, so TCP

RECORDS = [
    "host-record=a.test,192.0.2.1,2001:db8::1",   # also the PTR records of both
    "host-record=six.test,2001:db8::53",
    "host-record=v4only.test,192.0.2.4",
    "mx-host=m.test,mx2.m.test,20",
    "mx-host=m.test,mx1.m.test,10",
    "mx-host=m.test,mx3.m.test,30",
    # on the command line dnsmasq takes text as it is (no quotes): two
    # character-strings, the second with its leading blank
    "txt-record=t.test,v=spf1 ip4:192.0.2.0/24, -all",
    "txt-record=t.test,second record",
    "txt-record=long.test," + ",".join(LONG_TXT),
    "ptr-record=1.0.0.127.in-addr.arpa,client.test",
]

RULES = r'''
local function show(res, err)
  if res == nil then return "nil " .. tostring(err) end
  local out = {}
  for i, v in ipairs(res) do
    if type(v) == "table" then out[i] = v.preference .. ":" .. v.exchange else out[i] = v end
  end
  return "ok " .. table.concat(out, ",")
end

local ask = {
  any = function(d) return dns.lookup(d) end,
  a = function(d) return dns.lookup(d, "A") end,
  aaaa = function(d) return dns.lookup(d, "AAAA") end,
  mx = function(d) return dns.lookup(d, "MX") end,
  txt = function(d) return dns.lookup(d, "TXT") end,
  ptr = function(d) return dns.lookup(d, "PTR") end,
  txtlen = function(d)
    local r, err = dns.lookup(d, "TXT")
    if r == nil then return r, err end
    return { tostring(#r), tostring(#(r[1] or "")) }
  end,
  rev4 = function() return dns.rlookup("192.0.2.1") end,
  rev6 = function() return dns.rlookup(ip("2001:db8::53")) end,
  revnone = function() return dns.rlookup("192.0.2.200") end,
  revclient = function(_, ctx) return dns.rlookup(ctx.client_ip) end,
  badname = function() return dns.lookup("not a domain") end,
}

return {
  rcpt = {
    rule "dns" (function(ctx)
      local rcpt = ctx.rcpt
      if rcpt.local_part == "policy" then
        local mx, err = dns.lookup(rcpt.domain, "MX")
        if mx == nil then
          return status.reject(code(451, "4.4.3", "cannot check " .. rcpt.domain .. ": " .. err))
        elseif #mx == 0 then
          return status.deny(code(550, "5.1.2", "no mail exchanger for " .. rcpt.domain))
        end
        return status.accept()
      end
      local f = ask[rcpt.local_part]
      if f == nil then return status.next() end
      return status.reject(code(550, "5.7.1", show(f(rcpt.domain, ctx))))
    end),
  },
}
'''


@pytest.fixture(scope="module")
def dns(workspace):
    with dnsserver.Dnsmasq(workspace.new_dir("dnsmasq"), RECORDS) as server:
        yield server


@pytest.fixture(scope="module")
def silent():
    with dnsserver.SilentUDP() as s:
        yield s


def dns_settings(servers):
    return {"rules": {"dns_servers": servers, "dns_timeout": f"{TIMEOUT_S}s"}}


@pytest.fixture(scope="module")
def dns_daemon(module_daemons, dns):
    return module_daemons(dns_settings(dns.address), rules=RULES, label="-dns")


@pytest.fixture(scope="module")
def silent_daemon(module_daemons, silent):
    return module_daemons(dns_settings(silent.address), rules=RULES, label="-silent")


def ask(client, what, domain="a.test"):
    """The rule's answer for <what>@<domain>: "ok ..." or "nil ..."."""
    r = client.cmd(f"RCPT TO:<{what}@{domain}>")
    assert r.code == 550 and r.esc == "5.7.1", f"{what}@{domain}: {r!r}"
    return r.text[len("5.7.1 "):]


@pytest.fixture
def client(dns_daemon):
    c = dns_daemon.session()
    c.mail()
    yield c
    c.close()


def test_addresses(client):
    assert ask(client, "any", "a.test") == "ok 192.0.2.1,2001:db8::1"
    assert ask(client, "a", "a.test") == "ok 192.0.2.1"
    assert ask(client, "aaaa", "a.test") == "ok 2001:db8::1"
    assert ask(client, "any", "six.test") == "ok 2001:db8::53"
    assert ask(client, "any", "v4only.test") == "ok 192.0.2.4"
    # names are matched without regard to case
    assert ask(client, "a", "A.TEST") == "ok 192.0.2.1"


def test_missing_names_give_empty_lists(client):
    assert ask(client, "any", "nx.test") == "ok "      # NXDOMAIN
    assert ask(client, "mx", "nx.test") == "ok "
    assert ask(client, "mx", "a.test") == "ok "        # the name exists, no MX
    assert ask(client, "aaaa", "v4only.test") == "ok "
    assert ask(client, "txt", "m.test") == "ok "


def test_mx_sorted_by_preference(client):
    assert ask(client, "mx", "m.test") == "ok 10:mx1.m.test,20:mx2.m.test,30:mx3.m.test"


def test_txt(client):
    got = ask(client, "txt", "t.test")
    assert got.startswith("ok ")
    # one string per record, the record's strings joined; records in any order
    assert sorted(got[3:].split(",")) == ["second record", "v=spf1 ip4:192.0.2.0/24 -all"]


def test_txt_over_tcp(client):
    """An answer too big for UDP is truncated; the resolver asks again over
    TCP, from the confined session too."""
    assert ask(client, "txtlen", "long.test") == "ok 1,750"


def test_ptr(client):
    assert ask(client, "rev4") == "ok a.test"
    assert ask(client, "rev6") == "ok six.test"
    assert ask(client, "revclient") == "ok client.test"   # the client is 127.0.0.1
    assert ask(client, "revnone") == "ok "
    assert ask(client, "ptr", "1.0.0.127.in-addr.arpa") == "ok client.test"


def test_refused_is_a_failure_not_a_miss(client):
    """dnsmasq refuses names outside its local domains (it has no upstream):
    "could not ask", not "does not exist"."""
    assert ask(client, "any", "example.org") == "nil servfail"
    assert ask(client, "mx", "example.org") == "nil servfail"


def test_bad_name_is_a_rule_error(client, dns_daemon):
    r = client.cmd("RCPT TO:<badname@a.test>")
    assert (r.code, r.esc) == (451, "4.3.0"), r
    dns_daemon.wait_log(r'rule "dns" .* failed: .*not a domain name: "not a domain"')
    # the session goes on
    assert ask(client, "a", "a.test") == "ok 192.0.2.1"


def test_policy_rule(dns_daemon):
    with dns_daemon.session() as c:
        c.mail()
        c.expect("RCPT TO:<policy@m.test>", 250, "2.1.5")
        c.expect("RCPT TO:<policy@nx.test>", 550, "5.1.2",
                 text="5.1.2 no mail exchanger for nx.test")
        c.expect_eof()  # deny closes the connection


def test_timeout(silent_daemon, silent):
    """A server that never answers: nil, "timeout" after dns_timeout, for
    each lookup, and the session goes on."""
    with silent_daemon.session() as c:
        c.mail()
        for what in ("any", "mx", "revclient"):
            t0 = time.monotonic()
            got = ask(c, what, "a.test")
            elapsed = time.monotonic() - t0
            assert got == "nil timeout", what
            assert TIMEOUT_S - 0.2 <= elapsed <= TIMEOUT_S + 1.5, f"{what}: {elapsed:.2f} s"
        t0 = time.monotonic()
        c.expect("RCPT TO:<policy@m.test>", 451, "4.4.3",
                 text="4.4.3 cannot check m.test: timeout")
        assert time.monotonic() - t0 <= TIMEOUT_S + 1.5
    assert silent.received() >= 4  # the queries did go out


def test_check_config(dns, daemons):
    """vsmtpd -t: a bad dns_servers is refused, naming the key; the system's
    resolvers (no dns_servers) are read when the rules are loaded."""
    d = daemons({"rules": {"dns_servers": "127.0.0.1:99999"}}, start=False, rules=RULES)
    out = subprocess.run([d.binary, "-t", "-c", d.conf_path], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode != 0
    assert "dns_servers" in out.stderr and "127.0.0.1:99999" in out.stderr, out.stderr

    d = daemons({"rules": {"dns_servers": dns.address}}, start=False, rules=RULES, label="-ok")
    out = subprocess.run([d.binary, "-t", "-c", d.conf_path], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr

    d = daemons(start=False, rules=RULES, label="-system")
    out = subprocess.run([d.binary, "-t", "-c", d.conf_path], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
