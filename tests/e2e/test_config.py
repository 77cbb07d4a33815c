"""`vsmtpd -t`: a valid file passes; each kind of error fails with status 1
and a message naming the file, the line and the key. Also: a daemon that
cannot start says why and exits."""
import os
import socket
import subprocess

import pytest

import vsmtpd_e2e as e2e

VALID = """\
# a comment
[server]
hostname = mx.test.example
banner = ESMTP #1 test     ; a comment after the value
spool_dir = ./spool
log = stderr
log_level = debug

[listener:smtp]
address = 127.0.0.1:2525, [::1]:2525
address = 127.0.0.2:2525
kind = smtp

[limits]
max_sessions = 50
max_message_size = 10M
max_command_line = 512
error_delay = 250ms
min_free_space = 1G

[timeouts]
command = 5m
data = 300
shutdown_grace = 1h

[smtp]
bare_line_endings = normalize

[rules]
file = rules/main.lua
local_domains = example.com, Example.ORG
trusted_networks = 127.0.0.0/8 ::1 192.0.2.0/24
instruction_limit = 100000
memory_limit = 8M
"""

RULES = "return { connect = { rule \"go on\" (function(ctx) return status.next() end) } }\n"


def check(tmp_path, text, *overrides):
    """Run vsmtpd -t on text, with a rules file where VALID names it."""
    path = tmp_path / "test.conf"
    path.write_text(text)
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "main.lua").write_text(RULES)
    args = [e2e.vsmtpd_binary(), "-t", "-c", str(path)]
    for o in overrides:
        args += ["-o", o]
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10, cwd=tmp_path)
    return p.returncode, p.stdout.decode(), p.stderr.decode(), str(path)


def test_valid_file_passes(tmp_path):
    rc, out, err, path = check(tmp_path, VALID)
    assert rc == 0, err
    assert err == ""
    assert out == (f"vsmtpd: {path}: configuration is valid\n"
                   f"vsmtpd: {tmp_path}/rules/main.lua: rules are valid\n")


