"""Delegate rules: a content filter round trip at postq.

The daemon under test ("main") has a postq delegate rule whose service is a
second vsmtpd ("filter") acting as the content filter: its preq rules add
X-Filtered to every message and X-Virus-Infected to the ones carrying the
word "infected" in their Subject (a stand-in for a virus scanner), and it relays everything to main's delegation listener.
Main then runs the delegate rule's function on the message as it came back:
an infected one is quarantined, a clean one delivered into a maildir with
the filter's header field and without the delegation token.

The durability cases: the filter down (deferred, then delivered), killed
while it holds the message, with or without its queue (main keeps the
original queued and sends it again after the service's timeout; one
delivery in the end, however many copies come back), and main killed
between the commit of the returned copy and the removal of the original
(the recovery removes the original: one delivery). Mail sent to the
delegation listener without a valid token is refused. Changes and a hold
made before the rule are kept across the round trip, and a delivery-stage
delegate rule sends the queued message.

Everything is on loopback; every wait has a deadline.
"""
import json
import os
import re
import signal
import time

import vsmtpd_e2e as e2e

LOCAL_DOMAIN = "example.org"
RCPT = "bob@example.org"
WAIT = 20.0  # seconds: two daemons' deliveries, with retries in them
TIMEOUT_S = 3  # the delegate service's timeout: the original is sent again after it

MAIN_RULES = """
return {
  postq = {
    action "before the filter" (function(ctx)
      log("info", "postq before the filter ran for " .. ctx.message_id)
    end),
    delegate "check email for virus" ("clamsmtpd", function(ctx)
      log("info", "delegate function ran for " .. ctx.message_id)
      if ctx:has_header("X-Virus-Infected") then
        return status.quarantine("virus_queue")
      end
      return status.next()
    end),
    action "after the filter" (function(ctx)
      ctx:append_header("X-After-Filter", "yes")
    end),
  },
}
"""

FILTER_RULES = """
return {
  preq = {
    action "scan" (function(ctx)
      ctx:append_header("X-Filtered", "by the test filter")
      if (ctx:get_header("Subject") or ""):find("infected", 1, true) then
        ctx:append_header("X-Virus-Infected", "Eicar-Test-Signature")
      end
    end),
  },
}
"""


def main_daemon(daemons, filter_port, rules=MAIN_RULES):
    """main: a smtp listener, a delegation listener, the filter as a service."""
    back = e2e.free_port()
    settings = {"delivery": {"local_transport": "maildir", "retry_min": "1s",
                             "retry_max": "2s"},
                "rules": {"local_domains": LOCAL_DOMAIN},
                "listener:back": {"address": f"127.0.0.1:{back}", "kind": "delegation"},
                "service:clamsmtpd": {"kind": "delegate", "address": f"127.0.0.1:{filter_port}",
                                   "timeout": f"{TIMEOUT_S}s"}}
    d = daemons(settings=settings, start=False, rules=rules, label="-main")
    d.back_port = back
    return d.deliver_to_maildirs()


def filter_daemon(daemons, back_port, port=None):
    """The filter: a vsmtpd whose preq rules mark the mail, relaying it back to main."""
    settings = {"delivery": {"relay_host": f"127.0.0.1:{back_port}", "retry_min": "1s",
                             "retry_max": "1s"},
                "server": {"hostname": "filter.test.example"}}
    addresses = f"127.0.0.1:{port}" if port else None
    d = daemons(settings=settings, start=False, rules=FILTER_RULES, label="-filter",
                addresses=addresses)
    return d


def pair(daemons, rules=MAIN_RULES, relay=True):
    """A started (main, filter) pair; with relay=False the filter cannot pass
    mail back (its relay is a closed port) until relay_back()."""
    filt = filter_daemon(daemons, back_port=e2e.CLOSED_PORT)
    main = main_daemon(daemons, filt.port, rules)
    if relay:
        relay_back(filt, main)
    filt.start()
    main.start()
    return main, filt


