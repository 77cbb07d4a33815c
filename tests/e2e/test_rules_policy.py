"""Rules as an administrator deploys them: the shipped default policy (no
open relay), the objects and lists a policy is built from, the errors
`vsmtpd -t` and the daemon report for a broken rules file, and SIGHUP
reloading the rules."""
import os
import re
import shutil
import signal
import subprocess

import pytest

import dnsserver
import vsmtpd_e2e as e2e
from vsmtpd_e2e import HOSTNAME, queued_id

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"
SHIPPED_RULES = os.path.join(e2e.SOURCE_DIR, "rules", "main.lua")
RELAY_DENIED = "554 5.7.1 Relay access denied"


def shipped_rules():
    with open(SHIPPED_RULES) as f:
        return f.read()


def swaks(d, *args):
    cmd = [SWAKS, "--server", "127.0.0.1", "--port", str(d.port), "--timeout", "10",
           "--from", "swaks@example.org", "--helo", "swaks.test.example", *args]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


# ------------------------------------------------------------ default policy

@pytest.fixture(scope="module")
def untrusted(module_daemons):
    """The shipped policy, with loopback not among the trusted networks."""
    return module_daemons(rules=shipped_rules(), label="-untrusted", settings={
        "rules": {"trusted_networks": "192.0.2.0/24", "local_domains": "example.com"}})


# The shipped policy's mail authentication: records for a domain whose
# DMARC policy says reject, one that says quarantine, and the client's
# HELO name.
AUTH_RECORDS = [
    "txt-record=reject.test,v=spf1 ip4:192.0.2.0/24 -all",
    "txt-record=_dmarc.reject.test,v=DMARC1; p=reject",
    "txt-record=quarantine.test,v=spf1 ip4:192.0.2.0/24 -all",
    "txt-record=_dmarc.quarantine.test,v=DMARC1; p=quarantine",
    "txt-record=pass.test,v=spf1 ip4:127.0.0.0/8 -all",
    "txt-record=_dmarc.pass.test,v=DMARC1; p=reject",
]


@pytest.fixture(scope="module")
def authenticating(module_daemons, workspace):
    """The shipped policy, loopback untrusted, a DNS server with the records."""
    with dnsserver.Dnsmasq(workspace.new_dir("dnsmasq-policy"), AUTH_RECORDS) as dns:
        yield module_daemons(rules=shipped_rules(), label="-authenticating", settings={
            "rules": {"trusted_networks": "192.0.2.0/24", "local_domains": "example.com",
                      "dns_servers": dns.address, "dns_timeout": "2s"}})


def message_from(domain, forged=False):
    extra = f"Authentication-Results: {HOSTNAME}; spf=pass\r\n" if forged else ""
    return (f"{extra}From: <someone@{domain}>\r\nTo: <user@example.com>\r\n"
            f"Subject: from {domain}\r\n\r\nbody\r\n").encode()


def test_default_policy_refuses_what_dmarc_p_reject_refuses(authenticating):
    before = authenticating.queued()
    with authenticating.session() as c:
        c.open_data(sender="someone@reject.test", rcpt="user@example.com")
        c.send(e2e.stuff(message_from("reject.test")) + b".\r\n")
        r = c.read_reply()
        assert (r.code, r.text) == (550, "5.7.1 Rejected by the DMARC policy of reject.test"), r
        c.quit()
    assert authenticating.queued() == before


def test_default_policy_accepts_dmarc_quarantine_and_records_the_results(authenticating):
    with authenticating.session() as c:
        qid = c.send_message(message_from("quarantine.test", forged=True),
                             sender="someone@quarantine.test", rcpts=("user@example.com",))
        c.quit()
    content = authenticating.message(qid)[0]
    first = content.split(b"\r\n")[0].decode()
    assert first.startswith(f"Authentication-Results: {HOSTNAME.lower()}; spf=fail"), first
    ours = [l for l in content.split(b"\r\n") if l.startswith(b"Authentication-Results:")]
    assert len(ours) == 1, content[:600]  # the forged one is gone
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", content).decode()
    assert "smtp.mailfrom=quarantine.test; dkim=none; dmarc=fail" in unfolded, unfolded[:600]
    assert "header.from=quarantine.test" in unfolded


