"""Success notices (RFC 3461 NOTIFY=SUCCESS), end to end.

A sender that asks NOTIFY=SUCCESS for a recipient hears from vsmtpd once
the recipient is delivered: "Action: delivered" when vsmtpd delivered it
itself (maildir, mbox) or an LMTP server without DSN did, "relayed" when
an SMTP peer without DSN took it. A peer that offers DSN gets the NOTIFY
and ORCPT parameters and reports itself: vsmtpd sends nothing then. Nor
does it for NOTIFY without SUCCESS, NOTIFY=NEVER, the null sender, or a
recipient whose delivery the rules disabled. A notice covers the
recipients delivered in one attempt; failures are bounced apart. A notice
still owed when the worker stops (the state file says so) goes at the next
attempt, and the recipient is not delivered again.

The sender is s@remote.test and [rules] local_domains holds example.org
and remote.test, so the notices land in s's maildir where they can be
read; far.test is a remote domain, sent to [delivery] relay_host, Postfix's
smtp-sink (peers.py). Everything is on loopback; every wait has a
deadline.
"""
import email
import json
import os
import re

import pytest

import vsmtpd_e2e as e2e

SENDER = "s@remote.test"
LOCAL_DOMAINS = "example.org remote.test"
FAST_RETRY = {"retry_min": "1s", "retry_max": "2s"}
SOFT_REPLY = "450 4.2.0 Mailbox busy, try later"
WAIT = 15.0  # seconds: a delivery with a retry or two in it
NOTICE_SUBJECT = "Successful Mail Delivery Report"

DELIVERY_DISABLED = """
return {
  delivery = {
    action "nowhere" (function(ctx) ctx:disable_delivery_all() end),
  },
}
"""


# ---------------------------------------------------------------- helpers

def chown_to_daemon(path):
    """Make path the daemon's user's, as it writes there when run as root."""
    if e2e.IS_ROOT:
        _, _, uid, gid = e2e.run_user()
        os.chown(path, uid, gid)


def dsn_daemon(daemons, delivery=None, rules=None):
    """A running daemon delivering example.org and remote.test into
    maildirs under <its folder>/mail, retrying after 1 s; delivery holds
    more [delivery] settings."""
    settings = {"delivery": {"local_transport": "maildir", **FAST_RETRY},
                "rules": {"local_domains": LOCAL_DOMAINS}}
    d = daemons(settings=settings, start=False, rules=rules)
    d.mail = os.path.join(d.dir, "mail")
    os.mkdir(d.mail, 0o755)
    chown_to_daemon(d.mail)
    d.settings["delivery"]["maildir_path"] = f"{d.mail}/%d/%u/Maildir"
    d.settings["delivery"].update(delivery or {})
    d.write_config()
    return d.start()


def maildir_files(d, address):
    """The messages in the new/ of address, oldest first."""
    local, _, domain = address.lower().rpartition("@")
    new = os.path.join(d.mail, domain, local, "Maildir", "new")
    try:
        names = os.listdir(new)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(new, name)
        with open(path, "rb") as f:
            found.append((os.stat(path).st_mtime_ns, name, f.read()))
    return [data for _, _, data in sorted(found)]


def wait_maildir(d, address, count=1, timeout=WAIT):
    """The messages of address once there are count of them (and no more)."""
    got = e2e.wait_until(lambda: len(maildir_files(d, address)) >= count and
                         maildir_files(d, address), timeout, interval=0.05,
                         what=f"{count} message(s) in the maildir of {address}")
    assert len(got) == count, f"{address} has {len(got)} messages, not {count}"
    return got


def send(d, sender, rcpts, subject, mail_params=""):
    """One message over SMTP; rcpts maps each recipient to its RCPT
    parameters. Its queue id."""
    body = (f"From: <{sender or 'nobody@remote.test'}>\r\nTo: <u@example.org>\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@client.test>\r\n"
            f"\r\nThe body stays home.\r\n").encode()
    with d.session() as c:
        c.mail(sender, mail_params)
        for rcpt, params in rcpts.items():
            c.rcpt(rcpt, params)
        qid = e2e.queued_id(c.data(e2e.stuff(body)))
        c.quit()
    return qid


