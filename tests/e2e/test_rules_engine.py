"""The rule engine at the online stages (connect, helo, mail, rcpt, preq):
what each status does to the reply and to the session, the order rules run
in, the two forms of a rules file, and what a failing rule costs: a 451
4.3.0 for that command, a log line naming the rule, and never a crash or an
accept."""
import os
import re

import pytest

import vsmtpd_e2e as e2e
from vsmtpd_e2e import CLIENT_NAME, HOSTNAME, queued_id

STAGES = ["helo", "mail", "rcpt", "preq"]

# Each command names the status the test wants: the first word of the HELO
# name, of the sender's or the recipient's local part, or the X-Verdict
# header. Anything holding "trap" (an X-Trap header at preq) is refused by
# the stage's second rule, so a test sees whether that rule ran.
VERDICT_RULES = r'''
local enhanced = {helo = "2.0.0", mail = "2.1.0", rcpt = "2.1.5", preq = "2.6.0"}

local function verdict(word, stage)
  if word == "accept" then return status.accept() end
  if word == "acceptcode" then
    return status.accept(code(250, enhanced[stage], stage .. " accepted by rule"))
  end
  if word == "faccept" then return status.faccept() end
  if word == "deny" then return status.deny() end
  if word == "denycode" then return status.deny(code(550, "5.7.0", stage .. " denied by rule")) end
  if word == "reject" then return status.reject() end
  if word == "rejectcode" then
    return status.reject({code = 452, enhanced = "4.2.2", text = stage .. " rejected by rule"})
  end
  if word == "info" then return status.info(code(553, "5.7.0", stage .. " info by rule")) end
  if word == "quarantine" then return status.quarantine("q-" .. stage) end
  return status.next()
end

local function first_word(s)
  return s and s:match("^(%a+)")
end

local function trap(stage, text)
  if text and text:find("trap", 1, true) then
    return status.reject(code(550, "5.7.9", "trailing " .. stage .. " rule ran"))
  end
  return status.next()
end

return {
  connect = {
    rule "connect verdict" (function(ctx)
      if ctx.client_ip == "127.0.0.2" then return status.faccept() end
      if ctx.client_ip == "127.0.0.3" then return status.quarantine("q-connect") end
      return status.next()
    end),
  },
  helo = {
    rule "helo verdict" (function(ctx) return verdict(first_word(ctx.helo), "helo") end),
    rule "helo trap" (function(ctx) return trap("helo", ctx.helo) end),
  },
  mail = {
    rule "mail verdict" (function(ctx)
      return verdict(first_word(ctx.mail_from.local_part), "mail")
    end),
    rule "mail trap" (function(ctx) return trap("mail", ctx.mail_from.address) end),
  },
  rcpt = {
    action "log before" (function(ctx)
      log("info", "before " .. ctx.rcpt.address)
      return status.deny() -- the return value of an action is ignored
    end),
    rule "rcpt verdict" (function(ctx)
      return verdict(first_word(ctx.rcpt.local_part), "rcpt")
    end),
    rule "rcpt trap" (function(ctx) return trap("rcpt", ctx.rcpt.address) end),
    action "log after" (function(ctx) log("info", "after " .. ctx.rcpt.address) end),
  },
  preq = {
    rule "preq verdict" (function(ctx) return verdict(ctx:get_header("X-Verdict"), "preq") end),
    rule "preq trap" (function(ctx) return trap("preq", ctx:get_header("X-Trap")) end),
  },
}
'''

