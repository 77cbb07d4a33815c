"""`vsmtpctl queue ...` and `vsmtpctl quarantine ...` against the running
daemon: listing with filters, showing a message, hold / release / remove /
requeue / flush, the quarantine commands, the --json output, and the exit
status and message when the daemon cannot be reached or refuses the user.

Mail goes to a relay on a loopback port chosen before the daemon starts:
while nothing listens there (or Postfix's smtp-sink answers 4xx) every
delivery is deferred, and retry_min is an hour, so a deferred message is
only tried again when a command makes it due (flush, release, requeue).
"""
import base64
import grp
import json
import os
import re
import time

import pytest

import peers
import vsmtpd_e2e as e2e

RETRY = "3600"  # seconds: no retry comes by itself within a test
SOFT_REPLY = "450 4.2.0 Mailbox busy, try later"
ADMIN_DENIED = "Permission denied (run as root or as a member of the admin group)"
STRANGER_UID = 4242  # a uid with no account: neither root nor the daemon's user
LIST_HEADER = "-Queue ID-------- --Size-- ----Arrival Time---- -Sender/Recipient-------"
RCPT_INDENT = " " * 49


# ---------------------------------------------------------------- helpers

def relay_settings(port, **extra):
    """A daemon that relays everything to 127.0.0.1:port and retries hourly."""
    delivery = {"relay_host": f"127.0.0.1:{port}", "retry_min": RETRY, "retry_max": RETRY}
    delivery.update(extra)
    return {"delivery": delivery}


def ctl(d, *args, expect=0, **kw):
    """vsmtpctl against d; asserts its exit status."""
    r = d.vsmtpctl(*args, **kw)
    assert r.returncode == expect, (f"vsmtpctl {' '.join(args)}: exit {r.returncode}, "
                                    f"not {expect}\nstdout: {r.stdout[:4000]!r}\n"
                                    f"stderr: {r.stderr!r}")
    return r


def ctl_json(d, *args, expect=0):
    """The parsed --json answer of a command."""
    r = ctl(d, *args, "--json", expect=expect)
    lines = r.stdout.decode("utf-8").splitlines()
    assert len(lines) == 1, f"--json printed {len(lines)} lines: {r.stdout[:2000]!r}"
    return json.loads(lines[0])


def listing(d, *filters):
    """{id: entry} of `queue list --json` with these options."""
    ans = ctl_json(d, "queue", "list", *filters)
    assert ans["ok"] is True and ans["count"] == len(ans["messages"]), ans
    assert ans["total_size"] == sum(m["size"] for m in ans["messages"]), ans
    return {m["id"]: m for m in ans["messages"]}


def send(d, sender, rcpts, body="Subject: queue test\r\n\r\nHello.\r\n", params=""):
    """One message over SMTP; its queue id."""
    with d.session() as c:
        c.expect(f"MAIL FROM:<{sender}>{params}", 250)
        for r in rcpts:
            c.rcpt(r)
        return e2e.queued_id(c.data(body))


def wait_deferred(d, ids, timeout=e2e.IO_TIMEOUT):
    """Wait until the worker has tried and deferred each of ids; their list entries."""
    def ready():
        got = listing(d)
        if all(i in got and got[i]["queue"] == "deferred" and got[i]["attempts"] >= 1
               for i in ids):
            return got
        return None
    return e2e.wait_until(ready, timeout, interval=0.1, what=f"{ids} to be deferred")


def wait_gone(d, qid, timeout=e2e.IO_TIMEOUT):
    """Wait until qid has left the queue (delivered)."""
    e2e.wait_until(lambda: qid not in listing(d), timeout, interval=0.1,
                   what=f"{qid} to leave the queue")


def spool_files(d, sub):
    path = os.path.join(d.spool, sub)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def state_of(d, qid):
    with open(os.path.join(d.spool, "state", qid)) as f:
        return json.load(f)