def relay_back(filt, main):
    """The filter's relay is main's delegation listener (its configuration
    written; the caller starts or reloads it)."""
    filt.settings["delivery"]["relay_host"] = f"127.0.0.1:{main.back_port}"
    filt.write_config()


def send_held(main, filt, subject):
    """A message main sends to the filter, which cannot pass it back; its
    queue id at main once the filter deferred it."""
    qid = send(main, subject)
    filt.wait_log(r"info: [0-9A-F]{16}: .*status=deferred")
    return qid


def wait_sent(main, qid, timeout=e2e.IO_TIMEOUT, count=1):
    """Wait until main has sent qid to the filter count times."""
    main.wait_log(rf"info: {qid}: service clamsmtpd \(delegate\): \d+ ms: sent to ", timeout,
                  count=count)


def body(subject, text="Hello."):
    return (f"From: Alice <alice@example.org>\r\nTo: Bob <{RCPT}>\r\n"
            f"Subject: {subject}\r\n\r\n{text}\r\n").encode()


def send(d, subject, text="Hello."):
    with d.session() as c:
        qid = c.send_message(e2e.stuff(body(subject, text)), "alice@example.org", (RCPT,))
        c.quit()
    return qid


def delivered(d):
    """The messages in RCPT's maildir: a list of (subject, data)."""
    new = os.path.join(d.mail, LOCAL_DOMAIN, "bob", "Maildir", "new")
    found = []
    for name in sorted(os.listdir(new)) if os.path.isdir(new) else []:
        with open(os.path.join(new, name), "rb") as f:
            data = f.read()
        m = re.search(rb"^Subject: (.*?)\r?$", data, re.M)
        found.append((m.group(1).decode() if m else "", data))
    return found


def copies(d, subject):
    return [data for s, data in delivered(d) if s == subject]


def wait_delivered(d, subject):
    return e2e.wait_until(lambda: copies(d, subject), WAIT, interval=0.05,
                          what=f"{subject!r} in the maildir of {RCPT}")[0]


def spool(d, sub):
    path = os.path.join(d.spool, sub)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_clean_message_comes_back_with_the_filters_header(daemons):
    main, _ = pair(daemons)
    qid = send(main, "clean")
    data = wait_delivered(main, "clean")
    assert b"\nX-Filtered: by the test filter\n" in data, data
    assert b"X-Virus-Infected" not in data
    assert b"X-Vsmtpd-Delegation" not in data, data
    # the rules went on after the delegate rule, once, on the returned copy
    assert data.count(b"X-After-Filter: yes") == 1, data
    wait_sent(main, qid)
    main.wait_log(rf"info: {qid}: came back from the filter as [0-9A-F]{{16}}: removed")
    # the rules before the delegate rule ran on the original only
    log = main.log()
    assert len(re.findall(r"postq before the filter ran", log)) == 1, log
    assert len(re.findall(r"delegate function ran", log)) == 1, log
    e2e.wait_until(lambda: not spool(main, "queue"), WAIT, what="an empty queue")
    time.sleep(0.5)
    assert len(copies(main, "clean")) == 1


def test_infected_message_is_quarantined(daemons):
    main, _ = pair(daemons)
    send(main, "infected")
    path = os.path.join(main.spool, "quarantine", "virus_queue")
    files = e2e.wait_until(lambda: os.path.isdir(path) and os.listdir(path), WAIT,
                           what="a message in quarantine/virus_queue")
    content, envelope = e2e.read_spool_file(os.path.join(path, files[0]))
    assert b"\r\nX-Virus-Infected: Eicar-Test-Signature\r\n" in content, content
    assert envelope["rcpts"][0]["address"] == RCPT
    assert envelope["mail_from"] == "alice@example.org"
    e2e.wait_until(lambda: not spool(main, "queue"), WAIT, what="an empty queue")
    assert not copies(main, "infected")


