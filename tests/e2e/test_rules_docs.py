"""Every example in docs/rules.md runs.

The document marks its code blocks with an HTML comment on the line before:

  <!-- example: NAME -->     a complete rules file, written as NAME.lua in the
                             rules folder and checked with `vsmtpctl rules
                             check`; a ```test block right after it holds
                             `vsmtpctl rules test` cases for it
  <!-- fragment: STAGE -->   one or more rules or actions, or plain statements,
                             for one stage: wrapped into a rules file
                             `return { STAGE = { ... } }` (statements become the
                             body of a rule that then says next) and run
                             through a transaction with `vsmtpctl rules run`,
                             which must end without a Lua error; STAGE "top"
                             puts the lines at the top level of the file
  <!-- invalid: NAME -->     a rules file that must not load
  <!-- log: NAME -->         lines of the daemon's log: vsmtpd runs example NAME
                             as its main.lua, a client sends one message
                             (EHLO client.example, alice@example.org to
                             bob@example.com), and each line must be in the
                             log, with the pid, queue id, client address and
                             rules path of the run
  <!-- file: PATH -->        a list file, module, test file or message in the
                             rules folder, used by the others (a .eml file is
                             written with CRLF line ends); fragments run with
                             message.eml

A ```lua block without a mark is an error: nothing untested slips in. Every
```console block is run too: its "$ vsmtpd ..." and "$ vsmtpctl ..." lines are
run in the rules folder of a copy of /etc/vsmtpd (the shipped rules/main.lua
and the files above, the document's vsmtpd.conf among them: "file:
../vsmtpd.conf") and their
output must be the lines that follow, with process ids and the copy's path
put back.

The services the examples call (docs/rules.md, Services) are real ones,
started for the module on loopback (tests/e2e/services.py): the copy's
vsmtpd.conf gets a [service:NAME] section for each name of SERVICES.

DNS from the rules (dns.lookup, ctx:spf()) goes to a dnsmasq on loopback
that serves the records in DNS_RECORDS (the names the examples use): the
copy's vsmtpd.conf gets a `dns_servers` line for it, so that nothing is
asked of the machine's resolvers. Names outside example.org and
example.net are refused by it: a lookup that gets no answer.
"""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import dnsserver
import services
import vsmtpd_e2e as e2e

DOC = os.path.join(e2e.SOURCE_DIR, "docs", "rules.md")
MARK_RE = re.compile(r"^<!-- (example|fragment|invalid|file|log): (\S+) -->$")
STAGES = ("connect", "authenticate", "helo", "mail", "rcpt", "preq", "postq", "delivery")
ETC = "/etc/vsmtpd/"

DNS_RECORDS = [
    "txt-record=example.org,v=spf1 ip4:192.0.2.0/24 -all",
    "txt-record=example.net,v=spf1 ~all",
    "txt-record=_dmarc.example.org,v=DMARC1; p=quarantine",
]
DNS_LOCAL = ("example.org", "example.net", "in-addr.arpa", "ip6.arpa")

TEST_CONFIG = ('config = { hostname = "mx.example.com", local_domains = "example.com", '
               'trusted_networks = "127.0.0.0/8 ::1 192.0.2.0/24" },')


def vsmtpctl_binary():
    """vsmtpctl, built beside the daemon under test."""
    return os.path.join(os.path.dirname(e2e.vsmtpd_binary()), "vsmtpctl")


class Block:
    def __init__(self, lang, text, line, mark):
        self.lang = lang      # the fence's info string
        self.text = text
        self.line = line      # of the opening fence, 1-based
        self.mark = mark      # (kind, arg) or None
        self.tests = None     # an example's ```test block


def parse(path=DOC):
    """The fenced blocks of the document, each with the mark above it."""
    blocks = []
    with open(path) as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        i += 1
        while i < len(lines) and lines[i] != "```":
            i += 1
        assert i < len(lines), f"rules.md:{start + 1}: unclosed code block"
        prev = start - 1
        while prev >= 0 and lines[prev].strip() == "":
            prev -= 1
        mark = None
        if prev >= 0 and lines[prev].startswith("<!-- "):
            mm = MARK_RE.match(lines[prev])
            assert mm, f"rules.md:{prev + 1}: unknown mark {lines[prev]!r}"
            mark = (mm.group(1), mm.group(2))
        blocks.append(Block(lang, "\n".join(lines[start + 1:i]) + "\n", start + 1, mark))
        i += 1
    last = None
    for b in blocks:
        if b.lang == "test":
            assert last is not None and last.tests is None, \
                f"rules.md:{b.line}: a test block must follow an example"
            last.tests = b
            last = None
        elif b.mark and b.mark[0] == "example":
            last = b
        else:
            last = None
    return blocks


