"""Message content: DATA dot-unstuffing and its end marker, BDAT chunks, the
checks on bare CR / LF, NUL and line length, and byte-exact storage."""
import hashlib
import os
import random

import pytest

import vsmtpd_e2e as e2e
from vsmtpd_e2e import queued_id


@pytest.fixture(scope="module")
def normalizing(module_daemons):
    return module_daemons({"smtp": {"bare_line_endings": "normalize"}}, label="-normalize")


def stored(daemon, qid):
    """The client's content of a committed message, without Received:."""
    content, _ = daemon.message(qid)
    return e2e.split_received(content)[1]


def no_new_messages(daemon, before):
    assert daemon.queued() == before, "a refused message was committed"
    e2e.wait_until(lambda: daemon.incoming() == [], what="incoming/ to be emptied")


def test_dot_stuffed_lines_are_unstuffed(daemon):
    wire = (b"Subject: dots\r\n\r\n"
            b"..\r\n"
            b"...\r\n"
            b"..leading dot\r\n"
            b"middle . dot\r\n"
            b". space\r\n"
            b"x.\r\n")
    with daemon.session() as c:
        qid = c.send_message(wire)
    assert stored(daemon, qid) == (b"Subject: dots\r\n\r\n"
                                   b".\r\n"
                                   b"..\r\n"
                                   b".leading dot\r\n"
                                   b"middle . dot\r\n"
                                   b" space\r\n"
                                   b"x.\r\n")


def test_stuff_helper_round_trips(daemon):
    text = b"a\r\n.b\r\n..c\r\n.\r\nend\r\n"
    with daemon.session() as c:
        qid = c.send_message(e2e.stuff(text))
    assert stored(daemon, qid) == text


def test_empty_message_is_stored_empty(daemon):
    with daemon.session() as c:
        qid = c.send_message(b"")
    content, _ = daemon.message(qid)
    received, rest = e2e.split_received(content)
    assert rest == b""


def test_end_marker_split_across_packets_is_found(daemon):
    with daemon.session() as c:
        c.open_data()
        for piece in (b"line one\r", b"\nline two\r\n", b".", b"\r", b"\n"):
            c.send(piece)
            if piece != b"\n":
                assert c.pending(0.05) == b""  # not the end yet
        qid = queued_id(c.read_reply())
    assert stored(daemon, qid) == b"line one\r\nline two\r\n"


def test_commands_after_the_end_marker_in_the_same_packet_are_run(daemon):
    with daemon.session() as c:
        c.open_data()
        c.send(b"body\r\n.\r\nNOOP\r\nQUIT\r\n")
        qid = queued_id(c.read_reply())
        assert str(c.read_reply()) == "250 2.0.0 Ok"
        assert c.read_reply().code == 221
        c.expect_eof()
    assert stored(daemon, qid) == b"body\r\n"


def test_eight_bit_content_is_stored_byte_exact(daemon):
    body = bytes(b for b in range(1, 256) if b not in (10, 13)) + b"\r\n"
    with daemon.session() as c:
        c.mail("a@example.org", " BODY=8BITMIME")
        c.rcpt()
        qid = queued_id(c.data(body))
    assert stored(daemon, qid) == body


def test_large_message_round_trips_byte_exact(daemon):
    rng = random.Random(1234)
    lines = []
    size = 0
    while size < 3 * 1024 * 1024:
        n = rng.randrange(0, 998)
        line = bytes(rng.choice(b".abcdefghijklmnopqrstuvwxyz0123456789 \t") for _ in range(n))
        lines.append(line)
        size += n + 2
    text = b"\r\n".join(lines) + b"\r\n"
    with daemon.session() as c:
        qid = c.send_message(e2e.stuff(text))
    got = stored(daemon, qid)
    assert len(got) == len(text)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(text).hexdigest()


@pytest.mark.parametrize("body,what", [
    (b"line\nnext\r\n", "bare LF"),
    (b"line\rnext\r\n", "bare CR"),
    (b"\n\r\n", "bare LF at the start"),
    (b"end\r\r\n", "CR before CRLF"),
    (b"a\n\n\r\n", "two bare LFs"),
])
def test_bare_line_ends_in_data_are_rejected(daemon, body, what):
    before = daemon.queued()
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        r = c.data(body)
        assert r.code == 550 and r.esc == "5.6.0", (what, r)
        assert "bare CR or LF" in r.text
        # the session is back in the ready state
        c.expect("RCPT TO:<x@example.net>", 503, "5.5.1")
        qid = c.send_message(b"clean\r\n")
    assert daemon.queued() == sorted(before + [qid])
    e2e.wait_until(lambda: daemon.incoming() == [], what="incoming/ to be emptied")


