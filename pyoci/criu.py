"""Talking to CRIU over its RPC: ``criu swrk <fd>`` on a SOCK_SEQPACKET socketpair.

This is how runc, crun (through libcriu) and podman (through go-criu) drive
CRIU. The messages are protobuf (CRIU's ``images/rpc.proto``); pyoci uses a
handful of their fields, so it encodes and decodes the protobuf wire format
itself (below) from the field numbers of that file, rather than depend on the
``protobuf`` package or Debian's ``python3-criu`` (whose generated
``rpc_pb2`` is installed for /usr/bin/python3 only). See CONTRIBUTING.md.

One session is one ``criu swrk`` process: a request goes out, and CRIU answers
with zero or more NOTIFY messages (each acknowledged) and then the final
response. File descriptors named in the request (images_dir_fd, work_dir_fd,
status_fd) are read by CRIU through /proc/<our pid>/fd; ``inherit_fd`` ones
must be open in CRIU itself, so they are passed to it at the same numbers.
"""

from __future__ import annotations

import os
import socket
import subprocess

from pyoci.errors import PyociError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# -- the protobuf wire format ------------------------------------------------------

# A schema maps a field name to (number, kind); kind is "int", "uint", "bool",
# "str", or a nested schema (a dict). Repeated fields take or give lists.
EXT_MOUNT = {"key": (1, "str"), "val": (2, "str")}
INHERIT_FD = {"key": (1, "str"), "fd": (2, "int")}
CGROUP_ROOT = {"ctrl": (1, "str"), "path": (2, "str")}
JOIN_NS = {"ns": (1, "str"), "ns_file": (2, "str"), "extra_opt": (3, "str")}
OPTS: dict[str, Any] = {
    "images_dir_fd": (1, "int"), "pid": (2, "int"), "leave_running": (3, "bool"),
    "ext_unix_sk": (4, "bool"), "tcp_established": (5, "bool"), "shell_job": (7, "bool"),
    "file_locks": (8, "bool"), "log_level": (9, "int"), "log_file": (10, "str"),
    "notify_scripts": (12, "bool"), "root": (13, "str"), "parent_img": (14, "str"),
    "track_mem": (15, "bool"), "auto_dedup": (16, "bool"), "work_dir_fd": (17, "int"),
    "link_remap": (18, "bool"), "ext_mnt": (23, EXT_MOUNT), "manage_cgroups": (24, "bool"),
    "cg_root": (25, CGROUP_ROOT), "rst_sibling": (26, "bool"), "inherit_fd": (27, INHERIT_FD),
    "ext_sharing": (29, "bool"), "ext_masters": (30, "bool"), "skip_mnt": (31, "str"),
    "manage_cgroups_mode": (34, "uint"), "external": (37, "str"), "empty_ns": (38, "uint"),
    "join_ns": (39, JOIN_NS), "freeze_cgroup": (44, "str"), "status_fd": (49, "int"),
    "orphan_pts_master": (50, "bool"), "lsm_profile": (53, "str"),
}
REQ: dict[str, Any] = {"type": (1, "uint"), "opts": (2, OPTS), "notify_success": (3, "bool"),
                       "keep_open": (4, "bool"), "pid": (6, "uint")}
VERSION = {"major_number": (1, "int"), "minor_number": (2, "int"), "gitid": (3, "str"),
           "sublevel": (4, "int"), "extra": (5, "int"), "name": (6, "str")}
RESP: dict[str, Any] = {
    "type": (1, "uint"), "success": (2, "bool"), "dump": (3, {"restored": (1, "bool")}),
    "restore": (4, {"pid": (1, "int")}), "notify": (5, {"script": (1, "str"), "pid": (2, "int")}),
    "cr_errno": (7, "int"), "cr_errmsg": (9, "str"), "version": (10, VERSION),
    "status": (11, "int"),
}

# criu_req_type
DUMP, RESTORE, CHECK, PRE_DUMP, NOTIFY, FEATURE_CHECK, VERSION_REQ = 1, 2, 3, 4, 6, 9, 10
# criu_cg_mode, by runc's flag names
CG_MODES = {"ignore": 0, "none": 1, "props": 2, "soft": 3, "full": 4, "strict": 5}


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32s go out as 10-byte two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(schema: dict[str, Any], msg: dict[str, Any]) -> bytes:
    out = bytearray()
    for name, value in msg.items():
        if value is None:
            continue
        num, kind = schema[name]
        for v in value if isinstance(value, list) else [value]:
            if isinstance(kind, dict) or kind == "str":
                data = encode(kind, v) if isinstance(kind, dict) else v.encode()
                out += _varint(num << 3 | 2) + _varint(len(data)) + data
            else:
                out += _varint(num << 3) + _varint(int(v))
    return bytes(out)


