"""Outside services for the tests of [service:NAME] (docs/rules.md, Services):
Debian's clamd and spamd started on loopback with their own configuration
and state under a test directory (never the system's services), and small
servers that misbehave: one that takes connections and never answers, one
that resets them, one that answers garbage.

Each starter returns an object with stop(); the tests start each once per
module (bad_servers() gives a fixture's several misbehaving servers). And
what the tests of the services share about the daemon: a message sent and
timed (send_timed), the variables its rules recorded (tx_vars).

clamd gets a signature database made here: an .ndb signature of the EICAR
test string (no freshclam, no download), so it starts in a fraction of a
second.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import vsmtpd_e2e as e2e

# The EICAR test file (eicar.org): detected by the signature below.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_SIGNATURE = "EicarTest"
EICAR_VIRUS = "EicarTest.UNOFFICIAL"  # clamd's name for a signature of an .ndb file

# SpamAssassin's GTUBE test string: any message holding it scores 1000.
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def _socket_dir():
    """A short directory for Unix sockets (sun_path holds 108 bytes), which
    the daemon's unprivileged user can traverse."""
    d = tempfile.mkdtemp(prefix="vs-svc-")
    os.chmod(d, 0o755)
    return d


def _wait_port(port, proc, what, log_path, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                raise RuntimeError(f"{what} exited with {proc.returncode}:\n{f.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def _stop(proc):
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Clamd:
    """clamd on 127.0.0.1:<port> and on a Unix socket (unix_path);
    stream_max: its StreamMaxLength ("64K"), clamd's default when None."""

    def __init__(self, directory, stream_max=None):
        self.dir = directory
        self.stream_max = stream_max
        self.binary = shutil.which("clamd") or "/usr/sbin/clamd"
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("clamd is not installed (Debian package clamav-daemon)")
        self.sock_dir = _socket_dir()
        self.unix_path = os.path.join(self.sock_dir, "clamd.sock")
        self.port = e2e.free_port()
        self.proc = None

    def start(self):
        db = os.path.join(self.dir, "db")
        os.makedirs(db, exist_ok=True)
        with open(os.path.join(db, "test.ndb"), "w") as f:
            f.write(f"{EICAR_SIGNATURE}:0:*:{EICAR.hex()}\n")
        conf = os.path.join(self.dir, "clamd.conf")
        self.log_path = os.path.join(self.dir, "clamd.log")
        with open(conf, "w") as f:
            f.write("Foreground yes\n"
                    f"DatabaseDirectory {db}\n"
                    "TCPAddr 127.0.0.1\n"
                    f"TCPSocket {self.port}\n"
                    f"LocalSocket {self.unix_path}\n"
                    "LocalSocketMode 666\n"
                    f"PidFile {os.path.join(self.dir, 'clamd.pid')}\n"
                    f"TemporaryDirectory {self.dir}\n"
                    "SelfCheck 0\n"
                    "LogTime yes\n")
            if self.stream_max:
                f.write(f"StreamMaxLength {self.stream_max}\n")
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen([self.binary, "-c", conf], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, start_new_session=True)
        _wait_port(self.port, self.proc, "clamd", self.log_path)
        return self

    def stop(self):
        _stop(self.proc)
        shutil.rmtree(self.sock_dir, ignore_errors=True)


class Spamd:
    """SpamAssassin's spamd on 127.0.0.1:<port>, local tests only (-L: no
    network checks), no user configuration, its home under directory."""

    def __init__(self, directory):
        self.dir = directory
        self.binary = shutil.which("spamd") or "/usr/sbin/spamd"
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("spamd is not installed (Debian package spamd)")
        self.port = e2e.free_port()
        self.proc = None

    def start(self):
        home = os.path.join(self.dir, "home")
        os.makedirs(home, exist_ok=True)
        self.log_path = os.path.join(self.dir, "spamd.log")
        env = dict(os.environ, HOME=home)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                [self.binary, f"--listen=127.0.0.1:{self.port}", "--local", "--nouser-config",
                 "--max-children=1", "--min-children=1", "--syslog=stderr",
                 f"--pidfile={os.path.join(self.dir, 'spamd.pid')}",
                 f"--helper-home-dir={home}"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env,
                start_new_session=True)
        _wait_port(self.port, self.proc, "spamd", self.log_path, timeout=60)
        return self

    def stop(self):
        _stop(self.proc)


class BadServer:
    """A TCP server on 127.0.0.1:<port> that misbehaves with every client:
    mode "hang" takes the connection and never answers, "reset" reads a
    little then resets it, "garbage" answers `answer`, then reads until the
    client closes (2 s at most) and closes."""

    def __init__(self, mode, answer=b"HELLO? 42\r\n"):
        self.mode = mode
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "hang":
                self.held.append(conn)
                continue
            try:
                conn.settimeout(2)
                conn.recv(4096)
                if self.mode == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    conn.sendall(self.answer)
                    # Take what the client still sends before closing: a
                    # close with unread data resets the connection, and the
                    # client could read the reset before the answer.
                    conn.shutdown(socket.SHUT_WR)
                    while conn.recv(65536):
                        pass
            except OSError:
                pass
            conn.close()

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for conn in self.held:
            conn.close()
        self.thread.join(5)


def bad_servers(*modes):
    """The body of a module fixture: {mode: BadServer(mode)} started for
    each mode, stopped after."""
    servers = {mode: BadServer(mode).start() for mode in modes}
    yield servers
    for s in servers.values():
        s.stop()


def send_timed(d, rcpt, message, expect_code=250):
    """Send message to rcpt through daemon d, expecting expect_code at the
    end of the data; the final reply and the seconds it took."""
    with d.client() as c:
        c.ehlo()
        c.mail("alice@example.org")
        c.expect(f"RCPT TO:<{rcpt}>", 250)
        c.expect("DATA", 354)
        t0 = time.monotonic()
        c.send(e2e.stuff(message) + b".\r\n")
        r = c.read_reply()
        took = time.monotonic() - t0
        c.quit()
    assert r.code == expect_code, r
    return r, took


def tx_vars(d, qid, where="queue"):
    """The variables the rules set on message qid, in the spool folder
    where (queue, or a quarantine's "quarantine/NAME")."""
    _, env = e2e.read_spool_file(os.path.join(d.spool, where, qid))
    v = env.get("vars") or {}
    return json.loads(v) if isinstance(v, str) else v
