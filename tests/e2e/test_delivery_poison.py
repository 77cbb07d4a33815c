"""A message that takes the delivery worker down, end to end.

A postq or delivery rule that runs a catastrophic-backtracking pattern on
one message (the one with Subject "poison") ends the worker at [rules]
time_limit, every time it sees that message. The queue must name the
message and the rule in the log, hand the message to each new worker only
after the rest of the queue, count the failures in the message's delivery
state (across a restart of the daemon) and, after [delivery]
max_worker_failures of them, set it aside in hold/ where `vsmtpctl queue
list` and `show` give the reason; `vsmtpctl queue release` tries it again
with the count reset. The ordinary messages sent with it are delivered into
their maildirs all the while.

Retries come after 1 s, then 2 s; the time limit is 300 ms of CPU time.
Everything is on loopback; every wait has a deadline.
"""
import json
import os
import re

import vsmtpd_e2e as e2e

LOCAL_DOMAIN = "example.org"
RCPT = "bob@example.org"
WAIT = 60.0  # seconds: several worker restarts, each after the master's backoff

# The pattern of docs/rules.md that backtracks for ever, on one message only.
POISON = """
return {
  %s = {
    rule "poison" (function(ctx)
      local subject = ctx:get_header("Subject") or ""
      if subject:find("poison", 1, true) then
        ("a"):rep(40):match(("a?"):rep(40) .. ("a"):rep(40) .. "b")
      end
      return status.next()
    end),
  },
}
"""


def poison_daemon(daemons, stage, failures=None):
    """A daemon delivering example.org into maildirs, with the poison rule at stage."""
    delivery = {"local_transport": "maildir", "retry_min": "1s", "retry_max": "2s"}
    if failures is not None:
        delivery["max_worker_failures"] = str(failures)
    settings = {"delivery": delivery,
                "rules": {"local_domains": LOCAL_DOMAIN, "time_limit": "300ms"}}
    d = daemons(settings=settings, start=False, rules=POISON % stage)
    return d.deliver_to_maildirs().start()


def send(d, subject):
    """One message to RCPT with this Subject; its queue id."""
    body = (f"From: Alice <alice@example.org>\r\nTo: Bob <{RCPT}>\r\n"
            f"Subject: {subject}\r\n\r\nHello.\r\n").encode()
    with d.session() as c:
        qid = c.send_message(e2e.stuff(body), "alice@example.org", (RCPT,))
        c.quit()
    return qid


def subjects(d):
    """The Subjects of the messages in RCPT's maildir."""
    new = os.path.join(d.mail, LOCAL_DOMAIN, "bob", "Maildir", "new")
    found = set()
    for name in os.listdir(new) if os.path.isdir(new) else []:
        with open(os.path.join(new, name), "rb") as f:
            m = re.search(rb"^Subject: (.*?)\r?$", f.read(), re.M)
        if m:
            found.add(m.group(1).decode())
    return found


def wait_delivered(d, wanted):
    e2e.wait_until(lambda: wanted <= subjects(d), WAIT, interval=0.1,
                   what=f"{sorted(wanted)} in the maildir of {RCPT}")


def died_line(qid, stage, failure, of):
    """The queue's line about a worker that died on qid in the poison rule."""
    return (rf"vsmtpd queue\[\d+\]: error: {qid}: the delivery worker died while running "
            rf"the {stage} rules on it: rule \"poison\" \(\S+/rules/main\.lua:\d+\) ran past "
            rf"\[rules\] time_limit \(failure {failure} of {of}\)$")


def listed(d, qid, *args):
    """The entry of qid in `vsmtpctl queue list --json`, None when absent."""
    r = d.vsmtpctl("queue", "list", "--json", *args)
    assert r.returncode == 0, r
    for m in json.loads(r.stdout)["messages"]:
        if m["id"] == qid:
            return m
    return None


def deaths(d):
    return len(re.findall(r"delivery worker exited with status 3: a rule ran past", d.log()))


