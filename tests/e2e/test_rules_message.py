"""What rules see and change: the ctx fields at each stage, variables kept
in the envelope, envelope edits (sender and recipients) and message edits at
preq, checked in the bytes and the envelope of the queued file, over DATA,
BDAT and with swaks."""
import email.utils
import os
import re
import shutil
import subprocess

import pytest

import vsmtpd_e2e as e2e
from vsmtpd_e2e import HOSTNAME, queued_id

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"

# Every stage records what it sees as variables, which end up in the
# envelope's "vars"; a few recipients make a rule misuse ctx.
FIELD_RULES = r'''
return {
  connect = {
    action "connect fields" (function(ctx)
      ctx:set("c_client_ip", ctx.client_ip)
      ctx:set("c_client_port", ctx.client_port)
      ctx:set("c_server_ip", ctx.server_ip)
      ctx:set("c_server_port", ctx.server_port)
      ctx:set("c_server_name", ctx.server_name)
      ctx:set("c_listener", ctx.listener)
      ctx:set("c_listener_kind", ctx.listener_kind)
      ctx:set("c_stage", ctx.stage)
      ctx:set("c_is_secured", ctx.is_secured)
      ctx:set("c_is_authenticated", ctx.is_authenticated)
      ctx:set("c_tls_nil", ctx.tls == nil)
      ctx:set("c_auth_nil", ctx.auth == nil)
      ctx:set("c_helo_nil", ctx.helo == nil)
      ctx:set("c_mail_from_nil", ctx.mail_from == nil)
      ctx:set("c_rcpt_nil", ctx.rcpt == nil)
      ctx:set("c_message_id_nil", ctx.message_id == nil)
      ctx:set("c_timestamp", ctx.connection_timestamp)
    end),
  },
  helo = {
    action "helo fields" (function(ctx)
      ctx:set("h_helo", ctx.helo)
      ctx:set("h_stage", ctx.stage)
    end),
  },
  mail = {
    action "mail fields" (function(ctx)
      ctx:set("m_from", ctx.mail_from.address)
      ctx:set("m_local", ctx.mail_from.local_part)
      ctx:set("m_domain", ctx.mail_from.domain)
      ctx:set("m_is_null", ctx.mail_from.is_null)
      ctx:set("m_helo", ctx.helo)
      ctx:set("m_stage", ctx.stage)
      ctx:set("m_message_id_nil", ctx.message_id == nil)
      ctx:set("m_rcpt_nil", ctx.rcpt == nil)
      ctx:set("m_rcpt_count", #ctx.rcpt_list)
      ctx:set("m_timestamp", ctx.mail_timestamp)
    end),
  },
  rcpt = {
    rule "misuse" (function(ctx)
      local l = ctx.rcpt.local_part
      if l == "unknownfield" then return ctx.no_such_field end
      if l == "assignfield" then ctx.helo = "forged.example" end
      if l == "bodyearly" then return ctx.body end
      return status.next()
    end),
    action "rcpt fields" (function(ctx)
      local n = #ctx.rcpt_list
      local list = {}
      for i, a in ipairs(ctx.rcpt_list) do list[i] = a.address end
      ctx:set("r" .. n .. "_rcpt", ctx.rcpt.address)
      ctx:set("r" .. n .. "_local", ctx.rcpt.local_part)
      ctx:set("r" .. n .. "_domain", ctx.rcpt.domain)
      ctx:set("r" .. n .. "_list", table.concat(list, ","))
      ctx:set("r" .. n .. "_message_id", ctx.message_id)
      ctx:set("r" .. n .. "_stage", ctx.stage)
    end),
  },
  preq = {
    action "preq fields" (function(ctx)
      local list = {}
      for i, a in ipairs(ctx.rcpt_list) do list[i] = a.address end
      ctx:set("p_stage", ctx.stage)
      ctx:set("p_size", ctx.size)
      ctx:set("p_body", ctx.body)
      ctx:set("p_raw_start", ctx.raw:sub(1, 10))
      ctx:set("p_raw_len", #ctx.raw)
      ctx:set("p_raw", ctx.raw)
      ctx:set("p_message_id", ctx.message_id)
      ctx:set("p_rcpt_nil", ctx.rcpt == nil)
      ctx:set("p_list", table.concat(list, ","))
    end),
  },
}
'''

