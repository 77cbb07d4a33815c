"""The rules examples in rules/examples/: each one loads and passes its own
test cases, and the representative ones behave in the real daemon as their
comments say: relay control, header tagging and quarantine, aliases, header
and envelope edits with copies on disk, an added header, list files, local
accounts, SPF. Last, the rule engine's known problems, as expected failures.

The examples' test cases that need DNS answers name a zone file
(dns_zone), so vsmtpctl asks no server; the vsmtpd.conf it reads names a
loopback port nothing answers on, so a lookup no zone answers fails rather
than reach the machine's resolvers. The daemon running spf-reject-fail
asks a dnsmasq on loopback serving DNS_RECORDS."""
import json
import os
import re
import subprocess

import pytest

import dnsserver
import services
import vsmtpd_e2e as e2e

EXAMPLES_DIR = os.path.join(e2e.SOURCE_DIR, "rules", "examples")
EXAMPLES = sorted(name for name in os.listdir(EXAMPLES_DIR)
                  if os.path.isdir(os.path.join(EXAMPLES_DIR, name)))

# What vsmtpctl reads when no -c is given would depend on the machine.
DATA = os.path.join(e2e.SOURCE_DIR, "tests", "unit", "data")
CTL_CONF = """[server]
hostname = mx.example.com
[listener:smtp]
address = 127.0.0.1:2525
[listener:filtered]
address = 127.0.0.1:10026
kind = delegation
[service:clamsmtpd]
kind = delegate
address = 127.0.0.1:10025
[dkim:example_com]
domain = example.com
selector = rsa
key = %(data)s/dkim/rsa.pem
[dkim:forwarder]
domain = lists.example.com
selector = hop2
key = %(data)s/arc/hop2.pem
[rules]
local_domains = example.com
trusted_networks = 192.0.2.0/24
dns_servers = 127.0.0.1:9
dns_timeout = 1s
""" % {"data": DATA}


def vsmtpctl_binary():
    """vsmtpctl, built beside the daemon under test."""
    return os.path.join(os.path.dirname(e2e.vsmtpd_binary()), "vsmtpctl")


# What the daemon running spf-reject-fail asks: a fail, and a pass for its
# client (127.0.0.1); other names are refused (DNS cannot say).
DNS_RECORDS = [
    "txt-record=spf-fail.example,v=spf1 ip4:198.51.100.0/24 -all",
    "txt-record=spf-pass.example,v=spf1 ip4:127.0.0.1 -all",
]
DNS_LOCAL = ("spf-fail.example", "spf-pass.example", "in-addr.arpa", "ip6.arpa")


@pytest.fixture(scope="module")
def dns(workspace):
    with dnsserver.Dnsmasq(workspace.new_dir("dnsmasq-examples"), DNS_RECORDS,
                           local=DNS_LOCAL) as server:
        yield server


def dns_settings(dns):
    return {"dns_servers": dns.address, "dns_timeout": "2s"}


@pytest.fixture(scope="module")
def clamd(workspace):
    """clamd for clamav-quarantine, with the EICAR signature only."""
    c = services.Clamd(workspace.new_dir("clamd-examples")).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def ctl_conf(tmp_path_factory, clamd):
    path = tmp_path_factory.mktemp("ctl") / "vsmtpd.conf"
    path.write_text(CTL_CONF + f"[service:clamav]\nkind = clamd\naddress = 127.0.0.1:{clamd.port}\n")
    return str(path)


def ctl(conf, *args, cwd=None):
    """Run vsmtpctl -c conf args...; the CompletedProcess."""
    return subprocess.run([vsmtpctl_binary(), "-c", conf, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=30)


def example_file(name, path="main.lua"):
    with open(os.path.join(EXAMPLES_DIR, name, path)) as f:
        return f.read()


def example_files(name):
    """Every file of an example folder but main.lua, main.test.lua and its
    DNS zone, relative to the folder: the lists and modules it loads."""
    top = os.path.join(EXAMPLES_DIR, name)
    out = []
    for root, _, files in os.walk(top):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), top)
            if rel not in ("main.lua", "main.test.lua", "dns.zone"):
                out.append(rel)
    return sorted(out)


def start_example(daemons, name, settings=None, extra=None):
    """A daemon running the example's main.lua with its lists and modules;
    extra: {file: text appended to it} for addresses of the test clients."""
    d = daemons(settings=settings, start=False, rules=example_file(name))
    for rel in example_files(name):
        text = example_file(name, rel) + (extra or {}).get(rel, "")
        d.write_rules(text, rel)
    return d.start()


