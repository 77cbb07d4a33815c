"""The README's first run, done as a new user does it.

Each test copies the checkout (its tracked and new files, no build
folders) into a temporary folder, runs the README's run command there
(`./scripts/setup.sh && ./scripts/run.sh`, read from the README itself, on a
free port given as run.sh's extra argument), sends the README's swaks
command, finds the message in the Maildir the README names, and stops the
daemon with SIGINT to its process group, as Ctrl-C in a terminal does. Then
it runs the same command again over the existing run/ folder. It does so
once as root (the daemon drops to the vsmtpd user) and once as an
unprivileged user (nobody), each in a fresh copy, so both include a build
from scratch.

The commands, the port and the mailbox path are taken from README.md:
when the README changes, these tests follow it or fail.
"""
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
from vsmtpd_e2e import SOURCE_DIR, free_port, wait_until  # noqa: E402

IS_ROOT = os.geteuid() == 0
BUILD_TIMEOUT = 600.0  # seconds for the first build and start
STOP_TIMEOUT = 45.0  # the master gives sessions up to 30 s
UNPRIVILEGED = "nobody"


# ---------------------------------------------------------------- the README

def readme_text():
    with open(os.path.join(SOURCE_DIR, "README.md"), encoding="utf-8") as f:
        return f.read()


def readme_run_command():
    """The first command of the README's first code block that runs run.sh."""
    block = re.search(r"```sh\n(.*?)```", readme_text(), re.S)
    assert block, "README.md has no sh code block"
    for line in block.group(1).splitlines():
        cmd = line.split("#", 1)[0].strip()
        if cmd.endswith("./scripts/run.sh"):
            return cmd
    raise AssertionError("README.md's first code block has no ./scripts/run.sh command")


def readme_swaks():
    """(swaks argument list, the address it listens on, the recipient)."""
    m = re.search(r"`(swaks --server (127\.0\.0\.1:\d+) --to ([^\s`]+))`", readme_text())
    assert m, "README.md names no `swaks --server ... --to ...` command"
    return m.group(1).split(), m.group(2), m.group(3)


def readme_queue_list():
    """The README's vsmtpctl command that lists the queue, as an argument list."""
    m = re.search(r"`(\./build/vsmtpctl queue list\s+-s\s+run/control)`", readme_text())
    assert m, "README.md names no `./build/vsmtpctl queue list -s run/control` command"
    return m.group(1).split()


def readme_maildir_new():
    """The Maildir folder of new mail the README tells the reader to look in."""
    m = re.search(r"`(run/mail/[^`\s]+/Maildir/new/)`", readme_text())
    assert m, "README.md names no run/mail/.../Maildir/new/ folder"
    return m.group(1)


# ---------------------------------------------------------------- the copy