def test_the_recipe_quarantines_what_the_filter_marks(daemons):
    with open(os.path.join(e2e.SOURCE_DIR, "rules", "examples", "delegate-virus-filter",
                           "main.lua")) as f:
        main, _ = pair(daemons, f.read())
    send(main, "infected")
    send(main, "clean")
    data = wait_delivered(main, "clean")
    assert b"X-Filtered: by the test filter" in data
    path = os.path.join(main.spool, "quarantine", "virus_queue")
    files = e2e.wait_until(lambda: os.path.isdir(path) and os.listdir(path), WAIT,
                           what="a message in quarantine/virus_queue")
    assert b"Subject: infected" in e2e.read_spool_file(os.path.join(path, files[0]))[0]
    assert not copies(main, "infected")


def back_session(main):
    c = e2e.SMTPClient(main.back_port)
    c.ehlo()
    return c


def test_forged_returns_are_refused(daemons):
    main, _ = pair(daemons)
    forged = {
        "no token": body("no token"),
        "bad mac": b"X-Vsmtpd-Delegation: 1.000660CD977706E6.1." + b"0" * 32 + b"\r\n"
                   + body("bad mac"),
        "malformed": b"X-Vsmtpd-Delegation: hello\r\n" + body("malformed"),
    }
    for what, content in forged.items():
        with back_session(main) as c:
            c.expect("MAIL FROM:<alice@example.org>", 250)
            c.expect(f"RCPT TO:<{RCPT}>", 250)
            c.expect("DATA", 354)
            c.send(e2e.stuff(content) + b".\r\n")
            r = c.read_reply()
            assert r.code == 550 and r.esc == "5.7.1", (what, r)
            c.quit()
    assert not spool(main, "queue")
    e2e.wait_until(lambda: not spool(main, "incoming"), WAIT, what="no incoming file left")


def test_filter_killed_midway_sends_again_and_delivers_once(daemons):
    # The filter takes the message, cannot pass it on (its relay is a closed
    # port) and is killed. Main's original waits, goes to the filter again
    # after the service's timeout; the filter, back, now holds two copies and
    # sends both back once it relays to main: the second is dropped, the
    # message delivered once.
    main, filt = pair(daemons, relay=False)
    qid = send_held(main, filt, "midway")
    state_path = os.path.join(main.spool, "state", qid)
    e2e.wait_until(lambda: os.path.exists(state_path), WAIT, what="the original's state")
    with open(state_path) as f:
        state = json.load(f)
    delegated = state["delegated"]
    assert delegated["service"] == "clamsmtpd" and delegated["rule"] == 2, state
    assert delegated["stage"] == "postq", state
    assert state["next_attempt"] - delegated["sent_at"] == TIMEOUT_S, state
    assert qid in spool(main, "queue")
    filt.kill_all()
    filt.start()
    wait_sent(main, qid, WAIT, count=2)
    assert qid in spool(main, "queue")
    relay_back(filt, main)
    filt.signal(signal.SIGHUP)
    wait_delivered(main, "midway")
    main.wait_log(r"notice: [0-9A-F]{16}: a second return of a delegation whose message came "
                  r"back already: dropped", WAIT)
    e2e.wait_until(lambda: not spool(main, "queue"), WAIT, what="an empty queue")
    e2e.wait_until(lambda: not spool(filt, "queue"), WAIT, what="the filter's empty queue")
    time.sleep(1.0)
    assert len(copies(main, "midway")) == 1


def test_a_filter_that_lost_the_message_gets_it_again(daemons):
    # The filter is killed and loses its queue: main sends the message again
    # after the service's timeout, and it comes back once.
    main, filt = pair(daemons, relay=False)
    qid = send_held(main, filt, "lost")
    filt.kill_all()
    for name in spool(filt, "queue"):
        os.unlink(os.path.join(filt.spool, "queue", name))
    relay_back(filt, main)
    filt.start()
    wait_sent(main, qid, WAIT, count=2)
    data = wait_delivered(main, "lost")
    assert b"X-Filtered: by the test filter" in data
    e2e.wait_until(lambda: not spool(main, "queue"), WAIT, what="an empty queue")
    time.sleep(1.0)
    assert len(copies(main, "lost")) == 1


