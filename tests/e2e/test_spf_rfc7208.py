"""The RFC 7208 test suite (the open-spf.org suite, release 2014.04, as
Debian's golang-blitiri-go-spf-dev ships it) run through ctx:spf(): each
scenario's DNS data becomes a zone file, each case one `vsmtpctl rules run`
with the case's client address, HELO name and sender, and the rule answers
with the result and the explanation, which are compared with the suite's.

The suite's drivers copy a name's SPF (type 99) records to TXT when it has
no TXT record and no "TXT: NONE" (its own convention; vsmtpd asks for TXT
only), and a TIMEOUT makes every question about the name time out unless
it has TXT records; CNAMELOOP is a CNAME to the name itself.

Every case passes except the ones in KNOWN, each with its cause: libspf2's
own limits (docs/rules.md lists them) and senders or HELO names the SMTP
parser refuses before any rule runs. A case of KNOWN that starts to pass
fails the test, so that the list and the documentation are updated.
"""
import os
import re
import subprocess

import yaml

import vsmtpd_e2e as e2e

SUITE = "/usr/share/gocode/src/blitiri.com.ar/go/spf/testdata/rfc7208-tests.yml"

RULES = r'''
return {
  mail = {
    rule "spf" (function(ctx)
      local r = ctx:spf()
      local e = (r.explanation or ""):gsub("[^%w%p ]", "?"):sub(1, 300)
      return status.reject(code(550, "5.7.1", "spf=" .. r.result .. " exp=" .. e))
    end),
  },
}
'''

CONF = """[server]
hostname = mx.example.com
[listener:smtp]
address = 127.0.0.1:2525
[rules]
dns_servers = 127.0.0.1:9
dns_timeout = 1s
"""

REFUSED_BY_SMTP = "the SMTP parser refuses the sender or HELO name: no rule runs"
CIDR_ZERO = "libspf2 refuses a CIDR length of 0 (/0)"
KNOWN = {
    "toolonglabel": REFUSED_BY_SMTP,
    "emptylabel": REFUSED_BY_SMTP,
    "nolocalpart": REFUSED_BY_SMTP,
    "dorky-sentinel": REFUSED_BY_SMTP,
    "invalid-domain-long-via-macro": REFUSED_BY_SMTP,
    "invalid-hello-macro": REFUSED_BY_SMTP,
    "modifier-charset-good": "libspf2 refuses '.' and '_' in a modifier's name",
    "redirect-after-mechanisms1": "libspf2 follows redirect= where it stands",
    "redirect-after-mechanisms2": "libspf2 refuses '.' and '_' in a modifier's name",
    "a-nxdomain": CIDR_ZERO,
    "mx-nxdomain": CIDR_ZERO,
    "a-cidr4-0": CIDR_ZERO,
    "a-cidr4-0-ip6": CIDR_ZERO,
    "a-cidr6-0-ip4": CIDR_ZERO,
    "a-cidr6-0-ip4mapped": CIDR_ZERO,
    "a-cidr6-0-ip6": CIDR_ZERO,
    "a-cidr6-0-nxdomain": CIDR_ZERO,
    "mx-cidr4-0": CIDR_ZERO,
    "mx-cidr4-0-ip6": CIDR_ZERO,
    "mx-cidr6-0-ip4": CIDR_ZERO,
    "mx-cidr6-0-ip4mapped": CIDR_ZERO,
    "mx-cidr6-0-ip6": CIDR_ZERO,
    "mx-cidr6-0-nxdomain": CIDR_ZERO,
    "cidr4-0": CIDR_ZERO,
    "cidr6-0-ip4": CIDR_ZERO,
    "cidr6-ip4": CIDR_ZERO,
    "cidr6-0": CIDR_ZERO,
}
# Cases whose result is right but whose explanation is not the suite's.
KNOWN_EXPLANATION = {
    "domain-name-truncation": "libspf2 does not shorten a macro expansion past 253 bytes",
    "v-macro-ip6": "libspf2 writes %{v} and %{i} of IPv6 in lower case",
    "upper-macro": "libspf2 writes the %-escapes of upper-case macros in lower case",
}