def test_default_policy_passes_aligned_mail(authenticating):
    with authenticating.session() as c:
        qid = c.send_message(message_from("pass.test"), sender="someone@pass.test",
                             rcpts=("user@example.com",))
        c.quit()
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", authenticating.message(qid)[0]).decode()
    assert "spf=pass smtp.mailfrom=pass.test; dkim=none; dmarc=pass header.from=pass.test" \
        in unfolded, unfolded[:600]


@pytest.mark.parametrize("rcpt", ["user@example.com", "user@EXAMPLE.COM", "Mixed.Case@Example.Com",
                                  "postmaster", "user@" + HOSTNAME, "user@localhost"])
def test_default_policy_accepts_mail_for_local_domains(untrusted, rcpt):
    with untrusted.session() as c:
        c.mail()
        c.expect(f"RCPT TO:<{rcpt}>", 250, "2.1.5")
        qid = queued_id(c.data(b"Subject: local\r\n\r\nbody\r\n"))
    assert [r["address"] for r in untrusted.message(qid)[1]["rcpts"]] == [rcpt]


@pytest.mark.parametrize("rcpt", ["user@example.net", "user@sub.example.com",
                                  "postmaster@example.net", "user@[192.0.2.1]",
                                  "user@example.com.example.net"])
def test_default_policy_refuses_to_relay_for_an_untrusted_client(untrusted, rcpt):
    before = untrusted.queued()
    with untrusted.session() as c:
        c.mail()
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        assert str(r) == RELAY_DENIED
        c.expect("DATA", 503, "5.5.1")
        c.quit()
    assert untrusted.queued() == before


def test_open_relay_probe_is_refused_and_the_session_goes_on(untrusted):
    with untrusted.session() as c:
        c.mail("probe@example.org")
        assert str(c.cmd("RCPT TO:<relay-test@example.net>")) == RELAY_DENIED
        c.expect("RCPT TO:<user@example.com>", 250, "2.1.5")
        assert str(c.cmd("RCPT TO:<another@example.org>")) == RELAY_DENIED
        qid = queued_id(c.data(b"Subject: probe\r\n\r\nbody\r\n"))
        c.quit()
    assert [r["address"] for r in untrusted.message(qid)[1]["rcpts"]] == ["user@example.com"]
    untrusted.wait_log(r"[0-9A-F]{16}: rcpt client\.test\.example\[127\.0\.0\.1\]: reject by rule "
                       r"\"trailing\": 554 5\.7\.1 Relay access denied$")


def test_swaks_open_relay_probe_fails(untrusted):
    before = untrusted.queued()
    rc, out = swaks(untrusted, "--to", "relay-test@example.net")
    assert rc != 0, out
    assert "<** 554 5.7.1 Relay access denied" in out, out
    assert "queued as" not in out
    assert untrusted.queued() == before
    rc, out = swaks(untrusted, "--to", "user@example.com")
    assert rc == 0, out
    assert re.search(r"^<-  250 2\.0\.0 Ok: queued as [0-9A-F]{16}$", out, re.M), out


def test_default_policy_relays_for_trusted_networks(module_daemons):
    d = module_daemons(rules=shipped_rules(), label="-trusted",
                       settings={"rules": {"local_domains": "example.com"}})
    with d.session() as c:
        c.mail()
        c.expect("RCPT TO:<anyone@example.net>", 250, "2.1.5")
        c.expect("RCPT TO:<user@example.com>", 250, "2.1.5")
        qid = queued_id(c.data(b"Subject: relayed\r\n\r\nbody\r\n"))
    assert [r["address"] for r in d.message(qid)[1]["rcpts"]] == \
        ["anyone@example.net", "user@example.com"]
    rc, out = swaks(d, "--to", "relay@example.net")
    assert rc == 0, out