def test_filter_down_defers_then_delivers(daemons):
    # Nothing listens at the filter's address: the recipients are deferred
    # (on_failure tempfail), and the message goes once the filter is up.
    port = e2e.free_port()
    main = main_daemon(daemons, port)
    main.start()
    qid = send(main, "filter down")
    main.wait_log(rf"warning: {qid}: service clamsmtpd \(delegate\): \d+ ms: failed: .*"
                  r"on_failure=tempfail")
    state_path = os.path.join(main.spool, "state", qid)
    e2e.wait_until(lambda: os.path.exists(state_path), WAIT, what="the state")
    with open(state_path) as f:
        state = json.load(f)
    assert state["rcpts"][0]["status"] == "deferred", state
    assert state["rcpts"][0]["reply"].startswith("451 4.7.1 clamsmtpd is unavailable"), state
    filt = filter_daemon(daemons, back_port=main.back_port, port=port)
    filt.start()
    data = wait_delivered(main, "filter down")
    assert b"X-Filtered: by the test filter" in data


def write_spool_file(path, content, envelope):
    env = json.dumps(envelope, separators=(",", ":")).encode()
    trailer = b"\nVSMTPD-SPOOL-1 %016x %08x\n" % (len(content), len(env))
    with open(path, "wb") as f:
        f.write(content + env + trailer)


def test_crash_between_return_and_removal_delivers_once(daemons):
    # The state a SIGKILL leaves between the commit of the returned copy and
    # the removal of the original: both in queue/. The restart removes the
    # original and delivers the returned copy, once.
    main, filt = pair(daemons, relay=False)
    qid = send(main, "crash")
    wait_sent(main, qid)
    main.kill_all()
    filt.kill_all()
    content, envelope = main.message(qid)
    returned_id = "%016X" % (int(qid, 16) + 1)
    returned = dict(envelope, id=returned_id, delegated_from=qid, delegated_rule=2,
                    postq_start=2)
    write_spool_file(os.path.join(main.queue_dir(), returned_id),
                     content.replace(b"\r\n\r\n", b"\r\nX-Filtered: by the test filter\r\n\r\n",
                                     1), returned)
    if e2e.IS_ROOT:
        _, _, uid, gid = e2e.run_user()
        os.chown(os.path.join(main.queue_dir(), returned_id), uid, gid)
    assert sorted(spool(main, "queue")) == sorted([qid, returned_id])
    main.start()
    main.wait_log(rf"notice: {qid}: came back from the filter as {returned_id} before a "
                  r"restart: removed")
    data = wait_delivered(main, "crash")
    assert b"X-Filtered: by the test filter" in data
    assert data.count(b"X-After-Filter: yes") == 1
    e2e.wait_until(lambda: not spool(main, "queue"), WAIT, what="an empty queue")
    time.sleep(TIMEOUT_S + 1)
    assert len(copies(main, "crash")) == 1


CHANGING_RULES = """
return {
  postq = {
    action "before the filter" (function(ctx)
      ctx:set("tag", "kept")
      if (ctx:get_header("Subject") or ""):find("review", 1, true) then
        ctx:hold("review before the filter")
      end
    end),
    delegate "check email for virus" ("clamsmtpd", function(ctx)
      ctx:append_header("X-Tag", ctx:get("tag") or "lost")
      return status.next()
    end),
  },
}
"""


