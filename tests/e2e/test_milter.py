"""ctx:milter() against a real daemon: milters on loopback, started by the
tests with their own configuration.

OpenDKIM (Debian's opendkim, its key made by opendkim-genkey) signs as a
milter and python3-dkim's verifier accepts the signature; clamav-milter, in
front of a clamd that knows the EICAR string (services.py), tags a clean
message and has an infected one quarantined; rspamd's proxy worker in
milter mode rejects GTUBE and adds its headers to a clean message. Small milters
written here, speaking protocol version 6, answer as a test needs: every
modification at the end of the message, a custom reply refusing one
recipient, a tempfail, a discard, garbage, and silence; each records the
packets it got, so the tests also see the conversation vsmtpd held (its
order, its macros, one connection for a whole SMTP connection).

The rules pick the milter by the first label of the client's HELO name and
call it at helo, mail, rcpt and preq.
"""
import os
import re
import socket
import struct
import subprocess
import threading
import time

import pytest

import rspamd_server
import services
import vsmtpd_e2e as e2e

RULES = r'''
local function name_of(ctx)
  return ctx.helo and ctx.helo:match("^([%w_]+)%.")
end

local function call(ctx)
  local name = name_of(ctx)
  if name == nil or name == "none" or name == "postq" then return status.next() end
  return ctx:milter(name).status
end

return {
  helo = { rule "milter" (call) },
  mail = { rule "milter" (call) },
  rcpt = { rule "milter" (call) },
  preq = {
    rule "milter" (function(ctx)
      local name = name_of(ctx)
      if name == nil or name == "none" or name == "postq" then return status.next() end
      local r = ctx:milter(name)
      ctx:append_header("X-Milter", r.action .. " failed=" .. tostring(r.failed) ..
        " changes=" .. tostring(r.changes))
      return r.status
    end),
  },
  postq = {
    rule "milter" (function(ctx)
      if name_of(ctx) ~= "postq" then return status.next() end
      local r = ctx:milter("edits")
      ctx:append_header("X-Postq-Milter", r.action)
      return r.status
    end),
  },
}
'''


def packet(code, data=b""):
    """A reply packet: length, code, data."""
    return struct.pack(">I", len(data) + 1) + code.encode() + data


def recv_exact(conn, n):
    """n bytes from conn, or None at the end."""
    out = b""
    while len(out) < n:
        try:
            chunk = conn.recv(n - len(out))
        except OSError:
            return None
        if not chunk:
            return None
        out += chunk
    return out


class Milter:
    """A milter on a loopback port. answer(cmd, data) gives the reply
    packets to a command (continue by default); ABORT, MACRO and QUIT get
    none. seen: [(connection number, command, data)] of every packet."""

    def __init__(self, answer=None, actions=0xff, protocol=0, optneg=None):
        self.answer = answer or (lambda cmd, data: [packet("c")])
        self.optneg = optneg or packet("O", struct.pack(">III", 6, actions, protocol))
        self.seen = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections),
                             daemon=True).start()

    def _serve(self, conn, number):
        try:
            self._talk(conn, number)
        except OSError:  # vsmtpd gave up on this milter: it closed the connection
            pass
        finally:
            conn.close()

    def _talk(self, conn, number):
        """Read commands and answer them until QUIT or the end."""
        while True:
            head = recv_exact(conn, 4)
            if head is None:
                return
            body = recv_exact(conn, struct.unpack(">I", head)[0])
            if body is None:
                return
            cmd, data = chr(body[0]), body[1:]
            self.seen.append((number, cmd, data))
            if cmd == "O":
                conn.sendall(self.optneg)
            elif cmd == "Q":
                return
            elif cmd not in "DA":
                for p in self.answer(cmd, data):
                    if p is None:  # hang
                        time.sleep(30)
                        return
                    conn.sendall(p)

    def commands(self, number=None):
        """The commands received, macros left out."""
        return "".join(c for n, c, _ in self.seen if number in (None, n) and c != "D")

    def macros(self, stage):
        """The macros sent for stage (a command letter), as a dict."""
        out = {}
        for _, cmd, data in self.seen:
            if cmd == "D" and data[:1] == stage.encode():
                parts = data[1:].split(b"\0")[:-1]
                out.update({parts[i].decode(): parts[i + 1].decode()
                            for i in range(0, len(parts) - 1, 2)})
        return out

    def close(self):
        self.stopped = True
        self.sock.close()