ENVELOPE_RULES = r'''
return {
  connect = {
    action "connection variable" (function(ctx)
      ctx:set("client", "conn-" .. ctx.client_ip)
    end),
  },
  mail = {
    rule "sender" (function(ctx)
      local l = ctx.mail_from.local_part
      if l == "rewriteme" then ctx:rewrite_mail_from("rewritten@example.org") end
      if l == "nullme" then ctx:rewrite_mail_from("") end
      ctx:set("tx_sender", ctx.mail_from.address)
      ctx:set("temp", "deleted at rcpt")
      return status.next()
    end),
  },
  rcpt = {
    rule "recipients" (function(ctx)
      local l = ctx.rcpt.local_part
      if l == "expand" then
        ctx:set("added1", ctx:add_rcpt("member1@example.com"))
        ctx:set("added2", ctx:add_rcpt(address("member2@example.com")))
        ctx:set("added_again", ctx:add_rcpt("member1@EXAMPLE.com"))
      elseif l == "alias" then
        ctx:set("rewrote", ctx:rewrite_rcpt(ctx.rcpt, "target@example.com"))
        ctx:set("rewrote_missing", ctx:rewrite_rcpt("nobody@example.com", "x@example.com"))
      elseif l == "drop" then
        ctx:set("removed", ctx:remove_rcpt(ctx.rcpt))
        ctx:set("removed_missing", ctx:remove_rcpt("nobody@example.com"))
      elseif l == "copy" then
        ctx:bcc("archive@example.com")
      elseif l == "badaddress" then
        ctx:add_rcpt("not an address")
      end
      ctx:set("seen", ctx:get("client") .. "/" .. ctx:get("tx_sender"))
      ctx:set("temp", nil)
      return status.next()
    end),
    -- refuses a recipient after the rule above edited the envelope
    rule "aliased then refused" (function(ctx)
      if ctx.rcpt.local_part == "aliasrefused" then
        ctx:rewrite_rcpt(ctx.rcpt, "target@example.com")
        return status.reject(codes.too_many_recipients)
      end
      if ctx.rcpt.local_part == "dropfirstrefused" then
        ctx:remove_rcpt("first@example.net")
        return status.reject(codes.too_many_recipients)
      end
      return status.next()
    end),
  },
  preq = {
    rule "message envelope" (function(ctx)
      if ctx:has_header("X-Drop-All") then
        for _, a in ipairs(ctx.rcpt_list) do ctx:remove_rcpt(a) end
      end
      if ctx:has_header("X-Bcc") then ctx:bcc(ctx:get_header("X-Bcc")) end
      if ctx:has_header("X-Sender") then ctx:rewrite_mail_from(ctx:get_header("X-Sender")) end
      ctx:set("preq_var", ctx:get("tx_sender"))
      return status.next()
    end),
  },
}
'''

