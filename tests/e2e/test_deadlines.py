"""[timeouts] deadlines: a command line, a message transfer and a whole
session are bounded in time, not only the silence between two bytes. Slow
clients on loopback against small deadlines: a command line trickled one
byte at a time, DATA and BDAT content trickled under the minimum rate, and
NOOPs kept up past the session cap are cut with 421 4.4.2 (also over
STARTTLS), and a partial message is never queued; an honest client is not
affected; plain silence keeps the idle timeout's reply. The keys parse and
bad values are refused with file:line.

Every wait is bounded; the times asserted are generous upper bounds (well
before the slow client would have finished), never performance."""
import select
import socket
import ssl
import subprocess
import time

import pytest

import tlscerts
import vsmtpd_e2e as e2e
from vsmtpd_e2e import HOSTNAME, queued_id

COMMAND_DEADLINE = 2  # seconds, also the idle timer: a silent client ties with it
DATA_GRACE = 1
DATA_RATE = 1000  # bytes per second
SESSION_CAP = 3

DEADLINES = {"command": f"{COMMAND_DEADLINE}s", "command_deadline": f"{COMMAND_DEADLINE}s",
             "data": "5s", "data_min_rate": str(DATA_RATE),
             "data_rate_grace": f"{DATA_GRACE}s", "session": "1m"}

COMMAND_CUT = (f"421 4.4.2 {HOSTNAME} Error: command not received in full within "
               f"{COMMAND_DEADLINE} seconds")
DATA_CUT = (f"421 4.4.2 {HOSTNAME} Error: message data too slow "
            f"(under {DATA_RATE} bytes per second)")
SESSION_CUT = (f"421 4.4.2 {HOSTNAME} Error: session time limit of {SESSION_CAP} "
               f"seconds exceeded")
IDLE_CUT = f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"

# A line that takes 47 * 0.5 = 23.5 s to trickle: far past every deadline.
SLOW_LINE = b"NOOP " + b"x" * 40 + b"\r\n"
SLOW_CONTENT = b"Subject: slow\r\n\r\n" + b"trickled body line\r\n" * 3 + b".\r\n"


@pytest.fixture(scope="module")
def deadlines(module_daemons):
    return module_daemons({"timeouts": DEADLINES}, label="-deadlines")


@pytest.fixture(scope="module")
def capped(module_daemons):
    # no rate: the session cap alone cuts the slow transfer below
    return module_daemons({"timeouts": {"command": "2s", "data": "2s", "data_min_rate": "0",
                                        "session": f"{SESSION_CAP}s"}}, label="-capped")


@pytest.fixture(scope="module")
def certs(workspace):
    return tlscerts.make_certs(workspace.new_dir("tls-certs"))


@pytest.fixture(scope="module")
def tls_deadlines(module_daemons, certs):
    return module_daemons({"tls": {"certificate": certs.server.cert, "key": certs.server.key},
                           "timeouts": DEADLINES}, label="-tls-deadlines")


def readable(c, wait):
    """Whether the server has something for client c within `wait` seconds."""
    if c.buf or (isinstance(c.sock, ssl.SSLSocket) and c.sock.pending()):
        return True
    return bool(select.select([c.sock], [], [], wait)[0])


def trickle(c, data, interval):
    """Send data one byte every `interval` seconds until the server speaks.
    Returns (its reply, bytes sent, seconds taken); fails if all of data
    went out unanswered."""
    t0 = time.monotonic()
    for sent in range(1, len(data) + 1):
        try:
            c.send(data[sent - 1:sent])
        except (BrokenPipeError, ConnectionResetError):
            break
        if readable(c, interval):
            break
    else:
        raise AssertionError(f"all {len(data)} bytes went out over "
                             f"{time.monotonic() - t0:.1f} s and the server never cut in")
    return c.read_reply(), sent, time.monotonic() - t0


def expect_closed(c):
    """The server closes the connection with nothing more to say (TLS too)."""
    try:
        c.expect_eof()
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        assert c.buf == b""


def no_new_messages(d, before):
    assert d.queued() == before, "a partial message was committed"
    e2e.wait_until(lambda: d.incoming() == [], what="incoming/ to be emptied")


