"""DMARC aggregate reports end to end: the real daemon, whose preq rules call
ctx:dmarc() against dnsmasq's records (dmarc_setup.py), records one line per
message in <spool>/dmarc/YYYY-MM-DD.jsonl (queued, quarantined and refused
messages alike, and nothing for a message whose rules did not ask), and
`vsmtpctl dmarc report` makes the RFC 7489 appendix C XML of them, read
back here with xml.etree.
"""
import datetime
import glob
import json
import os
import xml.etree.ElementTree as ET

import pytest

from dmarc_setup import dkimsign, dns_server, message, send

RULES = r'''
return {
  preq = {
    rule "dmarc" (function(ctx)
      if tostring(ctx.mail_from) == "skip@example.test" then return status.next() end
      local d = ctx:dmarc()
      if d.disposition == "reject" then
        return status.deny(code(550, "5.7.1", "rejected by the DMARC policy of " ..
                                d.policy_domain))
      elseif d.disposition == "quarantine" then
        return status.quarantine("dmarc")
      end
      return status.next()
    end),
  },
}
'''


@pytest.fixture(scope="module")
def dns(workspace):
    server = dns_server(workspace, "dmarc-report")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def daemon(module_daemons, dns):
    d = module_daemons({"rules": {"dns_servers": dns.address, "dns_timeout": "2s"}},
                       rules=RULES, label="-dmarc-report")
    # two aligned by SPF, one by DKIM, one refused (p=reject), one
    # quarantined (sp=quarantine of a subdomain), one the rules did not check
    for sender, content, want in [
            ("a@example.test", message("example.test"), 250),
            ("b@example.test", message("example.test"), 250),
            ("a@elsewhere.test", dkimsign(message("example.test")), 250),
            ("a@elsewhere.test", message("example.test"), 550),
            ("a@elsewhere.test", message("news.example.test"), 250),
            ("skip@example.test", message("example.test"), 250)]:
        code, text = send(d, sender, content)
        assert code == want, text
    yield d
    assert "SIGSYS" not in d.log()


def records(daemon):
    lines = []
    for path in sorted(glob.glob(os.path.join(daemon.spool, "dmarc", "*.jsonl"))):
        with open(path) as f:
            lines += [json.loads(line) for line in f]
    return lines


def test_one_line_per_checked_message(daemon):
    recs = records(daemon)
    assert sorted(r["action"] for r in recs) == \
        ["quarantined", "queued", "queued", "queued", "rejected"]
    for r in recs:
        assert r["source_ip"] == "127.0.0.1"
        assert (r["policy_domain"], r["p"], r["sp"], r["pct"], r["adkim"], r["aspf"]) == \
            ("example.test", "reject", "quarantine", 100, "r", "r")
        assert len(r["id"]) == 16 and isinstance(r["time"], int)
    assert not [r for r in recs if r["envelope_from"] == "example.test"
                and r["spf"]["result"] != "pass"]
    signed = [r for r in recs if r["dkim"]]
    assert len(signed) == 1
    assert signed[0]["dkim"] == [{"domain": "example.test", "selector": "rsa", "result": "pass"}]
    assert (signed[0]["result"], signed[0]["dkim_aligned"], signed[0]["spf_aligned"]) == \
        ("pass", True, False)
    refused = [r for r in recs if r["action"] == "rejected"][0]
    assert (refused["result"], refused["disposition"], refused["header_from"]) == \
        ("fail", "reject", "example.test")
    assert refused["spf"] == {"domain": "elsewhere.test", "scope": "mfrom", "result": "fail"}
    quarantined = [r for r in recs if r["action"] == "quarantined"][0]
    assert (quarantined["header_from"], quarantined["disposition"]) == \
        ("news.example.test", "quarantine")


def report(daemon, *args):
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    return daemon.vsmtpctl("dmarc", "report", "--from", today, "--org-name", "Example & Co",
                           "--email", "dmarc@reporter.test", *args)


def rows(root):
    got = []
    for rec in root.findall("record"):
        row = rec.find("row")
        pe = row.find("policy_evaluated")
        got.append((row.findtext("source_ip"), int(row.findtext("count")),
                    pe.findtext("disposition"), pe.findtext("dkim"), pe.findtext("spf"),
                    rec.find("identifiers").findtext("header_from"),
                    rec.find("identifiers").findtext("envelope_from"),
                    [d.findtext("result") for d in rec.find("auth_results").findall("dkim")],
                    rec.find("auth_results").find("spf").findtext("result")))
    return sorted(got)


def test_report_xml(daemon):
    out = report(daemon)
    assert out.returncode == 0, out.stderr
    root = ET.fromstring(out.stdout)
    assert root.tag == "feedback"
    meta = root.find("report_metadata")
    assert meta.findtext("org_name") == "Example & Co"
    assert meta.findtext("email") == "dmarc@reporter.test"
    begin, end = int(meta.find("date_range").findtext("begin")), \
        int(meta.find("date_range").findtext("end"))
    assert end - begin == 86399 and begin % 86400 == 0
    pol = root.find("policy_published")
    assert [(e.tag, e.text) for e in pol] == [
        ("domain", "example.test"), ("adkim", "r"), ("aspf", "r"), ("p", "reject"),
        ("sp", "quarantine"), ("pct", "100")]
    assert rows(root) == sorted([
        ("127.0.0.1", 2, "none", "fail", "pass", "example.test", "example.test", [], "pass"),
        ("127.0.0.1", 1, "none", "pass", "fail", "example.test", "elsewhere.test", ["pass"],
         "fail"),
        ("127.0.0.1", 1, "reject", "fail", "fail", "example.test", "elsewhere.test", [],
         "fail"),
        ("127.0.0.1", 1, "quarantine", "fail", "fail", "news.example.test", "elsewhere.test",
         [], "fail"),
    ])


def test_report_files(daemon, workspace):
    out_dir = workspace.new_dir("dmarc-reports")
    out = report(daemon, "--output", out_dir)
    assert out.returncode == 0, out.stderr
    paths = out.stdout.decode().split()
    assert len(paths) == 1
    assert os.path.basename(paths[0]).startswith("reporter.test!example.test!")
    with open(paths[0], "rb") as f:
        assert ET.fromstring(f.read()).find("policy_published").findtext("domain") == \
            "example.test"
    # another policy domain has nothing to report
    out = report(daemon, "--domain", "other.test")
    assert (out.returncode, out.stdout) == (0, b"")


def test_report_bad_dates(daemon):
    out = daemon.vsmtpctl("dmarc", "report", "--from", "2024-13-01", "--org-name", "x",
                          "--email", "a@b.test")
    assert out.returncode == 2
    assert b"YYYY-MM-DD" in out.stderr