BLOCKS = parse()
EXAMPLES = [b for b in BLOCKS if b.mark and b.mark[0] == "example"]
FRAGMENTS = [b for b in BLOCKS if b.mark and b.mark[0] == "fragment"]
INVALID = [b for b in BLOCKS if b.mark and b.mark[0] == "invalid"]
FILES = [b for b in BLOCKS if b.mark and b.mark[0] == "file"]
LOGS = [b for b in BLOCKS if b.mark and b.mark[0] == "log"]
CONSOLES = [b for b in BLOCKS if b.lang == "console"]


def block_id(b):
    return f"line{b.line}-{b.mark[1]}" if b.mark else f"line{b.line}"


def fragment_file(b):
    """The rules file a fragment is run as."""
    stage, text = b.mark[1], b.text
    if stage == "top":
        return text + "return {}\n"
    code = "\n".join(l for l in text.split("\n") if not l.strip().startswith("--")).strip()
    if not re.match(r"^(rule|action)\s*[\"(]", code):
        text = f'rule "fragment" (function(ctx)\ndo\n{text}end\nreturn status.next()\nend),\n'
    return f"return {{ {stage} = {{\n{text}}} }}\n"


@pytest.fixture(scope="module")
def dns(workspace):
    with dnsserver.Dnsmasq(workspace.new_dir("dnsmasq-docs"), DNS_RECORDS, local=DNS_LOCAL) as server:
        yield server


@pytest.fixture(scope="module")
def live_services(workspace):
    """The services the document's examples call: {name: [service:NAME] keys}."""
    clamd = services.Clamd(workspace.new_dir("clamd-docs")).start()
    spamd = services.Spamd(workspace.new_dir("spamd-docs")).start()
    yield {"clamav": {"kind": "clamd", "address": f"127.0.0.1:{clamd.port}"},
           "spamassassin": {"kind": "spamd", "address": f"127.0.0.1:{spamd.port}"}}
    clamd.stop()
    spamd.stop()


@pytest.fixture(scope="module")
def etc(dns, live_services):
    """A copy of /etc/vsmtpd as the document describes it; its path. Short:
    Lua cuts the file names in its error messages to 60 bytes."""
    root = os.path.realpath(tempfile.mkdtemp(prefix="vsd"))
    try:
        yield from _etc(root, dns, live_services)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _etc(root, dns, live_services):
    top = os.path.join(root, "etc", "vsmtpd")
    rules = os.path.join(top, "rules")
    os.makedirs(rules)
    shutil.copy(os.path.join(e2e.SOURCE_DIR, "rules", "main.lua"), rules)
    for b in FILES + EXAMPLES + INVALID:
        name = b.mark[1] if b.mark[0] == "file" else b.mark[1] + ".lua"
        path = os.path.join(rules, name)
        assert not os.path.exists(path) or b.mark[0] == "file", f"{name} given twice"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", newline="\r\n" if name.endswith(".eml") else None) as f:
            f.write(b.text)
    for b in EXAMPLES:
        if b.tests is not None:
            with open(os.path.join(rules, b.mark[1] + ".test.lua"), "w") as f:
                f.write(f'return {{\n  rules = "{b.mark[1]}.lua",\n  {TEST_CONFIG}\n'
                        f'{b.tests.text}}}\n')
    for i, b in enumerate(FRAGMENTS):
        with open(os.path.join(rules, f"fragment-{b.line}.lua"), "w") as f:
            f.write(fragment_file(b))
    for name in ("rules/message.eml", "vsmtpd.conf"):
        assert os.path.exists(os.path.join(top, name)), f"no {name} in the document"
    with open(os.path.join(top, "vsmtpd.conf")) as f:
        conf = f.read()
    assert "\n[rules]\n" in conf and "dns_servers" not in conf
    conf = conf.replace("\n[rules]\n", f"\n[rules]\ndns_servers = {dns.address}\n"
                        "dns_timeout = 2s\n", 1)
    for name, keys in live_services.items():
        assert f"[service:{name}]" not in conf
        conf += f"\n[service:{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
    with open(os.path.join(top, "vsmtpd.conf"), "w") as f:
        f.write(conf)
    yield top + "/"