def rcpt_log(d, qid, rcpt, status, timeout=WAIT):
    """The (relay, reply) of the log line of recipient rcpt of qid with status."""
    m = d.wait_log(rf"^vsmtpd delivery\[\d+\]: info: {qid}: to=<{re.escape(rcpt)}>, "
                   rf"relay=(\S+), delay=\d+s, status={status} \((.*)\)$", timeout)
    return m[-1].group(1), m[-1].group(2)


def wait_removed(d, qid, timeout=WAIT):
    d.wait_log(rf"^vsmtpd delivery\[\d+\]: info: {qid}: removed$", timeout)


def notice_ids(d, qid):
    """The ids of the success notices about qid logged so far."""
    return re.findall(rf"^vsmtpd delivery\[\d+\]: info: {qid}: sender delivery status "
                      rf"notification: ([0-9A-F]{{16}})$", d.log(), re.M)


def notice_id(d, qid, timeout=WAIT):
    """The id of the (one) success notice about qid."""
    d.wait_log(rf"^vsmtpd delivery\[\d+\]: info: {qid}: sender delivery status "
               rf"notification: [0-9A-F]{{16}}$", timeout)
    (nid,) = notice_ids(d, qid)
    return nid


def spool_files(d, sub):
    path = os.path.join(d.spool, sub)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def wait_spool_empty(d, timeout=WAIT):
    e2e.wait_until(lambda: not spool_files(d, "queue") and not spool_files(d, "state"),
                   timeout, interval=0.05, what="an empty queue/ and state/")


def parse_report(data):
    """A delivery status notification: (the message, the per-message
    fields, the per-recipient blocks, the human text, the returned part)."""
    msg = email.message_from_bytes(data)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts[:2]] == ["text/plain",
                                                         "message/delivery-status"], parts
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    blocks = parts[1].get_payload()
    human = " ".join(parts[0].get_payload(decode=True).decode("utf-8").split())
    return msg, blocks[0], blocks[1:], human, parts[2]


def check_notice(data, qid):
    """What every success notice says of itself; the parsed report."""
    msg, per_msg, rcpts, human, returned = parse_report(data)
    assert msg["Return-Path"] in (None, "<>"), msg["Return-Path"]
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.test.example>", msg["From"]
    assert msg["To"] == f"<{SENDER}>", msg["To"]
    assert msg["Subject"] == NOTICE_SUBJECT, msg["Subject"]
    assert msg["Auto-Submitted"] == "auto-replied", msg.items()
    assert msg["Message-ID"] and msg["Date"], msg.items()
    assert per_msg["Reporting-MTA"] == "dns; mx.test.example", per_msg.items()
    assert per_msg["X-Vsmtpd-Queue-ID"] == qid, per_msg.items()
    assert per_msg["Arrival-Date"], per_msg.items()
    # a success returns the header only, never the message
    assert returned.get_content_type() == "text/rfc822-headers", returned.get_content_type()
    text = returned.get_payload()
    assert "Subject: " in text and "The body stays home." not in text, text
    return msg, per_msg, rcpts, human


# ---------------------------------------------------------------- delivered

