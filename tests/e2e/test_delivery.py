"""Delivery, end to end: what the delivery worker does with queued mail.

Local mail goes into maildirs and mbox files under the daemon's folder or
through LMTP to a real Dovecot; other mail goes to Postfix's smtp-sink as
[delivery] relay_host, with failures to order (peers.py). The tests check
what an administrator relies on: the delivered bytes, the envelope the
next hop sees, retries of temporary failures, bounces (RFC 3464) to the
sender, dead/ for undeliverable bounces, the queue lifetime, NOTIFY=NEVER,
the postq and delivery rules, a delivery worker killed in the middle of
its work, and a reload that changes where mail goes.

The [rules] local_domains is example.org: alice@example.org is a local
sender whose bounces land in her own maildir, where they can be read.
Retries come after 1 s, 2 s, 2 s... so that a deferred message is tried
again within the test. Everything is on loopback; every wait has a
deadline.
"""
import email
import json
import os
import re
import select
import signal
import socket
import threading
import time

import pytest

import peers
import vsmtpd_e2e as e2e

LOCAL_DOMAIN = "example.org"
ALICE = "alice@example.org"
FAST_RETRY = {"retry_min": "1s", "retry_max": "2s"}
SOFT_REPLY = "450 4.2.0 Mailbox busy, try later"
HARD_REPLY = "550 5.1.1 Recipient address rejected: User unknown"
# vsmtpd's Received: field, with LF line ends ("for" with a single recipient)
RECEIVED_RE = re.compile(
    rb"\AReceived: from client\.test\.example \(\[127\.0\.0\.1\]\)\n"
    rb"\tby mx\.test\.example \(vsmtpd\) with ESMTP id (?P<id>[0-9A-F]{16})"
    rb"(?:\n\tfor <[^>\n]+>)?; [^\n]+\n")
WAIT = 15.0  # seconds: a delivery with a retry or two in it


# ---------------------------------------------------------------- helpers

def chown_to_daemon(path):
    """Make path the daemon's user's, as it writes there when run as root."""
    if e2e.IS_ROOT:
        _, _, uid, gid = e2e.run_user()
        os.chown(path, uid, gid)


def mail_daemon(daemons, delivery=None, rules=None, label=""):
    """A running daemon whose local mail (example.org) goes into maildirs
    (or mbox files) under <its folder>/mail, retrying after 1 s; delivery
    holds more [delivery] settings."""
    settings = {"delivery": {"local_transport": "maildir", **FAST_RETRY},
                "rules": {"local_domains": LOCAL_DOMAIN}}
    d = daemons(settings=settings, start=False, rules=rules, label=label)
    d.mail = os.path.join(d.dir, "mail")
    os.mkdir(d.mail, 0o755)
    chown_to_daemon(d.mail)
    d.settings["delivery"].update({"maildir_path": f"{d.mail}/%d/%u/Maildir",
                                   "mbox_path": f"{d.mail}/mbox/%u"})
    d.settings["delivery"].update(delivery or {})
    d.write_config()
    return d.start()


def maildir_of(d, address):
    local, _, domain = address.lower().rpartition("@")
    return os.path.join(d.mail, domain, local, "Maildir")


def maildir_files(d, address):
    """The files in the new/ of address, oldest first, as (name, bytes)."""
    new = os.path.join(maildir_of(d, address), "new")
    try:
        names = os.listdir(new)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(new, name)
        with open(path, "rb") as f:
            found.append((os.stat(path).st_mtime_ns, name, f.read()))
    return [(name, data) for _, name, data in sorted(found)]


def wait_maildir(d, address, count=1, timeout=WAIT):
    """The messages of address once there are count of them (and no more)."""
    got = e2e.wait_until(lambda: len(maildir_files(d, address)) >= count and
                         maildir_files(d, address), timeout, interval=0.05,
                         what=f"{count} message(s) in the maildir of {address}")
    assert len(got) == count, f"{address} has {len(got)} messages, not {count}"
    return [data for _, data in got]


def send(d, sender, rcpts, body, mail_params="", rcpt_params=None):
    """One message over SMTP (body not yet dot-stuffed); its queue id."""
    with d.session() as c:
        c.mail(sender, mail_params)
        for r in rcpts:
            c.rcpt(r, (rcpt_params or {}).get(r, ""))
        qid = e2e.queued_id(c.data(e2e.stuff(body)))
        c.quit()
    return qid


def message(subject, extra=b""):
    """A small message with a header section worth checking."""
    return (b"From: Alice <alice@example.org>\r\nTo: Bob <bob@remote.test>\r\n"
            b"Subject: " + subject.encode() + b"\r\nMessage-ID: <" +
            subject.replace(" ", ".").encode() + b"@client.test>\r\n\r\n"
            b"Hello,\r\n" + extra + b"bye.\r\n")