@pytest.fixture
def sinks(workspace):
    """Make smtp-sinks on ports chosen in advance; all stopped at the end."""
    made = []

    def make(port, **kw):
        sink = peers.SmtpSink(workspace.new_dir(f"sink-{port}"), **kw)
        # SmtpSink.start picks peers.free_port(): the daemon's relay_host
        # names this port already, so hand it that one.
        real = peers.free_port
        peers.free_port = lambda host="127.0.0.1": port
        try:
            sink.start()
        finally:
            peers.free_port = real
        made.append(sink)
        return sink
    yield make
    for sink in made:
        sink.stop()


# ---------------------------------------------------------------- list

def test_an_empty_queue_lists_as_empty(daemons):
    d = daemons()
    assert ctl(d, "queue", "list").stdout == b"Mail queue is empty\n"
    assert ctl_json(d, "queue", "list") == {"ok": True, "messages": [], "total_size": 0,
                                            "count": 0, "truncated": False}
    assert ctl(d, "quarantine", "list").stdout == b"Quarantine is empty\n"


def test_deferred_messages_are_listed_with_the_last_reply(daemons, sinks):
    port = e2e.free_port()
    sinks(port, soft_reject=("RCPT",), soft_reply=SOFT_REPLY)
    d = daemons(settings=relay_settings(port))
    a = send(d, "alice@example.org", ["bob@example.net"])
    b = send(d, "", ["dave@example.net", "erin@example.net"])
    got = wait_deferred(d, [a, b])
    now = time.time()
    for qid in (a, b):
        e = got[qid]
        assert e["size"] == len(d.message(qid)[0])
        assert abs(e["arrival"] - now) < 60
        assert e["next_attempt"] > now + 1800, e
        assert SOFT_REPLY in e["last_reply"], e
        assert all(r["status"] == "deferred" and SOFT_REPLY in r["reply"]
                   for r in e["recipients"]), e
    assert got[a]["sender"] == "alice@example.org"
    assert got[b]["sender"] == ""
    assert [r["address"] for r in got[b]["recipients"]] == ["dave@example.net",
                                                          "erin@example.net"]

    out = ctl(d, "queue", "list").stdout.decode()
    lines = out.splitlines()
    assert lines[0] == LIST_HEADER
    # deferred: no mark after the id; the null sender shows as <>
    assert re.search(rf"^{a}  +{got[a]['size']} .{{20}}  alice@example.org$", out, re.M), out
    assert re.search(rf"^{b}  +{got[b]['size']} .{{20}}  <>$", out, re.M), out
    i = lines.index(next(l for l in lines if l.startswith(b)))
    assert lines[i + 1].startswith("(") and SOFT_REPLY in lines[i + 1], out
    assert lines[i + 2:i + 4] == [RCPT_INDENT + "dave@example.net", RCPT_INDENT + "erin@example.net"]
    kbytes = (got[a]["size"] + got[b]["size"] + 1023) // 1024
    assert lines[-1] == f"-- {kbytes} Kbytes in 2 Requests.", out


def test_list_filters_by_sender_recipient_queue_and_age(daemons):
    d = daemons(settings={"delivery": {"retry_min": RETRY, "retry_max": RETRY}})
    a = send(d, "Alice@Example.org", ["bob@example.net"])
    c = send(d, "carol@example.com", ["dave@example.net", "Erin@Example.net"])
    n = send(d, "", ["postmaster@example.net"])
    assert set(listing(d)) == {a, c, n}
    assert set(listing(d, "--sender", "alice@EXAMPLE")) == {a}
    assert set(listing(d, "--sender", "example.")) == {a, c}
    assert set(listing(d, "--recipient", "ERIN@")) == {c}
    assert set(listing(d, "--recipient", "example.net")) == {a, c, n}
    assert set(listing(d, "--sender", "carol", "--recipient", "bob")) == set()
    assert set(listing(d, "--min-age", "1h")) == set()
    assert set(listing(d, "--max-age", "2d")) == {a, c, n}
    assert set(listing(d, "--min-age", "0s", "--max-age", "5m")) == {a, c, n}
    out = ctl(d, "queue", "list", "--recipient", "nobody-has-this").stdout
    assert out == b"Mail queue is empty\n"

    ctl(d, "queue", "hold", a)
    assert set(listing(d, "--queue", "hold")) == {a}
    assert a not in set(listing(d, "--queue", "active")) | set(listing(d, "--queue", "deferred"))
    assert set(listing(d, "--queue", "active")) | set(listing(d, "--queue", "deferred")) == {c, n}
    out = ctl(d, "queue", "list", "--sender", "alice").stdout.decode()
    assert re.search(rf"^{a}! ", out, re.M), out  # '!' marks a held message
    assert out.endswith("in 1 Request.\n"), out

    for bad in (("--queue", "bogus"), ("--min-age", "soon"), ("--max-age", "1y"),
                ("--frobnicate",), ("extra",)):
        r = ctl(d, "queue", "list", *bad, expect=2)
        assert r.stderr.startswith(b"vsmtpctl: ") or b"usage:" in r.stderr, r.stderr


