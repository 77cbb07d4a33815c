"""SMTP AUTH (RFC 4954) through Cyrus SASL, against the real daemon.

Passwords live in a sasldb2 file made with saslpasswd2, or behind a real
saslauthd that runs in a private mount namespace (sasltools.Saslauthd). The
clients are swaks (PLAIN, LOGIN, CRAM-MD5), a byte-exact SMTP client for the
details of the exchange, and a SCRAM-SHA-256 client (sasltools) that checks
the server's signature. Certificates come from tlscerts (a test CA).
"""
import os
import re
import shutil
import subprocess

import pytest

import sasltools
import tlscerts
import vsmtpd_e2e as e2e
from sasltools import (auth_login, auth_plain, b64, ehlo_auth_mechanisms, plain_response,
                       starttls)

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"

MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
ALICE = ("alice@test.example", "Alice-pw.31")
BOB = ("bob@test.example", "Bob-pw.32")
CAROL = ("carol@test.example", "Carol-pw.33")
ERIN = ("erin@test.example", "Erin-pw.34")
DAVE = ("dave", "Dave-pw.35")  # stored in the default realm, the server's host name
USERS = dict([ALICE, BOB, CAROL, ERIN, DAVE])

# the saslauthd backend: a system user only the namespaced saslauthd sees
SYS_USER = ("vsmtpdsasl", "Sys-pw.36")

FAILED = "5.7.8 Error: authentication failed"
OK = "2.7.0 Authentication successful"
TEMPFAIL = "4.7.0 Temporary authentication failure"
TOO_MANY = f"4.7.0 {e2e.HOSTNAME} Error: too many failed authentication attempts"

RULES_AUTH = """\
local function show(stage, ctx)
  log("info", stage .. " stage: from=" .. tostring(ctx.mail_from)
      .. " is_authenticated=" .. tostring(ctx.is_authenticated)
      .. " mechanism=" .. tostring(ctx.auth and ctx.auth.mechanism)
      .. " authid=" .. tostring(ctx.auth and ctx.auth.authid))
end

return {
  authenticate = {
    action "show" (function(ctx) show("authenticate", ctx) end),
    rule "only alice" (function(ctx)
      local id = ctx.auth.authid
      if id == "alice@test.example" then
        return status.next()
      elseif id == "carol@test.example" then
        return status.reject()
      elseif id == "erin@test.example" then
        error("this rule fails on purpose")
      end
      return status.deny()
    end),
  },
  mail = {
    action "show" (function(ctx) show("mail", ctx) end),
  },
  rcpt = {
    action "show" (function(ctx) show("rcpt", ctx) end),
  },
}
"""


# ---------------------------------------------------------------- helpers

def listener_port(d, name):
    return int(d.settings[f"listener:{name}"]["address"].rsplit(":", 1)[1])


def swaks(port, *args):
    """Run swaks; (exit status, transcript)."""
    cmd = [SWAKS, "--server", "127.0.0.1", "--port", str(port), "--timeout", "10",
           "--from", "swaks@example.org", "--helo", "swaks.test.example", *args]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def swaks_queued_id(out):
    """The queue id of a transcript whose transaction ran inside TLS."""
    ids = re.findall(r"^<~  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$", out, re.M)
    assert len(ids) == 1, out
    return ids[0]


def log_count(d, pattern):
    return len(re.findall(pattern, d.log(), re.M))


def authenticated_log(authid, mech):
    return rf"127\.0\.0\.1: authenticated as {re.escape(authid)} with {re.escape(mech)}$"


def check_authenticated_message(d, qid, authid, mech, proto="ESMTPSA"):
    """The envelope, the Received: header and the queue log line of a message
    from a session authenticated as authid with mech."""
    content, env = d.message(qid)
    assert env["authid"] == authid, env
    assert env["auth_mechanism"] == mech, env
    assert env["protocol"] == proto, env
    if proto in ("ESMTPS", "ESMTPSA", "UTF8SMTPS", "UTF8SMTPSA"):
        assert env["tls_version"] in ("TLSv1.2", "TLSv1.3"), env
        assert isinstance(env["tls_cipher"], str) and env["tls_cipher"], env
    else:
        # (that the keys are there, with null, is test_unauthenticated_message_has_null_auth_fields)
        assert env.get("tls_version") is None and env.get("tls_cipher") is None, env
    received, _ = e2e.split_received(content)
    assert re.search(rb"\bby " + re.escape(e2e.HOSTNAME.encode()) + rb"\b.* with " +
                     proto.encode() + rb" id " + qid.encode() + rb"\b", received, re.S), received
    # the authid is not written into the header
    assert authid.split("@")[0].encode() not in received, received
    m = d.wait_log(rf"smtp\[(\d+)\]: \w+: {qid}: from=<[^>]*>, size=\d+, nrcpt=\d+, "
                   rf"client=[^\[]*\[127\.0\.0\.1\], proto={proto}, "
                   rf"sasl_username={re.escape(authid)}$")
    # the session that queued it logged the login
    pid = m[-1].group(1)
    assert re.search(rf"smtp\[{pid}\]: \w+: " + authenticated_log(authid, mech), d.log(), re.M), \
        d.log()
    return content, env


