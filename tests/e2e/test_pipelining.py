"""PIPELINING (RFC 2920): commands sent in one write are all answered, in
order, and the replies match what each command would get alone."""
import socket

import vsmtpd_e2e as e2e
from vsmtpd_e2e import HOSTNAME, queued_id


def test_ehlo_mail_rcpt_rcpt_data_in_one_write(daemon):
    with daemon.client() as c:
        c.send(b"EHLO pipe.example\r\n"
               b"MAIL FROM:<pipe@example.org>\r\n"
               b"RCPT TO:<one@example.net>\r\n"
               b"RCPT TO:<two@example.net>\r\n"
               b"DATA\r\n")
        r = c.read_reply(esc=False)
        assert r.code == 250 and r.lines[0] == HOSTNAME and "PIPELINING" in r.lines
        assert str(c.read_reply()) == "250 2.1.0 Ok"
        assert str(c.read_reply()) == "250 2.1.5 Ok"
        assert str(c.read_reply()) == "250 2.1.5 Ok"
        assert c.read_reply().code == 354
        c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\n")
        qid = queued_id(c.read_reply())
    content, env = daemon.message(qid)
    assert [r["address"] for r in env["rcpts"]] == ["one@example.net", "two@example.net"]
    assert e2e.split_received(content)[1] == b"Subject: pipelined\r\n\r\nbody\r\n"


def test_second_message_pipelined_with_rset(daemon):
    with daemon.session() as c:
        first = c.send_message(b"first\r\n")
        c.send(b"RSET\r\nMAIL FROM:<second@example.org>\r\nRCPT TO:<r2@example.net>\r\nDATA\r\n")
        assert str(c.read_reply()) == "250 2.0.0 Ok"
        assert str(c.read_reply()) == "250 2.1.0 Ok"
        assert str(c.read_reply()) == "250 2.1.5 Ok"
        assert c.read_reply().code == 354
        c.send(b"second\r\n.\r\nQUIT\r\n")
        second = queued_id(c.read_reply())
        assert c.read_reply().code == 221
        c.expect_eof()
    assert first < second
    assert e2e.split_received(daemon.message(second)[0])[1] == b"second\r\n"
    assert daemon.message(second)[1]["mail_from"] == "second@example.org"


def test_errors_inside_a_pipelined_group_do_not_disturb_the_rest(daemon):
    with daemon.session() as c:
        c.send(b"MAIL FROM:<ok@example.org>\r\n"
               b"RCPT TO:<bad address>\r\n"
               b"RCPT TO:<good@example.net>\r\n"
               b"RCPT TO:<x@example.net> BOGUS=1\r\n"
               b"DATA\r\n")
        assert str(c.read_reply()) == "250 2.1.0 Ok"
        r = c.read_reply()
        assert r.code == 501 and r.esc == "5.1.3"
        assert str(c.read_reply()) == "250 2.1.5 Ok"
        r = c.read_reply()
        assert r.code == 555 and r.esc == "5.5.4"
        assert c.read_reply().code == 354
        c.send(b"x\r\n.\r\n")
        qid = queued_id(c.read_reply())
    assert [r["address"] for r in daemon.message(qid)[1]["rcpts"]] == ["good@example.net"]


def test_burst_of_noops_is_answered_in_order(daemon):
    n = 1000
    with daemon.session() as c:
        c.send(b"".join(b"NOOP %d\r\n" % i for i in range(n)) + b"VRFY last\r\n")
        for _ in range(n):
            assert str(c.read_reply()) == "250 2.0.0 Ok"
        assert c.read_reply().code == 252
        assert c.pending(0.05) == b""