# ---------------------------------------------------------------- show

def test_show_prints_the_envelope_the_state_and_the_message(daemons):
    d = daemons(settings={"delivery": {"retry_min": RETRY, "retry_max": RETRY}})
    body = "Subject: show me\r\nX-Test: 1\r\n\r\nFirst line.\r\nLast line.\r\n"
    qid = send(d, "alice@example.org", ["bob@example.net", "carol@example.net"], body)
    content, envelope = d.message(qid)

    ans = ctl_json(d, "queue", "show", qid)
    assert ans["ok"] is True and ans["id"] == qid
    assert ans["queue"] in ("active", "deferred")
    assert ans["envelope"] == envelope
    assert ans["content_encoding"] == "text" and ans["truncated"] is False
    assert ans["content"].encode("utf-8") == content
    assert ans["size"] == len(content)

    out = ctl(d, "queue", "show", qid).stdout
    text = out.decode("utf-8")
    assert text.startswith(f"Queue ID:   {qid}\n"), text
    assert "Sender:     <alice@example.org>\n" in text
    assert re.search(r"^  bob@example.net: \w+", text, re.M), text
    assert re.search(r"^  carol@example.net: \w+", text, re.M), text
    assert out.endswith(b"\n\n" + content), out


def test_show_sends_a_message_that_is_not_utf8_in_base64(daemons):
    d = daemons()
    body = b"Subject: latin-1\r\n\r\ncaf\xe9 cr\xe8me\r\n"
    with d.session() as c:
        c.expect("MAIL FROM:<alice@example.org> BODY=8BITMIME", 250)
        c.rcpt("bob@example.net")
        qid = e2e.queued_id(c.data(body))
    content, _ = d.message(qid)
    ans = ctl_json(d, "queue", "show", qid)
    assert ans["content_encoding"] == "base64"
    assert base64.b64decode(ans["content"]) == content
    assert ctl(d, "queue", "show", qid).stdout.endswith(b"\n\n" + content)


def test_show_truncates_a_large_message_at_one_mebibyte(daemons):
    d = daemons()
    line = "x" * 998 + "\r\n"
    qid = send(d, "alice@example.org", ["bob@example.net"],
               "Subject: big\r\n\r\n" + line * 1600)
    content, _ = d.message(qid)
    assert len(content) > 1 << 20
    ans = ctl_json(d, "queue", "show", qid)
    assert ans["truncated"] is True and ans["size"] == len(content)
    shown = ans["content"].encode("utf-8")
    assert len(shown) == 1 << 20 and content.startswith(shown)
    assert ctl(d, "queue", "show", qid).stdout.endswith(
        f"\n[... truncated: {len(content)} bytes in all]\n".encode())


def test_show_of_an_unknown_or_invalid_id(daemons):
    d = daemons()
    r = ctl(d, "queue", "show", "000660CD977706E6", expect=1)
    assert r.stderr == b"vsmtpctl: 000660CD977706E6: no such message\n"
    ans = ctl_json(d, "queue", "show", "000660CD977706E6", expect=1)
    assert ans["ok"] is False and "no such message" in ans["error"]
    r = ctl(d, "queue", "show", "../../etc/passwd", expect=2)
    assert b"not a queue id" in r.stderr