# How a rule fails: the Lua statement, and how the failure is logged after
# "at STAGE ". None of them may end in anything but a 451 4.3.0.
FAILURE_KINDS = {
    "raise": ('error("rule blew up on purpose")',
              r"failed: \S+main\.lua:\d+: rule blew up on purpose"),
    "nothing": ("return nil", r"returned nil, not a status"),
    "loop": ("while true do end", r"failed: .*instruction budget exceeded"),
    "pcallloop": ("while true do pcall(function() while true do end end) end",
                  r"failed: .*instruction budget exceeded"),
    "memory": ('local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 1000) .. i end',
               r"failed: .*(not enough memory|memory budget exceeded)"),
    "hugerep": ('local s = string.rep("x", 2^31) return status.accept()',
                r"failed: .*(not enough memory|memory budget exceeded|string too large)"),
    "bigrep": ('local s = string.rep("x", 2^30) return status.accept()',
               r"failed: .*(not enough memory|memory budget exceeded)"),
    # a refusal written with a positive code is an error, never an accept
    "rejectwith": ('return status.reject(code(250, "2.0.0", "fine"))',
                   r"failed: .*status\.reject takes a 4xx or 5xx code, not 250"),
    "acceptwith": ('return status.accept(code(550, "5.7.1", "no"))',
                   r"failed: .*status\.accept takes a positive \(2xx\) code, not 550"),
    "badcode": ('return status.deny(code(999, "9.9.9", "what"))', r"failed: .*bad code 999"),
    # a reply text cannot smuggle a second reply line
    "crlftext": ('return status.reject(code(550, "5.7.1", "no\\r\\n250 2.0.0 fake accept"))',
                 r"failed: .*printable ASCII on one line"),
    "badquarantine": ('return status.quarantine("../../queue")', r"failed: .*quarantine name"),
}

FAILURES = {kind: logged for kind, (_, logged) in FAILURE_KINDS.items()}

FAILING_STAGES = r"""  return status.next()
end

local function first_word(s)
  return s and s:match("^(%a+)")
end

return {
  helo = {
    rule "helo failure" (function(ctx) return fail(first_word(ctx.helo)) end),
  },
  mail = {
    rule "mail failure" (function(ctx) return fail(first_word(ctx.mail_from.local_part)) end),
  },
  rcpt = {
    rule "rcpt failure" (function(ctx) return fail(first_word(ctx.rcpt.local_part)) end),
  },
  preq = {
    rule "preq failure" (function(ctx) return fail(ctx:get_header("X-Fail")) end),
  },
}
"""

# Each command names how the rule of its stage fails.
FAILING_RULES = ("local function fail(word)\n" +
                 "".join(f'  if word == "{kind}" then {code} end\n'
                         for kind, (code, _) in FAILURE_KINDS.items()) +
                 FAILING_STAGES)

FAST_LIMITS = {"rules": {"instruction_limit": "100000", "memory_limit": "1M"}}

POLICY_ERROR = "451 4.3.0 Local policy error, try again later"


@pytest.fixture(scope="module")
def policy(module_daemons):
    return module_daemons(rules=VERDICT_RULES, label="-verdicts")


@pytest.fixture(scope="module")
def failing(module_daemons):
    return module_daemons(rules=FAILING_RULES, settings=FAST_LIMITS, label="-failing")


_serial = [0]


def unique(prefix):
    """A name no other test of the module uses (for log lines)."""
    _serial[0] += 1
    return f"{prefix}{_serial[0]}x{os.getpid()}"


def line_of(text, needle):
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(needle)


def message(verdict=None, trap=False, fail=None, body=b"Hello.\r\n"):
    head = b"Subject: rules\r\n"
    if verdict:
        head += b"X-Verdict: " + verdict.encode() + b"\r\n"
    if trap:
        head += b"X-Trap: trap\r\n"
    if fail:
        head += b"X-Fail: " + fail.encode() + b"\r\n"
    return head + b"\r\n" + body


def quarantined(d, name):
    path = os.path.join(d.spool, "quarantine", name)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def quarantined_message(d, name, qid):
    return e2e.read_spool_file(os.path.join(d.spool, "quarantine", name, qid))


def at_stage(c, stage, word, trap=False):
    """Go through the stages before `stage` plainly, then send the stage's
    command carrying `word`; the reply to that command."""
    tag = ".trap" if trap else ""
    if stage == "helo":
        return c.cmd(f"EHLO {word}{tag}.test.example", esc=False)
    c.ehlo()
    if stage == "mail":
        return c.cmd(f"MAIL FROM:<{word}{tag}@example.org>")
    c.mail("plain@example.org")
    if stage == "rcpt":
        return c.cmd(f"RCPT TO:<{word}{tag}@example.net>")
    c.rcpt("plain@example.net")
    return c.data(message(verdict=word, trap=trap))


def finish(c, stage):
    """After a positive reply at `stage`, send the rest of a message; its id."""
    if stage == "helo":
        c.mail("plain@example.org")
    if stage in ("helo", "mail"):
        c.rcpt("plain@example.net")
    return queued_id(c.data(message()))


# ------------------------------------------------------------ next and accept

