"""[limits] and [timeouts]: recipients, message size, line lengths, error
counting, session limits, free space and inactivity timeouts."""
import re
import signal
import socket
import time

import pytest

import vsmtpd_e2e as e2e
from vsmtpd_e2e import HOSTNAME, queued_id

MAX_SIZE = 10240


@pytest.fixture(scope="module")
def limited(module_daemons):
    return module_daemons({"limits": {"max_recipients": "3", "max_message_size": "10k"}},
                          label="-limited")


def no_new_messages(daemon, before):
    assert daemon.queued() == before, "a refused message was committed"
    e2e.wait_until(lambda: daemon.incoming() == [], what="incoming/ to be emptied")


def test_recipients_past_the_limit_get_452(limited):
    with limited.session() as c:
        c.mail()
        for i in range(3):
            c.rcpt(f"r{i}@example.net")
        c.expect("RCPT TO:<r3@example.net>", 452, "4.5.3")
        c.expect("RCPT TO:<r4@example.net>", 452, "4.5.3")
        qid = queued_id(c.data(b"x\r\n"))
        # the limit is per message
        c.mail()
        for i in range(3):
            c.rcpt(f"s{i}@example.net")
    env = limited.message(qid)[1]
    assert [r["address"] for r in env["rcpts"]] == ["r0@example.net", "r1@example.net",
                                                    "r2@example.net"]


def test_ehlo_announces_the_configured_size(limited):
    with limited.client() as c:
        assert f"SIZE {MAX_SIZE}" in c.ehlo().lines


def test_size_parameter_over_the_limit_gets_552_at_mail(limited):
    with limited.session() as c:
        c.expect(f"MAIL FROM:<a@example.org> SIZE={MAX_SIZE + 1}", 552, "5.3.4")
        c.mail("a@example.org", f" SIZE={MAX_SIZE}")


