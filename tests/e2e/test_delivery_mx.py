"""Delivery to MX hosts, end to end: DNS from dnsmasq, mail to smtp-sinks
and to a second vsmtpd standing for the remote MX.

Every MX host is a loopback address (127.0.0.2, .3, .5) and all of them
listen on the same port, the sending daemon's [delivery] mx_port; relay_host
is empty, so mail for other domains goes by MX. The names live under .test
in a dnsmasq that answers nothing else:

  two.test       MX 10 mx1.two.test (127.0.0.2), MX 20 mx2.two.test (127.0.0.3)
  fallback.test  MX 10 mx1.fallback.test (127.0.0.4, nothing listens there),
                 MX 20 mx2.fallback.test (127.0.0.3)
  aonly.test     no MX, an A record: 127.0.0.2 (the implicit MX)
  nullmx.test    the null MX of RFC 7505
  vs.test        MX 10 mx.vs.test (127.0.0.5): the second vsmtpd, with TLS
  nx.test        nothing: NXDOMAIN

smtp-sink offers no SMTPUTF8; the second vsmtpd does, and STARTTLS. It
keeps what it receives in its queue (its own deliveries go to a closed
port), where the test reads the envelope and the content. Each test uses a
sender of its own, so that its bounces land in a maildir of their own.
"""
import json
import os
import re
import socket

import pytest

import dnsserver
import peers
import test_delivery as dlv
import tlscerts
import vsmtpd_e2e as e2e

MX_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
RECORDS = [
    dnsserver.mx_record("two.test", "mx1.two.test", 10),
    dnsserver.mx_record("two.test", "mx2.two.test", 20),
    dnsserver.host_record("mx1.two.test", "127.0.0.2"),
    dnsserver.host_record("mx2.two.test", "127.0.0.3"),
    dnsserver.mx_record("fallback.test", "mx1.fallback.test", 10),
    dnsserver.mx_record("fallback.test", "mx2.fallback.test", 20),
    dnsserver.host_record("mx1.fallback.test", "127.0.0.4"),
    dnsserver.host_record("mx2.fallback.test", "127.0.0.3"),
    dnsserver.host_record("aonly.test", "127.0.0.2"),
    dnsserver.mx_record("nullmx.test", ".", 0),
    dnsserver.mx_record("vs.test", "mx.vs.test", 10),
    dnsserver.host_record("mx.vs.test", "127.0.0.5"),
]
REMOTE_HOSTNAME = "mx.vs.test"
REMOTE_RECEIVED_RE = re.compile(
    rb"\AReceived: from mx\.test\.example \(\[127\.0\.0\.1\]\)\r\n"
    rb"(?:\t\(using (?P<version>TLSv1\.[23]) with cipher (?P<cipher>[A-Za-z0-9_-]+)"
    rb" \(\d+/\d+ bits\)\)\r\n)?"
    rb"\tby mx\.vs\.test \(vsmtpd\) with (?P<proto>E?SMTPS?) id (?P<id>[0-9A-F]{16})"
    rb"(?:\r\n\tfor <[^>\r\n]+>)?; [^\r\n]+\r\n")
SENDER_RECEIVED_RE = re.compile(
    rb"\AReceived: from client\.test\.example \(\[127\.0\.0\.1\]\)\r\n"
    rb"\tby mx\.test\.example \(vsmtpd\) with (?P<proto>\S+) id (?P<id>[0-9A-F]{16})"
    rb"(?:\r\n\tfor <[^>\r\n]+>)?; [^\r\n]+\r\n")


def shared_port():
    """A port free on every MX host address at once."""
    for _ in range(50):
        port = e2e.free_port(MX_HOSTS[0])
        socks = []
        try:
            for host in MX_HOSTS:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no port free on all the MX host addresses")


@pytest.fixture(scope="module")
def mx_port():
    return shared_port()


