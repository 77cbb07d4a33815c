#!/usr/bin/python3
"""milter.py - what a milter round trip costs vsmtpd and Postfix, with the
same milter.

Starts one OpenDKIM (Debian's opendkim, in signing mode, on a loopback
port, its key made by opendkim-genkey) and four servers as accept.py does
(every message held on accept, spools in one temporary directory):

    vsmtpd          the hold only
    vsmtpd+milter   the same, with [listener:smtp] milters = opendkim
                    ([service:opendkim] of kind milter): the whole milter
                    conversation at every stage from connect to preq
    postfix         the hold only
    postfix+milter  the same, with smtpd_milters = inet:127.0.0.1:PORT

All four sign through the same OpenDKIM (mail from 127.0.0.1 is its
internal host, and smtp-source's From: is in its signing domain), so each
message goes through a whole conversation: connect, helo, mail, rcpt, the
header fields one by one, the body, the end of message and the signature
inserted. smtp-source drives each server (one message per connection),
the servers taking turns run by run; the table shows medians of messages
per second, the milter's share of each server's own rate without it, and
vsmtpd+milter against postfix+milter. CPU seconds per 1000 messages are the
server's processes (OpenDKIM's CPU is not counted, but it runs on the same
CPUs). At the end a held message of each milter server is checked for its
DKIM-Signature field, so a run that signed nothing fails.

Needs root (as accept.py), postfix, smtp-source, opendkim and
opendkim-genkey. Run "milter.py --help" for the options; bench/README.md
has an overview.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import accept
from accept import BenchError, log

DOMAIN = "example.org"  # accept.SENDER's domain, smtp-source's From:
COUNTS = {1: 500, 16: 2000}  # messages a run, by sessions


class Opendkim:
    """OpenDKIM signing for DOMAIN on a free loopback port."""

    def __init__(self, directory):
        self.dir = os.path.join(directory, "opendkim")
        os.mkdir(self.dir)
        subprocess.run(["opendkim-genkey", "-D", self.dir, "-d", DOMAIN, "-s", "bench"],
                       check=True, capture_output=True, timeout=60)
        self.port = accept.free_port()
        conf = os.path.join(self.dir, "opendkim.conf")
        with open(conf, "w") as f:
            f.write("Mode s\nDomain %s\nSelector bench\nKeyFile %s/bench.private\n"
                    "Socket inet:%d@127.0.0.1\nBackground no\nSyslog no\n"
                    "RequireSafeKeys false\nInternalHosts 127.0.0.1\n"
                    "PidFile %s/opendkim.pid\n" % (DOMAIN, self.dir, self.port, self.dir))
        self.log = os.path.join(self.dir, "opendkim.log")
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(["opendkim", "-f", "-x", conf],
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                         start_new_session=True)
        deadline = time.monotonic() + accept.START_TIMEOUT
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise BenchError("opendkim did not start; see %s" % self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(accept.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class MilterPostfix(accept.Postfix):
    """accept.py's Postfix with OpenDKIM as its smtpd milter."""

    def __init__(self, workdir, meter, port):
        self.milter_port = port
        super().__init__(workdir, meter)
        self.name = "postfix+milter"

    def _configure(self):
        super()._configure()
        with open(os.path.join(self.etc, "main.cf"), "a") as f:
            f.write("smtpd_milters = inet:127.0.0.1:%d\nmilter_protocol = 6\n"
                    "milter_default_action = tempfail\n" % self.milter_port)


def signed(server):
    """Whether a message server held carries a DKIM-Signature field."""
    hold = os.path.join(server.queue, "hold") if isinstance(server, accept.Postfix) \
        else os.path.join(server.spool, "hold")
    for root, _, files in os.walk(hold):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                return b"DKIM-Signature:" in f.read()
    return False