def test_maildir_delivery_sends_one_delivered_notice(daemons):
    d = dsn_daemon(daemons)
    qid = send(d, SENDER, {"u@example.org": " NOTIFY=SUCCESS ORCPT=rfc822;U+2Bx@example.org",
                           "v@example.org": " NOTIFY=SUCCESS,FAILURE",
                           "w@example.org": ""},
               "success", " ENVID=env-7")
    for rcpt in ("u@example.org", "v@example.org", "w@example.org"):
        assert rcpt_log(d, qid, rcpt, "sent")[0] == "maildir"
        wait_maildir(d, rcpt)
    nid = notice_id(d, qid)
    wait_removed(d, qid)
    wait_removed(d, nid)
    (data,) = wait_maildir(d, SENDER)
    assert data.startswith(b"Return-Path: <>\n"), data[:200]
    msg, per_msg, rcpts, human = check_notice(data, qid)
    assert per_msg["Original-Envelope-Id"] == "env-7", per_msg.items()
    # one notice for both recipients that asked; w did not ask
    assert [r["Final-Recipient"] for r in rcpts] == ["rfc822; u@example.org",
                                                     "rfc822; v@example.org"], rcpts
    u, v = rcpts
    assert u["Original-Recipient"] == "rfc822; U+x@example.org", u.items()
    assert v["Original-Recipient"] is None, v.items()
    for r in rcpts:
        assert r["Action"] == "delivered" and r["Status"] == "2.0.0", r.items()
        assert r["Remote-MTA"] is None, r.items()
        # the mailbox's path is nobody else's business
        assert r["Diagnostic-Code"] == "x-vsmtpd; delivered to the mailbox", r.items()
    assert "was delivered to these recipients" in human, human
    assert "<u@example.org>: delivered to the mailbox" in human, human
    assert d.mail not in data.decode("utf-8", "replace")
    # the notice comes from the null sender: it gets none itself, and no bounce came
    assert len(re.findall(r"sender delivery status notification", d.log())) == 1
    assert "non-delivery notification" not in d.log()
    wait_spool_empty(d)


def test_relay_without_dsn_sends_a_relayed_notice(daemons, sinks):
    sink = sinks(dsn=False)
    d = dsn_daemon(daemons, {"relay_host": sink.target})
    qid = send(d, SENDER, {"r@far.test": " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r@far.test"},
               "relayed")
    (got,) = sink.wait_messages(1, timeout=WAIT)
    # the relay offered no DSN: no NOTIFY to pass on, so the notice is ours
    assert got.recipients == ["r@far.test"] and got.rcpt_params == [""], got
    relay, reply = rcpt_log(d, qid, "r@far.test", "sent")
    nid = notice_id(d, qid)
    wait_removed(d, qid)
    wait_removed(d, nid)
    (data,) = wait_maildir(d, SENDER)
    _, _, rcpts, human = check_notice(data, qid)
    (r,) = rcpts
    assert r["Final-Recipient"] == "rfc822; r@far.test", r.items()
    assert r["Original-Recipient"] == "rfc822; r@far.test", r.items()
    assert r["Action"] == "relayed" and r["Status"] == "2.0.0", r.items()
    assert r["Remote-MTA"] == "dns; 127.0.0.1", r.items()
    assert " ".join(r["Diagnostic-Code"].split()) == f"smtp; {reply}", r.items()
    assert "sends no delivery reports" in human, human
    assert len(sink.messages()) == 1
    wait_spool_empty(d)


def test_relay_with_dsn_gets_the_notify_and_vsmtpd_sends_nothing(daemons, sinks):
    sink = sinks()  # smtp-sink offers DSN unless told not to
    d = dsn_daemon(daemons, {"relay_host": sink.target})
    qid = send(d, SENDER, {"r@far.test": " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r@far.test"},
               "passed on")
    (got,) = sink.wait_messages(1, timeout=WAIT)
    assert got.rcpt_params == ["NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r@far.test"], got
    rcpt_log(d, qid, "r@far.test", "sent")
    # the notice would be decided before the removal is logged
    wait_removed(d, qid)
    assert notice_ids(d, qid) == []
    wait_spool_empty(d)
    assert maildir_files(d, SENDER) == []


