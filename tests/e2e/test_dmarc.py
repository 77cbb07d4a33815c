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
import os
import re
import smtplib
import subprocess

import pytest

import dnsserver
import vsmtpd_e2e as e2e

KEYS = os.path.join(e2e.SOURCE_DIR, "tests", "unit", "data", "dkim")


def key_record(name, path):
    """A dnsmasq txt-record option, the key cut into character-strings of at
    most 255 bytes."""
    with open(os.path.join(KEYS, path)) as f:
        text = f.read().strip()
    return "txt-record=" + name + "," + ",".join(text[i:i + 255] for i in range(0, len(text), 255))


RECORDS = [
    "txt-record=_dmarc.example.test,v=DMARC1; p=reject; sp=quarantine",
    "txt-record=example.test,v=spf1 ip4:127.0.0.0/8 -all",
    "txt-record=elsewhere.test,v=spf1 ip4:192.0.2.1 -all",
    key_record("rsa._domainkey.example.test", "rsa.txt"),
]

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


def message(sender_domain):
    return ("From: Alice <alice@" + sender_domain + ">\r\n"
            "To: bob@example.com\r\n"
            "Subject: DMARC end to end\r\n"
            "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            "Message-ID: <e2e@example.test>\r\n"
            "\r\n"
            "Hello Bob,\r\n"
            "checked and sent.\r\n")


def dkimsign(text):
    out = subprocess.run(["dkimsign", "rsa", "example.test", "rsa.pem"], input=text.encode(),
                         cwd=KEYS, capture_output=True, timeout=30, check=True)
    return out.stdout


def send(daemon, sender, content):
    """content from sender; (code, text) of the reply to the data."""
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as s:
        s.ehlo("client.example")
        assert s.mail(sender)[0] == 250
        assert s.rcpt("bob@example.com")[0] == 250
        try:
            code, text = s.data(content)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
    return code, text


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
    server = dnsserver.Dnsmasq(workspace.new_dir("dnsmasq-dmarc"), RECORDS)
    server.start()
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