# A local part that names a further destination (the percent hack, a bang
# path, a quoted '@') is no local mailbox: vsmtpd does not route by it, so
# it would deliver to a Maildir named after the remote address, and relay
# scanners (nmap's smtp-open-relay) report such an accept as an open relay.
ROUTING_REFUSED = "550 5.7.1 Recipient address rejected: no routing by the local part"
ROUTING_LOCAL_PARTS = ["relaytest%remote.test@example.com", "remote.test!relaytest@example.com",
                       '"relaytest@remote.test"@example.com', '"relay%test"@' + HOSTNAME,
                       "a!b@localhost"]


@pytest.mark.parametrize("rcpt", ROUTING_LOCAL_PARTS)
def test_default_policy_refuses_routing_local_parts(untrusted, rcpt):
    before = untrusted.queued()
    with untrusted.session() as c:
        c.mail()
        assert str(c.cmd(f"RCPT TO:<{rcpt}>")) == ROUTING_REFUSED
        c.expect("RCPT TO:<relaytest@example.com>", 250, "2.1.5")  # ordinary ones go on
        qid = queued_id(c.data(b"Subject: local\r\n\r\nbody\r\n"))
        c.quit()
    assert untrusted.queued() == sorted(before + [qid])
    assert [r["address"] for r in untrusted.message(qid)[1]["rcpts"]] == \
        ["relaytest@example.com"]
    untrusted.wait_log(r"rcpt client\.test\.example\[127\.0\.0\.1\]: reject by rule "
                       r"\"no routing through local parts\": " + re.escape(ROUTING_REFUSED))


def test_routing_local_parts_are_refused_for_trusted_clients_too(module_daemons):
    d = module_daemons(rules=shipped_rules(), label="-trusted-routing",
                       settings={"rules": {"local_domains": "example.com"}})
    with d.session() as c:
        c.mail()
        assert str(c.cmd("RCPT TO:<relaytest%remote.test@example.com>")) == ROUTING_REFUSED
        # what the client routes itself, through a domain of its own, is relayed
        c.expect("RCPT TO:<relaytest%remote.test@example.net>", 250, "2.1.5")
        c.quit()


def test_routing_local_parts_are_accepted_when_configured(module_daemons):
    d = module_daemons(rules=shipped_rules(), label="-routing", settings={
        "rules": {"trusted_networks": "192.0.2.0/24", "local_domains": "example.com",
                  "allow_routing_local_parts": "yes"}})
    with d.session() as c:
        c.mail()
        for rcpt in ROUTING_LOCAL_PARTS + ["user@example.com"]:
            c.expect(f"RCPT TO:<{rcpt}>", 250, "2.1.5")
        assert str(c.cmd("RCPT TO:<relaytest%example.com@remote.test>")) == RELAY_DENIED
        qid = queued_id(c.data(b"Subject: routed\r\n\r\nbody\r\n"))
    assert [r["address"] for r in d.message(qid)[1]["rcpts"]] == \
        ROUTING_LOCAL_PARTS + ["user@example.com"]


# ------------------------------------------------------------ objects and lists

OBJECT_RULES = r'''
local helper = require("lib.describe")
local blocked = ip_list("lists/blocked_ips.txt")
local bad_senders = domain_list("lists/sender_domains.txt")
local bad_helo = regex("^(localhost|[^.]+|.*\\.invalid)$", "i")
local office = net("127.0.0.0/30")
local partners = netset({"192.0.2.0/24", "127.0.0.2", net("198.51.100.0/24")})

return {
  connect = {
    rule "blocked clients" (function(ctx)
      if blocked:contains(ctx.client_ip) then
        return status.deny(code(554, "5.7.1", "client " .. ctx.client_ip .. " is blocked"))
      end
      return status.next()
    end),
  },
  helo = {
    rule "bad helo" (function(ctx)
      if bad_helo:match(ctx.helo) then return status.reject(codes.bad_helo) end
      return status.next()
    end),
  },
  mail = {
    rule "bad sender domains" (function(ctx)
      if bad_senders:contains(ctx.mail_from) then
        return status.reject(codes.unknown_sender_domain)
      end
      return status.next()
    end),
  },
  rcpt = {
    rule "list at run time" (function(ctx)
      if ctx.rcpt.local_part == "lists" then
        local again = ip_list("lists/blocked_ips.txt")
      end
      return status.next()
    end),
    rule "describe client" (function(ctx)
      return status.accept(code(250, "2.1.5", helper.describe(ctx.client_ip, {
        office = office, partners = partners,
        private = networks.private, loopback = networks.loopback,
      })))
    end),
  },
}
'''