def header_fields(content):
    """The header fields of a message, unfolded: [(name, value)]."""
    head = content.split(b"\r\n\r\n", 1)[0].decode()
    fields = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + line)
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return fields


def rcpts(envelope):
    return [r["address"] for r in envelope["rcpts"]]


def message(headers, body="hello"):
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


# ---------------------------------------------------------------- every example

def test_examples_are_all_listed():
    """Every folder has its rules and tests, and the README names it."""
    assert len(EXAMPLES) >= 20
    with open(os.path.join(EXAMPLES_DIR, "README.md")) as f:
        readme = f.read()
    for name in EXAMPLES:
        for f in ("main.lua", "main.test.lua"):
            assert os.path.isfile(os.path.join(EXAMPLES_DIR, name, f)), f"{name}/{f} missing"
        assert f"[{name}]({name}/main.lua)" in readme, f"README.md does not list {name}"
    listed = re.findall(r"^\| \[([a-z0-9-]+)\]\(", readme, re.M)
    assert sorted(listed) == EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_checks(name, ctl_conf):
    r = ctl(ctl_conf, "rules", "check", "main.lua", cwd=os.path.join(EXAMPLES_DIR, name))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("main.lua: rules are valid\n"), r.stdout
    assert re.search(r"^  \S+ +\d+ rules?$", r.stdout, re.M), "no stage with rules"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_tests_pass(name, ctl_conf):
    r = ctl(ctl_conf, "rules", "test", "main.test.lua", cwd=os.path.join(EXAMPLES_DIR, name))
    assert r.returncode == 0, r.stdout + r.stderr
    plan = re.search(r"^1\.\.(\d+)$", r.stdout, re.M)
    assert plan and int(plan.group(1)) >= 1, r.stdout
    assert "not ok" not in r.stdout, r.stdout
    # No rule may fail on the way, even in a case that expects a refusal.
    assert "failed:" not in r.stderr and "not a status" not in r.stderr, r.stderr


# The vSL info example refuses every client; these only log, tag or edit.
NEVER_ACCEPTS = {"status-info"}
NEVER_REFUSES = {"hooks-logging", "status-accept", "status-next", "status-quarantine",
                 "stage-syntax", "user-functions", "predefined-functions", "tag-and-quarantine",
                 "add-header", "offline-stages", "clamav-quarantine", "opendkim-milter",
                 "delegate-virus-filter"}
# Refusals that need a service: tested against it in test_service_*.py.
NEVER_REFUSES |= {"rspamd-preq"}
# Signing and sealing refuse nothing but a key that cannot sign, which
# vsmtpd checks when it loads the keys.
NEVER_REFUSES |= {"dkim-sign-submission", "arc-forwarder"}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_tests_show_both_sides(name):
    """The test cases show what an example lets through and what it refuses."""
    cases = example_file(name, "main.test.lua")
    accepts = re.search(r'expect = "(queued|discarded|quarantined)"', cases) is not None
    refuses = re.search(r'expect = "(refused|deferred)"', cases) is not None
    assert accepts == (name not in NEVER_ACCEPTS), "accepted cases"
    assert refuses == (name not in NEVER_REFUSES), "refused cases"


# ---------------------------------------------------------------- in the daemon

def test_relay_control_in_the_daemon(daemons):
    """Local domains for everyone, relaying only for a trusted network: the
    refused recipient is dropped and the session goes on."""
    d = start_example(daemons, "relay-control", settings={
        "rules": {"local_domains": "example.com", "trusted_networks": "127.0.0.2"}})
    c = d.session()
    c.mail("alice@example.org")
    c.rcpt("bob@example.com")
    c.expect("RCPT TO:<eve@example.net>", 554, "5.7.1", text="5.7.1 Relay access denied")
    c.rcpt("postmaster")
    qid = e2e.queued_id(c.data(message(["Subject: hi"])))
    assert rcpts(d.message(qid)[1]) == ["bob@example.com", "postmaster"]
    c.quit()

    trusted = d.session(source="127.0.0.2")
    qid = trusted.send_message(message(["Subject: out"]), sender="alice@example.com",
                               rcpts=["eve@example.net"])
    assert rcpts(d.message(qid)[1]) == ["eve@example.net"]
    trusted.quit()
    d.wait_log(r'smtp\[\d+\]: notice: [0-9A-F]{16}: rcpt client\.test\.example\[127\.0\.0\.1\]: '
               r'reject by rule "trailing": 554 5\.7\.1 Relay access denied$')


