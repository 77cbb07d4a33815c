"""The Lua sandbox rules run in: no file, command, environment, bytecode,
debug or coroutine access; globals locked; ctx valid for one stage only;
and no way around the instruction budget. Every attempt is refused with a
451 4.3.0 at the stage (or fails loading) and the session goes on; none may
read a file, run a command or leave the rule running."""
import os
import re
import socket
import subprocess

import pytest

import vsmtpd_e2e as e2e
from vsmtpd_e2e import HOSTNAME, queued_id

POLICY_ERROR = "451 4.3.0 Local policy error, try again later"

# The test fills in SECRET (a file the daemon's user could read) and MARKER
# (a file an escaped command would create or remove).
SANDBOX_RULES = r'''
local SECRET = "@SECRET@"
local MARKER = "@MARKER@"
local kept -- a ctx kept from the connect stage

local attempts = {
  ioopen = function() return io.open(SECRET):read("a") end,
  iolines = function() for l in io.lines(SECRET) do return l end end,
  osexecute = function() return os.execute("touch " .. MARKER .. ".new") end,
  osgetenv = function() return os.getenv("PATH") end,
  osremove = function() return os.remove(MARKER) end,
  osexit = function() return os.exit(0) end,
  ostmpname = function() return os.tmpname() end,
  dofile = function() return dofile(SECRET) end,
  loadfile = function() return loadfile(SECRET)() end,
  requireio = function() return require("io").open(SECRET):read("a") end,
  requireos = function() return require("os").getenv("PATH") end,
  stringdump = function() return load(string.dump(function() return 1 end))() end,
  binarychunk = function()
    local f, err = load("\27LuaT\0\25\147\13\10\26\10\4\8\8xV\0\0\0\0\0\0\0\0\0\0\0(w@")
    if f == nil then error(err) end
    return f()
  end,
  binarymode = function()
    local f, err = load("\27Lua", "chunk", "b")
    if f == nil then error(err) end
    return f()
  end,
  debug = function() return debug.getregistry() end,
  package = function() return package.loadlib("libc.so.6", "system") end,
  coroutine = function() return coroutine.wrap(function() end) end,
  rawset = function() return rawset(_G, "io", {}) end,
  setmetatable = function() return setmetatable(_G, nil) end,
  undefined = function() return undefined_global_name end,
  assignglobal = function() leaked_global = 1 return leaked_global end,
  collectstop = function() return collectgarbage("stop") end,
  collectcollect = function() return collectgarbage("collect") end,
  loadenv = function() return load("return io", "x", "t", _G)() end,
  stale = function() return kept.client_ip end,
  stalemethod = function() kept:set("x", "y") return "set" end,
  lists = function() return domain_list("domains.txt") end,
  requireruntime = function() return require("helper") end,
  badtostring = function() error(setmetatable({}, {__tostring = function() return {} end})) end,
}

return {
  connect = {
    action "keep ctx" (function(ctx) kept = ctx end),
  },
  rcpt = {
    rule "escape" (function(ctx)
      local attempt = attempts[ctx.rcpt.local_part]
      if attempt == nil then return status.next() end
      local got = attempt()
      return status.accept(code(250, "2.1.5", "escaped: " .. tostring(got)))
    end),
    rule "string metatable" (function(ctx)
      if ctx.rcpt.local_part == "stringmeta" then
        local index = getmetatable("").__index
        return status.accept(code(250, "2.1.5", "string index is the string table: " ..
                                  tostring(index == string)))
      end
      return status.next()
    end),
  },
}
'''

ESCAPES = {
    "ioopen": 'undefined global "io"',
    "iolines": 'undefined global "io"',
    "osexecute": "field 'execute'",
    "osgetenv": "field 'getenv'",
    "osremove": "field 'remove'",
    "osexit": "field 'exit'",
    "ostmpname": "field 'tmpname'",
    "dofile": 'undefined global "dofile"',
    "loadfile": 'undefined global "loadfile"',
    "requireio": 'require("io"): modules are loaded with the rules',
    "requireos": 'require("os"): modules are loaded with the rules',
    "stringdump": "field 'dump'",
    "binarychunk": "attempt to load a binary chunk",
    "binarymode": "attempt to load a binary chunk",
    "debug": 'undefined global "debug"',
    "package": 'undefined global "package"',
    "coroutine": 'undefined global "coroutine"',
    "rawset": 'undefined global "rawset"',
    "setmetatable": "cannot change a protected metatable",
    "undefined": 'undefined global "undefined_global_name"',
    "assignglobal": 'assignment to undeclared global "leaked_global"',
    "collectstop": 'collectgarbage("stop") is not available',
    "collectcollect": 'collectgarbage("collect") is not available',
    "loadenv": 'undefined global "io"',
    "stale": "ctx used after its stage ended",
    "stalemethod": "ctx used after its stage ended",
    "lists": "lists are loaded with the rules",
    "requireruntime": 'require("helper"): modules are loaded with the rules',
}


