#!/usr/bin/python3
"""starttls.py - compare the cost of STARTTLS in vsmtpd and Postfix on loopback.

Starts a throw-away vsmtpd and a throw-away Postfix instance as accept.py
does (same settings, same durability, spools in one temporary directory),
both with one certificate made here with the openssl command and STARTTLS
offered (vsmtpd: listener tls = may; Postfix: smtpd_tls_security_level = may),
session tickets and caches left at each server's defaults. Both are driven by
the same client, a pool of processes using Python's ssl module; every
connection does

    EHLO, STARTTLS, TLS handshake, EHLO, then
      handshake run: QUIT                                  -> handshakes/s
      message run:   MAIL, RCPT, DATA (one message), QUIT  -> messages/s

for a fixed time with 1 and 16 connections at once, the servers taking turns
so that noise on the machine hits both alike. It measures the servers' CPU
time the way accept.py does (a cgroup v2 cpu.stat, else /proc) and prints a
table with the vsmtpd/Postfix ratios.

Needs root (Postfix's master must start as root), postfix and openssl.
Run "starttls.py --help" for the options; bench/README.md has an overview.
"""
import argparse
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)
import accept  # noqa: E402  (the servers, CPU meters and helpers)
from accept import BenchError, log  # noqa: E402

CERT_NAME = "bench-mx.localdomain"
KEY_TYPES = {
    "rsa2048": ["-newkey", "rsa:2048"],
    "rsa4096": ["-newkey", "rsa:4096"],
    "p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
}
RUN_KINDS = ("handshake", "resume", "message", "plain")
UNITS = {"handshake": "handshakes/s", "resume": "handshakes/s", "message": "messages/s",
         "plain": "sessions/s"}

SESSION_TIMEOUT = 30    # seconds for any one reply or handshake
WORKER_START = 20       # seconds for the client processes to be ready
MAX_ERRORS = 20         # failed connections after which a client process gives up
WARMUP_SECONDS = 1.5


# ---------------------------------------------------------------------------
# The certificate

def make_certificate(directory, key_type):
    """A self-signed certificate and its key in directory, for both servers
    (and the client's trust store); (cert path, key path)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    cmd = ["openssl", "req", "-x509", "-nodes", "-sha256", "-days", "7",
           "-subj", "/CN=" + CERT_NAME, "-addext", "subjectAltName=DNS:" + CERT_NAME,
           "-keyout", key, "-out", cert] + KEY_TYPES[key_type]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=accept.COMMAND_TIMEOUT)
    if r.returncode != 0:
        raise BenchError("openssl req failed: %s" % (r.stderr or r.stdout).strip())
    os.chmod(cert, 0o644)
    # Both servers read the key as root when they start; as for a real
    # install, the group of vsmtpd's user may read it too (SIGHUP reloads).
    shutil.chown(key, "root", "nogroup")
    os.chmod(key, 0o640)
    return cert, key


# ---------------------------------------------------------------------------
# The servers: accept.py's, with STARTTLS

def tls_vsmtpd(binary, conf, workdir, meter, cert, key):
    return accept.Vsmtpd(binary, conf, workdir, meter,
                         options=["tls.certificate=" + cert, "tls.key=" + key,
                                  "listener:smtp.tls=may"])


class TlsPostfix(accept.Postfix):
    """accept.py's Postfix with STARTTLS offered. The TLS settings not named
    here (session tickets, no session cache database, protocols, ciphers)
    stay at Postfix's built-in defaults; tlsmgr, in the stock master.cf,
    provides the ticket keys."""

    def __init__(self, workdir, meter, cert, key):
        self.cert = cert
        self.key = key
        super().__init__(workdir, meter)

    def _configure(self):
        super()._configure()
        with open(os.path.join(self.etc, "main.cf"), "a") as f:
            f.write("smtpd_tls_cert_file = %s\n" % self.cert)
            f.write("smtpd_tls_key_file = %s\n" % self.key)
            f.write("smtpd_tls_security_level = may\n")
        with open(os.path.join(self.etc, "master.cf"), "a") as f:
            f.write("tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n")


# ---------------------------------------------------------------------------
# The client

class SmtpError(Exception):
    pass


class Replies:
    """Reads whole SMTP replies from a socket (plain or TLS)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def read(self):
        """The next reply: (code, [lines])."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                data = self.sock.recv(4096)
                if not data:
                    raise SmtpError("connection closed by the server")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("latin-1")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        if not lines[-1][:3].isdigit():
            raise SmtpError("not an SMTP reply: %r" % lines[-1])
        return int(lines[-1][:3]), lines

    def expect(self, code, what):
        got, lines = self.read()
        if got != code:
            raise SmtpError("%s: expected %d, got %s" % (what, code, " / ".join(lines)))
        return lines


def make_message(size):
    """A message whose body is size bytes (like smtp-source -l), headers extra,
    in lines of 80 bytes; ready to send after DATA, the final dot included."""
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: STARTTLS benchmark\r\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            "Message-ID: <starttls-bench@%s>\r\n\r\n"
            % (accept.SENDER, accept.RECIPIENT, CERT_NAME))
    lines = ["x" * 78 + "\r\n"] * (size // 80)
    rest = size % 80
    if rest >= 3:
        lines.append("y" * (rest - 2) + "\r\n")
    elif rest and lines:
        lines[-1] = "x" * (78 + rest) + "\r\n"
    elif rest:
        lines.append("\r\n" if rest == 2 else "")
    return (head + "".join(lines) + ".\r\n").encode("ascii")


def client_context(cafile):
    """The client's TLS settings: Python's defaults (TLS 1.2 or 1.3), the
    bench certificate as the only trust anchor, no SNI (as MTAs send by
    default) and so no host name check."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile)
    return ctx


