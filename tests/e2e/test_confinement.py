"""What a compromised session or delivery worker can reach.

The stand-in for a memory bug is code injected into the live process with
ptrace (ptrace_inject.Injector): each system call runs inside the process,
under its seccomp filter and Landlock domain, as the attacker's would. A
session must not make a Unix socket (so no connect to the control socket),
signal, ptrace or read the memory of any other process of the daemon;
after the probes the daemon is whole and the session still serves its
client. The control socket refuses a connection from the daemon's own
processes: the delivery worker, which keeps Unix sockets for LMTP, is the
probe. And no child holds a descriptor of the master's (its event loop, its
listeners, the control socket). Sessions log through syslog as well as on
stderr once confined.
"""
import ctypes
import errno
import json
import os
import re
import signal
import socket
import struct
import threading

import pytest

import ptrace_inject
import vsmtpd_e2e as e2e
from ptrace_inject import EPERM, Injector

AF_UNIX, AF_INET = 1, 2
SOCK_STREAM, SOCK_CLOEXEC = 1, 0o2000000
F_SETOWN = 8
RLIMIT_FSIZE, PRIO_PROCESS = 1, 0
PTRACE_ATTACH = 16
CLONE_NEWUSER = 0x10000000
POLLIN = 1
MSG_DONTWAIT, MSG_NOSIGNAL = 0x40, 0x4000

needs_injection = pytest.mark.skipif(ptrace_inject.supported() is not None,
                                     reason=ptrace_inject.supported() or "")


def worker_pid(d):
    m = d.wait_log(r"vsmtpd delivery\[(\d+)\]: info: delivery worker started")
    return int(m[-1].group(1))


def sessions_line(d):
    return d.wait_log(r"master\[\d+\]: info: sessions confined: (.*)$")[-1].group(1)


def kernel_has_seccomp():
    with open("/proc/self/status") as f:
        return any(line.startswith("Seccomp:") for line in f)


def assert_refused(result, what):
    # EACCES is what some kernel checks answer; seccomp and Landlock's
    # scoping answer EPERM.
    assert result in (EPERM, -errno.EACCES), \
        f"{what}: expected EPERM, got {result} ({os.strerror(-result) if result < 0 else 'success'})"


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def first_mapping(pid):
    with open(f"/proc/{pid}/maps") as f:
        return int(f.readline().split("-", 1)[0], 16)


