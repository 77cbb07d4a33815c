"""Self-tests of the peers the delivery tests rely on: smtp-sink gives back
what it received, Dovecot's LMTP delivers into its maildirs and refuses
unknown users, dnsmasq serves MX records (null MX included). Python's
smtplib is the client, so these say nothing of vsmtpd: they say the
fixtures can be trusted when a delivery test fails.
"""
import os
import smtplib
import socket

import pytest

import dnsserver
import peers

MESSAGE = (b"From: a@client.test\r\nTo: b@sink.test\r\nSubject: peers\r\n\r\n"
           b"first line\r\n.a line that starts with a dot\r\nlast line\r\n")


def lmtp_send(c, sender, rcpts, message):
    """{recipient: (code, text)} of one LMTP transaction. smtplib's
    sendmail() reads one reply after the dot; LMTP gives one per accepted
    recipient (RFC 2033 4.2)."""
    c.ehlo_or_helo_if_needed()
    assert c.mail(sender)[0] == 250
    replies = {r: c.rcpt(r) for r in rcpts}
    accepted = [r for r in rcpts if replies[r][0] == 250]
    if accepted:
        replies[accepted[0]] = c.data(message)
        for r in accepted[1:]:
            replies[r] = c.getreply()
    return {r: (code, text.decode()) for r, (code, text) in replies.items()}