DESCRIBE_MODULE = r'''
local M = {}
function M.describe(ip, sets)
  local out = {}
  for i, name in ipairs({"office", "partners", "private", "loopback"}) do
    out[i] = name .. "=" .. tostring(sets[name]:contains(ip))
  end
  return table.concat(out, " ")
end
return M
'''


@pytest.fixture(scope="module")
def objects(module_daemons):
    d = module_daemons(start=False, label="-objects")
    d.write_rules("# clients we refuse\n127.0.0.3\n\n10.0.0.0/8\n", name="lists/blocked_ips.txt")
    d.write_rules("spam.test\n# every subdomain, not the domain itself\n.junk.test\n",
                  name="lists/sender_domains.txt")
    d.write_rules(DESCRIBE_MODULE, name="lib/describe.lua")
    d.write_rules(OBJECT_RULES)
    d.start()
    return d


@pytest.mark.parametrize("source,expect", [
    ("127.0.0.1", "office=true partners=false private=false loopback=true"),
    ("127.0.0.2", "office=true partners=true private=false loopback=true"),
])
def test_networks_match_the_client_address(objects, source, expect):
    with objects.client(source=source) as c:
        c.ehlo()
        c.mail()
        r = c.cmd("RCPT TO:<someone@example.net>")
        assert str(r) == f"250 2.1.5 {expect}"


def test_ip_list_from_a_file_blocks_a_client(objects):
    with objects.client(source="127.0.0.3") as c:
        assert str(c.greeting) == "554 5.7.1 client 127.0.0.3 is blocked"
        c.expect_eof()
    with objects.client() as c:
        assert c.greeting.code == 220


@pytest.mark.parametrize("helo,refused", [
    ("localhost", True), ("LocalHost", True), ("nodots", True), ("host.invalid", True),
    ("HOST.INVALID", True), ("mx.good.example", False), ("invalid.example", False),
])
def test_regex_on_the_helo_name(objects, helo, refused):
    with objects.client() as c:
        r = c.cmd(f"EHLO {helo}", esc=False)
        if refused:
            assert str(r) == "501 5.5.2 Helo command rejected: invalid name"
            c.expect("MAIL FROM:<a@example.org>", 503, "5.5.1")
        else:
            assert r.code == 250 and r.lines[0] == HOSTNAME, r


@pytest.mark.parametrize("sender,refused", [
    ("a@spam.test", True), ("a@SPAM.Test", True), ("a@sub.junk.test", True),
    ("a@deep.sub.junk.test", True), ("a@junk.test", False), ("a@notspam.test", False),
    ("a@spam.test.example", False),
])
def test_domain_list_from_a_file_checks_the_sender(objects, sender, refused):
    with objects.session() as c:
        r = c.cmd(f"MAIL FROM:<{sender}>")
        if refused:
            assert str(r) == "550 5.1.8 Sender address rejected: domain not found"
        else:
            assert str(r) == "250 2.1.0 Ok"


def test_lists_cannot_be_loaded_inside_a_rule(objects):
    with objects.session() as c:
        c.mail()
        r = c.cmd("RCPT TO:<lists@example.net>")
        assert str(r) == "451 4.3.0 Local policy error, try again later"
        c.expect("RCPT TO:<other@example.net>", 250, "2.1.5")
        c.quit()
    objects.wait_log(r'rule "list at run time" \(\S+main\.lua:\d+\) at rcpt failed: .*'
                     r'lists are loaded with the rules')


# ------------------------------------------------------------ load errors