def ctl(etc, *args):
    return subprocess.run([vsmtpctl_binary(), "-c", etc + "vsmtpd.conf", *args],
                          capture_output=True, text=True, timeout=30)


# ---------------------------------------------------------------- the document

def test_every_lua_block_is_marked():
    for b in BLOCKS:
        if b.lang == "lua":
            assert b.mark is not None, f"rules.md:{b.line}: a lua block without a mark"
        if b.mark is not None and b.mark[0] == "fragment":
            assert b.mark[1] in STAGES + ("top",), f"rules.md:{b.line}: stage {b.mark[1]}"
        if b.mark is not None and b.mark[0] not in ("file", "log"):
            assert b.lang == "lua", f"rules.md:{b.line}: a {b.mark[0]} must be a lua block"


def test_the_document_has_examples():
    assert len(EXAMPLES) >= 8 and len(FRAGMENTS) >= 30 and len(CONSOLES) >= 5
    assert sum(1 for b in EXAMPLES if b.tests is not None) >= 8
    names = [b.mark[1] for b in EXAMPLES + INVALID]
    assert len(names) == len(set(names)), "two examples share a name"


def test_every_status_and_function_is_shown():
    """Each status, ctx method and global is in some example or fragment."""
    code = "".join(b.text for b in EXAMPLES + FRAGMENTS + FILES)
    names = ["status.next", "status.accept", "status.faccept", "status.deny", "status.reject",
             "status.info", "status.quarantine", "code(", "codes.",
             "log(", "print(", "hostname()", "config.hostname", "config.local_domains",
             "config.trusted_networks", "require(", "user_exist(", "ip(", "ip4(", "ip6(",
             "net(", "netset(", "networks.", "address(", "fqdn(", "regex(", "ip_list(",
             "domain_list(", "address_list(", "string_list(", "load(", "collectgarbage(",
             "os.time(", "os.date(", "dns.lookup(", "dns.rlookup(", "send_mail(",
             "ctx:spf(", "ctx:spf_helo("]
    names += [f"ctx:{m}(" for m in (
        "set", "get", "rewrite_mail_from", "add_rcpt", "remove_rcpt", "rewrite_rcpt", "bcc",
        "has_header", "get_header", "get_all_headers", "count_header", "append_header",
        "prepend_header", "set_header", "rename_header", "remove_header", "add_to",
        "remove_to", "rewrite_to", "quarantine", "write", "dump",
        "deliver", "forward", "maildir", "mbox", "lmtp", "disable_delivery", "deliver_all",
        "forward_all", "maildir_all", "mbox_all", "lmtp_all", "disable_delivery_all")]
    names += [f"ctx.{f}" for f in (
        "client_ip", "client_port", "server_ip", "server_port", "server_name", "listener",
        "listener_kind", "connection_timestamp", "is_secured", "tls", "is_authenticated",
        "auth", "helo", "mail_from", "mail_timestamp", "message_id", "rcpt", "rcpt_list",
        "stage", "size", "body", "raw")]
    missing = [n for n in names if n not in code]
    assert not missing, missing


# ---------------------------------------------------------------- the code

@pytest.mark.parametrize("b", EXAMPLES, ids=block_id)
def test_example_loads(b, etc):
    r = ctl(etc, "rules", "check", etc + "rules/" + b.mark[1] + ".lua")
    assert r.returncode == 0, f"rules.md:{b.line}: {r.stderr}"


@pytest.mark.parametrize("b", [b for b in EXAMPLES if b.tests is not None], ids=block_id)
def test_example_cases_pass(b, etc):
    r = ctl(etc, "rules", "test", etc + "rules/" + b.mark[1] + ".test.lua")
    assert r.returncode == 0 and "not ok" not in r.stdout, \
        f"rules.md:{b.tests.line}:\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("b", FRAGMENTS, ids=block_id)