# ---------------------------------------------------------------- hold, release, flush

def test_a_held_message_waits_for_its_release(daemons, sinks):
    port = e2e.free_port()  # nothing listens yet: every attempt is refused
    d = daemons(settings=relay_settings(port))
    a = send(d, "alice@example.org", ["bob@example.net"])
    b = send(d, "carol@example.org", ["dave@example.net"])
    wait_deferred(d, [a, b])

    assert ctl(d, "queue", "hold", a).stdout == f"{a}: held\n".encode()
    assert spool_files(d, "hold") == [a] and a not in spool_files(d, "queue")
    assert listing(d)[a]["queue"] == "hold"
    assert re.search(rf"^{a}! ", ctl(d, "queue", "list").stdout.decode(), re.M)
    r = ctl(d, "queue", "hold", a, expect=1)
    assert r.stderr == f"vsmtpctl: {a}: already held\n".encode()
    d.wait_log(rf"queue\[\d+\]: info: control: uid 0 held {a}$")

    sink = sinks(port)
    r = ctl(d, "queue", "flush")
    assert r.stdout == b"flushed: every deferred message is due now\n"
    got = sink.wait_messages(1)
    assert got[0].recipients == ["dave@example.net"]
    wait_gone(d, b)
    r = ctl(d, "queue", "flush", a, expect=1)
    assert r.stderr == f"vsmtpctl: {a}: held: release it first\n".encode()
    time.sleep(1)  # a delivery of the held message would have come by now
    assert len(sink.messages()) == 1 and spool_files(d, "hold") == [a]

    assert ctl(d, "queue", "release", a).stdout == f"{a}: released\n".encode()
    got = sink.wait_messages(2)  # due at once: long before retry_min
    assert got[1].recipients == ["bob@example.net"]
    wait_gone(d, a)
    assert spool_files(d, "hold") == []
    r = ctl(d, "queue", "release", a, expect=1)
    assert r.stderr == f"vsmtpctl: {a}: no such message\n".encode()
    d.wait_log(rf"queue\[\d+\]: info: control: uid 0 released {a}$")


def test_flush_delivers_deferred_mail_at_once(daemons, sinks):
    port = e2e.free_port()
    busy = sinks(port, soft_reject=("RCPT",), soft_reply=SOFT_REPLY)
    d = daemons(settings=relay_settings(port))
    ids = [send(d, f"s{i}@example.org", [f"r{i}@example.net"]) for i in range(3)]
    wait_deferred(d, ids)
    busy.stop()
    sink = sinks(port)  # the destination works again; the retry is an hour away

    assert ctl(d, "queue", "flush", ids[0]).stdout == f"{ids[0]}: flushed\n".encode()
    got = sink.wait_messages(1)
    assert got[0].recipients == ["r0@example.net"]
    wait_gone(d, ids[0])
    assert set(listing(d)) == set(ids[1:])

    start = time.monotonic()
    ctl(d, "queue", "flush")
    got = sink.wait_messages(3)
    assert time.monotonic() - start < e2e.IO_TIMEOUT
    assert sorted(m.recipients[0] for m in got) == ["r0@example.net", "r1@example.net",
                                               "r2@example.net"]
    e2e.wait_until(lambda: ctl(d, "queue", "list").stdout == b"Mail queue is empty\n",
                   interval=0.1, what="an empty queue")


# ---------------------------------------------------------------- requeue, remove

