"""ctx:command() in the real daemon: the confined session (and the delivery
worker) hand the call to the command runner, which runs the configured
program with the message on its standard input and the envelope in its
environment.

The program is tests/e2e/command_probe.sh, run as `/bin/sh
command_probe.sh MODE` (the configuration names /bin/sh and the script:
the administrator's choice; no shell is ever started for the rules). The
preq rule calls the service the message's X-Service field names and
records the result in X-Result and the output, with line ends shown as
"|", in X-Stdout.
"""
import os
import re
import shutil
import signal
import time

import pytest

import vsmtpd_e2e as e2e

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "command_probe.sh")

RULES = r'''
return {
  preq = {
    rule "command" (function(ctx)
      local r = ctx:command(ctx:get_header("X-Service"))
      ctx:append_header("X-Result", string.format(
        "exit=%s signal=%s timed_out=%s truncated=%s failed=%s bytes=%d error=%s",
        tostring(r.exit), tostring(r.signal), tostring(r.timed_out), tostring(r.truncated),
        tostring(r.failed), #(r.stdout or ""), tostring(r.error)))
      local shown = (r.stdout or ""):sub(1, 600):gsub("\r", "\\r"):gsub("\n", "|")
      ctx:append_header("X-Stdout", shown)
      if r.exit == 3 then
        return status.reject(code(451, "4.7.1", "the check said 3"))
      end
      return status.next()
    end),
  },
}
'''


@pytest.fixture(scope="module")
def probe(workspace):
    """The script, where the daemon's user can read it."""
    d = workspace.new_dir("command-probe")
    path = os.path.join(d, "command_probe.sh")
    shutil.copy(PROBE, path)
    os.chmod(path, 0o644)
    return path


def services(probe):
    def cmd(*args, **kw):
        return {"kind": "command", "command": " ".join(["/bin/sh", probe, *args]), **kw}
    return {
        "service:env": cmd("env"),
        "service:exit3": cmd("exit", "3"),
        "service:slow": cmd("sleep", timeout="2s"),
        "service:big": cmd("big"),
        "service:echo": cmd("echo"),
        "service:missing": {"kind": "command", "command": "/nonexistent/program"},
    }


@pytest.fixture(scope="module")
def mta(module_daemons, probe):
    return module_daemons(services(probe), rules=RULES)


def message(service, body="Hello,\r\nbye.\r\n"):
    return (f"From: <sender@example.org>\r\nTo: <rcpt@example.net>\r\nSubject: hi\r\n"
            f"X-Service: {service}\r\n\r\n{body}")


def fields(mta, qid):
    content, _ = mta.message(qid)
    head = content.split(b"\r\n\r\n", 1)[0].decode()
    found = {}
    for line in re.sub(r"\r\n[ \t]", " ", head).split("\r\n"):
        name, _, value = line.partition(": ")
        found.setdefault(name, value)
    return found, content


def send(mta, service, rcpts=("rcpt@example.net",), body="Hello,\r\nbye.\r\n"):
    with mta.session() as c:
        return c.send_message(message(service, body), rcpts=rcpts)


def test_environment_and_stdin(mta):
    qid = send(mta, "env", rcpts=("a@example.net", "b@example.net"))
    f, content = fields(mta, qid)
    assert f["X-Result"].startswith("exit=0 signal=nil timed_out=false truncated=false "
                                    "failed=false"), f["X-Result"]
    env = dict(line.split("=", 1) for line in f["X-Stdout"].split("|") if "=" in line)
    assert env["SENDER"] == "sender@example.org"
    assert env["RECIPIENTS"] == "a@example.net b@example.net"
    assert env["CLIENT_ADDRESS"] == "127.0.0.1"
    assert env["HELO"] == e2e.CLIENT_NAME
    assert env["QUEUE_ID"] == qid
    assert env["STAGE"] == "preq"
    assert env["SERVICE"] == "env"
    assert env["LISTENER"] == "smtp"
    assert env["SERVER_NAME"] == e2e.HOSTNAME
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    # nothing of the daemon's own environment (what sh adds aside)
    assert set(env) - {"PWD", "SHLVL", "_", "OLDPWD"} == {
        "SENDER", "RECIPIENTS", "CLIENT_ADDRESS", "HELO", "QUEUE_ID", "STAGE", "SERVICE",
        "LISTENER", "SERVER_NAME", "PATH", "STDIN_BYTES"}
    # the message as the rules saw it: everything but the field added after
    sent = content[:content.index(b"X-Result: ")] + content[content.index(b"\r\n\r\n") + 2:]
    assert int(env["STDIN_BYTES"]) == len(sent)