@pytest.mark.parametrize("stage", STAGES)
def test_next_goes_on_to_the_later_rules_of_the_stage(policy, stage):
    before = policy.queued()
    with policy.client() as c:
        r = at_stage(c, stage, "next", trap=True)
        assert str(r) == f"550 5.7.9 trailing {stage} rule ran"
    assert policy.queued() == before


def test_rules_that_all_say_next_give_the_normal_replies(policy):
    with policy.client() as c:
        r = c.cmd("EHLO next.test.example", esc=False)
        assert r.code == 250 and r.lines[0] == HOSTNAME and "PIPELINING" in r.lines
        assert str(c.cmd("MAIL FROM:<next@example.org>")) == "250 2.1.0 Ok"
        assert str(c.cmd("RCPT TO:<next@example.net>")) == "250 2.1.5 Ok"
        qid = queued_id(c.data(message(verdict="next")))
        c.quit()
    content, env = policy.message(qid)
    assert env["helo"] == "next.test.example"
    assert env["mail_from"] == "next@example.org"
    assert [r["address"] for r in env["rcpts"]] == ["next@example.net"]
    assert e2e.split_received(content)[1] == message(verdict="next")


@pytest.mark.parametrize("stage", STAGES)
def test_accept_skips_the_rest_of_the_stage(policy, stage):
    with policy.client() as c:
        r = at_stage(c, stage, "accept", trap=True)
        if stage == "helo":
            assert r.code == 250 and r.lines[0] == HOSTNAME, r
        elif stage == "mail":
            assert str(r) == "250 2.1.0 Ok"
        elif stage == "rcpt":
            assert str(r) == "250 2.1.5 Ok"
        else:
            qid = queued_id(r)
        if stage != "preq":
            qid = finish(c, stage)
    assert qid in policy.queued()


def test_accept_at_rcpt_covers_that_recipient_only(policy):
    with policy.session() as c:
        c.mail()
        c.expect("RCPT TO:<accept.trap@example.net>", 250, "2.1.5")
        r = c.cmd("RCPT TO:<next.trap@example.net>")
        assert str(r) == "550 5.7.9 trailing rcpt rule ran"
        qid = queued_id(c.data(message()))
    assert [r["address"] for r in policy.message(qid)[1]["rcpts"]] == ["accept.trap@example.net"]


@pytest.mark.parametrize("stage", STAGES)
def test_accept_with_a_code_replaces_the_positive_reply(policy, stage):
    before = set(policy.queued())
    with policy.client() as c:
        r = at_stage(c, stage, "acceptcode")
        if stage == "helo":
            assert r.code == 250
            assert r.lines[0] == "helo accepted by rule"
            assert r.lines[1:] == ["PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8",
                                   "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"]
            assert str(c.cmd("HELO acceptcode.test.example", esc=False)) == \
                "250 helo accepted by rule"
        elif stage == "mail":
            assert str(r) == "250 2.1.0 mail accepted by rule"
        elif stage == "rcpt":
            assert str(r) == "250 2.1.5 rcpt accepted by rule"
        else:
            # the message is queued all the same; the reply is the rule's
            assert str(r) == "250 2.6.0 preq accepted by rule"
        if stage != "preq":
            finish(c, stage)
    new = set(policy.queued()) - before
    assert len(new) == 1, new


def test_accept_with_a_code_at_connect_replaces_the_greeting_text(daemons):
    d = daemons(rules='function on_connect(ctx)\n'
                      '  return status.accept(code(220, "2.0.0", "welcome by rule"))\n'
                      'end\n')
    with d.client() as c:
        assert str(c.greeting) == f"220 {HOSTNAME} welcome by rule"
        c.ehlo()
        c.send_message(message())


# ------------------------------------------------------------ faccept

def test_faccept_at_connect_skips_every_later_rule_of_the_connection(policy):
    with policy.client(source="127.0.0.2") as c:
        assert str(c.greeting) == f"220 {HOSTNAME} ESMTP vsmtpd"
        r = c.cmd("EHLO deny.trap.test.example", esc=False)
        assert r.code == 250 and r.lines[0] == HOSTNAME
        rcpt = unique("deny") + ".trap@example.net"
        ids = []
        for _ in range(2):
            c.expect("MAIL FROM:<deny.trap@example.org>", 250, text="2.1.0 Ok")
            c.expect(f"RCPT TO:<{rcpt}>", 250, text="2.1.5 Ok")
            ids.append(queued_id(c.data(message(verdict="deny", trap=True))))
        c.quit()
    for qid in ids:
        assert qid in policy.queued()
    # not even the actions of the rcpt stage ran
    assert f"before {rcpt}" not in policy.log()


