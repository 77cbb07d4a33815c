"""SASL helpers for the vsmtpd end-to-end tests of SMTP AUTH.

- make_sasldb: a Cyrus sasldb2 file made with saslpasswd2.
- Saslauthd: a real saslauthd (shadow backend) that sees test copies of
  /etc/passwd and /etc/shadow through bind mounts in a private mount
  namespace, so the host's files and the host's view are never touched.
- starttls / tls_session: STARTTLS on an e2e.SMTPClient (the certificate
  is checked only when a CA file is given).
- plain_response, auth_plain, auth_login, scram_sha256_auth: the client side
  of PLAIN, LOGIN and SCRAM-SHA-256 (RFC 5802, RFC 7677), standard library
  only; the SCRAM client checks the server's signature.

Every process started here runs in its own process group and is stopped
with deadlines.
"""
import base64
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shutil
import signal
import ssl
import subprocess

import vsmtpd_e2e as e2e

SASLPASSWD2 = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
SASLAUTHD = shutil.which("saslauthd") or "/usr/sbin/saslauthd"
TESTSASLAUTHD = shutil.which("testsaslauthd") or "/usr/sbin/testsaslauthd"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    return base64.b64decode(text.encode("ascii"), validate=True)


def _run(args, timeout=30, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, **kw)
    if p.returncode != 0:
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        raise AssertionError(f"{' '.join(args)} exited with {p.returncode}: {out}")
    return p


# ---------------------------------------------------------------- sasldb

def make_sasldb(path, users, default_realm=e2e.HOSTNAME):
    """Create the sasldb2 file `path` with users {"user@realm": password};
    a name without "@" is stored in default_realm. The file is made
    readable by everyone (the daemon runs as nobody)."""
    for name, password in users.items():
        user, _, realm = name.rpartition("@")
        if not user:
            user, realm = name, default_realm
        _run([SASLPASSWD2, "-f", path, "-c", "-p", "-u", realm, user],
             input=password.encode("utf-8"))
    assert os.path.exists(path), f"saslpasswd2 did not create {path}"
    os.chmod(path, 0o644)
    return path


# ---------------------------------------------------------------- TLS on a client