def test_tag_and_quarantine_in_the_daemon(daemons):
    """Spam is tagged and queued, a virus is quarantined with a normal 250,
    a clean message is left alone."""
    d = start_example(daemons, "tag-and-quarantine")
    c = d.session()
    spam = c.send_message(message(["From: a@example.org", "Subject: You have WON!"]))
    flagged = c.send_message(message(["X-Spam-Flag: YES", "Subject: hi"]))
    clean = c.send_message(message(["From: a@example.org", "Subject: minutes"]))
    virus = c.send_message(message(["Subject: invoice",
                                    "X-Virus-Status: Infected (Eicar-Signature)"]))
    c.quit()

    for qid in (spam, flagged):
        fields = header_fields(d.message(qid)[0])
        assert fields[-1] == ("X-Spam", "yes"), fields
    assert "X-Spam" not in dict(header_fields(d.message(clean)[0]))
    assert virus not in d.queued()
    path = os.path.join(d.spool, "quarantine", "virus", virus)
    content, envelope = e2e.read_spool_file(path)
    assert envelope["quarantine"] == "virus"
    assert b"X-Virus-Status: Infected" in content
    d.wait_log(rf"{virus}: quarantined in virus")


def test_clamav_quarantine_in_the_daemon(daemons, clamd):
    """The infected message goes to quarantine/virus_queue/ at postq, the
    clean one stays queued for delivery."""
    d = start_example(daemons, "clamav-quarantine", settings={
        "service:clamav": {"kind": "clamd", "address": clamd.unix_path}})
    with d.client() as c:
        c.ehlo()
        bad = c.send_message(message(["From: alice@example.org", "Subject: invoice"],
                                     services.EICAR.decode()),
                             "alice@example.org", ["bob@example.com"])
        good = c.send_message(message(["From: alice@example.org", "Subject: invoice"]),
                              "alice@example.org", ["bob@example.com"])
    path = os.path.join(d.spool, "quarantine", "virus_queue", bad)
    e2e.wait_until(lambda: os.path.exists(path), what=path)
    d.wait_log(rf"{bad}: service clamav \(clamd\): \d+ ms: infected \({services.EICAR_VIRUS}\)$")
    d.wait_log(rf"{good}: service clamav \(clamd\): \d+ ms: clean$")
    d.wait_log(rf"{good}: to=<bob@example.com>, .*status=deferred")
    assert good in d.queued() and bad not in d.queued()


def test_rewrite_recipient_in_the_daemon(daemons):
    """Aliases rewrite the envelope, not the To: header; a list alias adds
    recipients."""
    d = start_example(daemons, "rewrite-recipient", settings={
        "rules": {"local_domains": "example.com", "trusted_networks": "127.0.0.2"}})
    c = d.session()
    c.mail("carol@example.net")
    c.rcpt("Info@example.com")
    c.rcpt("team@example.com")
    c.rcpt("dave@example.com")
    c.expect("RCPT TO:<eve@example.org>", 554, "5.7.1")
    qid = e2e.queued_id(c.data(message(["To: info@example.com, team@example.com"])))
    c.quit()
    content, envelope = d.message(qid)
    assert rcpts(envelope) == ["sales@example.com", "alice@example.com", "bob@example.com",
                               "dave@example.com"]
    assert dict(header_fields(content))["To"] == "info@example.com, team@example.com"
    d.wait_log(r"alias Info@example\.com -> sales@example\.com")


