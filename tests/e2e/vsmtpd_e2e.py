"""Helpers for the vsmtpd end-to-end tests: the daemon under test, a raw
SMTP client that reads whole (multi-line) replies and checks their enhanced
status codes, and a reader for committed spool files.

Only the standard library is used. Everything talks to loopback addresses,
and every wait has a deadline.
"""
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HOSTNAME = "mx.test.example"
CLIENT_NAME = "client.test.example"
IS_ROOT = os.geteuid() == 0
IO_TIMEOUT = 10.0  # seconds, for every socket and every wait
SPOOL_TRAILER_LEN = 42
SPOOL_TRAILER_RE = re.compile(rb"\nVSMTPD-SPOOL-1 ([0-9a-f]{16}) ([0-9a-f]{8})\n\Z")
ID_RE = re.compile(r"^[0-9A-F]{16}$")
# A sanitizer that could not run (LeakSanitizer stopped by a seccomp filter) counts too.
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: |"
                          r"Sanitizer has encountered a fatal error")
QUEUED_RE = re.compile(r"^2\.0\.0 Ok: queued as ([0-9A-F]{16})$")
# RFC 2034 / RFC 3463: class.subject.detail at the start of the text.
ESC_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")

SOURCE_DIR = os.environ.get("VSMTPD_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vsmtpd_binary():
    """The daemon under test: $VSMTPD_BIN, else a build in the source tree."""
    path = os.environ.get("VSMTPD_BIN")
    if path:
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"VSMTPD_BIN={path} is not an executable file")
        return os.path.abspath(path)
    for sub in ("build-e2e", "build"):
        cand = os.path.join(SOURCE_DIR, sub, "vsmtpd")
        if os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("set VSMTPD_BIN to the vsmtpd binary under test")


def vsmtpctl_binary():
    """vsmtpctl, built beside the daemon under test."""
    path = os.path.join(os.path.dirname(vsmtpd_binary()), "vsmtpctl")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no vsmtpctl beside the daemon under test: {path}")
    return path


def run_user():
    """(user, group, uid, gid) the daemon drops to when started as root."""
    pw = pwd.getpwnam("nobody")
    group = grp.getgrgid(pw.pw_gid).gr_name
    return "nobody", group, pw.pw_uid, pw.pw_gid


# A TCP port on 127.0.0.1 where nothing listens (tcpmux, never served on test
# machines): connections to it are refused at once.
CLOSED_PORT = 1


def free_port(host="127.0.0.1"):
    """A TCP port that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=IO_TIMEOUT, interval=0.02, what="condition"):
    """Poll predicate until it returns something true; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- spool files

def parse_spool_bytes(data):
    """Split a committed spool file into (content bytes, envelope dict)."""
    m = SPOOL_TRAILER_RE.search(data[-SPOOL_TRAILER_LEN:])
    assert m is not None, f"no valid spool trailer: {data[-SPOOL_TRAILER_LEN:]!r}"
    clen, elen = int(m.group(1), 16), int(m.group(2), 16)
    assert clen + elen + SPOOL_TRAILER_LEN == len(data), "spool lengths do not add up"
    content = data[:clen]
    envelope = json.loads(data[clen:clen + elen].decode("utf-8"))
    return content, envelope


def read_spool_file(path):
    with open(path, "rb") as f:
        return parse_spool_bytes(f.read())


def split_received(content):
    """(the Received: header field with its CRLF, the client's content)."""
    assert content.startswith(b"Received: "), content[:80]
    pos = 0
    while True:
        end = content.index(b"\r\n", pos)
        nxt = content[end + 2:end + 3]
        if nxt not in (b"\t", b" "):
            return content[:end + 2], content[end + 2:]
        pos = end + 2


def assert_crlf_only(data):
    """Every CR is followed by LF and every LF preceded by CR."""
    for i, b in enumerate(data):
        if b == 0x0D:
            assert data[i + 1:i + 2] == b"\n", f"bare CR at {i}: {data[max(0, i - 20):i + 20]!r}"
        elif b == 0x0A:
            assert i > 0 and data[i - 1] == 0x0D, f"bare LF at {i}: {data[max(0, i - 20):i + 20]!r}"


# ---------------------------------------------------------------- replies

