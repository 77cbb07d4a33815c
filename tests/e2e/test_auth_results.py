"""Authentication-Results in the real daemon: a preq rule checks SPF (the
sender and the HELO name) and DKIM in the confined session process, the
records served by dnsmasq on loopback, then calls
ctx:add_authentication_results(). The message a client sends carries a
forged Authentication-Results field under the daemon's own host name and
one of another host; the queued message, read back from the spool, has
exactly one field under the daemon's name, on top, with the results, and
the other host's field as it came.
"""
import re
import smtplib

import pytest

import dnsserver
import vsmtpd_e2e as e2e
from test_dkim import RECORDS as DKIM_RECORDS, dkimsign

RECORDS = DKIM_RECORDS + [
    "txt-record=example.test,v=spf1 ip4:127.0.0.0/8 -all",
    "host-record=client.test,127.0.0.1",
    "txt-record=client.test,v=spf1 a -all",
    "txt-record=_dmarc.example.test,v=DMARC1; p=reject",
]

RULES = r'''
return {
  preq = {
    rule "authentication results" (function(ctx)
      ctx:spf()
      ctx:spf_helo()
      ctx:dkim()
      ctx:dmarc()
      ctx:arc()
      ctx:append_header("X-Returned", ctx:add_authentication_results())
      return status.next()
    end),
  },
}
'''

MESSAGE = ("Authentication-Results: {host}; spf=pass smtp.mailfrom=example.test;\r\n"
           "  dkim=pass header.d=example.test\r\n"
           "Authentication-Results: other.example.net 1; spf=fail smtp.mailfrom=example.test\r\n"
           "From: Alice <alice@example.test>\r\n"
           "To: bob@example.com\r\n"
           "Subject: Authentication-Results end to end\r\n"
           "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
           "Message-ID: <ar@example.test>\r\n"
           "\r\n"
           "Hello Bob.\r\n")


@pytest.fixture(scope="module")
def dns(workspace):
    with dnsserver.Dnsmasq(workspace.new_dir("dnsmasq-ar"), RECORDS) as server:
        yield server


@pytest.fixture(scope="module")
def daemon(module_daemons, dns):
    d = module_daemons({"rules": {"dns_servers": dns.address, "dns_timeout": "2s"}},
                       rules=RULES, label="-ar")
    yield d
    log = d.log()
    assert "killed by signal" not in log, log


def send(daemon, content, sender):
    """content sent from sender with smtplib after EHLO client.test; the queue id."""
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as s:
        s.ehlo("client.test")
        assert s.mail(sender)[0] == 250
        assert s.rcpt("bob@example.com")[0] == 250
        code, text = s.data(content)
        assert code == 250, text
    m = re.search(rb"queued as (\S+)", text)
    assert m, text
    return m.group(1).decode()


def fields(content, name):
    """Every (position, unfolded value) of the fields called name in content's header."""
    head = content.split(b"\r\n\r\n", 1)[0].decode()
    out = []
    for i, f in enumerate(re.split(r"\r\n(?![ \t])", head)):
        n, _, v = f.partition(":")
        if n.strip().lower() == name.lower():
            out.append((i, re.sub(r"\r\n[ \t]+", " ", v).strip()))
    return out


def b_prefix(content):
    """The first 8 characters of the DKIM-Signature's b= tag, quoted as a
    value must be when it holds a '/'."""
    sig = re.sub(r"\s", "", fields(content, "DKIM-Signature")[0][1])
    b = re.search(r"(?:^|;)b=([^;]*)", sig).group(1)[:8]
    return f'"{b}"' if "/" in b else b


def ours(content):
    return [(i, v) for i, v in fields(content, "Authentication-Results")
            if re.match(re.escape(e2e.HOSTNAME) + r"\b", v, re.I)]


def test_one_field_of_ours_on_top_with_the_results(daemon):
    signed = dkimsign(MESSAGE.format(host=e2e.HOSTNAME.upper()), "--hcanon", "relaxed",
                      "--bcanon", "relaxed", "rsa", "example.test", "rsa.pem")
    qid = send(daemon, signed, "alice@example.test")
    content, _ = daemon.message(qid)
    expected = (f"{e2e.HOSTNAME.lower()}; spf=pass smtp.mailfrom=example.test; "
                f"spf=pass smtp.helo=client.test; dkim=pass header.d=example.test "
                f"header.s=rsa header.a=rsa-sha256 header.b={b_prefix(signed)}; "
                f"dmarc=pass header.from=example.test; arc=none")
    assert ours(content) == [(0, expected)], content[:1500]
    assert content.startswith(b"Authentication-Results: ")
    assert fields(content, "X-Returned") and fields(content, "X-Returned")[0][1] == expected
    others = [v for _, v in fields(content, "Authentication-Results") if v != expected]
    assert others == ["other.example.net 1; spf=fail smtp.mailfrom=example.test"]


def test_failures_and_an_unsigned_message(daemon):
    qid = send(daemon, MESSAGE.format(host="(forged) " + e2e.HOSTNAME).encode(),
               "alice@elsewhere.test")
    content, _ = daemon.message(qid)
    (index, value), = ours(content)
    assert index == 0
    head, dmarc = value.split("; dmarc=")
    assert head == (f"{e2e.HOSTNAME.lower()}; spf=none "
                    'reason="Host \'elsewhere.test\' not found." smtp.mailfrom=elsewhere.test; '
                    "spf=pass smtp.helo=client.test; dkim=none"), value
    assert re.fullmatch(r'fail reason="[^"]+" header\.from=example\.test; arc=none', dmarc), value
    assert len(fields(content, "Authentication-Results")) == 2, content[:1500]
