"""ctx:spamd against SpamAssassin's spamd, started for this module on
loopback with a home of its own and local tests only, and against servers
that hang or answer garbage.

One daemon serves every test: its preq rule checks with the service named
by the recipient's local part ("sa@example.com" checks with [service:sa];
"report-sa" asks for the report too), refuses spam with 550 and records
the result in the message's variables otherwise.
"""
import re

import pytest

import services
import vsmtpd_e2e as e2e

TIMEOUT_MS = 1000  # the misbehaving services' timeout

RULES = r'''
return {
  preq = {
    rule "spamassassin" (function(ctx)
      local name = ctx.rcpt_list[1].local_part
      local report = name:sub(1, 7) == "report-"
      if report then name = name:sub(8) end
      local r = ctx:spamd(name, {report = report})
      if r.is_spam then
        return status.reject(code(550, "5.7.1", "spam, score " .. r.score ..
                                " (" .. table.concat(r.symbols, " ") .. ")"))
      end
      ctx:set("is_spam", tostring(r.is_spam))
      ctx:set("score", tostring(r.score))
      ctx:set("threshold", tostring(r.threshold))
      ctx:set("symbols", table.concat(r.symbols or {}, " "))
      ctx:set("report", tostring(r.report))
      ctx:set("failed", tostring(r.failed))
      ctx:set("error", tostring(r.error))
      return r.status
    end),
  },
}
'''


@pytest.fixture(scope="module")
def spamd(workspace):
    s = services.Spamd(workspace.new_dir("spamd")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bad():
    yield from services.bad_servers("hang", "garbage")


@pytest.fixture(scope="module")
def d(module_daemons, spamd, bad):
    def svc(address, on_failure="tempfail", **kw):
        return dict({"kind": "spamd", "address": address, "on_failure": on_failure}, **kw)

    timeouts = {"timeout": f"{TIMEOUT_MS}ms", "connect_timeout": f"{TIMEOUT_MS}ms"}
    settings = {
        "service:sa": svc(f"127.0.0.1:{spamd.port}", user="vsmtpd"),
        "service:hang-acc": svc(f"127.0.0.1:{bad['hang'].port}", "accept", **timeouts),
        "service:garbage-temp": svc(f"127.0.0.1:{bad['garbage'].port}", "tempfail", **timeouts),
        "service:garbage-rej": svc(f"127.0.0.1:{bad['garbage'].port}", "reject", **timeouts),
    }
    return module_daemons(settings, rules=RULES)


def message(body):
    return (b"From: alice@example.org\r\nTo: someone@example.com\r\n"
            b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n"
            b"Subject: hello\r\n\r\n" + body + b"\r\n")


def send(d, rcpt, body, expect_code=250):
    """Send one message to rcpt; the final reply and the seconds it took."""
    return services.send_timed(d, rcpt, message(body), expect_code)


def test_gtube_is_refused(d):
    before = len(d.queued())
    r, _ = send(d, "sa@example.com", b"Buy now: " + services.GTUBE, expect_code=550)
    assert r.esc == "5.7.1" and "spam, score 10" in r.text and "GTUBE" in r.text, r
    assert len(d.queued()) == before
    d.wait_log(r"service sa \(spamd\): \d+ ms: spam, score 10\d\d\.\d / 5\.0$")


def test_ham_is_queued_with_its_score(d):
    r, _ = send(d, "sa@example.com", b"Dear Bob, see you on Monday. Alice")
    qid = e2e.queued_id(r)
    v = services.tx_vars(d, qid)
    assert v["is_spam"] == "false" and float(v["score"]) < 5 and v["threshold"] == "5.0", v
    assert v["report"] == "" and v["failed"] == "false", v
    d.wait_log(rf"{qid}: service sa \(spamd\): \d+ ms: not spam, score -?\d+\.\d / 5\.0$")


def test_report(d):
    r, _ = send(d, "report-sa@example.com", b"Dear Bob, see you on Monday. Alice")
    qid = e2e.queued_id(r)
    v = services.tx_vars(d, qid)
    assert "Content analysis details" in v["report"], v
    for name in v["symbols"].split():
        assert re.search(rf"^\s*-?[\d.]+ {name}\b", v["report"], re.M), (name, v["report"])


def test_failure_tempfail(d):
    before = len(d.queued())
    r, took = send(d, "garbage-temp@example.com", b"hello", expect_code=451)
    assert r.esc == "4.7.1" and "garbage-temp is unavailable, try again later" in r.text, r
    assert len(d.queued()) == before
    d.wait_log(r"service garbage-temp \(spamd\): \d+ ms: failed: spamd's answer does not start "
               r"with a SPAMD/ status line; on_failure=tempfail$")


def test_failure_reject(d):
    r, _ = send(d, "garbage-rej@example.com", b"hello", expect_code=550)
    assert "Rejected: garbage-rej is unavailable" in r.text, r


def test_failure_accept_within_the_timeout(d):
    r, took = send(d, "hang-acc@example.com", services.GTUBE)
    qid = e2e.queued_id(r)
    assert took < TIMEOUT_MS / 1000 + 2, took
    v = services.tx_vars(d, qid)
    assert v["failed"] == "true" and v["error"] == "read: timeout after 1000 ms", v
    assert v["is_spam"] == "nil", v
    d.wait_log(rf"warning: {qid}: service hang-acc \(spamd\): \d+ ms: failed: read: timeout "
               r"after 1000 ms; on_failure=accept$")
