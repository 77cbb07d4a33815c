"""Interoperability with a real SMTP client: swaks."""
import re
import shutil
import subprocess

import vsmtpd_e2e as e2e

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"


def swaks(daemon, *args):
    """Run swaks against the daemon; (exit status, its transcript)."""
    cmd = [SWAKS, "--server", "127.0.0.1", "--port", str(daemon.port), "--timeout", "10",
           "--from", "swaks@example.org", *args]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def transcript_id(out):
    ids = re.findall(r"^<-  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$", out, re.M)
    assert len(ids) == 1, out
    return ids[0]


def server_lines(out):
    """Every reply line swaks received ('<-' and '<**' for errors)."""
    return [l[4:] for l in out.splitlines() if l.startswith(("<-  ", "<** "))]


def assert_transcript_codes(out):
    """The enhanced status codes, as swaks saw them: none on the greeting
    and the EHLO/HELO reply, one on every other 2xx/4xx/5xx line."""
    lines = server_lines(out)
    assert lines[0].startswith("220 ")
    i = 1
    # the EHLO / HELO reply
    while lines[i][3:4] == "-":
        i += 1
    i += 1
    for line in lines[i:]:
        e2e.check_esc(int(line[:3]), [line[4:]])


def test_swaks_sends_a_message(daemon):
    rc, out = swaks(daemon, "--to", "swaks-rcpt@example.net", "--helo", "swaks.test.example")
    assert rc == 0, out
    qid = transcript_id(out)
    assert_transcript_codes(out)
    content, env = daemon.message(qid)
    assert env["mail_from"] == "swaks@example.org"
    assert env["helo"] == "swaks.test.example"
    assert env["rcpts"][0]["address"] == "swaks-rcpt@example.net"
    body = e2e.split_received(content)[1]
    assert b"\r\nX-Mailer: swaks" in body
    e2e.assert_crlf_only(body)


def test_swaks_pipelines_the_transaction(daemon):
    rc, out = swaks(daemon, "--pipeline", "--to", "p1@example.net,p2@example.net",
                    "--helo", "swaks.test.example")
    assert rc == 0, out
    # the commands went out together, before their replies
    assert re.search(r"^ -> MAIL FROM:<swaks@example\.org>\n -> RCPT TO:<p1@example\.net>\n"
                     r" -> RCPT TO:<p2@example\.net>\n -> DATA\n<-  250 2\.1\.0 Ok\n"
                     r"<-  250 2\.1\.5 Ok\n<-  250 2\.1\.5 Ok\n<-  354 ", out, re.M), out
    qid = transcript_id(out)
    assert_transcript_codes(out)
    env = daemon.message(qid)[1]
    assert [r["address"] for r in env["rcpts"]] == ["p1@example.net", "p2@example.net"]


def test_swaks_helo_and_custom_data_are_dot_stuffed_and_unstuffed(daemon, tmp_path):
    data = tmp_path / "message.txt"
    data.write_bytes(b"Subject: swaks data\n\n.starts with a dot\n..two dots\nlast line\n")
    rc, out = swaks(daemon, "--protocol", "SMTP", "--helo", "helo.test.example",
                    "--to", "d@example.net", "--data", "@" + str(data))
    assert rc == 0, out
    assert " -> HELO helo.test.example" in out
    assert " -> ..starts with a dot" in out  # swaks stuffed it
    qid = transcript_id(out)
    content, env = daemon.message(qid)
    assert env["protocol"] == "SMTP"
    body = e2e.split_received(content)[1]
    # swaks turns LF into CRLF and may add a CRLF at the end
    assert body.rstrip(b"\r\n") == (b"Subject: swaks data\r\n\r\n.starts with a dot\r\n"
                                    b"..two dots\r\nlast line")


def test_swaks_sees_a_refused_recipient(daemon):
    before = daemon.queued()
    rc, out = swaks(daemon, "--to", "not an address", "--helo", "swaks.test.example")
    assert rc != 0, out
    assert "<** 501 5.1.3 " in out, out
    assert_transcript_codes(out)
    assert daemon.queued() == before


def test_swaks_quit_after_rcpt_queues_nothing(daemon):
    before = daemon.queued()
    rc, out = swaks(daemon, "--to", "q@example.net", "--quit-after", "RCPT")
    assert rc == 0, out
    assert "<-  221 2.0.0 Bye" in out
    assert_transcript_codes(out)
    assert daemon.queued() == before
    e2e.wait_until(lambda: daemon.incoming() == [], what="incoming/ to be emptied")
