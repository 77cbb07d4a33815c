"""Certificates for the TLS end-to-end tests, made at test time with the
`openssl` command (Debian's openssl 3.0).

make_certs(directory) builds a test CA and, signed by it:
- server:   mx.test.example, the default certificate
- server2:  mx.test.example again (another key and serial), for reloads
- sni:      sni.test.example, chosen by SNI
- wildcard: *.wild.test.example, chosen by SNI
- expired:  expired.test.example, valid in January 2020 only
and other_key, a key that belongs to no certificate.

openssl 3.0 has no -not_before / -not_after for `req` and `x509` (they came
in 3.4), so every certificate is issued with `openssl ca`, whose -startdate
and -enddate give the expired one its dates in the past.

Every file is readable by the daemon's unprivileged user (keys included: on
SIGHUP the daemon reads them as that user).
"""
import base64
import os
import shutil
import subprocess

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

CA_CONFIG = """\
[ca]
default_ca = testca

[testca]
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
certificate = {ca}
private_key = {ca_key}
default_md = sha256
policy = anything
unique_subject = no
email_in_dn = no
copy_extensions = none

[anything]
commonName = supplied
"""

LEAF_EXTENSIONS = """\
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
"""


def openssl(*args, cwd=None):
    """Run the openssl command; its stdout. A failure raises with its stderr."""
    if not os.access(OPENSSL, os.X_OK):
        raise RuntimeError("the openssl command is missing (setup.sh installs it)")
    p = subprocess.run([OPENSSL, *args], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30, cwd=cwd)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({p.returncode}):\n"
                           f"{p.stderr.decode('utf-8', 'replace')}")
    return p.stdout.decode("utf-8", "replace")


def _readable(path):
    os.chmod(path, 0o644)


def new_key(path):
    """A new EC P-256 private key (PEM, unencrypted)."""
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", path)
    _readable(path)
    return path


class Pair:
    """A certificate file and its key file."""

    def __init__(self, cert, key, name):
        self.cert = cert
        self.key = key
        self.name = name

    def der(self):
        """The certificate in DER form, as a TLS client receives it."""
        return der(self.cert)

    def __repr__(self):
        return f"Pair({self.name!r}, {self.cert!r}, {self.key!r})"


def der(cert):
    """The DER form of the first certificate of a PEM file."""
    with open(cert) as f:
        text = f.read()
    body = text.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
    return base64.b64decode("".join(body.split()))


class CA:
    """A test certificate authority in `directory`."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(os.path.join(directory, "ca", "issued"), exist_ok=True)
        os.chmod(directory, 0o755)
        self.cert = os.path.join(directory, "ca.pem")
        self.key = new_key(os.path.join(directory, "ca", "ca.key"))
        openssl("req", "-x509", "-new", "-key", self.key, "-out", self.cert, "-days", "3650",
                "-subj", "/CN=vsmtpd e2e test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-addext", "subjectKeyIdentifier=hash")
        _readable(self.cert)
        cadir = os.path.join(directory, "ca")
        with open(os.path.join(cadir, "index.txt"), "w"):
            pass
        with open(os.path.join(cadir, "serial"), "w") as f:
            f.write("1000\n")
        self.config = os.path.join(cadir, "ca.cnf")
        with open(self.config, "w") as f:
            f.write(CA_CONFIG.format(dir=cadir, ca=self.cert, ca_key=self.key))

    def issue(self, stem, cn, sans=None, days=365, startdate=None, enddate=None):
        """A certificate for cn (and sans, DNS names) signed by the CA:
        <stem>.pem and <stem>.key in the CA's directory. startdate / enddate
        (YYYYMMDDHHMMSSZ) replace the validity of `days` from now."""
        key = new_key(os.path.join(self.dir, stem + ".key"))
        csr = os.path.join(self.dir, "ca", stem + ".csr")
        cert = os.path.join(self.dir, stem + ".pem")
        ext = os.path.join(self.dir, "ca", stem + ".ext")
        with open(ext, "w") as f:
            f.write(LEAF_EXTENSIONS.format(
                san=", ".join("DNS:" + n for n in (sans or [cn]))))
        openssl("req", "-new", "-key", key, "-out", csr, "-subj", "/CN=" + cn)
        dates = []
        if startdate:
            dates += ["-startdate", startdate]
        if enddate:
            dates += ["-enddate", enddate]
        else:
            dates += ["-days", str(days)]
        openssl("ca", "-batch", "-config", self.config, "-in", csr, "-out", cert, "-notext",
                "-extfile", ext, "-extensions", "leaf", *dates)
        _readable(cert)
        return Pair(cert, key, cn)


class Certs:
    """Everything the TLS tests use; see the module's docstring."""

    def __init__(self, directory):
        self.dir = directory
        self.authority = CA(directory)
        self.ca = self.authority.cert
        self.server = self.authority.issue("mx", "mx.test.example")
        self.server2 = self.authority.issue("mx2", "mx.test.example")
        self.sni = self.authority.issue("sni", "sni.test.example")
        self.wildcard = self.authority.issue("wild", "*.wild.test.example")
        self.expired = self.authority.issue("expired", "expired.test.example",
                                            startdate="20200101000000Z",
                                            enddate="20200201000000Z")
        self.other_key = new_key(os.path.join(directory, "other.key"))


def make_certs(directory):
    return Certs(directory)


def subject_cn(cert):
    """The CN of a PEM certificate file."""
    out = openssl("x509", "-in", cert, "-noout", "-subject", "-nameopt", "multiline")
    for line in out.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "commonName":
            return value.strip()
    raise AssertionError(f"no CN in {cert}: {out}")


def not_after(cert):
    """The notAfter date of a PEM certificate as openssl prints it."""
    out = openssl("x509", "-in", cert, "-noout", "-enddate")
    return out.strip().split("=", 1)[1]
