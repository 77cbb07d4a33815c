"""Make a live process run system calls of our choosing, as code injected
into it by a memory bug would: the stand-in for a compromised session or
delivery worker in test_confinement.py.

x86_64 only, and the tracer needs the right to ptrace the process (root).
The Injector seizes the process (PTRACE_SEIZE, PTRACE_INTERRUPT), saves
its registers, and for each call points rip at a `syscall` instruction of
the process's own libc, loads rax and the argument registers, single-steps
over it and reads rax: the kernel's answer, a negative errno on failure,
exactly as the process's code would see it (its seccomp filter and
Landlock domain apply). Memory a call needs (a sockaddr, an iovec) goes
into a scratch area well below the stack pointer, past the red zone, whose
bytes are put back with the registers when the Injector detaches. The
process then resumes where it was; an idle event loop sees its epoll_wait
end with EINTR and waits again.

Only ctypes and /proc: nothing to install.
"""
import ctypes
import errno
import os
import platform
import struct

PTRACE_ATTACH = 16
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SINGLESTEP = 9
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # __WALL: wait for any thread, clone or not

# x86_64 system call numbers
SYS = {
    "write": 1, "close": 3, "poll": 7, "sendto": 44, "recvfrom": 45, "getpid": 39, "socket": 41,
    "connect": 42, "socketpair": 53, "clone": 56, "fork": 57, "kill": 62, "fcntl": 72,
    "ptrace": 101, "tgkill": 234, "process_vm_readv": 310, "pidfd_open": 434,
    "io_uring_setup": 425, "unshare": 272, "prlimit64": 302, "setpriority": 141,
}

SCRATCH_BELOW_RSP = 4096  # bytes: far past the 128-byte red zone
SCRATCH_SIZE = 1024


def supported():
    """None when injection can run here, else the reason it cannot."""
    if platform.machine() != "x86_64":
        return f"ptrace injection is written for x86_64, not {platform.machine()}"
    if os.geteuid() != 0:
        return "ptrace injection into the daemon's processes needs root"
    return None


class UserRegs(ctypes.Structure):
    """struct user_regs_struct of x86_64 (<sys/user.h>)."""
    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
        "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
        "gs_base", "ds", "es", "fs", "gs")]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


def _ptrace(request, pid, addr=None, data=None):
    if _libc.ptrace(request, pid, addr, data) == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"ptrace({request}, {pid}): {os.strerror(e)}")


def _wait_stop(pid):
    """Wait until pid is in a ptrace stop; its stop signal."""
    _, status = os.waitpid(pid, WALL)
    if not os.WIFSTOPPED(status):
        raise AssertionError(f"process {pid} did not stop but ended (status {status:#x})")
    return os.WSTOPSIG(status)


def find_syscall_instruction(pid):
    """The address of a `syscall` instruction (0f 05) in the executable
    mapping of pid's libc."""
    with open(f"/proc/{pid}/maps") as maps:
        regions = [line.split() for line in maps]
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for fields in regions:
            if len(fields) < 6 or "x" not in fields[1] or "/libc.so" not in fields[5]:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            mem.seek(start)
            code = mem.read(end - start)
            at = code.find(b"\x0f\x05")
            if at >= 0:
                return start + at
    raise AssertionError(f"no syscall instruction in the libc mapping of process {pid}")


class Injector:
    """Run system calls inside process pid; use as a context manager.

        with Injector(pid) as inj:
            fd = inj.syscall("socket", AF_INET, SOCK_STREAM, 0)
            addr = inj.put(sockaddr_bytes)
            rc = inj.syscall("connect", fd, addr, len(sockaddr_bytes))

    syscall() returns the raw result: >= 0 on success, -errno on failure."""

    def __init__(self, pid):
        self.pid = pid
        self.saved = None
        self.scratch_saved = None

    def __enter__(self):
        self.insn = find_syscall_instruction(self.pid)
        _ptrace(PTRACE_SEIZE, self.pid)
        try:
            _ptrace(PTRACE_INTERRUPT, self.pid)
            _wait_stop(self.pid)
            self.saved = self._getregs()
            self.scratch = (self.saved.rsp - SCRATCH_BELOW_RSP - SCRATCH_SIZE) & ~0xF
            self.scratch_saved = self.read(self.scratch, SCRATCH_SIZE)
            self.used = 0
        except BaseException:
            _ptrace(PTRACE_DETACH, self.pid)
            raise
        return self

    def __exit__(self, *exc):
        try:
            if self.scratch_saved is not None:
                self.write(self.scratch, self.scratch_saved)
            if self.saved is not None:
                self._setregs(self.saved)
        finally:
            _ptrace(PTRACE_DETACH, self.pid)

    # -- registers and memory
    def _getregs(self):
        regs = UserRegs()
        _ptrace(PTRACE_GETREGS, self.pid, None, ctypes.byref(regs))
        return regs

    def _setregs(self, regs):
        _ptrace(PTRACE_SETREGS, self.pid, None, ctypes.byref(regs))

    def read(self, addr, n):
        with open(f"/proc/{self.pid}/mem", "rb", buffering=0) as mem:
            mem.seek(addr)
            return mem.read(n)

    def write(self, addr, data):
        with open(f"/proc/{self.pid}/mem", "r+b", buffering=0) as mem:
            mem.seek(addr)
            mem.write(data)

    def put(self, data):
        """Copy data into the scratch area; its address in the process."""
        size = (len(data) + 15) & ~15
        assert self.used + size <= SCRATCH_SIZE, "scratch area full"
        addr = self.scratch + self.used
        self.write(addr, data)
        self.used += size
        return addr

    # -- the call
    def syscall(self, name, *args):
        """Run system call name (a key of SYS, or a number) with up to six
        integer arguments in the process; its raw result."""
        nr = SYS[name] if isinstance(name, str) else name
        assert len(args) <= 6
        regs = UserRegs.from_buffer_copy(bytes(self.saved))
        regs.rip = self.insn
        regs.rax = nr
        # No system call is under way as far as the kernel's restart logic
        # is concerned: it must not rewind rip or rax when the process goes on.
        regs.orig_rax = 2**64 - 1
        for reg, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args):
            setattr(regs, reg, value & (2**64 - 1))
        self._setregs(regs)
        _ptrace(PTRACE_SINGLESTEP, self.pid)
        sig = _wait_stop(self.pid)
        if sig != 5:  # SIGTRAP: the step is done
            raise AssertionError(f"process {self.pid} stopped by signal {sig} during {name}")
        after = self._getregs()
        assert after.rip == self.insn + 2, f"{name}: rip {after.rip:#x}, not past the syscall"
        return struct.unpack("q", struct.pack("Q", after.rax))[0]


def sockaddr_un(path):
    """struct sockaddr_un for path, and its length."""
    raw = path.encode()
    assert len(raw) < 108, "socket path too long"
    data = struct.pack("H", 1) + raw + b"\0"
    return data, len(data)


EPERM = -errno.EPERM
