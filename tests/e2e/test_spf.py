"""SPF from the rules (ctx:spf(), ctx:spf_helo()) in the real daemon, against
a real DNS server: dnsmasq on a loopback port serving SPF records.

The checks run in the confined session process (seccomp filter, Landlock:
no file may be opened), so these tests also show that libspf2 needs no
forbidden system call and no file there: a session killed by SIGSYS would
be logged by the master as "killed by signal".

The rules are the policy a site writes: at MAIL, refuse an SPF fail with
550 5.7.23 (RFC 7372) and the domain's explanation, answer 451 4.4.3 when
DNS could not say (temperror), let the rest through; at HELO, refuse a
name whose SPF record fails the client. The recipients `spf@...` and
`helo@...` make a rule answer the result tables as text, "result identity
domain mechanism explanation", so the tests can read every field. The
client is 127.0.0.1.
"""
import time

import pytest

import dnsserver

TIMEOUT_S = 1  # [rules] dns_timeout

RECORDS = [
    "txt-record=pass.test,v=spf1 ip4:192.0.2.0/24 ip4:127.0.0.0/8 -all",
    "txt-record=fail.test,v=spf1 ip4:192.0.2.1 -all exp=why.fail.test",
    "txt-record=why.fail.test,%{i} may not send mail for %{d}",
    "txt-record=plain.test,v=spf1 -all",
    "txt-record=soft.test,v=spf1 ip4:192.0.2.1 ~all",
    "txt-record=other.test,v=spf1 include:pass.test -all",
    "host-record=helo.test,127.0.0.1",
    "txt-record=helo.test,v=spf1 a -all",
    "txt-record=badhelo.test,v=spf1 -all",
    "txt-record=neutralhelo.test,v=spf1 ?all",
    "host-record=norecord.test,192.0.2.9",
]

RULES = r'''
local function show(r)
  return table.concat({r.result, r.identity, r.domain or "-", r.mechanism or "-",
                       r.explanation or "-"}, " ")
end

return {
  helo = {
    rule "spf of the HELO name" (function(ctx)
      if ctx:spf_helo().result == "fail" then
        return status.reject(code(550, "5.7.23", "HELO " .. ctx.helo .. " is not allowed by SPF"))
      end
      return status.next()
    end),
  },
  mail = {
    rule "spf of the sender" (function(ctx)
      local r = ctx:spf()
      if r.result == "fail" then
        return status.reject(code(550, "5.7.23", r.explanation or ("SPF fail for " .. r.domain)))
      elseif r.result == "temperror" then
        return status.reject(code(451, "4.4.3", "SPF of " .. r.domain .. ": try again later"))
      end
      return status.next()
    end),
  },
  rcpt = {
    rule "show" (function(ctx)
      local what = ctx.rcpt.local_part
      if what == "spf" then return status.reject(code(550, "5.7.1", show(ctx:spf()))) end
      if what == "helo" then return status.reject(code(550, "5.7.1", show(ctx:spf_helo()))) end
      return status.next()
    end),
  },
}
'''


@pytest.fixture(scope="module")
def dns(workspace):
    with dnsserver.Dnsmasq(workspace.new_dir("dnsmasq-spf"), RECORDS) as server:
        yield server


@pytest.fixture(scope="module")
def silent():
    with dnsserver.SilentUDP() as s:
        yield s


def settings(servers, **limits):
    out = {"rules": {"dns_servers": servers, "dns_timeout": f"{TIMEOUT_S}s"}}
    if limits:
        out["limits"] = {k: str(v) for k, v in limits.items()}
    return out


@pytest.fixture(scope="module")
def spf_daemon(module_daemons, dns):
    d = module_daemons(settings(dns.address), rules=RULES, label="-dns")
    yield d
    assert_no_killed_session(d)


def assert_no_killed_session(d):
    """No session process died of a signal (SIGSYS: a forbidden system call)."""
    log = d.log()
    assert "killed by signal" not in log, log
    assert "SIGSYS" not in log, log


def shown(c, what):
    """The result table the rule shows for <what>@example.net."""
    r = c.cmd(f"RCPT TO:<{what}@example.net>")
    assert (r.code, r.esc) == (550, "5.7.1"), r
    return r.text[len("5.7.1 "):]


def test_pass_is_accepted(spf_daemon):
    with spf_daemon.session() as c:
        c.expect("MAIL FROM:<alice@pass.test>", 250, "2.1.0")
        assert shown(c, "spf") == "pass mailfrom pass.test ip4:127.0.0.0/8 -"
        # the result is kept for the transaction: the same table again
        assert shown(c, "spf") == "pass mailfrom pass.test ip4:127.0.0.0/8 -"
        c.expect("RCPT TO:<rcpt@example.net>", 250, "2.1.5")