def edits(cmd, data):
    """Every modification at the end of the message."""
    if cmd != "E":
        return [packet("c")]
    return [packet("p"),
            packet("h", b"X-Added\0 by the milter\0"),
            packet("i", struct.pack(">I", 0) + b"X-Top\0 first\n\tand folded\0"),
            packet("m", struct.pack(">I", 1) + b"Subject\0 changed subject\0"),
            packet("m", struct.pack(">I", 1) + b"X-Remove\0\0"),
            packet("e", b"<new-sender@example.org>\0"),
            packet("+", b"<added@example.net>\0"),
            packet("-", b"<gone@example.net>\0"),
            packet("b", b"replaced body\r\n"),
            packet("b", b"in two pieces\r\n"),
            packet("c")]


def refuse_bad(cmd, data):
    """A custom reply refusing bad@example.net, continue otherwise."""
    if cmd == "R" and b"bad@" in data:
        return [packet("y", b"550 5.7.1 <bad@example.net>: not here\0")]
    return [packet("c")]


MESSAGE = ("From: Alice <alice@example.test>\r\n"
           "To: bob@example.net\r\n"
           "Subject: milter test\r\n"
           "X-Remove: this goes\r\n"
           "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
           "Message-ID: <milter@example.test>\r\n"
           "\r\n"
           "Hello Bob,\r\n"
           "through the milter.\r\n")


def opendkim_key(directory):
    """A key made by opendkim-genkey: its path and its DNS record's text."""
    subprocess.run(["opendkim-genkey", "-D", directory, "-d", "example.test", "-s", "sel"],
                   check=True, timeout=60, capture_output=True)
    with open(os.path.join(directory, "sel.txt")) as f:
        record = "".join(re.findall(r'"([^"]*)"', f.read()))
    return os.path.join(directory, "sel.private"), record.encode()


@pytest.fixture(scope="module")
def opendkim(workspace):
    directory = workspace.new_dir("opendkim")
    key, record = opendkim_key(directory)
    port = e2e.free_port()
    conf = os.path.join(directory, "opendkim.conf")
    with open(conf, "w") as f:
        f.write(f"Mode s\nDomain example.test\nSelector sel\nKeyFile {key}\n"
                f"Socket inet:{port}@127.0.0.1\nBackground no\nSyslog no\n"
                f"RequireSafeKeys false\nCanonicalization simple/simple\n"
                f"PidFile {directory}/opendkim.pid\nInternalHosts 127.0.0.1\n")
    proc = subprocess.Popen(["opendkim", "-f", "-x", conf], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(directory, "stderr"), "wb"))

    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    e2e.wait_until(listening, what="opendkim listening")
    yield port, record
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def clamav_milter(workspace):
    """clamav-milter in front of a clamd that knows the EICAR string
    (services.Clamd): infected messages quarantined, every message tagged."""
    directory = workspace.new_dir("clamav-milter")
    clamd = services.Clamd(workspace.new_dir("clamd-milter")).start()
    port = e2e.free_port()
    conf = os.path.join(directory, "clamav-milter.conf")
    with open(conf, "w") as f:
        f.write(f"MilterSocket inet:{port}@127.0.0.1\nClamdSocket tcp:127.0.0.1:{clamd.port}\n"
                "Foreground yes\nOnClean Accept\nOnInfected Quarantine\nAddHeader Replace\n"
                f"LogFile {directory}/clamav-milter.log\nTemporaryDirectory {directory}\n"
                f"PidFile {directory}/clamav-milter.pid\nReadTimeout 30\n")
    proc = subprocess.Popen(["clamav-milter", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(directory, "stderr"), "wb"),
                            start_new_session=True)

    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    e2e.wait_until(listening, what="clamav-milter listening")
    yield port
    proc.terminate()
    proc.wait(timeout=30)
    clamd.stop()


@pytest.fixture(scope="module")
def rspamd_proxy(workspace):
    """Debian's rspamd as a milter: its proxy worker in milter mode scanning
    by itself, with the packaged rules, its configuration and state in the
    test's folder (rspamd_server.Rspamd)."""
    with rspamd_server.Rspamd(workspace.new_dir("rspamd-proxy"), milter=True) as rspamd:
        yield rspamd.port