EDIT_RULES = r'''
return {
  preq = {
    rule "edits" (function(ctx)
      local op = ctx:get_header("X-Edit")
      if op == "append" then
        ctx:append_header("X-Appended", "yes")
      elseif op == "prepend" then
        ctx:prepend_header("X-Prepended", "top")
      elseif op == "set" then
        ctx:set_header("subject", "new subject")
        ctx:set_header("X-New", "fresh")
      elseif op == "rename" then
        ctx:set("renamed", ctx:rename_header("x-old", "X-Renamed"))
      elseif op == "remove" then
        ctx:set("removed", ctx:remove_header("X-Remove-Me"))
        ctx:set("removed_none", ctx:remove_header("X-Not-There"))
      elseif op == "read" then
        ctx:set("folded", ctx:get_header("x-folded"))
        ctx:set("second", ctx:get_header("X-Multi", 2))
        ctx:set("missing_nil", ctx:get_header("X-Missing") == nil)
        ctx:set("count", ctx:count_header("x-multi"))
        ctx:set("count_none", ctx:count_header("X-Missing"))
        ctx:set("has", ctx:has_header("X-MULTI"))
        ctx:set("has_not", ctx:has_header("X-Missing"))
        ctx:set("all_multi", table.concat(ctx:get_all_headers("X-Multi"), "|"))
        local names, values = {}, {}
        for i, f in ipairs(ctx:get_all_headers()) do names[i] = f.name values[i] = f.value end
        ctx:set("all_names", table.concat(names, ","))
        ctx:set("third_value", values[3])
        ctx:set("body", ctx.body)
        ctx:set("size", ctx.size)
        ctx:set("raw_start", ctx.raw:sub(1, 10))
        ctx:set("raw_len", #ctx.raw)
      elseif op == "to" then
        ctx:add_to("added@example.com")
        ctx:set("removed_to", ctx:remove_to("gone@example.net"))
        ctx:set("rewritten_to", ctx:rewrite_to("old@example.net", "new@example.net"))
      elseif op == "quarantine" then
        ctx:append_header("X-Held", "for review")
        return ctx:quarantine("review")
      elseif op == "bad" then
        ctx:append_header("Bad Name", "value")
      end
      return status.next()
    end),
  },
}
'''

BODY = b"Body line 1\r\n.a line with a leading dot\r\n\r\n..two dots\r\nlast line\r\n"


def msg(edit, extra=b"", body=BODY):
    return (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
            b"Subject: old subject\r\nX-Edit: " + edit.encode() + b"\r\n" + extra +
            b"\r\n" + body)


@pytest.fixture(scope="module")
def fields(module_daemons):
    return module_daemons(rules=FIELD_RULES, label="-fields")


@pytest.fixture(scope="module")
def envelope(module_daemons):
    return module_daemons(rules=ENVELOPE_RULES, label="-envelope")


@pytest.fixture(scope="module")
def editor(module_daemons):
    return module_daemons(rules=EDIT_RULES, label="-edits")


def rcpts(env):
    return [r["address"] for r in env["rcpts"]]


def send(d, content, sender="sender@example.org", to=("rcpt@example.net",)):
    with d.session() as c:
        qid = c.send_message(e2e.stuff(content), sender=sender, rcpts=to)
        c.quit()
    return d.message(qid)


def header_and_body(content):
    """The client part of a queued message (after Received:), split at the
    first empty line."""
    rest = e2e.split_received(content)[1]
    head, sep, body = rest.partition(b"\r\n\r\n")
    assert sep, rest
    return head + b"\r\n", body


# ------------------------------------------------------------ ctx fields

def test_ctx_fields_at_each_stage(fields):
    with fields.client() as c:
        c.ehlo("fields.test.example")
        c.mail("Sender@Example.ORG")
        c.rcpt("first@example.net")
        c.rcpt("Second@Example.NET")
        qid = queued_id(c.data(b"Subject: fields\r\n\r\nthe body\r\n"))
        port = c.local_port
        c.quit()
    content, env = fields.message(qid)
    v = env["vars"]
    # connect
    assert v["c_client_ip"] == "127.0.0.1"
    assert v["c_client_port"] == port
    assert v["c_server_ip"] == "127.0.0.1"
    assert v["c_server_port"] == fields.port
    assert v["c_server_name"] == HOSTNAME
    assert v["c_listener"] == "smtp"
    assert v["c_listener_kind"] == "smtp"
    assert v["c_stage"] == "connect"
    assert v["c_is_secured"] is False
    assert v["c_is_authenticated"] is False
    assert v["c_tls_nil"] is True and v["c_auth_nil"] is True
    assert v["c_helo_nil"] is True and v["c_mail_from_nil"] is True
    assert v["c_rcpt_nil"] is True and v["c_message_id_nil"] is True
    assert abs(v["c_timestamp"] - env["received_at"]) < 60
    # helo: the name being offered
    assert v["h_helo"] == "fields.test.example" and v["h_stage"] == "helo"
    # mail: the sender, no queue id yet
    assert v["m_from"] == "Sender@Example.ORG"
    assert v["m_local"] == "Sender" and v["m_domain"] == "example.org"
    assert v["m_is_null"] is False
    assert v["m_helo"] == "fields.test.example"
    assert v["m_stage"] == "mail"
    assert v["m_message_id_nil"] is True and v["m_rcpt_nil"] is True
    assert v["m_rcpt_count"] == 0
    assert abs(v["m_timestamp"] - env["received_at"]) < 60
    # rcpt: the current recipient, already in rcpt_list, and the queue id
    assert v["r1_rcpt"] == "first@example.net" and v["r1_list"] == "first@example.net"
    assert v["r2_rcpt"] == "Second@Example.NET"
    assert v["r2_local"] == "Second" and v["r2_domain"] == "example.net"
    assert v["r2_list"] == "first@example.net,Second@Example.NET"
    assert v["r1_message_id"] == qid and v["r2_message_id"] == qid
    assert v["r1_stage"] == "rcpt"
    # preq: the message as it will be queued
    assert v["p_stage"] == "preq"
    assert v["p_message_id"] == qid
    assert v["p_rcpt_nil"] is True
    assert v["p_list"] == "first@example.net,Second@Example.NET"
    assert v["p_body"] == "the body\r\n"
    assert v["p_raw_start"] == "Received: "
    assert v["p_size"] == len(content) == v["p_raw_len"]
    assert v["p_raw"].encode() == content  # exactly what was queued