def expect_failures_close(c, last_reply, code, esc):
    """last_reply is the answer to the max_failures-th failure: it is that
    failure's reply, then 421 4.7.0 and the connection closes."""
    assert last_reply.code == code and last_reply.esc == esc, last_reply
    r = c.read_reply()
    assert (r.code, r.text) == (421, TOO_MANY), r
    c.expect_eof()


def authed_session(port, user=ALICE):
    """EHLO, STARTTLS, EHLO, AUTH PLAIN as user."""
    c, _ = sasltools.tls_session(port)
    r = auth_plain(c, *user)
    assert (r.code, r.text) == (235, OK), r
    return c


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def files(workspace):
    """A test CA with the server's certificate, and the sasldb2 of USERS."""
    d = workspace.new_dir("auth-files")

    class Files:
        certs = tlscerts.CA(d)
        server = certs.issue("mx", e2e.HOSTNAME)
        sasldb = sasltools.make_sasldb(os.path.join(d, "sasldb2"), USERS)
    return Files


def tls_settings(files):
    return {"certificate": files.server.cert, "key": files.server.key}


@pytest.fixture(scope="module")
def authd(module_daemons, files):
    """TLS, every mechanism, max_failures = 2, the shipped rules with
    127.0.0.1 not trusted; listeners: smtp (auth yes), sub (submission),
    enc (smtp, tls encrypt, auth yes), noauth (smtp, auth no)."""
    with open(os.path.join(e2e.SOURCE_DIR, "rules", "main.lua")) as f:
        shipped = f.read()
    settings = {
        "tls": tls_settings(files),
        "auth": {"mechanisms": " ".join(MECHANISMS), "sasldb_path": files.sasldb,
                 "max_failures": "2"},
        "listener:smtp": {"auth": "yes"},
        "listener:sub": {"address": f"127.0.0.1:{e2e.free_port()}", "kind": "submission"},
        "listener:enc": {"address": f"127.0.0.1:{e2e.free_port()}", "kind": "smtp",
                         "tls": "encrypt", "auth": "yes"},
        "listener:noauth": {"address": f"127.0.0.1:{e2e.free_port()}", "kind": "smtp",
                            "auth": "no"},
        "rules": {"local_domains": "test.example", "trusted_networks": "192.0.2.0/24"},
    }
    return module_daemons(settings, label="-authd", rules=shipped)


@pytest.fixture(scope="module")
def rulesd(module_daemons, files):
    """Authenticate stage rules (RULES_AUTH), max_failures = 2."""
    settings = {
        "tls": tls_settings(files),
        "auth": {"mechanisms": "PLAIN LOGIN", "sasldb_path": files.sasldb, "max_failures": "2"},
        "listener:smtp": {"auth": "yes"},
    }
    return module_daemons(settings, label="-rulesd", rules=RULES_AUTH)


@pytest.fixture(scope="module")
def plaind(module_daemons, files):
    """No TLS at all; allow_plaintext = yes with the default networks."""
    settings = {
        "auth": {"mechanisms": "PLAIN LOGIN", "sasldb_path": files.sasldb,
                 "allow_plaintext": "yes"},
        "listener:smtp": {"auth": "yes"},
    }
    return module_daemons(settings, label="-plaind")


@pytest.fixture(scope="module")
def plaind_narrow(module_daemons, files):
    """allow_plaintext = yes for 10.0.0.0/8 and 127.0.0.2 only; TLS offered."""
    settings = {
        "tls": tls_settings(files),
        "auth": {"mechanisms": "PLAIN LOGIN", "sasldb_path": files.sasldb,
                 "allow_plaintext": "yes", "plaintext_networks": "10.0.0.0/8 127.0.0.2/32"},
        "listener:smtp": {"auth": "yes"},
    }
    return module_daemons(settings, label="-narrow")


