"""SMTP smuggling (CVE-2023-51764 and kin): only CRLF.CRLF ends DATA.

Each variant hides a second transaction behind an end-of-data look-alike
built from bare CR / LF. The server must answer the real end marker exactly
once, never run the hidden text as commands, and either refuse the message
(the default) or store it whole with its line ends normalized."""
import pytest

import vsmtpd_e2e as e2e

SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nsmuggled\r\n"

VARIANTS = {
    "lf-dot-lf": b"\n.\n",
    "cr-dot-cr": b"\r.\r",
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "crlf-dot-cr": b"\r\n.\r",
    "dot-lf-at-start": b".\n",
    "crlf-dot-cr-crlf": b"\r\n.\r\r\n",
    "lf-dot-cr": b"\n.\r",
    "cr-dot-crlf": b"\r.\r\n",
}


def smuggling_data(variant):
    """The DATA content (without the final '.\\r\\n')."""
    if variant.startswith(b"."):
        return variant + SMUGGLED
    return b"Subject: smuggling\r\n\r\nhello" + variant + SMUGGLED


@pytest.fixture(scope="module")
def normalizing(module_daemons):
    return module_daemons({"smtp": {"bare_line_endings": "normalize"}}, label="-normalize")


def send_smuggling(daemon, variant):
    """One transaction with the variant; returns (reply to the end of data,
    the session summary line)."""
    with daemon.session() as c:
        c.mail("sender@example.org")
        c.rcpt("rcpt@example.net")
        c.expect("DATA", 354)
        c.send(smuggling_data(variant) + b".\r\n")
        reply = c.read_reply()
        # Exactly one reply: the next one is NOOP's, and nothing else follows.
        c.send(b"NOOP\r\n")
        nxt = c.read_reply()
        assert str(nxt) == "250 2.0.0 Ok", f"extra reply after the end of data: {nxt!r}"
        assert c.pending(0.1) == b"", "more replies than commands"
        c.quit()
    return reply, daemon.session_summary(c.local_port)


@pytest.mark.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))
def test_smuggled_end_of_data_is_refused_by_default(daemon, variant):
    before = daemon.queued()
    reply, summary = send_smuggling(daemon, variant)
    assert reply.code == 550 and reply.esc == "5.6.0", reply
    assert daemon.queued() == before, "a message was queued"
    e2e.wait_until(lambda: daemon.incoming() == [], what="incoming/ to be emptied")
    # one MAIL, one RCPT, one DATA that failed: nothing smuggled was run
    assert summary.startswith("ehlo=1 mail=1 rcpt=1 data=0/1 noop=1 quit=1 "), summary
    assert "queued=0" in summary


@pytest.mark.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))
def test_smuggled_text_is_content_when_normalizing(normalizing, variant):
    before = normalizing.queued()
    reply, summary = send_smuggling(normalizing, variant)
    qid = e2e.queued_id(reply)
    assert sorted(set(normalizing.queued()) - set(before)) == [qid], "not exactly one message"
    content, env = normalizing.message(qid)
    body = e2e.split_received(content)[1]
    e2e.assert_crlf_only(body)
    assert body.endswith(SMUGGLED), body
    assert [r["address"] for r in env["rcpts"]] == ["rcpt@example.net"]
    assert env["mail_from"] == "sender@example.org"
    assert summary.startswith("ehlo=1 mail=1 rcpt=1 data=1 noop=1 quit=1 "), summary


@pytest.mark.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))
def test_smuggling_in_one_write_with_pipelined_commands(daemon, variant):
    """The whole attempt in one packet, as a smuggling client sends it."""
    before = daemon.queued()
    with daemon.client() as c:
        c.send(b"EHLO attacker.example\r\nMAIL FROM:<sender@example.org>\r\n"
               b"RCPT TO:<rcpt@example.net>\r\nDATA\r\n")
        assert c.read_reply(esc=False).code == 250
        assert c.read_reply().code == 250
        assert c.read_reply().code == 250
        assert c.read_reply().code == 354
        c.send(smuggling_data(variant) + b".\r\nQUIT\r\n")
        r = c.read_reply()
        assert r.code == 550 and r.esc == "5.6.0", r
        assert c.read_reply().code == 221
        c.expect_eof()
    assert daemon.queued() == before
