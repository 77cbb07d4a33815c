"""Debian's rspamd for the tests: its normal worker on a free loopback port,
with a configuration, state and log of its own in a test folder (never the
system's rspamd or its files).

The configuration is the packaged one (/etc/rspamd/common.conf: every
module, the default scores and actions) with only the normal worker;
LOCAL_CONFDIR, DBDIR, RUNDIR and LOGDIR point into the folder, so local.d/
there holds the test's settings:
- DNS goes to a closed loopback port, so the modules that look things up
  (RBLs, SPF, DKIM) fail at once and never leave the machine;
- hyperscan is off: it compiles every expression at start, which takes
  half a minute, and PCRE gives the same answers;
- milter_headers adds X-Spamd-Result, X-Rspamd-Server and X-Spam-Status to
  every message, including those from loopback (skip_local = false).

`Rspamd(folder)` is a context manager; `address` is "127.0.0.1:port".
`Rspamd(folder, milter=True)` runs the proxy worker in milter mode instead,
scanning by itself (self_scan), with milter_headers adding X-Spamd-Result
and X-Spam-Status; it is ready when its port takes connections.
rspamd takes a few seconds to load, so tests start one per module.
"""
import os
import socket
import subprocess
import time
import urllib.request

import vsmtpd_e2e as e2e

CONF = """.include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}
logging {
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "info";
}
%(worker)s
"""

WORKER = """worker "normal" {
    bind_socket = "127.0.0.1:%(port)d";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}"""

MILTER_WORKER = """worker "rspamd_proxy" {
    bind_socket = "127.0.0.1:%(port)d";
    milter = yes;
    timeout = 60s;
    upstream "local" {
        default = yes;
        self_scan = yes;
    }
    count = 1;
}"""

OPTIONS = """disable_hyperscan = true;
dns {
    nameserver = ["127.0.0.1:%(closed)d"];
    timeout = 0.2s;
    retransmits = 0;
}
"""

MILTER_HEADERS = """use = [%(use)s];
skip_local = false;
skip_authenticated = false;
"""

HEADERS = '"x-spamd-result", "x-rspamd-server", "x-spam-status"'
MILTER_MODE_HEADERS = '"x-spamd-result", "x-spam-status"'

START_TIMEOUT = 90


class Rspamd:
    def __init__(self, directory, milter=False):
        self.dir = directory
        self.milter = milter
        self.port = e2e.free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = os.path.join(directory, "rspamd.log")
        self.proc = None
        local = os.path.join(directory, "local.d")
        os.makedirs(local, exist_ok=True)
        self.conf = os.path.join(directory, "rspamd.conf")
        with open(self.conf, "w") as f:
            worker = MILTER_WORKER if milter else WORKER
            f.write(CONF % {"worker": worker % {"port": self.port}})
        with open(os.path.join(local, "options.inc"), "w") as f:
            f.write(OPTIONS % {"closed": e2e.CLOSED_PORT})
        with open(os.path.join(local, "milter_headers.conf"), "w") as f:
            f.write(MILTER_HEADERS % {"use": MILTER_MODE_HEADERS if milter else HEADERS})

    def ping(self):
        """Whether rspamd answers: the normal worker's /ping, or a
        connection to the milter proxy."""
        if self.milter:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        try:
            with urllib.request.urlopen(f"http://{self.address}/ping", timeout=1) as r:
                return r.read().strip() == b"pong"
        except OSError:
            return False

    def start(self):
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
        variables = [f"--var={v}={self.dir}" for v in ("LOCAL_CONFDIR", "DBDIR", "RUNDIR", "LOGDIR")]
        out = open(os.path.join(self.dir, "rspamd.out"), "wb")
        self.proc = subprocess.Popen(
            ["rspamd", "-f", "-u", user, "-g", group, "-c", self.conf, *variables],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rspamd did not start: see {self.log_path}")
            time.sleep(0.2)
        return self

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
