"""TLS: STARTTLS on smtp and submission listeners, TLS from the first byte
on submissions listeners, SNI, session resumption across session processes,
the STARTTLS command injection (CVE-2011-0411), the security levels, the
oldest protocol, failed and slow handshakes, what is recorded (Received:,
envelope, log), what rules see of TLS, and the certificate checks at start-up
(`vsmtpd -t`) and on SIGHUP.

The certificates are made at test time by tlscerts.py with the openssl
command; swaks and `openssl s_client` are real clients, Python's ssl module
is the byte-exact one."""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import tlscerts
import vsmtpd_e2e as e2e
from vsmtpd_e2e import HOSTNAME

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"
OPENSSL = tlscerts.OPENSSL
SNI_NAME = "sni.test.example"
WILD_SECTION = "sni:*.wild.test.example"
EHLO_KEYWORDS = ["PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                 "CHUNKING", "DSN"]
READY = "2.0.0 Ready to start TLS"
MUST_STARTTLS = "5.7.0 Must issue a STARTTLS command first"
MESSAGE = b"Subject: over TLS\r\n\r\nsecret\r\n"

# The connect and mail stages answer with what they see of TLS.
RULES = r'''
local function describe(ctx)
  if ctx.tls == nil then
    return "notls secured=" .. tostring(ctx.is_secured)
  end
  local t = ctx.tls
  local ok = ctx.is_secured and t.version:match("^TLSv1%.[23]$") ~= nil
  return "tls secured=" .. tostring(ctx.is_secured) .. " ok=" .. tostring(ok)
    .. " version=" .. t.version .. " cipher=" .. t.cipher
    .. " bits=" .. tostring(t.bits) .. " sni=" .. tostring(t.sni)
end

return {
  connect = {
    rule "tls at connect" (function(ctx)
      return status.accept(code(220, "", "ESMTP " .. describe(ctx)))
    end),
  },
  mail = {
    rule "tls at mail" (function(ctx)
      return status.accept(code(250, "2.1.0", "Ok " .. describe(ctx)))
    end),
  },
}
'''

# Received: for a message over TLS (spec: "What is recorded").
RECEIVED_TLS_RE = re.compile(
    rb"^Received: from (?P<helo>\S+) \(\[127\.0\.0\.1\]\)\r\n"
    rb"\t\(using (?P<version>TLSv1\.[23]) with cipher (?P<cipher>[A-Za-z0-9_-]+)"
    rb" \((?P<bits>\d+)/(?P<algbits>\d+) bits\)\)\r\n"
    rb"\tby mx\.test\.example (?:\(vsmtpd\) )?with (?P<proto>\S+) id (?P<id>[0-9A-F]{16})"
    rb"(?:\r\n\tfor <[^>]*>)?; [^\r\n]+\r\n\Z")


# ---------------------------------------------------------------- fixtures

def unique_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(e2e.free_port())
    return sorted(ports)


@pytest.fixture(scope="module")
def certs(workspace):
    return tlscerts.make_certs(workspace.new_dir("tls-certs"))


def tls_section(certs, **extra):
    return {"tls": {"certificate": certs.server.cert, "key": certs.server.key, **extra},
            f"sni:{SNI_NAME}": {"certificate": certs.sni.cert, "key": certs.sni.key},
            WILD_SECTION: {"certificate": certs.wildcard.cert, "key": certs.wildcard.key}}


@pytest.fixture(scope="module")
def tls_daemon(module_daemons, certs):
    """smtp (tls may by default), plain (tls none), enc (smtp, tls encrypt),
    sub (submission: tls encrypt by default) and smtps (submissions)."""
    plain, enc, sub, smtps = unique_ports(4)
    settings = tls_section(certs)
    settings.update({
        "listener:plain": {"address": f"127.0.0.1:{plain}", "kind": "smtp", "tls": "none"},
        "listener:enc": {"address": f"127.0.0.1:{enc}", "kind": "smtp", "tls": "encrypt"},
        "listener:sub": {"address": f"127.0.0.1:{sub}", "kind": "submission", "auth": "no"},
        "listener:smtps": {"address": f"127.0.0.1:{smtps}", "kind": "submissions", "auth": "no"},
    })
    d = module_daemons(settings, label="-tls", rules=RULES)
    d.ports = {"smtp": d.port, "plain": plain, "enc": enc, "sub": sub, "smtps": smtps}
    return d


@pytest.fixture(scope="module")
def strict_daemon(module_daemons, certs):
    """TLS 1.3 only, 1 s for the handshake."""
    (smtps,) = unique_ports(1)
    settings = tls_section(certs, min_protocol="TLSv1.3", handshake_timeout="1s")
    settings["listener:smtps"] = {"address": f"127.0.0.1:{smtps}", "kind": "submissions",
                                  "auth": "no"}
    d = module_daemons(settings, label="-strict", rules=RULES)
    d.ports = {"smtp": d.port, "smtps": smtps}
    return d


# ---------------------------------------------------------------- clients

def client_context(certs, maximum=None):
    """A client that trusts the test CA (names are checked by the tests)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.ca)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def handshake(c, ctx, sni=None):
    """Turn client c's socket into TLS (SNI: sni, None for none)."""
    assert c.buf == b"", f"plaintext left before the handshake: {c.buf!r}"
    c.sock = ctx.wrap_socket(c.sock, server_hostname=sni)
    return c


def starttls(c, ctx, sni=None):
    """STARTTLS on a client that said EHLO; c then talks TLS."""
    c.expect("STARTTLS", 220, "2.0.0", text=READY)
    return handshake(c, ctx, sni)


def tls_session(port, ctx, sni=None):
    """EHLO, STARTTLS, handshake and EHLO again: (client, the last EHLO reply)."""
    c = e2e.SMTPClient(port)
    c.ehlo()
    starttls(c, ctx, sni)
    return c, c.ehlo()


def tls_on_connect(port, ctx, sni=None):
    """A client of a submissions listener: TLS first, then the greeting."""
    c = e2e.SMTPClient(port, greet=False)
    handshake(c, ctx, sni)
    c.greeting = c.read_reply(esc=False)
    assert c.greeting.code == 220, c.greeting
    return c


def read_until_closed(sock, timeout):
    """Everything the server sends until it closes; fails if it stays open."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"the connection is still open after {timeout} s (got {data!r})"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def swaks(port, *args):
    """Run swaks; (exit status, transcript)."""
    if not os.access(SWAKS, os.X_OK):
        raise RuntimeError("swaks is missing (setup.sh installs it)")
    cmd = [SWAKS, "--server", "127.0.0.1", "--port", str(port), "--timeout", "10",
           "--from", "swaks@example.org", "--to", "rcpt@example.net",
           "--helo", "swaks.test.example", *args]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def s_client(port, *args, commands=b"EHLO s-client.test.example\nQUIT\n"):
    """openssl s_client with STARTTLS: it sends commands (LF turned into CRLF)
    once TLS is up and reads until the server closes. Its stdout has the
    session and what the server said inside TLS (stderr has the last line of
    the plaintext EHLO reply, among others). The exit status is not used: it
    is 1 when the server closes without close_notify after QUIT."""
    cmd = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp",
           "-crlf", "-ign_eof", "-nocommands", *args]
    p = subprocess.run(cmd, input=commands, capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    assert re.search(r"^221 2\.0\.0 ", out, re.M), \
        f"s_client did not get through to QUIT:\n{out}\nstderr:\n{err}"
    return out


def s_client_subject(out):
    m = re.search(r"^subject=(.*)$", out, re.M)
    assert m is not None, f"no subject in the s_client output:\n{out}"
    return m.group(1)


def check_tls_message(d, qid, version, cipher, bits, proto="ESMTPS"):
    """The spool file of qid records TLS: Received: and the envelope."""
    content, env = d.message(qid)
    received, body = e2e.split_received(content)
    m = RECEIVED_TLS_RE.match(received)
    assert m is not None, f"Received: without the TLS clause: {received!r}"
    assert m.group("version").decode() == version, received
    assert m.group("cipher").decode() == cipher, received
    assert int(m.group("bits")) == bits, received
    assert m.group("proto").decode() == proto, received
    assert m.group("id").decode() == qid, received
    assert env["tls_version"] == version, env
    assert env["tls_cipher"] == cipher, env
    assert env["protocol"] == proto, env
    return content, env, body


def assert_null_fields(env, *keys):
    """The envelope records none of these (absent, as every unset field)."""
    for key in keys:
        assert env.get(key) is None, f"{key}: expected none, got {env[key]!r}"


def log_since(d, offset):
    return d.log()[offset:]


# ---------------------------------------------------------------- EHLO

def test_ehlo_offers_starttls_when_a_certificate_is_set(tls_daemon, certs):
    with tls_daemon.client() as c:
        r = c.ehlo()
        assert r.lines == [HOSTNAME, *EHLO_KEYWORDS, "STARTTLS"], r
        starttls(c, client_context(certs))
        r = c.ehlo()
        assert r.lines == [HOSTNAME, *EHLO_KEYWORDS], "STARTTLS offered inside TLS"
        c.quit()


@pytest.mark.parametrize("listener", ["enc", "sub"])
def test_ehlo_offers_starttls_on_encrypt_listeners(tls_daemon, listener):
    with e2e.SMTPClient(tls_daemon.ports[listener]) as c:
        assert c.ehlo().lines[-1] == "STARTTLS"


def test_ehlo_does_not_offer_starttls_without_tls(tls_daemon, daemon):
    # a listener with tls = none, beside TLS ones
    with e2e.SMTPClient(tls_daemon.ports["plain"]) as c:
        assert c.ehlo().lines == [HOSTNAME, *EHLO_KEYWORDS]
        c.expect("STARTTLS", 502, "5.5.1", text="5.5.1 Error: STARTTLS not available")
        c.mail()
    # a daemon without [tls] certificate
    with daemon.session() as c:
        assert "STARTTLS" not in c.ehlo().lines
        c.expect("STARTTLS", 502, "5.5.1", text="5.5.1 Error: STARTTLS not available")
        c.send_message(b"plain\r\n")


def test_submissions_listener_is_tls_from_the_first_byte(tls_daemon, certs):
    # a client that does not start TLS gets no plaintext greeting
    with socket.create_connection(("127.0.0.1", tls_daemon.ports["smtps"]), timeout=5) as s:
        s.settimeout(0.5)
        try:
            data = s.recv(100)
        except socket.timeout:
            data = b""
        assert not data.startswith(b"220"), f"plaintext greeting on submissions: {data!r}"
    with tls_on_connect(tls_daemon.ports["smtps"], client_context(certs)) as c:
        assert c.greeting.text.startswith(f"{HOSTNAME} ESMTP tls secured=true"), c.greeting
        r = c.ehlo()
        assert r.lines == [HOSTNAME, *EHLO_KEYWORDS], r
        c.expect("STARTTLS", 503, "5.5.1", text="5.5.1 Error: TLS already active")
        c.quit()


# ---------------------------------------------------------------- real clients

def swaks_tls(out):
    m = re.search(r"^=== TLS started with cipher (TLSv1\.[23]):([A-Za-z0-9_-]+):(\d+)$", out, re.M)
    assert m is not None, out
    return m.group(1), m.group(2), int(m.group(3))


def swaks_id(out):
    ids = re.findall(r"^<~  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$", out, re.M)
    assert len(ids) == 1, out
    return ids[0]


def test_swaks_starttls_delivers_and_records_tls(tls_daemon):
    d = tls_daemon
    offset = len(d.log())
    rc, out = swaks(d.ports["smtp"], "--tls")
    assert rc == 0, out
    assert "<-  220 2.0.0 Ready to start TLS" in out, out
    version, cipher, bits = swaks_tls(out)
    # the MAIL reply (from the rules) is inside TLS
    assert re.search(rf"^<~  250 2\.1\.0 Ok tls secured=true ok=true version={version} "
                     rf"cipher={cipher} bits={bits} sni=", out, re.M), out
    qid = swaks_id(out)
    _, env, body = check_tls_message(d, qid, version, cipher, bits)
    assert env["helo"] == "swaks.test.example"
    assert b"\r\nX-Mailer: swaks" in body
    d.wait_log(rf"{re.escape(qid)}: from=<swaks@example\.org>, .* proto=ESMTPS$")
    assert re.search(rf"TLS established from 127\.0\.0\.1: {version} with cipher {cipher} "
                     rf"\({bits}/\d+ bits\)", log_since(d, offset)), log_since(d, offset)
    assert_null_fields(env, "authid", "auth_mechanism")


def test_swaks_tls_on_connect_delivers_on_submissions(tls_daemon):
    d = tls_daemon
    rc, out = swaks(d.ports["smtps"], "--tls-on-connect")
    assert rc == 0, out
    version, cipher, bits = swaks_tls(out)
    # the greeting comes inside TLS, and the connect stage already sees TLS
    assert re.search(rf"^<~  220 {re.escape(HOSTNAME)} ESMTP tls secured=true ok=true "
                     rf"version={version} cipher={cipher} bits={bits} ", out, re.M), out
    assert "STARTTLS" not in out
    qid = swaks_id(out)
    check_tls_message(d, qid, version, cipher, bits)


def test_plaintext_message_records_no_tls(tls_daemon):
    with tls_daemon.session() as c:
        qid = c.send_message(b"plain\r\n")
        c.quit()
    content, env = tls_daemon.message(qid)
    received = e2e.split_received(content)[0]
    assert b"(using " not in received and b" with ESMTP id " in received, received
    assert env["protocol"] == "ESMTP"
    assert_null_fields(env, "tls_version", "tls_cipher", "authid", "auth_mechanism")


def test_python_tls13_message_records_the_negotiated_cipher(tls_daemon, certs):
    c, _ = tls_session(tls_daemon.port, client_context(certs))
    with c:
        cipher, version, bits = c.sock.cipher()
        assert version == "TLSv1.3"
        qid = c.send_message(MESSAGE)
        c.quit()
    _, _, body = check_tls_message(tls_daemon, qid, version, cipher, bits)
    assert body == MESSAGE


def test_default_min_protocol_accepts_tls12(tls_daemon, certs):
    ctx = client_context(certs, maximum=ssl.TLSVersion.TLSv1_2)
    c, _ = tls_session(tls_daemon.port, ctx)
    with c:
        cipher, version, bits = c.sock.cipher()
        assert version == "TLSv1.2"
        qid = c.send_message(MESSAGE)
        c.quit()
    check_tls_message(tls_daemon, qid, "TLSv1.2", cipher, bits)


@pytest.mark.parametrize("sni,expected", [
    (None, "mx.test.example"),
    (SNI_NAME, SNI_NAME),
    ("other.test.example", "mx.test.example"),
    ("a.wild.test.example", "*.wild.test.example"),
])
def test_s_client_starttls_and_sni_choose_the_certificate(tls_daemon, certs, sni, expected):
    name_args = ["-servername", sni] if sni else ["-noservername"]
    verify_name = sni if sni and expected != "mx.test.example" else "mx.test.example"
    out = s_client(tls_daemon.port, *name_args, "-CAfile", certs.ca,
                   "-verify_hostname", verify_name)
    assert s_client_subject(out) == f"CN = {expected}", out
    assert "Verify return code: 0 (ok)" in out, out
    # the commands went over TLS: EHLO without STARTTLS, then QUIT
    assert re.search(rf"^250-{re.escape(HOSTNAME)}\r?$", out, re.M), out
    assert "250-STARTTLS" not in out and "250 STARTTLS" not in out, out


def test_python_client_sees_the_sni_certificate(tls_daemon, certs):
    ctx = client_context(certs)
    for sni, pair in ((None, certs.server), (SNI_NAME, certs.sni)):
        c, _ = tls_session(tls_daemon.port, ctx, sni)
        with c:
            assert c.sock.getpeercert(binary_form=True) == pair.der(), sni
            c.quit()
    # on submissions too
    with tls_on_connect(tls_daemon.ports["smtps"], ctx, SNI_NAME) as c:
        assert c.sock.getpeercert(binary_form=True) == certs.sni.der()


def connect_pids(d, offset):
    return [int(p) for p in re.findall(r"vsmtpd smtp\[(\d+)\]: info: connect from ",
                                       log_since(d, offset))]


@pytest.mark.parametrize("protocol", ["-tls1_3", "-tls1_2"])
def test_session_is_resumed_by_another_session_process(tls_daemon, certs, tmp_path, protocol):
    d = tls_daemon
    sess = str(tmp_path / "session.pem")
    offset = len(d.log())
    common = ["-servername", "mx.test.example", "-CAfile", certs.ca, protocol]
    version = "TLSv1.3" if protocol == "-tls1_3" else "TLSv1.2"
    out = s_client(d.port, *common, "-sess_out", sess)
    assert re.search(rf"^New, {version}, Cipher is ", out, re.M), out
    assert os.path.exists(sess) and os.path.getsize(sess) > 0, "s_client saved no session"
    # The process that served s_client is the first the pool hands the
    # next connection to: keep it busy, so the resumption goes elsewhere.
    first = d.session_pid(re.findall(r"connect from \S+:(\d+) on ", log_since(d, offset))[0])
    busy = [e2e.SMTPClient(d.port)]
    while d.session_pid(busy[-1].local_port) != first:
        assert len(busy) < 10, "the first session process serves no one"
        busy.append(e2e.SMTPClient(d.port))
    out = s_client(d.port, *common, "-sess_in", sess)
    for c in busy:
        c.quit()
    assert re.search(rf"^Reused, {version}, Cipher is ", out, re.M), \
        f"the session was not resumed:\n{out}"
    e2e.wait_until(lambda: len(re.findall(r"vsmtpd smtp\[\d+\]: info: disconnect from ",
                                          log_since(d, offset))) >= 2 + len(busy),
                   what="the sessions to end")
    pids = connect_pids(d, offset)
    assert pids[0] != pids[-1], pids


# ---------------------------------------------------------------- STARTTLS

@pytest.mark.parametrize("injected,verb", [
    (b"RSET\r\n", "rset"),
    (b"MAIL FROM:<a@b>\r\n", "mail"),
    (b"EHLO injected.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", "rcpt"),
])
def test_commands_pipelined_after_starttls_are_discarded(tls_daemon, certs, injected, verb):
    d = tls_daemon
    c = d.client()
    with c:
        c.ehlo()
        c.send(b"STARTTLS\r\n" + injected)  # one write: one packet on loopback
        r = c.read_reply()
        assert (r.code, r.text) == (220, READY), r
        assert c.pending(0.2) == b"", "a plaintext reply to the injected command"
        handshake(c, client_context(certs))
        # nothing is answered inside TLS before the client says something
        assert c.pending(0.5) == b"", "the injected command was run inside TLS"
        r = c.ehlo()
        assert "STARTTLS" not in r.lines
        c.quit()
    summary = d.session_summary(c.local_port)
    assert "starttls=1 " in summary, summary
    assert f"{verb}=" not in summary, f"the injected {verb.upper()} was counted: {summary}"
    assert "ehlo=2 " in summary, summary
    assert "injected.example" not in summary, summary


def test_starttls_resets_the_session(tls_daemon, certs):
    with tls_daemon.client() as c:
        c.ehlo()
        starttls(c, client_context(certs))
        r = c.cmd("MAIL FROM:<sender@example.org>")
        assert r.code == 503 and r.esc == "5.5.1", f"MAIL without EHLO after STARTTLS: {r!r}"
        c.ehlo()
        c.send_message(MESSAGE)
        c.quit()


def test_starttls_errors(tls_daemon, certs):
    d = tls_daemon
    with d.client() as c:
        c.expect("STARTTLS", 503, "5.5.1", text="5.5.1 Error: send EHLO first")
        c.ehlo()
        c.expect("STARTTLS now", 501, "5.5.4", text="5.5.4 Syntax: STARTTLS")
        c.mail()
        c.expect("STARTTLS", 503, "5.5.1", text="5.5.1 Error: MAIL transaction in progress")
        c.expect("RSET", 250)
        # the session goes on: STARTTLS works now
        starttls(c, client_context(certs))
        c.ehlo()
        c.expect("STARTTLS", 503, "5.5.1", text="5.5.1 Error: TLS already active")
        c.send_message(MESSAGE)
        c.quit()


@pytest.mark.parametrize("listener", ["enc", "sub"])
def test_encrypt_listener_needs_starttls_before_mail(tls_daemon, certs, listener):
    d = tls_daemon
    with e2e.SMTPClient(d.ports[listener]) as c:
        c.ehlo()
        c.expect("MAIL FROM:<sender@example.org>", 530, "5.7.0", text=MUST_STARTTLS)
        c.expect("RCPT TO:<rcpt@example.net>", 503)
        starttls(c, client_context(certs))
        c.ehlo()
        cipher, version, bits = c.sock.cipher()
        qid = c.send_message(MESSAGE)
        c.quit()
    check_tls_message(d, qid, version, cipher, bits)


# ---------------------------------------------------------------- protocol floor, failures

def handshake_refused(c, ctx):
    """The handshake fails (an alert or a close, not a timeout)."""
    with pytest.raises(OSError) as exc:
        handshake(c, ctx)
    assert not isinstance(exc.value, socket.timeout), "the handshake timed out"
    return exc.value


def test_min_protocol_tls13_refuses_a_tls12_client(strict_daemon, certs):
    d = strict_daemon
    before = d.log().count("TLS handshake failed")
    tls12 = client_context(certs, maximum=ssl.TLSVersion.TLSv1_2)
    with d.session() as c:
        c.expect("STARTTLS", 220, "2.0.0", text=READY)
        handshake_refused(c, tls12)
    d.wait_log(r"TLS handshake failed", count=before + 1)
    with e2e.SMTPClient(d.ports["smtps"], greet=False) as c:
        handshake_refused(c, tls12)
    d.wait_log(r"TLS handshake failed", count=before + 2)
    # TLS 1.3 is fine
    c, _ = tls_session(d.port, client_context(certs))
    with c:
        assert c.sock.version() == "TLSv1.3"
        cipher, version, bits = c.sock.cipher()
        qid = c.send_message(MESSAGE)
        c.quit()
    check_tls_message(d, qid, version, cipher, bits)


def test_silent_client_is_dropped_after_the_handshake_timeout(strict_daemon):
    d = strict_daemon
    with d.session() as c:
        c.expect("STARTTLS", 220, "2.0.0", text=READY)
        start = time.monotonic()
        data = read_until_closed(c.sock, 6)
        elapsed = time.monotonic() - start
    assert not data.startswith((b"2", b"4", b"5")), f"an SMTP reply inside the handshake: {data!r}"
    assert 0.5 <= elapsed < 5, f"closed after {elapsed:.1f} s with handshake_timeout = 1s"
    # submissions: a client that never starts the handshake
    with socket.create_connection(("127.0.0.1", d.ports["smtps"]), timeout=5) as s:
        start = time.monotonic()
        data = read_until_closed(s, 6)
        elapsed = time.monotonic() - start
    assert not data.startswith(b"220"), data
    assert 0.5 <= elapsed < 5, f"closed after {elapsed:.1f} s with handshake_timeout = 1s"
    assert d.alive()


def test_failed_handshake_closes_the_connection_only(tls_daemon, certs):
    d = tls_daemon
    before = d.log().count("TLS handshake failed")
    other = d.session()  # a session open meanwhile
    with d.session() as c:
        c.expect("STARTTLS", 220, "2.0.0", text=READY)
        c.send(b"EHLO this is not a TLS client hello\r\n" * 4)
        data = read_until_closed(c.sock, 5)
    # at most a TLS alert record (content type 21), never an SMTP reply
    assert data == b"" or data[0] == 0x15, f"not a TLS alert: {data!r}"
    d.wait_log(r"TLS handshake failed", count=before + 1)
    assert d.alive()
    with other:
        other.send_message(b"still here\r\n")
        other.quit()
    c, _ = tls_session(d.port, client_context(certs))
    with c:
        c.send_message(MESSAGE)
        c.quit()


# ---------------------------------------------------------------- rules

def rule_text(prefix, sock=None, sni=None):
    """What the test rules answer: notls, or the TLS details of sock."""
    if sock is None:
        return f"{prefix} notls secured=false"
    cipher, version, bits = sock.cipher()
    return (f"{prefix} tls secured=true ok=true version={version} cipher={cipher} "
            f"bits={bits} sni={sni if sni else 'nil'}")


def test_rules_see_tls_after_starttls(tls_daemon, certs):
    with tls_daemon.client() as c:
        assert c.greeting.text == f"{HOSTNAME} " + rule_text("ESMTP"), c.greeting
        c.ehlo()
        r = c.expect("MAIL FROM:<sender@example.org>", 250, "2.1.0")
        assert r.text == rule_text("2.1.0 Ok"), r
        c.expect("RSET", 250)
        starttls(c, client_context(certs))
        c.ehlo()
        r = c.expect("MAIL FROM:<sender@example.org>", 250, "2.1.0")
        assert r.text == rule_text("2.1.0 Ok", c.sock), r
        c.quit()


def test_rules_see_the_sni_name(tls_daemon, certs):
    ctx = client_context(certs)
    c, _ = tls_session(tls_daemon.port, ctx, SNI_NAME)
    with c:
        r = c.expect("MAIL FROM:<sender@example.org>", 250, "2.1.0")
        assert r.text == rule_text("2.1.0 Ok", c.sock, SNI_NAME), r
        c.quit()
    with tls_on_connect(tls_daemon.ports["smtps"], ctx, SNI_NAME) as c:
        # submissions: TLS is up at connect already
        assert c.greeting.text == f"{HOSTNAME} " + rule_text("ESMTP", c.sock, SNI_NAME), \
            c.greeting
        c.ehlo()
        r = c.expect("MAIL FROM:<sender@example.org>", 250, "2.1.0")
        assert r.text == rule_text("2.1.0 Ok", c.sock, SNI_NAME), r
        c.quit()


# ---------------------------------------------------------------- start-up checks

def run_check(d):
    p = subprocess.run([d.binary, "-t", "-c", d.conf_path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10, cwd=d.dir)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def line_of(text, section, key=None):
    """The line number of [section] (key None) or of its key."""
    lines = text.splitlines()
    start = lines.index(f"[{section}]")
    if key is None:
        return start + 1
    for n in range(start + 1, len(lines)):
        if lines[n].startswith("["):
            break
        if lines[n].split("=", 1)[0].strip() == key:
            return n + 1
    raise AssertionError(f"no {key} in [{section}]")


def test_valid_tls_configuration_passes_the_check(daemons, certs, tls_daemon):
    d = daemons(dict(tls_daemon.settings), start=False)
    rc, out, err = run_check(d)
    assert rc == 0, err
    assert f"{d.conf_path}: configuration is valid" in out


def expired_message(cert, date=None):
    """ "certificate <path> expired on <its notAfter date>" (after the key,
    "[tls] certificate:", the colon is allowed)."""
    date = date or tlscerts.not_after(cert)
    return re.compile(rf"certificate:? {re.escape(cert)} expired on {re.escape(date)}")


def refused_settings(certs, case, missing):
    """(settings, [(section, key) the message may point at], words in it)."""
    tls = {"tls": {"certificate": certs.server.cert, "key": certs.server.key}}
    if case == "missing certificate":
        return ({"tls": {"certificate": missing, "key": certs.server.key}},
                [("tls", "certificate")], ["certificate", missing])
    if case == "expired certificate":
        return ({"tls": {"certificate": certs.expired.cert, "key": certs.expired.key}},
                [("tls", "certificate")], [expired_message(certs.expired.cert)])
    if case == "key does not match":
        return ({"tls": {"certificate": certs.server.cert, "key": certs.other_key}},
                [("tls", "key"), ("tls", "certificate")], ["key"])
    if case == "encrypt without certificate":
        return ({"listener:enc": {"address": f"127.0.0.1:{e2e.free_port()}", "kind": "smtp",
                                  "tls": "encrypt"}},
                [("listener:enc", "tls")], ["[listener:enc]", "certificate"])
    if case == "may without certificate":
        return ({"listener:smtp": {"tls": "may"}},
                [("listener:smtp", "tls")], ["[listener:smtp]", "certificate"])
    if case in ("submission without certificate", "submissions without certificate"):
        kind = case.split()[0]
        return ({"listener:sub": {"address": f"127.0.0.1:{e2e.free_port()}", "kind": kind,
                                  "auth": "no"}},
                [("listener:sub", "kind"), ("listener:sub", None)],
                ["[listener:sub]", "certificate"])
    if case == "submissions with tls may":
        return (dict(tls, **{"listener:sub": {"address": f"127.0.0.1:{e2e.free_port()}",
                                              "kind": "submissions", "tls": "may",
                                              "auth": "no"}}),
                [("listener:sub", "tls")], ["[listener:sub]", "tls"])
    if case == "sni without certificate":
        return (dict(tls, **{f"sni:{SNI_NAME}": {"key": certs.sni.key}}),
                [(f"sni:{SNI_NAME}", None), (f"sni:{SNI_NAME}", "key")],
                [f"[sni:{SNI_NAME}]", "certificate"])
    if case == "sni certificate missing":
        return (dict(tls, **{f"sni:{SNI_NAME}": {"certificate": missing,
                                                 "key": certs.sni.key}}),
                [(f"sni:{SNI_NAME}", "certificate")], [missing])
    if case == "min_protocol TLSv1.1":
        tls["tls"]["min_protocol"] = "TLSv1.1"
        return tls, [("tls", "min_protocol")], ["min_protocol", '"TLSv1.1"']
    raise AssertionError(case)


REFUSED = ["missing certificate", "expired certificate", "key does not match",
           "encrypt without certificate", "may without certificate",
           "submission without certificate", "submissions without certificate",
           "submissions with tls may", "sni without certificate", "sni certificate missing",
           "min_protocol TLSv1.1"]


@pytest.mark.parametrize("case", REFUSED)
def test_check_refuses_bad_tls_settings(daemons, certs, case):
    d = daemons(start=False)
    missing = os.path.join(d.dir, "no-such-cert.pem")
    settings, places, words = refused_settings(certs, case, missing)
    for section, keys in settings.items():
        d.settings.setdefault(section, {}).update(keys)
    d.write_config()
    text = d.config_text()
    rc, out, err = run_check(d)
    assert rc == 1, (case, out, err)
    assert out == "", out
    lines = {line_of(text, s, k) for s, k in places}
    m = re.match(rf"vsmtpd: {re.escape(d.conf_path)}:(\d+): ", err)
    assert m is not None, f"{case}: no file and line in {err!r}"
    assert int(m.group(1)) in lines, f"{case}: line {m.group(1)}, expected one of {lines}: {err!r}"
    for w in words:
        if isinstance(w, re.Pattern):
            assert w.search(err), (case, w.pattern, err)
        else:
            assert w in err, (case, w, err)


def test_daemon_with_an_expired_certificate_does_not_start(daemons, certs):
    d = daemons({"tls": {"certificate": certs.expired.cert, "key": certs.expired.key}},
                start=False)
    d.start(wait=False)
    assert d.wait_exit() == 1
    log = d.log()
    assert f"{d.conf_path}:{line_of(d.config_text(), 'tls', 'certificate')}: " in log, log
    assert expired_message(certs.expired.cert).search(log), log


# ---------------------------------------------------------------- SIGHUP

def install(pair_cert, pair_key, cert, key):
    """Replace the daemon's certificate and key files atomically."""
    for src, dst in ((pair_cert, cert), (pair_key, key)):
        shutil.copyfile(src, dst + ".new")
        os.chmod(dst + ".new", 0o644)
        os.replace(dst + ".new", dst)


def presented(d, ctx):
    """The certificate a new STARTTLS session gets; delivers a message."""
    c, _ = tls_session(d.port, ctx)
    with c:
        der = c.sock.getpeercert(binary_form=True)
        c.send_message(MESSAGE)
        c.quit()
    return der


def test_sighup_reloads_certificates_and_keeps_them_when_broken(daemons, certs):
    d = daemons(start=False)
    cert, key = os.path.join(d.dir, "cert.pem"), os.path.join(d.dir, "key.pem")
    install(certs.server.cert, certs.server.key, cert, key)
    d.settings["tls"] = {"certificate": cert, "key": key}
    d.write_config()
    d.start()
    ctx = client_context(certs)
    assert presented(d, ctx) == certs.server.der()

    # a good new pair is taken by new sessions
    install(certs.server2.cert, certs.server2.key, cert, key)
    d.signal(signal.SIGHUP)
    d.wait_log(r"master\[\d+\]: info: configuration reloaded from ")
    assert presented(d, ctx) == certs.server2.der()

    # an expired one is refused and the loaded one stays
    offset = len(d.log())
    install(certs.expired.cert, certs.expired.key, cert, key)
    d.signal(signal.SIGHUP)
    why = expired_message(cert, tlscerts.not_after(certs.expired.cert))
    e2e.wait_until(lambda: re.search(r"error: .*" + why.pattern, log_since(d, offset)),
                   what="the log to say why the certificate was not reloaded")
    assert d.alive()
    assert presented(d, ctx) == certs.server2.der()

    # so is a key that does not match
    offset = len(d.log())
    install(certs.server.cert, certs.other_key, cert, key)
    d.signal(signal.SIGHUP)
    e2e.wait_until(lambda: re.search(rf"error: .*(?:{re.escape(key)}|{re.escape(cert)})",
                                     log_since(d, offset)),
                   what="the log to say why the key was not reloaded")
    assert d.alive()
    assert presented(d, ctx) == certs.server2.der()


def test_data_timeout_applies_over_tls(daemons, certs):
    """A client pausing inside DATA over TLS gets [timeouts] data, not command."""
    d = daemons({**tls_section(certs), "timeouts": {"command": "1s", "data": "30s"}})
    c, _ = tls_session(d.port, client_context(certs))
    c.expect("MAIL FROM:<a@example.org>", 250)
    c.expect("RCPT TO:<b@example.net>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: slow\r\n\r\n")
    time.sleep(2.5)  # past the command timeout, well within the data timeout
    c.send(b"body\r\n.\r\n")
    reply = c.read_reply()
    assert reply.code == 250, reply
    e2e.queued_id(reply)


def test_reload_refuses_to_drop_the_certificate_of_an_open_tls_listener(daemons, certs):
    """The submissions socket stays open until a restart: a reload that takes
    its certificate (and its section) away is refused, and TLS goes on."""
    (smtps,) = unique_ports(1)
    d = daemons({**tls_section(certs),
                 "listener:smtps": {"address": f"127.0.0.1:{smtps}", "kind": "submissions",
                                    "auth": "no"}})
    for section in ("tls", f"sni:{SNI_NAME}", WILD_SECTION, "listener:smtps"):
        del d.settings[section]
    d.write_config()
    offset = len(d.log())
    d.signal(signal.SIGHUP)
    e2e.wait_until(lambda: re.search(r"error: reload failed.*listener smtps is still open "
                                     r"until a restart and needs TLS", log_since(d, offset)),
                   what="the reload to be refused")
    c = tls_on_connect(smtps, client_context(certs))
    c.ehlo()
    c.quit()
