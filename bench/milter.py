#!/usr/bin/python3
"""milter.py - what a milter round trip, and rspamd at preq, cost vsmtpd
and Postfix, with the same filter.

Starts one filter daemon on loopback, with a configuration of its own in
the bench's temporary directory, and servers as accept.py does (every
message held on accept, spools in one temporary directory). --filter says
which daemon and which servers:

opendkim (the default): Debian's OpenDKIM signing, its key made by
opendkim-genkey. Mail from 127.0.0.1 is its internal host and the
message's From: is in its signing domain, so each message gets a whole
conversation: connect, helo, mail, rcpt, the header fields one by one, the
body, the end of message and the signature inserted.

    vsmtpd          the hold only
    vsmtpd+milter   the same, with [listener:smtp] milters = opendkim
                    ([service:opendkim] of kind milter): the whole milter
                    conversation at every stage from connect to preq
    postfix         the hold only
    postfix+milter  the same, with smtpd_milters = inet:127.0.0.1:PORT

rspamd: Debian's rspamd with two workers, its normal worker (HTTP) and
its proxy worker in milter mode scanning by itself (self_scan), as rspamd
documents for Postfix; the same number of processes each. Its
configuration keeps the modules that work on the message alone and turns
off those that need the network or redis (DNS lists, SPF, DKIM, DMARC,
fuzzy hashes, greylisting, Bayes, ...); DNS goes to a closed loopback
port. milter_headers adds X-Spamd-Result to every message.

    vsmtpd          the hold only
    vsmtpd+rspamd   ctx:rspamd("rspamd") at preq (rules/rspamd.lua) over
                    HTTP to the normal worker, its headers applied
    vsmtpd+milter   [listener:smtp] milters = the proxy worker
    postfix         the hold only
    postfix+milter  smtpd_milters = inet:127.0.0.1:PORT, the proxy worker

Every message is the same file, a plain-text mail of --size bytes of
prose, sent by smtp-source -F (one message per connection); the servers
take turns run by run. The table shows, per server, medians of messages
per second, the filter's share of the server's own rate without it, CPU
seconds per 1000 messages of the server's processes and of the filter's
(its CPU is counted apart, but it runs on the same CPUs), and on each
vsmtpd line with the filter its rate over postfix+milter's. At the end a
held message of each server with the filter is checked for the field the
filter adds (DKIM-Signature, X-Spamd-Result), so a run that signed or
scanned nothing fails.

Needs root (as accept.py), postfix, smtp-source, and opendkim and
opendkim-genkey or rspamd. Run "milter.py --help" for the options;
bench/README.md has an overview.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import accept
from accept import BenchError, log

DOMAIN = "example.org"  # accept.SENDER's domain, the message's From:
COUNTS = {1: 500, 16: 2000}  # messages a run, by sessions

# The body of the message every run sends, repeated up to --size bytes:
# words in sentences, so that a filter reading text has text to read.
PROSE = (
    "Thank you for the minutes of last week's meeting. As agreed, the new "
    "schedule for the warehouse starts on the first Monday of next month, and "
    "the night shift moves to the second building. Could you send the updated "
    "list of contacts to the team leaders before Friday? The supplier has "
    "confirmed the delivery of the shelving units for the twelfth; someone "
    "from facilities should be there to sign for them. Invoices for the "
    "quarter are attached to the shared folder as usual. Please check the "
    "totals against the purchase orders, since two of them were revised after "
    "the budget review. If anything is unclear, call me in the afternoon or "
    "leave a note at the front desk. Best regards, and see you on Thursday. ")


def make_message(directory, size):
    """The message every run sends, size bytes of body; its path."""
    words = (PROSE * (size // len(PROSE) + 1))[:size]
    body = "\n".join(textwrap.wrap(words, 72))
    text = ("From: Bench Sender <%s>\nTo: Bench Recipient <%s>\n"
            "Subject: Minutes of the meeting and the new schedule\n"
            "Date: Mon, 07 Dec 2026 12:00:00 +0000\nMessage-ID: <bench.1@%s>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n%s\n"
            % (accept.SENDER, accept.RECIPIENT, DOMAIN, body))
    path = os.path.join(directory, "message.eml")
    # smtp-source -F adds CRLF after each line: LF lines.
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def listening(port):
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Filter:
    """A filter daemon on loopback, in a CPU meter of its own. Subclasses
    set name, marker (the field it adds to a message), argv (the daemon's
    command), its vsmtpd variants [(server name, -o options, rules file or
    None)] and postfix (main.cf settings for postfix+milter)."""
    start_timeout = accept.START_TIMEOUT
    proc = None

    def __init__(self, directory, meter):
        self.dir = os.path.join(directory, self.name)
        os.mkdir(self.dir)
        self.log = os.path.join(self.dir, self.name + ".log")
        self.meter = meter

    def ready(self):
        """Whether the daemon takes connections."""
        return listening(self.port)

    def start(self):
        """Start argv in a session of its own; wait until ready()."""
        with open(os.path.join(self.dir, "output"), "ab") as f:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                         start_new_session=True,
                                         preexec_fn=self.meter.enter)
        self.meter.attach(self.proc.pid)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.ready():
                return
            time.sleep(0.2)
        raise BenchError("%s did not start; see %s" % (self.name, self.log))

    def stop(self):
        """Stop the daemon and whatever it left running."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # the master, which stops its workers
            try:
                self.proc.wait(accept.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log("%s did not stop in %ds: killing it" % (self.name, accept.STOP_TIMEOUT))
        try:  # workers that outlived their master
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.meter.kill_all()
        self.proc.wait()
        self.proc = None


class Opendkim(Filter):
    """OpenDKIM signing for DOMAIN on a free loopback port."""
    name = "opendkim"
    marker = b"DKIM-Signature:"

    def __init__(self, directory, meter):
        super().__init__(directory, meter)
        subprocess.run(["opendkim-genkey", "-D", self.dir, "-d", DOMAIN, "-s", "bench"],
                       check=True, capture_output=True, timeout=60)
        self.port = accept.free_port()
        conf = os.path.join(self.dir, "opendkim.conf")
        with open(conf, "w") as f:
            f.write("Mode s\nDomain %s\nSelector bench\nKeyFile %s/bench.private\n"
                    "Socket inet:%d@127.0.0.1\nBackground no\nSyslog no\n"
                    "RequireSafeKeys false\nInternalHosts 127.0.0.1\n"
                    "PidFile %s/opendkim.pid\n" % (DOMAIN, self.dir, self.port, self.dir))
        self.log = os.path.join(self.dir, "output")
        self.vsmtpd = [("vsmtpd+milter", ["service:opendkim.kind=milter",
                                          "service:opendkim.address=127.0.0.1:%d" % self.port,
                                          "listener:smtp.milters=opendkim"], None)]
        self.postfix = {"smtpd_milters": "inet:127.0.0.1:%d" % self.port}
        self.argv = ["opendkim", "-f", "-x", conf]


# rspamd's configuration: the packaged metrics, actions, groups, composites,
# modules and settings (common.conf without the statistics, whose Bayes
# classifier needs redis), and the two workers.
RSPAMD_CONF = """# Written by bench/milter.py.
lua = "$RULESDIR/rspamd.lua"
.include "$CONFDIR/metrics.conf"
.include "$CONFDIR/actions.conf"
.include "$CONFDIR/groups.conf"
.include "$CONFDIR/composites.conf"
.include "$CONFDIR/modules.conf"
.include "$CONFDIR/settings.conf"
modules {
    path = "${PLUGINSDIR}";
}
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}
logging {
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "warning";
}
worker "normal" {
    bind_socket = "127.0.0.1:%(http)d";
    .include "$CONFDIR/worker-normal.inc"
    count = %(count)d;
}
worker "rspamd_proxy" {
    bind_socket = "127.0.0.1:%(milter)d";
    milter = yes;
    timeout = 120s;
    upstream "local" {
        default = yes;
        self_scan = yes;
    }
    count = %(count)d;
}
"""

# local.d: no hyperscan (it compiles every expression at start, for a
# minute on a small machine), of the C modules only those that read the
# message alone (not dkim, which looks up keys, nor fuzzy_check, which asks
# rspamd.com's servers), DNS to a closed port, and X-Spamd-Result on mail
# from loopback too.
RSPAMD_LOCAL = {
    "options.inc": 'disable_hyperscan = true;\nfilters = "chartable,regexp";\n'
                   'dns {\n    nameserver = ["127.0.0.1:%(closed)d"];\n'
                   '    timeout = 0.2s;\n    retransmits = 0;\n}\n',
    "milter_headers.conf": 'use = ["x-spamd-result", "x-spam-status"];\n'
                           'skip_local = false;\nskip_authenticated = false;\n',
}

# The Lua modules that need the network (DNS, HTTP) or redis, and
# dkim_signing, which needs the dkim module.
RSPAMD_OFF = ("arc", "asn", "bayes_expiry", "dkim_signing", "dmarc", "emails", "greylist",
              "hfilter", "history_redis", "neural", "ratelimit", "rbl", "replies",
              "reputation", "spf", "url_redirector", "whitelist")


class Rspamd(Filter):
    """rspamd with its normal worker (HTTP) and its milter proxy on free
    loopback ports, os.cpu_count() processes each, as nobody."""
    name = "rspamd"
    marker = b"X-Spamd-Result:"
    start_timeout = 180  # loading its rules takes a while

    def __init__(self, directory, meter):
        super().__init__(directory, meter)
        self.http, self.port, closed = accept.free_port(), accept.free_port(), \
            accept.free_port()
        local = os.path.join(self.dir, "local.d")
        os.mkdir(local)
        conf = os.path.join(self.dir, "rspamd.conf")
        with open(conf, "w") as f:
            f.write(RSPAMD_CONF % {"http": self.http, "milter": self.port,
                                   "count": os.cpu_count()})
        files = dict(RSPAMD_LOCAL, **{m + ".conf": "enabled = false;\n" for m in RSPAMD_OFF})
        for name, text in files.items():
            with open(os.path.join(local, name), "w") as f:
                f.write(text % {"closed": closed} if "%" in text else text)
        shutil.chown(self.dir, "nobody", "nogroup")
        self.vsmtpd = [
            ("vsmtpd+rspamd", ["service:rspamd.kind=rspamd",
                               "service:rspamd.address=127.0.0.1:%d" % self.http],
             os.path.join(accept.SCRIPT_DIR, "rules", "rspamd.lua")),
            ("vsmtpd+milter", ["service:rspamd-milter.kind=milter",
                               "service:rspamd-milter.address=127.0.0.1:%d" % self.port,
                               "listener:smtp.milters=rspamd-milter"], None)]
        # As rspamd's integration guide has it for Postfix.
        self.postfix = {"smtpd_milters": "inet:127.0.0.1:%d" % self.port,
                        "milter_mail_macros": "i {mail_addr} {client_addr} {client_name} "
                                              "{auth_authen}"}
        self.argv = ["rspamd", "-f", "-u", "nobody", "-g", "nogroup", "-c", conf,
                     *("--var=%s=%s" % (v, self.dir)
                       for v in ("LOCAL_CONFDIR", "DBDIR", "RUNDIR", "LOGDIR"))]

    def ready(self):
        """Both workers up: the normal one answers its ping, the proxy listens."""
        # No proxy from the environment: straight to loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open("http://127.0.0.1:%d/ping" % self.http, timeout=1) as r:
                return r.read().strip() == b"pong" and listening(self.port)
        except OSError:
            return False


FILTERS = {"opendkim": (Opendkim, ("opendkim", "opendkim-genkey")),
           "rspamd": (Rspamd, ("rspamd",))}


class MilterPostfix(accept.Postfix):
    """accept.py's Postfix with the filter as its smtpd milter."""

    def __init__(self, workdir, meter, settings):
        self.settings = dict(settings, milter_protocol="6", milter_default_action="tempfail")
        super().__init__(workdir, meter)
        self.name = "postfix+milter"

    def _configure(self):
        """accept.py's main.cf, then the milter settings."""
        super()._configure()
        with open(os.path.join(self.etc, "main.cf"), "a") as f:
            for key, value in self.settings.items():
                f.write("%s = %s\n" % (key, value))


def unmarked(server, marker):
    """How many of the messages server held lack the field marker, of how many."""
    hold = os.path.join(server.queue, "hold") if isinstance(server, accept.Postfix) \
        else os.path.join(server.spool, "hold")
    missing = total = 0
    for root, _, files in os.walk(hold):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                missing += marker not in f.read()
            total += 1
    return missing, total


def print_table(servers, sessions, results, filt, repeat):
    """One line per sessions and server: medians, shares and v/p."""
    def med(name, n, key):
        """The median of key over the runs of server name with n sessions."""
        return accept.median_of(results[(name, n)], key)
    print()
    print("%4s  %-14s %6s %6s %11s %11s %6s" % ("sess", "server", "msg/s", "share",
                                               "CPU s/1000", filt.name, "v/p"))
    print("%4s  %-14s %6s %6s %11s %11s %6s" % ("", "", "", "", "", "CPU s/1000", ""))
    print("-" * 63)
    for n in sessions:
        for server in servers:
            name = server.name
            rate = med(name, n, "rate")
            base = name.split("+")[0]
            share = "%.2f" % (rate / med(base, n, "rate")) if name != base else "-"
            fcpu = "%.3f" % med(name, n, "filter_per_k") if name != base else "-"
            vp = "%.2f" % (rate / med("postfix+milter", n, "rate")) \
                if base == "vsmtpd" and name != base else ""
            print("%4d  %-14s %6.0f %6s %11.3f %11s %6s" % (
                n, name, rate, share, med(name, n, "cpu_per_k"), fcpu, vp))
    print()
    print("median of %d run(s) each; CPU: seconds per 1000 messages of the server's "
          "processes and of %s's; share: rate against the same server without %s; "
          "v/p: rate against postfix+milter" % (repeat, filt.name, filt.name))
    print("load average %.1f at the end, %d CPUs" % (os.getloadavg()[0], os.cpu_count()))


def main():
    """Start the filter and the servers, measure, print the table; the exit status."""
    ap = argparse.ArgumentParser(description="What a milter (OpenDKIM signing), or rspamd "
                                 "at preq, costs vsmtpd and Postfix, against each alone.")
    accept.add_common_arguments(ap, "the spools")
    ap.add_argument("--filter", choices=sorted(FILTERS), default="opendkim",
                    help="the filter daemon (default opendkim)")
    ap.add_argument("--size", type=int, default=5120, help="message body size in bytes")
    ap.add_argument("--sessions", default="1,16", help="parallel sessions (smtp-source -s)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the messages per run")
    ap.add_argument("--run-timeout", type=int, default=300,
                    help="seconds one smtp-source run may take")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("milter.py: must run as root (as accept.py)")
    filter_class, tools = FILTERS[args.filter]
    for tool in ("smtp-source", "postfix") + tools:
        if shutil.which(tool) is None:
            sys.exit("milter.py: %s not found (scripts/setup.sh installs it)" % tool)
    if not os.access(args.vsmtpd, os.X_OK):
        sys.exit("milter.py: no vsmtpd binary at %s (use --vsmtpd or VSMTPD_BIN)"
                 % args.vsmtpd)
    sessions = [int(x) for x in args.sessions.split(",")]

    workdir, meter_class = accept.run_setup(args, "vsmtpd-bench.")
    servers, meters, filt = [], [], None
    status = 1
    try:
        meters.append(meter_class(args.filter))
        filt = filter_class(workdir, meters[0])
        filt.start()
        message = make_message(workdir, args.size)
        for name, options, rules in [("vsmtpd", (), None)] + filt.vsmtpd:
            meters.append(meter_class(name.replace("+", "-")))
            servers.append(accept.Vsmtpd(os.path.abspath(args.vsmtpd),
                                         os.path.abspath(args.conf), workdir, meters[-1],
                                         name, rules, options))
        meters += [meter_class("postfix"), meter_class("postfix-milter")]
        servers.append(accept.Postfix(workdir, meters[-2]))
        # accept.Postfix lives in WORKDIR/postfix: the second one one level down
        second = os.path.join(workdir, "milter")
        os.mkdir(second)
        os.chmod(second, 0o755)
        servers.append(MilterPostfix(second, meters[-1], filt.postfix))
        for server in servers:
            server.start()
        log("%s on 127.0.0.1:%d" % (filt.name, filt.port))
        results = {}
        for n in sessions:
            count = max(1, int(COUNTS.get(n, 1000) * args.scale))
            for server in servers:  # warm-up
                r = accept.run_load(server, 0, n, max(1, count // 10), args.run_timeout,
                                    message)
                if not r["ok"]:
                    raise BenchError("%s warm-up failed: %s" % (server.name, r["error"]))
            for rep in range(args.repeat):
                for server in servers:
                    before = filt.meter.seconds()
                    r = accept.run_load(server, 0, n, count, args.run_timeout, message)
                    if not r["ok"]:
                        raise BenchError("%s, %d sessions: %s" % (server.name, n, r["error"]))
                    r["filter_per_k"] = (filt.meter.seconds() - before) * 1000.0 / count
                    results.setdefault((server.name, n), []).append(r)
                    log("[%d/%d] %-14s x%-3d %5d msgs %7.1f msg/s  cpu %.2f s/1000, "
                        "%s %.2f" % (rep + 1, args.repeat, server.name, n, count, r["rate"],
                                     r["cpu_per_k"], filt.name, r["filter_per_k"]))
        for server in servers:
            missing, total = unmarked(server, filt.marker) if "+" in server.name else (0, 1)
            if missing or not total:
                raise BenchError("%s held %d of %d messages without %s" % (
                    server.name, missing, total, filt.marker.decode().rstrip(":")))
        print_table(servers, sessions, results, filt, args.repeat)
        status = accept.report_problems(servers, [])
    except BenchError as e:
        log("milter.py: %s" % e)
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    finally:
        if filt is not None:
            filt.stop()
        accept.clean_up(servers, meters, workdir, args.keep)
    return status


if __name__ == "__main__":
    sys.exit(main())