def test_requeue_forgets_the_attempts(daemons, sinks):
    port = e2e.free_port()
    d = daemons(settings=relay_settings(port))
    a = send(d, "alice@example.org", ["bob@example.net", "carol@example.net"])
    wait_deferred(d, [a])
    # Held, the worker leaves it alone, so its state can be read as requeue left it.
    ctl(d, "queue", "hold", a)
    before = state_of(d, a)
    assert before["attempts"] >= 1 and before["next_attempt"] > time.time()
    assert ctl(d, "queue", "requeue", a).stdout == f"{a}: requeued\n".encode()
    after = state_of(d, a)
    assert after["attempts"] == 0 and after["next_attempt"] == 0 and "postq" not in after
    assert [r["status"] for r in after["rcpts"]] == ["pending", "pending"]
    assert all("reply" not in r for r in after["rcpts"])
    d.wait_log(rf"control: uid 0 requeued {a}$")

    ctl(d, "queue", "release", a)
    wait_deferred(d, [a])  # tried again at once, and refused again
    sink = sinks(port)
    ctl(d, "queue", "requeue", a)
    got = sink.wait_messages(1)
    assert sorted(got[0].recipients) == ["bob@example.net", "carol@example.net"]
    wait_gone(d, a)
    r = ctl(d, "queue", "requeue", a, expect=1)
    assert r.stderr == f"vsmtpctl: {a}: no such message\n".encode()


def test_remove_deletes_messages_wherever_they_are(daemons):
    d = daemons(settings={"delivery": {"retry_min": RETRY, "retry_max": RETRY}})
    a = send(d, "alice@example.org", ["bob@example.net"])
    b = send(d, "carol@example.org", ["dave@example.net"])
    c = send(d, "erin@example.org", ["frank@example.net"])
    ctl(d, "queue", "hold", c)
    r = ctl(d, "queue", "remove", a, c, "000660CD977706E6", expect=1)
    assert r.stdout == f"{a}: removed\n{c}: removed\n".encode()
    assert r.stderr == b"vsmtpctl: 000660CD977706E6: no such message\n"
    assert set(listing(d)) == {b}
    for sub in ("queue", "hold", "state"):
        assert a not in spool_files(d, sub) and c not in spool_files(d, sub)
    d.wait_log(rf"control: uid 0 removed {a}$")
    ctl(d, "queue", "remove", "not-an-id", expect=2)
    ctl(d, "queue", "remove", expect=2)


# ---------------------------------------------------------------- quarantine

QUARANTINE_RULES = r'''
local function spam(ctx)
  if tostring(ctx.mail_from):find("spammer", 1, true) then
    return status.quarantine("spam")
  end
  return status.next()
end

return {
  preq = { rule "quarantine spammers" (spam) },
  -- a released message must not meet this again
  postq = { rule "quarantine spammers after queueing" (spam) },
}
'''


def test_quarantine_list_release_and_remove(daemons, sinks):
    port = e2e.free_port()
    sink = sinks(port)
    d = daemons(settings=relay_settings(port), rules=QUARANTINE_RULES)
    s1 = send(d, "spammer@example.org", ["victim@example.net"])
    s2 = send(d, "spammer@example.org", ["other@example.net"])
    ok = send(d, "alice@example.org", ["bob@example.net"])
    assert sink.wait_messages(1)[0].recipients == ["bob@example.net"]
    assert spool_files(d, "quarantine/spam") == sorted([s1, s2])

    ans = ctl_json(d, "quarantine", "list")
    assert [m["id"] for m in ans["messages"]] == sorted([s1, s2])
    assert all(m["queue"] == "quarantine" and m["quarantine"] == "spam" and
               m["sender"] == "spammer@example.org" for m in ans["messages"])
    assert ctl_json(d, "quarantine", "list", "spam") == ans
    assert ctl(d, "quarantine", "list", "other").stdout == b"Quarantine is empty\n"
    out = ctl(d, "quarantine", "list").stdout.decode()
    assert out.count("(quarantine spam)\n") == 2 and "2 Requests." in out, out
    # not part of the queue, unless asked for
    assert s1 not in listing(d) and set(listing(d, "--queue", "quarantine")) == {s1, s2}
    assert ok not in listing(d)

    r = ctl(d, "quarantine", "release", "spam", s1)
    assert r.stdout == f"{s1}: released to the queue\n".encode()
    got = sink.wait_messages(2)  # delivered, not quarantined again by postq
    assert got[1].recipients == ["victim@example.net"]
    wait_gone(d, s1)
    assert spool_files(d, "quarantine/spam") == [s2]
    d.wait_log(rf"control: uid 0 released {s1} from quarantine spam$")

    assert ctl(d, "quarantine", "remove", "spam", s2).stdout == f"{s2}: removed\n".encode()
    assert spool_files(d, "quarantine/spam") == []
    assert ctl(d, "quarantine", "list").stdout == b"Quarantine is empty\n"
    r = ctl(d, "quarantine", "release", "spam", s2, expect=1)
    assert r.stderr == f"vsmtpctl: {s2}: no such message in quarantine spam\n".encode()
    ctl(d, "quarantine", "list", "../queue", expect=2)
    ctl(d, "quarantine", "release", "spam", expect=2)
    time.sleep(0.5)
    assert len(sink.messages()) == 2