@pytest.fixture(scope="module")
def sandbox(module_daemons):
    d = module_daemons(start=False, label="-sandbox")
    secret = os.path.join(d.dir, "secret.txt")
    with open(secret, "w") as f:
        f.write("top secret\n")
    os.chmod(secret, 0o644)
    marker = os.path.join(d.dir, "marker")
    with open(marker, "w") as f:
        f.write("still here\n")
    os.chmod(d.dir, 0o777)  # an escaped command could write here
    d.write_rules(SANDBOX_RULES.replace("@SECRET@", secret).replace("@MARKER@", marker))
    d.write_rules("example.com\n", name="domains.txt")
    d.write_rules("return {}\n", name="helper.lua")
    d.secret, d.marker = secret, marker
    d.start()
    return d


@pytest.mark.parametrize("attempt", list(ESCAPES))
def test_escape_attempt_is_a_rule_error(sandbox, attempt):
    with sandbox.session() as c:
        c.mail()
        c.rcpt("before@example.net")
        r = c.cmd(f"RCPT TO:<{attempt}@example.net>")
        assert str(r) == POLICY_ERROR, f"{attempt}: {r!r}"
        # the session goes on without that recipient
        c.rcpt("after@example.net")
        qid = queued_id(c.data(b"Subject: sandbox\r\n\r\nbody\r\n"))
        c.quit()
    env = sandbox.message(qid)[1]
    assert [r["address"] for r in env["rcpts"]] == ["before@example.net", "after@example.net"]
    lines = sandbox.session_log(c.local_port)
    m = re.search(r'smtp\[\d+\]: error: rules: rule "escape" \(\S+main\.lua:\d+\) '
                  r'at rcpt failed: (.*)$', lines, re.M)
    assert m is not None, lines
    assert ESCAPES[attempt] in m.group(1), m.group(0)
    # nothing was read, run, created or removed
    assert "top secret" not in sandbox.log()
    assert os.path.exists(sandbox.marker)
    assert not os.path.exists(sandbox.marker + ".new")


def test_error_object_with_a_bad_tostring_is_logged_with_a_message(sandbox):
    """error(obj) where obj's __tostring returns no string: still a 451, and
    the log says something about it rather than printing a NULL pointer."""
    with sandbox.session() as c:
        c.mail()
        c.expect("RCPT TO:<badtostring@example.net>", 451, "4.3.0")
        c.quit()
    lines = sandbox.session_log(c.local_port)
    m = re.search(r'smtp\[\d+\]: error: rules: rule "escape" \(\S+\) at rcpt failed: (.*)$',
                  lines, re.M)
    assert m is not None and m.group(1) and "(null)" not in m.group(1), lines


def test_no_global_leaks_into_a_later_connection(sandbox):
    with sandbox.session() as c:
        c.mail()
        c.expect("RCPT TO:<assignglobal@example.net>", 451, "4.3.0")
    with sandbox.session() as c:
        c.mail()
        # still undefined: the failed assignment left nothing behind
        c.expect("RCPT TO:<assignglobal@example.net>", 451, "4.3.0")


def test_string_metatable_gives_only_the_string_table(sandbox):
    with sandbox.session() as c:
        c.mail()
        r = c.cmd("RCPT TO:<stringmeta@example.net>")
        assert str(r) == "250 2.1.5 string index is the string table: true"


def test_ctx_kept_in_an_upvalue_is_dead_at_the_next_stage(sandbox):
    with sandbox.session() as c:
        c.mail()
        c.expect("RCPT TO:<stale@example.net>", 451, "4.3.0")
        c.expect("RCPT TO:<stalemethod@example.net>", 451, "4.3.0")
        c.rcpt("fine@example.net")
        c.quit()


