"""ctx:rspamd() in the real daemon: the session process (confined: seccomp,
Landlock) posts the message to rspamd and acts on the reply at preq.

Against Debian's rspamd (rspamd_server.py, one per module): GTUBE is
refused with 550 5.7.1 and the connection closed (status.deny), a clean
message is queued with the headers rspamd's milter_headers module asks for,
and the envelope reached rspamd (symbols that need it matched). Against a
small HTTP server in this file, which answers what the test wants and keeps
each request: the request header fields vsmtpd sends, greylist and soft
reject, the subject and header changes, apply = false. And the failures: a
server that accepts and never answers (tempfail within the timeout), one
that answers garbage (on_failure = accept: queued, with the error), a
closed port (on_failure = reject).

Last, the recipe rules/examples/rspamd-preq in the daemon, rspamd's
answers coming from the small server.

The preq rule calls the service that the message's X-Service field names
and records the result in an X-Result field, so the queued copy shows it.
"""
import http.server
import json
import os
import socket
import threading
import time

import pytest

import rspamd_server
import vsmtpd_e2e as e2e

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

RULES = r'''
return {
  preq = {
    rule "rspamd" (function(ctx)
      local name = ctx:get_header("X-Service") or "rspamd"
      local r = ctx:rspamd(name, {apply = ctx:get_header("X-Apply") ~= "no"})
      local symbols = {}
      for k in pairs(r.symbols or {}) do symbols[#symbols + 1] = k end
      table.sort(symbols)
      ctx:append_header("X-Result", string.format(
        "action=%s score=%s failed=%s skipped=%s status=%s error=%s symbols=%s",
        tostring(r.action), tostring(r.score), tostring(r.failed), tostring(r.skipped),
        tostring(r.status), tostring(r.error), table.concat(symbols, ",")))
      return r.status
    end),
  },
}
'''

# What the fake rspamd answers, by request path.
REPLIES = {
    "/greylist": {"action": "greylist", "score": 4.0, "required_score": 15.0},
    "/soft": {"action": "soft reject", "score": 9.0, "required_score": 15.0},
    "/subject": {
        "action": "rewrite subject", "score": 8.5, "required_score": 15.0,
        "subject": "*** SPAM *** lunch",
        "symbols": {"FAKE": {"name": "FAKE", "score": 8.5, "options": ["a", "b"]}},
        "milter": {"add_headers": {"X-Spam": "Yes",
                                   "X-Top": {"value": "first", "order": 0},
                                   "X-Two": [{"value": "one"}, "two"]},
                   "remove_headers": {"X-Old": 0, "X-Spam": 0}},
    },
}