@pytest.fixture(scope="module")
def saslauthd(workspace):
    s = sasltools.Saslauthd(workspace.new_dir("saslauthd"), dict([SYS_USER]))
    s.start()
    try:
        s.verify()
        yield s
    finally:
        s.stop()


def saslauthd_settings(files, s):
    return {
        "tls": tls_settings(files),
        "auth": {"mechanisms": "PLAIN LOGIN", "backend": "saslauthd",
                 "saslauthd_path": s.mux},
        "listener:smtp": {"auth": "yes"},
    }


@pytest.fixture(scope="module")
def sasld(module_daemons, files, saslauthd):
    return module_daemons(saslauthd_settings(files, saslauthd), label="-sasld")


# ---------------------------------------------------------------- EHLO, TLS requirements

def test_ehlo_offers_auth_only_inside_tls(authd):
    c = authd.client()
    r = c.ehlo()
    assert ehlo_auth_mechanisms(r) is None, r
    assert r.lines[-1] == "STARTTLS", r
    starttls(c)
    r = c.ehlo()
    mechs = ehlo_auth_mechanisms(r)
    assert mechs is not None and sorted(mechs) == sorted(MECHANISMS), r
    assert "STARTTLS" not in r.lines
    assert r.lines[-1].startswith("AUTH ") and r.lines[-2] == "DSN", r


def test_server_certificate_verifies_against_the_test_ca(authd, files):
    c, r = sasltools.tls_session(authd.port, cafile=files.certs.cert)
    assert ehlo_auth_mechanisms(r) is not None
    r = auth_plain(c, *ALICE)
    assert (r.code, r.text) == (235, OK), r


def test_auth_without_tls_is_refused_538_when_tls_is_optional(authd):
    c = authd.session()
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 538, "5.7.11",
             "5.7.11 Encryption required for requested authentication mechanism")
    c.expect("AUTH LOGIN", 538, "5.7.11")
    # nothing was authenticated: the session is plain ESMTP
    c.expect("NOOP", 250)


def test_auth_without_tls_is_refused_530_when_tls_is_required(authd):
    c = e2e.SMTPClient(listener_port(authd, "enc"))
    r = c.ehlo()
    assert ehlo_auth_mechanisms(r) is None and "STARTTLS" in r.lines, r
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 530, "5.7.0",
             "5.7.0 Must issue a STARTTLS command first")
    starttls(c)
    r = c.ehlo()
    assert ehlo_auth_mechanisms(r) is not None, r
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)


def test_auth_on_a_listener_without_auth_is_not_enabled(authd):
    c, r = sasltools.tls_session(listener_port(authd, "noauth"))
    assert ehlo_auth_mechanisms(r) is None, r
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 503, "5.5.1",
             "5.5.1 Error: authentication not enabled")


def test_plaintext_auth_is_offered_to_loopback_by_default(plaind):
    c = plaind.client()
    r = c.ehlo()
    assert "STARTTLS" not in r.lines
    assert sorted(ehlo_auth_mechanisms(r) or []) == ["LOGIN", "PLAIN"], r
    r = auth_plain(c, *ALICE)
    assert (r.code, r.text) == (235, OK), r
    qid = c.send_message(b"Subject: plaintext auth\r\n\r\nHello.\r\n")
    c.quit()
    check_authenticated_message(plaind, qid, ALICE[0], "PLAIN", proto="ESMTPA")


def test_plaintext_auth_follows_plaintext_networks(plaind_narrow):
    # 127.0.0.1 is outside plaintext_networks: TLS first
    c = plaind_narrow.client()
    r = c.ehlo()
    assert ehlo_auth_mechanisms(r) is None, r
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 538, "5.7.11")
    starttls(c)
    assert ehlo_auth_mechanisms(c.ehlo()) is not None
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0")
    # 127.0.0.2 is inside: AUTH without TLS
    c = plaind_narrow.client(source="127.0.0.2")
    r = c.ehlo()
    assert sorted(ehlo_auth_mechanisms(r) or []) == ["LOGIN", "PLAIN"], r
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)