class Reply:
    """One SMTP reply: its code and the text of each line."""

    def __init__(self, code, lines):
        self.code = code
        self.lines = lines  # the text after "ddd-" / "ddd "

    @property
    def text(self):
        return self.lines[-1]

    @property
    def esc(self):
        m = ESC_RE.match(self.lines[0])
        return m.group(0).strip() if m else None

    def __repr__(self):
        return "Reply(" + " | ".join(f"{self.code} {t}" for t in self.lines) + ")"

    def __str__(self):
        return "\r\n".join(f"{self.code} {t}" for t in self.lines)


def check_esc(code, lines):
    """RFC 2034: every line of a 2xx/4xx/5xx reply starts with the same
    enhanced status code, of the reply's class. (3xx replies have none.)"""
    if 300 <= code < 400:
        return
    first = None
    for text in lines:
        m = ESC_RE.match(text)
        assert m is not None, f"reply {code} {text!r} has no enhanced status code"
        assert m.group(1) == str(code)[0], f"enhanced code {m.group(0)} does not agree with {code}"
        if first is None:
            first = m.group(0).strip()
        assert m.group(0).strip() == first, f"enhanced codes differ between lines: {lines!r}"


def queued_id(reply):
    """The id in a '250 2.0.0 Ok: queued as ID' reply."""
    assert reply.code == 250, f"expected the message to be queued, got {reply!r}"
    m = QUEUED_RE.match(reply.text)
    assert m is not None, f"not a queued reply: {reply!r}"
    return m.group(1)


_open_clients = []


def close_all_clients():
    while _open_clients:
        _open_clients.pop().close()


class SMTPClient:
    """A byte-exact SMTP client over a plain socket.

    read_reply() returns whole replies (multi-line ones joined) and checks
    the enhanced status codes of every reply except the greeting and the
    replies to HELO / EHLO (RFC 2034). Every operation has a timeout."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT, source=None, greet=True):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        _open_clients.append(self)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.greeting = self.read_reply(esc=False) if greet else None

    # -- plumbing
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def read_line(self):
        while b"\r\n" not in self.buf:
            assert b"\n" not in self.buf, f"server sent a bare LF: {self.buf!r}"
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8")

    def read_reply(self, esc=True):
        """One complete reply; esc=False for the greeting and HELO/EHLO."""
        lines, code = [], None
        while True:
            line = self.read_line()
            m = re.match(r"^([2-5][0-9][0-9])([ -]|$)(.*)$", line)
            assert m is not None, f"malformed reply line {line!r}"
            if code is None:
                code = int(m.group(1))
            assert int(m.group(1)) == code, f"reply code changed inside a reply: {lines} {line!r}"
            lines.append(m.group(3))
            if m.group(2) != "-":
                break
        if esc:
            check_esc(code, lines)
        return Reply(code, lines)

    def read_replies(self, n, esc=True):
        return [self.read_reply(esc=esc) for _ in range(n)]

    def cmd(self, line, esc=True):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.read_reply(esc=esc)

    def expect(self, line, code, esc=None, text=None):
        """Send a command; assert the reply's code (and enhanced code / text)."""
        r = self.cmd(line)
        assert r.code == code, f"{line!r}: expected {code}, got {r!r}"
        if esc is not None:
            assert r.esc == esc, f"{line!r}: expected {esc}, got {r!r}"
        if text is not None:
            assert r.text == text, f"{line!r}: expected {text!r}, got {r!r}"
        return r

    def _drain(self, timeout, stop_on):
        """Read into buf until EOF or one of the exceptions in stop_on."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except stop_on:
            pass
        finally:
            self.sock.settimeout(IO_TIMEOUT)

    def pending(self, wait=0.2):
        """Whatever the server sends within `wait` seconds (b"" on EOF too)."""
        self._drain(wait, (socket.timeout, BlockingIOError))
        data, self.buf = self.buf, b""
        return data

    def expect_eof(self, timeout=IO_TIMEOUT):
        """Assert that the server closes the connection with nothing more to say."""
        self._drain(timeout, ConnectionResetError)
        assert self.buf == b"", f"unexpected data before the close: {self.buf!r}"

    # -- SMTP steps
    def ehlo(self, name=CLIENT_NAME):
        r = self.cmd(f"EHLO {name}", esc=False)
        assert r.code == 250, f"EHLO: {r!r}"
        return r

    def helo(self, name=CLIENT_NAME):
        r = self.cmd(f"HELO {name}", esc=False)
        assert r.code == 250, f"HELO: {r!r}"
        return r

    def mail(self, sender="sender@example.org", params=""):
        return self.expect(f"MAIL FROM:<{sender}>{params}", 250, "2.1.0")

    def rcpt(self, rcpt="rcpt@example.net", params=""):
        return self.expect(f"RCPT TO:<{rcpt}>{params}", 250, "2.1.5")

    def open_data(self, sender="sender@example.org", rcpt="rcpt@example.net"):
        """MAIL, RCPT and DATA, up to the 354: the content is the caller's."""
        self.mail(sender)
        self.rcpt(rcpt)
        self.expect("DATA", 354)

    def data(self, content):
        """DATA with content given already dot-stuffed and CRLF-terminated
        (the terminating '.\\r\\n' is added); returns the final reply."""
        self.expect("DATA", 354)
        if isinstance(content, str):
            content = content.encode("utf-8")
        self.send(content + b".\r\n")
        return self.read_reply()

    def send_message(self, content, sender="sender@example.org", rcpts=("rcpt@example.net",)):
        """MAIL, RCPT..., DATA: return the queue id."""
        self.mail(sender)
        for r in rcpts:
            self.rcpt(r)
        return queued_id(self.data(content))

    def quit(self):
        self.expect("QUIT", 221, "2.0.0")
        self.expect_eof()
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def stuff(text):
    """Dot-stuff CRLF text the way an SMTP client does (RFC 5321 4.5.2)."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    out = []
    for line in text.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


# ---------------------------------------------------------------- the daemon

class Workspace:
    """A directory tree every daemon's user can traverse (0755)."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="vsmtpd-e2e-")
        os.chmod(self.root, 0o755)
        self.count = 0

    def new_dir(self, name):
        self.count += 1
        path = os.path.join(self.root, f"{self.count:03d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:60]}")
        os.mkdir(path)
        os.chmod(path, 0o755)
        return path

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