def test_predefined_functions_in_the_daemon(daemons):
    """Every header and envelope function, checked on the queued file."""
    d = start_example(daemons, "predefined-functions")
    c = d.session()
    body = message(["From: Alice <alice@legacy.example.com>",
                    "To: Info <info@example.com>, noreply@example.com, sales@example.com",
                    "X-Internal-Route: forged",
                    "Subject: hello"])
    qid = c.send_message(body, sender="alice@legacy.example.com",
                         rcpts=["info@example.com", "noreply@example.com", "sales@example.com",
                                "legal@example.com"])
    c.mail("alice@example.org")
    c.rcpt("noreply@example.com")
    c.expect("DATA", 354)
    c.send(message(["Subject: to nobody"]) + b".\r\n")
    discarded = c.read_reply()
    assert (discarded.code, discarded.text) == (250, "2.0.0 Ok: discarded")
    c.quit()

    content, envelope = d.message(qid)
    fields = header_fields(content)
    names = [n for n, _ in fields]
    assert names[0] == "X-Gateway" and names[1] == "Received", names
    assert fields[0] == ("X-Gateway", "in; client=127.0.0.1")
    assert fields[-1] == ("X-Scanned-By", e2e.HOSTNAME)
    assert "X-Internal-Route" not in names
    assert dict(fields)["To"] == "Info <contact@example.com>, sales@example.com, crm@example.com"
    assert envelope["mail_from"] == "alice@example.com"
    assert rcpts(envelope) == ["contact@example.com", "sales@example.com", "legal@example.com",
                               "crm@example.com", "archive@example.com"]
    assert content.endswith(b"\r\n\r\nhello\r\n")
    assert d.queued() == [qid]

    # write() and dump(): the message as the rules had it then, and a record.
    app = d.settings["rules"]["app_dir"]
    with open(os.path.join(app, "legal", qid + ".eml"), "rb") as f:
        copy = f.read()
    assert copy.startswith(b"X-Gateway: in; client=127.0.0.1\r\nReceived: ")
    assert b"X-Internal-Route" not in copy and copy.endswith(b"\r\n\r\nhello\r\n")
    with open(os.path.join(app, "legal", qid + ".json")) as f:
        record = json.load(f)
    assert record["stage"] == "preq" and record["client_ip"] == "127.0.0.1"
    assert record["envelope"]["id"] == qid
    assert record["envelope"]["mail_from"] == "alice@example.com"
    assert record["message"].encode() == copy


def test_add_header_in_the_daemon(daemons):
    """Our header replaces forged ones; the connection variable is in the
    envelope."""
    d = start_example(daemons, "add-header",
                      settings={"rules": {"trusted_networks": "127.0.0.2"}})
    c = d.session()
    qid = c.send_message(message(["X-Relay-Client: forged", "Subject: hi",
                                  "X-Relay-Client: forged too"]))
    c.quit()
    content, envelope = d.message(qid)
    values = [v for n, v in header_fields(content) if n == "X-Relay-Client"]
    assert values == [f"{e2e.CLIENT_NAME} [127.0.0.1] trusted=no"]
    assert envelope["vars"] == {"trusted": False}

    t = d.session(source="127.0.0.2")
    qid = t.send_message(message(["Subject: hi"]))
    t.quit()
    values = [v for n, v in header_fields(d.message(qid)[0]) if n == "X-Relay-Client"]
    assert values == [f"{e2e.CLIENT_NAME} [127.0.0.2] trusted=yes"]


def test_blocklists_in_the_daemon(daemons):
    """The example's list files, with a test client's address added."""
    d = start_example(daemons, "blocklists", extra={"blocked_ips.txt": "127.0.0.3\n"})
    blocked = d.client(source="127.0.0.3", greet=False)
    r = blocked.read_reply(esc=False)
    assert (r.code, r.text) == (554, "5.7.1 Client host [127.0.0.3] blocked")
    blocked.expect_eof()

    c = d.session()
    c.expect("MAIL FROM:<offers@mail.spammer.example>", 550, "5.7.1")
    c.mail("alice@example.org")
    c.expect("RCPT TO:<john.smith@example.com>", 550, "5.1.1")
    c.rcpt("bob@example.com")
    qid = e2e.queued_id(c.data(message(["Subject: hi"])))
    c.quit()
    assert rcpts(d.message(qid)[1]) == ["bob@example.com"]


def test_local_users_in_the_daemon(daemons):
    """user_exist() is answered by the queue process for the session."""
    d = start_example(daemons, "local-users", settings={
        "rules": {"local_domains": "example.com", "trusted_networks": "127.0.0.2"}})
    c = d.session()
    c.mail("carol@example.net")
    c.rcpt("root@example.com")
    c.rcpt("abuse@example.com")
    c.expect("RCPT TO:<no-such-user-4711@example.com>", 550, "5.1.1")
    c.expect("RCPT TO:<eve@example.org>", 554, "5.7.1")
    qid = e2e.queued_id(c.data(message(["Subject: hi"])))
    c.quit()
    assert rcpts(d.message(qid)[1]) == ["root@example.com", "abuse@example.com"]