# ---------------------------------------------------------------- swaks: PLAIN, LOGIN, CRAM-MD5

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_authenticates_and_relays(authd, mech):
    rc, out = swaks(authd.port, "--tls", "--auth", mech, "--auth-user", ALICE[0],
                    "--auth-password", ALICE[1], "--to", "rcpt@example.net")
    assert rc == 0, out
    assert f"<~  235 {OK}" in out, out
    assert re.search(rf"^ ~> AUTH {mech}\b", out, re.M), out
    qid = swaks_queued_id(out)
    check_authenticated_message(authd, qid, ALICE[0], mech)


def test_swaks_with_a_wrong_password_gets_535(authd):
    before = log_count(authd, r"127\.0\.0\.1: authentication failed with CRAM-MD5: ")
    queued = authd.queued()
    rc, out = swaks(authd.port, "--tls", "--auth", "CRAM-MD5", "--auth-user", ALICE[0],
                    "--auth-password", "not the password", "--to", "rcpt@example.net")
    assert rc != 0, out
    assert f"<~* 535 {FAILED}" in out, out
    assert authd.queued() == queued
    authd.wait_log(r"127\.0\.0\.1: authentication failed with CRAM-MD5: ", count=before + 1)


# ---------------------------------------------------------------- SCRAM-SHA-256

def test_scram_sha_256_authenticates_and_the_server_proves_the_password(authd):
    c, _ = sasltools.tls_session(authd.port)
    outcome = sasltools.scram_sha256_auth(c, *BOB)
    assert outcome.server_signature_verified, outcome
    assert (outcome.reply.code, outcome.reply.text) == (235, OK), outcome
    qid = c.send_message(b"Subject: scram\r\n\r\nHello.\r\n", rcpts=("someone@example.net",))
    c.quit()
    check_authenticated_message(authd, qid, BOB[0], "SCRAM-SHA-256")
    summary = authd.session_summary(c.local_port).split()
    assert "starttls=1" in summary and "auth=1" in summary, summary


def test_scram_sha_256_with_a_wrong_password_gets_535(authd):
    c, _ = sasltools.tls_session(authd.port)
    outcome = sasltools.scram_sha256_auth(c, BOB[0], "wrong")
    assert not outcome.server_signature_verified
    assert (outcome.reply.code, outcome.reply.text) == (535, FAILED), outcome
    c.expect("NOOP", 250)


# ---------------------------------------------------------------- the exchange

