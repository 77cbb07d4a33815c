"""The rules' send_mail(from, to, path [, relay]), end to end.

A rule queues a message written beforehand in a file of the rules folder.
The tests check what an administrator relies on: from a session (connect,
rcpt, preq) and from the delivery worker (postq, delivery) the notice reaches
its mailboxes byte for byte, with the Date:, Message-ID: and From: that
were missing added; the relay argument sends it by SMTP to that host
(smtp-sink) where the usual routing would have kept it; the notice skips
the postq and delivery rules, so a rule sending mail about every message
does not loop; every failure (no such file, a path leaving the folder, a
symbolic link out of it, a file that is no sendable message, a file too
large, an 11th call in one stage) gives 451 4.3.0 and logs its reason; the
queue id send_mail() returns is the notice's; and `vsmtpctl rules run`
checks the file and says what it would send, queueing nothing.

The daemons deliver example.org into maildirs (test_delivery.mail_daemon).
Everything is on loopback; every wait has a deadline.
"""
import email.utils
import os
import re
import time

import vsmtpd_e2e as e2e
from test_delivery import (ALICE, WAIT, mail_daemon, maildir_files, maildir_of, message,
                           rcpt_log, send, wait_maildir, wait_removed, wait_spool_empty)

OPS = "ops@example.org"
CAROL = "carol@example.org"
DAVE = "dave@example.org"
# What send_mail adds, in this order, after the file's own header fields.
DATE_RE = rb"Date: (?P<date>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:Jan|Feb|Mar|Apr|May|Jun|" \
          rb"Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000)\n"
MSGID_RE = rb"Message-ID: (?P<msgid><\d+\.[0-9a-f]{16}\.\d+@mx\.test\.example>)\n"
RULE_FAILED = r"^vsmtpd smtp\[\d+\]: error: rules: rule \"{}\" \(\S+\) at {} failed: .*{}$"

WELCOME = "Subject: Welcome\nTo: new users\n\nHello,\nwelcome aboard.\n"
WELCOME_BODY = b"\nHello,\nwelcome aboard.\n"


def write_notice(d, name, data):
    """A file of d's rules folder (bytes or text, as given), in 0755 folders."""
    path = os.path.join(d.rules_dir, name)
    folder = os.path.dirname(path)
    os.makedirs(folder, 0o755, exist_ok=True)
    os.chmod(folder, 0o755)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, 0o644)
    return path


def check_added(data, head, sender_from):
    """data, a notice as a maildir holds it (LF line ends, trace fields cut),
    is head, then the Date: and Message-ID: send_mail added, then From:
    sender_from; the rest after that. Returns (rest, Message-ID)."""
    rx = re.compile(re.escape(head) + DATE_RE + MSGID_RE +
                    re.escape(b"From: " + sender_from + b"\n"))
    m = rx.match(data)
    assert m is not None, data[:600]
    when = email.utils.parsedate_to_datetime(m.group("date").decode()).timestamp()
    assert abs(when - time.time()) < 120, m.group("date")
    return data[m.end():], m.group("msgid").decode()


def trace(sender, rcpt):
    """The fields a maildir delivery puts on top."""
    return f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n".encode()


def rcpt_reply(d, rcpt):
    """The reply to RCPT TO:<rcpt> in a new transaction from ALICE."""
    with d.session() as c:
        c.mail(ALICE)
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        c.quit()
    return r


# ---------------------------------------------------------------- in a session

SESSION_RULES = """
return {
  connect = {
    action "hello" (function(ctx)
      send_mail("", "erin@example.org", "notices/connect.eml")
    end),
  },
  rcpt = {
    action "welcome" (function(ctx)
      if ctx.rcpt.local_part == "bob" then
        local id = send_mail("ops@example.org", { "carol@example.org", address("dave@example.org") },
                             "notices/welcome.eml")
        log("info", "rcpt notice " .. id)
      end
    end),
  },
  preq = {
    action "receipt" (function(ctx)
      log("info", "preq notice " .. send_mail(ctx.mail_from, "carol@example.org", "receipt.eml"))
    end),
  },
}
"""