@pytest.fixture(scope="module")
def milters():
    ms = {"edits": Milter(edits, actions=0xff, protocol=0x100000),
          "refuse": Milter(refuse_bad),
          "tempfail": Milter(lambda c, d: [packet("t" if c == "E" else "c")]),
          "discard": Milter(lambda c, d: [packet("d" if c == "E" else "c")]),
          "garbage": Milter(optneg=b"this is no milter\r\n"),
          "silent": Milter(lambda c, d: [None]),
          "lenient": Milter(lambda c, d: [None]),
          # asks for no modification but sends one
          "rogue": Milter(edits, actions=0),
          # more changes than one message may get
          "flood": Milter(lambda c, d: [packet("h", b"X-Flood\0 x\0")] * 10001 + [packet("c")]
                          if c == "E" else [packet("c")])}
    yield ms
    for m in ms.values():
        m.close()


@pytest.fixture(scope="module")
def daemon(module_daemons, milters, opendkim, clamav_milter):
    settings = {}
    for name, m in milters.items():
        settings[f"service:{name}"] = {"kind": "milter", "address": f"127.0.0.1:{m.port}",
                                       "timeout": "2s"}
    settings["service:lenient"]["on_failure"] = "accept"
    settings["service:dkim"] = {"kind": "milter", "address": f"127.0.0.1:{opendkim[0]}"}
    settings["service:clamav"] = {"kind": "milter", "address": f"127.0.0.1:{clamav_milter}",
                                  "timeout": "20s"}
    return module_daemons(settings, rules=RULES, label="-milter")


def test_modifications_applied_and_the_conversation(daemon, milters):
    """Every modification applied; the conversation as a milter sees it."""
    m = milters["edits"]
    with daemon.client() as c:
        c.ehlo("edits.client.example")
        c.ehlo("edits.again.example")  # a new name: HELO again
        qid = c.send_message(MESSAGE, sender="alice@example.test",
                             rcpts=("bob@example.net", "gone@example.net"))
        qid2 = c.send_message(MESSAGE, sender="alice@example.test", rcpts=("bob@example.net",))
        c.quit()
    content, env = daemon.message(qid)
    head, body = content.split(b"\r\n\r\n", 1)
    assert head.startswith(b"X-Top: first\r\n\tand folded\r\nReceived: ")
    assert b"\r\nSubject: changed subject\r\n" in head
    assert b"X-Remove" not in head
    assert b"\r\nX-Added: by the milter\r\n" in head
    assert head.endswith(b"X-Milter: continue failed=false changes=9")
    assert body == b"replaced body\r\nin two pieces\r\n"
    assert env["mail_from"] == "new-sender@example.org"
    assert sorted(r["address"] for r in env["rcpts"]) == ["added@example.net", "bob@example.net"]
    assert daemon.message(qid2)[0].endswith(b"in two pieces\r\n")
    # one connection for the SMTP connection; both transactions in it
    assert m.connections == 1
    assert re.fullmatch(r"OCHHMRRTL+NBEMRTL+NBEQ?", m.commands()), m.commands()
    assert [d for _, c, d in m.seen if c == "H"] == [b"edits.client.example\0",
                                                      b"edits.again.example\0"]
    assert m.macros("C")["{client_addr}"] == "127.0.0.1"
    assert m.macros("C")["j"] == e2e.HOSTNAME
    assert m.macros("T")["i"] == qid2  # no queue id yet at MAIL, as with Postfix
    assert m.macros("M")["{mail_addr}"] == "alice@example.test"
    assert m.macros("R")["{rcpt_addr}"] == "bob@example.net"
    headers = [d for _, c, d in m.seen if c == "L"]
    # the milter asked for the leading space (SMFIP_HDR_LEADSPC): values as written
    assert b"Subject\0 milter test\0" in headers
    daemon.wait_log(r"service edits \(milter\): \d+ ms: continue; 9 changes")


def send_refused_bad(d, helo):
    """MESSAGE to bad@ and bob@example.net, from a client saying helo, where
    the milter "refuse" answers bad@ with a custom 550; its queue id."""
    with d.client() as c:
        c.ehlo(helo)
        c.mail("alice@example.test")
        r = c.expect("RCPT TO:<bad@example.net>", 550, "5.7.1")
        assert r.text.endswith("<bad@example.net>: not here"), r
        c.rcpt("bob@example.net")
        qid = e2e.queued_id(c.data(MESSAGE))
        c.quit()
    return qid


def test_custom_reply_refuses_one_recipient(daemon, milters):
    """A custom reply at RCPT refuses that recipient, with its text."""
    qid = send_refused_bad(daemon, "refuse.client.example")
    _, env = daemon.message(qid)
    assert [r["address"] for r in env["rcpts"]] == ["bob@example.net"]


