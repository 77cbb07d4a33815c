"""What the DMARC end-to-end tests share (test_dmarc.py, test_dmarc_report.py):
the DNS records dnsmasq serves for them (a DMARC policy p=reject,
sp=quarantine at example.test, SPF records, the DKIM key of the unit tests'
keys), the message they send, signing it with python3-dkim's dkimsign, and
sending it to the daemon.
"""
import os
import smtplib
import subprocess

import dnsserver
import vsmtpd_e2e as e2e

KEYS = os.path.join(e2e.SOURCE_DIR, "tests", "unit", "data", "dkim")


def key_record(name, path):
    """A dnsmasq txt-record option, the key cut into character-strings of at
    most 255 bytes."""
    with open(os.path.join(KEYS, path)) as f:
        text = f.read().strip()
    return "txt-record=" + name + "," + ",".join(text[i:i + 255] for i in range(0, len(text), 255))


RECORDS = [
    "txt-record=_dmarc.example.test,v=DMARC1; p=reject; sp=quarantine",
    "txt-record=example.test,v=spf1 ip4:127.0.0.0/8 -all",
    "txt-record=elsewhere.test,v=spf1 ip4:192.0.2.1 -all",
    key_record("rsa._domainkey.example.test", "rsa.txt"),
]

def message(sender_domain):
    return ("From: Alice <alice@" + sender_domain + ">\r\n"
            "To: bob@example.com\r\n"
            "Subject: DMARC end to end\r\n"
            "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            "Message-ID: <e2e@example.test>\r\n"
            "\r\n"
            "Hello Bob,\r\n"
            "checked and sent.\r\n")


def dkimsign(text):
    out = subprocess.run(["dkimsign", "rsa", "example.test", "rsa.pem"], input=text.encode(),
                         cwd=KEYS, capture_output=True, timeout=30, check=True)
    return out.stdout


def send(daemon, sender, content):
    """content from sender; (code, text) of the reply to the data."""
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as s:
        s.ehlo("client.example")
        assert s.mail(sender)[0] == 250
        assert s.rcpt("bob@example.com")[0] == 250
        try:
            code, text = s.data(content)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
    return code, text



def dns_server(workspace, label):
    """dnsmasq serving RECORDS, started; stop() it when done."""
    server = dnsserver.Dnsmasq(workspace.new_dir("dnsmasq-" + label), RECORDS)
    server.start()
    return server