def test_a_session_rule_sends_a_notice_byte_for_byte(daemons):
    d = mail_daemon(daemons, rules=SESSION_RULES)
    write_notice(d, "notices/welcome.eml", WELCOME)
    # CRLF, and a header that has its own From: and Date:
    write_notice(d, "receipt.eml", b"From: Receipts <receipts@example.org>\r\n"
                                   b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                                   b"Subject: got it\r\n\r\nThanks.\r\n")
    write_notice(d, "notices/connect.eml", "Subject: connected\n\nhi\n")
    qid = send(d, ALICE, ["bob@example.org"], message("session"))

    rcpt_id = d.wait_log(r"^vsmtpd smtp\[\d+\]: info: rules: .*: rcpt notice "
                         r"([0-9A-F]{16})$")[0].group(1)
    preq_id = d.wait_log(r"^vsmtpd smtp\[\d+\]: info: rules: .*: preq notice "
                         r"([0-9A-F]{16})$")[0].group(1)
    # The session logs the id it got; the worker delivers that message.
    d.wait_log(rf"^vsmtpd smtp\[\d+\]: info: rules: send_mail notices/welcome\.eml: {rcpt_id}$")
    d.wait_log(rf"^vsmtpd smtp\[\d+\]: info: rules: send_mail receipt\.eml: {preq_id}$")
    assert len({qid, rcpt_id, preq_id}) == 3

    for rcpt in (CAROL, DAVE):
        assert rcpt_log(d, rcpt_id, rcpt, "sent")[0] == "maildir"
    got = {}
    for data in wait_maildir(d, CAROL, 2):
        got[b"Subject: got it" in data] = data
    (dave,) = wait_maildir(d, DAVE)
    ids = set()
    for rcpt, data in ((CAROL, got[False]), (DAVE, dave)):
        head = trace(OPS, rcpt) + b"Subject: Welcome\nTo: new users\n"
        rest, msgid = check_added(data, head, OPS.encode())
        assert rest == WELCOME_BODY, data
        ids.add(msgid)
    # One message for both recipients: one Message-ID.
    assert len(ids) == 1
    # Its own From: and Date: are kept; only a Message-ID is added.
    receipt = got[True]
    m = re.fullmatch(re.escape(trace(ALICE, CAROL) + b"From: Receipts <receipts@example.org>\n"
                               b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nSubject: got it\n")
                     + MSGID_RE + rb"\nThanks\.\n", receipt)
    assert m is not None, receipt
    assert rcpt_log(d, preq_id, CAROL, "sent")[0] == "maildir"
    # At connect too, before any transaction.
    (erin,) = wait_maildir(d, "erin@example.org")
    rest, _ = check_added(erin, trace("", "erin@example.org") + b"Subject: connected\n",
                          b"MAILER-DAEMON@mx.test.example")
    assert rest == b"\nhi\n"
    # The client's message went its own way, unchanged.
    (bob,) = wait_maildir(d, "bob@example.org")
    assert bob.endswith(message("session").replace(b"\r\n", b"\n"))
    for i in (qid, rcpt_id, preq_id):
        wait_removed(d, i)
    wait_spool_empty(d)


# ---------------------------------------------------------------- in the delivery worker

WORKER_RULES = """
return {
  postq = {
    action "copy to the archive" (function(ctx)
      log("info", "postq notice " .. send_mail("", "carol@example.org", "notices/postq.eml"))
    end),
  },
  delivery = {
    action "tell dave" (function(ctx)
      log("info", "delivery notice " ..
          send_mail(ctx.mail_from, "dave@example.org", "notices/delivery.eml"))
    end),
  },
}
"""


def test_postq_and_delivery_rules_send_notices_that_skip_the_rules(daemons):
    """Both stages send mail about every message; the notices are not
    such messages: one of each, no loop."""
    d = mail_daemon(daemons, rules=WORKER_RULES)
    write_notice(d, "notices/postq.eml", "Subject: archived\n\nA message came in.\n")
    # A file with no header at all is all body.
    write_notice(d, "notices/delivery.eml", "Delivery attempt made.\n")
    qid = send(d, ALICE, ["bob@example.org"], message("worker"))

    postq_id = d.wait_log(r"^vsmtpd delivery\[\d+\]: info: .*: postq notice "
                          r"([0-9A-F]{16})$", WAIT)[0].group(1)
    dlv_id = d.wait_log(r"^vsmtpd delivery\[\d+\]: info: .*: delivery notice "
                        r"([0-9A-F]{16})$", WAIT)[0].group(1)
    d.wait_log(rf"^vsmtpd delivery\[\d+\]: info: {qid}: rules: send_mail notices/postq\.eml: "
               rf"{postq_id}$")
    d.wait_log(rf"^vsmtpd delivery\[\d+\]: info: {qid}: rules: send_mail "
               rf"notices/delivery\.eml: {dlv_id}$")
    (archived,) = wait_maildir(d, CAROL)
    rest, _ = check_added(archived, trace("", CAROL) + b"Subject: archived\n",
                          b"MAILER-DAEMON@mx.test.example")
    assert rest == b"\nA message came in.\n"
    (told,) = wait_maildir(d, DAVE)
    rest, _ = check_added(told, trace(ALICE, DAVE), ALICE.encode())
    assert rest == b"\nDelivery attempt made.\n"
    assert rcpt_log(d, postq_id, CAROL, "sent")[0] == "maildir"
    assert rcpt_log(d, dlv_id, DAVE, "sent")[0] == "maildir"
    wait_maildir(d, "bob@example.org")
    for i in (qid, postq_id, dlv_id):
        wait_removed(d, i)
    wait_spool_empty(d)
    # Give a loop the time to show: still one notice each, as nothing else
    # was queued.
    time.sleep(1.5)
    assert len(maildir_files(d, CAROL)) == 1 and len(maildir_files(d, DAVE)) == 1
    log = d.log()
    assert len(re.findall(r": postq notice ", log)) == 1, log
    assert len(re.findall(r": delivery notice ", log)) == 1, log
    assert d.queued() == []


def test_the_delivery_stage_sends_at_every_attempt(daemons):
    """The delivery rules run at each attempt (the relay is a closed port:
    every attempt defers), postq once."""
    d = mail_daemon(daemons, rules=WORKER_RULES)
    write_notice(d, "notices/postq.eml", "Subject: archived\n\nA message came in.\n")
    write_notice(d, "notices/delivery.eml", "Subject: attempt\n\nDelivery attempt made.\n")
    qid = send(d, ALICE, ["bob@remote.test"], message("deferred"))
    rcpt_log(d, qid, "bob@remote.test", "deferred", count=2)
    e2e.wait_until(lambda: len(maildir_files(d, DAVE)) >= 2, WAIT, interval=0.05,
                   what="a delivery notice per attempt")
    wait_maildir(d, CAROL)  # postq: one
    assert len(re.findall(r": postq notice ", d.log())) == 1


# ---------------------------------------------------------------- relay

RELAY_RULES = """
return {
  rcpt = {
    action "notify by relay" (function(ctx)
      log("info", "relayed notice " ..
          send_mail("ops@example.org", { "carol@example.org", "dave@example.org" },
                    "notices/relay.eml", "%s"))
      log("info", "bracketed notice " ..
          send_mail("", "carol@example.org", "notices/relay.eml", "[127.0.0.1]:%d"))
    end),
  },
}
"""


def test_the_relay_argument_sends_to_that_host(daemons, sinks):
    sink = sinks()
    d = mail_daemon(daemons, rules=RELAY_RULES % (sink.target, sink.port))
    write_notice(d, "notices/relay.eml", "Subject: by relay\n\nsee you\n")
    qid = send(d, ALICE, ["bob@example.org"], message("relay"))

    first = d.wait_log(r": relayed notice ([0-9A-F]{16})$")[0].group(1)
    second = d.wait_log(r": bracketed notice ([0-9A-F]{16})$")[0].group(1)
    got = sink.wait_messages(2, WAIT)
    by_sender = {m.sender: m for m in got}
    assert set(by_sender) == {OPS, ""}, got
    m = by_sender[OPS]
    assert m.recipients == [CAROL, DAVE]
    content = m.content.replace(b"\r\n", b"\n")
    rest, _ = check_added(content, b"Subject: by relay\n", OPS.encode())
    assert rest == b"\nsee you\n"
    m = by_sender[""]
    assert m.recipients == [CAROL]
    check_added(m.content.replace(b"\r\n", b"\n"), b"Subject: by relay\n",
                b"MAILER-DAEMON@mx.test.example")
    for i, rcpts in ((first, (CAROL, DAVE)), (second, (CAROL,))):
        for rcpt in rcpts:
            assert rcpt_log(d, i, rcpt, "sent")[0] == "127.0.0.1[127.0.0.1]"
        wait_removed(d, i)
    # The usual routing would have put them into maildirs: none was made.
    wait_maildir(d, "bob@example.org")
    wait_removed(d, qid)
    assert not os.path.exists(maildir_of(d, CAROL)) and not os.path.exists(maildir_of(d, DAVE))


# ---------------------------------------------------------------- failures

ERROR_RULES = """
local paths = {
  missing = "notices/missing.eml",
  up = "../outside.eml",
  link = "notices/link.eml",
  nul = "notices/nul.eml",
  long = "notices/long.eml",
  big = "notices/big.eml",
  folder = "notices",
  ok = "notices/ok.eml",
}
return {
  rcpt = {
    rule "notice" (function(ctx)
      send_mail("ops@example.org", "carol@example.org", paths[ctx.rcpt.local_part])
      return status.next()
    end),
  },
}
"""


def test_failures_defer_the_command_and_log_the_reason(daemons):
    d = mail_daemon(daemons, rules=ERROR_RULES)
    d.stop()  # again, with a small [limits] max_message_size
    d.settings["limits"]["max_message_size"] = "2000"
    d.write_config()
    d.start()
    outside = os.path.join(d.dir, "outside.eml")
    with open(outside, "w") as f:
        f.write("Subject: outside\n\nnot for rules\n")
    os.chmod(outside, 0o644)
    write_notice(d, "notices/ok.eml", "Subject: ok\n\nfine\n")
    os.symlink("../../outside.eml", os.path.join(d.rules_dir, "notices", "link.eml"))
    write_notice(d, "notices/nul.eml", b"Subject: nul\n\na\0b\n")
    write_notice(d, "notices/long.eml", b"Subject: long\n\n" + b"x" * 999 + b"\n")
    write_notice(d, "notices/big.eml", b"Subject: big\n\n" + b"x\n" * 1500)

    cases = [
        ("missing", r'send_mail\("notices/missing\.eml"\): no such file in the rules folder'),
        ("up", r"bad argument #3 to 'send_mail' \(a file of the rules folder: a relative path "
               r"without '\.' or '\.\.' components\)"),
        ("link", r'send_mail\("notices/link\.eml"\): not a file of the rules folder'),
        ("nul", r'send_mail\("notices/nul\.eml"\): not a message that can be sent \(a NUL '
                r'byte, a bare CR or a line over 998 octets\)'),
        ("long", r'send_mail\("notices/long\.eml"\): not a message that can be sent \(a NUL '
                 r'byte, a bare CR or a line over 998 octets\)'),
        ("big", r'send_mail\("notices/big\.eml"\): larger than \[limits\] max_message_size'),
        ("folder", r'send_mail\("notices"\): not a regular file'),
    ]
    for local, reason in cases:
        r = rcpt_reply(d, f"{local}@example.org")
        assert r.code == 451 and r.lines[0].startswith("4.3.0 "), (local, r)
        d.wait_log(RULE_FAILED.format("notice", "rcpt", reason))
    # The channel to the queue still works: a good file goes, in the same
    # session as a failure.
    with d.session() as c:
        c.mail(ALICE)
        assert c.cmd("RCPT TO:<missing@example.org>").code == 451
        c.rcpt("ok@example.org")
        qid = e2e.queued_id(c.data(e2e.stuff(message("after errors"))))
        c.quit()
    (notice,) = wait_maildir(d, CAROL)
    check_added(notice, trace(OPS, CAROL) + b"Subject: ok\n", OPS.encode())
    wait_removed(d, qid)
    wait_spool_empty(d)
    assert len(maildir_files(d, CAROL)) == 1


FLOOD_RULES = """
return {
  rcpt = {
    rule "flood" (function(ctx)
      local n = ctx.rcpt.local_part == "flood" and 11 or 10
      for i = 1, n do
        send_mail("ops@example.org", "carol@example.org", "n.eml")
      end
      return status.next()
    end),
  },
}
"""


def test_at_most_ten_per_stage(daemons):
    d = mail_daemon(daemons, rules=FLOOD_RULES)
    write_notice(d, "n.eml", "Subject: n\n\nagain\n")
    with d.session() as c:
        c.mail(ALICE)
        r = c.cmd("RCPT TO:<flood@example.org>")
        assert r.code == 451 and r.lines[0].startswith("4.3.0 "), r
        # The count starts again at each run of a stage.
        c.rcpt("bob@example.org")
        qid = e2e.queued_id(c.data(e2e.stuff(message("flood"))))
        c.quit()
    d.wait_log(RULE_FAILED.format("flood", "rcpt", r"send_mail: at most 10 messages per stage"))
    # The ten before the refusal were queued, then ten more.
    wait_maildir(d, CAROL, 20, timeout=WAIT * 2)
    wait_removed(d, qid)
    wait_spool_empty(d)
    assert len(maildir_files(d, CAROL)) == 20
    assert len(re.findall(r"info: rules: send_mail n\.eml: [0-9A-F]{16}$", d.log(), re.M)) == 20


# ---------------------------------------------------------------- vsmtpctl

OFFLINE_RULES = """
return {
  rcpt = {
    rule "welcome" (function(ctx)
      log("info", "notice id " .. send_mail("ops@example.org",
          { "carol@example.org", "dave@example.org" }, ctx.rcpt.local_part .. ".eml"))
      return status.next()
    end),
  },
}
"""


def test_vsmtpctl_rules_run_checks_the_file_and_queues_nothing(daemons):
    d = daemons(rules=OFFLINE_RULES, start=False)
    text = "Subject: Welcome\nTo: new users\n\nHello,\nwelcome aboard.\n"
    write_notice(d, "bob.eml", text)
    r = d.vsmtpctl("rules", "run", d.rules_path, "--from", ALICE, "--rcpt", "bob@example.org")
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 0, out
    # The message as the daemon would queue it: CRLF, plus Date (31
    # characters), Message-ID (<time.16 hex.1@host>) and From.
    size = (len(text.replace("\n", "\r\n")) + len("Date: \r\n") + 31 +
            len("Message-ID: <.." + "@mx.test.example>\r\n") + len(str(int(time.time()))) + 16 +
            1 + len("From: \r\n") + len(OPS))
    line = (rf"vsmtpd vsmtpctl\[\d+\]: info: rules: would send bob\.eml \({size} bytes\) from "
            rf"<ops@example\.org> to 2 recipient\(s\) \(<carol@example\.org>, \.\.\.\)$")
    assert re.search(line, out, re.M), out
    assert re.search(r"info: rules: .*: notice id OFFLINE$", out, re.M), out
    assert re.search(r"^rcpt <bob@example\.org> +next +250 ", out, re.M), out
    assert "result: queued" in out

    # A missing file fails the rule there too.
    r = d.vsmtpctl("rules", "run", d.rules_path, "--from", ALICE, "--rcpt", "eve@example.org")
    out = r.stdout.decode() + r.stderr.decode()
    assert re.search(r"error: rules: rule \"welcome\" \(\S+\) at rcpt failed: \S+: "
                     r"send_mail\(\"eve\.eml\"\): no such file in the rules folder$", out,
                     re.M), out
    assert re.search(r"^rcpt <eve@example\.org> +error +451 4\.3\.0 ", out, re.M), out
    assert "would send" not in out
    # Nothing was queued, nor could be: no daemon runs.
    assert not os.path.isdir(os.path.join(d.spool, "queue")) or d.queued() == []