def test_plain_without_initial_response_gets_an_empty_challenge(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.send("AUTH PLAIN\r\n")
    assert c.read_line() == "334 "
    c.expect(plain_response(*ALICE), 235, "2.7.0", OK)
    c.expect("MAIL FROM:<alice@test.example>", 250)


def test_login_exchange(authd):
    c, _ = sasltools.tls_session(authd.port)
    r = c.cmd("AUTH LOGIN")
    assert r.code == 334, r
    r = c.cmd(b64(ALICE[0]))
    assert r.code == 334, r
    c.expect(b64(ALICE[1]), 235, "2.7.0", OK)


def test_login_with_the_user_as_initial_response(authd):
    c, _ = sasltools.tls_session(authd.port)
    r = c.cmd(f"AUTH LOGIN {b64(ALICE[0])}")
    assert r.code == 334, r
    c.expect(b64(ALICE[1]), 235, "2.7.0", OK)


def test_wrong_password_gets_535_and_the_session_goes_on(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.expect(f"AUTH PLAIN {plain_response(ALICE[0], 'wrong')}", 535, "5.7.8", FAILED)
    c.expect("NOOP", 250)
    # one failure of max_failures = 2: the right password still works
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)
    c.quit()
    assert re.search(r"smtp\[\d+\]: \w+: 127\.0\.0\.1: authentication failed with PLAIN: \S",
                     authd.session_log(c.local_port), re.M)


def test_unknown_user_gets_535(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.expect(f"AUTH PLAIN {plain_response('nobody-here@test.example', 'x')}", 535, "5.7.8",
             FAILED)


def test_user_without_realm_gets_the_default_realm(authd):
    # dave is stored in the realm mx.test.example, the server's host name
    c, _ = sasltools.tls_session(authd.port)
    c.expect(f"AUTH PLAIN {plain_response(*DAVE)}", 235, "2.7.0", OK)
    c, _ = sasltools.tls_session(authd.port)
    c.expect(f"AUTH PLAIN {plain_response(DAVE[0] + '@' + e2e.HOSTNAME, DAVE[1])}",
             235, "2.7.0", OK)
    c, _ = sasltools.tls_session(authd.port)
    c.expect(f"AUTH PLAIN {plain_response(DAVE[0] + '@test.example', DAVE[1])}",
             535, "5.7.8", FAILED)


def test_max_failures_closes_after_the_second_535(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.expect(f"AUTH PLAIN {plain_response(ALICE[0], 'wrong1')}", 535, "5.7.8", FAILED)
    r = c.cmd(f"AUTH PLAIN {plain_response(ALICE[0], 'wrong2')}")
    assert r.text == FAILED, r
    expect_failures_close(c, r, 535, "5.7.8")


def test_star_cancels_and_counts_as_a_failure(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.send("AUTH PLAIN\r\n")
    assert c.read_line() == "334 "
    c.expect("*", 501, "5.0.0", "5.0.0 Authentication cancelled")
    c.expect("NOOP", 250)
    r = c.cmd("AUTH LOGIN")
    assert r.code == 334, r
    r = c.cmd("*")
    assert r.text == "5.0.0 Authentication cancelled", r
    expect_failures_close(c, r, 501, "5.0.0")


def test_bad_base64_gets_501_and_counts_as_a_failure(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.expect("AUTH PLAIN not*base64!", 501, "5.5.2", "5.5.2 Error: cannot decode response")
    c.expect("NOOP", 250)
    r = c.cmd("AUTH LOGIN")
    assert r.code == 334, r
    r = c.cmd("@@@@")
    assert r.text == "5.5.2 Error: cannot decode response", r
    expect_failures_close(c, r, 501, "5.5.2")


def test_a_response_line_over_12288_bytes_is_refused(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.send("AUTH PLAIN\r\n")
    assert c.read_line() == "334 "
    c.expect("A" * 12289, 500, "5.5.6", "5.5.6 Authentication exchange line is too long")
    # the rest of the long line was not taken for commands
    c.expect("NOOP", 250)
    c.send("AUTH PLAIN\r\n")
    assert c.read_line() == "334 "
    r = c.cmd("QUFB" * 5000)
    assert r.text == "5.5.6 Authentication exchange line is too long", r
    expect_failures_close(c, r, 500, "5.5.6")


def test_empty_initial_response_for_plain_fails(authd):
    c, _ = sasltools.tls_session(authd.port)
    r = c.cmd("AUTH PLAIN =")
    # "=" is an empty response, which PLAIN cannot take: a failure reply
    assert (r.code, r.esc) in ((535, "5.7.8"), (501, "5.5.2")), r
    c.expect("NOOP", 250)
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)


def test_unknown_mechanism_gets_504(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.expect("AUTH FOO-BAR", 504, "5.5.4", "5.5.4 Unrecognized authentication type")
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)


def test_installed_but_not_offered_mechanism_gets_504(authd):
    # DIGEST-MD5 is installed (libsasl2-modules) but not in [auth] mechanisms
    c, _ = sasltools.tls_session(authd.port)
    c.expect("AUTH DIGEST-MD5", 504, "5.5.4", "5.5.4 Unrecognized authentication type")


def test_auth_without_mechanism_gets_501(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.expect("AUTH", 501, "5.5.4", "5.5.4 Syntax: AUTH mechanism [initial-response]")
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)


def test_auth_twice_gets_503(authd):
    c = authed_session(authd.port)
    c.expect(f"AUTH PLAIN {plain_response(*BOB)}", 503, "5.5.1",
             "5.5.1 Error: already authenticated")
    c.expect("NOOP", 250)


def test_auth_inside_a_transaction_gets_503(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.mail("someone@example.org")
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 503, "5.5.1",
             "5.5.1 Error: MAIL transaction in progress")
    c.expect("RSET", 250)
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)


def test_auth_after_starttls_needs_ehlo_again(authd):
    c, _ = sasltools.tls_session(authd.port, ehlo=False)
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 503, "5.5.1",
             "5.5.1 Error: send EHLO first")
    c.ehlo()
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)


def test_unauthenticated_message_records_no_auth_or_tls(authd):
    c = authd.session()
    qid = c.send_message(b"Subject: no auth\r\n\r\nHello.\r\n", rcpts=("someone@test.example",))
    c.quit()
    content, env = authd.message(qid)
    # Unset fields are left out of the envelope, as envid and auth are.
    for key in ("authid", "auth_mechanism", "tls_version", "tls_cipher"):
        assert key not in env, (key, env)
    assert env["protocol"] == "ESMTP"
    # Mail from outside: the shipped rules put their Authentication-Results
    # on top, above the Received: field.
    assert content.startswith(b"Authentication-Results: " + e2e.HOSTNAME.encode() + b";")
    received = content[content.index(b"\r\nReceived: ") + 2:]
    assert re.search(rb" with ESMTP id " + qid.encode(), e2e.split_received(received)[0])


# ---------------------------------------------------------------- relaying, submission

def test_unauthenticated_relay_is_refused_and_authenticated_relay_accepted(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.expect("MAIL FROM:<someone@example.org>", 250)
    c.expect("RCPT TO:<rcpt@example.net>", 554, "5.7.1", "5.7.1 Relay access denied")
    c.rcpt("someone@test.example")  # a local domain is fine
    c.expect("RSET", 250)
    c.expect(f"AUTH PLAIN {plain_response(*CAROL)}", 235, "2.7.0", OK)
    qid = c.send_message(b"Subject: relay\r\n\r\nHello.\r\n", sender=CAROL[0],
                         rcpts=("rcpt@example.net",))
    c.quit()
    _, env = check_authenticated_message(authd, qid, CAROL[0], "PLAIN")
    assert [r["address"] for r in env["rcpts"]] == ["rcpt@example.net"]


def test_submission_requires_tls_then_auth(authd):
    port = listener_port(authd, "sub")
    c = e2e.SMTPClient(port)
    r = c.ehlo()
    assert "STARTTLS" in r.lines and ehlo_auth_mechanisms(r) is None, r
    c.expect("MAIL FROM:<alice@test.example>", 530, "5.7.0",
             "5.7.0 Must issue a STARTTLS command first")
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 530, "5.7.0",
             "5.7.0 Must issue a STARTTLS command first")
    starttls(c)
    r = c.ehlo()
    assert sorted(ehlo_auth_mechanisms(r) or []) == sorted(MECHANISMS), r
    c.expect("MAIL FROM:<alice@test.example>", 530, "5.7.0", "5.7.0 Authentication required")
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)
    qid = c.send_message(b"Subject: submission\r\n\r\nHello.\r\n", sender=ALICE[0],
                         rcpts=("friend@example.net",))
    c.quit()
    check_authenticated_message(authd, qid, ALICE[0], "PLAIN")


def test_swaks_on_the_submission_listener(authd):
    port = listener_port(authd, "sub")
    rc, out = swaks(port, "--to", "friend@example.net")
    assert rc != 0 and "<** 530 5.7.0 Must issue a STARTTLS command first" in out, out
    rc, out = swaks(port, "--tls", "--to", "friend@example.net")
    assert rc != 0 and "<~* 530 5.7.0 Authentication required" in out, out
    rc, out = swaks(port, "--tls", "--auth", "LOGIN", "--auth-user", BOB[0],
                    "--auth-password", BOB[1], "--to", "friend@example.net")
    assert rc == 0, out
    check_authenticated_message(authd, swaks_queued_id(out), BOB[0], "LOGIN")


# ---------------------------------------------------------------- MAIL AUTH=

def test_mail_auth_parameter_is_kept_when_authenticated(authd):
    c = authed_session(authd.port)
    c.mail(ALICE[0], " AUTH=<alice@test.example>")
    c.rcpt("friend@example.net")
    qid = e2e.queued_id(c.data(b"Subject: auth param\r\n\r\nHello.\r\n"))
    c.quit()
    assert authd.message(qid)[1]["auth"] == "<alice@test.example>"


def test_mail_auth_parameter_is_empty_when_not_authenticated(authd):
    c, _ = sasltools.tls_session(authd.port)
    c.mail("someone@example.org", " AUTH=<alice@test.example>")
    c.rcpt("someone@test.example")
    qid = e2e.queued_id(c.data(b"Subject: auth param\r\n\r\nHello.\r\n"))
    c.quit()
    _, env = authd.message(qid)
    assert env["auth"] == "<>", env
    assert env.get("authid") is None, env


# ---------------------------------------------------------------- authenticate stage rules

def test_authenticate_rules_let_alice_in_and_later_stages_see_the_login(rulesd):
    c, _ = sasltools.tls_session(rulesd.port)
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)
    rulesd.wait_log(r"authenticate stage: from=nil is_authenticated=true mechanism=PLAIN "
                    r"authid=alice@test\.example$")
    qid = c.send_message(b"Subject: rules\r\n\r\nHello.\r\n", sender="rules-alice@example.org")
    c.quit()
    for stage in ("mail", "rcpt"):
        rulesd.wait_log(rf"{stage} stage: from=rules-alice@example\.org is_authenticated=true "
                        rf"mechanism=PLAIN authid=alice@test\.example$")
    assert rulesd.message(qid)[1]["authid"] == ALICE[0]