def one_session(port, ctx, kind, message, session):
    """One connection: EHLO, STARTTLS, handshake, EHLO, [a message,] QUIT;
    for kind "plain" only EHLO, QUIT. Returns the TLS socket's (session,
    reused, version, cipher)."""
    helo = ("EHLO %s\r\n" % accept.HELO_NAME).encode("ascii")
    with socket.create_connection(("127.0.0.1", port), timeout=SESSION_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        r = Replies(sock)
        r.expect(220, "greeting")
        sock.sendall(helo)
        if not any(line[4:].upper() == "STARTTLS" for line in r.expect(250, "EHLO")):
            raise SmtpError("STARTTLS not offered in the EHLO reply")
        if kind == "plain":
            sock.sendall(b"QUIT\r\n")
            r.expect(221, "QUIT")
            return None, False, None, None
        sock.sendall(b"STARTTLS\r\n")
        r.expect(220, "STARTTLS")
        if r.buf:
            raise SmtpError("data after the STARTTLS reply: %r" % r.buf[:80])
        with ctx.wrap_socket(sock, session=session) as tls:
            r = Replies(tls)
            tls.sendall(helo)
            r.expect(250, "EHLO after STARTTLS")
            if kind == "message":
                tls.sendall(("MAIL FROM:<%s>\r\n" % accept.SENDER).encode("ascii"))
                r.expect(250, "MAIL")
                tls.sendall(("RCPT TO:<%s>\r\n" % accept.RECIPIENT).encode("ascii"))
                r.expect(250, "RCPT")
                tls.sendall(b"DATA\r\n")
                r.expect(354, "DATA")
                tls.sendall(message)
                r.expect(250, "end of data")
            tls.sendall(b"QUIT\r\n")
            r.expect(221, "QUIT")
            cipher = tls.cipher()
            # In TLS 1.3 the ticket comes after the handshake; by now it has.
            return tls.session, tls.session_reused, tls.version(), cipher[0] if cipher else None


def client_worker(port, cafile, kind, message, ready, go, deadline, results):
    """One client process: sessions one after another until the deadline,
    then its counts into results."""
    # SIGINT is ignored (from the parent): Ctrl-C reaches the parent, which
    # stops us with SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    out = {"done": 0, "errors": 0, "first_errors": [], "reused": 0, "version": None,
           "cipher": None, "cpu": 0.0}
    ctx = client_context(cafile)
    ready.release()
    if go.wait(WORKER_START):
        end = deadline.value
        cpu0 = time.process_time()
        session = None
        while time.monotonic() < end and out["errors"] < MAX_ERRORS:
            try:
                got, reused, out["version"], out["cipher"] = one_session(
                    port, ctx, kind, message, session if kind == "resume" else None)
            except (OSError, ssl.SSLError, SmtpError) as e:
                out["errors"] += 1
                if len(out["first_errors"]) < 3:
                    out["first_errors"].append("%s: %s" % (type(e).__name__, e))
                session = None
                continue
            out["done"] += 1
            out["reused"] += bool(reused)
            session = got
        out["cpu"] = time.process_time() - cpu0
    results.put(out)