@pytest.mark.parametrize("body,expect", [
    (b"line\nnext\r\n", b"line\r\nnext\r\n"),
    (b"line\rnext\r\n", b"line\r\nnext\r\n"),
    (b"a\n\nb\r\n", b"a\r\n\r\nb\r\n"),
    (b"end\r\r\n", b"end\r\n\r\n"),
    (b"x\r\n..y\nz\r\n", b"x\r\n.y\r\nz\r\n"),
])
def test_bare_line_ends_are_normalized_when_configured(normalizing, body, expect):
    with normalizing.session() as c:
        qid = c.send_message(body)
    got = stored(normalizing, qid)
    assert got == expect
    e2e.assert_crlf_only(got)


def test_nul_in_data_is_rejected(daemon):
    before = daemon.queued()
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        r = c.data(b"nul \x00 here\r\n")
        assert r.code == 550 and r.esc == "5.6.0" and "NUL" in r.text, r
        c.expect("NOOP", 250, "2.0.0")
    no_new_messages(daemon, before)


def test_nul_is_rejected_even_when_normalizing(normalizing):
    before = normalizing.queued()
    with normalizing.session() as c:
        c.mail()
        c.rcpt()
        r = c.data(b"\x00\r\n")
        assert r.code == 550 and r.esc == "5.6.0", r
    no_new_messages(normalizing, before)


def test_text_line_of_1000_octets_is_the_limit(daemon):
    longest = b"x" * 998 + b"\r\n"
    with daemon.session() as c:
        qid = c.send_message(longest)
        assert stored(daemon, qid) == longest
        before = daemon.queued()
        c.mail()
        c.rcpt()
        r = c.data(b"y" * 999 + b"\r\n")
        assert r.code == 550 and r.esc == "5.6.0" and "too long" in r.text, r
    no_new_messages(daemon, before)


def test_stuffing_dot_does_not_count_towards_the_line_limit(daemon):
    line = b"." + b"z" * 997 + b"\r\n"  # 1000 octets once unstuffed
    with daemon.session() as c:
        qid = c.send_message(b"." + line)
    assert stored(daemon, qid) == line


def test_very_long_line_without_end_is_rejected_at_the_marker(daemon):
    before = daemon.queued()
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        r = c.data(b"q" * 300000 + b"\r\n")
        assert r.code == 550 and r.esc == "5.6.0", r
        c.expect("NOOP", 250, "2.0.0")
    no_new_messages(daemon, before)


def test_abandoned_transaction_leaves_nothing(daemon):
    before = daemon.queued()
    with daemon.session() as c:
        c.open_data()
        c.send(b"partial content\r\n")
    # the client went away in the middle of the content
    no_new_messages(daemon, before)


# ------------------------------------------------------------------ BDAT

def bdat(c, chunk, last=False):
    c.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
    return c.read_reply()


def test_bdat_content_is_stored_byte_exact_without_unstuffing(daemon):
    body = b"Subject: chunks\r\n\r\n..two dots\r\n.\r\n.one\r\nend\r\n"
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        r = bdat(c, body, last=True)
        qid = queued_id(r)
    assert stored(daemon, qid) == body


def test_bdat_chunk_replies_count_octets(daemon):
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        assert str(bdat(c, b"abc\r\n")) == "250 2.0.0 5 octets received"
        assert str(bdat(c, b"defg\r\n")) == "250 2.0.0 11 octets received"
        qid = queued_id(bdat(c, b"", last=True))
        summary_port = c.local_port
        c.quit()
    assert stored(daemon, qid) == b"abc\r\ndefg\r\n"
    assert "bdat=3" in daemon.session_summary(summary_port)


def test_bdat_last_0_ends_the_message(daemon):
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        bdat(c, b"only chunk\r\n")
        c.send(b"BDAT 0 LAST\r\n")
        qid = queued_id(c.read_reply())
    assert stored(daemon, qid) == b"only chunk\r\n"


