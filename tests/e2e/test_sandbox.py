"""Privileges: started as root, vsmtpd binds its sockets and then runs every
process as the configured user; session processes also have no_new_privs.
Started as another user it keeps that user (and sessions still get
no_new_privs)."""
import errno
import os
import socket

import vsmtpd_e2e as e2e


def expected_ids():
    if e2e.IS_ROOT:
        _, _, uid, gid = e2e.run_user()
        return uid, gid
    return os.getuid(), os.getgid()


def ids(status, key):
    return [int(x) for x in status[key].split()]


def assert_unprivileged(status):
    uid, gid = expected_ids()
    assert ids(status, "Uid") == [uid] * 4, status["Uid"]
    assert ids(status, "Gid") == [gid] * 4, status["Gid"]
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapPrm"], 16) == 0
    if e2e.IS_ROOT:
        assert ids(status, "Groups") == [gid]


def test_session_process_runs_unprivileged_with_no_new_privs(daemon):
    with daemon.client() as c:
        pid = daemon.session_pid(c.local_port)
        assert pid in daemon.processes()
        status = e2e.proc_status(pid)
        assert_unprivileged(status)
        assert status["NoNewPrivs"] == "1"
        c.quit()


def test_master_and_queue_run_unprivileged(daemon):
    master = e2e.proc_status(daemon.pid)
    assert_unprivileged(master)
    queue = e2e.proc_status(daemon.queue_pid())
    assert_unprivileged(queue)
    if e2e.IS_ROOT:
        daemon.wait_log(r"master\[\d+\]: info: running as user nobody \(uid %d, gid %d\)"
                        % expected_ids())
    else:
        assert "running as user" not in daemon.log()


def _free_low_port():
    for port in range(1023, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError as e:
                if e.errno == errno.EACCES:
                    return port  # cannot even try: still a free candidate
    raise AssertionError("no free port below 1024 on 127.0.0.1")


def test_privileged_port_is_bound_before_dropping_root(daemons):
    port = _free_low_port()
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        unprivileged_start = int(f.read())
    d = daemons(addresses=f"127.0.0.1:{port}", start=False)
    d.port = port
    if e2e.IS_ROOT or port >= unprivileged_start:
        d.start()
        assert_unprivileged(e2e.proc_status(d.pid))
        with d.session() as c:
            c.send_message(b"low port\r\n")
    else:
        d.start(wait=False)
        assert d.wait_exit() == 1
        assert f"cannot listen on 127.0.0.1:{port}: Permission denied" in d.log()