def run_load(server, kind, sessions, duration, size, cafile, timeout):
    """One timed run of `sessions` client processes against server; a dict of
    what was measured."""
    result = {"ok": False, "error": ""}
    if not server.alive():
        result["error"] = "server not running"
        return result
    mp = multiprocessing.get_context("fork")
    ready = mp.Semaphore(0)
    go = mp.Event()
    deadline = mp.Value("d", 0.0)
    results = mp.Queue()
    message = make_message(size)
    workers = [mp.Process(target=client_worker, daemon=True,
                          args=(server.port, cafile, kind, message, ready, go, deadline,
                                results))
               for _ in range(sessions)]
    outs = []
    try:
        old_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for w in workers:
                w.start()
        finally:
            signal.signal(signal.SIGINT, old_sigint)
        for _ in workers:
            if not ready.acquire(timeout=WORKER_START):
                result["error"] = "client processes did not start"
                return result
        # Start from a clean disk, as accept.py does.
        os.sync()
        before = server.queued()
        cpu0 = server.meter.seconds()
        t0 = time.monotonic()
        deadline.value = t0 + duration
        go.set()
        end = t0 + duration + timeout
        while len(outs) < len(workers) and time.monotonic() < end:
            try:
                outs.append(results.get(timeout=min(1.0, max(0.01, end - time.monotonic()))))
            except queue.Empty:
                if not any(w.is_alive() for w in workers) and results.empty():
                    break
        wall = time.monotonic() - t0
        # The servers' last sessions end (and are reaped) just after the
        # client has read 221.
        time.sleep(0.2)
        cpu = server.meter.seconds() - cpu0
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
        for w in workers:
            w.join(accept.STOP_TIMEOUT)
        results.close()

    done = sum(o["done"] for o in outs)
    errors = []
    if len(outs) < len(workers):
        errors.append("%d of %d client processes did not report in %ds"
                      % (len(workers) - len(outs), len(workers), duration + timeout))
    nerr = sum(o["errors"] for o in outs)
    if nerr:
        firsts = [e for o in outs for e in o["first_errors"]][:3]
        errors.append("%d failed connections, e.g. %s" % (nerr, "; ".join(firsts)))
    if done == 0:
        errors.append("no session completed")
    if kind == "message":
        settle = time.monotonic() + accept.SETTLE_TIMEOUT
        while True:
            got = server.queued() - before
            if got >= done or time.monotonic() > settle:
                break
            time.sleep(0.1)
        if got != done:
            errors.append("queue grew by %d, %d messages were accepted" % (got, done))
    if not server.alive():
        errors.append("server died")
    versions = sorted({"%s %s" % (o["version"], o["cipher"]) for o in outs if o["version"]})
    result.update(wall=wall, cpu=cpu, done=done, rate=done / wall if wall else 0.0,
                  cpu_per_k=cpu * 1000.0 / done if done else None,
                  reused=sum(o["reused"] for o in outs), tls=", ".join(versions),
                  client_cpu=sum(o.get("cpu", 0.0) for o in outs))
    result["error"] = "; ".join(errors)
    result["ok"] = not errors
    return result


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(
        description="Compare the cost of STARTTLS in vsmtpd and Postfix over loopback.")
    accept.add_common_arguments(ap, "both spools and the certificate")
    ap.add_argument("--duration", type=float, default=10.0,
                    help="seconds of load per run (default 10)")
    ap.add_argument("--quick", action="store_true",
                    help="3-second runs: a rough check in well under a minute")
    ap.add_argument("--sessions", default="1,16",
                    help="connections at once, one client process each (default 1,16)")
    ap.add_argument("--runs", default="handshake,message",
                    help="what each connection does after the handshake: handshake (QUIT), "
                         "resume (QUIT, and the next connection of the same client "
                         "process resumes the TLS session), message (one message, QUIT), "
                         "plain (no STARTTLS: EHLO, QUIT, the cost of a connection "
                         "without TLS); default handshake,message")
    ap.add_argument("--size", type=int, default=5120,
                    help="message body size in bytes for message runs (default 5120)")
    ap.add_argument("--key-type", choices=sorted(KEY_TYPES), default="rsa2048",
                    help="the certificate's key (default rsa2048)")
    ap.add_argument("--run-timeout", type=int, default=120,
                    help="seconds a run may take beyond its duration")
    args = ap.parse_args()
    if args.quick:
        args.duration = 3.0

    if os.geteuid() != 0:
        sys.exit("starttls.py: must run as root (Postfix's master starts as root)")
    for tool in ("postfix", "openssl"):
        if shutil.which(tool) is None:
            sys.exit("starttls.py: %s not found (install the %s package)" % (tool, tool))
    if not os.access(args.vsmtpd, os.X_OK):
        sys.exit("starttls.py: no vsmtpd binary at %s (use --vsmtpd or VSMTPD_BIN)"
                 % args.vsmtpd)
    session_counts = [int(x) for x in args.sessions.split(",")]
    kinds = args.runs.split(",")
    for k in kinds:
        if k not in RUN_KINDS:
            sys.exit("starttls.py: --runs: %r is not one of %s" % (k, ", ".join(RUN_KINDS)))
    if args.duration <= 0 or args.repeat < 1 or min(session_counts) < 1 or args.size < 0:
        sys.exit("starttls.py: --duration, --repeat, --sessions and --size must be positive")
    configs = [(k, n) for k in kinds for n in session_counts]

    # Accepted mail stays in the spools until the end: room for a generous
    # 2000 messages a second on each server, each twice over with its blocks.
    message_runs = sum(1 for k, _ in configs if k == "message") * args.repeat * 2
    need = int(2000 * args.duration * message_runs * (args.size + 4096) * 2) + (256 << 20)
    st = os.statvfs(args.workdir)
    if st.f_bavail * st.f_frsize < need:
        sys.exit("starttls.py: %s has %.1f GB free, the runs may need %.1f GB "
                 "(use --workdir or a shorter --duration)"
                 % (args.workdir, st.f_bavail * st.f_frsize / 1e9, need / 1e9))

    workdir, meter_class = accept.run_setup(args, "vsmtpd-starttls.")
    servers = []
    meters = []
    failures = []
    try:
        tls_dir = os.path.join(workdir, "tls")
        os.mkdir(tls_dir)
        os.chmod(tls_dir, 0o755)
        cert, key = make_certificate(tls_dir, args.key_type)
        vmeter = meter_class("vsmtpd")
        meters.append(vmeter)
        pmeter = meter_class("postfix")
        meters.append(pmeter)
        vsmtpd = tls_vsmtpd(os.path.abspath(args.vsmtpd), os.path.abspath(args.conf),
                            workdir, vmeter, cert, key)
        postfix = TlsPostfix(workdir, pmeter, cert, key)
        servers = [vsmtpd, postfix]
        log("work directory %s, certificate %s (%s), CPU accounting: %s"
            % (workdir, cert, args.key_type, vmeter.method))
        log("vsmtpd %s on 127.0.0.1:%d, postfix on 127.0.0.1:%d"
            % (vsmtpd.binary, vsmtpd.port, postfix.port))
        load_start = os.getloadavg()
        for s in servers:
            s.start()

        # Warm-up: page cache, Postfix's pre-forked smtpd processes (each
        # loads the certificate once), the spool directories; not measured.
        for s in servers:
            r = run_load(s, "message", max(session_counts), WARMUP_SECONDS, args.size, cert,
                         args.run_timeout)
            if not r["ok"]:
                raise BenchError("%s warm-up failed: %s" % (s.name, r["error"]))
            log("%s: %s" % (s.name, r["tls"]))

        results = {(c, s.name): [] for c in configs for s in servers}
        for rep in range(args.repeat):
            for kind, sessions in configs:
                # Interleaved, so a noisy neighbour slows both alike.
                for s in servers:
                    r = run_load(s, kind, sessions, args.duration, args.size, cert,
                                 args.run_timeout)
                    results[((kind, sessions), s.name)].append(r)
                    line = "[%d/%d] %-7s %-9s x%-3d" % (rep + 1, args.repeat, s.name, kind,
                                                        sessions)
                    if "wall" in r:
                        line += " %6d in %5.2fs  %7.1f/s  cpu %6.2fs (%s s/1000, client %s)" % (
                            r["done"], r["wall"], r["rate"], r["cpu"],
                            accept.fmt(r["cpu_per_k"], ".3f"),
                            accept.fmt(r["client_cpu"] * 1000.0 / r["done"] if r["done"]
                                       else None, ".3f"))
                        if kind == "resume":
                            line += "  %d%% resumed" % (100 * r["reused"] // max(1, r["done"]))
                    if not r["ok"]:
                        line += "  FAILED: " + r["error"]
                        failures.append(line)
                    log(line)
                    if not s.alive():
                        raise BenchError("%s is not running any more" % s.name)

        # The table, on stdout.
        print()
        row = "%-9s %4s  %-7s %10s %-12s %10s | %8s %8s"
        print(row % ("run", "conc", "server", "rate", "", "CPU s/1000", "v/p rate",
                     "v/p CPU"))
        print("-" * 79)
        for kind, sessions in configs:
            v = results[((kind, sessions), "vsmtpd")]
            p = results[((kind, sessions), "postfix")]
            vr, pr = accept.median_of(v, "rate"), accept.median_of(p, "rate")
            vc, pc = accept.median_of(v, "cpu_per_k"), accept.median_of(p, "cpu_per_k")
            print(row % (kind, sessions, "vsmtpd", accept.fmt(vr, ".1f"), UNITS[kind],
                         accept.fmt(vc, ".3f"),
                         accept.fmt(vr / pr if vr and pr else None, ".2f"),
                         accept.fmt(vc / pc if vc and pc else None, ".2f")))
            print(row % ("", "", "postfix", accept.fmt(pr, ".1f"), UNITS[kind],
                         accept.fmt(pc, ".3f"), "", ""))
        print()
        print("median of %d run(s) of %gs each; %s; one connection per handshake or "
              "message, %s-byte bodies; certificate key %s"
              % (args.repeat, args.duration, vmeter.method, args.size, args.key_type))
        print("v/p rate above 1: vsmtpd is faster; v/p CPU below 1: vsmtpd uses less CPU")
        for s in servers:
            seen = sorted({r["tls"] for (c, name), rs in results.items() if name == s.name
                           for r in rs if r.get("tls")})
            line = "%s: %s" % (s.name, "; ".join(seen) or "-")
            if "resume" in kinds:
                rs = [r for (c, name), lst in results.items()
                      if name == s.name and c[0] == "resume" for r in lst if "done" in r]
                done = sum(r["done"] for r in rs)
                line += "; resumed %d of %d resume-run handshakes" % (
                    sum(r["reused"] for r in rs), done)
            print(line)
        print("load average %.1f at the start, %.1f at the end, %d CPUs "
              "(client, servers and everything else share them)"
              % (load_start[0], os.getloadavg()[0], os.cpu_count()))

        return accept.report_problems(servers, failures)
    except BenchError as e:
        log("starttls.py: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("starttls.py: interrupted")
        return 130
    finally:
        accept.clean_up(servers, meters, workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