def test_fragment_runs(b, etc):
    path = etc + f"rules/fragment-{b.line}.lua"
    # The authenticate stage runs only for a client that authenticated.
    auth = ["--tls", "--auth", "alice@example.org"] if b.mark[1] == "authenticate" else []
    r = ctl(etc, "rules", "run", path, "--ip", "203.0.113.5", "--helo", "client.example",
            "--from", "alice@example.org", "--rcpt", "bob@example.com", *auth,
            etc + "rules/message.eml")
    out = r.stdout + r.stderr
    assert r.returncode in (0, 1), f"rules.md:{b.line}: exit {r.returncode}\n{out}"
    assert "failed:" not in out and "not a status" not in out, f"rules.md:{b.line}:\n{out}"
    if b.mark[1] in ("connect", "authenticate", "helo", "mail", "rcpt", "preq"):
        # The stage was reached and its rules ran.
        assert re.search(rf"^    \S+ .* {re.escape(path)}:\d+$", r.stdout, re.M), \
            f"rules.md:{b.line}: the fragment did not run:\n{out}"


@pytest.mark.parametrize("b", INVALID, ids=block_id)
def test_invalid_example_is_refused(b, etc):
    r = ctl(etc, "rules", "check", etc + "rules/" + b.mark[1] + ".lua")
    assert r.returncode == 1, f"rules.md:{b.line}: loads:\n{r.stdout}"
    assert r.stderr.startswith(f"vsmtpctl: {etc}rules/{b.mark[1]}.lua"), r.stderr


# ---------------------------------------------------------------- sample output

def console_commands(b):
    """[(command line, expected output lines)] of a console block."""
    out = []
    for line in b.text.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            assert out, f"rules.md:{b.line}: output before any command"
            out[-1][1].append(line)
    return out


def normalize(text, etc):
    text = text.replace(etc, ETC)
    text = re.sub(r"(vsmtpd vsmtpctl|vsmtpd)\[\d+\]", r"\1[PID]", text)
    return [l.rstrip() for l in text.rstrip("\n").split("\n")] if text.strip() else []


@pytest.mark.parametrize("b", CONSOLES, ids=block_id)
def test_console_sample(b, etc):
    for command, expected in console_commands(b):
        words = [w.replace(ETC, etc) for w in command.split()]
        if words[0] == "vsmtpctl":
            argv = [vsmtpctl_binary(), "-c", etc + "vsmtpd.conf"] + words[1:]
        elif words[:2] == ["vsmtpd", "-t"]:
            argv = [e2e.vsmtpd_binary(), "-t", "-c", etc + "vsmtpd.conf"] + words[2:]
        else:
            pytest.fail(f"rules.md:{b.line}: cannot run {command!r}")
        # Both streams in one pipe (vsmtpctl line-buffers its output): the
        # order a terminal shows.
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30,
                           cwd=os.path.join(etc, "rules"))
        got = normalize(r.stdout, etc)
        want = [re.sub(r"(vsmtpd vsmtpctl|vsmtpd)\[\d+\]", r"\1[PID]", l).rstrip()
                for l in expected]
        assert got == want, f"rules.md:{b.line}: $ {command}\n" + "\n".join(got)


# ---------------------------------------------------------------- the daemon's log

def log_line_pattern(line, rules_path):
    """A log line of the document as a pattern for the run's log."""
    rx = re.escape(line)
    rx = re.sub(r"\\\[\d+\\\]:", r"\\[\\d+\\]:", rx, count=1)
    rx = re.sub(r"(?<![0-9A-F])[0-9A-F]{16}(?![0-9A-F])", "[0-9A-F]{16}", rx)
    # Lua cuts a long file name in its own messages to "...tail".
    rx = rx.replace(re.escape(ETC + "rules/main.lua"),
                    f"(?:{re.escape(rules_path)}|\\.\\.\\.\\S*/rules/main\\.lua)")
    rx = rx.replace(re.escape("[203.0.113.5]"), re.escape("[127.0.0.1]"))
    return "^" + rx + "$"


@pytest.mark.parametrize("b", LOGS, ids=block_id)
def test_log_sample(b, daemons):
    example = next(e for e in EXAMPLES if e.mark[1] == b.mark[1])
    d = daemons(rules=example.text)
    c = d.client()
    c.ehlo("client.example")
    c.cmd("MAIL FROM:<alice@example.org>")
    c.cmd("RCPT TO:<bob@example.com>")
    c.cmd("QUIT")
    for line in b.text.rstrip("\n").split("\n"):
        d.wait_log(log_line_pattern(line, d.rules_path))