@pytest.mark.parametrize("dsn", [False, True], ids=["lmtp-without-dsn", "lmtp-with-dsn"])
def test_lmtp_is_final_delivery_unless_the_server_offers_dsn(daemons, sinks, dsn):
    lmtp = sinks(lmtp=True, dsn=dsn)
    d = dsn_daemon(daemons, {"local_transport": "lmtp", "lmtp": lmtp.target})
    qid = send(d, SENDER, {"u@example.org": " NOTIFY=SUCCESS"}, "lmtp")
    rcpt_log(d, qid, "u@example.org", "sent")
    wait_removed(d, qid)
    if dsn:
        assert notice_ids(d, qid) == []
        (got,) = lmtp.wait_messages(1)
        assert got.rcpt_params == ["NOTIFY=SUCCESS"], got
        wait_spool_empty(d)
        assert len(lmtp.messages()) == 1
        return
    nid = notice_id(d, qid)
    wait_removed(d, nid)
    # s@remote.test is local too: the notice went to the same LMTP server
    first, notice = lmtp.wait_messages(2)
    assert first.recipients == ["u@example.org"] and first.rcpt_params == [""], first
    assert notice.sender == "" and notice.recipients == [SENDER], notice
    _, _, rcpts, _ = check_notice(notice.content, qid)
    (r,) = rcpts
    assert r["Final-Recipient"] == "rfc822; u@example.org", r.items()
    # LMTP is final delivery (RFC 3461 6.2.2.3), whatever the server's reply says
    assert r["Action"] == "delivered" and r["Status"] == "2.2.0", r.items()
    assert r["Diagnostic-Code"].startswith("smtp; 250 2.2.0"), r.items()
    wait_spool_empty(d)


# ---------------------------------------------------------------- nothing asked

def test_no_notice_unless_success_was_asked(daemons):
    d = dsn_daemon(daemons)
    qid = send(d, SENDER, {"a@example.org": "", "b@example.org": " NOTIFY=FAILURE",
                           "c@example.org": " NOTIFY=NEVER",
                           "e@example.org": " NOTIFY=DELAY,FAILURE"}, "not asked")
    # the null sender is never told anything, whatever it asked
    null = send(d, "", {"f@example.org": " NOTIFY=SUCCESS"}, "null sender")
    for rcpt in ("a@example.org", "b@example.org", "c@example.org", "e@example.org"):
        rcpt_log(d, qid, rcpt, "sent")
    rcpt_log(d, null, "f@example.org", "sent")
    wait_removed(d, qid)
    wait_removed(d, null)
    assert notice_ids(d, qid) == [] and notice_ids(d, null) == []
    assert "delivery status notification" not in d.log()
    assert "non-delivery notification" not in d.log()
    wait_spool_empty(d)
    assert maildir_files(d, SENDER) == []


def test_disabled_delivery_sends_no_notice(daemons, sinks):
    sink = sinks(dsn=False)
    d = dsn_daemon(daemons, {"relay_host": sink.target}, rules=DELIVERY_DISABLED)
    qid = send(d, SENDER, {"u@example.org": " NOTIFY=SUCCESS",
                           "r@far.test": " NOTIFY=SUCCESS"}, "disabled")
    for rcpt in ("u@example.org", "r@far.test"):
        assert rcpt_log(d, qid, rcpt, "none") == ("none", "delivery disabled by the rules")
    wait_removed(d, qid)
    assert notice_ids(d, qid) == []
    assert "delivery status notification" not in d.log()
    wait_spool_empty(d)
    assert maildir_files(d, SENDER) == [] and sink.messages() == []


# ---------------------------------------------------------------- across attempts

