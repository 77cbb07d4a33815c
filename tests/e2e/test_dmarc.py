"""DMARC from the rules (ctx:dmarc()) in the real daemon, against a real DNS
server: dnsmasq on a loopback port serving the _dmarc, SPF and DKIM key
records.

The check runs in the confined session process (seccomp filter, Landlock:
no file may be opened): the public suffix list was read by the master when
the rules loaded, and the records come through the rules' c-ares channel,
so a session killed by SIGSYS, or a check that tried to open the list,
would show here. The policy is the one a site writes: at preq, refuse what
the From domain's policy says to reject (550 5.7.1), and write the result
into a header field of the queued message for the rest. The names are
under "test", which the public suffix list does not name: its default
rule makes example.test the organizational domain of news.example.test.
The client is 127.0.0.1; messages are signed by python3-dkim's dkimsign
with the unit tests' keys.
"""
import re

import pytest

from dmarc_setup import dkimsign, dns_server, message, send

RULES = r'''
return {
  preq = {
    rule "dmarc" (function(ctx)
      local d = ctx:dmarc()
      if d.disposition == "reject" then
        return status.reject(code(550, "5.7.1", "rejected by the DMARC policy of " ..
                                  d.policy_domain))
      end
      ctx:append_header("X-DMARC-Test", table.concat({d.result, d.disposition,
        d.policy_domain or "-", tostring(d.spf_aligned), tostring(d.dkim_aligned),
        table.concat(d.dkim_domains, ",")}, " "))
      return status.next()
    end),
  },
}
'''


def header(content, name):
    m = re.search(rb"(?im)^" + name.encode() + rb":[ \t]*([^\r\n]*)", content)
    assert m, content[:400]
    return m.group(1).decode()


def queued(daemon, sender, content):
    code, text = send(daemon, sender, content)
    assert code == 250, text
    m = re.search(rb"queued as (\S+)", text)
    assert m, text
    got, _ = daemon.message(m.group(1).decode())
    return header(got, "X-DMARC-Test")


@pytest.fixture(scope="module")
def dns(workspace):
    server = dns_server(workspace, "dmarc")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def daemon(module_daemons, dns):
    d = module_daemons({"rules": {"dns_servers": dns.address, "dns_timeout": "2s"}},
                       rules=RULES, label="-dmarc")
    yield d
    log = d.log()
    assert "killed by signal" not in log, log
    assert "SIGSYS" not in log, log


def test_failing_message_is_refused(daemon):
    # SPF passes for elsewhere.test only from 192.0.2.1, and nothing is signed
    code, text = send(daemon, "a@elsewhere.test", message("example.test"))
    assert (code, text) == (550, b"5.7.1 rejected by the DMARC policy of example.test")


def test_spf_aligned_message_is_queued(daemon):
    assert queued(daemon, "a@example.test", message("example.test")) == \
        "pass none example.test true false"


def test_dkim_aligned_message_is_queued(daemon):
    signed = dkimsign(message("example.test"))
    assert queued(daemon, "a@elsewhere.test", signed) == \
        "pass none example.test false true example.test"
    # a subdomain without a record: the organizational domain's sp=
    assert queued(daemon, "a@elsewhere.test", message("news.example.test")) == \
        "fail quarantine example.test false false"


def test_no_record(daemon):
    assert queued(daemon, "a@elsewhere.test", message("elsewhere.test")) == \
        "none none - false false"