def decode(schema: dict[str, Any], data: bytes) -> dict[str, Any]:
    by_num = {num: (name, kind) for name, (num, kind) in schema.items()}
    out: dict[str, Any] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            raw: Any = varint()
        elif wire == 2:
            size = varint()
            raw = data[i:i + size]
            i += size
        elif wire == 1:
            raw, i = data[i:i + 8], i + 8
        elif wire == 5:
            raw, i = data[i:i + 4], i + 4
        else:
            raise PyociError(f"criu: undecodable rpc message (wire type {wire})")
        if num not in by_num:
            continue  # a field this code does not use
        name, kind = by_num[num]
        if isinstance(kind, dict):
            out[name] = decode(kind, raw)
        elif kind == "str":
            out[name] = raw.decode(errors="replace")
        elif kind == "bool":
            out[name] = bool(raw)
        elif kind == "int":
            out[name] = raw - (1 << 64) if raw >= 1 << 63 else raw
        else:
            out[name] = raw
    return out


# -- a swrk session ---------------------------------------------------------------------


class CriuError(PyociError):
    """CRIU refused or failed; the message is CRIU's own reason."""


def criu_binary() -> str:
    import shutil

    path = os.environ.get("PYOCI_CRIU") or shutil.which("criu") or (
        "/usr/sbin/criu" if os.path.exists("/usr/sbin/criu") else "")
    if not path:
        raise CriuError("criu: executable file not found in $PATH (apt-get install criu)")
    return path


def first_error(text: str) -> str:
    """The line of CRIU's log that says why: its first ``Error (...)`` line, shortened."""
    for line in text.splitlines():
        if "Error (" in line:
            reason = line.split("Error (", 1)[1]
            # "criu/vdso.c:613): vdso: Failed ..." -> "vdso: Failed ..."
            return reason.split("): ", 1)[-1].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class Session:
    """One ``criu swrk`` child. ``on_start(pid)`` runs before the request is sent
    (restore puts CRIU into the container's cgroup there)."""

    def __init__(self, pass_fds: tuple[int, ...] = (),
                 on_start: Callable[[int], None] | None = None) -> None:
        import tempfile

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        # CRIU logs to stderr until it has read the request (kerndat failures
        # land there); a file rather than a pipe, so it can never fill and block.
        self.errlog = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [criu_binary(), "swrk", str(theirs.fileno())],
                pass_fds=(theirs.fileno(), *pass_fds), stdin=subprocess.DEVNULL,
                stdout=self.errlog, stderr=self.errlog, close_fds=True)
        finally:
            theirs.close()
        if on_start is not None:
            try:
                on_start(self.proc.pid)
            except BaseException:
                self.close()
                raise

    def stderr(self) -> str:
        self.errlog.seek(0)
        return self.errlog.read().decode(errors="replace")

    def _recv(self) -> tuple[dict[str, Any], list[int]]:
        fds: list[int] = []
        data, anc, _flags, _addr = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(16 * 4))
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds += list(memoryview(payload)[:usable].cast("i"))
        if not data:
            self.proc.wait()
            reason = first_error(self.stderr()) or f"criu exited with status {self.proc.returncode}"
            raise CriuError(f"criu failed: {reason}")
        return decode(RESP, data), fds

    def call(self, req: dict[str, Any],
             notify: Callable[[str, dict[str, Any], list[int]], None] | None = None,
             ) -> dict[str, Any]:
        """Send ``req``; answer CRIU's notifications; return the final response."""
        self.sock.send(encode(REQ, req))
        while True:
            resp, fds = self._recv()
            if resp.get("type") != NOTIFY:
                return resp
            note = resp.get("notify") or {}
            try:
                if notify is not None:
                    notify(note.get("script", ""), note, fds)
            except BaseException:
                self.sock.send(encode(REQ, {"type": NOTIFY, "notify_success": False}))
                raise
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self.sock.send(encode(REQ, {"type": NOTIFY, "notify_success": True}))

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errlog.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def failure(resp: dict[str, Any], log_path: str | None, what: str) -> CriuError:
    """A one-line error for an unsuccessful response: CRIU's message, else its log's reason."""
    reason = resp.get("cr_errmsg") or ""
    if log_path:
        try:
            with open(log_path, errors="replace") as f:
                reason = first_error(f.read()) or reason
        except OSError:
            pass
    if not reason and resp.get("cr_errno"):
        reason = os.strerror(resp["cr_errno"])
    where = f" (log: {log_path})" if log_path else ""
    return CriuError(f"criu failed: type {what}: {reason or 'no reason given'}{where}")


def version() -> tuple[int, int, int]:
    with Session() as s:
        resp = s.call({"type": VERSION_REQ})
    v = resp.get("version") or {}
    return (v.get("major_number", 0), v.get("minor_number", 0), v.get("sublevel", 0))


def check() -> str | None:
    """None when ``criu check`` passes on this host, else CRIU's reason in one line."""
    try:
        res = subprocess.run([criu_binary(), "check"], capture_output=True, text=True,
                             timeout=60)
    except (CriuError, OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if res.returncode == 0:
        return None
    return first_error(res.stderr + res.stdout) or f"criu check exited {res.returncode}"
