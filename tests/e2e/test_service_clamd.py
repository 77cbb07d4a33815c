"""ctx:clamd against Debian's clamd, started for this module on loopback
with a signature database of its own (the EICAR test string), and against
servers that hang, reset or answer garbage.

One daemon serves every test: its preq rule scans with the service named
by the recipient's local part ("clamav@example.com" scans with
[service:clamav]), quarantines an infected message as the seed's example
does, and otherwise returns the result's status; a recipient "postq-NAME"
scans at postq instead, in the delivery worker. Each call logs one line.
"""
import os
import re

import pytest

import services
import vsmtpd_e2e as e2e

TIMEOUT_MS = 1000  # the misbehaving services' timeout

RULES = r'''
local function record(ctx, r)
  ctx:set("clean", tostring(r.clean))
  ctx:set("virus", tostring(r.virus))
  ctx:set("failed", tostring(r.failed))
  ctx:set("error", tostring(r.error))
end

return {
  preq = {
    rule "antivirus" (function(ctx)
      local name = ctx.rcpt_list[1].local_part
      if name:sub(1, 6) == "postq-" then return status.next() end
      local r = ctx:clamd(name)
      record(ctx, r)
      if r.virus then return ctx:quarantine("virus") end
      return r.status
    end),
  },
  postq = {
    rule "antivirus" (function(ctx)
      local name = ctx.rcpt_list[1].local_part
      if name:sub(1, 6) ~= "postq-" then return status.next() end
      local r = ctx:clamd(name:sub(7))
      if r.virus then return ctx:quarantine("virus_queue") end
      return r.status
    end),
  },
}
'''


@pytest.fixture(scope="module")
def clamd(workspace):
    c = services.Clamd(workspace.new_dir("clamd"), stream_max="64K").start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def bad():
    yield from services.bad_servers("hang", "reset", "garbage")


@pytest.fixture(scope="module")
def d(module_daemons, clamd, bad):
    def svc(address, on_failure="tempfail", timeout=None):
        s = {"kind": "clamd", "address": address, "on_failure": on_failure}
        if timeout:
            s.update(timeout=f"{timeout}ms", connect_timeout=f"{timeout}ms")
        return s

    hang = f"127.0.0.1:{bad['hang'].port}"
    reset = f"127.0.0.1:{bad['reset'].port}"
    garbage = f"127.0.0.1:{bad['garbage'].port}"
    settings = {
        "service:clamav": svc(f"127.0.0.1:{clamd.port}"),
        "service:clamunix": svc(clamd.unix_path),
        "service:small": dict(svc(f"127.0.0.1:{clamd.port}"), max_size="1k"),
        "service:hang-temp": svc(hang, "tempfail", TIMEOUT_MS),
        "service:hang-acc": svc(hang, "accept", TIMEOUT_MS),
        "service:reset-acc": svc(reset, "accept", TIMEOUT_MS),
        "service:reset-temp": svc(reset, "tempfail", TIMEOUT_MS),
        "service:garbage-rej": svc(garbage, "reject", TIMEOUT_MS),
        "service:garbage-temp": svc(garbage, "tempfail", TIMEOUT_MS),
        "service:refused-temp": svc(f"127.0.0.1:{e2e.CLOSED_PORT}", "tempfail", TIMEOUT_MS),
    }
    return module_daemons(settings, rules=RULES)


def message(body):
    return (b"From: alice@example.org\r\nTo: someone@example.com\r\n"
            b"Subject: scan me\r\n\r\n" + body + b"\r\n")


def send(d, rcpt, body, expect_code=250):
    """Send one message to rcpt; the final reply and the seconds it took."""
    return services.send_timed(d, rcpt, message(body), expect_code)


def test_clean_message_is_queued(d):
    r, _ = send(d, "clamav@example.com", b"nothing to see here")
    qid = e2e.queued_id(r)
    assert qid in d.queued()
    v = services.tx_vars(d, qid)
    assert v["clean"] == "true" and v["virus"] == "nil" and v["failed"] == "false", v
    d.wait_log(rf"^vsmtpd smtp\[\d+\]: info: {qid}: service clamav \(clamd\): \d+ ms: clean$")


def test_infected_message_is_quarantined(d):
    r, _ = send(d, "clamav@example.com", b"see the attachment: " + services.EICAR)
    qid = e2e.queued_id(r)
    path = os.path.join(d.spool, "quarantine", "virus", qid)
    e2e.wait_until(lambda: os.path.exists(path), what=path)
    assert qid not in d.queued()
    v = services.tx_vars(d, qid, os.path.join("quarantine", "virus"))
    assert v["clean"] == "false" and v["virus"] == services.EICAR_VIRUS, v
    d.wait_log(rf"{qid}: service clamav \(clamd\): \d+ ms: infected \({services.EICAR_VIRUS}\)$")


