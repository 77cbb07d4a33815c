"""Hold on accept: ctx:hold() keeps a message in hold/ until it is released.

A rule that calls ctx:hold([reason]) marks the message: it is committed as
any other (the client gets its 250 once the file is durable) but into
hold/ instead of queue/, never handed to the delivery worker, listed by
`vsmtpctl queue list` and `show` with its reason, kept across a restart of
the daemon, and delivered once `vsmtpctl queue release` hands it back. The
rules go on after the call. Held before MAIL, every message of the
connection is; from MAIL on, that message; at postq, the queued message
moves to hold/ with its state, and its release does not run postq again.

Each test delivers example.org into maildirs under the daemon's folder, so
a message sent beside the held one shows that delivery works while the
held one stays. Everything is on loopback; every wait has a deadline.
"""
import json
import os
import re
import subprocess

import vsmtpd_e2e as e2e

LOCAL_DOMAIN = "example.org"
RCPT = "bob@example.org"
WAIT = 15.0  # seconds: a delivery, with a worker start in it

PREQ_RULES = """
return {
  preq = {
    rule "hold suspicious" (function(ctx)
      if (ctx:get_header("Subject") or ""):find("hold me", 1, true) then
        ctx:hold("suspicious subject")
      end
      return status.next()
    end),
    action "rules go on after a hold" (function(ctx)
      ctx:append_header("X-Checked", "after the hold")
    end),
  },
  postq = {
    action "postq seen" (function(ctx)
      log("info", "postq ran for " .. ctx.message_id)
    end),
  },
}
"""


def hold_daemon(daemons, rules, label=""):
    """A running daemon delivering example.org into maildirs, with rules."""
    settings = {"delivery": {"local_transport": "maildir", "retry_min": "1s",
                             "retry_max": "2s"},
                "rules": {"local_domains": LOCAL_DOMAIN}}
    d = daemons(settings=settings, start=False, rules=rules, label=label)
    return d.deliver_to_maildirs().start()


def body(subject):
    return (f"From: Alice <alice@example.org>\r\nTo: Bob <{RCPT}>\r\n"
            f"Subject: {subject}\r\n\r\nHello.\r\n").encode()


def send(d, subject):
    """One message to RCPT; its queue id, from the 250 reply."""
    with d.session() as c:
        qid = c.send_message(e2e.stuff(body(subject)), "alice@example.org", (RCPT,))
        c.quit()
    return qid


def delivered(d):
    """The messages in RCPT's maildir, by Subject."""
    new = os.path.join(d.mail, LOCAL_DOMAIN, "bob", "Maildir", "new")
    found = {}
    for name in os.listdir(new) if os.path.isdir(new) else []:
        with open(os.path.join(new, name), "rb") as f:
            data = f.read()
        m = re.search(rb"^Subject: (.*?)\r?$", data, re.M)
        found[m.group(1).decode() if m else ""] = data
    return found


def wait_delivered(d, subject):
    return e2e.wait_until(lambda: delivered(d).get(subject), WAIT, interval=0.05,
                          what=f"{subject!r} in the maildir of {RCPT}")


def spool(d, sub):
    path = os.path.join(d.spool, sub)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def listed(d, qid, *args):
    """The entry of qid in `vsmtpctl queue list --json`, None when absent."""
    r = d.vsmtpctl("queue", "list", "--json", *args)
    assert r.returncode == 0, r
    for m in json.loads(r.stdout)["messages"]:
        if m["id"] == qid:
            return m
    return None


def held_line(qid, rule, stage, reason):
    return (rf"^vsmtpd smtp\[\d+\]: notice: {qid}: held on accept by rule \"{rule}\" at "
            rf"{stage}: {re.escape(reason)}$")


def check_held(d, qid, reason):
    """qid is in hold/ only, listed and shown with reason."""
    assert qid in spool(d, "hold") and qid not in spool(d, "queue"), \
        (spool(d, "hold"), spool(d, "queue"))
    entry = listed(d, qid)
    assert entry is not None and entry["queue"] == "hold", entry
    assert entry["hold_reason"] == reason, entry
    assert listed(d, qid, "--queue", "hold") == entry
    table = d.vsmtpctl("queue", "list").stdout.decode()
    assert re.search(rf"^{qid}!.*\n(?:.*\n)*?\(held: {re.escape(reason)}\)$", table, re.M), table
    shown = json.loads(d.vsmtpctl("queue", "show", "--json", qid).stdout)
    assert shown["queue"] == "hold" and shown["hold_reason"] == reason, shown
    text = d.vsmtpctl("queue", "show", qid).stdout.decode()
    assert f"\nHeld:       {reason}\n" in text, text