def test_shipped_configuration_is_valid():
    conf = os.path.join(e2e.SOURCE_DIR, "conf", "vsmtpd.conf")
    rules = os.path.join(e2e.SOURCE_DIR, "rules", "main.lua")
    p = subprocess.run([e2e.vsmtpd_binary(), "-t", "-c", conf,
                        "-o", "server.hostname=mx.test.example", "-o", f"rules.file={rules}"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert b"configuration is valid" in p.stdout


def replace_line(text, old, new):
    assert old in text
    return text.replace(old, new, 1)


def line_of(text, needle):
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip() == needle.strip():
            return n
    raise AssertionError(needle)


@pytest.mark.parametrize("old,new,words", [
    ("[limits]", "[lmits]", ["unknown section", "[lmits]"]),
    ("spool_dir = ./spool", "spooldir = ./spool", ["[server]", "unknown key", '"spooldir"']),
    ("kind = smtp", "kinds = smtp", ["[listener:smtp]", "unknown key", '"kinds"']),
    ("max_sessions = 50", "max_sessions = abc", ["[limits] max_sessions:", '"abc"', "not a number"]),
    ("max_sessions = 50", "max_sessions = -5", ["max_sessions", '"-5"']),
    ("max_sessions = 50", "max_sessions = 99999999999999999999999", ["max_sessions"]),
    ("max_message_size = 10M", "max_message_size = 1.5M", ["max_message_size", '"1.5M"']),
    ("max_command_line = 512", "max_command_line = 511", ["max_command_line", '"511"']),
    ("error_delay = 250ms", "error_delay = soon", ["error_delay", '"soon"']),
    ("command = 5m", "command = 5 minutes", ["[timeouts] command", '"5 minutes"']),
    ("address = 127.0.0.2:2525", "address = localhost:2525",
     ["[listener:smtp] address:", '"localhost:2525"']),
    ("address = 127.0.0.2:2525", "address = 127.0.0.1:0", ["address", '"127.0.0.1:0"']),
    ("address = 127.0.0.2:2525", "address = 127.0.0.1:65536", ["address", '"127.0.0.1:65536"']),
    ("address = 127.0.0.2:2525", "address = ::1:2525", ["address", '"::1:2525"']),
    ("address = 127.0.0.2:2525", "address = 127.0.0.1", ["address", '"127.0.0.1"']),
    ("log = stderr", "log = file", ["[server] log:", '"file"']),
    ("log_level = debug", "log_level = loud", ["log_level", '"loud"']),
    ("hostname = mx.test.example", "hostname = -bad-.example", ["hostname"]),
    ("bare_line_endings = normalize", "bare_line_endings = maybe",
     ["bare_line_endings", '"maybe"']),
    ("kind = smtp", "kind = submission", ["kind"]),
    ("trusted_networks = 127.0.0.0/8 ::1 192.0.2.0/24",
     "trusted_networks = 127.0.0.0/8 192.0.2.1/24",
     ["[rules] trusted_networks:", '"192.0.2.1/24"', "bits set past its prefix"]),
    ("trusted_networks = 127.0.0.0/8 ::1 192.0.2.0/24", "trusted_networks = 10.0.0.0/33",
     ["trusted_networks", '"10.0.0.0/33"', "not an IP network"]),
    ("local_domains = example.com, Example.ORG", "local_domains = example.com, bad_domain",
     ["[rules] local_domains:", '"bad_domain"']),
    ("instruction_limit = 100000", "instruction_limit = 10", ["instruction_limit", '"10"']),
    ("banner = ESMTP #1 test     ; a comment after the value", "this is not a setting",
     ["syntax error"]),
])
def test_bad_value_is_reported_with_file_line_and_key(tmp_path, old, new, words):
    text = replace_line(VALID, old, new)
    rc, out, err, path = check(tmp_path, text)
    assert rc == 1, (out, err)
    assert out == ""
    n = line_of(text, new)
    assert err.startswith(f"vsmtpd: {path}:{n}: "), err
    for w in words:
        assert w in err, (w, err)
    assert err.count("\n") == 1, "one line"


def test_key_set_twice_names_both_lines(tmp_path):
    text = replace_line(VALID, "log = stderr", "log = stderr\nlog = syslog")
    rc, _, err, path = check(tmp_path, text)
    assert rc == 1
    assert err.startswith(f"vsmtpd: {path}:{line_of(text, 'log = syslog')}: [server] log:"), err
    assert f"line {line_of(text, 'log = stderr')}" in err


def test_hard_error_limit_must_exceed_the_soft_one(tmp_path):
    text = replace_line(VALID, "max_sessions = 50",
                        "max_sessions = 50\nsoft_error_limit = 5\nhard_error_limit = 5")
    rc, _, err, path = check(tmp_path, text)
    assert rc == 1
    assert err.startswith(f"vsmtpd: {path}:{line_of(text, 'hard_error_limit = 5')}: "), err
    assert "hard_error_limit" in err


def test_file_without_listener_is_refused(tmp_path):
    text = VALID[:VALID.index("[listener:smtp]")] + VALID[VALID.index("[limits]"):]
    rc, _, err, path = check(tmp_path, text)
    assert rc == 1
    assert path in err and "listener" in err


def test_bad_override_is_reported_against_the_command_line(tmp_path):
    rc, _, err, _ = check(tmp_path, VALID, "limits.max_sessions=many")
    assert rc == 1
    assert err.startswith("vsmtpd: command line: [limits] max_sessions:"), err
    rc, _, err, _ = check(tmp_path, VALID, "max_sessions=3")
    assert rc == 1 and "command line" in err
    rc, out, err, _ = check(tmp_path, VALID, "limits.max_sessions=3",
                            "listener:other.address=127.0.0.1:2626")
    assert rc == 0, err


def test_missing_file_is_reported(tmp_path):
    p = subprocess.run([e2e.vsmtpd_binary(), "-t", "-c", str(tmp_path / "nope.conf")],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    assert p.returncode == 1
    assert b"cannot open" in p.stderr and b"nope.conf" in p.stderr


def test_daemon_with_a_bad_file_does_not_start(daemons):
    d = daemons(start=False)
    d.write_config(d.config_text() + "[limits]\nmax_recipients = 0\n")
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert "max_recipients" in d.log()
    assert not os.path.exists(d.spool)


def test_daemon_exits_when_its_port_is_taken(daemons):
    d = daemons(start=False)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", d.port))
        s.listen(1)
        d.start(wait=False)
        assert d.wait_exit() == 1
    assert f"cannot listen on 127.0.0.1:{d.port}" in d.log()


@pytest.mark.parametrize("listeners", [
    "[listener:smtp]\naddress = 127.0.0.1:2525\naddress = 127.0.0.1:2525\n",
    "[listener:a]\naddress = 127.0.0.1:2525\n[listener:b]\naddress = [::1]:2526, 127.0.0.1:2525\n",
])
def test_address_listed_twice_is_refused(tmp_path, listeners):
    text = "[server]\nhostname = mx.test.example\n" + listeners
    rc, _, err, path = check(tmp_path, text)
    assert rc == 1
    assert err.startswith(f"vsmtpd: {path}:"), err
    assert "address 127.0.0.1:2525" in err


def test_listener_name_is_checked(tmp_path):
    text = "[server]\nhostname = mx.test.example\n[listener:Bad!]\naddress = 127.0.0.1:2525\n"
    rc, _, err, path = check(tmp_path, text)
    assert rc == 1
    assert err.startswith(f"vsmtpd: {path}:3: [listener:Bad!]"), err


def test_crlf_file_with_a_byte_order_mark_is_valid(tmp_path):
    path = tmp_path / "bom.conf"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.replace("\n", "\r\n").encode())
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.lua").write_text(RULES)
    p = subprocess.run([e2e.vsmtpd_binary(), "-t", "-c", str(path)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
