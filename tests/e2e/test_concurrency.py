"""Many sessions at once: every message gets its own id and its own file,
with the content its session sent."""
import re
import smtplib
import threading

import vsmtpd_e2e as e2e

THREADS = 20
PER_THREAD = 5


def test_20_concurrent_sessions_of_5_messages_each(module_daemons):
    d = module_daemons({"limits": {"max_sessions_per_ip": "30"}}, label="-many")
    results, errors = {}, []
    start = threading.Barrier(THREADS, timeout=10)

    def worker(t):
        try:
            with smtplib.SMTP("127.0.0.1", d.port, local_hostname=f"t{t}.test.example",
                              timeout=10) as s:
                start.wait()
                assert s.ehlo()[0] == 250
                for m in range(PER_THREAD):
                    assert s.mail(f"t{t}@example.org")[0] == 250
                    assert s.rcpt(f"m{m}@example.net")[0] == 250
                    code, msg = s.data(f"Subject: t{t} m{m}\r\n\r\nthread {t} message {m}\r\n")
                    assert code == 250, (code, msg)
                    e2e.check_esc(code, [msg.decode()])
                    qid = re.fullmatch(r"2\.0\.0 Ok: queued as ([0-9A-F]{16})",
                                       msg.decode()).group(1)
                    results[(t, m)] = qid
        except BaseException as e:  # reported by the main thread
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads), "a session hung"
    assert errors == []
    assert len(results) == THREADS * PER_THREAD
    ids = set(results.values())
    assert len(ids) == THREADS * PER_THREAD, "ids were reused"
    assert set(d.queued()) == ids
    for (t, m), qid in results.items():
        content, env = d.message(qid)
        assert e2e.split_received(content)[1] == \
            f"Subject: t{t} m{m}\r\n\r\nthread {t} message {m}\r\n".encode()
        assert env["mail_from"] == f"t{t}@example.org"
        assert env["helo"] == f"t{t}.test.example"
        assert env["rcpts"][0]["address"] == f"m{m}@example.net"
    assert d.incoming() == []
    # the queue counted every commit
    d.stop()
    m = d.wait_log(r"queue\[\d+\]: info: stopped: (\d+) messages committed in (\d+) flushes")
    assert int(m[-1].group(1)) == THREADS * PER_THREAD