def test_a_preq_hold_is_committed_kept_across_a_restart_and_released(daemons):
    d = hold_daemon(daemons, PREQ_RULES)
    held = send(d, "hold me please")
    d.wait_log(held_line(held, "hold suspicious", "preq", "suspicious subject"))
    check_held(d, held, "suspicious subject")
    # the envelope carries the hold; the rules after it ran (their header is in)
    with open(os.path.join(d.spool, "hold", held), "rb") as f:
        content, envelope = e2e.parse_spool_bytes(f.read())
    assert envelope["hold"] == "suspicious subject", envelope
    assert b"\nX-Checked: after the hold\r\n" in content

    # a message beside it is delivered; the held one is not, nor handed to the worker
    send(d, "ordinary")
    wait_delivered(d, "ordinary")
    d.wait_log(r"postq ran for [0-9A-F]{16}$")
    assert set(delivered(d)) == {"ordinary"}
    assert f"postq ran for {held}" not in d.log()
    assert held not in spool(d, "state")

    # a restart keeps it held
    d.stop()
    d.start()
    check_held(d, held, "suspicious subject")
    send(d, "after the restart")
    wait_delivered(d, "after the restart")
    assert set(delivered(d)) == {"ordinary", "after the restart"}

    # released, it is delivered as it was accepted; the postq rules do not run for it
    r = d.vsmtpctl("queue", "release", held)
    assert r.returncode == 0 and r.stdout == f"{held}: released\n".encode(), r
    data = wait_delivered(d, "hold me please")
    assert b"\nX-Checked: after the hold\n" in data, data
    e2e.wait_until(lambda: held not in spool(d, "queue") and held not in spool(d, "state"),
                   WAIT, what="the released message gone from the spool")
    assert f"postq ran for {held}" not in d.log()
    assert spool(d, "hold") == []
    d.stop()


CONNECTION_RULES = """
return {
  connect = {
    rule "hold the test net" (function(ctx)
      ctx:hold()
      return status.next()
    end),
  },
}
"""


def test_a_hold_before_mail_holds_every_message_of_the_connection(daemons):
    d = hold_daemon(daemons, CONNECTION_RULES)
    with d.session() as c:
        first = c.send_message(e2e.stuff(body("first")), "alice@example.org", (RCPT,))
        second = c.send_message(e2e.stuff(body("second")), "alice@example.org", (RCPT,))
        c.quit()
    reason = 'held by rule "hold the test net" at connect'
    for qid in (first, second):
        d.wait_log(held_line(qid, "hold the test net", "connect", reason))
        check_held(d, qid, reason)
    assert spool(d, "queue") == []
    assert d.vsmtpctl("queue", "release", first, second).returncode == 0
    wait_delivered(d, "first")
    wait_delivered(d, "second")
    d.stop()


MAIL_RULES = """
return {
  mail = {
    rule "hold mail from carol" (function(ctx)
      if ctx.mail_from.local_part == "carol" then
        ctx:hold("carol's mail is read first")
      end
      return status.next()
    end),
  },
}
"""


def test_a_hold_at_mail_holds_that_message_only(daemons):
    d = hold_daemon(daemons, MAIL_RULES)
    with d.session() as c:
        held = c.send_message(e2e.stuff(body("from carol")), "carol@example.net", (RCPT,))
        ordinary = c.send_message(e2e.stuff(body("from alice")), "alice@example.org", (RCPT,))
        c.quit()
    d.wait_log(held_line(held, "hold mail from carol", "mail", "carol's mail is read first"))
    check_held(d, held, "carol's mail is read first")
    wait_delivered(d, "from alice")
    assert listed(d, ordinary) is None or listed(d, ordinary)["queue"] != "hold"
    assert set(delivered(d)) == {"from alice"}
    d.stop()


POSTQ_RULES = """
return {
  postq = {
    rule "hold for review" (function(ctx)
      log("info", "postq ran for " .. ctx.message_id)
      if (ctx:get_header("Subject") or ""):find("review", 1, true) then
        ctx:hold("waiting for review")
      end
      return status.next()
    end),
  },
}
"""


def test_a_postq_hold_moves_the_queued_message_and_release_skips_postq(daemons):
    d = hold_daemon(daemons, POSTQ_RULES)
    held = send(d, "please review")
    d.wait_log(rf"^vsmtpd delivery\[\d+\]: notice: {held}: held by rule \"hold for review\" "
               rf"at postq: waiting for review$", WAIT)
    e2e.wait_until(lambda: held in spool(d, "hold"), WAIT, what="the message in hold/")
    check_held(d, held, "waiting for review")
    send(d, "ordinary")
    wait_delivered(d, "ordinary")
    assert set(delivered(d)) == {"ordinary"}

    assert d.vsmtpctl("queue", "release", held).returncode == 0
    wait_delivered(d, "please review")
    assert d.log().count(f"postq ran for {held}") == 1
    d.stop()


def test_rules_run_shows_the_hold(workspace):
    folder = workspace.new_dir("rules-run")
    rules = os.path.join(folder, "main.lua")
    with open(rules, "w") as f:
        f.write(PREQ_RULES)
    message = os.path.join(folder, "message.eml")
    with open(message, "wb") as f:
        f.write(body("hold me please"))
    r = subprocess.run([e2e.vsmtpctl_binary(), "rules", "run", rules, "--from",
                        "alice@example.org", "--rcpt", RCPT, message],
                       capture_output=True, timeout=e2e.IO_TIMEOUT)
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr)
    assert out.rstrip().endswith("result: held (suspicious subject)"), out
    # a held message goes no further offline: postq does not run before its release
    assert "\npostq" not in out, out