def rcpt_log(d, qid, rcpt, status, count=1, timeout=WAIT):
    """The log lines of recipient rcpt of qid with status; the last one's
    (relay, reply)."""
    ms = d.wait_log(rf"^vsmtpd delivery\[\d+\]: info: {qid}: to=<{re.escape(rcpt)}>, "
                    rf"relay=(\S+), delay=\d+s, status={status} \((.*)\)$", timeout, count)
    return ms[-1].group(1), ms[-1].group(2)


def wait_removed(d, qid, timeout=WAIT):
    d.wait_log(rf"^vsmtpd delivery\[\d+\]: info: {qid}: removed$", timeout)


def spool_files(d, sub):
    path = os.path.join(d.spool, sub)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def wait_spool_empty(d, timeout=WAIT):
    """queue/ and state/ empty: everything delivered and forgotten."""
    e2e.wait_until(lambda: not spool_files(d, "queue") and not spool_files(d, "state"),
                   timeout, interval=0.05, what="an empty queue/ and state/")


def bounce_id(d, qid, timeout=WAIT):
    """The id of the bounce sent about qid."""
    m = d.wait_log(rf"^vsmtpd delivery\[\d+\]: info: {qid}: sender non-delivery "
                   rf"notification: ([0-9A-F]{{16}})$", timeout)
    return m[-1].group(1)


def parse_bounce(data):
    """A bounce as delivered into a maildir: (its Return-Path, the message,
    the per-message fields, the per-recipient blocks, the returned part)."""
    head, _, rest = data.partition(b"\n")
    msg = email.message_from_bytes(rest)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    parts = msg.get_payload()
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = parts[1].get_payload()
    return head.decode(), msg, blocks[0], blocks[1:], parts[2]


def check_bounce_headers(msg):
    """What every bounce says of itself: from the mailer daemon, automatic."""
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.test.example>", msg["From"]
    assert msg["To"] is not None and ALICE in msg["To"], msg["To"]
    assert msg["Auto-Submitted"] == "auto-replied", msg["Auto-Submitted"]
    assert msg["Message-ID"] and msg["Date"] and msg["Subject"], msg.items()


def check_diagnostic_type(diag):
    """RFC 3464 2.3.6: a Diagnostic-Code of type smtp is an SMTP reply, as
    the remote sent it (code first); any other text has a type of its own."""
    assert re.match(r"^(smtp; [245]\d\d[ -]|x-vsmtpd; )", diag), diag


def ctl(d, *args):
    r = d.vsmtpctl(*args)
    assert r.returncode == 0, (f"vsmtpctl {' '.join(args)}: exit {r.returncode}\n"
                               f"stdout: {r.stdout[:2000]!r}\nstderr: {r.stderr!r}")
    return r.stdout.decode("utf-8")


def worker_pids(d):
    """Pids of the delivery workers the log announced, oldest first."""
    return [int(p) for p in re.findall(r"^vsmtpd delivery\[(\d+)\]: info: delivery worker "
                                       r"started", d.log(), re.M)]


# ---------------------------------------------------------------- local mailboxes

def test_maildir_delivery_is_byte_exact_and_empties_the_spool(daemons):
    d = mail_daemon(daemons)
    body = (b"From: Alice <alice@example.org>\r\nTo: bob@example.org, carol@example.org\r\n"
            b"Subject: maildir\r\n\r\nfirst line\r\n.a line that starts with a dot\r\n"
            b"..two dots\r\n.\r\n \r\nlast line\r\n")
    qid = send(d, ALICE, ["bob@example.org", "Carol@Example.ORG"], body)

    for rcpt, folder in (("bob@example.org", "bob"), ("Carol@Example.ORG", "carol")):
        (data,) = wait_maildir(d, rcpt)
        # The mailbox path lowercases the recipient; Delivered-To keeps it.
        assert maildir_of(d, rcpt) == os.path.join(d.mail, "example.org", folder, "Maildir")
        trace = f"Return-Path: <{ALICE}>\nDelivered-To: {rcpt}\n".encode()
        assert data.startswith(trace), data[:200]
        m = RECEIVED_RE.match(data[len(trace):])
        assert m is not None, data[:300]
        assert m.group("id").decode() == qid
        # the client's bytes, unstuffed, with LF line ends
        assert data[len(trace) + m.end():] == body.replace(b"\r\n", b"\n")
        assert b"\r" not in data
        (name, _), = maildir_files(d, rcpt)
        # maildir++ names carry the size: readers rely on it for quotas
        assert name.endswith(f",S={len(data)}"), name
        path = os.path.join(maildir_of(d, rcpt), "new", name)
        st = os.stat(path)
        assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
        if e2e.IS_ROOT:
            assert st.st_uid == e2e.run_user()[2], "the file is not the daemon user's"
        for sub in ("tmp", "cur"):
            assert os.listdir(os.path.join(maildir_of(d, rcpt), sub)) == []
        relay, reply = rcpt_log(d, qid, rcpt, "sent")
        assert relay == "maildir"
        assert reply == f"delivered to {path}"
    wait_removed(d, qid)
    wait_spool_empty(d)
    assert spool_files(d, "dead") == [] and spool_files(d, "incoming") == []
    assert "non-delivery notification" not in d.log()