def test_changes_and_a_hold_before_the_rule_are_kept_across_the_round_trip(daemons):
    # A variable set (and a hold) before the delegate rule: the message is
    # queued again to start at the rule, goes to the filter from there, and
    # the function sees the variable. A held copy waits in hold/; once
    # released, it still goes through the filter.
    main, _ = pair(daemons, CHANGING_RULES)
    send(main, "tagged")
    data = wait_delivered(main, "tagged")
    assert b"\nX-Tag: kept\n" in data and b"X-Filtered: by the test filter" in data, data
    send(main, "please review")
    held = e2e.wait_until(lambda: spool(main, "hold"), WAIT, what="a message in hold/")[0]
    assert not copies(main, "please review")
    r = main.vsmtpctl("queue", "release", held)
    assert r.returncode == 0, r
    data = wait_delivered(main, "please review")
    assert b"\nX-Tag: kept\n" in data and b"X-Filtered: by the test filter" in data, data
    e2e.wait_until(lambda: not spool(main, "queue") and not spool(main, "hold"), WAIT,
                   what="an empty queue")
    assert len(copies(main, "please review")) == 1


DELIVERY_RULES = """
return {
  delivery = {
    action "before the filter" (function(ctx)
      ctx:append_header("X-Attempt", "this attempt only")
    end),
    delegate "scan at delivery" ("clamsmtpd", function(ctx)
      if ctx:has_header("X-Virus-Infected") then
        return status.quarantine("virus_queue")
      end
      ctx:maildir_all()
      return status.next()
    end),
  },
}
"""


def test_a_delivery_delegate_rule_sends_the_queued_message(daemons):
    # At delivery the filter gets the message as queued (not this attempt's
    # edits); the copy that comes back runs the whole stage at its attempts,
    # the rule its function: a clean message is delivered with the filter's
    # field and one X-Attempt, an infected one quarantined.
    main, _ = pair(daemons, DELIVERY_RULES)
    qid = send(main, "at delivery")
    data = wait_delivered(main, "at delivery")
    assert b"X-Filtered: by the test filter" in data, data
    assert data.count(b"X-Attempt: this attempt only") == 1, data
    main.wait_log(rf"info: {qid}: came back from the filter as [0-9A-F]{{16}}: removed")
    send(main, "infected at delivery")
    path = os.path.join(main.spool, "quarantine", "virus_queue")
    e2e.wait_until(lambda: os.path.isdir(path) and os.listdir(path), WAIT,
                   what="a message in quarantine/virus_queue")
    e2e.wait_until(lambda: not spool(main, "queue"), WAIT, what="an empty queue")
    assert len(copies(main, "at delivery")) == 1


PARTIAL_RULES = """
return {
  delivery = {
    rule "first attempts go without the filter" (function(ctx)
      ctx:maildir("bob@example.org")
      ctx:forward("carol@example.net", "127.0.0.1:1")
      if os.time() - ctx.mail_timestamp < 3 then
        return status.accept()
      end
      return status.next()
    end),
    delegate "scan at delivery" ("clamsmtpd", function(ctx)
      return status.next()
    end),
  },
}
"""


def test_a_delivery_delegate_rule_reached_after_a_partial_delivery_defers(daemons):
    # An attempt that did not reach the rule delivered one recipient; a later
    # one reaches it: the filter's copy would bring that recipient back, so
    # the message does not go to the filter and the recipient left is
    # deferred as by a rule error.
    main, _ = pair(daemons, PARTIAL_RULES)
    with main.session() as c:
        qid = c.send_message(e2e.stuff(body("partial")), "alice@example.org",
                             (RCPT, "carol@example.net"))
        c.quit()
    wait_delivered(main, "partial")
    main.wait_log(rf"error: {qid}: delegate rule \"scan at delivery\" at delivery: "
                  rf"<{RCPT}> has its outcome already", WAIT)
    main.wait_log(rf"info: {qid}: delivery rules \(no rule\) refused delivery: 451 4\.3\.0 "
                  r"error in the delivery rules", WAIT)
    assert qid in spool(main, "queue")
    assert "service clamsmtpd" not in main.log()
    assert len(copies(main, "partial")) == 1