def test_faccept_at_helo_lasts_for_the_connection(policy):
    with policy.client() as c:
        r = c.cmd("EHLO faccept.trap.test.example", esc=False)
        assert r.code == 250 and r.lines[0] == HOSTNAME
        ids = []
        for _ in range(2):
            c.expect("MAIL FROM:<reject.trap@example.org>", 250, "2.1.0")
            c.expect("RCPT TO:<deny.trap@example.net>", 250, "2.1.5")
            ids.append(queued_id(c.data(message(verdict="reject", trap=True))))
            c.expect("RSET", 250, "2.0.0")
        c.quit()
    for qid in ids:
        assert qid in policy.queued()


def test_faccept_at_mail_lasts_for_that_transaction_only(policy):
    with policy.session() as c:
        c.expect("MAIL FROM:<faccept.trap@example.org>", 250, "2.1.0")
        # the deny rule at rcpt is not run in this transaction
        c.expect("RCPT TO:<deny@example.net>", 250, "2.1.5")
        qid = queued_id(c.data(message(verdict="deny", trap=True)))
        # the next transaction has its rules again
        c.expect("MAIL FROM:<plain@example.org>", 250, "2.1.0")
        r = c.cmd("RCPT TO:<deny@example.net>")
        assert str(r) == "554 5.7.1 Rejected by local policy"
        c.expect_eof()
    assert qid in policy.queued()
    assert [r["address"] for r in policy.message(qid)[1]["rcpts"]] == ["deny@example.net"]


def test_faccept_at_rcpt_skips_the_rules_of_later_recipients_and_preq(policy):
    with policy.session() as c:
        c.mail("plain@example.org")
        c.expect("RCPT TO:<faccept.trap@example.net>", 250, "2.1.5")
        c.expect("RCPT TO:<deny@example.net>", 250, "2.1.5")
        qid = queued_id(c.data(message(verdict="reject", trap=True)))
        c.mail("plain@example.org")
        r = c.cmd("RCPT TO:<reject@example.net>")
        assert r.code == 451 and r.esc == "4.7.1", r
    assert [r["address"] for r in policy.message(qid)[1]["rcpts"]] == \
        ["faccept.trap@example.net", "deny@example.net"]


def test_faccept_at_preq_skips_the_later_preq_rules(policy):
    with policy.session() as c:
        c.mail()
        c.rcpt()
        qid = queued_id(c.data(message(verdict="faccept", trap=True)))
    assert qid in policy.queued()


# ------------------------------------------------------------ deny

@pytest.mark.parametrize("stage", STAGES)
def test_deny_sends_554_and_closes_the_connection(policy, stage):
    before = policy.queued()
    with policy.client() as c:
        r = at_stage(c, stage, "deny", trap=True)
        assert str(r) == "554 5.7.1 Rejected by local policy"
        c.expect_eof()
    assert policy.queued() == before


@pytest.mark.parametrize("stage", STAGES)
def test_deny_with_a_code_sends_that_code_and_closes(policy, stage):
    with policy.client() as c:
        r = at_stage(c, stage, "denycode")
        assert str(r) == f"550 5.7.0 {stage} denied by rule"
        c.expect_eof()


def test_deny_at_rcpt_closes_the_connection(policy):
    name = unique("deny")
    before = policy.queued()
    with policy.session() as c:
        c.mail()
        c.rcpt("first@example.net")
        c.send(f"RCPT TO:<{name}@example.net>\r\nNOOP\r\n")
        r = c.read_reply()
        assert str(r) == "554 5.7.1 Rejected by local policy"
        c.expect_eof()  # the NOOP is never answered
    assert policy.queued() == before
    m = re.search(r"smtp\[\d+\]: notice: ([0-9A-F]{16}): rcpt client\.test\.example"
                  r"\[127\.0\.0\.1\]: deny by rule \"rcpt verdict\": 554 5\.7\.1 "
                  r"Rejected by local policy$", policy.session_log(c.local_port), re.M)
    assert m is not None and e2e.ID_RE.match(m.group(1))