@needs_injection
def test_a_compromised_session_reaches_no_other_process(daemons):
    if not kernel_has_seccomp():
        pytest.skip("this kernel has no seccomp")
    d = daemons()
    master, queue, worker = d.pid, d.queue_pid(), worker_pid(d)
    c = d.session()
    session = d.session_pid(c.local_port)
    processes = set(d.processes())

    with Injector(session) as inj:
        # The harness works: the calls run in the session, and what the
        # session needs still works (c-ares makes Internet sockets).
        assert inj.syscall("getpid") == session
        fd = inj.syscall("socket", AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)
        assert fd >= 0, f"an Internet socket must stay possible: {fd}"
        assert inj.syscall("close", fd) == 0

        # No Unix socket, so no connect to the control socket (or any other).
        assert_refused(inj.syscall("socket", AF_UNIX, SOCK_STREAM, 0), "socket(AF_UNIX)")
        pair = inj.put(bytes(8))
        assert_refused(inj.syscall("socketpair", AF_UNIX, SOCK_STREAM, 0, pair), "socketpair")

        # No signal to any process of the daemon, nor to its process group.
        assert_refused(inj.syscall("kill", master, 0), "kill(master, 0)")
        assert_refused(inj.syscall("kill", queue, signal.SIGTERM), "kill(queue, SIGTERM)")
        assert_refused(inj.syscall("kill", worker, 0), "kill(worker, 0)")
        assert_refused(inj.syscall("kill", 0, signal.SIGTERM), "kill(0, SIGTERM)")
        assert_refused(inj.syscall("kill", -1, signal.SIGTERM), "kill(-1, SIGTERM)")
        assert_refused(inj.syscall("tgkill", master, master, signal.SIGTERM), "tgkill(master)")
        assert_refused(inj.syscall("pidfd_open", queue, 0), "pidfd_open(queue)")
        assert_refused(inj.syscall("fcntl", 1, F_SETOWN, queue), "fcntl(F_SETOWN, queue)")
        # Nor change its limits (RLIMIT_FSIZE 0 would end it at its next write)
        # or its priority.
        old = inj.put(bytes(16))
        assert_refused(inj.syscall("prlimit64", queue, RLIMIT_FSIZE, 0, old), "prlimit(queue)")
        assert_refused(inj.syscall("setpriority", PRIO_PROCESS, queue, 0), "setpriority(queue)")

        # No ptrace, no reading another process's memory.
        assert_refused(inj.syscall("ptrace", PTRACE_ATTACH, queue, 0, 0), "ptrace(ATTACH, queue)")
        buf = inj.put(bytes(64))
        local = inj.put(struct.pack("QQ", buf, 64))
        remote = inj.put(struct.pack("QQ", first_mapping(queue), 64))
        assert_refused(inj.syscall("process_vm_readv", queue, local, 1, remote, 1, 0),
                       "process_vm_readv(queue)")

        # Nor the ways around the filter: io_uring, a new user namespace.
        params = inj.put(bytes(120))
        assert_refused(inj.syscall("io_uring_setup", 1, params), "io_uring_setup")
        assert_refused(inj.syscall("unshare", CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
        if "sanitizer build" not in d.log():  # LeakSanitizer needs them there
            assert_refused(inj.syscall("fork"), "fork")
            assert_refused(inj.syscall("clone", signal.SIGCHLD, 0, 0, 0, 0), "clone")

    # The daemon is whole: the same processes, none killed.
    for pid in (master, queue, worker, session):
        assert alive(pid), f"process {pid} is gone after the probes"
    assert set(d.processes()) == processes
    assert "killed by signal" not in d.log()
    # The session's own connection still works, and mail goes through.
    c.expect("NOOP", 250, "2.0.0")
    qid = c.send_message(b"Subject: after the probes\r\n\r\nstill here\r\n")
    assert qid in d.queued()
    c.quit()
    assert "result=ok" in d.session_summary(c.local_port)


@needs_injection
def test_the_control_socket_refuses_the_daemons_own_processes(daemons):
    d = daemons()
    with d.session() as c:
        qid = c.send_message(b"Subject: kept\r\n\r\nkept\r\n")
        c.quit()
    worker = worker_pid(d)
    request = b'{"cmd":"list"}\n'

    with Injector(worker) as inj:
        fd = inj.syscall("socket", AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)
        assert fd >= 0, f"the worker keeps Unix sockets (LMTP): {fd}"
        addr, addrlen = ptrace_inject.sockaddr_un(d.control_path)
        assert inj.syscall("connect", fd, inj.put(addr), addrlen) == 0
        # The master may have closed the connection already (EPIPE).
        sent = inj.syscall("sendto", fd, inj.put(request), len(request), MSG_NOSIGNAL, 0, 0)
        assert sent in (len(request), -errno.EPIPE), sent
        # Wait (at most 10 s) for the master's answer: the connection closes
        # with nothing said, or with the request unread (ECONNRESET).
        pollfd = inj.put(struct.pack("ihh", fd, POLLIN, 0))
        assert inj.syscall("poll", pollfd, 1, 10000) == 1
        buf = inj.put(bytes(512))
        got = inj.syscall("recvfrom", fd, buf, 512, MSG_DONTWAIT, 0, 0)
        answer = inj.read(buf, got) if got > 0 else b""
        assert got in (0, -errno.ECONNRESET), f"the control socket answered: {answer!r}"
        assert inj.syscall("close", fd) == 0

    d.wait_log(rf"master\[\d+\]: warning: control: refused a connection from pid {worker}, "
               r"the delivery worker: only vsmtpctl from outside the daemon is served")
    assert alive(worker)
    # Nothing reached the queue; from outside, vsmtpctl is served as before.
    assert "control: uid" not in d.log()
    out = d.vsmtpctl("queue", "list", "--json")
    assert out.returncode == 0, out.stderr
    assert [m["id"] for m in json.loads(out.stdout)["messages"]] == [qid]


# kcmp(2) on x86_64: whether two processes' descriptors are the same open file.
SYS_KCMP, KCMP_FILE = 312, 0
_libc = ctypes.CDLL(None, use_errno=True)


def same_file(pid1, fd1, pid2, fd2):
    rc = _libc.syscall(SYS_KCMP, pid1, pid2, KCMP_FILE, fd1, fd2)
    assert rc >= 0, f"kcmp: {os.strerror(ctypes.get_errno())}"
    return rc == 0


def descriptors(pid):
    """pid's descriptors above stderr, with what they are."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        if int(name) > 2:
            try:
                out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                pass
    return out


@needs_injection
def test_no_child_holds_a_descriptor_of_the_master(daemons):
    d = daemons()
    c = d.session()
    session = d.session_pid(c.local_port)
    master = descriptors(d.pid)
    # The master's event loop, listener, control socket, queue channel.
    assert any("eventpoll" in what for what in master.values()), master
    for child, name in ((session, "session"), (d.queue_pid(), "queue"),
                        (worker_pid(d), "delivery worker")):
        shared = [(fd, what, mfd, master[mfd]) for fd, what in descriptors(child).items()
                  for mfd in master if same_file(child, fd, d.pid, mfd)]
        assert shared == [], f"the {name} holds descriptors of the master: {shared}"
    c.quit()


def test_the_confinement_of_each_process_is_logged(daemons):
    d = daemons()
    line = sessions_line(d)
    worker = d.wait_log(r"delivery\[\d+\]: info: delivery worker confinement: (.*)$")[-1].group(1)
    c = d.session()
    session = d.session_pid(c.local_port)
    for text, pid in ((line, session), (worker, worker_pid(d))):
        status = e2e.proc_status(pid)
        assert status["NoNewPrivs"] == "1"
        if "seccomp:" in text:
            assert status["Seccomp"] == "2", f"{pid} logs a filter it does not have: {text}"
        else:
            assert "warning: this kernel has no seccomp filters" in d.log()
    if "no seccomp filter" not in line:
        assert "seccomp: Internet sockets only, no socket pairs, signals to itself only" in line
        assert "seccomp: Internet and Unix sockets, signals to itself only" in worker
    if re.search(r"Landlock ABI ([6-9]|\d\d)", line):
        assert "signals and abstract Unix sockets scoped" in line
        assert "signals and abstract Unix sockets scoped" in worker
    c.quit()


# ---------------------------------------------------------------- syslog

class SyslogSink:
    """A datagram socket standing in for /dev/log: keeps what arrives."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.records = []
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            with self.lock:
                self.records.append(data.decode("utf-8", "replace"))

    def lines(self):
        with self.lock:
            return list(self.records)

    def close(self):
        self.done = True
        self.thread.join()
        self.sock.close()


SYSLOG_RE = re.compile(r"^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d vsmtpd\[(\d+)\]: (\w+): (.*)$",
                       re.S)
LEVELS = ["emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"]

# In a mount namespace of its own, the daemon finds the sink at /dev/log:
# a tmpfs over /dev with the few device nodes it opens bound from the real one.
SYSLOG_SETUP = """set -e
mkdir -p "$1/dev"; mount --bind /dev "$1/dev"
mount -t tmpfs -o mode=0755 tmpfs /dev
for n in null zero full random urandom; do touch /dev/$n; mount --bind "$1/dev/$n" /dev/$n; done
touch /dev/log; mount --bind "$2" /dev/log
umount "$1/dev"
shift 2; exec "$@"
"""


class SyslogDaemon(e2e.Daemon):
    """A daemon with log = syslog, its /dev/log the sink's socket; its log()
    shows the records in the stderr form, so the helpers work unchanged."""

    def __init__(self, directory, **kw):
        super().__init__(directory, **kw)
        self.sink = SyslogSink(os.path.join(directory, "devlog"))
        self.settings["server"]["log"] = "syslog"
        self.write_config()

    def command(self):
        return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                SYSLOG_SETUP, "sh", self.dir, self.sink.path] + super().command()

    def log(self):
        out = [super().log()]
        for record in self.sink.lines():
            m = SYSLOG_RE.match(record)
            assert m, f"not a syslog record of vsmtpd: {record!r}"
            out.append(f"vsmtpd {m.group(3)}[{m.group(2)}]: {LEVELS[int(m.group(1)) & 7]}: "
                       f"{m.group(4)}\n")
        return "".join(out)


@needs_injection
def test_confined_sessions_log_through_syslog(workspace):
    d = SyslogDaemon(workspace.new_dir("syslog"))
    try:
        d.start()
        assert sessions_line(d)
        assert d.wait_log(r"delivery\[\d+\]: info: delivery worker confinement: ")
        c = d.session()
        session = d.session_pid(c.local_port)
        # Confined, it cannot make a new connection to syslog ...
        with Injector(session) as inj:
            assert_refused(inj.syscall("socket", AF_UNIX, 2, 0), "socket(AF_UNIX, SOCK_DGRAM)")
        # ... and logs through the one it made before: every line of it
        # arrives, to the summary at the end.
        qid = c.send_message(b"Subject: logged\r\n\r\nlogged\r\n")
        c.quit()
        summary = d.session_summary(c.local_port)
        assert f"ids={qid}" in summary and "result=ok" in summary
        assert d.wait_log(rf"delivery\[\d+\]: info: {qid}: to=<rcpt@example.net>")
        assert os.path.getsize(d.log_path) == 0, d.log()  # nothing went to stderr
    finally:
        d.stop()
        d.sink.close()
