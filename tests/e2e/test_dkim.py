"""DKIM in the rules against a real daemon: ctx:dkim() in the confined
session process at preq, the keys served by dnsmasq on loopback.

Messages are signed by an independent signer, python3-dkim's `dkimsign`
(Debian package python3-dkim; Ed25519 through python3-nacl), and sent with
smtplib; a preq rule writes each signature's result into a header field of
the queued message, read back from the spool. A rule that signs at preq
with [dkim:NAME] keys makes messages python3-dkim's verifier accepts, and
a key file that is no key stops the daemon's configuration check. The keys
are the unit tests' (tests/unit/data/dkim).
"""
import os
import re
import smtplib
import subprocess

import pytest

import dnsserver
import vsmtpd_e2e as e2e

KEYS = os.path.join(e2e.SOURCE_DIR, "tests", "unit", "data", "dkim")


RECORDS = [
    dnsserver.key_record("rsa._domainkey.example.test", os.path.join(KEYS, "rsa.txt")),
    dnsserver.key_record("ed._domainkey.example.test", os.path.join(KEYS, "ed25519.txt")),
]

VERIFY_RULES = r'''
return {
  preq = {
    rule "dkim" (function(ctx)
      local out = {}
      for _, sig in ipairs(ctx:dkim()) do
        out[#out + 1] = sig.result .. " d=" .. sig.domain .. " s=" .. sig.selector ..
          " a=" .. sig.algorithm .. (sig.reason and (" (" .. sig.reason .. ")") or "")
      end
      ctx:append_header("X-DKIM-Test", #out > 0 and table.concat(out, "; ") or "none")
      return status.next()
    end),
  },
}
'''

MESSAGE = ("From: Alice <alice@example.test>\r\n"
           "To: bob@example.com\r\n"
           "Subject: DKIM end to end\r\n"
           "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
           "Message-ID: <e2e@example.test>\r\n"
           "\r\n"
           "Hello Bob,\r\n"
           "signed and sent.\r\n")


def dkimsign(message, *args):
    """message signed by dkimsign with args, as bytes."""
    out = subprocess.run(["dkimsign", *args], input=message.encode(), cwd=KEYS,
                         capture_output=True, timeout=30, check=True)
    return out.stdout


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


def header(content, name):
    """The unfolded value of the first field called name in content (bytes)."""
    m = re.search(rb"(?im)^" + name.encode() + rb":[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", content)
    assert m, content[:400]
    return re.sub(rb"\r\n[ \t]+", b" ", m.group(1)).decode()


@pytest.fixture(scope="module")
def dns(workspace):
    with dnsserver.Dnsmasq(workspace.new_dir("dnsmasq-dkim"), RECORDS) as server:
        yield server


@pytest.fixture(scope="module")
def silent():
    with dnsserver.SilentUDP() as s:
        yield s


@pytest.fixture(scope="module")
def verifier(module_daemons, dns):
    return module_daemons({"rules": {"dns_servers": dns.address, "dns_timeout": "2s"}},
                          rules=VERIFY_RULES, label="-dkim")


def result_of(daemon, content):
    qid = send(daemon, content)
    got, _ = daemon.message(qid)
    return header(got, "X-DKIM-Test")


def test_rsa_and_ed25519_signatures_pass(verifier):
    rsa = dkimsign(MESSAGE, "--hcanon", "relaxed", "--bcanon", "relaxed",
                   "rsa", "example.test", "rsa.pem")
    assert result_of(verifier, rsa) == "pass d=example.test s=rsa a=rsa-sha256"
    ed = dkimsign(MESSAGE, "--signalg", "ed25519-sha256", "ed", "example.test", "ed25519.seed")
    assert result_of(verifier, ed) == "pass d=example.test s=ed a=ed25519-sha256"
    simple = dkimsign(MESSAGE, "--hcanon", "simple", "--bcanon", "simple",
                      "rsa", "example.test", "rsa.pem")
    assert result_of(verifier, simple) == "pass d=example.test s=rsa a=rsa-sha256"


def test_tampered_and_unsigned(verifier):
    signed = dkimsign(MESSAGE, "rsa", "example.test", "rsa.pem")
    tampered = signed.replace(b"signed and sent.", b"signed and changed.")
    assert result_of(verifier, tampered) == \
        "fail d=example.test s=rsa a=rsa-sha256 (body hash did not verify)"
    assert result_of(verifier, MESSAGE.encode()) == "none"
    nokey = dkimsign(MESSAGE, "nokey", "example.test", "rsa.pem")
    assert result_of(verifier, nokey) == "permerror d=example.test s=nokey a=rsa-sha256 (no key)"


def test_dns_timeout_is_a_temperror(module_daemons, silent):
    d = module_daemons({"rules": {"dns_servers": silent.address, "dns_timeout": "1s"}},
                       rules=VERIFY_RULES, label="-dkim-silent")
    signed = dkimsign(MESSAGE, "rsa", "example.test", "rsa.pem")
    assert result_of(d, signed) == \
        "temperror d=example.test s=rsa a=rsa-sha256 (key lookup timed out)"


SIGN_RULES = r'''
return {
  preq = {
    rule "sign" (function(ctx)
      ctx:dkim_sign(ctx:get_header("X-Key"))
      ctx:append_header("X-After", "added after the signature")
      return status.next()
    end),
  },
}
'''


def dkim_settings(name, selector, key):
    return {f"dkim:{name}": {"domain": "example.test", "selector": selector,
                             "key": os.path.join(KEYS, key)}}


def python_verifies(content):
    """python3-dkim's verifier, the keys read from the test data."""
    import dkim
    return dkim.verify(content, dnsfunc=dnsserver.key_dnsfunc({
        b"rsa._domainkey.example.test.": os.path.join(KEYS, "rsa.txt"),
        b"ed._domainkey.example.test.": os.path.join(KEYS, "ed25519.txt")}))


def test_signed_in_the_session_verifies(module_daemons):
    settings = dkim_settings("rsa", "rsa", "rsa.pem")
    settings.update(dkim_settings("ed", "ed", "ed25519.pem"))
    d = module_daemons(settings, rules=SIGN_RULES, label="-dkim-sign")
    for key in ("rsa", "ed"):
        qid = send(d, ("X-Key: " + key + "\r\n" + MESSAGE).encode())
        content, _ = d.message(qid)
        # on top of the message, above the server's own Received:
        assert content.startswith(b"DKIM-Signature: v=1; a=")
        assert b"\r\nX-After: added after the signature\r\n" in content
        assert python_verifies(content), content


def test_bad_key_is_refused_at_start(module_daemons):
    d = module_daemons(dkim_settings("bad", "rsa", "rsa.txt"), rules=SIGN_RULES,
                       label="-dkim-badkey", start=False)
    out = subprocess.run([d.binary, "-t", "-c", d.conf_path], capture_output=True, timeout=30)
    assert out.returncode != 0
    assert b"rsa.txt: not a PEM private key" in out.stderr + out.stdout
