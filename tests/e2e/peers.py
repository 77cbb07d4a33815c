"""Real mail peers for the delivery end-to-end tests, on loopback only.

`SmtpSink` runs Postfix's smtp-sink (Debian package postfix): an SMTP or
LMTP server that takes every message and writes it to a dump file, with
failures, delays and disconnections to order. `DovecotLmtp` runs a real
Dovecot LMTP server (Debian packages dovecot-core and dovecot-lmtpd) that
delivers into maildirs under a directory of its own.

Both run in the foreground in their own process group, as root or not,
with nothing of the system's own configuration (/etc/dovecot, /run/dovecot,
/var/lib/dovecot) read or written, so that any number of them can run side
by side. Only the standard library is used; every wait has a deadline.
"""
import collections
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

IO_TIMEOUT = 10.0  # seconds, for every wait
IS_ROOT = os.geteuid() == 0
UNIX_PATH_MAX = 107  # bytes of a unix socket path (sun_path less its NUL)


def free_port(host="127.0.0.1"):
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _connects(target, timeout=0.2):
    """Whether a stream connection to target ((host, port) or a unix path) works."""
    family = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(target)
        except OSError:
            return False
    return True


def _stop_group(proc, sig=signal.SIGTERM):
    """Stop proc (started with start_new_session) and whatever it forked:
    sig to the leader, then SIGKILL to its process group past the deadline;
    the group is killed in any case so that no child outlives the test."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(IO_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(IO_TIMEOUT)


# ---------------------------------------------------------------- smtp-sink

SinkMessage = collections.namedtuple(
    "SinkMessage",
    "sender mail_params recipients rcpt_params content helo client_addr protocol")
SinkMessage.__doc__ = """One message smtp-sink received.