def test_unauthenticated_session_shows_no_login_to_the_rules(rulesd):
    c, _ = sasltools.tls_session(rulesd.port)
    c.send_message(b"Subject: rules\r\n\r\nHello.\r\n", sender="rules-anon@example.org")
    c.quit()
    rulesd.wait_log(r"mail stage: from=rules-anon@example\.org is_authenticated=false "
                    r"mechanism=nil authid=nil$")


def test_authenticate_deny_refuses_and_closes(rulesd):
    c, _ = sasltools.tls_session(rulesd.port)
    c.expect(f"AUTH PLAIN {plain_response(*BOB)}", 535, "5.7.8", FAILED)
    c.expect_eof()
    rulesd.wait_log(r"authenticate stage: from=nil is_authenticated=true mechanism=PLAIN "
                    r"authid=bob@test\.example$")


def test_authenticate_reject_refuses_and_the_session_goes_on(rulesd):
    c, _ = sasltools.tls_session(rulesd.port)
    c.expect(f"AUTH PLAIN {plain_response(*CAROL)}", 535, "5.7.8", FAILED)
    c.expect("NOOP", 250)
    c.send_message(b"Subject: rules\r\n\r\nHello.\r\n", sender="rules-carol@example.org")
    rulesd.wait_log(r"mail stage: from=rules-carol@example\.org is_authenticated=false ")
    c.expect(f"AUTH LOGIN {b64(ALICE[0])}", 334)
    c.expect(b64(ALICE[1]), 235, "2.7.0", OK)