def test_null_sender_is_an_empty_address(fields):
    with fields.session() as c:
        c.expect("MAIL FROM:<>", 250, "2.1.0")
        c.rcpt("someone@example.net")
        qid = queued_id(c.data(b"Subject: bounce\r\n\r\nbody\r\n"))
    v = fields.message(qid)[1]["vars"]
    assert v["m_from"] == "" and v["m_is_null"] is True
    assert v["m_local"] == "" and v["m_domain"] == ""


@pytest.mark.parametrize("local,why", [
    ("unknownfield", 'ctx has no field or method "no_such_field"'),
    ("assignfield", "ctx.helo cannot be assigned"),
    ("bodyearly", "body needs the message"),
])
def test_misusing_ctx_is_a_rule_error(fields, local, why):
    with fields.session() as c:
        c.mail()
        r = c.cmd(f"RCPT TO:<{local}@example.net>")
        assert str(r) == "451 4.3.0 Local policy error, try again later"
        # nothing of the refused recipient stays
        c.rcpt("fine@example.net")
        qid = queued_id(c.data(b"Subject: x\r\n\r\nbody\r\n"))
    assert rcpts(fields.message(qid)[1]) == ["fine@example.net"]
    fields.wait_log(r'rules: rule "misuse" \(\S+main\.lua:\d+\) at rcpt failed: .*' + re.escape(why))
    # the helo stays what the client said
    assert fields.message(qid)[1]["helo"] == e2e.CLIENT_NAME


# ------------------------------------------------------------ variables

def test_variables_reach_the_envelope_and_later_stages(envelope):
    with envelope.session() as c:
        qid1 = c.send_message(b"Subject: 1\r\n\r\none\r\n", sender="first@example.org")
        qid2 = c.send_message(b"Subject: 2\r\n\r\ntwo\r\n", sender="second@example.org")
        c.quit()
    v1 = envelope.message(qid1)[1]["vars"]
    v2 = envelope.message(qid2)[1]["vars"]
    # a connection variable is in every transaction, a transaction variable
    # only in its own; setting nil deletes
    assert v1 == {"client": "conn-127.0.0.1", "tx_sender": "first@example.org",
                  "seen": "conn-127.0.0.1/first@example.org",
                  "preq_var": "first@example.org"}
    assert v2["tx_sender"] == "second@example.org"
    assert v2["seen"] == "conn-127.0.0.1/second@example.org"
    assert v2["client"] == "conn-127.0.0.1"


# ------------------------------------------------------------ envelope edits

def test_rewrite_mail_from_changes_the_queued_sender(envelope):
    content, env = send(envelope, b"Subject: s\r\n\r\nbody\r\n", sender="rewriteme@example.org")
    assert env["mail_from"] == "rewritten@example.org"
    # later stages see the new sender
    assert env["vars"]["tx_sender"] == "rewritten@example.org"
    # the message itself is untouched
    assert e2e.split_received(content)[1] == b"Subject: s\r\n\r\nbody\r\n"