_running = []


def running_daemons():
    return list(_running)


def _proc_group_member(pid, pgid, comm):
    """Whether live process pid is in process group pgid and runs comm."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    name = stat[stat.index(b"(") + 1:stat.rindex(b")")]
    fields = stat[stat.rindex(b")") + 2:].split()
    # fields[0] is the state, fields[2] the process group
    return fields[0] != b"Z" and int(fields[2]) == pgid and name == comm


def proc_status(pid):
    """/proc/<pid>/status as a dict of strings."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


class Daemon:
    """One vsmtpd instance, run in the foreground in its own process group.

    settings: {"section": {"key": "value"}} merged over the defaults; a
    value of None drops a default key. rules: the text of the rules file
    (rules/main.lua in the daemon's folder); by default a file with no rule,
    which accepts everything."""

    def __init__(self, directory, settings=None, addresses=None, rules=None):
        self.dir = directory
        self.port = free_port()
        self.spool = os.path.join(self.dir, "spool")
        self.conf_path = os.path.join(self.dir, "vsmtpd.conf")
        self.binary = vsmtpd_binary()
        self.proc = None
        self.log_path = None
        self.starts = 0
        self.auto_port = addresses is None
        self.started_ok = False
        server = {"hostname": HOSTNAME, "banner": "ESMTP vsmtpd", "spool_dir": self.spool,
                  "log": "stderr", "log_level": "info",
                  "control_socket": os.path.join(self.dir, "control")}
        if IS_ROOT:
            user, group, _, _ = run_user()
            server.update(user=user, group=group)
        self.rules_dir = os.path.join(self.dir, "rules")
        self.rules_path = os.path.join(self.rules_dir, "main.lua")
        self.write_rules("-- no rules: every stage goes on\n" if rules is None else rules)
        self.settings = {
            "server": server,
            "listener:smtp": {"address": addresses or f"127.0.0.1:{self.port}", "kind": "smtp"},
            "limits": {},
            "timeouts": {},
            "smtp": {},
            # The rules' DNS goes nowhere unless a test says where: a lookup
            # fails at once (a closed loopback port), never asks the
            # machine's resolvers.
            "rules": {"file": self.rules_path, "app_dir": os.path.join(self.dir, "app"),
                      "dns_servers": f"127.0.0.1:{CLOSED_PORT}"},
            # Mail stays queued unless a test says where it goes: every
            # destination is a loopback port where nothing listens, so each
            # delivery is deferred and the spool keeps what was accepted.
            "delivery": {"relay_host": f"127.0.0.1:{CLOSED_PORT}", "local_transport": "lmtp",
                         "lmtp": f"127.0.0.1:{CLOSED_PORT}"},
        }
        for section, keys in (settings or {}).items():
            self.settings.setdefault(section, {}).update(keys)
        self.write_config()

    # -- configuration
    def config_text(self):
        out = ["# written by the vsmtpd end-to-end tests"]
        for section, keys in self.settings.items():
            keys = {k: v for k, v in keys.items() if v is not None}
            if not keys and section in ("limits", "timeouts", "smtp", "rules", "delivery"):
                continue
            out.append(f"[{section}]")
            out.extend(f"{k} = {v}" for k, v in keys.items())
        return "\n".join(out) + "\n"

    def write_config(self, text=None):
        """Write the configuration atomically, readable by the daemon's user."""
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.config_text() if text is None else text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.conf_path)

    def deliver_to_maildirs(self):
        """Local mail into maildirs under <its folder>/mail (self.mail), a
        folder the daemon's user's when run as root; the configuration
        written. Returns self."""
        self.mail = os.path.join(self.dir, "mail")
        os.mkdir(self.mail, 0o755)
        if IS_ROOT:
            _, _, uid, gid = run_user()
            os.chown(self.mail, uid, gid)
        self.settings["delivery"]["maildir_path"] = f"{self.mail}/%d/%u/Maildir"
        self.write_config()
        return self

    def write_rules(self, text, name="main.lua"):
        """Write a file of the rules folder atomically, readable by the daemon."""
        os.makedirs(self.rules_dir, exist_ok=True)
        os.chmod(self.rules_dir, 0o755)
        path = os.path.join(self.rules_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return path

    # -- process control
    def start(self, wait=True):
        """Start the daemon; with wait, until its master and queue are up.

        A port picked by free_port() may be taken by someone else before
        the daemon binds it: the first start then retries on another."""
        for attempt in range(3):
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_ready()
                self.started_ok = True
                return self
            except AssertionError:
                if (self.auto_port and not self.started_ok and attempt < 2
                        and self.proc.poll() is not None
                        and "cannot listen on" in self.log()):
                    _running.remove(self)
                    self.port = free_port()
                    self.settings["listener:smtp"]["address"] = f"127.0.0.1:{self.port}"
                    self.write_config()
                    continue
                raise
        return self

    def command(self):
        """The command line that starts the daemon (a subclass may wrap it,
        as long as the daemon ends up in the same process)."""
        return [self.binary, "-c", self.conf_path]

    def _spawn(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.log_path = os.path.join(self.dir, f"vsmtpd-{self.starts}.log")
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(self.command(),
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         cwd=self.dir, start_new_session=True)
        self.pgid = self.proc.pid
        _running.append(self)

    def wait_ready(self, timeout=IO_TIMEOUT):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"vsmtpd exited with {self.proc.returncode}:\n{self.log()}")
            log = self.log()
            return (re.search(r"master\[\d+\]: info: vsmtpd \S+ started", log) and
                    re.search(r"queue\[\d+\]: info: spool .*: \d+ queued", log))
        wait_until(ready, timeout, what="vsmtpd to start")

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def processes(self):
        """Pids of the live processes of this daemon (its process group)."""
        comm = os.path.basename(self.binary).encode()[:15]
        return [int(name) for name in os.listdir("/proc")
                if name.isdigit() and _proc_group_member(int(name), self.pgid, comm)]

    def signal(self, sig):
        assert self.proc.poll() is None, "vsmtpd is not running"
        self.proc.send_signal(sig)

    def stop(self, timeout=IO_TIMEOUT):
        """SIGTERM the master and wait; SIGKILL everything past the deadline.
        A sanitizer report in the log (of any process of the daemon: a
        session's leak shows only there) fails the test that owned it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill_all()
        for n in range(1, self.starts + 1):
            path = os.path.join(self.dir, f"vsmtpd-{n}.log")
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            report = SANITIZER_RE.search(text)
            assert report is None, f"sanitizer report in {path}:\n{text[report.start():][:4000]}"
        return self.proc.returncode

    def kill_all(self):
        """kill -9 the master and every process of the daemon, and wait
        until they are all gone."""
        if self.proc is None:
            return
        # Freeze everything first (the master, the only one that forks, before
        # the others), so that no process sees another die and cleans up after
        # it: all of them stop at the same point, as in a power cut.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)
        pids = self.processes()
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(IO_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("vsmtpd master survived SIGKILL")

        def gone():
            left = self.processes()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return not left
        wait_until(gone, what="all vsmtpd processes to exit")
        if self in _running:
            _running.remove(self)

    def wait_exit(self, timeout=IO_TIMEOUT):
        """Wait for the master to exit by itself; its exit status."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"vsmtpd did not exit within {timeout} s:\n{self.log()}")
        wait_until(lambda: not self.processes(), what="all vsmtpd processes to exit")
        if self in _running:
            _running.remove(self)
        return rc

    # -- log
    def log(self):
        if self.log_path is None:
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=IO_TIMEOUT, count=1):
        """Wait for `count` log lines matching pattern; return the matches."""
        rx = re.compile(pattern, re.M)

        def found():
            ms = list(rx.finditer(self.log()))
            return ms if len(ms) >= count else None
        try:
            return wait_until(found, timeout, what=f"log line /{pattern}/")
        except AssertionError:
            raise AssertionError(f"no log line /{pattern}/ within {timeout} s; log:\n{self.log()}")

    def queue_pid(self):
        ms = re.findall(r"vsmtpd queue\[(\d+)\]: info: spool ", self.log())
        assert ms, "no queue process in the log"
        return int(ms[-1])

    def session_pid(self, client_port, timeout=IO_TIMEOUT):
        m = self.wait_log(rf"vsmtpd smtp\[(\d+)\]: info: connect from \S+:{client_port} on ",
                          timeout)
        return int(m[-1].group(1))

    def session_log(self, client_port, timeout=IO_TIMEOUT):
        """The log lines of the session from client_port, once it has ended:
        the lines of its process from its "connect from" line to its summary
        (a session process serves many connections, one after another)."""
        self.session_summary(client_port, timeout)
        text = self.log()
        start = re.search(rf"^vsmtpd smtp\[(\d+)\]: info: connect from \S+:{client_port} on .*$",
                          text, re.M)
        pid = start.group(1)
        end = re.search(rf"^vsmtpd smtp\[{pid}\]: info: disconnect from \S+\[[^\]]+\]:"
                        rf"{client_port} .*$", text[start.start():], re.M)
        block = text[start.start():start.start() + end.end()]
        return "\n".join(line for line in block.splitlines()
                         if line.startswith(f"vsmtpd smtp[{pid}]: "))

    def session_summary(self, client_port, timeout=IO_TIMEOUT):
        """The 'disconnect from ...' line of the session from client_port."""
        m = self.wait_log(rf"^vsmtpd smtp\[\d+\]: info: disconnect from \S+\[[^\]]+\]:{client_port} (.*)$",
                          timeout)
        return m[-1].group(1)

    # -- spool
    def queue_dir(self):
        return os.path.join(self.spool, "queue")

    def incoming_dir(self):
        return os.path.join(self.spool, "incoming")

    def queued(self):
        """Ids of the committed messages."""
        return sorted(os.listdir(self.queue_dir()))

    def incoming(self):
        return sorted(os.listdir(self.incoming_dir()))

    def message(self, qid):
        """(content, envelope) of a committed message."""
        return read_spool_file(os.path.join(self.queue_dir(), qid))

    def client(self, **kw):
        return SMTPClient(self.port, **kw)

    # -- vsmtpctl
    @property
    def control_path(self):
        return self.settings["server"]["control_socket"]

    def vsmtpctl(self, *args, uid=None, gid=None, timeout=IO_TIMEOUT):
        """Run `vsmtpctl -c <this daemon's configuration> args...` (as uid:gid,
        without supplementary groups, when uid is given); the
        CompletedProcess, stdout and stderr as bytes."""
        kw = {}
        if uid is not None:
            kw = {"user": uid, "group": gid if gid is not None else uid, "extra_groups": []}
        return subprocess.run([vsmtpctl_binary(), "-c", self.conf_path, *args],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                              **kw)

    def session(self, **kw):
        """A client that has been greeted and has said EHLO."""
        c = SMTPClient(self.port, **kw)
        c.ehlo()
        return c

