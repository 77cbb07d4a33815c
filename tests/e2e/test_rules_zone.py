"""Rules tested offline with a DNS zone file: `vsmtpctl rules run
--dns-zone FILE` and `dns_zone = "FILE"` in a `rules test` file answer
dns.lookup, ctx:spf() and ctx:dkim() from the file, with no DNS server
anywhere: the configuration vsmtpctl reads names a loopback port nothing
answers on, so a lookup the zone did not answer would fail. A message
signed by an independent signer (python3-dkim's dkimsign) is verified with
the key written in the zone, and a zone that does not parse stops the run
with the file and line.
"""
import os
import re
import subprocess
import time

import vsmtpd_e2e as e2e

KEYS = os.path.join(e2e.SOURCE_DIR, "tests", "unit", "data", "dkim")

CTL_CONF = """[server]
hostname = mx.example.com
[listener:smtp]
address = 127.0.0.1:2525
[rules]
local_domains = example.com
dns_servers = 127.0.0.1:9
dns_timeout = 1s
"""

RULES = r'''
return {
  mail = {
    rule "spf" (function(ctx)
      local r = ctx:spf()
      local mx, why = dns.lookup(ctx.mail_from.domain, "MX")
      log("info", "spf " .. r.result .. ", mx " .. (mx and (mx[1] and mx[1].exchange or "none") or why))
      if r.result == "fail" then return status.reject(code(550, "5.7.23", "SPF fail")) end
      if r.result == "temperror" then return status.reject(code(451, "4.4.3", "SPF later")) end
      return status.next()
    end),
  },
  preq = {
    rule "dkim" (function(ctx)
      for _, sig in ipairs(ctx:dkim()) do
        log("info", "dkim " .. sig.result .. " d=" .. sig.domain .. (sig.reason and (" " .. sig.reason) or ""))
        if sig.result ~= "pass" then
          return status.deny(code(550, "5.7.20", "DKIM " .. sig.result))
        end
      end
      return status.next()
    end),
  },
}
'''

MESSAGE = ("From: Alice <alice@example.test>\r\n"
           "To: bob@example.com\r\n"
           "Subject: offline\r\n"
           "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
           "Message-ID: <zone@example.test>\r\n"
           "\r\n"
           "Hello Bob.\r\n")


def vsmtpctl_binary():
    return os.path.join(os.path.dirname(e2e.vsmtpd_binary()), "vsmtpctl")


def key_record():
    """The zone line of the RSA key, cut into strings of at most 255 bytes."""
    with open(os.path.join(KEYS, "rsa.txt")) as f:
        text = f.read().strip()
    parts = " ".join(f'"{text[i:i + 255]}"' for i in range(0, len(text), 255))
    return f"rsa._domainkey.example.test  TXT  {parts}\n"


def setup_dir(path):
    """The rules, the zone and the configuration in path."""
    (path / "vsmtpd.conf").write_text(CTL_CONF)
    (path / "main.lua").write_text(RULES)
    (path / "test.zone").write_text(
        "# the example's DNS\n"
        'example.test   TXT  "v=spf1 ip4:192.0.2.0/24 -all"\n'
        "example.test   MX   10 mail.example.test\n"
        "slow.example   TIMEOUT\n" + key_record())


def ctl(path, *args, cwd=None):
    return subprocess.run([vsmtpctl_binary(), "-c", str(path / "vsmtpd.conf"), *args],
                          capture_output=True, text=True, timeout=30, cwd=cwd)


def signed_message(path):
    """MESSAGE signed by dkimsign with the RSA key; its file."""
    out = subprocess.run(["dkimsign", "rsa", "example.test", "rsa.pem"], input=MESSAGE.encode(),
                         cwd=KEYS, capture_output=True, timeout=30, check=True)
    (path / "signed.eml").write_bytes(out.stdout)
    return str(path / "signed.eml")