def test_rewrite_mail_from_to_the_null_sender(envelope):
    _, env = send(envelope, b"Subject: s\r\n\r\nbody\r\n", sender="nullme@example.org")
    assert env["mail_from"] == ""


def test_rewrite_mail_from_at_preq(envelope):
    _, env = send(envelope, b"X-Sender: late@example.org\r\n\r\nbody\r\n")
    assert env["mail_from"] == "late@example.org"


def test_add_rcpt_adds_recipients_once(envelope):
    _, env = send(envelope, b"Subject: s\r\n\r\nbody\r\n", to=["expand@example.net"])
    assert rcpts(env) == ["expand@example.net", "member1@example.com", "member2@example.com"]
    assert env["vars"]["added1"] is True and env["vars"]["added2"] is True
    assert env["vars"]["added_again"] is False


def test_rewrite_rcpt_replaces_the_recipient(envelope):
    _, env = send(envelope, b"Subject: s\r\n\r\nbody\r\n",
                  to=["keep@example.net", "alias@example.net"])
    assert rcpts(env) == ["keep@example.net", "target@example.com"]
    assert env["vars"]["rewrote"] is True and env["vars"]["rewrote_missing"] is False


def test_remove_rcpt_takes_the_recipient_out(envelope):
    _, env = send(envelope, b"Subject: s\r\n\r\nbody\r\n",
                  to=["keep@example.net", "drop@example.net"])
    assert rcpts(env) == ["keep@example.net"]
    assert env["vars"]["removed"] is True and env["vars"]["removed_missing"] is False


def test_bcc_adds_a_recipient_the_headers_do_not_show(envelope):
    content, env = send(envelope, b"To: copy@example.net\r\n\r\nbody\r\n",
                        to=["copy@example.net"])
    assert rcpts(env) == ["copy@example.net", "archive@example.com"]
    assert e2e.split_received(content)[1] == b"To: copy@example.net\r\n\r\nbody\r\n"


def test_bcc_at_preq(envelope):
    _, env = send(envelope, b"X-Bcc: audit@example.com\r\n\r\nbody\r\n")
    assert rcpts(env) == ["rcpt@example.net", "audit@example.com"]


def test_a_bad_address_in_an_envelope_edit_is_a_rule_error(envelope):
    with envelope.session() as c:
        c.mail()
        c.expect("RCPT TO:<badaddress@example.net>", 451, "4.3.0")
        c.rcpt("fine@example.net")
        qid = queued_id(c.data(b"Subject: s\r\n\r\nbody\r\n"))
    assert rcpts(envelope.message(qid)[1]) == ["fine@example.net"]
    envelope.wait_log(r'rule "recipients" \(\S+\) at rcpt failed: .*not an address: "not an address"')


def test_removing_every_recipient_discards_the_message(envelope):
    before = envelope.queued()
    with envelope.session() as c:
        c.mail()
        c.rcpt("one@example.net")
        c.rcpt("two@example.net")
        r = c.data(b"X-Drop-All: yes\r\n\r\nbody\r\n")
        assert str(r) == "250 2.0.0 Ok: discarded"
        # the session goes on
        c.send_message(b"Subject: after\r\n\r\nbody\r\n")
        c.quit()
    assert len(envelope.queued()) == len(before) + 1
    assert not os.path.exists(os.path.join(envelope.spool, "quarantine"))
    e2e.wait_until(lambda: envelope.incoming() == [], what="incoming/ to be emptied")
    envelope.wait_log(r"[0-9A-F]{16}: discarded: the rules removed every recipient")


