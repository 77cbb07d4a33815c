#!/usr/bin/python3
"""accept.py - compare how fast vsmtpd and Postfix accept mail on loopback.

Starts a throw-away vsmtpd and a throw-away Postfix instance, both spooling
into one temporary directory (so both commit to the same file system), and
drives each with Postfix's smtp-source. For every message size and session
count it measures messages per second (wall clock of smtp-source) and the
servers' CPU time per 1000 messages, runs the two servers interleaved so
that noise on a shared machine hits both alike, and prints the medians.

Both servers put accepted mail on hold, so they only accept and store it:
Postfix with the HOLD action of a check_client_access restriction at the
end of DATA, vsmtpd with a rules file the bench writes, whose first rule, at
connect, calls ctx:hold() (the policy under test, if any, follows it): each
message is committed into hold/ and never handed to the delivery worker.
Both keep their durability: vsmtpd syncs each message file and the hold
directory before its 250, Postfix's cleanup syncs the queue file.

Needs root (Postfix's master must start as root), smtp-source and postfix.
Run "accept.py --help" for the options; bench/README.md has an overview.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
SENDER = "bench-sender@example.org"
RECIPIENT = "bench-rcpt@example.com"
HELO_NAME = "bench-client.example.org"

# Messages per run, per (payload bytes, sessions): enough for a few seconds
# of load each, so connection set-up at the start and the tail at the end
# are small next to the steady state. --scale multiplies them.
DEFAULT_COUNTS = {
    (5120, 1): 2500,
    (5120, 16): 5000,
    (5120, 64): 5000,
    (102400, 1): 2000,
    (102400, 16): 4000,
    (102400, 64): 3000,
}

START_TIMEOUT = 20      # seconds for a server to show its 220 greeting
STOP_TIMEOUT = 15       # seconds for a server to exit after being told to
SETTLE_TIMEOUT = 10     # seconds for the queue count to reach the target
COMMAND_TIMEOUT = 60    # seconds for postfix start/stop and similar


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_greeting(port, timeout):
    """Wait until a server on 127.0.0.1:port answers with 220; True if so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def count_files(path):
    """Regular files below path (Postfix may hash queue directories)."""
    n = 0
    for _, _, files in os.walk(path):
        n += len(files)
    return n


def create_cost_us(directory, n=300):
    """CPU microseconds this process takes to create one empty file in a
    new directory below directory (the files stay until the end)."""
    d = os.path.join(directory, "create-probe")
    os.mkdir(d)
    t = time.process_time()
    for i in range(n):
        os.close(os.open(os.path.join(d, str(i)), os.O_CREAT | os.O_WRONLY, 0o600))
    return (time.process_time() - t) / n * 1e6


# ---------------------------------------------------------------------------
# CPU accounting

