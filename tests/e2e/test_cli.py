"""The command lines of vsmtpd and vsmtpctl, and their manual pages.

-h/--help and -V/--version of both programs (stdout, status 0), usage
errors (one line saying what was wrong, then the synopsis, on stderr,
status 2), vsmtpctl's help per command group; the options and commands of
each --help against those of its page in man/, both ways; the pages
render without a groff warning; and every command of their EXAMPLES runs
here, with /etc/vsmtpd standing for a test directory (and -c naming its
configuration, which is the default the examples rely on), the installed
rules examples for rules/examples/ of the source tree, and the queue id of
the examples for that of a message queued first.
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess

import pytest

import vsmtpd_e2e as e2e

MAN_DIR = os.path.join(e2e.SOURCE_DIR, "man")
SHIPPED_RULES = os.path.join(e2e.SOURCE_DIR, "rules", "main.lua")
EXAMPLES_DIR = os.path.join(e2e.SOURCE_DIR, "rules", "examples")
INSTALLED_EXAMPLES = "/usr/local/share/doc/vsmtpd/examples"
EXAMPLE_ID = "000660CD977706E6"
GROUPS = ("rules", "queue", "quarantine", "dmarc")
# An option as typed: -x or --long-name, not the "-FILE" of "RULES-FILE".
OPTION_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][A-Za-z-]*)")


def version():
    with open(os.path.join(e2e.SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(vsmtpd VERSION (\S+)", f.read()).group(1)


def binary(prog):
    return e2e.vsmtpd_binary() if prog == "vsmtpd" else e2e.vsmtpctl_binary()


def run(prog, *args, **kw):
    """prog args...; the CompletedProcess, output as text."""
    return subprocess.run([binary(prog), *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, **kw)


def man_path(prog):
    return os.path.join(MAN_DIR, f"{prog}.8")


def man_text(prog):
    """The page as plain ASCII text, one line per paragraph."""
    groff = shutil.which("groff")
    assert groff, "groff is not installed (Debian: groff-base, in scripts/setup.sh)"
    p = subprocess.run([groff, "-man", "-Tascii", "-P-cbou", "-rLL=1000n", man_path(prog)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return p.stdout


def section(text, name):
    """The text of one section (NAME ... up to the next heading) of a rendered page."""
    m = re.search(rf"^{name}\n(.*?)(?=^[A-Z][A-Z ]+\n)", text, re.M | re.S)
    assert m, f"no section {name}"
    return m.group(1)


def options(text):
    return set(OPTION_RE.findall(text))


def man_examples(prog):
    """The commands between .EX and .EE, continuation lines joined."""
    with open(man_path(prog)) as f:
        source = f.read()
    commands = []
    for block in re.findall(r"^\.EX\n(.*?)^\.EE\n", source, re.M | re.S):
        text = block.replace("\\-", "-").replace("\\&", "").replace("\\e\n", " ")
        assert "\\" not in text, f"a roff escape the test does not read: {text!r}"
        commands += [" ".join(line.split()) for line in text.splitlines()]
    return commands


# ---------------------------------------------------------------- help and version

@pytest.mark.parametrize("prog", ["vsmtpd", "vsmtpctl"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_goes_to_stdout_with_status_0(prog, flag):
    p = run(prog, flag)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert p.stdout.startswith(f"usage: {prog} "), p.stdout
    assert f"See {prog}(8)." in p.stdout


@pytest.mark.parametrize("prog", ["vsmtpd", "vsmtpctl"])
@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_goes_to_stdout_with_status_0(prog, flag):
    p = run(prog, flag)
    assert (p.returncode, p.stdout, p.stderr) == (0, f"{prog} {version()}\n", "")


def test_help_and_version_need_no_configuration():
    for prog in ("vsmtpd", "vsmtpctl"):
        for flag in ("--help", "--version"):
            p = run(prog, "-c", "/nonexistent/vsmtpd.conf", flag)
            assert p.returncode == 0 and p.stderr == "", (prog, flag, p.stderr)


@pytest.mark.parametrize("args", [
    ("rules", "--help"), ("rules", "check", "--help"), ("rules", "run", "-h"),
    ("rules", "test", "x.test.lua", "--help"),
    ("queue", "--help"), ("queue", "list", "--help"), ("queue", "hold", "-h"),
    ("quarantine", "--help"), ("quarantine", "list", "-h"),
])
def test_vsmtpctl_group_help(args):
    group = args[0]
    # Help reads no configuration, and talks to no daemon.
    p = run("vsmtpctl", "-c", "/nonexistent/vsmtpd.conf", *args)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert p.stdout.startswith(f"usage: vsmtpctl [-c FILE] {group} "), p.stdout
    synopsis = [line for line in p.stdout.splitlines() if "vsmtpctl [-c FILE]" in line]
    assert all(f"] {group} " in line for line in synopsis), synopsis
    full = run("vsmtpctl", "--help").stdout
    assert options(p.stdout) <= options(full)


# ---------------------------------------------------------------- usage errors

def assert_usage_error(p, prog, message, group=None):
    """Status 2, nothing on stdout, the message and then the synopsis on stderr."""
    lines = p.stderr.splitlines()
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stdout == ""
    assert lines[0] == f"{prog}: {message}", p.stderr
    assert lines[1].startswith(f"usage: {prog} "), p.stderr
    hint = f"{prog} {group} --help" if group else f"{prog} --help"
    assert lines[-1] == f"Try '{hint}' for more information.", p.stderr


@pytest.mark.parametrize("args,message", [
    (["--frobnicate"], "unknown option --frobnicate"),
    (["--frobnicate=1"], "unknown option --frobnicate"),
    (["-Z"], "unknown option -Z"),
    (["-tZ"], "unknown option -Z"),
    (["-c"], "option -c needs a value"),
    (["-t", "-o"], "option -o needs a value"),
    (["--help=yes"], "option --help takes no value"),
    (["--version=1"], "option --version takes no value"),
    (["-t", "extra"], "unexpected argument: extra"),
])
def test_vsmtpd_usage_errors(args, message):
    assert_usage_error(run("vsmtpd", *args), "vsmtpd", message)


@pytest.mark.parametrize("args,message,group", [
    ([], "no command given", None),
    (["--frobnicate"], "unknown option --frobnicate", None),
    (["-Z"], "unknown option -Z", None),
    (["-c"], "option -c needs a value", None),
    (["--version=1"], "option --version takes no value", None),
    (["frobnicate"], "unknown command: frobnicate", None),
    (["rules"], "rules needs a command: check, run or test", "rules"),
    (["rules", "--frobnicate"], "unknown option --frobnicate", "rules"),
    (["rules", "frobnicate"], "unknown command: rules frobnicate", "rules"),
    (["rules", "check"], "rules check takes one rules file", "rules"),
    (["rules", "check", "a.lua", "b.lua"], "rules check takes one rules file", "rules"),
    (["rules", "check", "--ip", "192.0.2.1", "a.lua"], "unknown option --ip", "rules"),
    (["rules", "test"], "rules test takes one or more test files", "rules"),
    (["rules", "run", "main.lua"], "rules run needs at least one --rcpt", "rules"),
    (["rules", "run", "main.lua", "--rcpt", "a@example.com", "--frobnicate"],
     "unknown option --frobnicate", "rules"),
    (["rules", "run", "main.lua", "--rcpt"], "option --rcpt needs a value", "rules"),
    (["rules", "run", "main.lua", "--rcpt", "a@example.com", "--tls=yes"],
     "option --tls takes no value", "rules"),
    (["rules", "run", "main.lua", "--rcpt", "a@example.com", "m.eml", "extra"],
     "rules run takes a rules file and at most one message file", "rules"),
    (["queue"], "queue needs a command", "queue"),
    (["queue", "list", "--frobnicate"], "unknown option --frobnicate", "queue"),
    (["queue", "list", "-j"], "unknown option -j", "queue"),
    (["queue", "list", "--json=1"], "option --json takes no value", "queue"),
    (["queue", "list", "--sender"], "option --sender needs a value", "queue"),
    (["queue", "show", "-s"], "option -s needs a value", "queue"),
    (["queue", "frobnicate"], "queue frobnicate: unknown command or wrong arguments", "queue"),
    (["quarantine", "release", "x"], "quarantine release: unknown command or wrong arguments",
     "quarantine"),
])
def test_vsmtpctl_usage_errors(args, message, group):
    # -c names a file that does not exist: usage errors come first.
    p = run("vsmtpctl", "-c", "/nonexistent/vsmtpd.conf", *args)
    assert_usage_error(p, "vsmtpctl", message, group)


# ---------------------------------------------------------------- the manual pages

@pytest.mark.parametrize("prog", ["vsmtpd", "vsmtpctl"])
def test_man_page_renders_without_warnings(prog):
    groff = shutil.which("groff")
    assert groff, "groff is not installed (Debian: groff-base, in scripts/setup.sh)"
    p = subprocess.run([groff, "-man", "-ww", "-z", "-Tutf8", man_path(prog)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    with open(man_path(prog)) as f:
        th = next(line for line in f if line.startswith(".TH "))
    assert f'"vsmtpd {version()}"' in th, th


@pytest.mark.parametrize("prog", ["vsmtpd", "vsmtpctl"])
def test_help_and_man_page_have_the_same_options(prog):
    in_help = options(run(prog, "--help").stdout)
    in_man = options(man_text(prog))
    assert in_help - in_man == set(), f"in --help, not in {prog}.8"
    assert in_man - in_help == set(), f"in {prog}.8, not in --help"
    assert {"-h", "--help", "-V", "--version", "-c"} <= in_help


def command_pairs(text, file_word):
    """{(group, command)} of the synopsis lines of text, "a|b" counted once each."""
    pairs = set()
    for group, commands in re.findall(rf"vsmtpctl \[-c {file_word}\] (\w+) ([\w|]+)", text):
        pairs |= {(group, c) for c in commands.split("|")}
    return pairs


def test_vsmtpctl_help_and_man_page_have_the_same_commands():
    help_pairs = command_pairs(run("vsmtpctl", "--help").stdout, "FILE")
    page = man_text("vsmtpctl")
    man_pairs = command_pairs(section(page, "SYNOPSIS"), "file")
    assert {g for g, _ in help_pairs} == set(GROUPS)
    assert help_pairs == man_pairs
    body = page[page.index("\nDESCRIPTION\n"):]
    for group, command in sorted(man_pairs):
        assert f"{group} {command}" in body, f"{group} {command} is not described"


# ---------------------------------------------------------------- the examples

class ExampleDaemon(e2e.Daemon):
    """A daemon run with the command line of an example, not the harness's."""

    def __init__(self, directory, argv, rules):
        super().__init__(directory, rules=rules)
        self.argv = argv

    def _spawn(self):
        self.starts += 1
        self.log_path = os.path.join(self.dir, f"vsmtpd-{self.starts}.log")
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(self.argv(self), stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, cwd=self.dir, start_new_session=True)
        self.pgid = self.proc.pid
        e2e._running.append(self)