def client_tls_context(cafile=None):
    """A client context: with cafile, the server's certificate must chain to
    it and name the host; without, it is not checked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def starttls(client, server_hostname=e2e.HOSTNAME, cafile=None):
    """STARTTLS on an e2e.SMTPClient: 220 2.0.0, then the handshake; the
    client then talks TLS on the same object."""
    client.expect("STARTTLS", 220, "2.0.0")
    assert client.buf == b"", f"data after the 220 of STARTTLS: {client.buf!r}"
    client.sock = client_tls_context(cafile).wrap_socket(client.sock,
                                                         server_hostname=server_hostname)
    return client


def tls_session(port, host="127.0.0.1", ehlo=True, cafile=None, **kw):
    """A client that said EHLO, STARTTLS and (with ehlo) EHLO again:
    (client, the reply to the last EHLO)."""
    c = e2e.SMTPClient(port, host=host, **kw)
    c.ehlo()
    starttls(c, cafile=cafile)
    r = c.ehlo() if ehlo else None
    return c, r


def ehlo_auth_mechanisms(reply):
    """The mechanisms of the AUTH line of an EHLO reply, or None without one."""
    lines = [l for l in reply.lines[1:] if l.upper().startswith("AUTH ") or l.upper() == "AUTH"]
    assert len(lines) <= 1, f"more than one AUTH line: {reply!r}"
    return lines[0].split()[1:] if lines else None


# ---------------------------------------------------------------- PLAIN, LOGIN

def plain_response(user, password, authzid=""):
    """The base64 PLAIN response (RFC 4616): authzid NUL authcid NUL password."""
    return b64(f"{authzid}\0{user}\0{password}")


def auth_plain(client, user, password):
    """AUTH PLAIN with an initial response; the reply."""
    return client.cmd(f"AUTH PLAIN {plain_response(user, password)}")


def auth_login(client, user, password):
    """AUTH LOGIN, user and password each in answer to a 334; the final reply
    (or the first reply that is no 334)."""
    r = client.cmd("AUTH LOGIN")
    if r.code != 334:
        return r
    r = client.cmd(b64(user))
    if r.code != 334:
        return r
    return client.cmd(b64(password))


# ---------------------------------------------------------------- SCRAM-SHA-256

class ScramOutcome:
    """What a SCRAM exchange gave: the final reply, and whether the server
    proved it knows the password (its signature matched)."""

    def __init__(self):
        self.reply = None
        self.server_first = None
        self.server_final = None
        self.server_signature_verified = False

    def __repr__(self):
        return (f"ScramOutcome(reply={self.reply!r}, server_first={self.server_first!r}, "
                f"server_final={self.server_final!r}, verified={self.server_signature_verified})")


def _saslname(name):
    return name.replace("=", "=3D").replace(",", "=2C")


def _attrs(message):
    out = {}
    for part in message.split(","):
        key, eq, value = part.partition("=")
        assert eq and len(key) == 1, f"malformed SCRAM attribute {part!r} in {message!r}"
        out[key] = value
    return out


def scram_keys(password, salt, iterations, hash_name="sha256"):
    """(ClientKey, StoredKey, ServerKey) of RFC 5802 section 3."""
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored_key = hashlib.new(hash_name, client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hash_name).digest()
    return client_key, stored_key, server_key


def scram_sha256_auth(client, user, password, cnonce=None):
    """Run AUTH SCRAM-SHA-256 on an e2e.SMTPClient (RFC 5802, RFC 7677,
    RFC 4954). The client-first message goes as the initial response; the
    server-final message (v=...) comes in a 334, is checked, and is answered
    with an empty line. Returns a ScramOutcome."""
    out = ScramOutcome()
    cnonce = cnonce or secrets.token_urlsafe(24)
    gs2_header = "n,,"
    client_first_bare = f"n={_saslname(user)},r={cnonce}"
    r = client.cmd(f"AUTH SCRAM-SHA-256 {b64(gs2_header + client_first_bare)}")
    if r.code != 334:
        out.reply = r
        return out
    server_first = unb64(r.text).decode("utf-8")
    out.server_first = server_first
    attrs = _attrs(server_first)
    assert "m" not in attrs, f"server requires an unknown extension: {server_first!r}"
    nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
    assert nonce.startswith(cnonce) and len(nonce) > len(cnonce), \
        f"server nonce does not extend ours: {server_first!r}"
    assert iterations >= 4096, f"iteration count below RFC 7677's minimum: {iterations}"

    client_key, stored_key, server_key = scram_keys(password, salt, iterations)
    without_proof = f"c={b64(gs2_header)},r={nonce}"
    auth_message = f"{client_first_bare},{server_first},{without_proof}".encode("utf-8")
    client_signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, client_signature))
    r = client.cmd(b64(f"{without_proof},p={b64(proof)}"))
    if r.code != 334:
        # Either a failure, or a success that carried no server-final message
        # (then the server's signature could not be checked).
        out.reply = r
        return out
    server_final = unb64(r.text).decode("utf-8")
    out.server_final = server_final
    fattrs = _attrs(server_final)
    if "v" in fattrs:
        expected = hmac.new(server_key, auth_message, "sha256").digest()
        out.server_signature_verified = hmac.compare_digest(base64.b64decode(fattrs["v"]), expected)
    if out.server_signature_verified:
        out.reply = client.cmd("")       # empty response: done on our side
    else:
        out.reply = client.cmd("*")      # we do not trust this server: cancel
    return out


# ---------------------------------------------------------------- saslauthd

def _group_pids(pgid):
    """Live (non-zombie) processes of process group pgid."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            pids.append(int(name))
    return pids


