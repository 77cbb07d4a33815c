#!/usr/bin/python3
"""auth.py - what checking and signing mail costs vsmtpd: SPF, DKIM and
DMARC on every message, and a DKIM signature on every message, each as a
share of the rate without them.

Starts three throw-away vsmtpd instances as accept.py does (same settings,
same durability, every message held on accept, spools in one temporary
directory) and a dnsmasq on a loopback port that answers for example.org:
its SPF record (v=spf1 ip4:127.0.0.0/8 -all), the DKIM key of the selector
"bench" and its DMARC record (p=reject), with a TTL of --dns-ttl seconds
(300: vsmtpd keeps the answers that long, as with real records; 0: every
message asks dnsmasq again). The servers:

    vsmtpd         the hold only
    vsmtpd+check   the hold, then rules/auth-check.lua: ctx:spf(),
                   ctx:dkim() and ctx:dmarc() at preq
    vsmtpd+sign    the hold, then rules/auth-sign.lua: ctx:dkim_sign()
                   at preq with a 2048-bit RSA key ([dkim:bench])

Every message is the same file, signed once by python3-dkim's dkimsign
with the key the DNS publishes, so the check finds one signature to verify
and the sender passes SPF and DMARC; Postfix's smtp-source sends it (-F),
one message per connection. The servers take turns run by run; the table
shows medians of messages per second, the ratio to the hold-only server
and CPU seconds per 1000 messages. Needs root (as accept.py), smtp-source,
dnsmasq, openssl and dkimsign.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import time

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)
import accept  # noqa: E402  (the servers, CPU meters and helpers)
from accept import BenchError, log  # noqa: E402

DOMAIN = "example.org"   # accept.SENDER's domain
SELECTOR = "bench"
DNSMASQ = "/usr/sbin/dnsmasq"
COUNTS = {1: 600, 16: 2000}  # messages a run, by sessions


def free_udp_tcp_port():
    """A loopback port free for both UDP and TCP right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def txt_option(name, text):
    """dnsmasq's --txt-record for text (no commas in it), cut into
    character-strings of 255: dnsmasq separates strings by commas."""
    parts = [text[i:i + 255] for i in range(0, len(text), 255)]
    return "--txt-record=%s,%s" % (name, ",".join(parts))


def make_key(directory):
    """A 2048-bit RSA key for [dkim:bench]: its path and the DKIM record."""
    key = os.path.join(directory, "dkim.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", key], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    b64 = subprocess.run(["base64", "-w0"], input=der, check=True,
                         capture_output=True).stdout.decode()
    return key, "v=DKIM1; k=rsa; p=" + b64


