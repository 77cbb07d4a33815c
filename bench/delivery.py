#!/usr/bin/python3
"""delivery.py - compare vsmtpd and Postfix end to end: accept, then deliver.

Starts a throw-away vsmtpd and a throw-away Postfix instance as accept.py
does (same settings, same durability, spools in one temporary directory),
this time with delivery on, and one smtp-sink per server on its own
loopback port. Two scenarios, each driven by Postfix's smtp-source (one
message per connection, one recipient):

    maildir  recipients in bench.test, delivered into a Maildir
             (vsmtpd: [rules] local_domains and [delivery] local_transport
             = maildir; Postfix: virtual_mailbox_domains and virtual(8))
    relay    recipients in relay.test, relayed to the server's smtp-sink
             (vsmtpd: [delivery] relay_host; Postfix: relayhost)

A run measures, from the moment smtp-source starts, the time until it has
finished (accepting) and the time until the last message has arrived
(files in the Maildir's new/, or smtp-sink's message counter): messages
delivered per second. The servers take turns run by run, so that noise on a
shared machine hits both alike; the table shows medians and the
vsmtpd/Postfix ratio.

Needs root (Postfix's master must start as root), postfix, smtp-source and
smtp-sink. Run "delivery.py --help" for the options; bench/README.md has an
overview.
"""
import argparse
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import threading
import time

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)
import accept  # noqa: E402  (the servers, CPU meters and helpers)
from accept import BenchError, log  # noqa: E402

SCENARIOS = ("maildir", "relay")
DOMAINS = {"maildir": "bench.test", "relay": "relay.test"}
# Who owns the mailboxes: vsmtpd runs as nobody (accept.py), Postfix's
# virtual(8) gets the same account from its static maps.
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"
# Deliveries at once to one destination, set alike on both servers (it is
# both servers' default too).
PER_DESTINATION = 20
POLL_INTERVAL = 0.025   # seconds between two counts of what arrived
DRAIN_TIMEOUT = 30      # seconds for a queue to empty once all arrived
EXTRA_WAIT = 0.5        # seconds to watch for more than expected arriving


# The recipients' local parts: one Maildir for the warm-up, one per run.
WARM_UP_USER = "warm-up"


def run_user(rep):
    """The local part of run rep's recipient (from 0)."""
    return "run%d" % (rep + 1)


# ---------------------------------------------------------------------------
# The sink