def test_postq_poison_is_named_set_aside_and_released(daemons):
    d = poison_daemon(daemons, "postq")
    poison = send(d, "poison")
    ordinary = {f"ordinary {n}" for n in range(5)}
    for subject in sorted(ordinary):
        send(d, subject)

    # the log names the message and the rule, and the master restarts the worker
    d.wait_log(died_line(poison, "postq", 1, 3), WAIT)
    d.wait_log(r"delivery worker exited with status 3: a rule ran past \[rules\] time_limit",
               WAIT)
    d.wait_log(r"restarting the delivery worker in \d+ s", WAIT)
    wait_delivered(d, ordinary)

    # after three failures the message is held, with its reason
    d.wait_log(died_line(poison, "postq", 3, 3), WAIT)
    d.wait_log(rf"{poison}: set aside in hold/ after 3 delivery worker failures; "
               rf"\"vsmtpctl queue release {poison}\" tries it again", WAIT)
    assert os.path.exists(os.path.join(d.spool, "hold", poison))
    entry = listed(d, poison)
    assert entry["queue"] == "hold" and entry["worker_failures"] == 3, entry
    assert entry["hold_reason"].startswith(
        "the delivery worker died 3 times working on it, the last time while running the "
        "postq rules on it: rule \"poison\" ("), entry
    assert entry["hold_reason"].endswith("ran past [rules] time_limit"), entry
    assert listed(d, poison, "--queue", "hold") == entry
    table = d.vsmtpctl("queue", "list").stdout.decode()
    assert re.search(rf"^{poison}!.*\n\(held: the delivery worker died 3 times ", table, re.M), \
        table
    shown = json.loads(d.vsmtpctl("queue", "show", "--json", poison).stdout)
    assert shown["queue"] == "hold", shown
    assert shown["state"]["hold_reason"] == entry["hold_reason"], shown
    assert shown["state"]["worker_failures"] == 3, shown
    text = d.vsmtpctl("queue", "show", poison).stdout.decode()
    assert "\nWorker failures: 3, the last while running the postq rules on it: rule " \
        "\"poison\"" in text, text
    assert "\nHeld:       the delivery worker died 3 times" in text, text

    # held, it kills no worker: the next ordinary message goes through alone
    dead = deaths(d)
    assert dead >= 3
    send(d, "after the hold")
    wait_delivered(d, {"after the hold"})
    assert deaths(d) == dead
    assert "poison" not in subjects(d)

    # released, it is tried again with its count reset
    r = d.vsmtpctl("queue", "release", poison)
    assert r.returncode == 0 and r.stdout == f"{poison}: released\n".encode(), r
    d.wait_log(died_line(poison, "postq", 1, 3), WAIT, count=2)
    assert listed(d, poison)["queue"] in ("active", "deferred")
    d.stop()


def test_delivery_stage_poison_never_blocks_the_queue(daemons):
    # the limit is out of reach: what keeps the queue going is that the
    # message goes to each new worker after the others
    d = poison_daemon(daemons, "delivery", failures=100)
    poison = send(d, "poison")
    d.wait_log(died_line(poison, "delivery", 1, 100), WAIT)
    ordinary = set()
    for n in range(3):
        subject = f"ordinary {n}"
        ordinary.add(subject)
        send(d, subject)
        wait_delivered(d, ordinary)
    d.wait_log(died_line(poison, "delivery", 2, 100), WAIT)
    entry = listed(d, poison)
    assert entry["queue"] in ("active", "deferred"), entry
    assert entry["worker_failures"] >= 2 and "hold_reason" not in entry, entry
    assert "poison" not in subjects(d)
    d.stop()


def test_the_count_survives_a_restart(daemons):
    d = poison_daemon(daemons, "postq")
    poison = send(d, "poison")
    d.wait_log(died_line(poison, "postq", 1, 3), WAIT)
    d.stop()
    with open(os.path.join(d.spool, "state", poison)) as f:
        state = json.load(f)
    counted = state["worker_failures"]
    assert 1 <= counted <= 3, state
    assert "running the postq rules on it: rule \"poison\"" in state["worker_failure"], state

    d.start()
    if counted < 3:  # else it was held before the stop
        d.wait_log(died_line(poison, "postq", counted + 1, 3), WAIT)
        d.wait_log(rf"{poison}: set aside in hold/ after 3 delivery worker failures", WAIT)
    assert listed(d, poison, "--queue", "hold")["worker_failures"] == 3
    d.stop()
