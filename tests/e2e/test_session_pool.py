"""The pool of session processes: each serves many connections, one at a
time, and nothing of one connection is visible in the next.

The pool hands a connection to the idle process that finished last, so with
one spare process, connections made one after another go to the same
process; the tests check that from the pids in the log and then look for
what the previous connection could have left behind: rule state, the SMTP
transaction, HELO, AUTH, TLS sessions, descriptors. The rest is the pool's
own behaviour: max_use, the limits counting connections, idle processes
ending, reload, a killed process, and the counts it logs."""
import os
import re
import signal
import ssl
import subprocess
import time

import pytest

import sasltools
import tlscerts
import vsmtpd_e2e as e2e
from sasltools import plain_response

STATE_RULES = """\
-- state a rule changes: each connection must see it as loaded
local counter = 0
local seen = {}
totals = {mails = 0, nested = {depth = 2}}
local loaded_at = os.time()
local shared = setmetatable({}, {__index = function() return "default" end})

return {
  mail = {
    rule "show state" (function(ctx)
      counter = counter + 1
      seen[#seen + 1] = ctx.client_port
      totals.mails = totals.mails + 1
      totals.nested.depth = totals.nested.depth + 1
      local before = shared.anything
      getmetatable(shared).__index = function() return "changed" end
      string.extra = string.extra or "set"
      return status.info(code(451, "4.7.1", string.format(
        "counter=%d seen=%d mails=%d depth=%d meta=%s extra=%s at=%d",
        counter, #seen, totals.mails, totals.nested.depth, before,
        tostring(string.extra), loaded_at)))
    end),
  },
}
"""

AUTH_RULES = """\
return {
  mail = {
    action "show" (function(ctx)
      log("info", "mail stage: is_authenticated=" .. tostring(ctx.is_authenticated)
          .. " authid=" .. tostring(ctx.auth and ctx.auth.authid))
    end),
  },
}
"""

USER = ("alice@test.example", "Alice-pw.31")


def pool(**limits):
    settings = {"limits": {"spare_processes": "1"}}
    for key, value in limits.items():
        section = "timeouts" if key == "max_idle" else "limits"
        settings.setdefault(section, {})[key] = str(value)
    return settings


def pid_of(d, c):
    return d.session_pid(c.local_port)


def ended(d, c):
    """Wait until the session of client c has logged its summary."""
    return d.session_summary(c.local_port)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def session_processes(d):
    """Pids of the daemon's session processes: all of its processes but the
    master, the queue and the delivery worker."""
    others = {d.pid} | {int(p) for p in
                        re.findall(r"vsmtpd (?:queue|delivery)\[(\d+)\]", d.log())}
    return sorted(set(d.processes()) - others)


def state_reply(c):
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@example.org>")
    assert r.code == 451, r
    return r.text


def test_connections_reuse_one_process_and_see_the_rules_as_loaded(daemons):
    d = daemons(pool(), rules=STATE_RULES)
    texts, pids = [], []
    for _ in range(3):
        with d.client() as c:
            first = state_reply(c)
            second = c.cmd("MAIL FROM:<a@example.org>").text
            c.quit()
        ended(d, c)
        pids.append(pid_of(d, c))
        texts.append((first, second))
    assert len(set(pids)) == 1, f"the connections were not served by one process: {pids}"
    loaded_at = re.search(r"at=(\d+)", texts[0][0]).group(1)
    for first, second in texts:
        # within a connection the rules keep their state...
        assert (f"counter=1 seen=1 mails=1 depth=3 meta=default extra=set at={loaded_at}"
                in first), first
        assert (f"counter=2 seen=2 mails=2 depth=4 meta=changed extra=set at={loaded_at}"
                in second), second
        # ...and the next connection starts from the loaded values again


