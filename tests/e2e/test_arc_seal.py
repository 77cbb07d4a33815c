"""ARC sealing in the rules against a real daemon: a forwarding rule at
preq seals with ctx:arc_seal() in the confined session process, the chain
before it checked over dnsmasq on loopback; the queued message, read back
from the spool, verifies in python3-dkim's arc_verify (the keys read from
the unit tests' data). One hop (a message without ARC) and two (sealed
first by python3-dkim's arcsign).
"""
import os
import re
import smtplib
import subprocess

import pytest

import dnsserver
import vsmtpd_e2e as e2e

DATA = os.path.join(e2e.SOURCE_DIR, "tests", "unit", "data")


RECORDS = [
    dnsserver.key_record("rsa._domainkey.example.test", os.path.join(DATA, "dkim", "rsa.txt")),
    dnsserver.key_record("hop2._domainkey.forwarder.test", os.path.join(DATA, "arc", "hop2.txt")),
]

SEAL_RULES = r'''
return {
  preq = {
    rule "forward and seal" (function(ctx)
      ctx:arc_seal("fwd")
      return status.next()
    end),
  },
}
'''

MESSAGE = ("Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=example.test\r\n"
           "From: Alice <alice@example.test>\r\n"
           "To: list@forwarder.test\r\n"
           "Subject: ARC end to end\r\n"
           "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
           "Message-ID: <arc-e2e@example.test>\r\n"
           "\r\n"
           "Hello list,\r\n"
           "forwarded and sealed.\r\n")


def send(daemon, content):
    """content sent with smtplib; the queue id."""
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as s:
        s.ehlo("client.example")
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.com")[0] == 250
        code, text = s.data(content)
        assert code == 250, text
    m = re.search(rb"queued as (\S+)", text)
    assert m, text
    return m.group(1).decode()


def arc_cv(content):
    """python3-dkim's arc_verify of content: its cv and reason."""
    import dkim
    cv, _, why = dkim.arc_verify(content, dnsfunc=dnsserver.key_dnsfunc({
        b"rsa._domainkey.example.test.": os.path.join(DATA, "dkim", "rsa.txt"),
        b"hop2._domainkey.forwarder.test.": os.path.join(DATA, "arc", "hop2.txt")}))
    return cv, why


@pytest.fixture(scope="module")
def sealer(module_daemons, workspace):
    with dnsserver.Dnsmasq(workspace.new_dir("dnsmasq-arc"), RECORDS) as server:
        settings = {"rules": {"dns_servers": server.address, "dns_timeout": "2s"},
                    "dkim:fwd": {"domain": "forwarder.test", "selector": "hop2",
                                 "key": os.path.join(DATA, "arc", "hop2.pem")}}
        yield module_daemons(settings, rules=SEAL_RULES, label="-arc-seal")


def test_one_hop_sealed_at_preq_verifies(sealer):
    content, _ = sealer.message(send(sealer, MESSAGE.encode()))
    assert content.startswith(b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=forwarder.test; s=hop2;")
    assert arc_cv(content) == (b"pass", "success"), content


def test_second_hop_sealed_at_preq_verifies(sealer):
    first = subprocess.run(["arcsign", "rsa", "example.test", "dkim/rsa.pem", "mx.example.test"],
                           input=MESSAGE.encode(), cwd=DATA, capture_output=True, timeout=30,
                           check=True).stdout
    assert arc_cv(first)[0] == b"pass"
    content, _ = sealer.message(send(sealer, first))
    assert content.startswith(b"ARC-Seal: i=2; cv=pass;")
    assert b"arc=pass" in content
    assert arc_cv(content) == (b"pass", "success"), content
