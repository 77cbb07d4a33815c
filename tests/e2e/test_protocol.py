"""The SMTP dialogue: greeting, EHLO/HELO, the commands and their replies,
command order, and what reaches the spool's envelope."""
import email.message
import email.policy
import re
import smtplib
import time

import pytest

import vsmtpd_e2e as e2e
from vsmtpd_e2e import CLIENT_NAME, HOSTNAME, check_esc, queued_id

BODY = "Subject: hello\r\n\r\nHello, world.\r\n"


def test_greeting_names_the_host_and_banner(daemon):
    with daemon.client() as c:
        assert c.greeting.code == 220
        assert str(c.greeting) == f"220 {HOSTNAME} ESMTP vsmtpd"


def test_ehlo_lists_the_extensions(daemon):
    with daemon.client() as c:
        r = c.ehlo()
        assert r.lines == [HOSTNAME, "PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8",
                           "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"]


def test_helo_replies_with_the_hostname_only(daemon):
    with daemon.client() as c:
        r = c.helo()
        assert str(r) == f"250 {HOSTNAME}"


@pytest.mark.parametrize("name", ["[192.0.2.1]", "[IPv6:::1]", "[IPv6:2001:db8::25]",
                                  "host-1.example", "under_score.example", "localhost"])
def test_ehlo_accepts_domains_and_address_literals(daemon, name):
    with daemon.client() as c:
        assert c.cmd(f"EHLO {name}", esc=False).code == 250
        assert c.cmd(f"HELO {name}", esc=False).code == 250


def test_helo_name_is_stored_without_surrounding_blanks(daemon):
    with daemon.client() as c:
        assert c.cmd("EHLO   spaced.test.example   ", esc=False).code == 250
        qid = c.send_message(BODY)
        c.quit()
    content, env = daemon.message(qid)
    assert env["helo"] == "spaced.test.example"
    assert content.startswith(b"Received: from spaced.test.example ([127.0.0.1])\r\n"), content[:60]
    summary = daemon.wait_log(r"disconnect from (.*)\[127\.0\.0\.1\]:%d " % c.local_port)
    assert summary[-1].group(1) == "spaced.test.example"


@pytest.mark.parametrize("args,esc", [("", "5.5.4"), (" ", "5.5.4"), ("-bad.example", "5.5.2"),
                                      ("bad..example", "5.5.2"), ("[999.1.1.1]", "5.5.2"),
                                      ("[IPv6:zz::1]", "5.5.2"), ("two words", "5.5.2"),
                                      ("[tag:content]", "5.5.2")])
def test_ehlo_rejects_bad_names(daemon, args, esc):
    with daemon.client() as c:
        for verb in ("EHLO", "HELO"):
            r = c.cmd(f"{verb} {args}" if args else verb)
            assert r.code == 501 and r.esc == esc, r
        # nothing was accepted: still no HELO
        c.expect("MAIL FROM:<a@example.org>", 503, "5.5.1")


def test_plain_message_is_queued_with_smtplib(daemon):
    with smtplib.SMTP("127.0.0.1", daemon.port, local_hostname=CLIENT_NAME, timeout=10) as s:
        code, msg = s.ehlo()
        assert code == 250
        code, msg = s.mail("alice@example.org")
        assert code == 250
        check_esc(code, [msg.decode()])
        code, msg = s.rcpt("bob@example.net")
        assert code == 250
        check_esc(code, [msg.decode()])
        code, msg = s.data(BODY.encode())
        assert code == 250
        check_esc(code, [msg.decode()])
        qid = re.fullmatch(r"2\.0\.0 Ok: queued as ([0-9A-F]{16})", msg.decode()).group(1)
        port = s.sock.getsockname()[1]
    content, env = daemon.message(qid)
    received, rest = e2e.split_received(content)
    assert rest == BODY.encode()
    assert env["id"] == qid
    assert env["mail_from"] == "alice@example.org"
    assert [r["address"] for r in env["rcpts"]] == ["bob@example.net"]
    summary = daemon.session_summary(port)
    assert summary == (f"ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5 queued=1 ids={qid} "
                       "result=ok")