def example_argv(command, etc_dir, conf, qid=None):
    """An example's command line for this test: /etc/vsmtpd is etc_dir, -c conf
    says so, the installed examples are the source tree's."""
    command = command.replace(INSTALLED_EXAMPLES, EXAMPLES_DIR)
    command = command.replace("/etc/vsmtpd/", etc_dir + "/")
    if qid is not None:
        command = command.replace(EXAMPLE_ID, qid)
    argv = shlex.split(command)
    assert "-c" not in argv, command
    return [binary(argv[0]), "-c", conf, *argv[1:]]


def shipped_rules():
    with open(SHIPPED_RULES) as f:
        return f.read()


def vsmtpd_check(d, p):
    assert p.returncode == 0, p.stderr
    assert p.stdout == (f"vsmtpd: {d.conf_path}: configuration is valid\n"
                        f"vsmtpd: {d.rules_path}: rules are valid\n")


def vsmtpd_check_new_rules(d, p):
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith(f"vsmtpd: {d.rules_dir}/new.lua: rules are valid\n"), p.stdout


VSMTPD_EXAMPLES = {
    "vsmtpd -t": vsmtpd_check,
    "vsmtpd -t -o rules.file=/etc/vsmtpd/rules/new.lua": vsmtpd_check_new_rules,
    "vsmtpd -o server.log=stderr": "foreground",
}