def test_message_of_exactly_the_limit_is_accepted(limited):
    body = (b"y" * 98 + b"\r\n") * (MAX_SIZE // 100) + b"z" * (MAX_SIZE % 100 - 2) + b"\r\n"
    assert len(body) == MAX_SIZE
    with limited.session() as c:
        qid = c.send_message(body)
    assert e2e.split_received(limited.message(qid)[0])[1] == body


def test_message_over_the_limit_gets_552(limited):
    body = (b"y" * 98 + b"\r\n") * (MAX_SIZE // 100) + b"z" * (MAX_SIZE % 100 - 1) + b"\r\n"
    assert len(body) == MAX_SIZE + 1
    before = limited.queued()
    with limited.session() as c:
        c.mail()
        c.rcpt()
        r = c.data(body)
        assert r.code == 552 and r.esc == "5.3.4", r
        c.expect("NOOP", 250, "2.0.0")
    no_new_messages(limited, before)


def test_much_larger_message_is_read_to_its_end_and_refused(limited):
    before = limited.queued()
    with limited.session() as c:
        c.mail()
        c.rcpt()
        r = c.data((b"w" * 500 + b"\r\n") * 4000)  # 2 MB
        assert r.code == 552 and r.esc == "5.3.4", r
        c.expect("NOOP", 250, "2.0.0")
    no_new_messages(limited, before)


def test_bdat_over_the_limit_gets_552(limited):
    before = limited.queued()
    with limited.session() as c:
        c.mail()
        c.rcpt()
        chunk = (b"b" * 98 + b"\r\n") * 60  # 6000 octets
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        assert str(c.read_reply()) == "250 2.0.0 6000 octets received"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        r = c.read_reply()
        assert r.code == 552 and r.esc == "5.3.4", r
        c.expect("NOOP", 250, "2.0.0")
    no_new_messages(limited, before)


def test_command_line_of_2048_octets_is_the_limit(daemon):
    with daemon.session() as c:
        line = "NOOP " + "n" * (2048 - 2 - 5)
        assert len(line) + 2 == 2048
        c.expect(line, 250, "2.0.0")
        r = c.expect(line + "n", 500, "5.5.2")
        assert r.text == "5.5.2 Error: line too long"
        c.expect("NOOP", 250, "2.0.0")


def test_overlong_command_line_gets_one_reply(daemon):
    with daemon.session() as c:
        c.send(b"MAIL FROM:<" + b"a" * 100000 + b"@example.org>\r\nNOOP\r\n")
        assert str(c.read_reply()) == "500 5.5.2 Error: line too long"
        assert str(c.read_reply()) == "250 2.0.0 Ok"
        assert c.pending(0.1) == b""
        # the overlong line started no transaction
        c.expect("RCPT TO:<x@example.net>", 503, "5.5.1")


@pytest.fixture(scope="module")
def long_lines(module_daemons):
    # 1M is the largest max_command_line the configuration allows; the
    # command deadline is longer than the idle timer, which is tested here
    # (test_deadlines.py tests the deadline on an unfinished line)
    return module_daemons({"limits": {"max_command_line": "1M"},
                           "timeouts": {"command": "2s", "command_deadline": "20s",
                                        "shutdown_grace": "1s"}},
                          label="-long-lines")


def test_command_line_longer_than_256k_within_a_1m_limit_is_accepted(long_lines):
    with long_lines.session(timeout=5) as c:
        line = b"NOOP " + b"x" * 300000
        c.send(line + b"\r\n")
        assert str(c.read_reply()) == "250 2.0.0 Ok"


def test_command_line_over_a_1m_limit_gets_500(long_lines):
    with long_lines.session(timeout=5) as c:
        c.send(b"NOOP " + b"x" * (1024 * 1024) + b"\r\nNOOP\r\n")
        assert str(c.read_reply()) == "500 5.5.2 Error: line too long"
        assert str(c.read_reply()) == "250 2.0.0 Ok"


def test_unfinished_long_command_line_still_times_out(long_lines):
    with long_lines.session(timeout=6) as c:
        c.send(b"NOOP " + b"x" * 300000)  # no end of line, and nothing more
        t0 = time.monotonic()
        assert str(c.read_reply()) == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
        assert time.monotonic() - t0 < 5
        c.expect_eof()


@pytest.fixture(scope="module")
def strict(module_daemons):
    return module_daemons({"limits": {"soft_error_limit": "2", "hard_error_limit": "4",
                                      "error_delay": "600ms"}}, label="-errors")


def test_errors_past_the_soft_limit_are_delayed(strict):
    with strict.session() as c:
        for _ in range(2):
            t0 = time.monotonic()
            c.expect("FOO", 500, "5.5.2")
            assert time.monotonic() - t0 < 0.45
        t0 = time.monotonic()
        c.expect("BAR", 500, "5.5.2")
        assert time.monotonic() - t0 >= 0.55, "the third error was not delayed"
        t0 = time.monotonic()
        c.expect("NOOP", 250, "2.0.0")  # good replies are not delayed
        assert time.monotonic() - t0 < 0.45


def test_too_many_errors_close_the_session(strict):
    c = strict.session()
    c.expect("MAIL FROM:<bad", 501, "5.1.7")
    c.expect("RCPT TO:<x@example.net>", 503, "5.5.1")
    c.expect("VRFY", 501, "5.5.4")
    c.send("EXPN x\r\n")
    r = c.read_reply()
    assert r.code == 502 and r.esc == "5.5.1", r
    r = c.read_reply()
    assert str(r) == f"421 4.7.0 {HOSTNAME} Error: too many errors"
    c.expect_eof()
    assert strict.session_summary(c.local_port).endswith("result=too many errors")


def test_pipelined_errors_reach_the_hard_limit_in_order(strict):
    c = strict.session()
    t0 = time.monotonic()
    c.send(b"".join(b"BAD%d\r\n" % i for i in range(8)))
    for _ in range(4):
        r = c.read_reply()
        assert r.code == 500 and r.esc == "5.5.2", r
    assert str(c.read_reply()) == f"421 4.7.0 {HOSTNAME} Error: too many errors"
    c.expect_eof()
    assert time.monotonic() - t0 >= 0.55  # the third error was held back


@pytest.fixture
def few_sessions(daemons):
    return daemons({"limits": {"max_sessions": "2", "max_sessions_per_ip": "1"}})


def refused_greeting(d, source):
    c = e2e.SMTPClient(d.port, source=source)
    r = c.greeting
    e2e.check_esc(r.code, r.lines)
    c.expect_eof()
    c.close()
    return str(r)


def test_sessions_per_ip_and_in_total_are_limited(few_sessions):
    d = few_sessions
    first = e2e.SMTPClient(d.port, source="127.0.0.1")
    assert first.greeting.code == 220
    assert refused_greeting(d, "127.0.0.1") == \
        f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.1"
    second = e2e.SMTPClient(d.port, source="127.0.0.2")
    assert second.greeting.code == 220
    assert refused_greeting(d, "127.0.0.3") == \
        f"421 4.7.0 {HOSTNAME} Error: too many connections, try again later"
    # the sessions that were let in work normally
    second.ehlo()
    second.send_message(b"x\r\n")
    first.quit()

    # once the first session has gone, its address may connect again
    def again():
        c = e2e.SMTPClient(d.port, source="127.0.0.1")
        if c.greeting.code == 220:
            return c
        c.close()
        return None
    third = e2e.wait_until(again, what="a session slot to free up", interval=0.05)
    third.ehlo()
    third.quit()
    second.quit()


RESERVE_WARNING = (r"queue\[\d+\]: warning: \[limits\] min_free_space: the spool file system "
                   r"(\S+) has [0-9.]+[KMGTPE]? free, less than the reserve of {} the "
                   r"configuration keeps: every message is refused with 452 4\.3\.1 until space "
                   r"is freed or min_free_space is lowered \(unset, the reserve is 1\.5 x "
                   r"max_message_size, 37\.5M here\)$")


def test_min_free_space_refuses_mail_with_452(daemons):
    d = daemons({"limits": {"min_free_space": "1000T"}})
    # said at start: a reserve larger than the free space refuses everything
    m = d.wait_log(RESERVE_WARNING.format(r"1000\.0T"))
    assert m[0].group(1) == d.spool
    with d.session() as c:
        c.expect("MAIL FROM:<a@example.org>", 452, "4.3.1")
        c.expect("RCPT TO:<b@example.net>", 503, "5.5.1")
        c.expect("NOOP", 250, "2.0.0")
    assert d.queued() == [] and d.incoming() == []
    d.wait_log(r"queue\[\d+\]: warning: spool file system below its free space reserve")


def test_a_reserve_raised_meanwhile_refuses_the_content_at_data_and_bdat(daemons):
    """The reserve is checked again before the content comes: a transaction
    opened while there was room gets 452 4.3.1 at DATA (and at its first
    BDAT) once there is none, here because a reload raised the reserve
    between MAIL and DATA. The transaction stays open: once the reserve is
    back, the same DATA goes through."""
    d = daemons()
    assert not re.search(RESERVE_WARNING.format(".*"), d.log(), re.M)
    data, bdat = d.session(), d.session()
    for c in (data, bdat):
        c.mail()
        c.rcpt()
    d.settings["limits"]["min_free_space"] = "1000T"
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log(RESERVE_WARNING.format(r"1000\.0T"))  # the queue has the new reserve
    data.expect("DATA", 452, "4.3.1")
    bdat.send(b"BDAT 6 LAST\r\nhello\n")
    r = bdat.read_reply()
    assert str(r) == "452 4.3.1 Insufficient system storage", r
    bdat.quit()
    d.wait_log(r"queue\[\d+\]: warning: [0-9A-F]{16}: spool file system below its free space "
               r"reserve: refusing the content", count=2)
    assert d.queued() == []
    d.settings["limits"]["min_free_space"] = None
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded", count=2)
    qid = e2e.wait_until(lambda: accepted_data(data), what="DATA to be accepted again")
    data.quit()
    assert d.queued() == [qid]


def accepted_data(c):
    """DATA and a message on c; its queue id, or None when DATA is refused."""
    r = c.cmd("DATA")
    if r.code != 354:
        return None
    c.send(b"Subject: room again\r\n\r\nbody\r\n.\r\n")
    return queued_id(c.read_reply())


@pytest.fixture(scope="module")
def impatient(module_daemons):
    return module_daemons({"timeouts": {"command": "2s", "data": "2s"}}, label="-timeouts")


def test_idle_session_times_out_with_421(impatient):
    c = impatient.client()
    t0 = time.monotonic()
    # activity restarts the clock
    for _ in range(2):
        time.sleep(1.2)
        c.expect("NOOP", 250, "2.0.0")
    assert time.monotonic() - t0 > 2.2
    t1 = time.monotonic()
    r = c.read_reply()
    waited = time.monotonic() - t1
    assert str(r) == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
    assert 1.5 <= waited <= 6, waited
    c.expect_eof()
    assert impatient.session_summary(c.local_port).endswith("result=timeout")


def test_stalled_data_times_out_and_nothing_is_queued(impatient):
    before = impatient.queued()
    c = impatient.session()
    c.open_data()
    c.send(b"Subject: stalled\r\n\r\nthe rest never comes")
    t0 = time.monotonic()
    r = c.read_reply()
    assert str(r) == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
    assert 1.5 <= time.monotonic() - t0 <= 6
    c.expect_eof()
    no_new_messages(impatient, before)


def test_client_that_never_reads_replies_cannot_grow_the_session(daemon):
    """Pipelined commands from a client that does not read its replies are
    processed only while the replies fit a bounded buffer; the session's
    memory stays small and every reply arrives once the client reads."""
    with daemon.client() as c:
        c.ehlo()
        c.sock.settimeout(2)
        burst = b"NOOP\r\n" * 10000
        sent = 0
        try:
            for _ in range(1000):
                c.sock.sendall(burst)
                sent += 10000
        except socket.timeout:
            pass  # the session stopped reading: that is the point
        # 60 MB of commands would be 140 MB of replies: far more than the
        # kernel's socket buffers and the session's bounded output hold.
        assert sent < 10000000, "the session read everything without being read from"
        pid = daemon.session_pid(c.local_port)
        rss_kib = int(e2e.proc_status(pid)["VmRSS"].split()[0])
        assert rss_kib < 32 * 1024, f"session RSS {rss_kib} KiB"
        c.sock.settimeout(e2e.IO_TIMEOUT)
        expected = b"250 2.0.0 Ok\r\n" * sent
        got = bytearray(c.buf)
        while len(got) < len(expected):
            chunk = c.sock.recv(1 << 20)
            assert chunk, "connection closed before every reply arrived"
            got += chunk
        assert got == expected
        c.buf = b""