def test_smtplib_sendmail_reports_the_refused_recipient(daemon):
    msg = email.message.EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = "bob@example.net"
    msg["Subject"] = "smtplib"
    msg.set_content("first line\n.a line with a leading dot\n..and two\n")
    before = set(daemon.queued())
    with smtplib.SMTP("127.0.0.1", daemon.port, local_hostname=CLIENT_NAME, timeout=10) as s:
        refused = s.sendmail("alice@example.org",
                             ["bob@example.net", "bad address", "carol@example.net"],
                             msg.as_bytes(policy=email.policy.SMTP),
                             mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=FAILURE"])
    assert list(refused) == ["bad address"]
    code, text = refused["bad address"]
    assert code == 501
    check_esc(code, [text.decode()])
    new = set(daemon.queued()) - before
    assert len(new) == 1
    content, env = daemon.message(new.pop())
    assert [r["address"] for r in env["rcpts"]] == ["bob@example.net", "carol@example.net"]
    assert all(r["notify"] == 4 for r in env["rcpts"])
    assert e2e.split_received(content)[1] == msg.as_bytes(policy=email.policy.SMTP)


def test_envelope_records_the_session(daemon):
    with daemon.session() as c:
        c.mail("sender@example.org", " BODY=8BITMIME")
        c.rcpt("one@example.net")
        c.rcpt("two@example.net")
        before = time.time()
        qid = queued_id(c.data(BODY))
        c.quit()
    content, env = daemon.message(qid)
    assert env["id"] == qid
    assert env["listener"] == "smtp"
    assert env["client_ip"] == "127.0.0.1"
    assert env["client_port"] == c.local_port
    assert env["helo"] == CLIENT_NAME
    assert env["protocol"] == "ESMTP"
    assert env["mail_from"] == "sender@example.org"
    assert env["body"] == 2  # 8BITMIME
    assert env["smtputf8"] == 0
    assert env["ret"] == 0
    assert "envid" not in env and "auth" not in env
    assert abs(env["received_at"] - before) < 60
    assert env["rcpts"] == [{"address": "one@example.net", "notify": 0},
                            {"address": "two@example.net", "notify": 0}]


def test_received_header_is_prepended(daemon):
    with daemon.session() as c:
        qid = c.send_message(BODY, rcpts=["only@example.net"])
    content, env = daemon.message(qid)
    received, rest = e2e.split_received(content)
    assert rest == BODY.encode()
    m = re.fullmatch(
        rb"Received: from client\.test\.example \(\[127\.0\.0\.1\]\)\r\n"
        rb"\tby mx\.test\.example \(vsmtpd\) with ESMTP id ([0-9A-F]{16})\r\n"
        rb"\tfor <only@example\.net>; [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} "
        rb"\d{2}:\d{2}:\d{2} [+-]\d{4}\r\n", received)
    assert m is not None, received
    assert m.group(1).decode() == qid


def test_received_header_with_several_recipients_has_no_for_clause(daemon):
    with daemon.client() as c:
        c.helo()
        qid = c.send_message(BODY, rcpts=["a@example.net", "b@example.net"])
    content, env = daemon.message(qid)
    received, _ = e2e.split_received(content)
    assert b"\tby mx.test.example (vsmtpd) with SMTP id " + qid.encode() + b";" in received
    assert b"for <" not in received
    assert env["protocol"] == "SMTP"


def test_ids_are_unique_and_increasing(daemon):
    with daemon.session() as c:
        ids = [c.send_message(BODY) for _ in range(5)]
    assert all(e2e.ID_RE.match(i) for i in ids)
    assert ids == sorted(set(ids))
    for i in ids:
        assert i in daemon.queued()


def test_commands_are_case_insensitive(daemon):
    with daemon.client() as c:
        assert c.cmd(f"ehlo {CLIENT_NAME}", esc=False).code == 250
        c.expect("mail from:<lower@example.org>", 250, "2.1.0")
        c.expect("rCpT tO:<mixed@example.net>", 250, "2.1.5")
        c.expect("data", 354)
        c.send(BODY + ".\r\n")
        qid = queued_id(c.read_reply())
    _, env = daemon.message(qid)
    assert env["mail_from"] == "lower@example.org"


@pytest.mark.parametrize("line,code,esc", [
    ("NOOP", 250, "2.0.0"),
    ("NOOP anything at all", 250, "2.0.0"),
    ("RSET", 250, "2.0.0"),
    ("VRFY someone", 252, "2.0.0"),
    ("VRFY", 501, "5.5.4"),
    ("EXPN list", 502, "5.5.1"),
    ("FOO", 500, "5.5.2"),
    ("MAILX FROM:<a@b.example>", 500, "5.5.2"),
    ("TURN", 500, "5.5.2"),
    # no certificate and no AUTH on the default test listener
    ("STARTTLS", 502, "5.5.1"),
    ("AUTH PLAIN", 503, "5.5.1"),
    ("RSET now", 501, "5.5.4"),
    ("QUIT now", 501, "5.5.4"),
    ("NOOP \x01", 500, "5.5.2"),
    ("NOOP \x7f", 500, "5.5.2"),
    ("NOOP \x00", 500, "5.5.2"),
    ("NOOP a\rb", 500, "5.5.2"),
])
def test_simple_command_replies(daemon, line, code, esc):
    with daemon.session() as c:
        c.expect(line, code, esc)
        c.expect("NOOP", 250, "2.0.0")  # the session goes on


def test_help_is_a_multiline_214(daemon):
    with daemon.client() as c:
        r = c.cmd("HELP")
        assert r.code == 214 and len(r.lines) == 2
        assert all(t.startswith("2.0.0 ") for t in r.lines)


def test_quit_says_bye_and_closes(daemon):
    c = daemon.client()
    c.expect("QUIT", 221, "2.0.0")
    c.expect_eof()
    summary = daemon.session_summary(c.local_port)
    assert summary == "quit=1 commands=1 queued=0 result=ok"


def test_mail_before_helo_is_a_bad_sequence(daemon):
    with daemon.client() as c:
        r = c.expect("MAIL FROM:<a@example.org>", 503, "5.5.1")
        assert "HELO" in r.text


def test_nested_mail_is_a_bad_sequence(daemon):
    with daemon.session() as c:
        c.mail()
        c.expect("MAIL FROM:<b@example.org>", 503, "5.5.1")
        c.rcpt()
        c.expect("MAIL FROM:<b@example.org>", 503, "5.5.1")
        # the first transaction is intact
        qid = queued_id(c.data(BODY))
    _, env = daemon.message(qid)
    assert env["mail_from"] == "sender@example.org"


def test_rcpt_before_mail_is_a_bad_sequence(daemon):
    with daemon.session() as c:
        c.expect("RCPT TO:<a@example.net>", 503, "5.5.1")


def test_data_before_mail_or_rcpt_is_a_bad_sequence(daemon):
    with daemon.session() as c:
        c.expect("DATA", 503, "5.5.1")
        c.mail()
        c.expect("DATA", 503, "5.5.1")
        c.rcpt()
        c.expect("DATA", 354)
        c.send(BODY + ".\r\n")
        queued_id(c.read_reply())


def test_data_with_an_argument_is_a_syntax_error(daemon):
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        c.expect("DATA now", 501, "5.5.4")
        c.expect("DATA", 354)
        c.send(BODY + ".\r\n")
        queued_id(c.read_reply())


def test_rset_abandons_the_transaction(daemon):
    before = daemon.queued()
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        c.expect("RSET", 250, "2.0.0")
        c.expect("DATA", 503, "5.5.1")
        c.expect("RCPT TO:<x@example.net>", 503, "5.5.1")
        c.mail("second@example.org")
        c.rcpt()
        qid = queued_id(c.data(BODY))
    assert set(daemon.queued()) - set(before) == {qid}
    assert daemon.message(qid)[1]["mail_from"] == "second@example.org"
    e2e.wait_until(lambda: daemon.incoming() == [], what="incoming/ to be emptied")


def test_ehlo_again_resets_the_transaction(daemon):
    with daemon.session() as c:
        c.mail()
        c.rcpt()
        c.ehlo()
        c.expect("DATA", 503, "5.5.1")


def test_null_sender_is_accepted(daemon):
    with daemon.session() as c:
        c.expect("MAIL FROM:<>", 250, "2.1.0")
        c.rcpt()
        qid = queued_id(c.data(BODY))
    assert daemon.message(qid)[1]["mail_from"] == ""


def test_null_recipient_is_refused(daemon):
    with daemon.session() as c:
        c.mail()
        c.expect("RCPT TO:<>", 501, "5.1.3")


def test_postmaster_without_domain_is_a_valid_recipient(daemon):
    with daemon.session() as c:
        c.mail()
        c.expect("RCPT TO:<postmaster>", 250, "2.1.5")
        c.expect("RCPT TO:<PostMaster>", 250, "2.1.5")
        qid = queued_id(c.data(BODY))
        # but not as a sender, nor any other local part
        c.expect("MAIL FROM:<postmaster>", 501, "5.1.7")
        c.mail()
        c.expect("RCPT TO:<webmaster>", 501, "5.1.3")
    assert [r["address"] for r in daemon.message(qid)[1]["rcpts"]] == ["postmaster", "PostMaster"]


def test_source_routes_are_accepted_and_dropped(daemon):
    with daemon.session() as c:
        c.expect("MAIL FROM:<@relay.example,@hop.example:user@example.org>", 250, "2.1.0")
        c.expect("RCPT TO:<@hop.example:rcpt@example.net>", 250, "2.1.5")
        qid = queued_id(c.data(BODY))
    env = daemon.message(qid)[1]
    assert env["mail_from"] == "user@example.org"
    assert env["rcpts"][0]["address"] == "rcpt@example.net"


@pytest.mark.parametrize("address", [
    '"john doe"@example.org', '"quoted\\"quote"@example.org', "user+tag@example.org",
    "a.b.c@example.org", "user@[192.0.2.7]", "user@[IPv6:2001:db8::7]",
    "!#$%&'*+-/=?^_`{|}~@example.org",
])
def test_unusual_but_valid_addresses_are_kept_as_written(daemon, address):
    with daemon.session() as c:
        c.mail(address)
        c.rcpt(address)
        qid = queued_id(c.data(BODY))
    env = daemon.message(qid)[1]
    assert env["mail_from"] == address
    assert env["rcpts"][0]["address"] == address


def test_blank_after_the_colon_is_tolerated(daemon):
    with daemon.session() as c:
        c.expect("MAIL FROM: <a@example.org>", 250, "2.1.0")
        c.expect("RCPT TO: <b@example.net>", 250, "2.1.5")


@pytest.mark.parametrize("line,code,esc", [
    ("MAIL FROM:a@example.org", 501, "5.5.4"),
    ("MAIL TO:<a@example.org>", 501, "5.5.4"),
    ("MAIL", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org>junk", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org", 501, "5.1.7"),
    ("MAIL FROM:<a..b@example.org>", 501, "5.1.7"),
    ("MAIL FROM:<.a@example.org>", 501, "5.1.7"),
    ("MAIL FROM:<a.@example.org>", 501, "5.1.7"),
    ("MAIL FROM:<a@example..org>", 501, "5.1.7"),
    ("MAIL FROM:<a@-example.org>", 501, "5.1.7"),
    ("MAIL FROM:<a@ex_ample.org>", 501, "5.1.7"),
    ("MAIL FROM:<a b@example.org>", 501, "5.1.7"),
    ("MAIL FROM:<a@[300.1.1.1]>", 501, "5.1.7"),
    ("MAIL FROM:<a@>", 501, "5.1.7"),
    ("MAIL FROM:<@example.org>", 501, "5.1.7"),
    ("MAIL FROM:<a@example.org> SIZE=abc", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> SIZE=", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> SIZE=1 SIZE=2", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> BODY=9BIT", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> RET=ALL", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> ENVID=", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> ENVID=a+2", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> SMTPUTF8=yes", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> FOO=bar", 555, "5.5.4"),
    ("MAIL FROM:<a@example.org> XVERP", 555, "5.5.4"),
])
def test_bad_mail_commands_are_refused(daemon, line, code, esc):
    with daemon.session() as c:
        c.expect(line, code, esc)
        c.mail()  # the session is still usable, with no transaction


@pytest.mark.parametrize("line,code,esc", [
    ("RCPT TO:b@example.net", 501, "5.5.4"),
    ("RCPT FROM:<b@example.net>", 501, "5.5.4"),
    ("RCPT TO:<b@example.net>x", 501, "5.5.4"),
    ("RCPT TO:<b@example.net", 501, "5.1.3"),
    ("RCPT TO:<b@@example.net>", 501, "5.1.3"),
    ("RCPT TO:<b@example.net.>", 501, "5.1.3"),
    ("RCPT TO:<b>", 501, "5.1.3"),
    ("RCPT TO:<b@example.net> NOTIFY=SOMETIMES", 501, "5.5.4"),
    ("RCPT TO:<b@example.net> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"),
    ("RCPT TO:<b@example.net> ORCPT=b@example.net", 501, "5.5.4"),
    ("RCPT TO:<b@example.net> ORCPT=x400;b", 501, "5.5.4"),
    ("RCPT TO:<b@example.net> SIZE=10", 555, "5.5.4"),
    ("RCPT TO:<b@example.net> FOO", 555, "5.5.4"),
])
def test_bad_rcpt_commands_are_refused(daemon, line, code, esc):
    with daemon.session() as c:
        c.mail()
        c.expect(line, code, esc)
        c.rcpt()  # the transaction goes on


def test_unknown_parameter_is_named_in_the_reply(daemon):
    with daemon.session() as c:
        r = c.expect("MAIL FROM:<a@example.org> X-FOO=1", 555, "5.5.4")
        assert r.text.endswith("X-FOO")


def test_local_part_length_limit(daemon):
    ok, bad = "l" * 64, "l" * 65
    with daemon.session() as c:
        c.mail(f"{ok}@example.org")
        c.rcpt(f"{ok}@example.net")
        c.expect(f"RCPT TO:<{bad}@example.net>", 501, "5.1.3")
        c.expect("RSET", 250, "2.0.0")
        c.expect(f"MAIL FROM:<{bad}@example.org>", 501, "5.1.7")


def _domain(length):
    """A valid domain name of exactly `length` characters."""
    labels, left = [], length
    while left > 0:
        n = min(63, left)
        if left - n == 1:  # no room for a dot and a label: shorten this one
            n -= 2
        labels.append("d" * n)
        left -= n + 1
    name = ".".join(labels)
    assert len(name) == length
    return name


def test_path_length_limit_is_256_with_the_brackets(daemon):
    local = "l" * 64
    fits = f"{local}@{_domain(256 - 2 - 65)}"  # <...> is exactly 256
    too_long = f"{local}@{_domain(256 - 2 - 64)}"  # 257
    with daemon.session() as c:
        c.mail(fits)
        c.rcpt(fits)
        c.expect(f"RCPT TO:<{too_long}>", 501, "5.1.3")
        qid = queued_id(c.data(BODY))
        c.expect(f"MAIL FROM:<{too_long}>", 501, "5.1.7")
    env = daemon.message(qid)[1]
    assert env["mail_from"] == fits and env["rcpts"][0]["address"] == fits


def test_domain_over_255_is_refused(daemon):
    with daemon.session() as c:
        c.expect(f"MAIL FROM:<a@{_domain(256)}>", 501, "5.1.7")
        c.mail()
        c.expect(f"RCPT TO:<a@{_domain(256)}>", 501, "5.1.3")


def test_label_over_63_is_refused(daemon):
    with daemon.session() as c:
        c.expect(f"MAIL FROM:<a@{'x' * 64}.example>", 501, "5.1.7")
        c.mail(f"a@{'x' * 63}.example")


def test_utf8_address_needs_smtputf8(daemon):
    with daemon.session() as c:
        c.expect("MAIL FROM:<jörg@example.org>", 553, "5.6.7")
        c.expect("MAIL FROM:<user@bücher.example>", 553, "5.6.7")
        c.mail("ascii@example.org")
        c.expect("RCPT TO:<zoë@example.net>", 553, "5.6.7")


def test_smtputf8_message_is_accepted_and_recorded(daemon):
    with daemon.session() as c:
        c.mail("jörg@bücher.example", " SMTPUTF8")
        c.rcpt("zoë@例え.jp")
        qid = queued_id(c.data("Subject: grüße\r\n\r\nÜnïcödé\r\n".encode()))
    content, env = daemon.message(qid)
    assert env["smtputf8"] == 1
    assert env["protocol"] == "UTF8SMTP"
    assert env["mail_from"] == "jörg@bücher.example"
    assert env["rcpts"][0]["address"] == "zoë@例え.jp"
    received, rest = e2e.split_received(content)
    assert b" with UTF8SMTP id " in received
    assert rest == "Subject: grüße\r\n\r\nÜnïcödé\r\n".encode()


def test_malformed_utf8_address_is_refused_even_with_smtputf8(daemon):
    with daemon.session() as c:
        # an overlong encoding of '@' and a lone continuation byte
        c.send(b"MAIL FROM:<a\xc0\x80b@example.org> SMTPUTF8\r\n")
        r = c.read_reply()
        assert r.code == 501 and r.esc == "5.1.7", r
        c.send(b"MAIL FROM:<a\x80@example.org> SMTPUTF8\r\n")
        r = c.read_reply()
        assert r.code == 501 and r.esc == "5.1.7", r


def test_dsn_parameters_are_kept_in_the_envelope(daemon):
    with daemon.session() as c:
        c.mail("dsn@example.org", " RET=HDRS ENVID=QQ314159+2Bx")
        c.rcpt("one@example.net", " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;one+2Btag@example.net")
        c.rcpt("two@example.net", " NOTIFY=NEVER")
        c.rcpt("three@example.net", " ORCPT=RFC822;Three@Example.NET NOTIFY=delay")
        c.rcpt("four@example.net")
        qid = queued_id(c.data(BODY))
    env = daemon.message(qid)[1]
    assert env["ret"] == 2  # HDRS
    assert env["envid"] == "QQ314159+x"
    assert env["rcpts"] == [
        {"address": "one@example.net", "notify": 2 | 4, "orcpt_type": "rfc822",
         "orcpt": "one+tag@example.net"},
        {"address": "two@example.net", "notify": 1},
        {"address": "three@example.net", "notify": 8, "orcpt_type": "rfc822",
         "orcpt": "Three@Example.NET"},
        {"address": "four@example.net", "notify": 0},
    ]


def test_ret_full_and_auth_are_kept(daemon):
    with daemon.session() as c:
        c.mail("a@example.org", " RET=full AUTH=<> SIZE=100 BODY=7BIT")
        c.rcpt()
        qid = queued_id(c.data(BODY))
    env = daemon.message(qid)[1]
    assert env["ret"] == 1 and env["auth"] == "<>" and env["body"] == 1


def test_size_within_the_limit_is_accepted(daemon):
    with daemon.session() as c:
        c.mail("a@example.org", " SIZE=26214400")
        c.expect("RSET", 250, "2.0.0")
        c.expect("MAIL FROM:<a@example.org> SIZE=26214401", 552, "5.3.4")
        c.expect("MAIL FROM:<a@example.org> SIZE=99999999999999999999999", 501, "5.5.4")


def test_ipv6_client_is_recorded(module_daemons):
    port = e2e.free_port("::1")
    d = module_daemons(addresses=f"127.0.0.1:{e2e.free_port()} [::1]:{port}", label="-ipv6")
    with e2e.SMTPClient(port, host="::1") as c:
        assert str(c.greeting) == f"220 {HOSTNAME} ESMTP vsmtpd"
        c.ehlo("[IPv6:::1]")
        qid = c.send_message(BODY, rcpts=["v6@example.net"])
    content, env = d.message(qid)
    assert env["client_ip"] == "::1"
    assert content.startswith(b"Received: from [IPv6:::1] ([IPv6:::1])\r\n")
    d.wait_log(r"listening on \[::1\]:%d \(smtp\)" % port)