def test_mbox_appends_in_order_with_from_quoting(daemons):
    d = mail_daemon(daemons, {"local_transport": "mbox"})
    bodies = [b"Subject: first\r\n\r\nFrom the start of a line\r\n>From quoted once\r\n"
              b"not From here\r\n",
              b"Subject: second\r\n\r\nFrom: looks like a header, but is not From_\r\n"
              b">>From deeper\r\n"]
    qids = []
    for body in bodies:
        qids.append(send(d, ALICE, ["bob@example.org"], body))
        wait_removed(d, qids[-1])
    with open(os.path.join(d.mail, "mbox", "bob"), "rb") as f:
        data = f.read()

    from_line = (rb"From alice@example\.org [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d "
                 rb"\d\d:\d\d:\d\d \d{4}\n")
    trace = rb"Return-Path: <alice@example\.org>\nDelivered-To: bob@example\.org\n"
    received = (rb"Received: from client\.test\.example \(\[127\.0\.0\.1\]\)\n"
                rb"\tby mx\.test\.example \(vsmtpd\) with ESMTP id ([0-9A-F]{16})\n"
                rb"\tfor <bob@example\.org>; [^\n]+\n")
    expected = [
        # mboxrd: every line matching ^>*From gets one more '>'
        b"Subject: first\n\n>From the start of a line\n>>From quoted once\nnot From here\n\n",
        # "From:" is no From_ line
        b"Subject: second\n\nFrom: looks like a header, but is not From_\n>>>From deeper\n\n",
    ]
    rx = re.compile(b"".join(b"(" + from_line + trace + received + b")" + re.escape(e)
                             for e in expected) + rb"\Z")
    m = rx.match(data)
    assert m is not None, data
    assert [m.group(2).decode(), m.group(4).decode()] == qids
    wait_spool_empty(d)


# ---------------------------------------------------------------- LMTP

@pytest.mark.parametrize("over", ["tcp", "unix"])
def test_lmtp_to_dovecot_delivers_and_bounces_per_recipient(daemons, over):
    lmtp = peers.DovecotLmtp(users=["bob@example.org", ALICE])
    try:
        lmtp.start()
        target = lmtp.target if over == "tcp" else f"unix:{lmtp.unix_path}"
        d = mail_daemon(daemons, {"local_transport": "lmtp", "lmtp": target})
        body = message("lmtp")
        qid = send(d, ALICE, ["bob@example.org", "nobody@example.org"], body)

        (got,) = lmtp.wait_messages("bob@example.org", 1)
        relay, reply = rcpt_log(d, qid, "bob@example.org", "sent")
        assert relay == ("127.0.0.1[127.0.0.1]" if over == "tcp" else lmtp.unix_path), relay
        assert reply.startswith("250 2.0.0 "), reply
        # Dovecot stores what it got below its own trace fields
        assert got.endswith(b"\n" + body.replace(b"\r\n", b"\n")), got
        assert b"\nReceived: from client.test.example ([127.0.0.1])\n\tby mx.test.example " \
               b"(vsmtpd) with ESMTP id " + qid.encode() in got, got
        assert got.startswith(b"Return-Path: <alice@example.org>\n"), got[:200]

        relay, reply = rcpt_log(d, qid, "nobody@example.org", "failed")
        assert reply.startswith("550 5.1.1 "), reply
        bid = bounce_id(d, qid)
        (raw,) = lmtp.wait_messages(ALICE, 1)
        # (Dovecot adds its Delivered-To and Received: below Return-Path)
        head, msg, per_msg, rcpts, original = parse_bounce(raw)
        assert head == "Return-Path: <>", raw[:200]
        check_bounce_headers(msg)
        assert [r["Final-Recipient"] for r in rcpts] == ["rfc822; nobody@example.org"]
        assert rcpts[0]["Action"] == "failed" and rcpts[0]["Status"] == "5.1.1", rcpts[0].items()
        assert rcpts[0]["Diagnostic-Code"].startswith("smtp; 550 5.1.1 "), rcpts[0].items()
        assert per_msg["Reporting-MTA"] == "dns; mx.test.example", per_msg.items()
        assert lmtp.messages("nobody@example.org") == []
        wait_removed(d, qid)
        wait_removed(d, bid)
        wait_spool_empty(d)
    finally:
        lmtp.remove()


# ---------------------------------------------------------------- relay_host