def tracked_files():
    """The checkout's files as a fresh clone would have them, new ones included."""
    out = subprocess.run(["git", "-C", SOURCE_DIR, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p and os.path.lexists(os.path.join(SOURCE_DIR, p))]


def copy_checkout(dest):
    """Copy the checkout into dest/vsmtpd; returns that folder."""
    top = os.path.join(dest, "vsmtpd")
    for rel in tracked_files():
        src, dst = os.path.join(SOURCE_DIR, rel), os.path.join(top, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    return top


def chown_tree(top, uid, gid):
    for root, dirs, files in os.walk(top):
        os.chown(root, uid, gid)
        for name in files:
            os.lchown(os.path.join(root, name), uid, gid)


@pytest.fixture
def workdir():
    """A temporary folder everyone may enter (the daemon's user must reach the copy)."""
    d = tempfile.mkdtemp(prefix="vsmtpd-readme-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- running it

def as_user(name):
    """subprocess arguments that run a command as user name (None: as the test)."""
    if name is None:
        return {}
    pw = pwd.getpwnam(name)
    return dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])


class FirstRun:
    """The README's run command in a copy, its output collected in a file."""

    def __init__(self, top, port, user=None):
        self.top, self.port, self.user = top, port, user
        self.log_path = os.path.join(os.path.dirname(top), f"run-{time.monotonic_ns()}.log")
        self.proc = None

    def start(self):
        cmd = readme_run_command() + f" -o listener:smtp.address=127.0.0.1:{self.port}"
        env = dict(os.environ)
        if self.user:
            env.update(HOME=self.top, USER=self.user, LOGNAME=self.user)
        self.log = open(self.log_path, "wb")
        # bash, like the reader's shell, lets the foreground command handle
        # Ctrl-C and takes its exit status (dash would die of the SIGINT).
        self.proc = subprocess.Popen(["bash", "-c", cmd], cwd=self.top, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, **as_user(self.user))
        wait_until(lambda: self.started() or self.proc.poll() is not None, timeout=BUILD_TIMEOUT,
                   interval=0.2, what="vsmtpd to start")
        assert self.proc.poll() is None, f"run.sh ended ({self.proc.returncode}):\n{self.output()}"
        return self

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def started(self):
        return re.search(r"master\[\d+\]: info: vsmtpd \S+ started", self.output())

    def list_queue(self):
        """The README's queue listing, as the user who started the daemon."""
        r = subprocess.run(readme_queue_list(), cwd=self.top, capture_output=True, text=True,
                           timeout=30, **as_user(self.user))
        assert r.returncode == 0 and r.stderr == "", f"{r.stdout}{r.stderr}"
        return r.stdout

    def interrupt(self):
        """Ctrl-C: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        finally:
            self.log.close()
        assert rc == 0, f"vsmtpd stopped with status {rc}:\n{self.output()}"
        with pytest.raises(ProcessLookupError):
            os.killpg(self.proc.pid, 0)  # nothing of the daemon is left
        return self.output()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=STOP_TIMEOUT)


def send_as_readme(port):
    """The README's swaks command, on the test's port; returns swaks's output."""
    args, address, _ = readme_swaks()
    args = [a.replace(address, f"127.0.0.1:{port}") for a in args]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"swaks failed:\n{r.stdout}{r.stderr}"
    m = re.search(r"<-  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})", r.stdout)
    assert m, r.stdout
    return m.group(1)


def delivered(top, count):
    """The files in the README's Maildir new/ folder once there are count of them."""
    new = os.path.join(top, readme_maildir_new())

    def files():
        names = sorted(os.listdir(new)) if os.path.isdir(new) else []
        return names if len(names) >= count else None
    return [os.path.join(new, n) for n in wait_until(files, timeout=20, what=f"{count} messages in {new}")]


def first_run_twice(top, user=None):
    """Run, send, find, Ctrl-C; then all of it again over the existing run/."""
    _, _, rcpt = readme_swaks()
    logs = []
    for attempt in (1, 2):
        run = FirstRun(top, free_port(), user)
        try:
            run.start()
            qid = send_as_readme(run.port)
            files = delivered(top, attempt)
            run.list_queue()
            log = run.interrupt()
        finally:
            run.kill()
        assert f"{qid}: to=<{rcpt}>, relay=maildir" in log and "status=sent" in log, log
        assert "status=deferred" not in log, log
        assert not re.search(r"^vsmtpd \w+\[\d+\]: (warning|err): ", log, re.M), log
        assert re.search(r"master\[\d+\]: info: stopped", log), log
        with open(files[-1], "rb") as f:
            msg = f.read()
        assert b"X-Mailer: swaks" in msg and b"This is a test mailing" in msg
        logs.append(log)
    # The first run's build shows its progress rather than hiding it.
    assert "run.sh: building vsmtpd" in logs[0]
    assert re.search(r"\[\s*\d+%\] Building C object", logs[0]), logs[0]
    return files, log


# ---------------------------------------------------------------- the tests

@pytest.mark.skipif(not IS_ROOT, reason="needs root: the README's run as root")
def test_first_run_as_root(workdir):
    top = copy_checkout(workdir)
    files, log = first_run_twice(top)
    assert re.search(r"running as user vsmtpd \(uid \d+", log), log
    vsmtpd_uid = pwd.getpwnam("vsmtpd").pw_uid
    assert all(os.stat(f).st_uid == vsmtpd_uid for f in files)


def test_first_run_as_ordinary_user(workdir):
    top = copy_checkout(workdir)
    user = None
    if IS_ROOT:
        user = UNPRIVILEGED
        pw = pwd.getpwnam(user)
        chown_tree(top, pw.pw_uid, pw.pw_gid)
    files, log = first_run_twice(top, user)
    assert "running as user" not in log
    assert all(os.stat(f).st_uid == (pwd.getpwnam(user).pw_uid if user else os.geteuid()) for f in files)


@pytest.mark.skipif(not IS_ROOT, reason="needs root: the checkout in a folder only root may enter")
def test_root_run_in_closed_folder_says_why(workdir):
    """A checkout under a folder the vsmtpd user cannot enter (like /root) is
    refused before the build, with what to do instead."""
    os.chmod(workdir, 0o700)
    top = copy_checkout(workdir)
    r = subprocess.run(["./scripts/run.sh"], cwd=top, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "the vsmtpd user cannot reach" in r.stderr and top in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(top, "build"))


@pytest.mark.skipif(not IS_ROOT, reason="needs root: a run/ left by a run as root")
def test_user_run_over_root_run_says_why(workdir):
    top = copy_checkout(workdir)
    pw = pwd.getpwnam(UNPRIVILEGED)
    chown_tree(top, pw.pw_uid, pw.pw_gid)
    v = pwd.getpwnam("vsmtpd")
    os.makedirs(os.path.join(top, "run", "spool"))
    chown_tree(os.path.join(top, "run"), v.pw_uid, v.pw_gid)
    r = subprocess.run(["./scripts/run.sh"], cwd=top, capture_output=True, text=True, timeout=60,
                       **as_user(UNPRIVILEGED))
    assert r.returncode == 1
    assert "belongs to another user" in r.stderr and "rm -rf run" in r.stderr, r.stderr