def test_max_use_replaces_a_process_after_that_many_connections(daemons):
    d = daemons(pool(max_use=2))
    pids = []
    for _ in range(3):
        with d.client() as c:
            c.quit()
        ended(d, c)
        pids.append(pid_of(d, c))
    assert pids[0] == pids[1] != pids[2], pids
    e2e.wait_until(lambda: not alive(pids[0]), what="the used-up process to exit")


def test_max_use_1_gives_each_connection_its_own_process(daemons):
    d = daemons(pool(max_use=1))
    pids = []
    for _ in range(3):
        with d.client() as c:
            c.quit()
        ended(d, c)
        pids.append(pid_of(d, c))
    assert len(set(pids)) == 3, pids


def test_the_greeting_comes_from_a_process_forked_before_the_connection(daemons):
    d = daemons({"limits": {"spare_processes": "2"}})
    e2e.wait_until(lambda: len(session_processes(d)) == 2, what="two spare processes")
    ready = session_processes(d)
    with d.client() as c:
        assert c.greeting.code == 220
        assert pid_of(d, c) in ready
        c.quit()
    # the pool makes up its spares again
    e2e.wait_until(lambda: len(session_processes(d)) >= 2, what="the spares to be made up")


def test_a_transaction_and_helo_do_not_carry_over(daemons):
    d = daemons(pool())
    c = d.client()
    c.ehlo()
    c.mail()
    c.rcpt()
    c.expect("DATA", 354)
    c.send(b"Subject: cut short\r\n\r\npart of a message")
    first = pid_of(d, c)
    c.close()  # the connection drops in the middle of the content
    ended(d, c)
    with d.client() as c2:
        assert pid_of(d, c2) == first
        c2.expect("MAIL FROM:<a@example.org>", 503, "5.5.1")
        c2.ehlo()
        c2.expect("RCPT TO:<b@example.net>", 503, "5.5.1")
        c2.expect("DATA", 503, "5.5.1")
        c2.quit()
    e2e.wait_until(lambda: d.incoming() == [], what="the cut message's file to go")
    assert d.queued() == []


@pytest.fixture(scope="module")
def sasldb(workspace):
    directory = workspace.new_dir("pool-sasldb")
    return sasltools.make_sasldb(os.path.join(directory, "sasldb2"), dict([USER]))


def test_auth_does_not_carry_over(daemons, sasldb):
    settings = pool()
    settings.update({
        "auth": {"mechanisms": "PLAIN", "sasldb_path": sasldb, "allow_plaintext": "yes"},
        "listener:smtp": {"auth": "yes"},
    })
    d = daemons(settings, rules=AUTH_RULES)
    with d.client() as c:
        c.ehlo()
        c.expect("AUTH PLAIN " + plain_response(*USER), 235, "2.7.0")
        c.mail()
        c.quit()
    ended(d, c)
    with d.client() as c2:
        assert pid_of(d, c2) == pid_of(d, c)
        c2.ehlo()
        c2.mail()
        # a new connection may authenticate again: it is not "already" authenticated
        c2.expect("RSET", 250)
        c2.expect("AUTH PLAIN " + plain_response(*USER), 235, "2.7.0")
        c2.quit()
    lines = re.findall(r"mail stage: is_authenticated=(\S+) authid=(\S+)", d.log())
    assert lines == [("true", USER[0]), ("false", "nil")], lines


@pytest.fixture(scope="module")
def certs(workspace):
    return tlscerts.make_certs(workspace.new_dir("pool-certs"))