def test_removing_the_only_recipient_at_rcpt_discards_the_message(envelope):
    """The rule drops the recipient the client just gave: the client was
    told 250 for it, so DATA goes on and the message is discarded, never a
    503 "need RCPT" (a permanent failure the sender would get a bounce for)."""
    before = envelope.queued()
    with envelope.session() as c:
        c.mail()
        c.expect("RCPT TO:<drop@example.net>", 250, "2.1.5")
        r = c.cmd("DATA")
        assert r.code == 354, f"RCPT was accepted but DATA got {r!r}"
        c.send(b"Subject: dropped\r\n\r\nbody\r\n.\r\n")
        assert str(c.read_reply()) == "250 2.0.0 Ok: discarded"
        c.quit()
    assert envelope.queued() == before


@pytest.mark.parametrize("refused,added", [
    ("aliasrefused", "target@example.com"),
    ("dropfirstrefused", None),
])
def test_a_refused_recipient_is_not_queued_even_after_envelope_edits(envelope, refused, added):
    """A rule rewrites the current recipient (or removes another one) and a
    rule then refuses it: the client is told the recipient was refused, so
    it must not be in the queued envelope, neither as given nor rewritten."""
    with envelope.session() as c:
        c.mail()
        c.rcpt("first@example.net")
        r = c.cmd(f"RCPT TO:<{refused}@example.net>")
        assert str(r) == "452 4.5.3 Too many recipients"
        c.rcpt("last@example.net")
        qid = queued_id(c.data(b"Subject: s\r\n\r\nbody\r\n"))
    got = rcpts(envelope.message(qid)[1])
    assert f"{refused}@example.net" not in got, got
    if added:
        assert added not in got, got
    assert "last@example.net" in got, got


# ------------------------------------------------------------ message edits

def test_append_header_adds_a_field_at_the_end_of_the_header(editor):
    content, env = send(editor, msg("append"))
    head, body = header_and_body(content)
    assert head == (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
                    b"Subject: old subject\r\nX-Edit: append\r\nX-Appended: yes\r\n")
    assert body == BODY
    e2e.assert_crlf_only(content)


def test_prepend_header_goes_above_received(editor):
    content, env = send(editor, msg("prepend"))
    assert content.startswith(b"X-Prepended: top\r\nReceived: from ")
    rest = content[len(b"X-Prepended: top\r\n"):]
    assert e2e.split_received(rest)[1] == msg("prepend")
    e2e.assert_crlf_only(content)


def test_set_header_replaces_in_place_or_appends(editor):
    content, _ = send(editor, msg("set"))
    head, body = header_and_body(content)
    assert head == (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
                    b"Subject: new subject\r\nX-Edit: set\r\nX-New: fresh\r\n")
    assert body == BODY


def test_rename_header_renames_every_field(editor):
    extra = b"X-Old: one\r\nx-old: two\r\n\tfolded\r\n"
    content, env = send(editor, msg("rename", extra))
    head, body = header_and_body(content)
    assert head.endswith(b"X-Edit: rename\r\nX-Renamed: one\r\nX-Renamed: two\r\n\tfolded\r\n")
    assert b"X-Old" not in head and b"x-old" not in head
    assert env["vars"]["renamed"] == 2
    assert body == BODY


def test_remove_header_removes_every_field_with_its_folds(editor):
    extra = b"X-Remove-Me: one\r\nX-Keep: kept\r\nx-remove-me: two\r\n  folded on\r\n"
    content, env = send(editor, msg("remove", extra))
    head, body = header_and_body(content)
    assert head == (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
                    b"Subject: old subject\r\nX-Edit: remove\r\nX-Keep: kept\r\n")
    assert env["vars"]["removed"] == 2 and env["vars"]["removed_none"] == 0
    assert body == BODY


def test_reading_headers_and_the_message(editor):
    extra = (b"X-Folded: first part\r\n\tsecond part\r\n  third\r\n"
             b"X-Multi: one\r\nx-multi: two\r\nX-MULTI: three\r\n")
    content, env = send(editor, msg("read", extra))
    v = env["vars"]
    assert v["folded"] == "first part\tsecond part  third"
    assert v["second"] == "two"
    assert v["missing_nil"] is True
    assert v["count"] == 3 and v["count_none"] == 0
    assert v["has"] is True and v["has_not"] is False
    assert v["all_multi"] == "one|two|three"
    assert v["all_names"] == "Received,From,To,Subject,X-Edit,X-Folded,X-Multi,x-multi,X-MULTI"
    assert v["third_value"] == "bob@example.net"
    assert v["body"] == BODY.decode()
    assert v["raw_start"] == "Received: "
    assert v["size"] == v["raw_len"] == len(content)
    # reading changes nothing
    assert e2e.split_received(content)[1] == msg("read", extra)