class Sink:
    """One smtp-sink on a free loopback port, counting what it receives.

    smtp-sink -c writes "sess=N quit=N mesg=N" and a carriage return to its
    standard output at every session end, QUIT and final dot; that goes to
    a file, and received() reads what was added since it last looked.
    """

    def __init__(self, workdir, name):
        self.name = name
        self.port = accept.free_port()
        self.out = os.path.join(workdir, "%s.out" % name)
        self.proc = None
        self.offset = 0
        self.pending = b""
        self.count = 0

    def start(self):
        cmd = ["smtp-sink", "-4", "-c", "-u", MAIL_USER, "-h", "bench-sink.localdomain",
               "127.0.0.1:%d" % self.port, "256"]
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if not accept.wait_greeting(self.port, accept.START_TIMEOUT):
            raise BenchError("%s did not start:\n%s" % (self.name, accept.tail(self.out)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def received(self):
        """Messages received so far (final dots)."""
        with open(self.out, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        *updates, self.pending = (self.pending + data).split(b"\r")
        for update in reversed(updates):
            m = re.search(rb"mesg=(\d+)", update)
            if m:
                self.count = int(m.group(1))
                break
        return self.count

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(accept.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(accept.STOP_TIMEOUT)
        self.proc = None


def maildir_count(maildir):
    """Messages in a Maildir's new/ (0 before it exists)."""
    try:
        return len(os.listdir(os.path.join(maildir, "new")))
    except FileNotFoundError:
        return 0


def make_mail_base(path):
    """The top of the mailboxes, writable by the account delivering into them."""
    os.mkdir(path)
    shutil.chown(path, MAIL_USER, MAIL_GROUP)
    os.chmod(path, 0o755)


# ---------------------------------------------------------------------------
# The servers: accept.py's, with delivery

class DeliveringVsmtpd(accept.Vsmtpd):
    """accept.py's vsmtpd delivering bench.test into
    vsmtpd-mail/<domain>/<user>/Maildir and relaying everything else to the
    sink."""

    def __init__(self, binary, conf, workdir, meter, sink):
        self.sink = sink
        mail = os.path.join(workdir, "vsmtpd-mail")
        make_mail_base(mail)
        self.mail = mail
        control = os.path.join(workdir, "vsmtpd", "control")
        super().__init__(binary, conf, workdir, meter, options=[
            # Its own control socket: never the system's /run/vsmtpd one.
            "server.control_socket=" + control,
            "rules.local_domains=" + DOMAINS["maildir"],
            "delivery.local_transport=maildir",
            "delivery.maildir_path=%s/%%d/%%u/Maildir" % mail,
            "delivery.relay_host=[127.0.0.1]:%d" % sink.port,
            "delivery.max_per_destination=%d" % PER_DESTINATION,
        ], hold=False)

    def delivered(self, scenario, user):
        if scenario == "relay":
            return self.sink.received()
        return maildir_count(os.path.join(self.mail, DOMAINS["maildir"], user, "Maildir"))

    def pending(self):
        """Messages still in the queue (delivered ones leave it)."""
        return self.queued()


class DeliveringPostfix(accept.Postfix):
    """accept.py's Postfix without the hold, delivering to users@bench.test
    with virtual(8) into mail/<domain>/<user>/ (a Maildir: the map's result
    ends in /) and relaying everything else to the sink."""

    # accept.py's settings that only make sense without delivery: the hold,
    # and no flow control (in_flow_delay back to its default, 1s).
    DROPPED = ("smtpd_end_of_data_restrictions", "in_flow_delay")

    def __init__(self, workdir, meter, sink, users):
        self.sink = sink
        self.users = users
        super().__init__(workdir, meter)

    def _configure(self):
        super()._configure()
        self.mail = os.path.join(self.dir, "mail")
        make_mail_base(self.mail)
        mailboxes = os.path.join(self.etc, "virtual_mailboxes")
        with open(mailboxes, "w") as f:
            # Every recipient gets its own Maildir, as %u gives vsmtpd.
            # virtual(8) takes no regexp with substitutions, so list them.
            for user in self.users:
                f.write("%s@%s %s/%s/\n" % (user, DOMAINS["maildir"], DOMAINS["maildir"],
                                             user))
        main_cf = os.path.join(self.etc, "main.cf")
        with open(main_cf) as f:
            lines = [line for line in f
                     if line.split("=", 1)[0].strip() not in self.DROPPED]
        lines += ["%s = %s\n" % kv for kv in (
            ("virtual_mailbox_domains", DOMAINS["maildir"]),
            ("virtual_mailbox_base", self.mail),
            ("virtual_mailbox_maps", "texthash:" + mailboxes),
            ("virtual_uid_maps", "static:%d" % pwd.getpwnam(MAIL_USER).pw_uid),
            ("virtual_gid_maps", "static:%d" % grp.getgrnam(MAIL_GROUP).gr_gid),
            # Brackets: no MX lookup, and a literal address needs no DNS.
            ("relayhost", "[127.0.0.1]:%d" % self.sink.port),
            ("default_destination_concurrency_limit", str(PER_DESTINATION)),
        )]
        with open(main_cf, "w") as f:
            f.writelines(lines)
        with open(os.path.join(self.etc, "master.cf"), "a") as f:
            f.write("virtual   unix  -       n       n       -       -       virtual\n")

    def delivered(self, scenario, user):
        if scenario == "relay":
            return self.sink.received()
        return maildir_count(os.path.join(self.mail, DOMAINS["maildir"], user))

    def pending(self):
        """Messages still in the queue, wherever in it they are."""
        return sum(accept.count_files(os.path.join(self.queue, d))
                   for d in ("maildrop", "incoming", "active", "deferred", "hold"))


# ---------------------------------------------------------------------------
# Load

def note_end(proc, ended):
    """Wait for proc to end, then append the moment to ended."""
    proc.wait()
    ended.append(time.monotonic())


def run_delivery(server, scenario, user, size, sessions, messages, timeout, errfile):
    """One smtp-source run of `messages` to user@<the scenario's domain>,
    watched until all have arrived; a dict of what was measured."""
    result = {"ok": False, "error": ""}
    if not server.alive() or not server.sink.alive():
        result["error"] = "server or sink not running"
        return result
    # Start from a clean disk: nothing of the last run waiting to be written
    # back during this one.
    os.sync()
    before = server.delivered(scenario, user)
    cpu0 = server.meter.seconds()
    cmd = ["smtp-source", "-4", "-s", str(sessions), "-l", str(size), "-m", str(messages),
           "-M", accept.HELO_NAME, "-f", accept.SENDER,
           "-t", "%s@%s" % (user, DOMAINS[scenario]), "127.0.0.1:%d" % server.port]
    errors = []
    accepted = arrived = None
    ended = []
    with open(errfile, "w") as err:
        t0 = time.monotonic()
        source = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        # The moment smtp-source ends, to the clock's precision rather than
        # the polling interval's.
        waiter = threading.Thread(target=note_end, args=(source, ended), daemon=True)
        waiter.start()
        try:
            while accepted is None or arrived is None:
                got = server.delivered(scenario, user) - before
                now = time.monotonic()
                if accepted is None and ended:
                    accepted = ended[0] - t0
                    if source.returncode != 0:
                        break
                if arrived is None and got >= messages:
                    arrived = now - t0
                    cpu = server.meter.seconds() - cpu0
                if now - t0 > timeout:
                    errors.append("%d of %d arrived in %ds%s" % (
                        got, messages, timeout,
                        "" if accepted else ", smtp-source still running"))
                    break
                if not server.alive() or not server.sink.alive():
                    errors.append("server or sink died")
                    break
                time.sleep(POLL_INTERVAL)
        finally:
            if not ended:
                source.kill()
            waiter.join(accept.STOP_TIMEOUT)
    if source.returncode != 0:
        errors.append("smtp-source exit %d: %s" % (source.returncode,
                                                    accept.tail(errfile, 3).strip()[-300:]))
    if not errors:
        errors += check_drained(server, scenario, user, before, messages)
    if arrived is not None:
        result.update(accepted=accepted, arrived=arrived, cpu=cpu,
                      rate=messages / arrived,
                      cpu_per_k=cpu * 1000.0 / messages)
    result["error"] = "; ".join(errors)
    result["ok"] = not errors and arrived is not None
    return result


def check_drained(server, scenario, user, before, messages):
    """Once all arrived: the queue empties, and nothing more arrives (a
    message delivered twice, a bounce relayed to the sink); the errors."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while server.pending() and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
    left = server.pending()
    time.sleep(EXTRA_WAIT)
    got = server.delivered(scenario, user) - before
    errors = []
    if left:
        errors.append("%d messages still queued %ds after the last arrived"
                      % (left, DRAIN_TIMEOUT))
    if got != messages:
        errors.append("%d arrived, %d were sent" % (got, messages))
    return errors


# ---------------------------------------------------------------------------
# The report

def print_table(results, scenarios, servers, args, method, load_start):
    """The medians, on stdout: per scenario a line for each server, the
    ratios on vsmtpd's."""
    fmt, median_of = accept.fmt, accept.median_of
    print()
    row = "%-8s %-8s %6s | %9s %9s | %12s %6s | %10s %6s"
    print(row % ("scenario", "server", "msgs", "accept s", "deliver s", "delivered/s",
                 "v/p", "CPU s/1000", "v/p"))
    print("-" * 91)
    for scenario in scenarios:
        v = results[(scenario, "vsmtpd")]
        p = results[(scenario, "postfix")]
        vr, pr = median_of(v, "rate"), median_of(p, "rate")
        vc, pc = median_of(v, "cpu_per_k"), median_of(p, "cpu_per_k")
        for name, rs, ratios in (("vsmtpd", v, (vr / pr if vr and pr else None,
                                                vc / pc if vc and pc else None)),
                                 ("postfix", p, None)):
            print(row % (scenario if name == "vsmtpd" else "", name, args.messages,
                         fmt(median_of(rs, "accepted"), ".2f"),
                         fmt(median_of(rs, "arrived"), ".2f"),
                         fmt(median_of(rs, "rate"), ".0f"),
                         fmt(ratios[0], ".2f") if ratios else "",
                         fmt(median_of(rs, "cpu_per_k"), ".3f"),
                         fmt(ratios[1], ".2f") if ratios else ""))
    print()
    print("median of %d run(s); %d messages of %d bytes (smtp-source -l, headers extra) "
          "in %d sessions, one message each" % (args.repeat, args.messages, args.size,
                                                args.sessions))
    print("accept s: until smtp-source is done; deliver s: until the last message is in "
          "the Maildir or the sink; delivered/s = msgs / deliver s")
    print("v/p delivered/s above 1: vsmtpd is faster; v/p CPU below 1: it uses less CPU "
          "(%s, accepting and delivering)" % method)
    print("load average %.1f at the start, %.1f at the end, %d CPUs (client, servers, "
          "sinks and everything else share them)"
          % (load_start[0], os.getloadavg()[0], os.cpu_count()))


# ---------------------------------------------------------------------------

def parse_arguments():
    ap = argparse.ArgumentParser(
        description="Compare vsmtpd and Postfix accepting and delivering mail (into a "
                    "Maildir, and relayed to smtp-sink) over loopback.")
    accept.add_common_arguments(ap, "both spools and mailboxes")
    ap.set_defaults(repeat=3)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="maildir (local delivery), relay (to a local smtp-sink) or both "
                         "(default maildir,relay)")
    ap.add_argument("--messages", type=int, default=2000,
                    help="messages per run (default 2000)")
    ap.add_argument("--size", type=int, default=5120,
                    help="message body size in bytes, smtp-source -l (default 5120)")
    ap.add_argument("--sessions", type=int, default=16,
                    help="parallel sessions, smtp-source -s (default 16)")
    ap.add_argument("--run-timeout", type=int, default=120,
                    help="seconds one run may take until the last message has arrived")
    args = ap.parse_args()
    args.scenarios = args.scenarios.split(",")
    for s in args.scenarios:
        if s not in SCENARIOS:
            sys.exit("delivery.py: --scenarios: %r is not one of %s"
                     % (s, ", ".join(SCENARIOS)))
    if min(args.messages, args.sessions, args.repeat, args.run_timeout) < 1 or args.size < 0:
        sys.exit("delivery.py: --messages, --sessions, --repeat, --run-timeout and --size "
                 "must be positive")
    return args


def check_environment(args):
    """Exit with a message when something the runs need is missing; the
    free space of the work directory's file system."""
    if os.geteuid() != 0:
        sys.exit("delivery.py: must run as root (Postfix's master starts as root)")
    for tool in ("smtp-source", "smtp-sink", "postfix"):
        if shutil.which(tool) is None:
            sys.exit("delivery.py: %s not found (install the postfix package)" % tool)
    if not os.access(args.vsmtpd, os.X_OK):
        sys.exit("delivery.py: no vsmtpd binary at %s (use --vsmtpd or VSMTPD_BIN)"
                 % args.vsmtpd)
    # Delivered mail stays in the Maildirs until the end (as accept.py keeps
    # its spools, for the same reason); a queue holds a run's at most.
    runs = args.repeat + 1
    need = runs * 2 * args.messages * (args.size + 4096) * 2 + (256 << 20)
    st = os.statvfs(args.workdir)
    free = st.f_bavail * st.f_frsize
    if free < need:
        sys.exit("delivery.py: %s has %.1f GB free, the runs need about %.1f GB "
                 "(use --workdir, fewer --messages or --repeat)"
                 % (args.workdir, free / 1e9, need / 1e9))


def run_all(args, workdir, servers, failures):
    """Warm-up, then the runs, interleaved; the results by (scenario, server)."""
    results = {(sc, s.name): [] for sc in args.scenarios for s in servers}
    errfile = os.path.join(workdir, "smtp-source.err")
    # Warm-up: page cache, Postfix's pre-forked daemons, the Maildirs'
    # directories above the per-run ones, the sinks' connections; not
    # measured.
    for scenario in args.scenarios:
        for s in servers:
            r = run_delivery(s, scenario, WARM_UP_USER, args.size, args.sessions,
                             10 * args.sessions, args.run_timeout, errfile)
            if not r["ok"]:
                raise BenchError("%s %s warm-up failed: %s" % (s.name, scenario, r["error"]))
    for rep in range(args.repeat):
        for scenario in args.scenarios:
            # Interleaved, so a noisy neighbour slows both alike.
            for s in servers:
                # A Maildir of its own per run: counting its new/ stays cheap.
                r = run_delivery(s, scenario, run_user(rep), args.size, args.sessions,
                                 args.messages, args.run_timeout, errfile)
                results[(scenario, s.name)].append(r)
                line = "[%d/%d] %-7s %-7s %5d msgs" % (rep + 1, args.repeat, s.name,
                                                       scenario, args.messages)
                if "arrived" in r:
                    line += "  accepted %6.2fs  delivered %6.2fs  %7.1f msg/s  " \
                            "cpu %6.2fs (%.2f s/1000)" % (
                                r["accepted"], r["arrived"], r["rate"], r["cpu"],
                                r["cpu_per_k"])
                if not r["ok"]:
                    line += "  FAILED: " + r["error"]
                    failures.append(line)
                log(line)
                if not s.alive():
                    raise BenchError("%s is not running any more" % s.name)
    return results


def main():
    args = parse_arguments()
    check_environment(args)

    workdir, meter_class = accept.run_setup(args, "vsmtpd-delivery.")
    servers = []
    sinks = []
    meters = []
    failures = []
    try:
        sinks = [Sink(workdir, "vsmtpd-sink"), Sink(workdir, "postfix-sink")]
        vmeter = meter_class("vsmtpd")
        meters.append(vmeter)
        pmeter = meter_class("postfix")
        meters.append(pmeter)
        vsmtpd = DeliveringVsmtpd(os.path.abspath(args.vsmtpd), os.path.abspath(args.conf),
                                  workdir, vmeter, sinks[0])
        postfix = DeliveringPostfix(workdir, pmeter, sinks[1],
                                    [WARM_UP_USER] + [run_user(i) for i in range(args.repeat)])
        servers = [vsmtpd, postfix]
        log("work directory %s, CPU accounting: %s" % (workdir, vmeter.method))
        log("vsmtpd %s on 127.0.0.1:%d (sink :%d), postfix on 127.0.0.1:%d (sink :%d)"
            % (vsmtpd.binary, vsmtpd.port, sinks[0].port, postfix.port, sinks[1].port))
        load_start = os.getloadavg()
        # Both servers create a file per delivered message too: see accept.py.
        cost = accept.create_cost_us(workdir)
        log("creating a file here takes %.0f us of CPU%s" % (cost, (
            " - slow (10 is usual): recently deleted files nearby? "
            "try another --workdir") if cost > 40 else ""))
        for sink in sinks:
            sink.start()
        for s in servers:
            s.start()
        results = run_all(args, workdir, servers, failures)
        print_table(results, args.scenarios, servers, args, vmeter.method, load_start)
        return accept.report_problems(servers, failures)
    except BenchError as e:
        log("delivery.py: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("delivery.py: interrupted")
        return 130
    finally:
        # The servers first, so that they do not see their relay go away.
        accept.clean_up(servers, meters, workdir, args.keep)
        for sink in sinks:
            sink.stop()


if __name__ == "__main__":
    sys.exit(main())