def test_several_messages_pipelined_with_bdat(daemon):
    with daemon.session() as c:
        wire = b""
        for i in range(3):
            chunk = b"message %d\r\n" % i
            wire += (b"MAIL FROM:<b%d@example.org>\r\nRCPT TO:<r@example.net>\r\n"
                     b"BDAT %d LAST\r\n" % (i, len(chunk)) + chunk)
        c.send(wire)
        ids = []
        for i in range(3):
            assert str(c.read_reply()) == "250 2.1.0 Ok"
            assert str(c.read_reply()) == "250 2.1.5 Ok"
            ids.append(queued_id(c.read_reply()))
    assert len(set(ids)) == 3
    for i, qid in enumerate(ids):
        content, env = daemon.message(qid)
        assert e2e.split_received(content)[1] == b"message %d\r\n" % i
        assert env["mail_from"] == "b%d@example.org" % i


def test_commands_split_across_writes_are_reassembled(daemon):
    with daemon.session() as c:
        for piece in (b"MA", b"IL FROM:<split@exa", b"mple.org>\r", b"\nRC", b"PT TO:<r@example.net>\r\n"):
            c.send(piece)
        assert str(c.read_reply()) == "250 2.1.0 Ok"
        assert str(c.read_reply()) == "250 2.1.5 Ok"



def test_half_closed_client_gets_every_reply_it_asked_for(daemon):
    """A client that pipelines a whole transaction and then shuts down its
    sending side still reads: it gets all replies, the message is queued."""
    with daemon.client() as c:
        c.send(b"EHLO half.example\r\n"
               b"MAIL FROM:<half@example.org>\r\n"
               b"RCPT TO:<r@example.net>\r\n"
               b"DATA\r\n"
               b"Subject: half-closed\r\n\r\nbody\r\n.\r\n"
               b"QUIT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_reply(esc=False).code == 250
        assert str(c.read_reply()) == "250 2.1.0 Ok"
        assert str(c.read_reply()) == "250 2.1.5 Ok"
        assert c.read_reply().code == 354
        qid = queued_id(c.read_reply())
        assert c.read_reply().code == 221
        c.expect_eof()
    assert e2e.split_received(daemon.message(qid)[0])[1] == b"Subject: half-closed\r\n\r\nbody\r\n"


def test_recipients_past_the_limit_do_not_count_as_errors(daemon):
    """A pipelining client sending 200 recipients at once, twice the default
    max_recipients: the 100 past the limit get 452 4.5.3, which RFC 5321
    (4.5.3.1.10) has the client send again in a later transaction, so they
    count toward no error limit (20 errors would close the session) and
    the message goes through to the first 100."""
    rcpts = [f"r{i}@example.net" for i in range(200)]
    with daemon.session() as c:
        c.send(b"MAIL FROM:<many@example.org>\r\n" +
               b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts) + b"DATA\r\n")
        assert str(c.read_reply()) == "250 2.1.0 Ok"
        replies = [c.read_reply() for _ in rcpts]
        assert [str(r) for r in replies[:100]] == ["250 2.1.5 Ok"] * 100
        assert [str(r) for r in replies[100:]] == ["452 4.5.3 Error: too many recipients"] * 100
        assert c.read_reply().code == 354
        c.send(b"Subject: many\r\n\r\nbody\r\n.\r\n")
        qid = queued_id(c.read_reply())
        # the rest in a second transaction of the same session
        c.send(b"MAIL FROM:<many@example.org>\r\n" +
               b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts[100:]) + b"DATA\r\n")
        assert str(c.read_reply()) == "250 2.1.0 Ok"
        assert [str(c.read_reply()) for _ in rcpts[100:]] == ["250 2.1.5 Ok"] * 100
        assert c.read_reply().code == 354
        c.send(b"Subject: many, the rest\r\n\r\nbody\r\n.\r\n")
        second = queued_id(c.read_reply())
        port = c.local_port
        c.quit()
    assert [r["address"] for r in daemon.message(qid)[1]["rcpts"]] == rcpts[:100]
    assert [r["address"] for r in daemon.message(second)[1]["rcpts"]] == rcpts[100:]
    assert daemon.session_summary(port).endswith("result=ok")