def test_authenticate_reject_counts_as_a_failure(rulesd):
    c, _ = sasltools.tls_session(rulesd.port)
    c.expect(f"AUTH PLAIN {plain_response(*CAROL)}", 535, "5.7.8", FAILED)
    r = c.cmd(f"AUTH PLAIN {plain_response(*CAROL)}")
    expect_failures_close(c, r, 535, "5.7.8")


def test_authenticate_rule_error_is_a_temporary_failure(rulesd):
    c, _ = sasltools.tls_session(rulesd.port)
    c.expect(f"AUTH PLAIN {plain_response(*ERIN)}", 454, "4.7.0", TEMPFAIL)
    c.expect("NOOP", 250)
    c.expect(f"AUTH PLAIN {plain_response(*ALICE)}", 235, "2.7.0", OK)


def test_authenticate_rules_do_not_run_for_bad_credentials(rulesd):
    c, _ = sasltools.tls_session(rulesd.port)
    c.expect(f"AUTH PLAIN {plain_response(ALICE[0], 'wrong')}", 535, "5.7.8", FAILED)
    c.expect("QUIT", 221)
    c.expect_eof()
    lines = rulesd.session_log(c.local_port)
    assert "authenticate stage: " not in lines, lines


# ---------------------------------------------------------------- saslauthd

def test_saslauthd_backend_plain(sasld, saslauthd):
    c, r = sasltools.tls_session(sasld.port)
    assert sorted(ehlo_auth_mechanisms(r) or []) == ["LOGIN", "PLAIN"], r
    c.expect(f"AUTH PLAIN {plain_response(SYS_USER[0], 'wrong')}", 535, "5.7.8", FAILED)
    c.expect(f"AUTH PLAIN {plain_response(*SYS_USER)}", 235, "2.7.0", OK)
    qid = c.send_message(b"Subject: saslauthd\r\n\r\nHello.\r\n")
    c.quit()
    _, env = sasld.message(qid)
    assert env["auth_mechanism"] == "PLAIN"
    assert env["authid"] and env["authid"].split("@")[0] == SYS_USER[0], env


def test_saslauthd_backend_login(sasld, saslauthd):
    c, _ = sasltools.tls_session(sasld.port)
    r = auth_login(c, *SYS_USER)
    assert (r.code, r.text) == (235, OK), r


def test_saslauthd_stopped_gives_454(daemons, files, workspace):
    s = sasltools.Saslauthd(workspace.new_dir("saslauthd-stopped"), dict([SYS_USER]))
    s.start()
    try:
        s.verify()
        d = daemons(saslauthd_settings(files, s))
        c, _ = sasltools.tls_session(d.port)
        c.expect(f"AUTH PLAIN {plain_response(*SYS_USER)}", 235, "2.7.0", OK)
    finally:
        s.stop()
    c, _ = sasltools.tls_session(d.port)
    c.expect(f"AUTH PLAIN {plain_response(*SYS_USER)}", 454, "4.7.0", TEMPFAIL)
    c.expect("NOOP", 250)