def starttls(c, certs):
    """STARTTLS, the handshake and EHLO again on a client that said EHLO."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.ca)
    ctx.check_hostname = False
    c.expect("STARTTLS", 220, "2.0.0")
    c.sock = ctx.wrap_socket(c.sock)
    c.ehlo()
    return c


# ------------------------------------------------------------ command lines
def check_command_cut(d, c, before=None):
    reply, sent, took = trickle(c, SLOW_LINE, 0.5)
    assert str(reply) == COMMAND_CUT
    # cut at the deadline, long before the line would have been whole
    assert sent < len(SLOW_LINE) - 10, sent
    assert took < 15, took
    expect_closed(c)
    assert d.session_summary(c.local_port).endswith("result=command deadline exceeded")
    d.wait_log(rf"cut by \[timeouts\] command_deadline: no whole command line within "
               rf"{COMMAND_DEADLINE}s \(\d+ bytes of one received\)")


def test_trickled_command_line_is_cut_at_the_command_deadline(deadlines):
    """One byte every 0.5 s keeps the idle timer (2 s) quiet, not the deadline."""
    c = deadlines.session()
    c.expect("NOOP", 250, "2.0.0")
    check_command_cut(deadlines, c)


def test_trickled_command_inside_a_transaction_is_cut_and_nothing_queued(deadlines):
    before = deadlines.queued()
    c = deadlines.session()
    c.mail()
    c.rcpt()
    check_command_cut(deadlines, c)
    no_new_messages(deadlines, before)


def test_trickled_overlong_line_is_cut_at_the_command_deadline(deadlines):
    """A line past max_command_line is refused once and thrown away; the rest
    of it, trickled without an end, is still bounded by the deadline."""
    c = deadlines.session()
    c.send(b"NOOP " + b"y" * 4096)
    assert str(c.read_reply()) == "500 5.5.2 Error: line too long"
    reply, sent, took = trickle(c, b"z" * 60, 0.5)
    assert str(reply) == COMMAND_CUT
    assert sent < 50 and took < 20, (sent, took)
    expect_closed(c)


def test_silent_client_still_gets_the_idle_timeout(deadlines):
    """Silence is idleness, answered as before, even when the command deadline
    is as long as the idle timer and strikes at the same moment."""
    c = deadlines.session()
    c.expect("NOOP", 250, "2.0.0")
    c.sock.settimeout(COMMAND_DEADLINE + 8)
    assert str(c.read_reply()) == IDLE_CUT
    expect_closed(c)
    assert deadlines.session_summary(c.local_port).endswith("result=timeout")


# ------------------------------------------------------------- honest clients
def test_honest_client_is_unaffected(deadlines):
    """Pipelined commands, a pause below the timers, and a megabyte by DATA
    and by BDAT: all accepted, and the session ends as the client chose."""
    before = deadlines.queued()
    big = (b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 62 + b"\r\n") * 1000
    with deadlines.session() as c:
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        assert [r.code for r in c.read_replies(3)] == [250, 250, 354]
        c.send(big[:10000])
        time.sleep(0.5)  # a pause well inside the grace and the idle timer
        c.send(big[10000:] + b".\r\n")
        ids = [queued_id(c.read_reply())]
        time.sleep(0.5)
        c.mail()
        c.rcpt()
        half = len(big) // 2
        c.send(b"BDAT %d\r\n" % half + big[:half])
        assert c.read_reply().code == 250
        c.send(b"BDAT %d LAST\r\n" % (len(big) - half) + big[half:])
        ids.append(queued_id(c.read_reply()))
        for _ in range(5):
            c.expect("NOOP", 250, "2.0.0")
        c.quit()
    assert sorted(before + ids) == deadlines.queued()
    assert deadlines.session_summary(c.local_port).endswith("queued=2 ids=" + ",".join(ids)
                                                           + " result=ok")


# ----------------------------------------------------------- DATA and BDAT
def check_data_cut(d, c, data, before):
    reply, sent, took = trickle(c, data, 0.3)
    assert str(reply) == DATA_CUT
    assert sent < len(data) - 10 and took < 15, (sent, took)
    expect_closed(c)
    assert d.session_summary(c.local_port).endswith("result=data too slow")
    d.wait_log(rf"[0-9A-F]+: \S+\[127\.0\.0\.1\]: cut by \[timeouts\] data_min_rate: "
               rf"\d+ bytes of message data in [0-9.]+s, under {DATA_RATE} bytes/s past the "
               rf"{DATA_GRACE}s grace; not queued")
    no_new_messages(d, before)


def test_trickled_data_is_cut_and_not_queued(deadlines):
    """0.3 s a byte keeps the data idle timer (5 s) quiet, not the rate."""
    before = deadlines.queued()
    c = deadlines.session()
    c.open_data()
    check_data_cut(deadlines, c, SLOW_CONTENT, before)


def test_trickled_bdat_chunk_is_cut_and_not_queued(deadlines):
    before = deadlines.queued()
    c = deadlines.session()
    c.mail()
    c.rcpt()
    c.send(b"BDAT %d LAST\r\n" % len(SLOW_CONTENT))
    check_data_cut(deadlines, c, SLOW_CONTENT, before)


# -------------------------------------------------------------- session cap
def test_session_cap_cuts_a_client_that_keeps_sending_noops(capped):
    c = capped.session()
    t0 = time.monotonic()
    answered = 0
    while time.monotonic() - t0 < 15:
        c.send(b"NOOP\r\n")
        reply = c.read_reply()
        if reply.code != 250:
            break
        answered += 1
        time.sleep(0.5)
    assert str(reply) == SESSION_CUT
    assert time.monotonic() - t0 >= SESSION_CAP - 0.5  # not before the cap
    assert answered > 0
    expect_closed(c)
    assert capped.session_summary(c.local_port).endswith("result=session time limit exceeded")
    capped.wait_log(rf"NOQUEUE: \S+\[127\.0\.0\.1\]: cut by \[timeouts\] session: connected "
                    rf"for more than {SESSION_CAP}s$")


def test_session_cap_during_data_acknowledges_nothing_and_queues_nothing(capped):
    """The cap cuts a transfer under way: the message is not acknowledged, so
    the client still has it, and the queue drops the partial file."""
    before = capped.queued()
    c = capped.session()
    c.open_data()
    c.send(b"Subject: cut short\r\n\r\n")
    reply, _, _ = trickle(c, b"a line of the body\r\n" * 100, 0.5)
    assert str(reply) == SESSION_CUT
    expect_closed(c)
    capped.wait_log(r"[0-9A-F]+: \S+\[127\.0\.0\.1\]: cut by \[timeouts\] session: connected "
                    rf"for more than {SESSION_CAP}s; the message being received is not "
                    r"acknowledged, nor queued")
    no_new_messages(capped, before)


# --------------------------------------------------------------- STARTTLS
def test_trickled_command_over_starttls_is_cut(tls_deadlines, certs):
    """Each byte its own TLS record: decrypted bytes reach the session and keep
    its idle timer quiet; the deadline still cuts, and says so over TLS."""
    c = starttls(tls_deadlines.session(), certs)
    c.expect("NOOP", 250, "2.0.0")
    check_command_cut(tls_deadlines, c)


def test_trickled_data_over_starttls_is_cut_and_not_queued(tls_deadlines, certs):
    before = tls_deadlines.queued()
    c = starttls(tls_deadlines.session(), certs)
    c.open_data()
    check_data_cut(tls_deadlines, c, SLOW_CONTENT, before)


# ---------------------------------------------------------- configuration
CONFIG = """\
[server]
hostname = mx.test.example
spool_dir = ./spool
log = stderr