def test_fail_is_rejected_at_mail_with_the_explanation(spf_daemon):
    with spf_daemon.session() as c:
        c.expect("MAIL FROM:<alice@fail.test>", 550, "5.7.23",
                 text="5.7.23 127.0.0.1 may not send mail for fail.test")
        # the client may go on with another sender
        c.expect("MAIL FROM:<bob@plain.test>", 550, "5.7.23",
                 text="5.7.23 SPF fail for plain.test")
        c.expect("MAIL FROM:<carol@pass.test>", 250, "2.1.0")


def test_softfail_none_and_include_go_through(spf_daemon):
    with spf_daemon.session() as c:
        c.expect("MAIL FROM:<a@soft.test>", 250, "2.1.0")
        assert shown(c, "spf") == "softfail mailfrom soft.test ~all -"
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<a@norecord.test>", 250, "2.1.0")
        assert shown(c, "spf") == "none mailfrom norecord.test - -"
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<a@other.test>", 250, "2.1.0")
        assert shown(c, "spf") == "pass mailfrom other.test include:pass.test -"


def test_refused_lookup_is_temperror(spf_daemon):
    """dnsmasq refuses names outside its zone: DNS could not say."""
    with spf_daemon.session() as c:
        c.expect("MAIL FROM:<a@example.org>", 451, "4.4.3",
                 text="4.4.3 SPF of example.org: try again later")


def test_helo_identity(spf_daemon):
    with spf_daemon.client() as c:
        c.expect("EHLO badhelo.test", 550, "5.7.23",
                 text="5.7.23 HELO badhelo.test is not allowed by SPF")
        c.ehlo("helo.test")
        c.expect("MAIL FROM:<>", 250, "2.1.0")
        assert shown(c, "helo") == "pass helo helo.test a -"
        # the null sender: the MAIL FROM identity is postmaster@<HELO name>
        assert shown(c, "spf") == "pass mailfrom helo.test a -"
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<a@soft.test>", 250, "2.1.0")
        assert shown(c, "helo") == "pass helo helo.test a -"
        assert shown(c, "spf") == "softfail mailfrom soft.test ~all -"
        # a new HELO name: a new check
        c.ehlo("neutralhelo.test")
        c.expect("MAIL FROM:<a@pass.test>", 250, "2.1.0")
        assert shown(c, "helo") == "neutral helo neutralhelo.test ?all -"


def test_one_process_serves_two_senders_apart(module_daemons, dns):
    """Session processes are pooled: with one spare process, connections made
    one after another are served by the same process, and each gets the
    results of its own sender and HELO name, none kept from the one before."""
    d = module_daemons(settings(dns.address, spare_processes=1), rules=RULES, label="-pool")
    pids = []
    with d.client() as c:
        c.ehlo("helo.test")
        c.expect("MAIL FROM:<a@pass.test>", 250, "2.1.0")
        assert shown(c, "spf") == "pass mailfrom pass.test ip4:127.0.0.0/8 -"
        assert shown(c, "helo") == "pass helo helo.test a -"
        c.quit()
    d.session_summary(c.local_port)
    pids.append(d.session_pid(c.local_port))
    with d.client() as c:
        c.ehlo("neutralhelo.test")
        c.expect("MAIL FROM:<a@fail.test>", 550, "5.7.23",
                 text="5.7.23 127.0.0.1 may not send mail for fail.test")
        c.expect("MAIL FROM:<a@soft.test>", 250, "2.1.0")
        assert shown(c, "spf") == "softfail mailfrom soft.test ~all -"
        assert shown(c, "helo") == "neutral helo neutralhelo.test ?all -"
        c.quit()
    d.session_summary(c.local_port)
    pids.append(d.session_pid(c.local_port))
    with d.client() as c:
        c.ehlo("helo.test")
        c.expect("MAIL FROM:<a@pass.test>", 250, "2.1.0")
        assert shown(c, "spf") == "pass mailfrom pass.test ip4:127.0.0.0/8 -"
        c.quit()
    d.session_summary(c.local_port)
    pids.append(d.session_pid(c.local_port))
    assert len(set(pids)) == 1, f"the connections were not served by one process: {pids}"
    assert_no_killed_session(d)


def test_silent_dns_server_gives_451(module_daemons, silent):
    """A server that never answers: temperror once dns_timeout has passed,
    a 451 from the rules, and the session goes on."""
    d = module_daemons(settings(silent.address), rules=RULES, label="-silent")
    with d.session() as c:
        t0 = time.monotonic()
        c.expect("MAIL FROM:<a@pass.test>", 451, "4.4.3",
                 text="4.4.3 SPF of pass.test: try again later")
        elapsed = time.monotonic() - t0
        assert TIMEOUT_S - 0.2 <= elapsed <= TIMEOUT_S + 1.5, f"{elapsed:.2f} s"
        c.expect("NOOP", 250)
    assert silent.received() >= 1
    assert_no_killed_session(d)