def test_to_header_edits(editor):
    content = (b"From: alice@example.org\r\n"
               b"To: \"Bob\" <old@example.net>, gone@example.net,\r\n keep@example.net\r\n"
               b"Subject: to edits\r\nX-Edit: to\r\n\r\n" + BODY)
    queued, env = send(editor, content)
    head, body = header_and_body(queued)
    assert body == BODY
    assert env["vars"]["removed_to"] == 1 and env["vars"]["rewritten_to"] == 1
    fields = [l for l in re.split(rb"\r\n(?![ \t])", head) if l]
    to = [f for f in fields if f.lower().startswith(b"to:")]
    assert len(to) == 1, fields
    value = re.sub(rb"\r\n(?=[ \t])", b"", to[0])[3:].decode()
    assert email.utils.getaddresses([value]) == [
        ("Bob", "new@example.net"), ("", "keep@example.net"), ("", "added@example.com")]
    # the other fields are as they were
    assert fields[0] == b"From: alice@example.org"
    assert b"Subject: to edits" in fields and b"X-Edit: to" in fields
    e2e.assert_crlf_only(queued)


def test_a_bad_header_edit_is_a_rule_error_and_nothing_is_queued(editor):
    before = editor.queued()
    with editor.session() as c:
        c.mail()
        c.rcpt()
        r = c.data(msg("bad"))
        assert str(r) == "451 4.3.0 Local policy error, try again later"
    assert editor.queued() == before
    editor.wait_log(r'rule "edits" \(\S+\) at preq failed: .*append_header: invalid name')


def test_quarantined_message_keeps_the_preq_edits(editor):
    before = editor.queued()
    with editor.session() as c:
        c.mail()
        c.rcpt()
        qid = queued_id(c.data(e2e.stuff(msg("quarantine"))))
    assert editor.queued() == before
    path = os.path.join(editor.spool, "quarantine", "review", qid)
    content, env = e2e.read_spool_file(path)
    head, body = header_and_body(content)
    assert head.endswith(b"X-Edit: quarantine\r\nX-Held: for review\r\n")
    assert body == BODY
    assert env["id"] == qid


def bdat(c, chunk, last=False):
    c.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
    return c.read_reply()


def test_header_edit_of_a_message_sent_with_bdat(editor):
    content = msg("append")
    with editor.session() as c:
        c.mail()
        c.rcpt()
        half = len(content) // 2
        assert bdat(c, content[:half]).code == 250
        qid = queued_id(bdat(c, content[half:], last=True))
    queued, env = editor.message(qid)
    head, body = header_and_body(queued)
    assert head.endswith(b"X-Edit: append\r\nX-Appended: yes\r\n")
    assert body == BODY
    assert len(queued) == len(e2e.split_received(queued)[0]) + len(content) + len(b"X-Appended: yes\r\n")
    e2e.assert_crlf_only(queued)


def test_header_edit_of_a_message_sent_with_swaks(editor, tmp_path):
    data = tmp_path / "message.txt"
    data.write_bytes(msg("set").replace(b"\r\n", b"\n"))
    p = subprocess.run([SWAKS, "--server", "127.0.0.1", "--port", str(editor.port),
                        "--timeout", "10", "--from", "swaks@example.org",
                        "--to", "bob@example.net", "--data", "@" + str(data)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    ids = re.findall(r"^<-  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$", out, re.M)
    assert len(ids) == 1, out
    queued, env = editor.message(ids[0])
    head, body = header_and_body(queued)
    assert head == (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
                    b"Subject: new subject\r\nX-Edit: set\r\nX-New: fresh\r\n")
    assert body.rstrip(b"\r\n") == BODY.rstrip(b"\r\n")
    e2e.assert_crlf_only(queued)
    assert env["mail_from"] == "swaks@example.org"