def test_vsmtpd_examples_are_these():
    assert man_examples("vsmtpd") == list(VSMTPD_EXAMPLES)


@pytest.mark.parametrize("command", list(VSMTPD_EXAMPLES))
def test_vsmtpd_example(command, workspace):
    directory = workspace.new_dir("cli-example")
    if VSMTPD_EXAMPLES[command] == "foreground":
        d = ExampleDaemon(directory, lambda d: example_argv(command, d.dir, d.conf_path),
                          shipped_rules())
        try:
            d.start()
            d.signal(signal.SIGINT)  # Ctrl-C
            assert d.wait_exit() == 0, d.log()
            assert re.search(r"master\[\d+\]: info: stopped$", d.log(), re.M), d.log()
        finally:
            d.stop()
        return
    d = e2e.Daemon(directory, rules=shipped_rules())
    d.write_rules(shipped_rules().replace("Relay access denied", "No relaying"), "new.lua")
    p = subprocess.run(example_argv(command, d.dir, d.conf_path), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    VSMTPD_EXAMPLES[command](d, p)


def ctl_rules_check(p, qid):
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("main.lua: rules are valid\n  rcpt         5 rules\n"
                             "  preq         1 rule\n"), p.stdout


def ctl_rules_run(p, qid):
    # The daemon's host name is mx.test.example, and it has no local domain.
    assert p.returncode == 1, p.stderr
    assert "rcpt <bob@example.com>       reject     554 5.7.1 Relay access denied" in p.stdout
    assert p.stdout.endswith("result: refused\n"), p.stdout


def ctl_rules_test(p, qid):
    assert p.returncode == 0, p.stdout + p.stderr
    assert "not ok" not in p.stdout and re.search(r"^1\.\.[1-9]\d*$", p.stdout, re.M), p.stdout


def ctl_rules_run_zone(p, qid):
    # The example's dns.zone answers: no DNS server is asked.
    assert p.returncode == 1, p.stderr
    assert ("mail                         reject     550 5.7.23 SPF: spf-fail.example does not "
            "allow mail from 203.0.113.5") in p.stdout, p.stdout
    assert p.stdout.endswith("result: refused\n"), p.stdout


def ctl_queue_list(p, qid):
    assert p.returncode == 0, p.stderr
    assert re.search(rf"^{qid}[* ] ", p.stdout, re.M), p.stdout


def ctl_queue_show(p, qid):
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"Queue ID:   {qid}\n"), p.stdout