# ------------------------------------------------------------ reject and info

def follow_up(d, c, stage):
    """After a refused command at `stage` the session goes on: the command
    had no effect, and a plain message still goes through."""
    if stage == "helo":
        c.expect("MAIL FROM:<plain@example.org>", 503, "5.5.1")  # no HELO was accepted
        c.ehlo()
        c.mail()
    elif stage == "mail":
        c.expect("RCPT TO:<plain@example.net>", 503, "5.5.1")  # no transaction
        c.mail()
    elif stage == "rcpt":
        c.expect("DATA", 503, "5.5.1")  # no recipient
    if stage in ("helo", "mail", "rcpt"):
        c.rcpt("plain@example.net")
    else:
        c.mail()
        c.rcpt("plain@example.net")
    qid = queued_id(c.data(message()))
    assert qid in d.queued()


@pytest.mark.parametrize("stage", STAGES)
def test_reject_refuses_the_command_and_the_session_goes_on(policy, stage):
    before = policy.queued()
    with policy.client() as c:
        r = at_stage(c, stage, "reject", trap=True)
        assert str(r) == "451 4.7.1 Rejected by local policy, try again later"
        assert policy.queued() == before
        follow_up(policy, c, stage)
        c.quit()


@pytest.mark.parametrize("stage", STAGES)
def test_reject_with_a_code_sends_that_code(policy, stage):
    with policy.client() as c:
        r = at_stage(c, stage, "rejectcode")
        assert str(r) == f"452 4.2.2 {stage} rejected by rule"
        follow_up(policy, c, stage)


def test_reject_at_rcpt_refuses_only_that_recipient(policy):
    with policy.session() as c:
        c.mail()
        c.rcpt("one@example.net")
        c.expect("RCPT TO:<reject@example.net>", 451, "4.7.1")
        c.rcpt("two@example.net")
        c.expect("RCPT TO:<rejectcode@example.net>", 452, "4.2.2")
        qid = queued_id(c.data(message()))
    content, env = policy.message(qid)
    assert [r["address"] for r in env["rcpts"]] == ["one@example.net", "two@example.net"]


@pytest.mark.parametrize("stage", STAGES)
def test_info_replies_with_its_code_and_changes_nothing(policy, stage):
    before = policy.queued()
    with policy.client() as c:
        r = at_stage(c, stage, "info", trap=True)
        assert str(r) == f"553 5.7.0 {stage} info by rule"
        assert policy.queued() == before
        follow_up(policy, c, stage)


# ------------------------------------------------------------ quarantine

@pytest.mark.parametrize("stage", ["mail", "rcpt", "preq"])
def test_quarantine_keeps_the_message_out_of_the_queue(policy, stage):
    before = policy.queued()
    with policy.client() as c:
        r = at_stage(c, stage, "quarantine", trap=True)
        if stage == "mail":
            assert str(r) == "250 2.1.0 Ok"
        elif stage == "rcpt":
            assert str(r) == "250 2.1.5 Ok"
        qid = queued_id(r) if stage == "preq" else finish(c, stage)
    assert policy.queued() == before
    assert qid in quarantined(policy, f"q-{stage}")
    content, env = quarantined_message(policy, f"q-{stage}", qid)
    assert env["id"] == qid
    assert env["mail_from"] in ("plain@example.org", "quarantine.trap@example.org")
    assert e2e.split_received(content)[0].startswith(b"Received: ")


def test_quarantine_at_mail_lasts_for_that_transaction_only(policy):
    with policy.session() as c:
        c.expect("MAIL FROM:<quarantine@example.org>", 250, "2.1.0")
        c.rcpt("plain@example.net")
        held = queued_id(c.data(message()))
        c.mail("plain@example.org")
        c.rcpt("plain@example.net")
        queued = queued_id(c.data(message()))
    assert held in quarantined(policy, "q-mail") and held not in policy.queued()
    assert queued in policy.queued() and queued not in quarantined(policy, "q-mail")