def s_client(port, certs, *args):
    cmd = [tlscerts.OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp",
           "-crlf", "-ign_eof", "-nocommands", "-CAfile", certs.ca, "-tls1_2", *args]
    p = subprocess.run(cmd, input=b"EHLO s-client.test.example\nQUIT\n", capture_output=True,
                       timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    assert re.search(r"^221 2\.0\.0 ", out, re.M), out
    return out


def test_a_tls_session_is_not_cached_for_the_next_connection(daemons, certs, tmp_path):
    """A process keeps no cache of TLS sessions for a later connection:
    without a ticket, the server gives no session id to resume with (a
    cache would); with a ticket, whose keys every process shares, the
    next connection resumes as it would in a new process."""
    settings = pool()
    settings["tls"] = {"certificate": certs.server.cert, "key": certs.server.key}
    d = daemons(settings)
    sess = str(tmp_path / "session.pem")
    runs = []

    def s_client_done(*args):
        """s_client, then wait until its session is over (its process free)."""
        out = s_client(d.port, certs, *args)
        runs.append(out)
        d.wait_log(r"smtp\[\d+\]: info: disconnect from ", count=len(runs))
        return out

    out = s_client_done("-no_ticket", "-sess_out", sess)
    assert re.search(r"^New, TLSv1\.2, ", out, re.M), out
    assert re.search(r"^ +Session-ID: *$", out, re.M), f"a session id was given:\n{out}"
    assert not os.path.exists(sess), "the client was given a session it could resume"
    out = s_client_done("-sess_out", sess)
    assert re.search(r"^ +TLS session ticket:", out, re.M), out
    out = s_client_done("-sess_in", sess)
    assert re.search(r"^Reused, TLSv1\.2, ", out, re.M), out
    pids = [int(p) for p in re.findall(r"vsmtpd smtp\[(\d+)\]: info: connect from ", d.log())]
    assert len(pids) == 3 and len(set(pids)) == 1, pids


def open_fds(pid):
    return sorted(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not e2e.IS_ROOT, reason="reading another user's /proc/PID/fd needs root")
def test_no_descriptor_survives_a_connection(daemons, certs):
    settings = pool()
    settings["tls"] = {"certificate": certs.server.cert, "key": certs.server.key}
    d = daemons(settings)
    with d.client() as c:
        c.quit()
    ended(d, c)
    pid = pid_of(d, c)
    before = open_fds(pid)
    ctx = ssl.create_default_context(cafile=certs.ca)
    ctx.check_hostname = False
    for tls in (False, True, False, True):
        with d.client() as c:
            c.ehlo()
            if tls:
                c.expect("STARTTLS", 220)
                c.sock = ctx.wrap_socket(c.sock)
                c.ehlo()
            c.send_message(b"Subject: x\r\n\r\nbody\r\n")
            c.quit()
        ended(d, c)
        assert pid_of(d, c) == pid
    c = d.client()
    c.ehlo()
    c.mail()
    c.close()
    ended(d, c)
    assert open_fds(pid) == before


def greeted(d):
    with d.client(greet=False) as c:
        code = c.read_reply(esc=False).code
        if code == 220:
            c.quit()
    return code == 220


def test_the_per_address_limit_counts_connections_not_processes(daemons):
    d = daemons({"limits": {"spare_processes": "4", "max_sessions_per_ip": "2"}})
    e2e.wait_until(lambda: len(session_processes(d)) >= 4, what="four spare processes")
    a, b = d.client(), d.client()
    with d.client(greet=False) as c:
        r = c.read_reply(esc=False)
        assert r.code == 421 and "too many connections from 127.0.0.1" in r.text, r
    a.quit()
    a.close()
    ended(d, a)
    e2e.wait_until(lambda: greeted(d), what="a connection to be served once one ended")
    b.quit()


def test_max_sessions_bounds_connections_and_processes(daemons):
    d = daemons({"limits": {"spare_processes": "4", "max_sessions": "2"}})
    e2e.wait_until(lambda: len(session_processes(d)) == 2, what="the spares, two at most")
    a, b = d.client(), d.client()
    with d.client(greet=False) as c:
        r = c.read_reply(esc=False)
        assert r.code == 421 and "too many connections" in r.text, r
    assert len(session_processes(d)) == 2
    a.quit()
    b.quit()


def test_idle_processes_past_the_spares_end_after_max_idle(daemons):
    d = daemons(pool(max_idle="1s"))
    clients = [d.client() for _ in range(4)]
    pids = {pid_of(d, c) for c in clients}
    assert len(pids) == 4, pids
    for c in clients:
        c.quit()
        c.close()
    e2e.wait_until(lambda: sum(alive(p) for p in pids) <= 1, timeout=15,
                   what="idle processes past the one spare to end")
    assert len(session_processes(d)) == 1


def test_no_spare_ready_is_logged_and_the_client_is_served(daemons):
    d = daemons({"limits": {"spare_processes": "0"}})
    with d.client() as c:
        assert c.greeting.code == 220
        c.quit()
    d.wait_log(r"notice: no spare session process was ready for 127\.0\.0\.1: started one")


def test_reload_new_connections_get_new_rules_a_running_one_keeps_its_own(daemons):
    rules = 'return {{ mail = {{ rule "v" (function() return status.info(code(451, "4.7.1", "{}")) end) }} }}\n'
    d = daemons(pool(), rules=rules.format("rules-one"))
    old = d.session()
    old_pid = pid_of(d, old)
    d.write_rules(rules.format("rules-two"))
    d.signal(signal.SIGHUP)
    d.wait_log(r"master\[\d+\]: info: configuration reloaded from ")
    with d.session() as c:
        assert "rules-two" in c.cmd("MAIL FROM:<a@example.org>").text
        assert pid_of(d, c) != old_pid
        c.quit()
    assert "rules-one" in old.cmd("MAIL FROM:<a@example.org>").text
    old.quit()
    old.close()
    # the process of the old rules serves nobody else: it ends
    e2e.wait_until(lambda: not alive(old_pid), what="the old process to end")


def test_a_killed_process_loses_its_connection_only(daemons):
    d = daemons({"limits": {"spare_processes": "2"}})
    victim, other = d.session(), d.session()
    victim_pid, other_pid = pid_of(d, victim), pid_of(d, other)
    assert victim_pid != other_pid
    victim.mail()
    os.kill(victim_pid, signal.SIGKILL)
    victim.expect_eof()
    qid = other.send_message(b"Subject: survivor\r\n\r\nstill here\r\n")
    other.quit()
    assert qid in d.queued()
    with d.session() as c:
        c.send_message(b"Subject: after\r\n\r\nnew connection\r\n")
        c.quit()
    # the pool makes up its spares again
    e2e.wait_until(lambda: len(session_processes(d)) >= 2 and not alive(victim_pid),
                   what="the pool to replace the killed process")


def test_stopping_logs_the_pool_counts(daemons):
    d = daemons({"limits": {"spare_processes": "1", "max_sessions_per_ip": "1"}})
    a = d.client()
    with d.client(greet=False) as c:
        assert c.read_reply(esc=False).code == 421
    a.quit()
    a.close()
    ended(d, a)
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    m = re.search(r"info: session pool: (\d+) connections in \d+ s, at most (\d+) at once "
                  r"\(max_sessions 100\), \d+ processes now \(\d+ busy\), \d+ started, "
                  r"(\d+) waited for one, (\d+) refused at the limits", d.log())
    assert m is not None, d.log()
    assert m.groups() == ("1", "1", "0", "1"), m.groups()


def test_a_process_that_dies_before_serving_slows_down_the_spares(daemons):
    """A spare process that ends before its first connection (here killed by
    SIGABRT, as if it failed to confine itself) is not replaced in a loop:
    the next spare comes after a pause, and a client is served meanwhile."""
    d = daemons(pool())
    e2e.wait_until(lambda: len(session_processes(d)) == 1, what="the spare process")
    spare = session_processes(d)[0]
    os.kill(spare, signal.SIGABRT)
    d.wait_log(r"error: a session process ended before serving a connection: the next "
               r"spare processes start in 1 s")
    with d.client() as c:
        assert c.greeting.code == 220
        c.quit()
    e2e.wait_until(lambda: len(session_processes(d)) >= 1 and spare not in session_processes(d),
                   what="a new spare process")