def test_tempfail_and_discard(daemon, milters):
    """A tempfail refuses the message for now; a discard accepts it into
    the quarantine queue "discard"."""
    with daemon.client() as c:
        c.ehlo("tempfail.client.example")
        c.mail("alice@example.test")
        c.rcpt("bob@example.net")
        r = c.data(MESSAGE)
        assert (r.code, r.esc) == (451, "4.7.1")
    with daemon.client() as c:
        c.ehlo("discard.client.example")
        c.mail("alice@example.test")
        c.rcpt("bob@example.net")
        assert c.data(MESSAGE).code == 250
    qdir = os.path.join(daemon.spool, "quarantine", "discard")
    e2e.wait_until(lambda: os.path.isdir(qdir) and os.listdir(qdir), what="discarded message")


def test_failures_follow_on_failure(daemon, milters):
    """Garbage, silence, a change not asked for, too many changes: the
    service's on_failure (tempfail; accept for "lenient"), within the timeout."""
    for name in ("garbage", "silent", "rogue", "flood"):
        start = time.monotonic()
        with daemon.client() as c:
            r = c.cmd(f"EHLO {name}.client.example", esc=False)
            if name in ("rogue", "flood"):  # fails only at the end of the message
                assert r.code == 250
                c.mail("alice@example.test")
                c.rcpt("bob@example.net")
                r = c.data(MESSAGE)
            assert (r.code, r.text) == (451, f"4.7.1 {name} is unavailable, try again later") \
                or (r.code, r.esc) == (451, "4.7.1"), r
        assert time.monotonic() - start < 10
        daemon.wait_log(rf"service {name} \(milter\): \d+ ms: failed: .*on_failure=tempfail")
    daemon.wait_log(r"service rogue \(milter\): .*the milter sent addheader without asking")
    daemon.wait_log(r"service flood \(milter\): .*changes pass 10000 changes or 100 MB")
    # on_failure = accept: the message goes on, the result says it failed
    with daemon.client() as c:
        c.ehlo("lenient.client.example")
        qid = c.send_message(MESSAGE, sender="alice@example.test", rcpts=("bob@example.net",))
    assert b"X-Milter: accept failed=true" in daemon.message(qid)[0]


def test_opendkim_signs(daemon, opendkim):
    """OpenDKIM's signature, inserted with its folding, verifies."""
    import dkim
    _, record = opendkim
    with daemon.client() as c:
        c.ehlo("dkim.client.example")
        qid = c.send_message(MESSAGE, sender="alice@example.test", rcpts=("bob@example.net",))
    content, _ = daemon.message(qid)
    assert content.startswith(b"DKIM-Signature: v=1;") or b"\r\nDKIM-Signature: v=1;" in content
    assert dkim.verify(content, dnsfunc=lambda name, timeout=5: record), content


def test_clamav_milter_tags_and_quarantines(daemon):
    """clamav-milter: a clean message tagged, the EICAR one quarantined
    (SMFIR_QUARANTINE: the quarantine queue named after the service)."""
    with daemon.client() as c:
        c.ehlo("clamav.client.example")
        qid = c.send_message(MESSAGE, sender="alice@example.test", rcpts=("bob@example.net",))
        infected = MESSAGE + services.EICAR.decode() + "\r\n"
        c.mail("alice@example.test")
        c.rcpt("bob@example.net")
        r = c.data(infected)
        assert r.code == 250, r
        bad = e2e.queued_id(r)
        c.quit()
    content, _ = daemon.message(qid)
    assert b"\r\nX-Virus-Status: Clean\r\n" in content
    assert b"X-Milter: accept failed=false changes=2" in content
    path = os.path.join(daemon.spool, "quarantine", "clamav", bad)
    e2e.wait_until(lambda: os.path.exists(path), what="the infected message quarantined")
    content, _ = e2e.read_spool_file(path)
    assert b"X-Milter: quarantine failed=false" in content
    assert b"X-Virus-Status: Infected (EicarTest.UNOFFICIAL)" in content
    daemon.wait_log(r"service clamav \(milter\): \d+ ms: quarantine \(quarantined by "
                    r"clamav-milter\); 3 changes")