# ---------------------------------------------------------------- configuration errors

def vsmtpd_t(conf):
    p = subprocess.run([e2e.vsmtpd_binary(), "-t", "-c", conf], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def line_of(text, needle):
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip() == needle:
            return n
    raise AssertionError(f"{needle!r} not in {text}")


def test_configuration_with_the_auth_settings_is_valid(daemons, files):
    d = daemons({"tls": tls_settings(files),
                 "auth": {"mechanisms": " ".join(MECHANISMS), "sasldb_path": files.sasldb},
                 "listener:smtp": {"auth": "yes"}}, start=False)
    rc, out, err = vsmtpd_t(d.conf_path)
    assert rc == 0, err
    assert "configuration is valid" in out


def test_unknown_mechanism_is_a_configuration_error(daemons, files):
    d = daemons({"tls": tls_settings(files),
                 "auth": {"mechanisms": "PLAIN FOO-BAR", "sasldb_path": files.sasldb},
                 "listener:smtp": {"auth": "yes"}}, start=False)
    rc, out, err = vsmtpd_t(d.conf_path)
    assert rc == 1, (out, err)
    n = line_of(d.config_text(), "mechanisms = PLAIN FOO-BAR")
    assert err.startswith(f"vsmtpd: {d.conf_path}:{n}: [auth] mechanisms:"), err
    assert "FOO-BAR" in err
    # and the daemon does not start
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert "FOO-BAR" in d.log() and "mechanisms" in d.log()


@pytest.mark.parametrize("mech", ["CRAM-MD5", "SCRAM-SHA-256"])
def test_shared_secret_mechanism_with_saslauthd_is_a_configuration_error(daemons, files, mech):
    d = daemons({"tls": tls_settings(files),
                 "auth": {"mechanisms": f"PLAIN {mech}", "backend": "saslauthd"},
                 "listener:smtp": {"auth": "yes"}}, start=False)
    rc, out, err = vsmtpd_t(d.conf_path)
    assert rc == 1, (out, err)
    m = re.match(rf"vsmtpd: {re.escape(d.conf_path)}:(\d+): \[auth\] (mechanisms|backend):", err)
    assert m, err
    key_line = {"mechanisms": f"mechanisms = PLAIN {mech}", "backend": "backend = saslauthd"}
    assert int(m.group(1)) == line_of(d.config_text(), key_line[m.group(2)]), err
    assert mech in err and "saslauthd" in err, err


def test_plain_and_login_with_saslauthd_are_valid(daemons, files):
    d = daemons({"tls": tls_settings(files),
                 "auth": {"mechanisms": "PLAIN LOGIN", "backend": "saslauthd",
                          "saslauthd_path": "/nonexistent/mux"},
                 "listener:smtp": {"auth": "yes"}}, start=False)
    rc, out, err = vsmtpd_t(d.conf_path)
    assert rc == 0, err


def test_credentials_never_reach_the_log(daemons, files):
    """At log level debug: neither an initial response (after a blank or a
    tab) nor a LOGIN password pipelined behind a refused AUTH is logged."""
    d = daemons({"tls": tls_settings(files), "server": {"log_level": "debug"},
                 "auth": {"sasldb_path": files.sasldb}, "listener:smtp": {"auth": "yes"}})
    secret = plain_response(*ALICE)
    c, _ = sasltools.tls_session(d.port)
    c.send(f"AUTH PLAIN\t{secret}\r\n".encode())
    assert c.read_reply().code in (501, 504)
    r = c.cmd(f"AUTH PLAIN {secret}")
    assert (r.code, r.text) == (235, OK), r
    c.quit()
    # Refused without TLS (538), the client sends its LOGIN answers anyway.
    c = e2e.SMTPClient(d.port)
    c.ehlo()
    password = b64(ALICE[1])
    c.send(f"AUTH LOGIN {b64(ALICE[0])}\r\n{password}\r\n".encode())
    assert c.read_reply().code == 538
    assert c.read_reply().code == 500
    c.quit()
    d.stop()
    log = d.log()
    assert "AUTH PLAIN ..." in log  # the line was logged, without its argument
    assert secret not in log and password not in log and ALICE[1] not in log