@pytest.fixture(scope="module")
def dns(workspace):
    server = dnsserver.Dnsmasq(workspace.new_dir("mx-dnsmasq"), RECORDS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mx_sinks(workspace, mx_port):
    """smtp-sinks on 127.0.0.2 and 127.0.0.3, the port of every MX."""
    made = {}
    for host, name in (("127.0.0.2", "mx1.two.test"), ("127.0.0.3", "mx2.two.test")):
        made[host] = peers.SmtpSink(workspace.new_dir(f"mx-sink-{host}"), host=host,
                                    port=mx_port, hostname=name).start()
    yield made
    for sink in made.values():
        sink.stop()


@pytest.fixture(scope="module")
def remote(module_daemons, workspace, mx_port):
    """A second vsmtpd on 127.0.0.5, the MX of vs.test, offering STARTTLS;
    it keeps what it receives queued."""
    certs = tlscerts.make_certs(workspace.new_dir("mx-certs"))
    settings = {"server": {"hostname": REMOTE_HOSTNAME},
                "tls": {"certificate": certs.server.cert, "key": certs.server.key}}
    return module_daemons(settings, addresses=f"127.0.0.5:{mx_port}", label="-remote")


def mx_settings(dns_address, mx_port, **extra):
    return {"relay_host": "", "dns_servers": dns_address, "mx_port": str(mx_port),
            "dns_timeout": "2s", "connect_timeout": "5s", **extra}


@pytest.fixture(scope="module")
def sender(module_daemons, dns, mx_port):
    """The daemon under test: MX delivery through dnsmasq."""
    return dlv.mail_daemon(module_daemons, mx_settings(dns.address, mx_port), label="-sender")


def for_rcpt(sink, rcpt):
    """The messages sink got for rcpt."""
    return [m for m in sink.messages() if rcpt in m.recipients]


def wait_for_rcpt(sink, rcpt, timeout=dlv.WAIT):
    return e2e.wait_until(lambda: for_rcpt(sink, rcpt), timeout, interval=0.05,
                          what=f"a message for {rcpt} at {sink.target}")


def remote_message(remote, rcpt, timeout=dlv.WAIT):
    """(content, envelope) of the message the remote vsmtpd queued for rcpt."""
    def find():
        for qid in remote.queued():
            try:
                content, env = remote.message(qid)
            except FileNotFoundError:
                continue
            if rcpt in [r["address"] for r in env["rcpts"]]:
                return content, env
        return None
    return e2e.wait_until(find, timeout, interval=0.05, what=f"{rcpt} in the remote's queue")


def bounce_report(d, sender_addr):
    """The delivery-status text of the one bounce in sender_addr's maildir."""
    (raw,) = dlv.wait_maildir(d, sender_addr)
    assert raw.startswith(b"Return-Path: <>\n"), raw[:200]
    return raw


# ---------------------------------------------------------------- MX choice

def test_the_best_mx_gets_the_mail(sender, mx_sinks):
    qid = dlv.send(sender, "best@example.org", ["bob@two.test"], dlv.message("best mx"))
    (got,) = wait_for_rcpt(mx_sinks["127.0.0.2"], "bob@two.test")
    assert got.sender == "best@example.org" and got.helo == "mx.test.example"
    assert b"\r\nSubject: best mx\r\n" in got.content
    relay, reply = dlv.rcpt_log(sender, qid, "bob@two.test", "sent")
    assert relay == "mx1.two.test[127.0.0.2]", relay
    assert reply.startswith("250 2.0.0"), reply
    dlv.wait_removed(sender, qid)
    assert for_rcpt(mx_sinks["127.0.0.3"], "bob@two.test") == []


def test_a_dead_best_mx_falls_back_to_the_next(sender, mx_sinks):
    qid = dlv.send(sender, "fallback@example.org", ["bob@fallback.test"],
                   dlv.message("fallback"))
    (got,) = wait_for_rcpt(mx_sinks["127.0.0.3"], "bob@fallback.test")
    assert got.sender == "fallback@example.org"
    relay, _ = dlv.rcpt_log(sender, qid, "bob@fallback.test", "sent")
    assert relay == "mx2.fallback.test[127.0.0.3]", relay
    dlv.wait_removed(sender, qid)
    # one attempt did it: the refused connection is no reason to defer
    assert f"{qid}: to=<bob@fallback.test>, relay=mx1" not in sender.log()
    assert "status=deferred" not in "\n".join(
        l for l in sender.log().splitlines() if qid in l)


def test_a_domain_without_mx_gets_mail_at_its_address(sender, mx_sinks):
    qid = dlv.send(sender, "implicit@example.org", ["bob@aonly.test"], dlv.message("implicit"))
    (got,) = wait_for_rcpt(mx_sinks["127.0.0.2"], "bob@aonly.test")
    assert got.sender == "implicit@example.org"
    relay, _ = dlv.rcpt_log(sender, qid, "bob@aonly.test", "sent")
    assert relay == "aonly.test[127.0.0.2]", relay
    dlv.wait_removed(sender, qid)


def test_recipients_of_several_domains_go_to_their_own_mx(sender, mx_sinks):
    qid = dlv.send(sender, "split@example.org", ["carol@two.test", "dave@fallback.test"],
                   dlv.message("split"))
    (a,) = wait_for_rcpt(mx_sinks["127.0.0.2"], "carol@two.test")
    (b,) = wait_for_rcpt(mx_sinks["127.0.0.3"], "dave@fallback.test")
    assert a.recipients == ["carol@two.test"] and b.recipients == ["dave@fallback.test"]
    dlv.wait_removed(sender, qid)


# ---------------------------------------------------------------- DNS failures

def test_a_null_mx_fails_at_once_with_5_1_10(sender):
    who = "nullmx@example.org"
    qid = dlv.send(sender, who, ["bob@nullmx.test"], dlv.message("null mx"))
    _, reply = dlv.rcpt_log(sender, qid, "bob@nullmx.test", "failed")
    dlv.bounce_id(sender, qid)
    dlv.wait_removed(sender, qid)
    # no retry: the first attempt was the last
    assert len(re.findall(rf"{qid}: to=<bob@nullmx\.test>", sender.log())) == 1
    _, _, _, rcpts, _ = dlv.parse_bounce(bounce_report(sender, who))
    (r,) = rcpts
    assert r["Final-Recipient"] == "rfc822; bob@nullmx.test"
    assert r["Action"] == "failed" and r["Status"] == "5.1.10", r.items()


def test_a_domain_that_does_not_exist_fails_with_5_1_2(sender):
    who = "nxdomain@example.org"
    qid = dlv.send(sender, who, ["bob@nx.test"], dlv.message("nxdomain"))
    dlv.rcpt_log(sender, qid, "bob@nx.test", "failed")
    dlv.wait_removed(sender, qid)
    assert len(re.findall(rf"{qid}: to=<bob@nx\.test>", sender.log())) == 1
    _, _, _, rcpts, _ = dlv.parse_bounce(bounce_report(sender, who))
    (r,) = rcpts
    assert r["Final-Recipient"] == "rfc822; bob@nx.test"
    assert r["Action"] == "failed" and r["Status"] == "5.1.2", r.items()


def test_a_dns_timeout_defers(daemons, mx_port):
    silent = dnsserver.SilentUDP()
    try:
        d = dlv.mail_daemon(daemons, mx_settings(silent.address, mx_port, dns_timeout="1s"))
        qid = dlv.send(d, "timeout@example.org", ["bob@two.test"], dlv.message("dns timeout"))
        _, reply = dlv.rcpt_log(d, qid, "bob@two.test", "deferred", count=2)
        assert "timed out" in reply, reply
        assert silent.received() > 0, "the daemon never asked the DNS server"
        with open(os.path.join(d.spool, "state", qid)) as f:
            state = json.load(f)
        assert [(r["status"], r["enhanced"]) for r in state["rcpts"]] == [("deferred", "4.4.3")]
        out = dlv.ctl(d, "queue", "list")
        assert qid in out, out
        log = d.log()
        assert f"{qid}: to=<bob@two.test>, relay=" in log
        assert "status=failed" not in log and "non-delivery notification" not in log
        assert qid in dlv.spool_files(d, "queue")
    finally:
        silent.close()


# ---------------------------------------------------------------- a vsmtpd as the MX

def test_a_second_vsmtpd_receives_with_both_received_fields(sender, remote):
    body = dlv.message("to vsmtpd")
    qid = dlv.send(sender, "relay@example.org", ["bob@vs.test"], body)
    content, env = remote_message(remote, "bob@vs.test")
    relay, reply = dlv.rcpt_log(sender, qid, "bob@vs.test", "sent")
    assert relay == "mx.vs.test[127.0.0.5]", relay
    m = re.match(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$", reply)
    assert m is not None, reply
    remote_id = m.group(1)
    dlv.wait_removed(sender, qid)

    first = REMOTE_RECEIVED_RE.match(content)
    assert first is not None, content[:400]
    assert first.group("id").decode() == remote_id
    rest = content[first.end():]
    second = SENDER_RECEIVED_RE.match(rest)
    assert second is not None, content[:600]
    assert second.group("id").decode() == qid and second.group("proto") == b"ESMTP"
    assert rest[second.end():] == body
    assert env["mail_from"] == "relay@example.org"
    assert [r["address"] for r in env["rcpts"]] == ["bob@vs.test"]
    assert env["helo"] == "mx.test.example"


@pytest.mark.parametrize("mx_tls", ["may", "none"])
def test_starttls_to_an_mx_that_offers_it(daemons, dns, mx_port, remote, mx_tls):
    d = dlv.mail_daemon(daemons, mx_settings(dns.address, mx_port, mx_tls=mx_tls))
    rcpt = f"tls-{mx_tls}@vs.test"
    qid = dlv.send(d, "tls@example.org", [rcpt], dlv.message(f"tls {mx_tls}"))
    content, env = remote_message(remote, rcpt)
    dlv.rcpt_log(d, qid, rcpt, "sent")
    m = REMOTE_RECEIVED_RE.match(content)
    assert m is not None, content[:400]
    if mx_tls == "may":
        assert env["tls_version"] in ("TLSv1.2", "TLSv1.3"), env
        assert env["tls_cipher"], env
        assert env["protocol"] == "ESMTPS", env
        assert m.group("proto") == b"ESMTPS" and m.group("version").decode() == env["tls_version"]
    else:
        assert env.get("tls_version") is None and env["protocol"] == "ESMTP", env
        assert m.group("proto") == b"ESMTP" and m.group("version") is None


# ---------------------------------------------------------------- SMTPUTF8

UTF8_BODY = "From: Dörte <alice@example.org>\r\nSubject: Grüße\r\n\r\nÜmlaute.\r\n".encode()


def test_smtputf8_to_a_peer_without_it_fails_with_5_6_7(sender, mx_sinks):
    who = "utf8@example.org"
    rcpt = "dörte@two.test"
    qid = dlv.send(sender, who, [rcpt], UTF8_BODY, " SMTPUTF8 BODY=8BITMIME")
    _, reply = dlv.rcpt_log(sender, qid, rcpt, "failed")
    assert "SMTPUTF8" in reply, reply
    dlv.bounce_id(sender, qid)
    dlv.wait_removed(sender, qid)
    raw = bounce_report(sender, who)
    # an SMTPUTF8 message gets a global report (RFC 6533)
    assert re.search(rb"report-type=\"?global-delivery-status", raw), raw[:1500]
    assert "Final-Recipient: utf-8; dörte@two.test".encode() in raw, raw
    assert b"\nAction: failed\n" in raw and b"\nStatus: 5.6.7\n" in raw, raw
    assert for_rcpt(mx_sinks["127.0.0.2"], rcpt) == []


def test_smtputf8_to_a_vsmtpd_is_delivered(sender, remote):
    rcpt = "dörte@vs.test"
    qid = dlv.send(sender, "utf8ok@example.org", [rcpt], UTF8_BODY, " SMTPUTF8 BODY=8BITMIME")
    content, env = remote_message(remote, rcpt)
    dlv.rcpt_log(sender, qid, rcpt, "sent")
    assert env["smtputf8"] == 1, env
    assert content.endswith(UTF8_BODY)
    dlv.wait_removed(sender, qid)