def escape_name(name):
    """A name for the zone file: \\DDD for what a word cannot hold."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in '\\#"' else "\\%03d" % ord(c)
                   for c in name)


def quote(text):
    """A TXT value: quoted strings of at most 255 bytes, escaped."""
    data = text.encode("utf-8", "surrogateescape")
    out = []
    for i in range(0, max(len(data), 1), 255):
        chunk = data[i:i + 255]
        out.append('"' + "".join(chr(b) if 32 <= b <= 126 and b not in b'\\"' else "\\%03d" % b
                                 for b in chunk) + '"')
    return " ".join(out)


def zone_lines(zonedata):
    """The suite's zonedata as zone file lines."""
    lines = []
    for name, records in zonedata.items():
        owner = escape_name(name)
        txt_none = any(isinstance(r, dict) and r.get("TXT") == "NONE" for r in records)
        timeout = any(r == "TIMEOUT" or (isinstance(r, dict) and "TIMEOUT" in r)
                      for r in records)
        records = [r for r in records if isinstance(r, dict) and "TIMEOUT" not in r
                   and list(r.values()) != ["NONE"]]
        has_txt = any("TXT" in r for r in records)
        if timeout and not has_txt:
            lines.append("%s TIMEOUT" % owner)
            continue
        for record in records:
            (kind, value), = record.items()
            if kind == "SPF":
                if has_txt or txt_none:
                    continue
                kind = "TXT"
            if kind == "TXT":
                values = value if isinstance(value, list) else [value]
                lines.append("%s TXT %s" % (owner, " ".join(quote(v) for v in values)
                                            or quote("")))
            elif kind == "MX":
                lines.append("%s MX %d %s" % (owner, value[0], escape_name(value[1]) or "."))
            elif kind in ("A", "AAAA"):
                for v in value if isinstance(value, list) else [value]:
                    lines.append("%s %s %s" % (owner, kind, v))
            elif kind in ("PTR", "CNAME"):
                lines.append("%s %s %s" % (owner, kind, escape_name(value)))
            elif kind == "CNAMELOOP":  # a CNAME to itself
                lines.append("%s CNAME %s" % (owner, owner))
            else:
                raise AssertionError("a record type the driver does not know: %r" % kind)
    return lines


def scenarios():
    assert os.path.exists(SUITE), \
        "%s is missing: scripts/setup.sh installs golang-blitiri-go-spf-dev" % SUITE
    with open(SUITE, "rb") as f:
        return list(yaml.safe_load_all(f.read().decode("utf-8", "surrogateescape")))


def test_rfc7208_suite(tmp_path):
    (tmp_path / "spf.lua").write_text(RULES)
    (tmp_path / "vsmtpd.conf").write_text(CONF)
    ctl = e2e.vsmtpctl_binary()
    failures, passed, total = [], 0, 0
    for number, scenario in enumerate(scenarios()):
        zone = tmp_path / ("s%d.zone" % number)
        zone.write_text("\n".join(zone_lines(scenario.get("zonedata", {}))) + "\n",
                        encoding="utf-8", errors="surrogateescape")
        for name, case in scenario["tests"].items():
            total += 1
            expected = case["result"] if isinstance(case["result"], list) else [case["result"]]
            r = subprocess.run(
                [ctl, "-c", str(tmp_path / "vsmtpd.conf"), "rules", "run", "spf.lua",
                 "--dns-zone", str(zone), "--ip", case["host"], "--helo", case["helo"],
                 "--from", case["mailfrom"], "--rcpt", "bob@example.com"],
                cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            out = r.stdout.decode("utf-8")  # every line vsmtpd writes is UTF-8
            m = re.search(r"spf=(\w+) exp=(.*?)\s*\(rule", out)
            got = m.group(1) if m else None
            ok = got in expected
            want_exp = case.get("explanation")
            if ok and want_exp not in (None, "DEFAULT") and got == "fail":
                ok = m.group(2) == want_exp
                if name in KNOWN_EXPLANATION:
                    assert not ok, ("%s now gives the suite's explanation: update "
                                    "KNOWN_EXPLANATION and docs/rules.md" % name)
                    continue
            if name in KNOWN:
                assert not ok, "%s (%s) now passes: update KNOWN and docs/rules.md" % (
                    name, KNOWN[name])
                if KNOWN[name] == REFUSED_BY_SMTP:
                    assert re.search(r"^(mail|helo) +next +501 ", out, re.M), out
                continue
            if ok:
                passed += 1
            else:
                failures.append("%s (%s): expected %s, got %s\n%s" % (
                    name, case.get("spec"), expected, got, out))
    assert not failures, "\n".join(failures)
    assert total == 203 and passed == total - len(KNOWN) - len(KNOWN_EXPLANATION), (total, passed)