@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_relay_host_gets_the_message_and_its_envelope(daemons, sinks, pipelining):
    sink = sinks(pipelining=pipelining)
    d = mail_daemon(daemons, {"relay_host": sink.target})
    body = message("relay", b"..dot-stuffed on the wire\r\n")
    qid = send(d, ALICE, ["bob@remote.test", "carol@remote.test", "dave@example.org"], body,
               " RET=HDRS ENVID=env-42",
               {"bob@remote.test": " NOTIFY=FAILURE ORCPT=rfc822;bob@remote.test"})
    (got,) = sink.wait_messages(1)
    assert got.sender == ALICE
    assert got.recipients == ["bob@remote.test", "carol@remote.test"]
    assert got.helo == "mx.test.example" and got.protocol == "ESMTP"
    # the DSN parameters travel to a server that offers DSN (RFC 3461)
    assert "RET=HDRS" in got.mail_params.split() and "ENVID=env-42" in got.mail_params.split()
    assert got.rcpt_params[0].split() == ["NOTIFY=FAILURE", "ORCPT=rfc822;bob@remote.test"]
    e2e.assert_crlf_only(got.content)
    lf = got.content.replace(b"\r\n", b"\n")
    m = RECEIVED_RE.match(lf)
    assert m is not None and m.group("id").decode() == qid, got.content[:300]
    # the client's bytes: stuffed again on the wire, unstuffed by the sink
    assert lf[m.end():] == body.replace(b"\r\n", b"\n"), got.content
    for rcpt in ("bob@remote.test", "carol@remote.test"):
        relay, reply = rcpt_log(d, qid, rcpt, "sent")
        assert relay == "127.0.0.1[127.0.0.1]", relay
        assert reply.startswith("250 2.0.0 "), reply
    # the local recipient went its own way, in the same attempt
    (local,) = wait_maildir(d, "dave@example.org")
    assert local.endswith(b"\n" + body.replace(b"\r\n", b"\n")), local
    wait_removed(d, qid)
    wait_spool_empty(d)