def test_spf_reject_fail_in_the_daemon(daemons, dns):
    """In the confined session process: a fail refused at MAIL, a pass
    queued, 451 when DNS cannot say; no session killed."""
    d = start_example(daemons, "spf-reject-fail", settings={
        "rules": dict(trusted_networks="192.0.2.0/24", **dns_settings(dns))})
    c = d.session()
    c.expect("MAIL FROM:<alice@spf-fail.example>", 550, "5.7.23",
             text="5.7.23 SPF: spf-fail.example does not allow mail from 127.0.0.1")
    c.expect("MAIL FROM:<alice@elsewhere.example>", 451, "4.4.3")
    c.mail("alice@spf-pass.example")
    c.rcpt("bob@example.net")
    e2e.queued_id(c.data(message(["Subject: hi"])))
    c.quit()
    d.wait_log(r"SPF fail for spf-fail\.example from 127\.0\.0\.1 \(-all\)")
    assert "killed by signal" not in d.log()


def test_dkim_sign_submission_in_the_daemon(daemons):
    """The trusted network's mail is signed with the key of its domain, and
    the signature verifies in python3-dkim; another domain's is not."""
    import dkim
    d = start_example(daemons, "dkim-sign-submission", settings={
        "rules": {"trusted_networks": "127.0.0.0/8"},
        "dkim:example_com": {"domain": "example.com", "selector": "rsa",
                             "key": os.path.join(DATA, "dkim", "rsa.pem")}})
    c = d.session()
    c.mail("alice@example.com")
    c.rcpt("bob@example.net")
    signed = e2e.queued_id(c.data(message(["From: Alice <alice@example.com>",
                                           "To: bob@example.net", "Subject: signed"])))
    c.mail("carol@other.example")
    c.rcpt("bob@example.net")
    unsigned = e2e.queued_id(c.data(message(["From: carol@other.example", "Subject: not"])))
    c.quit()
    content, _ = d.message(signed)
    assert content.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;"), content
    assert b" d=example.com;" in content and b" s=rsa;" in content
    assert dkim.verify(content, dnsfunc=dnsserver.key_dnsfunc(
        {b"rsa._domainkey.example.com.": os.path.join(DATA, "dkim", "rsa.txt")})), content
    assert b"DKIM-Signature" not in d.message(unsigned)[0]