def test_smtp_sink_gives_back_the_message(tmp_path):
    with peers.SmtpSink(str(tmp_path)) as sink:
        with smtplib.SMTP(*sink.address, local_hostname="client.test", timeout=10) as c:
            refused = c.sendmail("a@client.test", ["b@sink.test", "c@sink.test"], MESSAGE,
                                 mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=NEVER"])
            assert refused == {}
            c.sendmail("", ["d@sink.test"], b"Subject: second\r\n\r\nno final newline")
        first, second = sink.wait_messages(2)
    assert first.sender == "a@client.test"
    assert first.mail_params == "BODY=8BITMIME"
    assert first.recipients == ["b@sink.test", "c@sink.test"]
    assert first.rcpt_params == ["NOTIFY=NEVER", "NOTIFY=NEVER"]
    assert first.content == MESSAGE
    assert first.helo == "client.test"
    assert (first.client_addr, first.protocol) == ("127.0.0.1", "ESMTP")
    assert second.sender == ""
    assert second.recipients == ["d@sink.test"]
    assert second.content == b"Subject: second\r\n\r\nno final newline\r\n"


def test_smtp_sink_injects_failures(tmp_path):
    with peers.SmtpSink(str(tmp_path), soft_reject=["RCPT"], pipelining=False) as sink:
        with smtplib.SMTP(*sink.address, timeout=10) as c:
            code, text = c.ehlo("client.test")
            assert code == 250 and b"PIPELINING" not in text
            with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
                c.sendmail("a@client.test", ["b@sink.test"], MESSAGE)
            assert e.value.recipients["b@sink.test"][0] == 450
        assert sink.messages() == []


def test_smtp_sink_lmtp_on_a_unix_socket(tmp_path):
    with peers.SmtpSink(str(tmp_path), lmtp=True, unix_socket=True) as sink:
        assert sink.target == f"unix:{sink.unix_path}"
        assert os.path.dirname(sink.unix_path) == str(tmp_path)
        with smtplib.LMTP(sink.unix_path, local_hostname="client.test", timeout=10) as c:
            replies = lmtp_send(c, "a@client.test", ["b@sink.test", "c@sink.test"], MESSAGE)
        assert replies == {"b@sink.test": (250, "2.2.0 Ok"), "c@sink.test": (250, "2.2.0 Ok")}
        (m,) = sink.wait_messages(1)
    assert (m.protocol, m.client_addr, m.helo) == ("LMTP", "local", "client.test")
    assert m.recipients == ["b@sink.test", "c@sink.test"]
    assert m.content == MESSAGE


def test_dovecot_lmtp_delivers_to_maildirs():
    with peers.DovecotLmtp(users=["bob@example.test", "carol@example.test"]) as lmtp:
        with smtplib.LMTP(*lmtp.address, local_hostname="client.test", timeout=10) as c:
            replies = lmtp_send(c, "a@client.test", ["bob@example.test", "nobody-here@example.test",
                                                     "carol+tag@example.test"], MESSAGE)
        assert replies["bob@example.test"][0] == 250
        assert replies["carol+tag@example.test"][0] == 250
        assert replies["nobody-here@example.test"][0] == 550
        assert replies["nobody-here@example.test"][1].startswith("5.1.1 ")
        with smtplib.LMTP(lmtp.unix_path, timeout=10) as c:
            assert lmtp_send(c, "", ["Carol@Example.test"], MESSAGE)["Carol@Example.test"][0] == 250
        (bob,) = lmtp.wait_messages("bob@example.test", 1)
        carol_tag, carol = lmtp.wait_messages("carol@example.test", 2)
        assert lmtp.messages("nobody-here@example.test") == []
        assert "saved mail to INBOX" in lmtp.log()
        root = lmtp.root
    assert not os.path.exists(root)
    # Dovecot stores LF line ends, below the headers it adds (Delivered-To
    # only when the transaction had one recipient)
    assert bob.startswith(b"Return-Path: <a@client.test>\nReceived: from client.test ")
    assert bob.endswith(MESSAGE.replace(b"\r\n", b"\n"))
    assert carol_tag == bob
    # the mailbox is found case-insensitively; the header keeps the case given
    assert carol.startswith(b"Return-Path: <>\nDelivered-To: Carol@Example.test\n")


def test_two_dovecots_side_by_side():
    with peers.DovecotLmtp() as one, peers.DovecotLmtp() as two:
        assert one.port != two.port and one.base_dir != two.base_dir
        for server, rcpt in ((one, "x@one.test"), (two, "y@two.test")):
            with smtplib.LMTP(*server.address, timeout=10) as c:
                assert lmtp_send(c, "a@client.test", [rcpt], MESSAGE)[rcpt][0] == 250
        assert len(one.wait_messages("x@one.test", 1)) == 1
        assert len(two.wait_messages("y@two.test", 1)) == 1
        assert one.messages("y@two.test") == [] and two.messages("x@one.test") == []


def test_dnsmasq_serves_mx_records(tmp_path):
    records = [dnsserver.mx_record("mail.test", "mx2.mail.test", 20),
               dnsserver.mx_record("mail.test", "mx1.mail.test", 10),
               dnsserver.host_record("mx1.mail.test", "127.0.0.2"),
               dnsserver.mx_record("nullmx.test", ".", 0)]
    server = dnsserver.Dnsmasq(str(tmp_path), records).start()
    try:
        assert dnsserver.query_mx(server.port, "mail.test") == [(10, "mx1.mail.test"),
                                                               (20, "mx2.mail.test")]
        assert dnsserver.query_mx(server.port, "nullmx.test") == [(0, ".")]
        assert dnsserver.query_mx(server.port, "nothing.test") == []
        assert dnsserver.query(server.port, "mx1.mail.test") == (0, 1)
    finally:
        server.stop()


def test_sinks_share_a_directory_and_stop(tmp_path):
    one = peers.SmtpSink(str(tmp_path)).start()
    two = peers.SmtpSink(str(tmp_path), hard_reject=["."]).start()
    try:
        with smtplib.SMTP(*one.address, timeout=10) as c:
            c.sendmail("a@client.test", ["b@sink.test"], MESSAGE)
        with smtplib.SMTP(*two.address, timeout=10) as c:
            with pytest.raises(smtplib.SMTPDataError) as e:
                c.sendmail("a@client.test", ["c@sink.test"], MESSAGE)
            assert e.value.smtp_code == 500
        assert [m.recipients for m in one.wait_messages(1)] == [["b@sink.test"]]
        # refused at the dot, received all the same
        assert [m.recipients for m in two.wait_messages(1)] == [["c@sink.test"]]
    finally:
        one.stop()
        two.stop()
    for sink in (one, two):
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex(sink.address) != 0