def test_quarantine_at_connect_holds_every_message_of_the_connection(policy):
    before = policy.queued()
    with policy.client(source="127.0.0.3") as c:
        assert str(c.greeting) == f"220 {HOSTNAME} ESMTP vsmtpd"
        c.ehlo()
        ids = [c.send_message(message(verdict="deny", trap=True)) for _ in range(2)]
        c.quit()
    assert policy.queued() == before
    held = quarantined(policy, "q-connect")
    for qid in ids:
        assert qid in held
        content, env = quarantined_message(policy, "q-connect", qid)
        assert env["client_ip"] == "127.0.0.3"
        assert e2e.split_received(content)[1] == message(verdict="deny", trap=True)


def test_quarantine_at_helo_holds_every_message_of_the_connection(policy):
    before = policy.queued()
    with policy.client() as c:
        r = c.cmd("EHLO quarantine.trap.test.example", esc=False)
        assert r.code == 250 and r.lines[0] == HOSTNAME
        ids = [c.send_message(message(verdict="reject")) for _ in range(2)]
    assert policy.queued() == before
    for qid in ids:
        assert qid in quarantined(policy, "q-helo")


# ------------------------------------------------------------ order and actions

def test_rules_run_top_to_bottom_and_stop_at_a_deny(policy):
    denied, passed = unique("deny"), unique("next")
    with policy.session() as c:
        c.mail()
        c.rcpt(f"{passed}@example.net")
        c.expect(f"RCPT TO:<{denied}@example.net>", 554, "5.7.1")
        c.expect_eof()
    policy.session_summary(c.local_port)  # the session is over
    log = policy.log()
    # both actions ran around the rules of the accepted recipient, in order
    before = log.index(f": before {passed}@example.net\n")
    after = log.index(f": after {passed}@example.net\n")
    assert before < after
    # the action before the deny ran, the one after it did not
    assert f": before {denied}@example.net\n" in log
    assert f"after {denied}@" not in log


def test_an_action_cannot_refuse_by_returning_a_status(policy):
    # "log before" returns status.deny() for every recipient: ignored
    with policy.session() as c:
        c.mail()
        c.rcpt("anyone@example.net")
        qid = queued_id(c.data(message()))
    assert qid in policy.queued()
    assert re.search(r"rules: \S+main\.lua:\d+: before anyone@example\.net$", policy.log(), re.M)


def test_log_lines_name_the_file_and_line_of_the_call(policy):
    name = unique("logged")
    with policy.session() as c:
        c.mail()
        c.rcpt(f"{name}@example.net")
    n = line_of(VERDICT_RULES, 'log("info", "before "')
    policy.wait_log(rf"smtp\[\d+\]: info: rules: {re.escape(policy.rules_path)}:{n}: "
                    rf"before {name}@example\.net$")


# ------------------------------------------------------------ connect stage

CONNECT_CASES = {
    "status.deny()": "554 5.7.1 Rejected by local policy",
    'status.deny(code(550, "5.7.0", "no mail from you"))': "550 5.7.0 no mail from you",
    "status.reject()": "451 4.7.1 Rejected by local policy, try again later",
    "status.reject(codes.try_later)": "451 4.3.0 Temporary local problem, please try again later",
    'status.info(code(554, "5.7.1", "closed for you"))': "554 5.7.1 closed for you",
}


@pytest.mark.parametrize("expr", list(CONNECT_CASES))
def test_refusal_at_connect_replaces_the_greeting_and_closes(daemons, expr):
    rules = ("function on_connect(ctx)\n"
             "  if ctx.client_ip == \"127.0.0.2\" then return " + expr + " end\n"
             "  return status.next()\n"
             "end\n")
    d = daemons(rules=rules)
    with d.client(source="127.0.0.2") as c:
        assert str(c.greeting) == CONNECT_CASES[expr]
        c.expect_eof()
    # another client is greeted and served
    with d.session() as c:
        c.send_message(message())
        c.quit()
    assert d.alive()


# ------------------------------------------------------------ both forms

HOOK_RULES = r'''
function on_connect(ctx)
  return status.accept(code(220, "2.0.0", "hooks greet you"))
end

function on_helo(ctx)
  if ctx.helo == "bad.example" then return status.reject(codes.bad_helo) end
  return status.next()
end

function on_mail_from(ctx)
  if ctx.mail_from.domain == "spam.example" then return status.reject(codes.policy) end
  return status.next()
end

function on_rcpt_to(ctx)
  if ctx.rcpt.local_part == "nobody" then return status.reject(codes.unknown_user) end
  return status.next()
end

function on_pre_queue(ctx)
  ctx:append_header("X-Hooked", "yes")
  return status.next()
end
'''