def test_arc_forwarder_in_the_daemon(daemons, dns):
    """Mail to the list is sealed: python3-dkim's arc_verify says pass and
    the ARC-Authentication-Results carry this host's results; mail for the
    host itself is not sealed."""
    import dkim
    d = start_example(daemons, "arc-forwarder", settings={
        "rules": dict(local_domains="example.com lists.example.com", **dns_settings(dns)),
        "dkim:forwarder": {"domain": "lists.example.com", "selector": "hop2",
                           "key": os.path.join(DATA, "arc", "hop2.pem")}})
    c = d.session()
    c.mail("alice@spf-pass.example")
    c.rcpt("members@lists.example.com")
    sealed = e2e.queued_id(c.data(message(["From: Alice <alice@spf-pass.example>",
                                           "To: members@lists.example.com",
                                           "Subject: to the list"])))
    c.mail("alice@spf-pass.example")
    c.rcpt("bob@example.com")
    direct = e2e.queued_id(c.data(message(["From: alice@spf-pass.example", "Subject: direct"])))
    c.quit()
    content, _ = d.message(sealed)
    assert content.startswith(b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=lists.example.com;")
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", content)
    assert re.search(rb"\r\nARC-Authentication-Results: i=1; mx\.test\.example; "
                     rb"spf=pass smtp\.mailfrom=spf-pass\.example;", unfolded), content
    cv, _, why = dkim.arc_verify(content, dnsfunc=dnsserver.key_dnsfunc(
        {b"hop2._domainkey.lists.example.com.": os.path.join(DATA, "arc", "hop2.txt")}))
    assert cv == b"pass", (why, content)
    assert b"ARC-Seal" not in d.message(direct)[0]


# ---------------------------------------------------------------- refused recipients
# The rewrite-recipient and predefined-functions examples edit the recipient
# list; a recipient the rules then refuse must not be delivered anyway.

def test_refused_rcpt_is_not_queued_after_the_rules_edit_the_list(daemons):
    """A RCPT the rules refuse must not be delivered, even when a rule
    changed the recipient list before refusing."""
    d = daemons(rules="""
return { rcpt = {
  rule "drop earlier, refuse this" (function(ctx)
    if ctx.rcpt.local_part == "second" then
      ctx:remove_rcpt("first@example.com")
      return status.reject(code(550, "5.1.1", "no such user"))
    end
    return status.next()
  end),
} }
""")
    c = d.session()
    c.mail()
    c.rcpt("first@example.com")
    c.expect("RCPT TO:<second@example.com>", 550, "5.1.1")
    c.rcpt("third@example.com")
    qid = e2e.queued_id(c.data(message(["Subject: hi"])))
    c.quit()
    assert "second@example.com" not in rcpts(d.message(qid)[1])


def test_refused_rcpt_is_not_queued_after_a_rewrite(ctl_conf, tmp_path):
    """The same through vsmtpctl: a recipient rewritten, then refused, must
    not reach preq."""
    (tmp_path / "main.lua").write_text("""
return {
  rcpt = { rule "rewrite then refuse" (function(ctx)
    ctx:rewrite_rcpt(ctx.rcpt, "target@example.com")
    return status.reject()
  end) },
  preq = { rule "nobody left" (function(ctx)
    if #ctx.rcpt_list > 0 then return status.deny(code(554, "5.7.1", "leak")) end
    return status.next()
  end) },
}
""")
    r = ctl(ctl_conf, "rules", "run", "main.lua", "--from", "a@example.org", "--rcpt",
            "alias@example.com", cwd=str(tmp_path))
    assert "leak" not in r.stdout, r.stdout


# ---------------------------------------------------------------- corner cases
# Each once a problem of the rule engine, kept so it stays fixed.


def test_vsmtpctl_shows_the_greeting_an_accept_code_gives(ctl_conf, tmp_path):
    """At connect, accept(code) makes the greeting "220 <hostname> <text>";
    vsmtpctl should print what the client would read."""
    (tmp_path / "main.lua").write_text(
        'return { connect = { rule "hello" (function(ctx) '
        'return status.accept(code(220, "", "welcome")) end) } }\n')
    r = ctl(ctl_conf, "rules", "run", "main.lua", "--from", "a@example.org", "--rcpt",
            "b@example.com", cwd=str(tmp_path))
    assert re.search(r"^connect +accept +220 mx\.example\.com welcome ", r.stdout, re.M), r.stdout


def test_the_default_policy_accepts_mail_for_a_mixed_case_host_name(tmp_path):
    """[server] hostname is kept as written and hostname() returns it so,
    while address objects lowercase domains: rules/main.lua then refuses
    mail for its own host name when the configuration writes it in capitals."""
    conf = tmp_path / "vsmtpd.conf"
    conf.write_text(CTL_CONF.replace("mx.example.com", "MX.Example.COM"))
    r = ctl(str(conf), "rules", "run", os.path.join(e2e.SOURCE_DIR, "rules", "main.lua"),
            "--ip", "203.0.113.5", "--from", "a@example.org", "--rcpt", "root@mx.example.com")
    assert r.returncode == 0, r.stdout


def test_math_random_differs_between_sessions(daemons):
    """Each session is forked from the master with the same Lua state, so
    math.random() would draw the same numbers in every connection: each
    session seeds it afresh."""
    d = daemons(rules='function on_connect(ctx) log("info", "draw " .. math.random(1 << 40))'
                      ' return status.next() end\n')
    for _ in range(2):
        d.session().quit()
    draws = [m.group(1) for m in d.wait_log(r"rules: \S+: draw (\d+)$", count=2)]
    assert draws[0] != draws[1]


def test_a_rules_file_that_never_finishes_loading_is_stopped(ctl_conf, tmp_path):
    """Loading runs the file's top level without an instruction budget, but
    within a CPU time limit (250 ms): a loop there would hang vsmtpctl."""
    (tmp_path / "main.lua").write_text("while true do end\nreturn {}\n")
    conf = tmp_path / "vsmtpd.conf"
    conf.write_text(CTL_CONF)
    try:
        r = subprocess.run([vsmtpctl_binary(), "-c", str(conf), "rules", "check", "main.lua"],
                           cwd=str(tmp_path), capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("rules check still running after 5 s")
    assert r.returncode == 1, r.stderr
    assert "main.lua: loading took longer than 250 ms of CPU time" in r.stderr, r.stderr


def test_vsmtpctl_loads_rules_with_the_configured_load_time_limit(tmp_path):
    """vsmtpctl compiles rules as the daemon does: [rules] load_time_limit
    of its configuration applies."""
    (tmp_path / "main.lua").write_text("while true do end\nreturn {}\n")
    conf = tmp_path / "vsmtpd.conf"
    conf.write_text(CTL_CONF + "load_time_limit = 100ms\n")
    r = subprocess.run([vsmtpctl_binary(), "-c", str(conf), "rules", "check", "main.lua"],
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert "main.lua: loading took longer than 100 ms of CPU time" in r.stderr, r.stderr