def make_message(directory, key, size):
    """The message every run sends: size bytes of body, signed by dkimsign."""
    line = "x" * 76 + "\r\n"
    body = line * max(1, size // len(line))
    raw = ("From: Bench <bench-sender@%s>\r\nTo: <%s>\r\nSubject: bench\r\n"
           "Date: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <bench@%s>\r\n\r\n%s"
           % (DOMAIN, accept.RECIPIENT, DOMAIN, body)).encode()
    signed = subprocess.run(["dkimsign", SELECTOR, DOMAIN, key], input=raw, check=True,
                            capture_output=True).stdout
    path = os.path.join(directory, "message.eml")
    # smtp-source -F adds CRLF after each line: give it LF lines.
    with open(path, "wb") as f:
        f.write(signed.replace(b"\r\n", b"\n"))
    os.chmod(path, 0o644)
    return path


class Dnsmasq:
    """dnsmasq answering for DOMAIN only, on a free loopback port."""

    def __init__(self, directory, records, ttl):
        self.port = free_udp_tcp_port()
        self.log = os.path.join(directory, "dnsmasq.log")
        argv = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--bind-interfaces", "--listen-address=127.0.0.1", "--port=%d" % self.port,
                "--conf-file=/dev/null", "--pid-file=", "--local=/%s/" % DOMAIN,
                "--local-ttl=%d" % ttl] + records
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                         start_new_session=True)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise BenchError("dnsmasq did not start; see %s" % self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def main():
    ap = argparse.ArgumentParser(description="What SPF, DKIM and DMARC checks and DKIM "
                                 "signing cost vsmtpd, against the hold alone.")
    accept.add_common_arguments(ap, "the spools")
    ap.add_argument("--size", type=int, default=5120, help="body size in bytes")
    ap.add_argument("--sessions", default="1,16", help="parallel sessions (smtp-source -s)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the messages per run")
    ap.add_argument("--run-timeout", type=int, default=300,
                    help="seconds one smtp-source run may take")
    ap.add_argument("--dns-ttl", type=int, default=300,
                    help="TTL of the DNS records in seconds (0: nothing may be kept, "
                    "every message asks the server)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("auth.py: must run as root (as accept.py)")
    for tool in ("smtp-source", "dkimsign", "openssl", DNSMASQ):
        if shutil.which(tool) is None:
            sys.exit("auth.py: %s not found (scripts/setup.sh installs it)" % tool)
    if not os.access(args.vsmtpd, os.X_OK):
        sys.exit("auth.py: no vsmtpd binary at %s (use --vsmtpd or VSMTPD_BIN)" % args.vsmtpd)
    sessions = [int(x) for x in args.sessions.split(",")]

    workdir, meter_class = accept.run_setup(args, "vsmtpd-bench.")
    servers, meters, dns = [], [], None
    try:
        key, record = make_key(workdir)
        message = make_message(workdir, key, args.size)
        dns = Dnsmasq(workdir, [
            txt_option(DOMAIN, "v=spf1 ip4:127.0.0.0/8 -all"),
            txt_option("%s._domainkey.%s" % (SELECTOR, DOMAIN), record),
            txt_option("_dmarc." + DOMAIN, "v=DMARC1; p=reject"),
        ], args.dns_ttl)
        common = ["rules.dns_servers=127.0.0.1:%d" % dns.port,
                  "dkim:bench.domain=" + DOMAIN, "dkim:bench.selector=" + SELECTOR,
                  "dkim:bench.key=" + key]
        for name, policy in (("vsmtpd", None), ("vsmtpd+check", "auth-check.lua"),
                             ("vsmtpd+sign", "auth-sign.lua")):
            meter = meter_class(name)
            meters.append(meter)
            servers.append(accept.Vsmtpd(
                os.path.abspath(args.vsmtpd), os.path.abspath(args.conf), workdir, meter,
                name, os.path.join(SCRIPT_DIR, "rules", policy) if policy else None,
                options=common))
        for server in servers:
            server.start()
        log("dnsmasq on 127.0.0.1:%d; message %s (%d bytes)"
            % (dns.port, message, os.path.getsize(message)))
        results = {}
        for n in sessions:
            count = max(1, int(COUNTS.get(n, 1000) * args.scale))
            for server in servers:  # warm-up
                accept.run_load(server, args.size, n, max(1, count // 10), args.run_timeout,
                                message)
            for rep in range(args.repeat):
                for server in servers:
                    r = accept.run_load(server, args.size, n, count, args.run_timeout,
                                        message)
                    if not r["ok"]:
                        raise BenchError("%s, %d sessions: %s" % (server.name, n, r["error"]))
                    results.setdefault((server.name, n), []).append(r)
                    log("[%d/%d] %-13s x%-3d %5d msgs %7.1f msg/s  cpu %.2f s/1000"
                        % (rep + 1, args.repeat, server.name, n, count, r["rate"],
                           r["cpu_per_k"]))
        print()
        print("sess | %-23s | %-23s | %-23s" % ("vsmtpd", "+check (SPF DKIM DMARC)",
                                                 "+sign (DKIM rsa-sha256)"))
        print("     | %-23s | %-23s | %-23s" % ("msg/s  CPU s/1000", "msg/s  share  CPU",
                                                 "msg/s  share  CPU"))
        print("-" * 82)
        for n in sessions:
            row = []
            base = accept.median_of(results[("vsmtpd", n)], "rate")
            for name in ("vsmtpd", "vsmtpd+check", "vsmtpd+sign"):
                rate = accept.median_of(results[(name, n)], "rate")
                cpu = accept.median_of(results[(name, n)], "cpu_per_k")
                if name == "vsmtpd":
                    row.append("%6.0f  %6.3f          " % (rate, cpu))
                else:
                    row.append("%6.0f  %4.2f   %6.3f " % (rate, rate / base, cpu))
            print("%4d | %s | %s | %s" % (n, *row))
        print()
        print("median of %d run(s) each; %d-byte body signed rsa-sha256; share: rate "
              "against vsmtpd's" % (args.repeat, args.size))
        accept.report_problems(servers, [])
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        if dns is not None:
            dns.stop()
        accept.clean_up(servers, meters, workdir, args.keep)


if __name__ == "__main__":
    main()