def test_output_is_the_programs(mta):
    qid = send(mta, "echo")
    f, _ = fields(mta, qid)
    assert "X-Service: echo\\r|\\r|Hello,\\r|bye.\\r|" in f["X-Stdout"]
    assert f["X-Stdout"].startswith("Received: ")


def test_exit_status_to_the_rules(mta):
    with mta.session() as c:
        c.mail()
        c.rcpt()
        reply = c.data(message("exit3"))
        assert (reply.code, reply.esc) == (451, "4.7.1") and "the check said 3" in reply.text
    mta.wait_log(r"service exit3 \(command\): \d+ ms: exit 3, 15 bytes of output")


def test_output_is_bounded(mta):
    f, _ = fields(mta, send(mta, "big"))
    assert "exit=0" in f["X-Result"] and "truncated=true" in f["X-Result"]
    assert "bytes=65536" in f["X-Result"]


def test_missing_program_exits_127(mta):
    f, _ = fields(mta, send(mta, "missing"))
    assert "exit=127" in f["X-Result"] and "failed=false" in f["X-Result"]
    mta.wait_log(r"service missing: cannot run /nonexistent/program")


def sleepers(probe):
    """Processes of the slow service's script still alive."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if probe.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def test_timeout_kills_the_process_group(mta, probe):
    start = time.monotonic()
    f, _ = fields(mta, send(mta, "slow"))
    took = time.monotonic() - start
    assert "timed_out=true" in f["X-Result"] and "signal=9" in f["X-Result"], f["X-Result"]
    assert 1.5 < took < 6, took
    e2e.wait_until(lambda: not sleepers(probe), 5, what="the slow program and its child gone")
    mta.wait_log(r"service slow \(command\): \d+ ms: killed after 2000 ms")


def test_unknown_service_is_a_rule_error(mta):
    with mta.session() as c:
        c.mail()
        c.rcpt()
        reply = c.data(message("nosuch"))
        assert (reply.code, reply.esc) == (451, "4.3.0"), reply


def runner_pid(d):
    pids = re.findall(r"vsmtpd runner\[(\d+)\]: info: runner: ready", d.log())
    return int(pids[-1]) if pids else None


def test_runner_restarted_after_a_crash(daemons, probe):
    d = daemons(services(probe), rules=RULES)
    e2e.wait_until(lambda: runner_pid(d) is not None, what="the runner")
    first = runner_pid(d)
    os.kill(first, signal.SIGKILL)
    d.wait_log(r"command runner killed by signal 9")
    e2e.wait_until(lambda: runner_pid(d) not in (None, first), 10, what="a new runner")
    f, _ = fields(d, send(d, "env"))
    assert "exit=0" in f["X-Result"]


def test_reload_takes_the_new_command(daemons, probe):
    """After SIGHUP a new runner runs the service's new program."""
    d = daemons(services(probe), rules=RULES)
    e2e.wait_until(lambda: runner_pid(d) is not None, what="the runner")
    first = runner_pid(d)
    d.settings["service:exit3"]["command"] = f"/bin/sh {probe} exit 0"
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log(r"master\[\d+\]: info: configuration reloaded from ")
    e2e.wait_until(lambda: runner_pid(d) not in (None, first), 10, what="a new runner")
    f, _ = fields(d, send(d, "exit3"))
    assert "exit=0" in f["X-Result"] and "leaving with 0" in f["X-Stdout"]
    assert "command runner killed" not in d.log() and "command runner exited" not in d.log()


POSTQ_RULES = r'''
return {
  postq = {
    rule "command" (function(ctx)
      local r = ctx:command("env")
      ctx:append_header("X-Postq-Stage", r.stdout:match("STAGE=(%a+)"))
      return status.next()
    end),
  },
}
'''


def test_postq_in_the_delivery_worker(daemons, probe):
    d = daemons(services(probe), rules=POSTQ_RULES)
    qid = send(d, "env")
    m = d.wait_log(rf"{qid}: changed by the postq rules: queued again as ([0-9A-F]{{16}})$")
    content, _ = d.message(m[-1].group(1))
    assert b"\r\nX-Postq-Stage: postq\r\n" in content


def test_without_command_services_there_is_no_runner(daemon):
    assert "runner" not in daemon.log()