def test_success_now_then_a_separate_bounce_later(daemons, sinks):
    """u is delivered at the first attempt; r is deferred by the relay
    until the queue lifetime is over. u's notice goes at once, while r
    waits (the state records it as sent); r's bounce comes apart, at the
    end, and is about r alone."""
    sink = sinks(soft_reject=["RCPT"], soft_reply=SOFT_REPLY)
    d = dsn_daemon(daemons, {"relay_host": sink.target, "max_queue_lifetime": "4s"})
    qid = send(d, SENDER, {"u@example.org": " NOTIFY=SUCCESS",
                           "r@far.test": " NOTIFY=SUCCESS,FAILURE"}, "mixed")
    rcpt_log(d, qid, "u@example.org", "sent")
    rcpt_log(d, qid, "r@far.test", "deferred")
    nid = notice_id(d, qid)
    state_path = os.path.join(d.spool, "state", qid)

    def notice_recorded():
        try:
            with open(state_path) as f:
                state = json.load(f)
        except (FileNotFoundError, ValueError):
            return None
        return {r["address"]: r for r in state["rcpts"]}
    # (the state is rewritten after every attempt, until the message leaves)
    rcpts = e2e.wait_until(notice_recorded, WAIT, interval=0.02,
                           what=f"the delivery state of {qid}")
    assert rcpts["u@example.org"]["status"] == "sent", rcpts
    assert rcpts["u@example.org"]["success_notice"] == "sent", rcpts
    assert rcpts["r@far.test"]["status"] == "deferred", rcpts
    assert "success_notice" not in rcpts["r@far.test"], rcpts

    d.wait_log(rf"{qid}: to=<r@far\.test>, status=expired, returned to sender", WAIT)
    m = d.wait_log(rf"^vsmtpd delivery\[\d+\]: info: {qid}: sender non-delivery "
                   rf"notification: ([0-9A-F]{{16}})$", WAIT)
    bid = m[-1].group(1)
    wait_removed(d, qid)
    wait_removed(d, nid)
    wait_removed(d, bid)
    log = d.log()
    assert log.index(f"{qid}: sender delivery status notification") < log.index("status=expired")
    assert notice_ids(d, qid) == [nid], "the success notice went more than once"
    reports = {}
    for data in wait_maildir(d, SENDER, 2):
        msg = email.message_from_bytes(data)
        reports[msg["Subject"]] = data
    assert sorted(reports) == [NOTICE_SUBJECT, "Undelivered Mail Returned to Sender"], reports
    _, _, rcpts, _ = check_notice(reports[NOTICE_SUBJECT], qid)
    assert [(r["Final-Recipient"], r["Action"]) for r in rcpts] == [
        ("rfc822; u@example.org", "delivered")], rcpts
    _, _, rcpts, _, _ = parse_report(reports["Undelivered Mail Returned to Sender"])
    assert [(r["Final-Recipient"], r["Action"], r["Status"]) for r in rcpts] == [
        ("rfc822; r@far.test", "failed", "5.4.7")], rcpts
    wait_spool_empty(d)


def test_a_notice_owed_when_the_worker_stopped_goes_at_the_next_attempt(daemons):
    """A worker that could not queue a success notice leaves it owed in
    the state file (success_notice "delivered"). The next worker sends it
    without delivering the recipient again, then removes the message. The
    daemon is stopped while the state is written as such a worker leaves
    it."""
    d = dsn_daemon(daemons, {"retry_min": "1h", "retry_max": "1h"})
    os.chmod(d.mail, 0o555)  # the daemon's user cannot make mailboxes for now
    qid = send(d, SENDER, {"u@example.org": " NOTIFY=SUCCESS"}, "owed")
    rcpt_log(d, qid, "u@example.org", "deferred")
    state_path = os.path.join(d.spool, "state", qid)
    e2e.wait_until(lambda: os.path.exists(state_path), what=f"the delivery state of {qid}")
    d.stop()
    with open(state_path) as f:
        state = json.load(f)
    (r,) = state["rcpts"]
    r.update(status="sent", success_notice="delivered", enhanced="2.0.0",
             reply="delivered to the mailbox")
    state["next_attempt"] = 0
    with open(state_path, "w") as f:  # the daemon's file, rewritten in place
        json.dump(state, f)
    os.chmod(d.mail, 0o755)

    d.start()
    nid = notice_id(d, qid)
    wait_removed(d, qid)
    wait_removed(d, nid)
    (data,) = wait_maildir(d, SENDER)
    _, _, rcpts, _ = check_notice(data, qid)
    (r,) = rcpts
    assert (r["Final-Recipient"], r["Action"], r["Status"]) == (
        "rfc822; u@example.org", "delivered", "2.0.0"), r.items()
    # sent already: not delivered again
    assert f"{qid}: to=<u@example.org>" not in d.log()
    assert maildir_files(d, "u@example.org") == []
    wait_spool_empty(d)