# ---------------------------------------------------------------- reaching the daemon

def test_exit_3_when_the_daemon_is_not_running(daemons):
    d = daemons(start=False)
    expected = (f"vsmtpctl: cannot reach vsmtpd at {d.control_path}: No such file or directory "
                f"(is vsmtpd running?)\n").encode()
    r = ctl(d, "queue", "list", expect=3)
    assert r.stderr == expected and r.stdout == b""
    d.start()
    ctl(d, "queue", "list")
    d.stop()
    # The socket file may outlive the daemon when its user may not remove it.
    r = ctl(d, "queue", "flush", expect=3)
    assert re.fullmatch(rf"vsmtpctl: cannot reach vsmtpd at {re.escape(d.control_path)}: "
                        r"(No such file or directory|Connection refused) "
                        r"\(is vsmtpd running\?\)\n", r.stderr.decode()), r.stderr


def test_usage_errors_exit_2(daemons):
    d = daemons(start=False)
    for args in (("queue",), ("queue", "frobnicate"), ("queue", "show"),
                 ("queue", "hold"), ("queue", "show", "A", "B"), ("quarantine", "release", "x"),
                 ("queue", "remove", "--sender", "x", "000660CD977706E6")):
        r = ctl(d, *args, expect=2)
        assert b"usage:" in r.stderr or r.stderr.startswith(b"vsmtpctl: "), (args, r.stderr)


def _stranger_test_needs_root():
    if not e2e.IS_ROOT:
        pytest.skip("not root: cannot run vsmtpctl as a user other than the tests' own")


def test_a_user_outside_the_admin_group_is_refused(daemons):
    _stranger_test_needs_root()
    d = daemons()
    _, _, _, daemon_gid = e2e.run_user()
    # The socket's mode keeps the stranger out; with the socket's group the
    # connection gets through, and the master refuses it.
    expected = f"vsmtpctl: cannot reach vsmtpd at {d.control_path}: {ADMIN_DENIED}\n".encode()
    for gid in (STRANGER_UID, daemon_gid):
        r = ctl(d, "queue", "list", uid=STRANGER_UID, gid=gid, expect=3)
        assert r.stderr == expected and r.stdout == b"", (gid, r.stderr)
    d.wait_log(rf"control: refused a connection from uid {STRANGER_UID}")
    assert "control: uid 4242" not in d.log()


def test_a_member_of_the_admin_group_is_allowed(daemons):
    _stranger_test_needs_root()
    group = next((g for g in ("adm", "staff", "users") if _group(g)), None)
    if group is None:
        pytest.skip("no adm, staff or users group on this system to use as admin_group")
    d = daemons(settings={"server": {"admin_group": group}})
    qid = send(d, "alice@example.org", ["bob@example.net"])
    r = ctl(d, "queue", "list", uid=STRANGER_UID, gid=_group(group).gr_gid)
    assert qid in r.stdout.decode()
    r = ctl(d, "queue", "remove", qid, uid=STRANGER_UID, gid=_group(group).gr_gid)
    d.wait_log(rf"control: uid {STRANGER_UID} removed {qid}$")
    r = ctl(d, "queue", "list", uid=STRANGER_UID + 1, gid=STRANGER_UID + 1, expect=3)
    assert ADMIN_DENIED.encode() in r.stderr


def _group(name):
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None
