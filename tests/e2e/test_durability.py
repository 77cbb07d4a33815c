"""Durability and recovery: a 250 means the message survives kill -9; an
unfinished one never appears in the queue; the master restarts a dead queue
process; broken files are moved aside at start."""
import os
import signal
import stat

import vsmtpd_e2e as e2e


def test_queued_message_survives_kill_9_of_everything(daemons):
    d = daemons()
    body = b"Subject: durable\r\n\r\nmust survive\r\n"
    with d.session() as c:
        qid = c.send_message(body)
    with open(os.path.join(d.queue_dir(), qid), "rb") as f:
        before = f.read()
    pids = d.processes()
    assert d.pid in pids and len(pids) >= 2  # master, queue (and maybe the session)
    d.kill_all()
    assert d.processes() == []
    d.start()
    d.wait_log(r"queue\[\d+\]: info: spool \S+: 1 queued, 0 incomplete removed, 0 corrupt")
    assert d.queued() == [qid]
    with open(os.path.join(d.queue_dir(), qid), "rb") as f:
        assert f.read() == before
    content, env = d.message(qid)
    assert e2e.split_received(content)[1] == body
    # new ids stay above the recovered one
    with d.session() as c:
        new = c.send_message(b"after restart\r\n")
    assert new > qid


def test_message_killed_mid_data_is_not_queued(daemons):
    d = daemons()
    c = d.session()
    c.open_data()
    # more than the session's write buffer, so part of it reaches the file
    c.send(b"Subject: torn\r\n\r\n" + (b"p" * 998 + b"\r\n") * 200)
    incoming = e2e.wait_until(lambda: [n for n in d.incoming()
                                       if os.path.getsize(os.path.join(d.incoming_dir(), n)) > 0],
                              what="content to reach incoming/")
    assert len(incoming) == 1
    d.kill_all()
    c.close()
    assert d.queued() == []
    assert d.incoming() == incoming  # nothing cleaned it up yet
    d.start()
    d.wait_log(r"queue\[\d+\]: info: spool \S+: 0 queued, 1 incomplete removed, 0 corrupt")
    assert d.queued() == []
    assert d.incoming() == []


def test_killed_queue_process_is_restarted(daemons):
    d = daemons()
    old = d.queue_pid()
    idle = d.session()  # a session that outlives its queue
    assert old in d.processes()
    os.kill(old, signal.SIGKILL)
    d.wait_log(r"master\[\d+\]: error: queue process killed by signal 9")
    d.wait_log(r"master\[\d+\]: notice: restarting the queue process in \d+ s")
    # the session open during the crash cannot start a transaction: 451, not a hang
    r = idle.cmd("MAIL FROM:<a@example.org>")
    assert r.code == 451 and r.esc == "4.3.0", r

    def deliver():
        try:
            with e2e.SMTPClient(d.port) as c:
                if c.greeting.code != 220:
                    # turned away while the queue is down: a temporary refusal
                    assert c.greeting.code == 421 and c.greeting.esc == "4.3.0", c.greeting
                    return None
                c.ehlo()
                return c.send_message(b"after the crash\r\n")
        except (EOFError, ConnectionError):
            return None
    qid = e2e.wait_until(deliver, timeout=10, interval=0.2, what="mail to be accepted again")
    assert d.queue_pid() != old
    assert qid in d.queued()
    assert d.alive()


def test_killed_master_takes_the_queue_down_and_sessions_fail_softly(daemons):
    d = daemons()
    c = d.session()
    c.open_data()
    c.send(b"Subject: orphan\r\n\r\nstarted before the crash\r\n")
    queue = d.queue_pid()
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(10)
    d.wait_log(r"queue\[%d\]: notice: master channel closed: stopping" % queue)
    e2e.wait_until(lambda: queue not in d.processes(), what="the queue process to exit")
    # the orphaned session cannot commit: a temporary failure, never a 250
    c.send(b".\r\n")
    r = c.read_reply()
    assert r.code == 451 and r.esc == "4.3.0", r
    c.close()
    e2e.wait_until(lambda: d.processes() == [], what="the session to exit")
    assert d.queued() == [] and d.incoming() == []
    # a new daemon takes over the port and the spool
    d.start()
    with d.session() as c2:
        qid = c2.send_message(b"new master\r\n")
    assert d.queued() == [qid]


def test_broken_queue_file_is_moved_to_corrupt(daemons):
    d = daemons(start=False)
    d.start()
    with d.session() as c:
        good = c.send_message(b"good\r\n")
    d.stop()
    bad = "0000000000000001"
    with open(os.path.join(d.queue_dir(), bad), "wb") as f:
        f.write(b"Received: torn\r\nno trailer here\r\n")
    os.chmod(os.path.join(d.queue_dir(), bad), 0o644)
    d.start()
    d.wait_log(r"queue\[\d+\]: info: spool \S+: 1 queued, 0 incomplete removed, 1 corrupt")
    assert d.queued() == [good]
    assert os.listdir(os.path.join(d.spool, "corrupt")) == [bad]


def test_spool_directories_are_private(daemon):
    _, _, uid, gid = e2e.run_user() if e2e.IS_ROOT else (None, None, os.getuid(), os.getgid())
    for sub in ("", "incoming", "queue", "corrupt"):
        st = os.stat(os.path.join(daemon.spool, sub))
        assert stat.S_IMODE(st.st_mode) == 0o700, sub
        assert st.st_uid == uid, sub
    with daemon.session() as c:
        qid = c.send_message(b"mode\r\n")
    st = os.stat(os.path.join(daemon.queue_dir(), qid))
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == uid