[listener:smtp]
address = 127.0.0.1:2525

[rules]
file = rules/main.lua

[timeouts]
command = 5m
data = 5m
command_deadline = 10m
data_min_rate = 2k
data_rate_grace = 90s
session = 2h
"""


def check(tmp_path, text):
    """vsmtpd -t on text: (status, stdout, stderr, path)."""
    path = tmp_path / "test.conf"
    path.write_text(text)
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "main.lua").write_text(
        'return { connect = { rule "go on" (function(ctx) return status.next() end) } }\n')
    p = subprocess.run([e2e.vsmtpd_binary(), "-t", "-c", str(path)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10, cwd=tmp_path)
    return p.returncode, p.stdout.decode(), p.stderr.decode(), str(path)


def test_deadline_keys_parse(tmp_path):
    for text in (CONFIG, CONFIG.replace("data_min_rate = 2k", "data_min_rate = 0")
                 .replace("session = 2h", "session = 0")):
        rc, out, err, path = check(tmp_path, text)
        assert rc == 0, err
        assert out.startswith(f"vsmtpd: {path}: configuration is valid\n"), out


@pytest.mark.parametrize("old,new,words", [
    ("command_deadline = 10m", "command_deadline = 0", ['"0"', "less than the minimum, 1s"]),
    ("command_deadline = 10m", "command_deadline = 10 minutes", ['"10 minutes"', "duration"]),
    ("data_min_rate = 2k", "data_min_rate = 500/s", ['"500/s"', "not a size"]),
    ("data_min_rate = 2k", "data_min_rate = 2G", ['"2G"', "more than the maximum"]),
    ("data_rate_grace = 90s", "data_rate_grace = 0s", ['"0s"', "less than the minimum, 1s"]),
    ("session = 2h", "session = forever", ['"forever"', "not a duration"]),
])
def test_bad_deadline_value_is_refused_with_file_line_and_key(tmp_path, old, new, words):
    text = CONFIG.replace(old, new)
    assert text != CONFIG
    rc, out, err, path = check(tmp_path, text)
    assert rc == 1, (out, err)
    n = text.splitlines().index(new) + 1
    assert err.startswith(f"vsmtpd: {path}:{n}: [timeouts] {new.split()[0]}: "), err
    for w in words:
        assert w in err, (w, err)
