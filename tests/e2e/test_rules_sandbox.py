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
        pid = sandbox.session_pid(c.local_port)
        c.quit()
    env = sandbox.message(qid)[1]
    assert [r["address"] for r in env["rcpts"]] == ["before@example.net", "after@example.net"]
    m = sandbox.wait_log(rf'smtp\[{pid}\]: error: rules: rule "escape" \(\S+main\.lua:\d+\) '
                         rf'at rcpt failed: (.*)$')
    assert ESCAPES[attempt] in m[0].group(1), m[0].group(0)
    # nothing was read, run, created or removed
    assert "top secret" not in sandbox.log()
    assert os.path.exists(sandbox.marker)
    assert not os.path.exists(sandbox.marker + ".new")


def test_error_object_with_a_bad_tostring_is_logged_with_a_message(sandbox):
    """error(obj) where obj's __tostring returns no string: still a 451, and
    the log says something about it rather than printing a NULL pointer."""
    with sandbox.session() as c:
        pid = sandbox.session_pid(c.local_port)
        c.mail()
        c.expect("RCPT TO:<badtostring@example.net>", 451, "4.3.0")
        c.quit()
    m = sandbox.wait_log(rf'smtp\[{pid}\]: error: rules: rule "escape" \(\S+\) at rcpt failed: (.*)$')
    assert m[0].group(1) and "(null)" not in m[0].group(1), m[0].group(0)


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