# ------------------------------------------------------------ at load time

def check_rules(tmp_path, text):
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "main.lua").write_text(text)
    conf = tmp_path / "vsmtpd.conf"
    conf.write_text(f"[server]\nhostname = {HOSTNAME}\n[listener:smtp]\n"
                    "address = 127.0.0.1:2525\n[rules]\nfile = rules/main.lua\n")
    p = subprocess.run([e2e.vsmtpd_binary(), "-t", "-c", str(conf)], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10, cwd=tmp_path)
    return p.returncode, p.stderr.decode()


@pytest.mark.parametrize("code,why", [
    ('local f = io.open("/etc/passwd")', 'undefined global "io"'),
    ('os.execute("true")', "field 'execute'"),
    ('local p = os.getenv("HOME")', "field 'getenv'"),
    ('dofile("/etc/passwd")', 'undefined global "dofile"'),
    ('local io = require("io")', "io.lua"),
    ('local d = debug.getinfo(1)', 'undefined global "debug"'),
    ('assert(load(string.dump(print)))', "field 'dump'"),
    ('assert(load("\\27Lua"))', "attempt to load a binary chunk"),
])
def test_escape_attempt_at_load_time_fails_loading(tmp_path, code, why):
    rc, err = check_rules(tmp_path, "-- top level\n" + code + "\n")
    assert rc == 1, err
    assert err.startswith(f"vsmtpd: {tmp_path}/rules/main.lua"), err
    assert why in err, err