sender: the MAIL FROM address without its brackets ("" for <>);
mail_params: the MAIL parameters as given ("BODY=8BITMIME SMTPUTF8");
recipients: the RCPT TO addresses in order; rcpt_params: the parameters of
each ("NOTIFY=NEVER" or ""); content: the message as received, after
dot-unstuffing, with CRLF line ends (see SmtpSink); helo: the HELO, EHLO or
LHLO argument, None when none was sent; client_addr: "127.0.0.1" (IPv6 as
"ipv6:::1"), "local" on a unix socket; protocol: "SMTP", "ESMTP" or "LMTP"."""

SINK_COMMANDS = ("CONNECT", "HELO", "EHLO", "LHLO", "MAIL", "RCPT", "VRFY", "DATA", ".",
                 "RSET", "NOOP", "QUIT")


def _sink_commands(commands):
    out = []
    for c in commands:
        if c.upper() not in SINK_COMMANDS:
            raise ValueError(f"smtp-sink knows no command {c!r} (one of {SINK_COMMANDS})")
        out.append(c.upper())
    return ",".join(out)


_PATH_RE = re.compile(r"^<([^>]*)>\s*(.*)$")


def _split_path(args):
    """'<a@b> BODY=8BITMIME' -> ('a@b', 'BODY=8BITMIME')."""
    m = _PATH_RE.match(args)
    if m:
        return m.group(1), m.group(2)
    head, _, rest = args.partition(" ")
    return head, rest.strip()


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:<free port> (or another loopback
    address and port), or on a unix socket.

    Its files are in directory, named after a token of its own, so that
    sinks may share a directory: sink-<token>.messages (the dump),
    sink-<token>.log (smtp-sink's output), sink-<token>.sock.

    Every message it receives is appended to the dump file (smtp-sink -D,
    with a start marker per message, -S) at the moment the final dot
    arrives, before the reply to it is sent: once a client has its reply,
    the message is in the file, complete. A transaction that is still
    under way or was cut off never shows. (smtp-sink -d would write one file
    per message, created at MAIL and only complete after the dot: a reader
    could see half a message.) Each record of the dump is, as `man
    smtp-sink` describes it, LF-terminated lines:

        X-Sink-Start: <token of this sink>     (the -S marker)
        X-Client-Addr: 127.0.0.1                ("ipv6:..." for IPv6)
        X-Client-Proto: ESMTP                   (SMTP, ESMTP or LMTP)
        X-Helo-Args: client.example             (absent without HELO/EHLO/LHLO)
        X-Mail-Args: <from@example> BODY=8BITMIME
        X-Rcpt-Args: <to@example> NOTIFY=NEVER  (one per RCPT, in order)
        Received: from client.example ([127.0.0.1])
        \tby sink.test (smtp-sink) with ESMTP id 1a2b3c4d;
        \t<date>
        <the message, dot-unstuffed, every CR dropped>
        <an empty line>

    `messages()` parses that. smtp-sink drops every CR of the content, so
    the content is given back with CRLF line ends: a bare CR is lost and a
    bare LF comes back as CRLF. Every RCPT it takes is recorded, also those
    of a transaction whose DATA or final dot was answered with an error
    injected by hard_reject/soft_reject on "." (the message is in the dump
    all the same); a transaction refused at DATA is not.

    Arguments (each maps to a smtp-sink option):
      lmtp                LMTP instead of SMTP (-L): LHLO, one reply per
                          recipient after the dot.
      unix_socket         listen on a unix socket in directory (unix_path)
                          instead of TCP, connectable by any user.
      host, port          the TCP address to listen on: a loopback address
                          (127.0.0.2 stands for a second host) and a port;
                          port None picks a free one at each start, a port
                          given is kept, so that a stopped sink comes back
                          where its clients expect it.
      hostname            in the greeting and the EHLO reply (-h).
      pipelining, esmtp, eightbitmime, dsn, enhanced_status_codes
                          announce PIPELINING, ESMTP (EHLO), 8BITMIME, DSN,
                          ENHANCEDSTATUSCODES (-p, -e, -8, -N, -E when False).
      auth                announce AUTH PLAIN LOGIN (smtp-sink answers AUTH
                          with 250, which no real server does; off: -a).
      hard_reject, soft_reject
                          commands answered with 5xx / 4xx (-f, -r), from
                          SINK_COMMANDS: "CONNECT" (the greeting), "MAIL",
                          "RCPT" (every recipient), "DATA", "." (the final
                          dot; with LMTP one reply per recipient), ...
                          smtp-sink then stops announcing PIPELINING.
      hard_reply, soft_reply
                          the text of those replies (-B, -b); default
                          "500 5.3.0 Error: command failed" and
                          "450 4.3.0 Error: command failed".
      disconnect          commands after which it hangs up without a reply (-q).
      disconnect_421      commands answered "421" before hanging up (-Q).
      delays              {command: seconds} to wait before replying (-W).
      data_delay          seconds to wait before the reply to DATA (-w).
      abort_after_data    seconds after the 354 reply to DATA after which it
                          answers 550 and hangs up without reading the
                          message (-A).
      timeout             seconds it waits for a command (-t).
      verbose             log the SMTP conversations to the log file (-v).

    smtp-sink has no TLS. Run as root it keeps root's privileges (-u root):
    it needs no other user, and the dump directory stays writable.
    """

    def __init__(self, directory, lmtp=False, unix_socket=False, hostname="sink.test",
                 host="127.0.0.1", port=None, pipelining=True, esmtp=True, eightbitmime=True,
                 dsn=True, enhanced_status_codes=True, auth=False, hard_reject=(), soft_reject=(),
                 hard_reply=None, soft_reply=None, disconnect=(), disconnect_421=(),
                 delays=None, data_delay=0, abort_after_data=None, timeout=100,
                 verbose=False):
        self.dir = directory
        self.binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("smtp-sink is not installed (Debian package postfix)")
        self.lmtp = lmtp
        self.host = host
        self.fixed_port = port
        # the token names this sink's files: sinks may share a directory
        self.token = secrets.token_hex(8)
        self.marker = f"X-Sink-Start: {self.token}\n".encode()
        self.unix_path = os.path.join(directory, f"sink-{self.token}.sock") if unix_socket else None
        if self.unix_path is not None and len(self.unix_path.encode()) > UNIX_PATH_MAX:
            raise ValueError(f"unix socket path too long: {self.unix_path}")
        self.dump_path = os.path.join(directory, f"sink-{self.token}.messages")
        self.log_path = os.path.join(directory, f"sink-{self.token}.log")
        self.port = None
        self.proc = None
        opts = ["-h", hostname, "-t", str(int(timeout)), "-C", "-F",
                "-D", self.dump_path, "-S", self.marker.decode().replace("\n", "\\n")]
        for flag, on in (("-L", lmtp), ("-p", not pipelining), ("-e", not esmtp),
                         ("-8", not eightbitmime), ("-N", not dsn),
                         ("-E", not enhanced_status_codes), ("-a", not auth), ("-v", verbose)):
            if on:
                opts.append(flag)
        for flag, commands in (("-f", hard_reject), ("-r", soft_reject), ("-q", disconnect),
                               ("-Q", disconnect_421)):
            if commands:
                opts += [flag, _sink_commands(commands)]
        if hard_reply is not None:
            opts += ["-B", hard_reply]
        if soft_reply is not None:
            opts += ["-b", soft_reply]
        for command, seconds in (delays or {}).items():
            opts += ["-W", f"{_sink_commands([command]).lower()}:{int(seconds)}"]
        if data_delay:
            opts += ["-w", str(int(data_delay))]
        if abort_after_data is not None:
            opts += ["-A", str(int(abort_after_data))]
        if IS_ROOT:
            opts += ["-u", "root"]
        self.opts = opts

    @property
    def address(self):
        """(host, port), or the unix socket path."""
        return self.unix_path if self.unix_path else (self.host, self.port)

    @property
    def target(self):
        """The destination as [delivery] lmtp / relay_host take it."""
        return f"unix:{self.unix_path}" if self.unix_path else f"{self.host}:{self.port}"

    def _listen_arg(self):
        return f"unix:{self.unix_path}" if self.unix_path else f"inet:{self.host}:{self.port}"

    def start(self):
        for attempt in range(3):
            if self.unix_path is None:
                self.port = self.fixed_port or free_port(self.host)
            elif os.path.exists(self.unix_path):
                os.unlink(self.unix_path)
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([self.binary] + self.opts + [self._listen_arg(), "64"],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True)
            deadline = time.monotonic() + IO_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _connects(self.address):
                    if self.unix_path:
                        os.chmod(self.unix_path, 0o666)
                    return self
                time.sleep(0.02)
            self.stop()
            if "in use" not in self.log() or attempt == 2 or self.fixed_port:
                raise RuntimeError(f"smtp-sink did not start:\n{self.log()}")
        return self

    def stop(self):
        _stop_group(self.proc)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self):
        return _read_text(self.log_path)

    def _parse(self, record):
        lines = record.split(b"\n")
        head = {"X-Client-Addr": "", "X-Client-Proto": "", "X-Helo-Args": None,
                "X-Mail-Args": ""}
        rcpts = []
        i = 0
        while i < len(lines) and not lines[i].startswith(b"Received: "):
            name, _, value = lines[i].decode("utf-8", "surrogateescape").partition(": ")
            if name == "X-Rcpt-Args":
                rcpts.append(_split_path(value))
            elif name in head:
                head[name] = value
            i += 1
        if i + 3 > len(lines):
            raise ValueError(f"smtp-sink dump record without its Received: header: {record!r}")
        body = b"\n".join(lines[i + 3:])
        if body.endswith(b"\n"):
            body = body[:-1]  # the empty line smtp-sink adds after each message
        sender, mail_params = _split_path(head["X-Mail-Args"])
        return SinkMessage(sender, mail_params, [r for r, _ in rcpts], [p for _, p in rcpts],
                           body.replace(b"\n", b"\r\n"), head["X-Helo-Args"],
                           head["X-Client-Addr"], head["X-Client-Proto"])

    def messages(self):
        """Every message received so far, in order, as SinkMessage."""
        try:
            with open(self.dump_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        if not data:
            return []
        if not data.startswith(self.marker):
            raise ValueError(f"{self.dump_path} does not start with this sink's marker")
        # each record ends with a newline, so a marker starts a line
        records = re.split(rb"(?<=\n)" + re.escape(self.marker), data[len(self.marker):])
        return [self._parse(r) for r in records]

    def wait_messages(self, count, timeout=IO_TIMEOUT):
        """The messages once there are at least count of them."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages()
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"smtp-sink has {len(got)} messages, not {count}, "
                                     f"after {timeout} s")
            time.sleep(0.02)


# ---------------------------------------------------------------- Dovecot LMTP

DOVECOT_CONF = """\
# Written by tests/e2e/peers.py: a Dovecot with LMTP only, all of it here.
base_dir = {base_dir}
state_dir = {state_dir}
log_path = {log_path}
instance_name = {instance}
protocols = lmtp
listen = 127.0.0.1
ssl = no
hostname = {hostname}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
first_valid_gid = {first_gid}
mail_location = maildir:{mail_dir}/%d/%n/Maildir
auth_mechanisms = plain
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  {userdb}
}}
# Not root: no chroot, and nothing runs as another user.
service anvil {{
  chroot =
}}
service auth-worker {{
  user = $default_internal_user
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
"""


class DovecotLmtp:
    """Dovecot's LMTP server on 127.0.0.1:<free port> and a unix socket.

    Everything lives in a fresh directory made under parent (default /tmp,
    short enough for the unix socket paths Dovecot makes in its base_dir):
    dovecot.conf, run/ (base_dir: its sockets, the LMTP one included),
    state/, dovecot.log, and mail/<domain>/<local part>/Maildir for each
    recipient. It is started with `dovecot -F -c dovecot.conf` and reads
    nothing else: not /etc/dovecot, not /run/dovecot, not /var/lib/dovecot.
    Two instances never share a path or a port.

    users: None to take mail for any address; else a list of addresses
    ("bob@example.test"), the others refused at RCPT with "550 5.1.1 ...
    User doesn't exist". Addresses are lowercased by Dovecot (its
    auth_username_format %Lu); "bob+tag@example.test" goes to bob's
    INBOX.

    Mail is stored as the current user; when run as root, as "nobody"
    (group of nobody) instead, as Dovecot refuses to deliver as root
    ("Mail access for users with UID 0 not permitted"), and its internal
    processes (auth, anvil, ...) run as nobody too. The directory and mail/
    are then made reachable by nobody; the parent must be traversable by
    others (/tmp and the e2e workspace directories are).

    A delivered file is what Dovecot stores: the message with LF line
    ends, below the headers it adds: Return-Path:, Delivered-To: (only
    when the transaction had a single recipient) and Received:. stop()
    kills it; remove() deletes the directory.
    """

    def __init__(self, parent="/tmp", users=None, hostname="lmtp.test"):
        self.binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.access(self.binary, os.X_OK) or not os.access("/usr/lib/dovecot/lmtp", os.X_OK):
            raise RuntimeError("Dovecot LMTP is not installed (Debian packages dovecot-core "
                               "and dovecot-lmtpd)")
        self.root = tempfile.mkdtemp(prefix="vsmtpd-dovecot-", dir=parent)
        os.chmod(self.root, 0o755)
        self.base_dir = os.path.join(self.root, "run")
        if len(self.base_dir.encode()) > UNIX_PATH_MAX - 32:
            self.remove()
            raise ValueError(f"{parent} is too long a path for Dovecot's sockets")
        self.mail_dir = os.path.join(self.root, "mail")
        self.conf_path = os.path.join(self.root, "dovecot.conf")
        self.log_path = os.path.join(self.root, "dovecot.log")
        self.out_path = os.path.join(self.root, "dovecot.out")
        self.hostname = hostname
        self.users = None if users is None else [u.lower() for u in users]
        if IS_ROOT:
            pw = pwd.getpwnam("nobody")
        else:
            pw = pwd.getpwuid(os.geteuid())
        self.user, self.uid, self.gid = pw.pw_name, pw.pw_uid, pw.pw_gid
        self.group = grp.getgrgid(self.gid).gr_name
        self.port = None
        self.proc = None
        os.mkdir(os.path.join(self.root, "state"))
        os.mkdir(self.mail_dir, 0o700)
        if IS_ROOT:
            os.chown(self.mail_dir, self.uid, self.gid)

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    @property
    def unix_path(self):
        """The LMTP unix socket (mode 0666)."""
        return os.path.join(self.base_dir, "lmtp")

    @property
    def target(self):
        """The TCP destination as [delivery] lmtp takes it."""
        return f"127.0.0.1:{self.port}"

    def _userdb(self):
        home = f"{self.mail_dir}/%d/%n"
        if self.users is None:
            return f"driver = static\n  args = uid={self.uid} gid={self.gid} home={home}"
        path = os.path.join(self.root, "users")
        with open(path, "w") as f:
            for u in self.users:
                if ":" in u or "\n" in u or "@" not in u:
                    raise ValueError(f"not an address for Dovecot's user list: {u!r}")
                local, domain = u.rsplit("@", 1)
                f.write(f"{u}::{self.uid}:{self.gid}::{self.mail_dir}/{domain}/{local}::\n")
        os.chmod(path, 0o644)
        return f"driver = passwd-file\n  args = username_format=%Lu {path}"

    def _write_conf(self):
        text = DOVECOT_CONF.format(
            base_dir=self.base_dir, state_dir=os.path.join(self.root, "state"),
            log_path=self.log_path, instance=os.path.basename(self.root),
            hostname=self.hostname, user=self.user, group=self.group, uid=self.uid,
            first_gid=min(self.gid, 1), mail_dir=self.mail_dir, userdb=self._userdb(),
            port=self.port)
        with open(self.conf_path, "w") as f:
            f.write(text)
        os.chmod(self.conf_path, 0o644)

    def _greets(self):
        try:
            with socket.create_connection(self.address, timeout=0.5) as s:
                return s.recv(512).startswith(b"220 ")
        except OSError:
            return False

    def start(self):
        for attempt in range(3):
            self.port = free_port()
            self._write_conf()
            with open(self.out_path, "ab") as out:
                self.proc = subprocess.Popen([self.binary, "-F", "-c", self.conf_path],
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                             start_new_session=True)
            deadline = time.monotonic() + IO_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._greets() and os.path.exists(self.unix_path):
                    return self
                time.sleep(0.05)
            self.stop()
            if "in use" not in self.log() or attempt == 2:
                raise RuntimeError(f"dovecot did not start:\n{self.log()}")
        return self

    def stop(self):
        _stop_group(self.proc)
        self.proc = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.remove()

    def log(self):
        return _read_text(self.out_path) + _read_text(self.log_path)

    def maildir(self, address):
        """The Maildir of address (which need not exist yet)."""
        local, _, domain = address.lower().rpartition("@")
        return os.path.join(self.mail_dir, domain, local, "Maildir")

    def messages(self, address):
        """The messages delivered to address (its INBOX, new/ and cur/), as
        bytes, oldest first."""
        found = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(address), sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for name in names:
                path = os.path.join(d, name)
                with open(path, "rb") as f:
                    found.append((os.stat(path).st_mtime_ns, name, f.read()))
        return [data for _, _, data in sorted(found)]

    def wait_messages(self, address, count, timeout=IO_TIMEOUT):
        """The messages of address once there are at least count."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages(address)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{address} has {len(got)} messages, not {count}, "
                                     f"after {timeout} s")
            time.sleep(0.02)