def test_rules_run_with_a_zone(tmp_path):
    setup_dir(tmp_path)
    eml = signed_message(tmp_path)
    r = ctl(tmp_path, "rules", "run", "main.lua", "--dns-zone", "test.zone", "--ip", "192.0.2.7",
            "--from", "alice@example.test", "--rcpt", "bob@example.com", eml, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "spf pass, mx mail.example.test" in r.stderr
    assert "dkim pass d=example.test" in r.stderr
    assert re.search(r"^preq +next +250 ", r.stdout, re.M), r.stdout
    assert r.stdout.endswith("result: queued\n"), r.stdout

    # A tampered body fails, offline too.
    with open(eml, "rb") as f:
        tampered = f.read().replace(b"Hello Bob.", b"Hello Eve.")
    (tmp_path / "tampered.eml").write_bytes(tampered)
    r = ctl(tmp_path, "rules", "run", "main.lua", "--dns-zone", "test.zone", "--ip", "192.0.2.7",
            "--from", "alice@example.test", "--rcpt", "bob@example.com", "tampered.eml",
            cwd=str(tmp_path))
    assert r.returncode == 1 and "dkim fail d=example.test body hash did not verify" in r.stderr
    assert r.stdout.endswith("result: refused\n"), r.stdout

    # SPF fail, and a timeout: temperror, from the zone alone.
    r = ctl(tmp_path, "rules", "run", "main.lua", "--dns-zone", "test.zone", "--ip",
            "203.0.113.5", "--from", "alice@example.test", "--rcpt", "bob@example.com",
            cwd=str(tmp_path))
    assert "550 5.7.23 SPF fail" in r.stdout and r.returncode == 1, r.stdout
    r = ctl(tmp_path, "rules", "run", "main.lua", "--dns-zone", "test.zone", "--from",
            "alice@slow.example", "--rcpt", "bob@example.com", cwd=str(tmp_path))
    assert "spf temperror, mx timeout" in r.stderr, r.stderr
    assert "451 4.4.3 SPF later" in r.stdout and r.returncode == 1, r.stdout


def test_without_a_zone_the_servers_are_asked(tmp_path):
    """No zone: the configured server (nothing there) is asked and fails."""
    setup_dir(tmp_path)
    r = ctl(tmp_path, "rules", "run", "main.lua", "--ip", "192.0.2.7", "--from",
            "alice@example.test", "--rcpt", "bob@example.com", cwd=str(tmp_path))
    assert "spf temperror" in r.stderr and "451 4.4.3 SPF later" in r.stdout, r.stdout + r.stderr


def test_rules_test_names_its_zone(tmp_path):
    """dns_zone is relative to the test file, whatever the current folder."""
    setup_dir(tmp_path)
    eml = signed_message(tmp_path)
    with open(eml, newline="") as f:
        signed = f.read()  # CRLF kept: the signature covers it
    (tmp_path / "main.test.lua").write_text(f'''
return {{
  rules = "main.lua",
  dns_zone = "test.zone",
  {{ name = "pass", ip = "192.0.2.7", from = "alice@example.test", rcpt = "bob@example.com",
    message = {signed!r}, expect = "queued", stages = {{ preq = "next" }} }},
  {{ name = "tampered", ip = "192.0.2.7", from = "alice@example.test", rcpt = "bob@example.com",
    message = {signed.replace("Hello Bob.", "Hello Eve.")!r}, expect = "refused",
    reply = "550 5.7.20 DKIM fail" }},
  {{ name = "spf fail", ip = "203.0.113.5", from = "alice@example.test",
    rcpt = "bob@example.com", expect = "refused", reply = "550 5.7.23" }},
  {{ name = "no answer", from = "alice@slow.example", rcpt = "bob@example.com",
    expect = "deferred", reply = "451 4.4.3" }},
}}
''')
    r = ctl(tmp_path, "rules", "test", str(tmp_path / "main.test.lua"), cwd="/")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.findall(r"^ok \d+ - (.*)$", r.stdout, re.M) == \
        ["pass", "tampered", "spf fail", "no answer"], r.stdout


def test_results_in_rules_run_and_rules_test(tmp_path):
    """rules run lists the authentication results before the outcome; a
    test case checks them with results = { ... } and says what differs."""
    setup_dir(tmp_path)
    eml = signed_message(tmp_path)
    r = ctl(tmp_path, "rules", "run", "main.lua", "--dns-zone", "test.zone", "--ip", "192.0.2.7",
            "--from", "alice@example.test", "--rcpt", "bob@example.com", eml, cwd=str(tmp_path))
    assert re.search(r"^authentication: spf=pass smtp.mailfrom=example.test; "
                     r"dkim=pass header.d=example.test ", r.stdout, re.M), r.stdout
    assert r.stdout.endswith("result: queued\n"), r.stdout
    # Refused at MAIL: the SPF result is still shown.
    r = ctl(tmp_path, "rules", "run", "main.lua", "--dns-zone", "test.zone", "--ip",
            "203.0.113.5", "--from", "alice@example.test", "--rcpt", "bob@example.com",
            cwd=str(tmp_path))
    assert "\nauthentication: spf=fail smtp.mailfrom=example.test\nresult: refused\n" in r.stdout
    with open(eml, newline="") as f:
        signed = f.read()
    (tmp_path / "results.test.lua").write_text(f'''
return {{
  rules = "main.lua",
  dns_zone = "test.zone",
  {{ name = "signed", ip = "192.0.2.7", from = "alice@example.test", rcpt = "bob@example.com",
    message = {signed!r}, expect = "queued", results = {{ spf = "pass", dkim = "pass" }} }},
  {{ name = "forged", ip = "203.0.113.5", from = "alice@example.test", rcpt = "bob@example.com",
    expect = "refused", results = {{ spf = "fail" }} }},
  {{ name = "wrong", ip = "203.0.113.5", from = "alice@example.test", rcpt = "bob@example.com",
    expect = "refused", results = {{ spf = "pass" }} }},
  {{ name = "unchecked", ip = "203.0.113.5", from = "alice@example.test", rcpt = "bob@example.com",
    expect = "refused", results = {{ dkim = "pass" }} }},
  {{ name = "typo", ip = "192.0.2.7", from = "alice@example.test", rcpt = "bob@example.com",
    expect = "queued", results = {{ sfp = "pass" }} }},
}}
''')
    r = ctl(tmp_path, "rules", "test", "results.test.lua", cwd=str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = re.findall(r"^(?:not )?ok \d+ - .*$", r.stdout, re.M)
    assert lines == [
        "ok 1 - signed",
        "ok 2 - forged",
        "not ok 3 - wrong: results: spf expected pass, got fail",
        "not ok 4 - unchecked: results: dkim expected pass, got (not checked)",
        "not ok 5 - typo: results: keys are spf, spf_helo, dkim, dmarc and arc, each a result "
        "such as \"pass\"",
    ], r.stdout


def test_records_of_one_empty_string(tmp_path):
    """A TXT record made of one empty string (legal, if useless) as a
    domain's SPF and DMARC record: both checks answer at once ("none"), as
    if there were no record, and nothing loops."""
    setup_dir(tmp_path)
    (tmp_path / "empty.zone").write_text(
        'empty.example TXT ""\n'
        '_dmarc.empty.example TXT ""\n'
        'odd.example TXT "" "v=spf1 " "-all"\n')
    (tmp_path / "empty.lua").write_text(r'''
return {
  preq = {
    action "checks" (function(ctx)
      log("info", "spf " .. ctx:spf().result .. ", dmarc " .. ctx:dmarc().result)
    end),
  },
}
''')
    message = "From: a@empty.example\r\nTo: bob@example.com\r\nSubject: x\r\n\r\nHi\r\n"
    (tmp_path / "m.eml").write_text(message)
    started = time.monotonic()
    r = ctl(tmp_path, "rules", "run", "empty.lua", "--dns-zone", "empty.zone", "--ip",
            "192.0.2.7", "--from", "a@empty.example", "--rcpt", "bob@example.com", "m.eml",
            cwd=str(tmp_path))
    assert time.monotonic() - started < 5
    assert r.returncode == 0 and "spf none, dmarc none" in r.stderr, r.stdout + r.stderr
    # Strings are joined whatever their lengths: "" "v=spf1 " "-all" is v=spf1 -all.
    r = ctl(tmp_path, "rules", "run", "empty.lua", "--dns-zone", "empty.zone", "--ip",
            "192.0.2.7", "--from", "a@odd.example", "--rcpt", "bob@example.com", "m.eml",
            cwd=str(tmp_path))
    assert "spf fail" in r.stderr, r.stdout + r.stderr


def test_dmarc_record_with_a_bad_policy(tmp_path):
    """RFC 7489 6.6.3: a bad p= with a rua= counts as p=none; without a
    rua= the record cannot be used (permerror)."""
    setup_dir(tmp_path)
    (tmp_path / "dmarc.zone").write_text(
        '_dmarc.reports.example TXT "v=DMARC1; p=bogus; rua=mailto:dmarc@reports.example"\n'
        '_dmarc.silent.example TXT "v=DMARC1; p=bogus"\n'
        '_dmarc.badsp.example TXT "v=DMARC1; p=reject; sp=maybe; rua=mailto:d@badsp.example"\n')
    (tmp_path / "dmarc.lua").write_text(r'''
return {
  preq = {
    action "dmarc" (function(ctx)
      local r = ctx:dmarc()
      log("info", "dmarc " .. r.result .. " policy " .. tostring(r.policy))
    end),
  },
}
''')
    for domain, want in (("reports.example", "dmarc fail policy none"),
                         ("silent.example", "dmarc permerror policy nil"),
                         ("badsp.example", "dmarc fail policy none")):
        (tmp_path / "m.eml").write_text(
            "From: a@%s\r\nTo: bob@example.com\r\nSubject: x\r\n\r\nHi\r\n" % domain)
        r = ctl(tmp_path, "rules", "run", "dmarc.lua", "--dns-zone", "dmarc.zone", "--ip",
                "192.0.2.7", "--from", "a@" + domain, "--rcpt", "bob@example.com", "m.eml",
                cwd=str(tmp_path))
        assert want in r.stderr, (domain, r.stdout + r.stderr)


def test_a_bad_zone_stops_the_run(tmp_path):
    setup_dir(tmp_path)
    (tmp_path / "bad.zone").write_text("example.test TXT \"v=spf1 -all\"\nexample.test MX ten x\n")
    r = ctl(tmp_path, "rules", "run", "main.lua", "--dns-zone", "bad.zone", "--rcpt",
            "bob@example.com", cwd=str(tmp_path))
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert r.stderr == ('vsmtpctl: bad.zone:2: MX preference: not a number from 0 to 65535: '
                        '"ten"\n'), r.stderr
    (tmp_path / "main.test.lua").write_text(
        'return { rules = "main.lua", dns_zone = "missing.zone",\n'
        '  { rcpt = "bob@example.com", expect = "queued" } }\n')
    r = ctl(tmp_path, "rules", "test", "main.test.lua", cwd=str(tmp_path))
    assert r.returncode == 2
    assert r.stderr == ("vsmtpctl: cannot open the DNS zone missing.zone: No such file or "
                        "directory\n"), r.stderr
    (tmp_path / "main.test.lua").write_text(
        'return { rules = "main.lua", dns_zone = 42,\n'
        '  { rcpt = "bob@example.com", expect = "queued" } }\n')
    r = ctl(tmp_path, "rules", "test", "main.test.lua", cwd=str(tmp_path))
    assert r.returncode == 2
    assert r.stderr == "vsmtpctl: main.test.lua: dns_zone must be the name of a zone file\n"