def test_a_test_file_failing_with_an_error_object_is_reported(tmp_path):
    """vsmtpctl rules test names the kind of a test file's error object
    without running its metamethods (one that never returns, here)."""
    check_rules(tmp_path, "return {}\n")
    (tmp_path / "rules" / "x.test.lua").write_text(
        "error(setmetatable({}, {__tostring = function() while true do end end}))\n")
    p = subprocess.run([e2e.vsmtpctl_binary(), "-c", str(tmp_path / "vsmtpd.conf"), "rules",
                        "test", str(tmp_path / "rules" / "x.test.lua")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                       cwd=tmp_path)
    assert p.returncode == 2, p
    assert "x.test.lua: error object is a table value" in p.stderr, p.stderr


# ------------------------------------------------------------ the budget

def refused_in_time(d, rcpt, timeout=3.0):
    """RCPT rcpt on a fresh session; the reply, or None when there is none
    within timeout seconds (the rule is still running)."""
    c = e2e.SMTPClient(d.port, timeout=timeout)
    c.ehlo()
    c.mail()
    try:
        return c.cmd(f"RCPT TO:<{rcpt}>")
    except socket.timeout:
        return None


def test_endless_loop_in_a_finalizer_is_stopped_by_the_budget(daemons):
    """Lua runs __gc metamethods with hooks off: a loop there must not
    escape the instruction budget and hang the session for good."""
    d = daemons(rules=r'''
return {
  rcpt = {
    rule "finalizer loop" (function(ctx)
      setmetatable({}, {__gc = function() while true do end end})
      for i = 1, 200000 do local garbage = {} end -- the collector runs the finalizer
      return status.next()
    end),
  },
}
''', settings={"rules": {"instruction_limit": "5000000"}})
    try:
        r = refused_in_time(d, "loop@example.net")
        assert r is not None, "no reply within 3 s: the rule is still running"
        assert r.code in (250, 451), r
    finally:
        d.kill_all()


def test_backtracking_pattern_is_stopped(daemons):
    """string.find with a pattern that backtracks for ever runs in C, where
    the instruction count never moves: the CPU time limit stops it. The
    call cannot be unwound safely, so the session answers 421 and ends;
    the daemon goes on and logs why."""
    d = daemons(rules=r'''
return {
  rcpt = {
    rule "pattern" (function(ctx)
      local s = string.rep("a", 60)
      if s:find(string.rep(".-", 12) .. "b") then return status.reject() end
      return status.next()
    end),
  },
}
''', settings={"rules": {"instruction_limit": "100000", "time_limit": "300ms"}})
    try:
        r = refused_in_time(d, "pattern@example.net")
        assert r is not None, "no reply within 3 s: the rule is still running"
        assert r.code == 421 and r.esc == "4.3.0", r
        e2e.wait_until(lambda: "ran past [rules] time_limit" in d.log(),
                       what="the master's log line")
        with e2e.SMTPClient(d.port) as c:  # the daemon still serves
            c.ehlo()
    finally:
        d.kill_all()


# ------------------------------------------------------------ the log

# A line break in what a rule logs, or a control character in what a client
# sent, must not start a line of its own (one that looks like the daemon's)
# nor reach a terminal as such: the log writes them out.
LOG_RULES = r'''
return {
  connect = {
    action "forge" (function(ctx)
      log("info", "a\nvsmtpd master[1]: info: forged by a rule\r\n")
    end),
  },
  preq = {
    action "subject" (function(ctx) log("info", "subject: " .. ctx:get_header("Subject")) end),
  },
}
'''


def test_nothing_from_a_rule_or_a_client_forges_a_log_line(daemons):
    d = daemons(rules=LOG_RULES, settings={"server": {"log_level": "debug"}})
    with d.session() as c:
        # a header value with control characters (and a fold), logged by a rule
        c.send_message(b"Subject: hi\x1b[2J\x07 there\r\n\tvsmtpd master[1]: folded\r\n"
                       b"\r\nbody\r\n")
        # a command line with control characters, logged at debug level
        r = c.cmd(b"NOOP \x1b[2J\x01vsmtpd master[1]: info: forged by a client")
        assert r.code == 500, r
        c.quit()
    d.wait_log(r"<<< QUIT$")
    log = d.log()
    assert "a\\nvsmtpd master[1]: info: forged by a rule\\r\\n\n" in log
    assert "subject: hi\\x1b[2J\\x07 there\\tvsmtpd master[1]: folded\n" in log
    assert "<<< NOOP \\x1b[2J\\x01vsmtpd master[1]: info: forged by a client\n" in log
    assert not re.search(r"^vsmtpd master\[1\]", log, re.M), log
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", log), log


# ------------------------------------------------------------ no way around the budget

# Lua runs a message handler with hooks off when the error comes from the
# count hook (the budget's own), and finalizers always: every way into such
# code must still end with the budget's error, a 451 4.3.0, long before the
# CPU time limit (set far off here) would end the session with a 421.
BUDGET_RULES = r'''
local function loop() while true do end end
local bodies = {
  xpcall = function() xpcall(loop, loop) end,
  nested = function()
    xpcall(loop, function(e) xpcall(loop, function() xpcall(loop, loop) loop() end) loop() end)
  end,
  pcallxpcall = function() while true do pcall(xpcall, loop, loop) end end,
  handlerafter = function() xpcall(function() error("x") end, loop) end,
  tostring = function() error(setmetatable({}, {__tostring = loop})) end,
  tostringhandler = function()
    xpcall(function() error(setmetatable({}, {__tostring = loop})) end, tostring)
  end,
  index = function()
    xpcall(function() error(setmetatable({}, {__index = loop})) end, function(e) return e.code end)
  end,
  gsub = function()
    string.gsub(("a"):rep(1000), "a", function() pcall(loop) xpcall(loop, loop) end)
  end,
  sort = function()
    local t = {} for i = 1, 100 do t[i] = 101 - i end
    table.sort(t, function(a, b) xpcall(loop, loop) return a < b end)
  end,
  close = function()
    local c <close> = setmetatable({}, {__close = function() xpcall(loop, loop) end})
    loop()
  end,
  gc = function()
    getmetatable(status.next()).__gc = loop
    for i = 1, 100000 do local s = status.next() end
  end,
}

return {
  rcpt = {
    rule "budget" (function(ctx)
      local body = bodies[ctx.rcpt.local_part]
      if body then body() return status.accept() end
      return status.next()
    end),
  },
  postq = {
    rule "postq budget" (function(ctx)
      local body = bodies[ctx.mail_from.local_part]
      if body then body() end
      return status.next()
    end),
  },
}
'''

BUDGET_BODIES = ["xpcall", "nested", "pcallxpcall", "handlerafter", "tostring",
                 "tostringhandler", "index", "gsub", "sort", "close", "gc"]
BUDGET_ERROR = "instruction budget exceeded (2000000 instructions)"


@pytest.fixture(scope="module")
def budget(module_daemons):
    return module_daemons(label="-budget", rules=BUDGET_RULES,
                          settings={"rules": {"instruction_limit": "2000000",
                                              "time_limit": "60s"}})


@pytest.mark.parametrize("body", BUDGET_BODIES)
def test_no_way_around_the_budget_in_a_session(budget, body):
    with budget.session(timeout=30) as c:
        c.mail()
        r = c.cmd(f"RCPT TO:<{body}@example.net>")
        assert str(r) == POLICY_ERROR, f"{body}: {r!r}"
        c.rcpt("after@example.net")  # the session goes on
        c.quit()
    lines = budget.session_log(c.local_port, timeout=30)
    m = re.search(r'smtp\[\d+\]: error: rules: rule "budget" \(\S+main\.lua:\d+\) '
                  r'at rcpt failed: (.*)$', lines, re.M)
    assert m is not None, lines
    want = "attempt to index a string value" if body == "gc" else BUDGET_ERROR
    assert want in m.group(1), m.group(0)
    assert "time_limit" not in budget.log()


def test_no_way_around_the_budget_in_the_delivery_worker(budget):
    """The postq rule loops in an xpcall handler: the message is deferred
    with the rules' error, the worker goes on with the next message."""
    with budget.session() as c:
        first = c.send_message(b"Subject: loop\r\n\r\nbody\r\n", sender="xpcall@example.org")
        second = c.send_message(b"Subject: fine\r\n\r\nbody\r\n", sender="fine@example.org")
        c.quit()
    m = budget.wait_log(r'delivery\[(\d+)\]: error: rules: rule "postq budget" '
                        r'\(\S+main\.lua:\d+\) at postq failed: (.*)$', timeout=30)
    assert BUDGET_ERROR in m[0].group(2), m[0].group(0)
    budget.wait_log(rf"{first}: .*451 4\.3\.0 error in the postq rules", timeout=30)
    # the worker was not stopped: the second message got its attempt too
    budget.wait_log(rf"delivery\[{m[0].group(1)}\]: .*{second}", timeout=30)
    assert "delivery worker exited" not in budget.log()


# ------------------------------------------------------------ one message, then the next

# The delivery worker runs the postq rules of message after message in one
# Lua state: what a rule changes in the shared tables for one message (the
# strings' metatable, a library table, a global, math.random's seed) must
# not be what the rules see for the next.
SHARED_RULES = r'''
local function poison()
  getmetatable("").__index = {upper = function() return "poisoned" end}
  string.lower = function() return "poisoned" end
  setmetatable(table, {__index = function(_, k) return k end})
  math.randomseed(42)
  hostname = function() return "evil.example" end
  string = {}
end

local function seen()
  local got = math.random(0, 1 << 50)
  math.randomseed(42)
  local seeded = math.random(0, 1 << 50)
  return table.concat({("x"):upper(), string.lower("Y"), tostring(table.nothing),
                       hostname(), tostring(got ~= seeded)}, " ")
end

return {
  postq = {
    action "shared" (function(ctx)
      log("info", "postq for " .. ctx.mail_from.local_part .. " sees: " .. seen())
      if ctx.mail_from.local_part == "poison" then
        poison()
        log("info", "postq for poison leaves: " .. ("x"):upper() .. " " .. hostname())
      end
    end),
  },
}
'''


def test_one_message_does_not_change_what_the_next_sees(daemons):
    d = daemons(rules=SHARED_RULES)
    clean = f"X y nil {HOSTNAME} true"
    with d.session() as c:
        c.send_message(b"Subject: one\r\n\r\nbody\r\n", sender="poison@example.org")
        first = d.wait_log(r"delivery\[(\d+)\]: info: rules: \S+: postq for poison sees: (.*)$",
                           timeout=30)
        assert first[0].group(2) == clean
        left = d.wait_log(r"postq for poison leaves: (.*)$")
        assert left[0].group(1) == "poisoned evil.example"
        c.send_message(b"Subject: two\r\n\r\nbody\r\n", sender="clean@example.org")
        c.quit()
    second = d.wait_log(r"delivery\[(\d+)\]: info: rules: \S+: postq for clean sees: (.*)$",
                        timeout=30)
    assert second[0].group(1) == first[0].group(1), "not the same delivery worker"
    assert second[0].group(2) == clean