def test_rspamd_milter_proxy(module_daemons, rspamd_proxy):
    """rspamd's proxy in milter mode: GTUBE rejected, a clean message
    passes with the headers rspamd adds."""
    d = module_daemons({"service:rspamd": {"kind": "milter",
                                           "address": f"127.0.0.1:{rspamd_proxy}",
                                           "timeout": "30s"}},
                       rules=RULES, label="-milter-rspamd")
    with d.client() as c:
        c.ehlo("rspamd.client.example")
        qid = c.send_message(MESSAGE, sender="alice@example.test", rcpts=("bob@example.net",))
        c.mail("alice@example.test")
        c.rcpt("bob@example.net")
        r = c.data(MESSAGE + services.GTUBE.decode() + "\r\n")
        assert (r.code, r.esc) == (554, "5.7.1") or (r.code // 100, r.esc) == (5, "5.7.1"), r
        c.quit()
    content, _ = d.message(qid)
    assert b"\r\nX-Spamd-Result: default: False" in content, content
    assert b"\r\nX-Spam-Status: No" in content, content


def test_whole_conversation_at_postq(daemon, milters):
    """At postq one call holds the whole conversation, on its own connection."""
    m = milters["edits"]
    before = m.connections
    with daemon.client() as c:
        c.ehlo("postq.client.example")
        c.send_message(MESSAGE, sender="alice@example.test", rcpts=("gone@example.net",))

    def rewritten():
        for qid in daemon.queued():
            try:
                content, env = daemon.message(qid)
            except OSError:
                continue
            if b"X-Postq-Milter" in content:
                return content, env
        return None
    content, env = e2e.wait_until(rewritten, what="the copy the postq rules changed")
    assert b"\r\nX-Postq-Milter: continue\r\n" in content
    assert content.endswith(b"\r\n\r\nreplaced body\r\nin two pieces\r\n")
    assert env["mail_from"] == "new-sender@example.org"
    assert [r["address"] for r in env["rcpts"]] == ["added@example.net"]
    assert m.connections == before + 1
    assert re.fullmatch(r"OCHMRTL+NBEQ", m.commands(m.connections)), m.commands(m.connections)


def test_recipe_opendkim_milter(module_daemons, opendkim):
    """rules/examples/opendkim-milter: a trusted client's mail is signed."""
    import dkim
    port, record = opendkim
    with open(os.path.join(e2e.SOURCE_DIR, "rules", "examples", "opendkim-milter",
                           "main.lua")) as f:
        rules = f.read()
    d = module_daemons({"rules": {"trusted_networks": "127.0.0.0/8"},
                        "service:opendkim": {"kind": "milter", "address": f"127.0.0.1:{port}",
                                             "timeout": "10s", "on_failure": "accept"}},
                       rules=rules, label="-milter-recipe")
    with d.client() as c:
        c.ehlo("client.example")
        qid = c.send_message(MESSAGE, sender="alice@example.test", rcpts=("bob@example.net",))
    content, _ = d.message(qid)
    assert content.startswith(b"DKIM-Signature: v=1;")
    assert dkim.verify(content, dnsfunc=lambda name, timeout=5: record), content


def test_listener_milters(module_daemons, milters):
    """[listener:NAME] milters: run before the rules of each stage, without a rule."""
    settings = {f"service:{n}": {"kind": "milter", "address": f"127.0.0.1:{milters[n].port}",
                                 "timeout": "2s"} for n in ("refuse", "edits")}
    settings["listener:smtp"] = {"milters": "refuse, edits"}
    d = module_daemons(settings, label="-milter-listener")
    qid = send_refused_bad(d, "client.example")
    content, env = d.message(qid)
    assert content.endswith(b"\r\n\r\nreplaced body\r\nin two pieces\r\n")
    assert env["mail_from"] == "new-sender@example.org"
    d.wait_log(r"service refuse \(milter\): \d+ ms: reject: 550 5\.7\.1 <bad@example\.net>")


def test_listener_milters_must_be_milters(module_daemons, milters):
    """A listener's milters must be services of kind milter."""
    d = module_daemons({"service:clam": {"kind": "clamd", "address": "127.0.0.1:9"},
                        "listener:smtp": {"milters": "clam"}}, label="-milter-bad",
                       start=False)
    out = subprocess.run([d.binary, "-t", "-c", d.conf_path], capture_output=True, timeout=30)
    assert out.returncode != 0
    assert b'[listener:smtp] milters: "clam" is not a [service:NAME] of kind milter' in \
        out.stderr + out.stdout