class PipeliningProbe:
    """A one-connection SMTP server that notes, for each command, whether
    the client sent more before it had the reply: that is pipelining
    (RFC 2920), allowed only when the EHLO reply offers it. It waits
    PAUSE seconds before each reply, so that a pipelining client has
    sent the rest of its group by then."""

    PAUSE = 0.15

    def __init__(self, pipelining):
        self.pipelining = pipelining
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(e2e.IO_TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.commands = []  # (verb, whether more came before the reply)
        self.content = None
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(e2e.IO_TIMEOUT)
                self._converse(conn)
        except Exception as exc:  # reported by wait()
            self.error = exc
        finally:
            self.listener.close()

    def _converse(self, conn):
        buf = b""
        conn.sendall(b"220 probe.test ESMTP\r\n")
        while True:
            while b"\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            line, buf = buf.split(b"\r\n", 1)
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper().decode()
            more = bool(buf) or bool(select.select([conn], [], [], self.PAUSE)[0])
            self.commands.append((verb, more))
            if verb == "EHLO":
                offer = b"250-PIPELINING\r\n" if self.pipelining else b""
                conn.sendall(b"250-probe.test\r\n" + offer + b"250-8BITMIME\r\n"
                             b"250 ENHANCEDSTATUSCODES\r\n")
            elif verb == "DATA":
                conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                while b"\r\n.\r\n" not in b"\r\n" + buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                end = (b"\r\n" + buf).index(b"\r\n.\r\n")
                self.content, buf = buf[:end], buf[end + 3:]
                conn.sendall(b"250 2.0.0 Ok: queued\r\n")
            elif verb == "QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                conn.sendall(b"250 2.0.0 Ok\r\n")
            else:
                conn.sendall(b"502 5.5.2 Not implemented\r\n")

    def wait(self, timeout=WAIT):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the probe's conversation did not end"
        if self.error is not None:
            raise self.error
        return self.commands


@pytest.mark.parametrize("offered", [True, False], ids=["offered", "not-offered"])
def test_pipelining_only_when_the_relay_offers_it(daemons, offered):
    probe = PipeliningProbe(offered)
    d = mail_daemon(daemons, {"relay_host": f"127.0.0.1:{probe.port}",
                              "connection_cache_time": "0"})
    body = message("probe")
    qid = send(d, ALICE, ["bob@remote.test", "carol@remote.test"], body)
    commands = probe.wait()
    rcpt_log(d, qid, "bob@remote.test", "sent")
    verbs = [v for v, _ in commands]
    assert verbs[:5] == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"], commands
    assert probe.content.endswith(b"\r\n" + body), probe.content
    early = [v for v, more in commands[:5] if more]
    if offered:
        # RFC 2920: MAIL, RCPT... and DATA go in one group
        assert early == ["MAIL", "RCPT", "RCPT"], commands
    else:
        assert early == [], f"commands pipelined without PIPELINING: {commands}"


def test_a_4xx_is_retried_until_the_relay_accepts(daemons, sinks):
    port = e2e.free_port()
    busy = sinks(port=port, soft_reject=["RCPT"], soft_reply=SOFT_REPLY)
    d = mail_daemon(daemons, {"relay_host": f"127.0.0.1:{port}"})
    qid = send(d, ALICE, ["bob@remote.test"], message("retried"))

    # tried at least twice (retry_min 1s), deferred with the relay's reply
    relay, reply = rcpt_log(d, qid, "bob@remote.test", "deferred", count=2)
    assert reply == SOFT_REPLY
    assert relay == "127.0.0.1[127.0.0.1]"

    def listed():
        out = ctl(d, "queue", "list")
        lines = out.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(qid) and i + 2 < len(lines):
                return lines[i:i + 3]
        return None
    entry = e2e.wait_until(listed, what=f"{qid} in queue list")
    assert re.match(rf"^{qid}  +\d+ .{{20}}  {re.escape(ALICE)}$", entry[0]), entry
    assert entry[1].startswith("(") and SOFT_REPLY in entry[1], entry
    assert entry[2].strip() == "bob@remote.test", entry
    answer = json.loads(ctl(d, "queue", "list", "--json"))
    (e,) = [m for m in answer["messages"] if m["id"] == qid]
    assert e["attempts"] >= 2 and SOFT_REPLY in e["last_reply"], e
    assert [(r["address"], r["status"]) for r in e["recipients"]] == [("bob@remote.test",
                                                                       "deferred")], e
    assert busy.messages() == []

    # the relay comes back, accepting, on the same port
    busy.stop()
    ok = sinks(port=port)
    (got,) = ok.wait_messages(1, timeout=WAIT)
    assert got.recipients == ["bob@remote.test"] and got.sender == ALICE
    rcpt_log(d, qid, "bob@remote.test", "sent")
    wait_removed(d, qid)
    wait_spool_empty(d)
    assert "non-delivery notification" not in d.log()


# ---------------------------------------------------------------- bounces

def test_a_5xx_bounces_to_the_sender(daemons, sinks):
    sink = sinks(hard_reject=["RCPT"], hard_reply=HARD_REPLY)
    d = mail_daemon(daemons, {"relay_host": sink.target})
    body = message("bounced")
    qid = send(d, ALICE, ["bob@remote.test"], body)

    relay, reply = rcpt_log(d, qid, "bob@remote.test", "failed")
    assert reply == HARD_REPLY
    bid = bounce_id(d, qid)
    (raw,) = wait_maildir(d, ALICE)
    wait_removed(d, qid)
    wait_removed(d, bid)
    head, msg, per_msg, rcpts, original = parse_bounce(raw)
    # the bounce's envelope sender is null: a bounce never bounces
    assert head == "Return-Path: <>"
    check_bounce_headers(msg)
    assert per_msg["Reporting-MTA"] == "dns; mx.test.example"
    assert per_msg["X-Vsmtpd-Queue-ID"] == qid, per_msg.items()
    assert per_msg["Arrival-Date"] is not None, per_msg.items()
    (r,) = rcpts
    assert r["Final-Recipient"] == "rfc822; bob@remote.test", r.items()
    assert r["Action"] == "failed"
    assert re.match(r"^5\.\d{1,3}\.\d{1,3}$", r["Status"]) and r["Status"] == "5.1.1", r.items()
    assert r["Remote-MTA"] == "dns; 127.0.0.1", r.items()  # relay_host's name
    assert " ".join(r["Diagnostic-Code"].split()) == f"smtp; {HARD_REPLY}", r.items()
    human = " ".join(msg.get_payload(0).get_payload(decode=True).decode().split())
    assert f"<bob@remote.test>: host 127.0.0.1 said: {HARD_REPLY}" in human, human
    # the original comes back whole: its header and its body
    assert original.get_content_type() == "message/rfc822"
    orig = original.get_payload(0)
    assert orig["Subject"] == "bounced" and orig["Message-ID"] == "<bounced@client.test>"
    assert orig["Received"] is not None and qid in orig["Received"]
    assert orig.get_payload() == "Hello,\nbye.\n"
    wait_spool_empty(d)
    assert sink.messages() == []


def test_a_bounce_after_a_later_attempt_still_quotes_the_remote(daemons, sinks):
    """bob is refused by the relay at the first attempt; carol, local, is
    deferred until her mailbox can be written: the bounce about bob goes
    only when carol is done, and still says what the relay said."""
    sink = sinks(hard_reject=["RCPT"], hard_reply=HARD_REPLY)
    d = mail_daemon(daemons, {"relay_host": sink.target})
    os.chmod(d.mail, 0o555)  # the daemon's user cannot make mailboxes for now
    qid = send(d, ALICE, ["bob@remote.test", "carol@example.org"], message("mixed"))
    rcpt_log(d, qid, "bob@remote.test", "failed")
    _, reply = rcpt_log(d, qid, "carol@example.org", "deferred")
    assert "Permission denied" in reply, reply
    os.chmod(d.mail, 0o755)
    rcpt_log(d, qid, "carol@example.org", "sent")
    # tried once: a failed recipient is final
    assert len(re.findall(rf"{qid}: to=<bob@remote\.test>", d.log())) == 1
    bid = bounce_id(d, qid)
    (raw,) = wait_maildir(d, ALICE)
    _, msg, _, rcpts, _ = parse_bounce(raw)
    (r,) = rcpts
    assert r["Final-Recipient"] == "rfc822; bob@remote.test"
    assert r["Action"] == "failed" and r["Status"] == "5.1.1", r.items()
    assert r["Remote-MTA"] == "dns; 127.0.0.1", r.items()
    assert " ".join(r["Diagnostic-Code"].split()) == f"smtp; {HARD_REPLY}", r.items()
    human = " ".join(msg.get_payload(0).get_payload(decode=True).decode().split())
    assert f"<bob@remote.test>: host 127.0.0.1 said: {HARD_REPLY}" in human, human
    wait_removed(d, qid)
    wait_removed(d, bid)
    wait_spool_empty(d)


def test_undeliverable_mail_from_the_null_sender_goes_to_dead(daemons, sinks):
    sink = sinks(hard_reject=["RCPT"], hard_reply=HARD_REPLY)
    d = mail_daemon(daemons, {"relay_host": sink.target})
    body = message("null sender")
    qid = send(d, "", ["bob@remote.test"], body)
    rcpt_log(d, qid, "bob@remote.test", "failed")
    d.wait_log(rf"{qid}: undeliverable and from the null sender: moved to dead/")
    e2e.wait_until(lambda: qid in spool_files(d, "dead"), what=f"{qid} in dead/")
    content, env = e2e.read_spool_file(os.path.join(d.spool, "dead", qid))
    assert env["mail_from"] == "" and [r["address"] for r in env["rcpts"]] == ["bob@remote.test"]
    assert content.endswith(body)
    wait_spool_empty(d)
    assert "non-delivery notification" not in d.log()
    assert not os.path.exists(maildir_of(d, ALICE))
    # an administrator finds it with vsmtpctl
    out = ctl(d, "queue", "list", "--queue", "dead")
    assert re.search(rf"^{qid}\S* ", out, re.M), out


def test_a_message_past_its_lifetime_fails_with_5_4_7(daemons, sinks):
    sink = sinks(soft_reject=["RCPT"], soft_reply=SOFT_REPLY)
    d = mail_daemon(daemons, {"relay_host": sink.target, "max_queue_lifetime": "3s"})
    start = time.monotonic()
    qid = send(d, ALICE, ["bob@remote.test"], message("expired"))
    rcpt_log(d, qid, "bob@remote.test", "deferred")
    d.wait_log(rf"{qid}: to=<bob@remote\.test>, status=expired, returned to sender", WAIT)
    assert time.monotonic() - start >= 2.0, "expired before its lifetime"
    bid = bounce_id(d, qid)
    (raw,) = wait_maildir(d, ALICE)
    _, msg, _, rcpts, _ = parse_bounce(raw)
    check_bounce_headers(msg)
    (r,) = rcpts
    assert r["Action"] == "failed" and r["Status"] == "5.4.7", r.items()
    diag = " ".join(r["Diagnostic-Code"].split())
    assert SOFT_REPLY in diag, r.items()
    check_diagnostic_type(diag)
    human = " ".join(msg.get_payload(0).get_payload(decode=True).decode().split())
    # the relay never said the time was up: vsmtpd did
    assert "said: delivery time expired" not in human, human
    wait_removed(d, qid)
    wait_removed(d, bid)
    wait_spool_empty(d)
    assert sink.messages() == []


def test_notify_never_gets_no_bounce(daemons, sinks):
    sink = sinks(hard_reject=["RCPT"], hard_reply=HARD_REPLY)
    d = mail_daemon(daemons, {"relay_host": sink.target})
    qid = send(d, ALICE, ["bob@remote.test"], message("never"),
               rcpt_params={"bob@remote.test": " NOTIFY=NEVER"})
    rcpt_log(d, qid, "bob@remote.test", "failed")
    # "removed" comes after the decision to bounce: none was made
    wait_removed(d, qid)
    assert f"{qid}: sender non-delivery notification" not in d.log()

    # with two failed recipients, only the one that did not say NEVER is reported
    qid2 = send(d, ALICE, ["bob@remote.test", "carol@remote.test"], message("half"),
                rcpt_params={"bob@remote.test": " NOTIFY=NEVER"})
    bid = bounce_id(d, qid2)
    (raw,) = wait_maildir(d, ALICE)
    _, _, _, rcpts, _ = parse_bounce(raw)
    assert [r["Final-Recipient"] for r in rcpts] == ["rfc822; carol@remote.test"]
    wait_removed(d, qid2)
    wait_removed(d, bid)
    wait_spool_empty(d)


# ---------------------------------------------------------------- rules

POSTQ_DENY = """
return {
  postq = {
    rule "no delivery" (function(ctx) return status.deny() end),
  },
}
"""

POSTQ_QUARANTINE = """
return {
  postq = {
    rule "hold it" (function(ctx) return status.quarantine("q1") end),
  },
}
"""

POSTQ_HEADER = """
return {
  postq = {
    action "stamp" (function(ctx) ctx:append_header("X-Postq-Stamp", "seen by postq") end),
  },
}
"""

DELIVERY_ROUTES = """
return {
  delivery = {
    action "route" (function(ctx)
      ctx:maildir("bob@remote.test")
      ctx:forward("carol@example.org", "%s")
    end),
  },
}
"""

DELIVERY_DISABLED = """
return {
  delivery = {
    action "nowhere" (function(ctx) ctx:disable_delivery_all() end),
  },
}
"""


def test_postq_deny_fails_every_recipient_and_bounces(daemons, sinks):
    sink = sinks()
    d = mail_daemon(daemons, {"relay_host": sink.target}, rules=POSTQ_DENY)
    qid = send(d, ALICE, ["bob@remote.test", "carol@example.org"], message("denied"))
    d.wait_log(rf"{qid}: postq rules \(no delivery\) refused delivery: 554 5\.7\.1 ")
    bid = bounce_id(d, qid)
    # the bounce itself is the server's: postq does not refuse it
    (raw,) = wait_maildir(d, ALICE)
    _, msg, _, rcpts, _ = parse_bounce(raw)
    check_bounce_headers(msg)
    assert sorted(r["Final-Recipient"] for r in rcpts) == ["rfc822; bob@remote.test",
                                                           "rfc822; carol@example.org"]
    assert all(r["Action"] == "failed" and r["Status"] == "5.7.1" for r in rcpts)
    wait_removed(d, qid)
    wait_removed(d, bid)
    wait_spool_empty(d)
    assert sink.messages() == [] and not os.path.exists(maildir_of(d, "carol@example.org"))


def test_postq_quarantine_keeps_the_message_undelivered(daemons, sinks):
    sink = sinks()
    d = mail_daemon(daemons, {"relay_host": sink.target}, rules=POSTQ_QUARANTINE)
    body = message("quarantined")
    qid = send(d, ALICE, ["bob@remote.test", "carol@example.org"], body)
    d.wait_log(rf"{qid}: quarantined by the postq rules in q1")
    path = os.path.join(d.spool, "quarantine", "q1", qid)
    e2e.wait_until(lambda: os.path.exists(path), what=f"{path}")
    content, env = e2e.read_spool_file(path)
    assert content.endswith(body) and env["mail_from"] == ALICE
    wait_spool_empty(d)
    out = ctl(d, "quarantine", "list", "q1")
    assert qid in out, out
    time.sleep(0.3)  # nothing may come of it
    assert sink.messages() == [] and not os.path.exists(maildir_of(d, "carol@example.org"))
    assert "non-delivery notification" not in d.log()


def test_postq_header_edit_is_delivered(daemons, sinks):
    sink = sinks()
    d = mail_daemon(daemons, {"relay_host": sink.target}, rules=POSTQ_HEADER)
    body = message("stamped")
    qid = send(d, ALICE, ["bob@remote.test", "carol@example.org"], body)
    m = d.wait_log(rf"{qid}: changed by the postq rules: queued again as ([0-9A-F]{{16}})$")
    new = m[-1].group(1)
    assert new != qid
    (got,) = sink.wait_messages(1)
    head, _, rest = got.content.partition(b"\r\n\r\n")
    assert b"\r\nX-Postq-Stamp: seen by postq" in head, got.content
    assert rest == b"Hello,\r\nbye.\r\n"
    assert head.count(b"X-Postq-Stamp") == 1
    (local,) = wait_maildir(d, "carol@example.org")
    assert b"\nX-Postq-Stamp: seen by postq\n" in local.partition(b"\n\n")[0] + b"\n", local
    rcpt_log(d, new, "bob@remote.test", "sent")
    rcpt_log(d, new, "carol@example.org", "sent")
    wait_removed(d, new)
    wait_spool_empty(d)


def test_delivery_rules_choose_the_transport_per_recipient(daemons, sinks):
    sink = sinks()
    other = sinks()  # the forward() target, not the relay
    d = mail_daemon(daemons, {"relay_host": sink.target},
                    rules=DELIVERY_ROUTES % other.target)
    qid = send(d, ALICE, ["bob@remote.test", "carol@example.org", "dave@remote.test"],
               message("routed"))
    # bob, of a remote domain, into a local maildir
    (data,) = wait_maildir(d, "bob@remote.test")
    assert data.startswith(b"Return-Path: <alice@example.org>\nDelivered-To: bob@remote.test\n")
    # carol, of the local domain, forwarded by SMTP
    (fwd,) = other.wait_messages(1)
    assert fwd.recipients == ["carol@example.org"] and fwd.sender == ALICE
    # dave: no choice, the usual way (relay_host)
    (rel,) = sink.wait_messages(1)
    assert rel.recipients == ["dave@remote.test"]
    assert rcpt_log(d, qid, "bob@remote.test", "sent")[0] == "maildir"
    # (the log names the host, not the port: the sinks' dumps tell them apart)
    assert rcpt_log(d, qid, "carol@example.org", "sent")[0] == "127.0.0.1[127.0.0.1]"
    assert rcpt_log(d, qid, "dave@remote.test", "sent")[0] == "127.0.0.1[127.0.0.1]"
    wait_removed(d, qid)
    wait_spool_empty(d)
    assert not os.path.exists(maildir_of(d, "carol@example.org"))


def test_disable_delivery_sends_nothing_and_removes_the_message(daemons, sinks):
    sink = sinks()
    d = mail_daemon(daemons, {"relay_host": sink.target}, rules=DELIVERY_DISABLED)
    qid = send(d, ALICE, ["bob@remote.test", "carol@example.org"], message("disabled"))
    for rcpt in ("bob@remote.test", "carol@example.org"):
        relay, reply = rcpt_log(d, qid, rcpt, "none")
        assert (relay, reply) == ("none", "delivery disabled by the rules")
    wait_removed(d, qid)
    wait_spool_empty(d)
    assert "non-delivery notification" not in d.log()
    assert sink.messages() == [] and not os.path.exists(d.mail + "/example.org")


# ---------------------------------------------------------------- crash safety

def test_a_killed_worker_loses_no_message(daemons, sinks):
    count = 20
    # Each final dot waits 2 s for its reply: smtp-sink has the message by
    # then, vsmtpd does not yet know it was delivered.
    sink = sinks(delays={".": 2})
    d = mail_daemon(daemons, {"relay_host": sink.target})
    rcpts = [f"rcpt{i:02d}@remote.test" for i in range(count)]
    with d.session() as c:
        qids = [c.send_message(e2e.stuff(message(f"crash {i}")), ALICE, [r])
                for i, r in enumerate(rcpts)]
        c.quit()
    (pid,) = e2e.wait_until(lambda: worker_pids(d), what="the delivery worker's pid")
    assert pid in d.processes()
    sink.wait_messages(1)
    sent = len(re.findall(r"status=sent", d.log()))
    in_flight = len(sink.messages()) - sent
    assert in_flight > 0, "nothing was under way: the kill would prove nothing"
    os.kill(pid, signal.SIGKILL)
    d.wait_log(r"master\[\d+\]: error: delivery worker killed by signal 9")
    d.wait_log(r"master\[\d+\]: notice: restarting the delivery worker in \d+ s")
    e2e.wait_until(lambda: len(worker_pids(d)) >= 2, what="a new delivery worker")
    assert worker_pids(d)[-1] != pid and pid not in d.processes()

    wait_spool_empty(d, timeout=30)
    for qid in qids:
        wait_removed(d, qid)
    got = {}
    for m in sink.messages():
        for r in m.recipients:
            got[r] = got.get(r, 0) + 1
    assert sorted(got) == rcpts, f"lost: {sorted(set(rcpts) - set(got))}"
    assert spool_files(d, "dead") == [] and spool_files(d, "incoming") == []
    assert "non-delivery notification" not in d.log()


# ---------------------------------------------------------------- reload

def test_sighup_restarts_the_worker_with_new_settings(daemons, sinks):
    first = sinks(soft_reject=["RCPT"], soft_reply=SOFT_REPLY)
    second = sinks()
    d = mail_daemon(daemons, {"relay_host": first.target, "retry_min": "1h", "retry_max": "1h"})
    qid = send(d, ALICE, ["bob@remote.test"], message("reload"))
    rcpt_log(d, qid, "bob@remote.test", "deferred")
    (old,) = worker_pids(d)

    d.settings["delivery"]["relay_host"] = second.target
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log(r"master\[\d+\]: info: configuration reloaded from ")
    e2e.wait_until(lambda: len(worker_pids(d)) == 2, what="the new delivery worker")
    assert worker_pids(d)[-1] != old
    d.wait_log(r"queue\[\d+\]: info: delivery worker connected: 1 queued messages handed over")
    # the retry is an hour away: the administrator asks for it now
    ctl(d, "queue", "flush")
    (got,) = second.wait_messages(1)
    assert got.recipients == ["bob@remote.test"]
    rcpt_log(d, qid, "bob@remote.test", "sent")
    wait_removed(d, qid)
    wait_spool_empty(d)
    assert first.messages() == []


def test_the_worker_is_confined_to_the_mailbox_folders(daemons):
    d = mail_daemon(daemons)
    line = d.wait_log(r"^vsmtpd delivery\[(\d+)\]: info: delivery worker confined: writes "
                      r"mailboxes under (\S+) only$")[-1]
    # Both templates lie under <daemon>/mail, named once: the spool is out of reach.
    assert line.group(2) == d.mail
    assert not d.spool.startswith(d.mail + "/")
    assert e2e.proc_status(int(line.group(1)))["NoNewPrivs"] == "1"
    # Confined, it still creates the maildir folders and delivers.
    send(d, "alice@example.org", ["bob@example.org"], message("confined"))
    assert wait_maildir(d, "bob@example.org")[0].endswith(b"bye.\n")