CONF = f"""[server]
hostname = {HOSTNAME}
[listener:smtp]
address = 127.0.0.1:2525
[rules]
file = rules/main.lua
"""


def check(tmp_path, rules, files=None, conf=CONF):
    """vsmtpd -t on a configuration whose [rules] file holds rules."""
    (tmp_path / "rules").mkdir(exist_ok=True)
    path = tmp_path / "rules" / "main.lua"
    path.write_text(rules)
    for name, text in (files or {}).items():
        f = tmp_path / "rules" / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    conf_path = tmp_path / "vsmtpd.conf"
    conf_path.write_text(conf)
    p = subprocess.run([e2e.vsmtpd_binary(), "-t", "-c", str(conf_path)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10, cwd=tmp_path)
    return p.returncode, p.stdout.decode(), p.stderr.decode(), str(path)


GOOD_RULE = 'rule "fine" (function(ctx) return status.next() end)'

LOAD_ERRORS = {
    "syntax error": ("return {\n  connect = {\n    rule \"x\" (function(ctx) return = 1 end),\n"
                     "  },\n}\n", 3, ["near '='"]),
    "stage declared twice": (f"return {{\n  connect = {{ {GOOD_RULE} }},\n  helo = {{}},\n"
                             f"  connect = {{}},\n}}\n", 4,
                             ['stage "connect" declared twice', "first on line 2"]),
    "hook defined twice": ("function on_helo(ctx) return status.next() end\n\n"
                           "function on_helo(ctx) return status.deny() end\n", 3,
                           ["function on_helo defined twice", "first on line 1"]),
    "stage as key and hook": ("function on_rcpt_to(ctx) return status.next() end\n"
                              f"return {{\n  rcpt = {{ {GOOD_RULE} }},\n}}\n", None,
                              ['stage "rcpt" declared twice']),
    "unknown stage": (f"return {{\n  conect = {{ {GOOD_RULE} }},\n}}\n", 2,
                      ['unknown stage "conect"']),
    "unknown hook": ("local x = 1\nfunction on_conect(ctx) return status.next() end\n", 2,
                     ["unknown hook function on_conect"]),
    "rule without a name": ("return {\n  connect = {\n    rule (function(ctx) end),\n  },\n}\n",
                            3, ["rule without a name"]),
    "stage not a list": (f"return {{\n  mail = {GOOD_RULE},\n}}\n", 2,
                         ['stage "mail" must be a list of rules']),
    "item not a rule": ("return {\n  rcpt = {\n    function(ctx) end,\n  },\n}\n", 2,
                        ['stage "rcpt", item 1 is not a rule']),
    "bad code": ('local c = code(250, "5.7.1", "mixed classes")\n', 1, ["bad code"]),
}


@pytest.mark.parametrize("case", list(LOAD_ERRORS))
def test_rules_error_is_reported_with_file_and_line(tmp_path, case):
    text, line, words = LOAD_ERRORS[case]
    rc, out, err, path = check(tmp_path, text)
    assert rc == 1, (out, err)
    prefix = f"vsmtpd: {path}:{line}: " if line else f"vsmtpd: {path}:"
    assert err.startswith(prefix), err
    for w in words:
        assert w in err, (w, err)
    assert "rules are valid" not in out


def test_file_returning_something_else_than_a_table_is_refused(tmp_path):
    rc, out, err, path = check(tmp_path, "return 42\n")
    assert rc == 1
    assert err.startswith(f"vsmtpd: {path}") and "must return a table" in err, err


ENDLESS_TOP_LEVELS = {
    "loop": "while true do end\nreturn {}\n",
    "loop through pcall": "while true do pcall(function() while true do end end) end\n",
    "loop of library calls": "local t = {}\nwhile true do t[1] = (\"x\"):rep(4096):upper() end\n",
}


@pytest.mark.parametrize("case", list(ENDLESS_TOP_LEVELS))
def test_a_top_level_that_never_ends_is_stopped_by_the_load_time_limit(tmp_path, case):
    """Loading has no instruction budget but [rules] load_time_limit of CPU
    time (250 ms by default): the master's reload must not stall."""
    rc, out, err, path = check(tmp_path, ENDLESS_TOP_LEVELS[case])
    assert rc == 1, (out, err)
    assert err.startswith(f"vsmtpd: {path}: loading took longer than 250 ms of CPU time"), err
    assert "load_time_limit" in err and "rules are valid" not in out


def test_the_load_time_limit_is_configured(tmp_path):
    rc, out, err, path = check(tmp_path, "while true do end\n",
                               conf=CONF + "load_time_limit = 100ms\n")
    assert rc == 1, (out, err)
    assert err.startswith(f"vsmtpd: {path}: loading took longer than 100 ms of CPU time"), err
    rc, out, err, path = check(tmp_path, "local n = 0\nfor i = 1, 100000 do n = n + i end\n",
                               conf=CONF + "load_time_limit = 10s\n")
    assert rc == 0, err


def test_valid_rules_with_a_module_pass(tmp_path):
    rc, out, err, path = check(tmp_path, 'local d = require("lib.describe")\n'
                                         'assert(type(d.describe) == "function")\n'
                                         'return { rcpt = { ' + GOOD_RULE + ' } }\n',
                               {"lib/describe.lua": DESCRIBE_MODULE})
    assert rc == 0, err
    assert out.endswith(f"vsmtpd: {path}: rules are valid\n"), out


@pytest.mark.parametrize("name,why", [
    ("../x", 'module name "../x"'),
    ("lib..describe", 'module name "lib..describe"'),
    ("/etc/passwd", 'module name "/etc/passwd"'),
    ("os", "os.lua"),
    ("io", "io.lua"),
])
def test_require_outside_the_rules_folder_is_refused(tmp_path, name, why):
    # a file that "../x" would reach, if it could
    (tmp_path / "x.lua").write_text("return {}\n")
    rc, out, err, path = check(tmp_path, f'local m = require("{name}")\n',
                               {"lib/describe.lua": DESCRIBE_MODULE})
    assert rc == 1, (out, err)
    assert err.startswith(f"vsmtpd: {path}"), err
    assert why in err, err


def test_bad_list_entry_names_the_list_file_and_line(tmp_path):
    rc, out, err, path = check(tmp_path, 'local l = domain_list("lists/domains.txt")\n',
                               {"lists/domains.txt": "example.com\n# fine\n\nnot a domain!\n"})
    assert rc == 1, (out, err)
    assert f"{tmp_path}/rules/lists/domains.txt:4: " in err, err
    assert '"not a domain!"' in err, err
    rc, out, err, path = check(tmp_path, 'local l = ip_list("lists/ips.txt")\n',
                               {"lists/ips.txt": "192.0.2.1\n10.0.0.1/8\n"})
    assert rc == 1, (out, err)
    assert f"{tmp_path}/rules/lists/ips.txt:2: " in err, err


def test_daemon_with_bad_rules_does_not_start(daemons):
    d = daemons(start=False, rules="return {\n  connect = {\n    rule \"x\" (function(ctx)\n}\n")
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert f"{d.rules_path}:4: unexpected symbol near '}}'" in d.log(), d.log()
    assert "started" not in d.log()


# ------------------------------------------------------------ reload

def versioned(v):
    return ("return {\n"
            "  connect = {\n"
            f"    rule \"greet\" (function(ctx) return status.accept(code(220, \"2.0.0\", \"rules {v}\")) end),\n"
            "  },\n"
            "  rcpt = {\n"
            f"    rule \"tag\" (function(ctx) return status.accept(code(250, \"2.1.5\", \"{v} recipient\")) end),\n"
            "  },\n"
            "}\n")


def greeting(d):
    with d.client() as c:
        return str(c.greeting)


def test_sighup_with_broken_rules_keeps_the_running_rules(daemons):
    d = daemons(rules=versioned("v1"))
    assert greeting(d) == f"220 {HOSTNAME} rules v1"
    d.write_rules("return {\n  connect = {\n    rule \"greet\" (function(ctx) return = end),\n"
                  "  },\n}\n")
    d.signal(signal.SIGHUP)
    d.wait_log(r"master\[\d+\]: error: reload failed, keeping the running configuration and "
               rf"rules: {re.escape(d.rules_path)}:3: ")
    assert d.alive()
    assert greeting(d) == f"220 {HOSTNAME} rules v1"
    with d.session() as c:
        c.mail()
        assert str(c.cmd("RCPT TO:<a@example.net>")) == "250 2.1.5 v1 recipient"
        c.data(b"Subject: still\r\n\r\nworks\r\n")
    # a later good reload applies
    d.write_rules(versioned("v3"))
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded from ")
    assert greeting(d) == f"220 {HOSTNAME} rules v3"


def test_sighup_with_a_top_level_that_never_ends_keeps_the_running_rules(daemons):
    d = daemons(rules=versioned("v1"))
    assert greeting(d) == f"220 {HOSTNAME} rules v1"
    d.write_rules("while true do end\n" + versioned("v2"))
    d.signal(signal.SIGHUP)
    d.wait_log(r"master\[\d+\]: error: reload failed, keeping the running configuration and "
               rf"rules: {re.escape(d.rules_path)}: loading took longer than 250 ms of CPU time")
    assert d.alive()
    # the master serves again: a new connection gets the old rules
    assert greeting(d) == f"220 {HOSTNAME} rules v1"
    with d.session() as c:
        c.mail()
        assert str(c.cmd("RCPT TO:<a@example.net>")) == "250 2.1.5 v1 recipient"
        queued_id(c.data(b"Subject: still\r\n\r\nworks\r\n"))


def test_sighup_applies_new_rules_to_new_connections_only(daemons):
    d = daemons(rules=versioned("v1"))
    old = d.session()
    assert str(old.greeting) == f"220 {HOSTNAME} rules v1"
    d.write_rules(versioned("v2"))
    d.signal(signal.SIGHUP)
    d.wait_log(r"master\[\d+\]: info: configuration reloaded from ")
    with d.session() as c:
        assert str(c.greeting) == f"220 {HOSTNAME} rules v2"
        c.mail()
        assert str(c.cmd("RCPT TO:<a@example.net>")) == "250 2.1.5 v2 recipient"
    # the session that was open keeps the rules it started with
    old.mail()
    assert str(old.cmd("RCPT TO:<a@example.net>")) == "250 2.1.5 v1 recipient"
    queued_id(old.data(b"Subject: old\r\n\r\nsession\r\n"))
    old.quit()


def test_sighup_rereads_the_lists(daemons):
    d = daemons(start=False)
    d.write_rules("127.0.0.3\n", name="blocked.txt")
    d.write_rules('local blocked = ip_list("blocked.txt")\n'
                  "function on_connect(ctx)\n"
                  "  if blocked:contains(ctx.client_ip) then return status.deny() end\n"
                  "  return status.next()\n"
                  "end\n")
    d.start()
    with d.client(source="127.0.0.2") as c:
        assert c.greeting.code == 220
    d.write_rules("127.0.0.3\n127.0.0.2\n", name="blocked.txt")
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded from ")
    with d.client(source="127.0.0.2") as c:
        assert str(c.greeting) == "554 5.7.1 Rejected by local policy"
        c.expect_eof()


def test_sighup_applies_new_local_domains_to_the_default_policy(daemons):
    d = daemons(rules=shipped_rules(), settings={
        "rules": {"trusted_networks": "192.0.2.0/24", "local_domains": "example.com"}})
    with d.session() as c:
        c.mail()
        assert str(c.cmd("RCPT TO:<user@new.example>")) == RELAY_DENIED
    d.settings["rules"]["local_domains"] = "example.com new.example"
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded from ")
    with d.session() as c:
        c.mail()
        c.expect("RCPT TO:<user@new.example>", 250, "2.1.5")
        c.expect("RCPT TO:<user@example.com>", 250, "2.1.5")
        assert str(c.cmd("RCPT TO:<user@example.net>")) == RELAY_DENIED
