"""DNS servers for the end-to-end tests, on loopback only.

`Dnsmasq` runs Debian's dnsmasq (package dnsmasq-base) in the foreground
as an authoritative-only server for the records it is given: no upstream,
no /etc/hosts, no configuration file, listening on 127.0.0.1 on a free high
port (UDP and TCP). Names under the `local` domains that it has no record
for get NXDOMAIN. When started as root, dnsmasq drops to its own
unprivileged user once it has bound its sockets.

`SilentUDP` is a bound UDP socket that never answers: a server that
times out.

`mx_record()` and `host_record()` write the dnsmasq options of MX and
address records (a null MX of RFC 7505 is `mx_record(domain, ".", 0)`,
which dnsmasq serves as an MX with the root as its exchange);
`query_mx()` asks a server for the MX records of a name.

Only the standard library is used; every wait has a deadline.
"""
import os
import shutil
import socket
import struct
import subprocess
import time

IO_TIMEOUT = 10.0


def find_dnsmasq():
    path = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.access(path, os.X_OK):
        raise RuntimeError("dnsmasq is not installed (Debian package dnsmasq-base, "
                           "installed by scripts/setup.sh)")
    return path


def free_udp_tcp_port(host="127.0.0.1"):
    """A port free for both UDP and TCP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for both UDP and TCP")


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def query(port, name, qtype=1, host="127.0.0.1", timeout=1.0):
    """One UDP query; (rcode, ancount) of the answer, or None on timeout."""
    qid = int.from_bytes(os.urandom(2), "big")
    pkt = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + \
        struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(pkt, (host, port))
        try:
            data = s.recv(65535)
        except socket.timeout:
            return None
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid:
        return None
    return data[3] & 0x0F, struct.unpack(">H", data[6:8])[0]


def mx_record(domain, exchange, preference):
    """The dnsmasq option of one MX record: exchange "." is a null MX."""
    return f"mx-host={domain},{exchange},{int(preference)}"


def host_record(name, *addresses):
    """The dnsmasq option giving name its A and AAAA records (and the PTRs)."""
    return "host-record=" + ",".join((name,) + addresses)


def _read_name(data, pos):
    """The name at pos (following compression pointers) and the position
    after it; the root is "."."""
    labels, end, hops = [], None, 0
    while True:
        if pos >= len(data) or hops > 64:
            raise ValueError("bad name in a DNS answer")
        n = data[pos]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | data[pos + 1]
            hops += 1
        elif n == 0:
            return (".".join(labels) or "."), (end if end is not None else pos + 1)
        else:
            labels.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n


def query_mx(port, name, host="127.0.0.1", timeout=1.0):
    """The MX records of name as [(preference, exchange)] sorted (exchange
    "." for a null MX); [] for NXDOMAIN or no MX; None on a timeout or an
    error answer."""
    qid = int.from_bytes(os.urandom(2), "big")
    pkt = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + \
        struct.pack(">HH", 15, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(pkt, (host, port))
        try:
            data = s.recv(65535)
        except socket.timeout:
            return None
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid:
        return None
    rcode = data[3] & 0x0F
    if rcode == 3:
        return []
    if rcode != 0:
        return None
    qdcount, ancount = struct.unpack(">HH", data[4:8])
    pos = 12
    for _ in range(qdcount):
        pos = _read_name(data, pos)[1] + 4
    out = []
    for _ in range(ancount):
        pos = _read_name(data, pos)[1]
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 15:
            out.append((struct.unpack(">H", data[pos:pos + 2])[0], _read_name(data, pos + 2)[0]))
        pos += rdlen
    return sorted(out)


class Dnsmasq:
    """dnsmasq serving the given records on 127.0.0.1:port.

    records: dnsmasq options without the leading "--", such as
    "host-record=a.test,192.0.2.1" or 'txt-record=t.test,"v=spf1 -all"'.
    local: domains answered from the records alone (NXDOMAIN otherwise);
    any other name is REFUSED, as no upstream server is configured."""

    def __init__(self, directory, records, local=("test", "in-addr.arpa", "ip6.arpa")):
        self.dir = directory
        self.records = list(records)
        self.local = list(local)
        self.binary = find_dnsmasq()
        self.proc = None
        self.port = None
        self.log_path = os.path.join(directory, "dnsmasq.log")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _argv(self):
        argv = [self.binary, "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
                "--listen-address=127.0.0.1", f"--port={self.port}", "--conf-file=/dev/null",
                "--pid-file=", "--log-facility=-", "--log-queries", "--cache-size=0"]
        argv += [f"--local=/{d}/" for d in self.local]
        argv += ["--" + r for r in self.records]
        return argv

    def start(self):
        for attempt in range(3):
            self.port = free_udp_tcp_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=log, start_new_session=True)
            deadline = time.monotonic() + IO_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                # any answer will do: dnsmasq is up
                if query(self.port, "ready.check.test", timeout=0.2) is not None:
                    return self
            self.stop()
            if "Address already in use" not in self.log() or attempt == 2:
                raise RuntimeError(f"dnsmasq did not start:\n{self.log()}")
        return self

    def __enter__(self):
        """`with Dnsmasq(...) as server:` starts it and stops it at the end."""
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(IO_TIMEOUT)
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


class SilentUDP:
    """A UDP port on 127.0.0.1 that takes queries and never answers them."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def received(self):
        """How many datagrams arrived (and drop them)."""
        self.sock.setblocking(False)
        n = 0
        try:
            while True:
                self.sock.recv(65535)
                n += 1
        except BlockingIOError:
            pass
        return n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()


def key_record(name, path):
    """A dnsmasq txt-record option for name with the key record in the file
    at path, cut into character-strings of at most 255 bytes."""
    with open(path) as f:
        text = f.read().strip()
    return "txt-record=" + name + "," + ",".join(text[i:i + 255] for i in range(0, len(text), 255))


def key_dnsfunc(keys):
    """A python3-dkim dnsfunc answering from files: keys maps each record's
    name (bytes, with the final dot) to the path of its record."""
    def txt(name, timeout=5):
        with open(keys[name], "rb") as f:
            return f.read().strip()
    return txt