def run_setup(args, prefix="vsmtpd-bench."):
    """What every benchmark does before it starts its servers: SIGTERM and
    SIGHUP end the run as Ctrl-C does (through the caller's cleanup), a
    temporary directory under args.workdir that the daemons' users can
    reach, and a meter class: CPU accounting by cgroup where one can be
    made (unless --no-cgroup), else from /proc. Returns (workdir, meter_class)."""
    def on_signal(signo, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    workdir = tempfile.mkdtemp(prefix=prefix, dir=args.workdir)
    os.chmod(workdir, 0o755)  # the daemons' users must reach their spools
    cg_root = None if args.no_cgroup else find_cgroup2_root()
    if cg_root:
        return workdir, lambda name: CgroupMeter(cg_root, name)
    return workdir, lambda name: ProcMeter(None, name)


def find_cgroup2_root():
    """The writable cgroup v2 hierarchy, or None.

    On a pure v2 system it is /sys/fs/cgroup; on a hybrid one (v1
    controllers plus a v2 tree) it is /sys/fs/cgroup/unified. Both give
    cpu.stat with usage_usec in every group even without the cpu controller.
    """
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if not os.path.exists(os.path.join(root, "cgroup.controllers")):
            continue
        probe = os.path.join(root, "vsmtpd-bench-probe-%d" % os.getpid())
        try:
            os.mkdir(probe)
            ok = os.path.exists(os.path.join(probe, "cpu.stat"))
            os.rmdir(probe)
            if ok:
                return root
        except OSError:
            pass
    return None


class CgroupMeter:
    """CPU time of every process ever placed in one cgroup.

    The counter includes processes that have exited, so forked sessions and
    Postfix daemons that retire are all counted, with nothing sampled at the
    wrong moment.
    """
    method = "cgroup v2 cpu.stat"

    def __init__(self, root, name):
        self.path = os.path.join(root, "vsmtpd-bench-%d-%s" % (os.getpid(), name))
        os.mkdir(self.path)

    def enter(self):
        """Move the calling process into the group (a preexec_fn)."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def attach(self, pid):
        pass

    def seconds(self):
        with open(os.path.join(self.path, "cpu.stat")) as f:
            for line in f:
                key, value = line.split()
                if key == "usage_usec":
                    return int(value) / 1e6
        raise BenchError("no usage_usec in %s/cpu.stat" % self.path)

    def pids(self):
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def kill_all(self):
        kill_file = os.path.join(self.path, "cgroup.kill")
        if os.path.exists(kill_file):
            with open(kill_file, "w") as f:
                f.write("1")
        else:
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self):
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            os.rmdir(self.path)
        except OSError as e:
            log("warning: cannot remove %s: %s" % (self.path, e))


class ProcMeter:
    """CPU time of a process tree from /proc, where no cgroup can be made.

    The sum over the live tree of utime+stime, plus the root's cutime+cstime
    for the children it has reaped. A process that exits between two samples
    moves from the first part to the second, so deltas stay right as long as
    every exiting process is reaped by one inside the tree (true for both
    servers: their masters reap their children).
    """
    method = "/proc utime+stime+cutime+cstime"
    tick = os.sysconf("SC_CLK_TCK")

    def __init__(self, root, name):
        self.root_pid = None

    def enter(self):
        pass

    def attach(self, pid):
        self.root_pid = pid

    @staticmethod
    def _stat(pid):
        with open("/proc/%d/stat" % pid) as f:
            # The command name may hold blanks: split after its ')'.
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
        return int(fields[1]), [int(x) for x in fields[11:15]]

    def seconds(self):
        if self.root_pid is None:
            return 0.0
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stats[int(entry)] = self._stat(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        if self.root_pid not in stats:
            raise BenchError("process %d has gone" % self.root_pid)
        children = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        total = sum(stats[self.root_pid][1][2:4])
        todo = [self.root_pid]
        while todo:
            pid = todo.pop()
            total += sum(stats[pid][1][0:2])
            todo.extend(children.get(pid, []))
        return total / self.tick

    def kill_all(self):
        pass

    def remove(self):
        pass


# ---------------------------------------------------------------------------
# The servers

# The rules file of a vsmtpd that holds what it accepts: one action first at
# connect, then the policy under test (loaded as a module from a copy of its
# folder, so its lists and modules are found), a hook-form one included.
HOLD_RULES = """-- Written by bench/accept.py: hold every message on accept, as the
-- Postfix instance does with its HOLD action, then the policy, if any.
local policy = {policy}
if type(policy) ~= "table" then
  policy = {{}}
end
if rawget(_G, "on_connect") ~= nil then -- a hook-form policy: its hook becomes a rule
  policy.connect = {{ rule "on_connect" (on_connect) }}
  on_connect = nil
end
policy.connect = policy.connect or {{}}
table.insert(policy.connect, 1, action "bench: hold" (function(ctx)
  ctx:hold("bench: accepted only")
end))
return policy
"""
HOLD_POLICY_MODULE = "bench_policy"


def hold_rules(directory, policy):
    """Write into directory the rules of a vsmtpd that holds every message,
    with the rules file policy (None: none) after the hold; their path."""
    os.makedirs(directory)
    if policy is not None:
        shutil.copytree(os.path.dirname(policy), directory, dirs_exist_ok=True)
        shutil.copyfile(policy, os.path.join(directory, HOLD_POLICY_MODULE + ".lua"))
    path = os.path.join(directory, "bench-hold.lua")
    with open(path, "w") as f:
        f.write(HOLD_RULES.format(
            policy='require("%s")' % HOLD_POLICY_MODULE if policy is not None else "{}"))
    return path


class Vsmtpd:
    """vsmtpd with a rules file: rules=None runs no policy, else the given
    file (its lists beside it). With hold (the default) every message is
    held on accept (see the module's docstring) by rules written beside
    the spool; without, rules is run as it is and mail is delivered as the
    options say. options are more "section.key=value" settings for -o."""

    def __init__(self, binary, conf, workdir, meter, name="vsmtpd", rules=None,
                 options=(), hold=True):
        self.name = name
        self.binary = binary
        self.conf = conf
        self.dir = os.path.join(workdir, name)
        self.spool = os.path.join(self.dir, "spool")
        self.logfile = os.path.join(self.dir, "vsmtpd.log")
        self.port = free_port()
        self.meter = meter
        self.proc = None
        self.options = list(options)
        self.hold = hold
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o755)  # the spool below is made for nobody
        if hold:
            self.rules = hold_rules(os.path.join(self.dir, "rules"), rules)
        elif rules is None:
            self.rules = os.path.join(self.dir, "no-rules.lua")
            with open(self.rules, "w") as f:
                f.write("-- no rules\n")
        else:
            self.rules = rules

    def start(self):
        cmd = [self.binary, "-c", self.conf,
               "-o", "listener:smtp.address=127.0.0.1:%d" % self.port,
               "-o", "server.spool_dir=%s" % self.spool,
               "-o", "rules.file=%s" % self.rules,
               "-o", "rules.app_dir=%s" % os.path.join(self.dir, "app"),
               "-o", "server.log=stderr",
               "-o", "server.user=nobody",
               "-o", "server.group=nogroup",
               "-o", "limits.max_sessions=200",
               "-o", "limits.max_sessions_per_ip=200",
               "-o", "server.control_socket=%s" % os.path.join(self.dir, "control"),
               # Held mail is never delivered; should a message escape the
               # hold, nothing leaves the machine: a closed port.
               "-o", "delivery.relay_host=127.0.0.1:1",
               "-o", "delivery.local_transport=lmtp",
               "-o", "delivery.lmtp=127.0.0.1:1"]
        for option in self.options:
            cmd += ["-o", option]
        with open(self.logfile, "ab") as logf:
            # Its own session: Ctrl-C on the terminal reaches only us, and we
            # stop the daemon in order.
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, start_new_session=True,
                                         preexec_fn=self.meter.enter)
        self.meter.attach(self.proc.pid)
        if not wait_greeting(self.port, START_TIMEOUT):
            raise BenchError("vsmtpd did not start; see %s:\n%s"
                             % (self.logfile, tail(self.logfile)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def queued(self):
        """Messages accepted and kept: in hold/ (queue/ without the hold)."""
        return count_files(os.path.join(self.spool, "hold" if self.hold else "queue"))

    def leftovers(self):
        return count_files(os.path.join(self.spool, "incoming"))

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log("vsmtpd did not stop in %ds: killing it" % STOP_TIMEOUT)
        # Sessions or the queue process that outlived the master.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.meter.kill_all()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def log_problems(self):
        # Its levels above notice, and sessions that died on a signal.
        return grep_problems(self.logfile, (": warning:", ": error:", ": crit:", ": alert:",
                                            ": emerg:", "killed by signal"))


# A master.cf for the throw-away instance: the stock services, none
# chrooted (a chroot would need copies of /etc files in the queue
# directory), smtpd on the loopback port only.
POSTFIX_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:{port} inet n     -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    name = "postfix"

    def __init__(self, workdir, meter):
        self.dir = os.path.join(workdir, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "maillog")
        self.port = free_port()
        self.meter = meter
        self.started = False
        for d in (self.dir, self.etc, self.queue, self.data):
            os.mkdir(d)
            os.chmod(d, 0o755)
        shutil.chown(self.data, "postfix", "postfix")
        self._configure()

    def _configure(self):
        main_cf = {
            "compatibility_level": "3.6",
            # Everything of this instance lives in the temporary directory:
            # Postfix refuses a second master on a queue directory in use.
            "queue_directory": self.queue,
            "data_directory": self.data,
            # Log to a file of our own (there may be no syslog daemon);
            # Postfix wants the file's directory whitelisted.
            "maillog_file": self.logfile,
            "maillog_file_prefixes": self.dir,
            "syslog_name": "postfix-bench",
            "myhostname": "bench-postfix.localdomain",
            "mydomain": "localdomain",
            "mydestination": "example.com",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            # Accept any recipient in example.com without user or alias
            # lookups, as vsmtpd does.
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            # No per-client limits: all load comes from one address.
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            "smtpd_client_new_tls_session_rate_limit": "0",
            "default_process_limit": "200",
            # Keep accepted mail in the hold queue: we measure accepting
            # only (vsmtpd holds its mail too, see the docstring).
            "smtpd_end_of_data_restrictions": "check_client_access static:HOLD",
            # in_flow_delay makes smtpd wait up to this long per message when
            # mail arrives faster than qmgr delivers it; with everything on
            # hold nothing is ever delivered, so it would throttle every
            # message and measure the throttle, not the server.
            "in_flow_delay": "0s",
            "biff": "no",
        }
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for key, value in main_cf.items():
                f.write("%s = %s\n" % (key, value))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(port=self.port))

    def _postfix(self, *args, preexec_fn=None):
        return subprocess.run(["postfix", "-c", self.etc] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, preexec_fn=preexec_fn)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self):
        # The master daemonizes; started from inside the cgroup, it and
        # every daemon it forks stay there.
        r = self._postfix("start", preexec_fn=self.meter.enter)
        self.started = True
        if r.returncode != 0:
            # Without a terminal, postfix(1) reports only to its log.
            raise BenchError("postfix start failed:\n%s%s%s"
                             % (r.stdout, r.stderr, tail(self.logfile)))
        if not wait_greeting(self.port, START_TIMEOUT):
            raise BenchError("postfix did not start; see %s:\n%s"
                             % (self.logfile, tail(self.logfile)))
        pid = self.master_pid()
        if pid is None:
            raise BenchError("postfix started but wrote no master.pid")
        self.meter.attach(pid)

    def alive(self):
        pid = self.master_pid()
        return pid is not None and os.path.exists("/proc/%d" % pid)

    def queued(self):
        return count_files(os.path.join(self.queue, "hold"))

    def leftovers(self):
        return count_files(os.path.join(self.queue, "incoming"))

    def stop(self):
        if not self.started:
            return
        pid = self.master_pid()
        try:
            self._postfix("stop")
        except subprocess.TimeoutExpired:
            log("postfix stop timed out")
        deadline = time.monotonic() + STOP_TIMEOUT
        while pid and os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid and os.path.exists("/proc/%d" % pid):
            log("postfix master %d did not stop: killing it" % pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.meter.kill_all()
        self.started = False

    def log_problems(self):
        return grep_problems(self.logfile, ("warning:", "error:", "fatal:", "panic:"))


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return str(e)


def grep_problems(path, words):
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n") for line in f
                    if any(w in line.lower() for w in words)]
    except OSError:
        return []


# ---------------------------------------------------------------------------
# Load

def run_load(server, size, sessions, messages, timeout, message_file=None):
    """One smtp-source run against server; a dict of what was measured.
    With message_file, every message is that file (smtp-source -F) rather
    than size bytes of smtp-source's own."""
    result = {"ok": False, "error": ""}
    if not server.alive():
        result["error"] = "server not running"
        return result
    # Start from a clean disk: nothing from the last run waiting to be
    # written back during this one.
    os.sync()
    before = server.queued()
    cpu0 = server.meter.seconds()
    t0 = time.monotonic()
    # One message per connection (no -d): the usual case for an MX, and
    # the one that exercises connection handling too.
    content = ["-F", message_file] if message_file else ["-l", str(size)]
    cmd = ["smtp-source", "-4", "-s", str(sessions), *content, "-m", str(messages),
           "-M", HELO_NAME, "-f", SENDER, "-t", RECIPIENT, "127.0.0.1:%d" % server.port]
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        wall = time.monotonic() - t0
        cpu = server.meter.seconds() - cpu0
    except subprocess.TimeoutExpired:
        result["error"] = "smtp-source did not finish in %ds" % timeout
        return result
    # A 250 means committed, so the files should be there already; allow a
    # moment in case the file system is slow to show them.
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        got = server.queued() - before
        if got >= messages or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    result.update(wall=wall, cpu=cpu, got=got, rate=messages / wall,
                  cpu_per_k=cpu * 1000.0 / messages)
    errors = []
    if r.returncode != 0:
        errors.append("smtp-source exit %d: %s" % (r.returncode,
                                                    (r.stderr or r.stdout).strip()[-300:]))
    if got != messages:
        errors.append("queue grew by %d, expected %d" % (got, messages))
    if not server.alive():
        errors.append("server died")
    result["error"] = "; ".join(errors)
    result["ok"] = not errors
    return result


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def median_of(results, key):
    values = [r[key] for r in results if r.get("ok")]
    return statistics.median(values) if values else None


def size_label(size):
    return "%dK" % (size // 1024) if size % 1024 == 0 else str(size)


def report_problems(servers, failures):
    """Print what went wrong in a benchmark; the exit status (1 on failures)."""
    for s in servers:
        left = s.leftovers()
        if left:
            print("%s: %d files left in its incoming queue" % (s.name, left))
    if failures:
        print("\nFAILED RUNS (left out of the medians):")
        for f in failures:
            print("  " + f)
    for s in servers:
        problems = s.log_problems()
        if problems:
            print("\n%s log: %d warning/error lines, first ones:" % (s.name, len(problems)))
            for line in problems[:10]:
                print("  " + line)
    return 1 if failures else 0


def clean_up(servers, meters, workdir, keep):
    """Stop the servers, remove the CPU meters and the work folder."""
    # Ignore further Ctrl-C so the servers really get stopped.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for s in servers:
        try:
            s.stop()
        except Exception as e:  # keep cleaning up whatever went wrong
            log("stopping %s: %s" % (s.name, e))
    for m in meters:
        m.remove()
    if keep:
        log("kept %s" % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def add_common_arguments(ap, workdir_holds):
    """The options every benchmark here has: the servers, where they run,
    repetitions and CPU accounting."""
    ap.add_argument("--vsmtpd", default=os.environ.get(
        "VSMTPD_BIN", os.path.join(SCRIPT_DIR, "..", "build", "vsmtpd")),
        help="the vsmtpd binary (env VSMTPD_BIN; default ../build/vsmtpd)")
    ap.add_argument("--conf", default=os.path.join(SCRIPT_DIR, "..", "conf", "vsmtpd.conf"),
                    help="vsmtpd configuration to start from (default ../conf/vsmtpd.conf)")
    # /var/tmp rather than /tmp: test suites churn /tmp, and on some file
    # systems that makes creating files there slow (see create_cost_us).
    ap.add_argument("--workdir", default="/var/tmp",
                    help="where to make the temporary directory holding %s "
                         "(default /var/tmp)" % workdir_holds)
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure each configuration N times, report medians")
    ap.add_argument("--no-cgroup", action="store_true",
                    help="account CPU from /proc even where a cgroup could be made")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (logs) for inspection")


def main():
    ap = argparse.ArgumentParser(
        description="Compare vsmtpd and Postfix accepting mail over loopback.")
    add_common_arguments(ap, "both spools")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the messages per run (default counts last a few seconds)")
    ap.add_argument("--sizes", default="5120,102400",
                    help="message payload sizes in bytes (smtp-source -l)")
    ap.add_argument("--sessions", default="1,16,64",
                    help="parallel sessions (smtp-source -s)")
    ap.add_argument("--run-timeout", type=int, default=300,
                    help="seconds one smtp-source run may take")
    ap.add_argument("--rules", default=os.path.join(SCRIPT_DIR, "rules", "ten.lua"),
                    help="rules for the 'vsmtpd+rules' server (default rules/ten.lua); "
                         "'none' leaves that server out")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("accept.py: must run as root (Postfix's master starts as root)")
    for tool in ("smtp-source", "postfix"):
        if shutil.which(tool) is None:
            sys.exit("accept.py: %s not found (install the postfix package)" % tool)
    if not os.access(args.vsmtpd, os.X_OK):
        sys.exit("accept.py: no vsmtpd binary at %s (use --vsmtpd or VSMTPD_BIN)"
                 % args.vsmtpd)
    sizes = [int(x) for x in args.sizes.split(",")]
    session_counts = [int(x) for x in args.sessions.split(",")]
    configs = [(size, n) for size in sizes for n in session_counts]
    counts = {c: max(1, int(DEFAULT_COUNTS.get(c, 1000) * args.scale)) for c in configs}

    # Accepted mail stays in both spools until the end. Deleting it between
    # runs would skew the next runs: on ext4 without a journal (as on some
    # VM images) creating a file skips inodes freed in the last seconds to
    # minutes, at a cost per skipped inode. So check there is room for it
    # all: each message, its headers and file system blocks, twice.
    need = sum(counts[c] * (c[0] + 4096) for c in configs) * 2 * args.repeat + (1 << 30)
    st = os.statvfs(args.workdir)
    if st.f_bavail * st.f_frsize < need:
        sys.exit("accept.py: %s has %.1f GB free, the runs need about %.1f GB "
                 "(use --workdir, --scale or fewer --repeat)"
                 % (args.workdir, st.f_bavail * st.f_frsize / 1e9, need / 1e9))

    workdir, meter_class = run_setup(args, "vsmtpd-bench.")
    servers = []
    meters = []
    failures = []
    try:
        vmeter = meter_class("vsmtpd")
        meters.append(vmeter)
        pmeter = meter_class("postfix")
        meters.append(pmeter)
        vsmtpd = Vsmtpd(os.path.abspath(args.vsmtpd), os.path.abspath(args.conf),
                        workdir, vmeter)
        postfix = Postfix(workdir, pmeter)
        servers = [vsmtpd, postfix]
        if args.rules != "none":
            rmeter = meter_class("vsmtpd-rules")
            meters.append(rmeter)
            servers.insert(1, Vsmtpd(os.path.abspath(args.vsmtpd), os.path.abspath(args.conf),
                                     workdir, rmeter, "vsmtpd+rules",
                                     os.path.abspath(args.rules)))

        log("work directory %s (both spools; %.1f GB free, about %.1f GB needed), "
            "CPU accounting: %s" % (workdir, st.f_bavail * st.f_frsize / 1e9, need / 1e9,
                                    vmeter.method))
        load_start = os.getloadavg()
        # Both servers create one file per message. On ext4 without a
        # journal, creating a file skips every inode of its group freed in
        # the last minute (five if not yet written back), at a cost each: a
        # busy /tmp can make that cost dominate. Both servers pay it alike,
        # but say so, as it inflates the CPU figures.
        cost = create_cost_us(workdir)
        log("creating a file here takes %.0f us of CPU%s" % (cost, (
            " - slow (10 is usual): recently deleted files nearby? "
            "try another --workdir") if cost > 40 else ""))
        log("vsmtpd %s on 127.0.0.1:%d, postfix on 127.0.0.1:%d"
            % (vsmtpd.binary, vsmtpd.port, postfix.port))
        for s in servers:
            s.start()

        # Warm-up: page cache, Postfix's pre-forked daemons, the spool
        # directories; not measured.
        warm_sessions = max(session_counts)
        for s in servers:
            r = run_load(s, sizes[0], warm_sessions, 10 * warm_sessions, args.run_timeout)
            if not r["ok"]:
                raise BenchError("%s warm-up failed: %s" % (s.name, r["error"]))

        results = {(c, s.name): [] for c in configs for s in servers}
        for rep in range(args.repeat):
            for size, sessions in configs:
                messages = counts[(size, sessions)]
                # Interleaved, so a noisy neighbour slows both alike.
                for s in servers:
                    r = run_load(s, size, sessions, messages, args.run_timeout)
                    results[((size, sessions), s.name)].append(r)
                    line = "[%d/%d] %-7s %5s x%-3d %5d msgs" % (
                        rep + 1, args.repeat, s.name, size_label(size), sessions, messages)
                    if "wall" in r:
                        line += "  %6.2fs  %7.1f msg/s  cpu %6.2fs (%.2f s/1000)" % (
                            r["wall"], r["rate"], r["cpu"], r["cpu_per_k"])
                    if not r["ok"]:
                        line += "  FAILED: " + r["error"]
                        failures.append(line)
                    log(line)
                    if not s.alive():
                        raise BenchError("%s is not running any more" % s.name)

        # The table, on stdout: vsmtpd against Postfix, and with the rules
        # against itself without them.
        print()
        rules = len(servers) == 3
        row = "%-5s %4s | %12s %13s %6s |" + (" %12s %6s %6s |" if rules else "") + \
            " %10s %10s" + (" %10s" if rules else "")
        def cols(*values):
            return values if rules else values[:5] + values[8:9] + values[10:11]
        print(row % cols("size", "sess", "vsmtpd msg/s", "postfix msg/s", "v/p",
                         "+rules msg/s", "r/v", "r/p", "vsmtpd", "+rules", "postfix"))
        print(row % cols("", "", "", "", "", "", "", "", "CPU s/1000", "CPU s/1000",
                         "CPU s/1000"))
        print("-" * (118 if rules else 79))
        for size, sessions in configs:
            v = results[((size, sessions), "vsmtpd")]
            p = results[((size, sessions), "postfix")]
            r = results.get(((size, sessions), "vsmtpd+rules"), [])
            vr, pr, rr = median_of(v, "rate"), median_of(p, "rate"), median_of(r, "rate")
            print(row % cols(size_label(size), sessions, fmt(vr, ".0f"), fmt(pr, ".0f"),
                             fmt(vr / pr if vr and pr else None, ".2f"), fmt(rr, ".0f"),
                             fmt(rr / vr if rr and vr else None, ".2f"),
                             fmt(rr / pr if rr and pr else None, ".2f"),
                             fmt(median_of(v, "cpu_per_k"), ".3f"),
                             fmt(median_of(r, "cpu_per_k"), ".3f"),
                             fmt(median_of(p, "cpu_per_k"), ".3f")))
        print()
        print("median of %d run(s) each; %s; payload sizes are smtp-source -l (headers extra)"
              % (args.repeat, vmeter.method))
        # Both servers, the client and anything else on the machine share
        # its CPUs: a load well above the CPU count means noisy numbers.
        print("load average %.1f at the start, %.1f at the end, %d CPUs"
              % (load_start[0], os.getloadavg()[0], os.cpu_count()))

        return report_problems(servers, failures)
    except BenchError as e:
        log("accept.py: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("accept.py: interrupted")
        return 130
    finally:
        clean_up(servers, meters, workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