class FakeRspamd(http.server.ThreadingHTTPServer):
    """Answers REPLIES[path] as rspamd would; /garbage answers 200 with text
    that is not JSON. Keeps (path, headers, body) of every request."""

    daemon_threads = True

    def __init__(self):
        self.requests = []
        self.next_reply = None  # what /next answers

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(h):
                body = h.rfile.read(int(h.headers["Content-Length"]))
                self.requests.append((h.path, h.headers, body))
                if h.path == "/garbage":
                    out = b"this is not rspamd"
                elif h.path == "/next":
                    out = json.dumps(self.next_reply).encode()
                else:
                    out = json.dumps(REPLIES[h.path]).encode()
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(out)))
                h.end_headers()
                h.wfile.write(out)

            def log_message(h, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Silent:
    """Accepts connections, reads, never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture(scope="module")
def rspamd(workspace):
    with rspamd_server.Rspamd(workspace.new_dir("rspamd")) as server:
        yield server


@pytest.fixture(scope="module")
def fake():
    server = FakeRspamd()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def silent():
    server = Silent()
    yield server
    server.close()


@pytest.fixture(scope="module")
def mta(module_daemons, rspamd, fake, silent):
    def svc(address, **kw):
        return {"kind": "rspamd", "address": address, **kw}
    settings = {
        "service:rspamd": svc(rspamd.address, timeout="20s"),
        "service:greylist": svc(fake.address, path="/greylist"),
        "service:soft": svc(fake.address, path="/soft"),
        "service:subject": svc(fake.address, path="/subject", password="sesame"),
        "service:garbage": svc(fake.address, path="/garbage", on_failure="accept"),
        "service:silent": svc(silent.address, timeout="2s"),
        "service:closed": svc(f"127.0.0.1:{e2e.CLOSED_PORT}", on_failure="reject"),
    }
    return module_daemons(settings, rules=RULES)


def message(service, body="Just a normal message about lunch.", extra=""):
    return (f"From: Sender <sender@example.org>\r\nTo: rcpt@example.net\r\n"
            f"Subject: lunch\r\nMessage-ID: <m1@example.org>\r\n"
            f"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nX-Service: {service}\r\n{extra}\r\n"
            f"{body}\r\n")


def result(mta, qid):
    content, _ = mta.message(qid)
    head = content.split(b"\r\n\r\n", 1)[0].decode()
    for line in head.replace("\r\n ", " ").replace("\r\n\t", "\t").split("\r\n"):
        if line.startswith("X-Result: "):
            return line[len("X-Result: "):], head
    raise AssertionError(f"no X-Result in {head}")


def test_gtube_is_rejected(mta):
    with mta.session() as c:
        c.mail()
        c.rcpt()
        reply = c.data(message("rspamd", body=GTUBE))
        assert reply.code == 550 and reply.esc == "5.7.1", reply
        assert "Spam message rejected" in reply.text
        c.expect_eof()
    mta.wait_log(r"service rspamd \(rspamd\): \d+ ms: reject \(score")


def test_clean_message_gets_rspamd_headers(mta):
    with mta.session() as c:
        qid = c.send_message(message("rspamd"))
    res, head = result(mta, qid)
    assert "action=no action" in res and "failed=false" in res and "status=next" in res
    # the envelope went along: rspamd compared it with the header
    assert "FROM_EQ_ENVFROM" in res and "TO_MATCH_ENVRCPT_ALL" in res
    assert "RCPT_COUNT_ONE" in res
    assert "\nX-Spamd-Result: default: False [" in head
    assert "\nX-Rspamd-Server: " in head
    assert "\nX-Spam-Status: No, score=" in head
    mta.wait_log(r"service rspamd \(rspamd\): \d+ ms: no action \(score .*headers changed")


def test_request_header_fields(mta, fake):
    fake.requests.clear()
    with mta.session() as c:
        c.mail("sender@example.org")
        c.rcpt("a@example.net")
        c.rcpt("b@example.net")
        reply = c.data(message("subject"))
        qid = e2e.queued_id(reply)
    path, headers, body = fake.requests[-1]
    assert path == "/subject"
    assert headers["IP"] == "127.0.0.1"
    assert headers["Helo"] == e2e.CLIENT_NAME
    assert headers["From"] == "sender@example.org"
    assert headers.get_all("Rcpt") == ["a@example.net", "b@example.net"]
    assert headers["Password"] == "sesame"
    assert headers["MTA-Name"] == e2e.HOSTNAME
    assert headers["Queue-Id"]
    assert b"\r\nX-Service: subject\r\n" in body and body.endswith(b"about lunch.\r\n")
    assert b"Received: " in body  # the message as the rules see it


def test_subject_and_header_changes(mta):
    with mta.session() as c:
        qid = c.send_message(message("subject", extra="X-Old: 1\r\nX-Spam: maybe\r\n"))
    res, head = result(mta, qid)
    assert "action=rewrite subject" in res and "score=8.5" in res and "symbols=FAKE" in res
    lines = head.split("\r\n")
    assert lines[0] == "X-Top: first"  # an order: at the top
    assert "Subject: *** SPAM *** lunch" in lines
    assert "X-Old: 1" not in lines and "X-Spam: maybe" not in lines
    assert lines.index("X-Spam: Yes") < lines.index("X-Two: one") < lines.index("X-Two: two")


def test_apply_false_leaves_the_message(mta):
    with mta.session() as c:
        qid = c.send_message(message("subject", extra="X-Apply: no\r\nX-Old: 1\r\n"))
    res, head = result(mta, qid)
    assert "action=rewrite subject" in res
    assert "\nSubject: lunch\r" in head + "\r" and "\nX-Old: 1" in head
    assert "X-Top" not in head and "X-Two" not in head


@pytest.mark.parametrize("service,code,esc,text", [
    ("greylist", 451, "4.7.1", "Greylisted"),
    ("soft", 451, "4.7.1", "Try again later"),
])
def test_greylist_and_soft_reject(mta, service, code, esc, text):
    with mta.session() as c:
        c.mail()
        c.rcpt()
        reply = c.data(message(service))
        assert (reply.code, reply.esc) == (code, esc) and text in reply.text, reply
        c.quit()  # a reject: the session goes on


def test_silent_server_tempfails_within_timeout(mta):
    with mta.session() as c:
        c.mail()
        c.rcpt()
        start = time.monotonic()
        reply = c.data(message("silent"))
        took = time.monotonic() - start
        assert (reply.code, reply.esc) == (451, "4.7.1"), reply
        assert "silent is unavailable" in reply.text
        assert 1.5 < took < 5, took
    mta.wait_log(r"service silent \(rspamd\): \d+ ms: failed: timeout after 2000 ms; "
                 r"on_failure=tempfail")


def test_garbage_with_on_failure_accept(mta):
    with mta.session() as c:
        qid = c.send_message(message("garbage"))
    res, _ = result(mta, qid)
    assert "failed=true" in res and "error=the reply is not JSON" in res
    assert "status=next" in res


def test_closed_port_with_on_failure_reject(mta):
    with mta.session() as c:
        c.mail()
        c.rcpt()
        reply = c.data(message("closed"))
        assert (reply.code, reply.esc) == (550, "5.7.1"), reply
        assert "closed is unavailable" in reply.text


def test_unix_socket_address_refused(daemons):
    d = daemons({"service:r": {"kind": "rspamd", "address": "/run/rspamd/rspamd.sock"}},
                start=False)
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert "rspamd is reached over TCP" in d.log()


# ------------------------------------------------- rules/examples/rspamd-preq

@pytest.fixture(scope="module")
def recipe(module_daemons, fake):
    with open(os.path.join(e2e.SOURCE_DIR, "rules", "examples", "rspamd-preq", "main.lua")) as f:
        rules = f.read()
    settings = {"service:rspamd": {"kind": "rspamd", "address": fake.address, "path": "/next"},
                "rules": {"trusted_networks": "192.0.2.0/24"}}
    return module_daemons(settings, rules=rules, label="-recipe")


@pytest.mark.parametrize("action,code,esc,text", [
    ("reject", 550, "5.7.1", "Spam message rejected (score 20.0)"),
    ("greylist", 451, "4.7.1", "Greylisted"),
    ("soft reject", 451, "4.7.1", "Greylisted"),
])
def test_recipe_refusals(recipe, fake, action, code, esc, text):
    fake.next_reply = {"action": action, "score": 20.0, "required_score": 15.0}
    with recipe.session() as c:
        c.mail()
        c.rcpt()
        reply = c.data(message("rspamd"))
        assert (reply.code, reply.esc) == (code, esc) and text in reply.text, reply


@pytest.mark.parametrize("action,tagged", [("add header", True), ("no action", False)])
def test_recipe_tags_and_adds_rspamd_headers(recipe, fake, action, tagged):
    fake.next_reply = {"action": action, "score": 7.2, "required_score": 15.0,
                       "milter": {"add_headers": {"X-Spamd-Result": "default: False [7.20]"}}}
    with recipe.session() as c:
        qid = c.send_message(message("rspamd"))
    content, _ = recipe.message(qid)
    head = content.split(b"\r\n\r\n", 1)[0].decode()
    assert "\r\nX-Spamd-Result: default: False [7.20]" in head
    assert ("\r\nX-Spam: Yes\r\n" in head) == tagged
    assert ("X-Spam-Score: 7.20 / 15.00" in head) == tagged


# ------------------------------------------------------------------ at postq

POSTQ_RULES = r'''
return {
  postq = {
    rule "rspamd" (function(ctx) return ctx:rspamd("subject").status end),
  },
}
'''


def test_postq_in_the_delivery_worker(daemons, fake):
    """The confined delivery worker calls rspamd too; its changes are made
    to the queued message, which is queued again."""
    d = daemons({"service:subject": {"kind": "rspamd", "address": fake.address,
                                     "path": "/subject"}}, rules=POSTQ_RULES)
    with d.session() as c:
        qid = c.send_message(message("subject", extra="X-Old: 1\r\n"))
    m = d.wait_log(rf"{qid}: changed by the postq rules: queued again as ([0-9A-F]{{16}})$")
    content, _ = d.message(m[-1].group(1))
    lines = content.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    assert lines[0] == "X-Top: first"
    assert "Subject: *** SPAM *** lunch" in lines and "X-Old: 1" not in lines
    d.wait_log(rf"{qid}: service subject \(rspamd\): \d+ ms: rewrite subject \(score 8.50")