def test_hook_functions_are_run_at_their_stages(daemons):
    d = daemons(rules=HOOK_RULES)
    with d.client() as c:
        assert str(c.greeting) == f"220 {HOSTNAME} hooks greet you"
        r = c.cmd("EHLO bad.example")
        assert str(r) == "501 5.5.2 Helo command rejected: invalid name"
        c.ehlo()
        c.expect("MAIL FROM:<a@spam.example>", 550, "5.7.1")
        c.mail("a@good.example")
        r = c.cmd("RCPT TO:<nobody@example.net>")
        assert str(r) == "550 5.1.1 Recipient address rejected: user unknown"
        c.rcpt("somebody@example.net")
        qid = queued_id(c.data(b"Subject: hooks\r\n\r\nbody\r\n"))
    content, env = d.message(qid)
    assert [r["address"] for r in env["rcpts"]] == ["somebody@example.net"]
    assert e2e.split_received(content)[1] == b"Subject: hooks\r\nX-Hooked: yes\r\n\r\nbody\r\n"


def test_table_stages_and_hook_functions_combine(daemons):
    d = daemons(rules=r'''
function on_pre_queue(ctx)
  ctx:append_header("X-From-Hook", ctx:get("tag"))
  return status.next()
end

return {
  rcpt = {
    rule "tag" (function(ctx)
      ctx:set("tag", "rcpt-" .. ctx.rcpt.local_part)
      return status.next()
    end),
  },
}
''')
    with d.session() as c:
        c.mail()
        c.rcpt("joe@example.net")
        qid = queued_id(c.data(b"Subject: both\r\n\r\nbody\r\n"))
    content, env = d.message(qid)
    assert b"\r\nX-From-Hook: rcpt-joe\r\n\r\nbody\r\n" in content


# ------------------------------------------------------------ failing rules

def expect_failure_logged(d, rules, stage, kind, rule_name):
    n = line_of(rules, f'rule "{rule_name}"')
    d.wait_log(rf"rules: rule \"{rule_name}\" \({re.escape(d.rules_path)}:{n}\) at {stage} "
               rf"{FAILURES[kind]}")


@pytest.mark.parametrize("kind", list(FAILURES))
@pytest.mark.parametrize("stage", STAGES)
def test_failing_rule_gives_451_and_the_session_goes_on(failing, stage, kind):
    before = failing.queued()
    with failing.client() as c:
        if stage == "preq":
            c.ehlo()
            c.mail()
            c.rcpt()
            r = c.data(message(fail=kind))
        else:
            r = at_stage(c, stage, kind)
        assert str(r) == POLICY_ERROR
        assert failing.queued() == before
        follow_up(failing, c, stage)
        c.quit()
    expect_failure_logged(failing, FAILING_RULES, stage, kind, f"{stage} failure")
    # and the next connection is served as usual
    with failing.session() as c:
        c.send_message(message())
        c.quit()


def test_failure_is_logged_as_a_refusal_by_the_rule(failing):
    with failing.session() as c:
        c.mail()
        c.expect("RCPT TO:<raise@example.net>", 451, "4.3.0")
    failing.wait_log(r"[0-9A-F]{16}: rcpt client\.test\.example\[127\.0\.0\.1\]: error by rule "
                     r"\"rcpt failure\": 451 4\.3\.0 Local policy error, try again later$")


@pytest.mark.parametrize("kind", list(FAILURE_KINDS))
def test_failing_rule_at_connect_refuses_with_451_and_closes(daemons, kind):
    rules = ("return {\n"
             "  connect = {\n"
             "    rule \"connect failure\" (function(ctx)\n"
             "      if ctx.client_ip ~= \"127.0.0.2\" then return status.next() end\n"
             f"      {FAILURE_KINDS[kind][0]}\n"
             "    end),\n"
             "  },\n"
             "}\n")
    d = daemons(rules=rules, settings=FAST_LIMITS)
    with d.client(source="127.0.0.2") as c:
        assert str(c.greeting) == POLICY_ERROR
        c.expect_eof()
    expect_failure_logged(d, rules, "connect", kind, "connect failure")
    with d.session() as c:
        assert str(c.greeting) == f"220 {HOSTNAME} ESMTP vsmtpd"
        c.send_message(message())
        c.quit()
    assert d.alive()