class Saslauthd:
    """saslauthd -a shadow, in a private mount namespace where test copies of
    /etc/passwd and /etc/shadow (with `users`, {name: password}, added) are
    bind-mounted over the real ones: only this saslauthd sees the test users.

    The socket is <directory>/run/mux; the folder is reachable by every user
    (the daemon under test runs as nobody)."""

    def __init__(self, directory, users, mechanism="shadow"):
        self.dir = directory
        self.users = dict(users)
        self.mechanism = mechanism
        self.run_dir = os.path.join(directory, "run")
        self.mux = os.path.join(self.run_dir, "mux")
        self.etc_dir = os.path.join(directory, "etc")
        self.log_path = os.path.join(directory, "saslauthd.log")
        self.proc = None
        self.pgid = None

    def _write_files(self):
        os.makedirs(self.run_dir, exist_ok=True)
        os.makedirs(self.etc_dir, exist_ok=True)
        for d in (self.dir, self.run_dir):
            os.chmod(d, 0o755)
        os.chmod(self.etc_dir, 0o700)
        with open("/etc/passwd") as f:
            passwd = f.read()
        try:
            with open("/etc/shadow") as f:
                shadow = f.read()
        except OSError:
            shadow = ""
        if passwd and not passwd.endswith("\n"):
            passwd += "\n"
        if shadow and not shadow.endswith("\n"):
            shadow += "\n"
        uid = 42000
        for name, password in self.users.items():
            for line in passwd.splitlines():
                assert not line.startswith(name + ":"), f"user {name} exists on this host"
            hashed = _run([OPENSSL, "passwd", "-6", "-stdin"],
                          input=password.encode("utf-8")).stdout.decode().strip()
            assert hashed.startswith("$6$"), hashed
            passwd += f"{name}:x:{uid}:{uid}:vsmtpd test user:/nonexistent:/usr/sbin/nologin\n"
            shadow += f"{name}:{hashed}:19000:0:99999:7:::\n"
            uid += 1
        self.passwd_path = os.path.join(self.etc_dir, "passwd")
        self.shadow_path = os.path.join(self.etc_dir, "shadow")
        with open(self.passwd_path, "w") as f:
            f.write(passwd)
        with open(self.shadow_path, "w") as f:
            f.write(shadow)
        os.chmod(self.passwd_path, 0o644)
        os.chmod(self.shadow_path, 0o600)

    def start(self, timeout=e2e.IO_TIMEOUT):
        assert self.proc is None or self.proc.poll() is not None, "saslauthd already running"
        self._write_files()
        # -n 0: a process per request, reaped by the master, so that nothing
        # is left behind when the master stops
        script = ('set -e; mount --bind "$1" /etc/passwd; mount --bind "$2" /etc/shadow; '
                  'exec "$3" -d -a "$4" -n 0 -m "$5"')
        unshare = [UNSHARE, "--mount", "--propagation", "private"]
        if not e2e.IS_ROOT:
            unshare.append("--map-root-user")
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                unshare + ["/bin/sh", "-c", script, "sh", self.passwd_path, self.shadow_path,
                           SASLAUTHD, self.mechanism, self.run_dir],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
        self.pgid = self.proc.pid

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"saslauthd exited with {self.proc.returncode}:\n{self.log()}")
            return os.path.exists(self.mux) and "listening on socket" in self.log()
        try:
            e2e.wait_until(up, timeout, what="saslauthd's socket")
        except AssertionError:
            self.stop()
            raise
        return self

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def check(self, user, password):
        """testsaslauthd's answer for user/password: ("OK" or "NO", its output)."""
        p = subprocess.run([TESTSASLAUTHD, "-f", self.mux, "-u", user, "-p", password],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=e2e.IO_TIMEOUT)
        out = p.stdout.decode("utf-8", "replace")
        m = re.search(r'^0: (OK|NO) ', out, re.M)
        return (m.group(1) if m else None), out

    def verify(self):
        """Assert that this saslauthd accepts each test user's password, refuses
        a wrong one, and that the host does not see the test users."""
        for name, password in self.users.items():
            ok, out = self.check(name, password)
            assert ok == "OK", f"testsaslauthd {name}: {out}\n{self.log()}"
            ok, out = self.check(name, password + "-wrong")
            assert ok == "NO", f"testsaslauthd {name} with a wrong password: {out}"
            try:
                pwd.getpwnam(name)
            except KeyError:
                pass
            else:
                raise AssertionError(f"the host sees the test user {name}")
            with open("/etc/passwd") as f:
                assert not any(l.startswith(name + ":") for l in f), "host /etc/passwd changed"

    def stop(self, timeout=e2e.IO_TIMEOUT):
        """SIGTERM the master (it stops and reaps its workers), then SIGKILL
        whatever is left of the process group; wait until all are gone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

        def gone():
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.poll()
            return self.proc.returncode is not None and not _group_pids(self.pgid)
        e2e.wait_until(gone, timeout, what="saslauthd's processes to exit")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