def main():
    ap = argparse.ArgumentParser(description="What a milter (OpenDKIM signing) costs "
                                 "vsmtpd and Postfix, against each alone.")
    accept.add_common_arguments(ap, "the spools")
    ap.add_argument("--size", type=int, default=5120,
                    help="message payload size in bytes (smtp-source -l)")
    ap.add_argument("--sessions", default="1,16", help="parallel sessions (smtp-source -s)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the messages per run")
    ap.add_argument("--run-timeout", type=int, default=300,
                    help="seconds one smtp-source run may take")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("milter.py: must run as root (as accept.py)")
    for tool in ("smtp-source", "postfix", "opendkim", "opendkim-genkey"):
        if shutil.which(tool) is None:
            sys.exit("milter.py: %s not found (scripts/setup.sh installs it)" % tool)
    if not os.access(args.vsmtpd, os.X_OK):
        sys.exit("milter.py: no vsmtpd binary at %s (use --vsmtpd or VSMTPD_BIN)"
                 % args.vsmtpd)
    sessions = [int(x) for x in args.sessions.split(",")]

    def on_signal(signo, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    workdir = tempfile.mkdtemp(prefix="vsmtpd-bench.", dir=args.workdir)
    os.chmod(workdir, 0o755)
    cg_root = None if args.no_cgroup else accept.find_cgroup2_root()
    meter_class = (lambda name: accept.CgroupMeter(cg_root, name)) if cg_root else \
        (lambda name: accept.ProcMeter(None, name))
    servers, meters, dkim = [], [], None
    status = 1
    try:
        dkim = Opendkim(workdir)
        milter = ["service:opendkim.kind=milter",
                  "service:opendkim.address=127.0.0.1:%d" % dkim.port,
                  "listener:smtp.milters=opendkim"]
        for name, options in (("vsmtpd", ()), ("vsmtpd+milter", milter)):
            meter = meter_class(name)
            meters.append(meter)
            servers.append(accept.Vsmtpd(os.path.abspath(args.vsmtpd),
                                         os.path.abspath(args.conf), workdir, meter, name,
                                         options=options))
        meters += [meter_class("postfix"), meter_class("postfix-milter")]
        servers.append(accept.Postfix(workdir, meters[2]))
        # accept.Postfix lives in WORKDIR/postfix: the second one one level down
        second = os.path.join(workdir, "milter")
        os.mkdir(second)
        os.chmod(second, 0o755)
        servers.append(MilterPostfix(second, meters[3], dkim.port))
        for server in servers:
            server.start()
        log("opendkim on 127.0.0.1:%d" % dkim.port)
        results = {}
        for n in sessions:
            count = max(1, int(COUNTS.get(n, 1000) * args.scale))
            for server in servers:  # warm-up
                r = accept.run_load(server, args.size, n, max(1, count // 10), args.run_timeout)
                if not r["ok"]:
                    raise BenchError("%s warm-up failed: %s" % (server.name, r["error"]))
            for rep in range(args.repeat):
                for server in servers:
                    r = accept.run_load(server, args.size, n, count, args.run_timeout)
                    if not r["ok"]:
                        raise BenchError("%s, %d sessions: %s" % (server.name, n, r["error"]))
                    results.setdefault((server.name, n), []).append(r)
                    log("[%d/%d] %-14s x%-3d %5d msgs %7.1f msg/s  cpu %.2f s/1000"
                        % (rep + 1, args.repeat, server.name, n, count, r["rate"],
                           r["cpu_per_k"]))
        for server in servers[1::2]:
            if not signed(server):
                raise BenchError("%s held a message without a DKIM-Signature" % server.name)

        def med(name, n, key):
            return accept.median_of(results[(name, n)], key)
        print()
        print("sess | %-15s | %-22s | %-15s | %-22s | %s" % (
            "vsmtpd", "vsmtpd+milter", "postfix", "postfix+milter", "milter v/p"))
        print("     | %-15s | %-22s | %-15s | %-22s |" % (
            "msg/s  CPU", "msg/s  share  CPU", "msg/s  CPU", "msg/s  share  CPU"))
        print("-" * 100)
        for n in sessions:
            v, vm = med("vsmtpd", n, "rate"), med("vsmtpd+milter", n, "rate")
            p, pm = med("postfix", n, "rate"), med("postfix+milter", n, "rate")
            print("%4d | %5.0f  %6.3f  | %5.0f  %4.2f   %6.3f  | %5.0f  %6.3f  | "
                  "%5.0f  %4.2f   %6.3f  | %5.2f" % (
                      n, v, med("vsmtpd", n, "cpu_per_k"),
                      vm, vm / v, med("vsmtpd+milter", n, "cpu_per_k"),
                      p, med("postfix", n, "cpu_per_k"),
                      pm, pm / p, med("postfix+milter", n, "cpu_per_k"), vm / pm))
        print()
        print("median of %d run(s) each; CPU: seconds per 1000 messages (the server's "
              "processes, not OpenDKIM's); share: rate against the same server without "
              "the milter" % args.repeat)
        print("load average %.1f at the end, %d CPUs" % (os.getloadavg()[0], os.cpu_count()))
        status = accept.report_problems(servers, [])
    except BenchError as e:
        log("milter.py: %s" % e)
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    finally:
        if dkim is not None:
            dkim.stop()
        accept.clean_up(servers, meters, workdir, args.keep)
    return status


if __name__ == "__main__":
    sys.exit(main())