def test_bdat_chunks_may_split_lines_and_crlf(daemon):
    body = b"first line\r\nsecond line\r\nthird\r\n"
    cuts = [3, 11, 12, 20, 25]  # inside a line, between CR and LF, ...
    assert body[11:12] == b"\n"
    pieces = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        for p in pieces[:-1]:
            assert bdat(c, p).code == 250
        qid = queued_id(bdat(c, pieces[-1], last=True))
    assert stored(daemon, qid) == body


def test_bdat_chunk_sent_in_pieces_is_reassembled(daemon):
    body = b"slow\r\nchunk\r\n"
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        c.send(b"BDAT %d LAST\r\n" % len(body))
        for i in range(len(body)):
            c.send(body[i:i + 1])
        qid = queued_id(c.read_reply())
    assert stored(daemon, qid) == body


def test_bdat_0_last_alone_is_an_empty_message(daemon):
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        qid = queued_id(bdat(c, b"", last=True))
    assert stored(daemon, qid) == b""


def test_bdat_last_line_without_crlf_gets_one(daemon):
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        qid = queued_id(bdat(c, b"no newline", last=True))
    assert stored(daemon, qid) == b"no newline\r\n"


def test_bdat_with_bare_lf_is_rejected(daemon):
    before = daemon.queued()
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        r = bdat(c, b"bare\nlf\r\n")
        assert r.code == 550 and r.esc == "5.6.0", r
        # the transaction is over
        c.expect("BDAT 0 LAST", 503, "5.5.1")
        c.mail()
        c.rcpt()
        r = bdat(c, b"ok\r\nbare cr at the end\r", last=True)
        assert r.code == 550 and r.esc == "5.6.0", r
    no_new_messages(daemon, before)


def test_bdat_with_bare_lf_is_normalized_when_configured(normalizing):
    with normalizing.session() as c:
        c.mail()
        c.rcpt()
        qid = queued_id(bdat(c, b"bare\nlf\r\n", last=True))
    assert stored(normalizing, qid) == b"bare\r\nlf\r\n"


def test_bdat_before_mail_is_refused_after_reading_its_bytes(daemon):
    with daemon.session() as c:
        r = bdat(c, b"MAIL FROM:<evil@example.org>\r\n")
        assert r.code == 503 and r.esc == "5.5.1", r
        c.mail()
        r = bdat(c, b"RCPT TO:<evil@example.org>\r\n")
        assert r.code == 503 and r.esc == "5.5.1", r
        # the chunks were skipped, not run as commands
        c.expect("NOOP", 250, "2.0.0")
        c.expect("DATA", 503, "5.5.1")


def test_data_after_bdat_is_a_bad_sequence(daemon):
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        assert bdat(c, b"part one\r\n").code == 250
        c.expect("DATA", 503, "5.5.1")
        c.expect("RCPT TO:<late@example.net>", 503, "5.5.1")
        qid = queued_id(bdat(c, b"part two\r\n", last=True))
    content, env = daemon.message(qid)
    assert e2e.split_received(content)[1] == b"part one\r\npart two\r\n"
    assert len(env["rcpts"]) == 1


@pytest.mark.parametrize("args", ["", "x", "-1", "10 FIRST", "10 LAST now", "1e3"])
def test_bdat_syntax_errors(daemon, args):
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        c.expect(f"BDAT {args}".rstrip(), 501, "5.5.4")
        c.expect("NOOP", 250, "2.0.0")


def test_rset_after_bdat_discards_the_chunks(daemon):
    before = daemon.queued()
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        assert bdat(c, b"discard me\r\n").code == 250
        c.expect("RSET", 250, "2.0.0")
        c.expect("BDAT 0 LAST", 503, "5.5.1")
    no_new_messages(daemon, before)


def test_spool_files_hold_content_envelope_and_trailer(daemon):
    with daemon.session() as c:
        qid = c.send_message(b"x\r\n")
    path = os.path.join(daemon.queue_dir(), qid)
    with open(path, "rb") as f:
        data = f.read()
    content, env = e2e.parse_spool_bytes(data)
    trailer = data[-42:]
    assert trailer == b"\nVSMTPD-SPOOL-1 %016x %08x\n" % (len(content), len(data) - len(content) - 42)
    assert env["id"] == qid
    assert daemon.incoming() == []