def ctl_done(word):
    def check(p, qid):
        assert (p.returncode, p.stdout, p.stderr) == (0, f"{qid}: {word}\n", "")
    return check


def ctl_flush(p, qid):
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout == "flushed: every deferred message is due now\n", p.stdout


def ctl_list_old_deferred(p, qid):
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    assert answer["ok"] is True and answer["count"] == 0, answer  # it is not an hour old


def ctl_quarantine_list(p, qid):
    assert (p.returncode, p.stdout, p.stderr) == (0, "Quarantine is empty\n", "")


def ctl_dmarc_report(p, qid):
    # nothing was checked yesterday: no report, no error
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


VSMTPCTL_EXAMPLES = {
    "vsmtpctl rules check /etc/vsmtpd/rules/main.lua": ctl_rules_check,
    "vsmtpctl rules run /etc/vsmtpd/rules/main.lua --ip 203.0.113.5 --helo mail.example.net "
    "--from alice@example.net --rcpt bob@example.com": ctl_rules_run,
    f"vsmtpctl rules test {INSTALLED_EXAMPLES}/relay-control/main.test.lua": ctl_rules_test,
    f"vsmtpctl rules run {INSTALLED_EXAMPLES}/spf-reject-fail/main.lua --dns-zone "
    f"{INSTALLED_EXAMPLES}/spf-reject-fail/dns.zone --ip 203.0.113.5 --from "
    "alice@spf-fail.example --rcpt bob@example.com": ctl_rules_run_zone,
    "vsmtpctl queue list": ctl_queue_list,
    f"vsmtpctl queue show {EXAMPLE_ID}": ctl_queue_show,
    f"vsmtpctl queue hold {EXAMPLE_ID}": ctl_done("held"),
    f"vsmtpctl queue release {EXAMPLE_ID}": ctl_done("released"),
    "vsmtpctl queue flush": ctl_flush,
    "vsmtpctl queue list --queue deferred --min-age 1h --json": ctl_list_old_deferred,
    "vsmtpctl quarantine list": ctl_quarantine_list,
    "vsmtpctl dmarc report --org-name Example --email dmarc@example.net --domain example.com":
        ctl_dmarc_report,
}


def test_vsmtpctl_examples_are_these():
    assert man_examples("vsmtpctl") == list(VSMTPCTL_EXAMPLES)


def test_vsmtpctl_examples(daemons):
    """In the page's order, against one daemon (the shipped rules, which
    relay for 127.0.0.1) holding one message."""
    d = daemons(rules=shipped_rules())
    with d.session() as c:
        qid = c.send_message("Subject: example\r\n\r\nHello.\r\n", rcpts=("rcpt@example.net",))
    for command, check in VSMTPCTL_EXAMPLES.items():
        p = subprocess.run(example_argv(command, d.dir, d.conf_path, qid),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        try:
            check(p, qid)
        except AssertionError as e:
            raise AssertionError(f"{command}: {e}\nstdout: {p.stdout}\nstderr: {p.stderr}")
