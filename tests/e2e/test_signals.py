"""Signals: SIGHUP reloads the configuration for new sessions (and survives
a broken file); SIGTERM lets a message in flight finish, turns everyone else
away and stops the daemon by itself."""
import os
import signal
import socket
import time

import pytest

import vsmtpd_e2e as e2e
from vsmtpd_e2e import HOSTNAME, queued_id


def assert_no_new_sessions(d):
    """Connections are refused once the listeners are closed; one that the
    kernel took just before is reset, never greeted."""
    def refused():
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        except ConnectionRefusedError:
            return True
        with s:
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
        assert not data.startswith(b"220"), "a new session was greeted during shutdown"
        return False
    e2e.wait_until(refused, what="new connections to be refused")


def greeting(d):
    with d.client() as c:
        return str(c.greeting)


def test_sighup_applies_a_new_banner_to_new_sessions(daemons):
    d = daemons()
    old_session = d.session()
    d.settings["server"]["banner"] = "ESMTP reloaded"
    d.settings["limits"]["max_message_size"] = "1M"
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log(r"master\[\d+\]: info: configuration reloaded from ")
    assert greeting(d) == f"220 {HOSTNAME} ESMTP reloaded"
    with d.client() as c:
        assert "SIZE 1048576" in c.ehlo().lines
    # a session that was already running keeps the settings it started with
    assert "SIZE 26214400" in old_session.ehlo().lines
    old_session.send_message(b"old session\r\n")
    old_session.quit()


def test_reload_does_not_refuse_the_messages_of_older_sessions(daemons):
    """A session keeps the settings it started with (docs/configuration.md):
    a message within the SIZE it announced is accepted after a reload that
    lowers max_message_size."""
    d = daemons()
    old = d.session()
    assert "SIZE 26214400" in old.ehlo().lines
    d.settings["limits"]["max_message_size"] = "1M"
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded from ")
    body = (b"o" * 998 + b"\r\n") * 2000  # 2 MB: over the new limit, within the old one
    old.mail()
    old.rcpt()
    r = old.data(body)
    assert r.code == 250, f"expected 250 queued under the session's own limit, got {r!r}"
    assert e2e.split_received(d.message(e2e.queued_id(r))[0])[1] == body
    # a new session has the new limit
    with d.session() as c:
        c.mail()
        c.rcpt()
        r = c.data(body)
        assert r.code == 552 and r.esc == "5.3.4", r


def test_sighup_with_a_broken_file_keeps_the_running_configuration(daemons):
    d = daemons({"server": {"banner": "ESMTP first"}})
    assert greeting(d) == f"220 {HOSTNAME} ESMTP first"
    good = d.config_text()
    d.write_config(good.replace("banner = ESMTP first", "banner = ESMTP second")
                   + "[limits]\nmax_sessions = lots\n")
    d.signal(signal.SIGHUP)
    d.wait_log(r"master\[\d+\]: error: reload failed, keeping the running configuration: "
               r".*max_sessions")
    assert d.alive()
    assert greeting(d) == f"220 {HOSTNAME} ESMTP first"
    with d.session() as c:
        c.send_message(b"still works\r\n")
    # and a later good reload still works
    d.write_config(good.replace("banner = ESMTP first", "banner = ESMTP third"))
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded from ")
    assert greeting(d) == f"220 {HOSTNAME} ESMTP third"


def test_sighup_reports_a_missing_file(daemons):
    d = daemons()
    os.rename(d.conf_path, d.conf_path + ".away")
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload failed, keeping the running configuration: cannot open ")
    assert d.alive()
    assert greeting(d) == f"220 {HOSTNAME} ESMTP vsmtpd"


def test_sigterm_lets_the_message_in_flight_finish(daemons):
    d = daemons({"timeouts": {"shutdown_grace": "20s"}})
    idle = d.session()
    busy = d.session()
    busy.open_data()
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    time.sleep(0.1)  # the first half is in before the signal
    d.signal(signal.SIGTERM)
    d.wait_log(r"master\[\d+\]: info: stopping: 2 sessions get up to 20 s to finish")

    # an idle session is told at once
    r = idle.read_reply()
    assert str(r) == f"421 4.3.2 {HOSTNAME} Service shutting down, closing connection"
    idle.expect_eof()

    assert_no_new_sessions(d)

    # the message under way is completed and queued
    busy.send(b"second half\r\n.\r\n")
    qid = queued_id(busy.read_reply())
    # then the session is ended: a 421 4.3.2 (perhaps before any command), or a close
    busy.send(b"NOOP\r\n")
    try:
        r = busy.read_reply()
        assert r.code == 421 and r.esc == "4.3.2", r
        busy.expect_eof()
    except (EOFError, ConnectionResetError):
        pass
    assert d.wait_exit() == 0
    log = d.log()
    assert "master" in log and log.rstrip().endswith("info: stopped")
    content = e2e.split_received(d.message(qid)[0])[1]
    assert content == b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"


def test_sigterm_ends_stuck_sessions_after_the_grace_period(daemons):
    d = daemons({"timeouts": {"shutdown_grace": "1s"}})
    stuck = d.session()
    stuck.open_data()
    stuck.send(b"never finished\r\n")
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(timeout=10) == 0
    assert time.monotonic() - t0 < 8
    d.wait_log(r"master\[\d+\]: notice: grace period over: ending 1 sessions")
    # the client sees the connection go, without a 250
    with pytest.raises((EOFError, ConnectionResetError)):
        stuck.read_reply()
    # the queue, stopped after the sessions, dropped the unfinished file
    assert d.queued() == [] and d.incoming() == []


def test_sigterm_with_no_sessions_stops_promptly(daemons):
    d = daemons()
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert time.monotonic() - t0 < 3
    assert d.processes() == []
    d.wait_log(r"queue\[\d+\]: info: stopped: 0 messages committed")


def test_sigint_stops_like_sigterm(daemons):
    d = daemons()
    with d.session() as c:
        c.send_message(b"x\r\n")
    d.signal(signal.SIGINT)
    assert d.wait_exit() == 0
    d.wait_log(r"queue\[\d+\]: info: stopped: 1 messages committed in 1 flushes")