def test_unix_socket_from_the_confined_session(d):
    """The session process, confined, connects to clamd's Unix socket."""
    r, _ = send(d, "clamunix@example.com", b"infected: " + services.EICAR)
    qid = e2e.queued_id(r)
    assert os.path.exists(os.path.join(d.spool, "quarantine", "virus", qid))
    d.wait_log(rf"{qid}: service clamunix \(clamd\): \d+ ms: infected")
    assert "Unix sockets (saslauthd, services)" in d.log()


def test_postq_scan_in_the_delivery_worker(d):
    """The seed's example: at postq, an infected message goes to virus_queue."""
    r, _ = send(d, "postq-clamav@example.com", b"later: " + services.EICAR)
    qid = e2e.queued_id(r)
    path = os.path.join(d.spool, "quarantine", "virus_queue", qid)
    e2e.wait_until(lambda: os.path.exists(path), what=path)
    d.wait_log(rf"{qid}: service clamav \(clamd\): \d+ ms: infected \({services.EICAR_VIRUS}\)$")


def test_too_big_is_skipped(d):
    r, _ = send(d, "small@example.com", (b"x" * 70 + b"\r\n") * 30 + services.EICAR)
    qid = e2e.queued_id(r)
    assert qid in d.queued()
    v = services.tx_vars(d, qid)
    assert v["clean"] == "nil" and v["virus"] == "nil" and v["failed"] == "false", v
    d.wait_log(rf"{qid}: service small \(clamd\): \d+ ms: skipped: \d+ bytes, more than max_size 1024$")


@pytest.mark.parametrize("name,what", [
    ("hang-temp", r"read: timeout after 1000 ms"),
    ("reset-temp", r"(read|write): Connection reset by peer"),
    ("garbage-temp", r"clamd: unexpected answer \"HELLO\? 42\""),
    ("refused-temp", r"connect to 127\.0\.0\.1:1: Connection refused"),
])
def test_failure_tempfail(d, name, what):
    before = len(d.queued())
    r, took = send(d, f"{name}@example.com", b"hello", expect_code=451)
    assert r.esc == "4.7.1" and f"{name} is unavailable, try again later" in r.text, r
    assert took < TIMEOUT_MS / 1000 + 2, took
    assert len(d.queued()) == before  # nothing queued
    d.wait_log(rf"service {name} \(clamd\): \d+ ms: failed: {what}; on_failure=tempfail$")


def test_stream_over_clamds_limit_is_a_failure(d):
    """clamd answers ERROR past its StreamMaxLength and closes: the call
    fails with clamd's words, on_failure decides (tempfail here)."""
    r, _ = send(d, "clamav@example.com", (b"y" * 70 + b"\r\n") * 1500, expect_code=451)
    assert "clamav is unavailable" in r.text, r
    d.wait_log(r"service clamav \(clamd\): \d+ ms: failed: clamd: INSTREAM size limit exceeded\. "
               r"ERROR; on_failure=tempfail$")


def test_failure_accept_lets_it_through(d):
    for name, what in (("hang-acc", "read: timeout after 1000 ms"),
                       ("reset-acc", "Connection reset by peer")):
        r, took = send(d, f"{name}@example.com", services.EICAR)
        qid = e2e.queued_id(r)
        assert qid in d.queued()
        assert took < TIMEOUT_MS / 1000 + 2, took
        v = services.tx_vars(d, qid)
        assert v["failed"] == "true" and what in v["error"] and v["clean"] == "nil", v
        d.wait_log(rf"warning: {qid}: service {name} \(clamd\): \d+ ms: failed: .*; "
                   r"on_failure=accept$")


def test_failure_reject(d):
    before = len(d.queued())
    r, _ = send(d, "garbage-rej@example.com", b"hello", expect_code=550)
    assert r.esc == "5.7.1" and "Rejected: garbage-rej is unavailable" in r.text, r
    assert len(d.queued()) == before
    d.wait_log(r"service garbage-rej \(clamd\): \d+ ms: failed: .*; on_failure=reject$")


def test_one_log_line_per_call(d):
    r, _ = send(d, "clamav@example.com", b"count me")
    qid = e2e.queued_id(r)
    d.wait_log(rf"{qid}: service clamav")
    assert len(re.findall(rf"{qid}: service ", d.log())) == 1
