"""A minimal D-Bus client: just enough of the wire protocol to call systemd.

Why our own and not a library: the systemd cgroup driver makes two or three
method calls per ``create`` (StartTransientUnit, then the job's JobRemoved
signal).  sd-bus through cffi would add a libsystemd dependency and a cffi
import on a path that today avoids cffi until the spawn; jeepney/dbus-fast/
sdbus/pystemd are extra packages and import far more than this module does.
The protocol subset needed (EXTERNAL auth, little-endian marshalling of the
basic and container types, method calls, replies, errors and signals) fits in
one stdlib-only module that imports in well under a millisecond.

As root we talk to systemd's private socket ``/run/systemd/private`` (no
dbus-daemon needed, as systemctl does); otherwise, or when it is absent, the
system bus socket.  Rootless, the user's own systemd is reached on the user
bus (:func:`user_bus_path`).  Only ``_socket`` and ``_struct`` are used, so
the import stays cheap.
"""

from __future__ import annotations

import _socket
import _struct
import os

from pyoci.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PRIVATE_SOCKET = "/run/systemd/private"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
_FIELD_CODES = {"path": 1, "interface": 2, "member": 3, "error_name": 4, "reply_serial": 5,
                "destination": 6, "sender": 7, "signature": 8}
_FIELD_NAMES = {v: k for k, v in _FIELD_CODES.items()}
_FIELD_SIGS = {1: "o", 2: "s", 3: "s", 4: "s", 5: "u", 6: "s", 7: "s", 8: "g"}
_FIXED = {"y": ("B", 1), "b": ("I", 4), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4),
          "u": ("I", 4), "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}
_ALIGN = {"y": 1, "n": 2, "q": 2, "b": 4, "i": 4, "u": 4, "h": 4, "s": 4, "o": 4, "a": 4,
          "g": 1, "v": 1, "x": 8, "t": 8, "d": 8, "(": 8, "{": 8}


class DBusError(CgroupError):
    """An error reply from the peer; ``name`` is the D-Bus error name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name


class Variant:
    """A value with an explicit D-Bus signature (for ``v`` slots)."""

    __slots__ = ("sig", "value")

    def __init__(self, sig: str, value: Any) -> None:
        self.sig = sig
        self.value = value

    def __repr__(self) -> str:
        return f"Variant({self.sig!r}, {self.value!r})"


def split_types(sig: str) -> list[str]:
    """A signature split into its complete types: "sa(sv)" -> ["s", "a(sv)"]."""
    out = []
    i = 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _type_end(sig: str, i: int) -> int:
    c = sig[i]
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        depth = 0
        for j in range(i, len(sig)):
            if sig[j] == c:
                depth += 1
            elif sig[j] == close:
                depth -= 1
                if depth == 0:
                    return j + 1
        raise ValueError(f"unbalanced signature {sig!r}")
    return i + 1


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def write(self, sig: str, value: Any) -> None:
        c = sig[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.pad(size)
            self.buf += _struct.pack("<" + fmt, int(value) if c != "d" else float(value))
        elif c in "so":
            data = value.encode()
            self.pad(4)
            self.buf += _struct.pack("<I", len(data)) + data + b"\0"
        elif c == "g":
            data = value.encode()
            self.buf += bytes([len(data)]) + data + b"\0"
        elif c == "v":
            if not isinstance(value, Variant):
                raise TypeError(f"a D-Bus variant needs a Variant, got {value!r}")
            self.write("g", value.sig)
            self.write(value.sig, value.value)
        elif c == "a":
            elem = sig[1:]
            self.pad(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            if elem[0] == "{":
                items = list(value.items()) if isinstance(value, dict) else list(value)
                for item in items:
                    self.write(elem, item)
            elif elem == "y" and isinstance(value, (bytes, bytearray)):
                self.buf += value
            else:
                for item in value:
                    self.write(elem, item)
            self.buf[at:at + 4] = _struct.pack("<I", len(self.buf) - start)
        elif c in "({":
            self.pad(8)
            for t, v in zip(split_types(sig[1:-1]), value, strict=True):
                self.write(t, v)
        else:
            raise ValueError(f"unsupported D-Bus type {c!r}")


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def align(self, n: int) -> None:
        self.pos += -self.pos % n

    def read(self, sig: str) -> Any:
        c = sig[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.align(size)
            (v,) = _struct.unpack_from("<" + fmt, self.data, self.pos)
            self.pos += size
            return bool(v) if c == "b" else v
        if c in "so":
            self.align(4)
            (n,) = _struct.unpack_from("<I", self.data, self.pos)
            s = self.data[self.pos + 4:self.pos + 4 + n].decode(errors="replace")
            self.pos += 5 + n
            return s
        if c == "g":
            n = self.data[self.pos]
            s = self.data[self.pos + 1:self.pos + 1 + n].decode()
            self.pos += 2 + n
            return s
        if c == "v":
            inner = self.read("g")
            return Variant(inner, self.read(inner))
        if c == "a":
            elem = sig[1:]
            self.align(4)
            (n,) = _struct.unpack_from("<I", self.data, self.pos)
            self.pos += 4
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            if elem == "y":
                out_b = bytes(self.data[self.pos:end])
                self.pos = end
                return out_b
            items = []
            while self.pos < end:
                items.append(self.read(elem))
            return dict(items) if elem[0] == "{" else items
        if c in "({":
            self.align(8)
            return tuple(self.read(t) for t in split_types(sig[1:-1]))
        raise ValueError(f"unsupported D-Bus type {c!r}")


class Message:
    """One received message: its type, header fields and decoded body."""

    def __init__(self, mtype: int, serial: int, fields: dict[str, Any], body: list[Any]) -> None:
        self.type = mtype
        self.serial = serial
        self.fields = fields
        self.body = body

    @property
    def member(self) -> str | None:
        return self.fields.get("member")


def user_bus_path() -> str:
    """The user bus socket: ``DBUS_SESSION_BUS_ADDRESS`` when it is a ``unix:path=``,
    else ``$XDG_RUNTIME_DIR/bus`` (dbus-user-session's, as sd-bus looks for it)."""
    for part in os.environ.get("DBUS_SESSION_BUS_ADDRESS", "").split(";"):
        if part.startswith("unix:"):
            for kv in part[5:].split(","):
                if kv.startswith("path="):
                    return kv[5:]
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime_dir:
        raise CgroupError("systemd: rootless --systemd-cgroup needs the user's D-Bus: "
                          "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set")
    return os.path.join(runtime_dir, "bus")


def outer_uid(uid: int, uid_map: str = "/proc/self/uid_map") -> int:
    """``uid`` as the parent user namespace sees it, which is what the bus checks
    EXTERNAL against (its peer credentials). Root of rootless podman's namespace
    is the user outside it; in the initial namespace the map is the identity."""
    try:
        with open(uid_map) as f:
            for line in f:
                inside, outside, count = (int(x) for x in line.split())
                if inside <= uid < inside + count:
                    return outside + uid - inside
    except (OSError, ValueError):
        pass
    return uid


class Connection:
    """A blocking connection to systemd (its private socket) or the system bus."""

    def __init__(self, path: str | None = None, timeout: float = 60.0) -> None:
        self.serial = 0
        self.pending: list[Message] = []
        self.rbuf = b""
        candidates = [path] if path else (
            [PRIVATE_SOCKET, SYSTEM_BUS_SOCKET] if os.geteuid() == 0 else [SYSTEM_BUS_SOCKET])
        last: OSError | None = None
        for cand in candidates:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            sock.settimeout(timeout)
            try:
                sock.connect(cand)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            self.sock = sock
            self.path = cand
            break
        else:
            reason = (last.strerror or str(last)).lower() if last else "no socket"
            hint = ("is systemd running as init?" if path is None else
                    "is there a systemd user session (dbus-user-session)?")
            raise CgroupError(
                f"systemd: cannot connect to systemd over D-Bus ({' or '.join(candidates)}: "
                f"{reason}): {hint}")
        try:
            self._auth()
            self.is_bus = self.path != PRIVATE_SOCKET
            if self.is_bus:
                self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "Hello")
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _auth(self) -> None:
        """EXTERNAL auth with BEGIN pipelined in the same write, as sd-bus clients do.

        BEGIN must reach the server together with AUTH, before it answers OK: sent
        after the OK, it can arrive in the same read as the first message, which
        systemd's sd-bus (252) then keeps buffered without dispatching it, so the
        call hangs (about one connection in four under load).
        """
        uid = str(outer_uid(os.geteuid())).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\nBEGIN\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise CgroupError(f"systemd: d-bus authentication refused on {self.path}: "
                              f"{line.decode(errors='replace')}")

    def _read(self, n: int) -> bytes:
        try:
            return self.sock.recv(n)
        except TimeoutError:
            raise CgroupError(f"systemd: no answer on {self.path} within "
                              f"{self.sock.gettimeout():.0f}s") from None

    def _line(self) -> bytes:
        while b"\r\n" not in self.rbuf:
            chunk = self._read(4096)
            if not chunk:
                raise CgroupError(f"systemd: {self.path} closed the connection")
            self.rbuf += chunk
        line, self.rbuf = self.rbuf.split(b"\r\n", 1)
        return line

    def _recv_exact(self, n: int) -> bytes:
        while len(self.rbuf) < n:
            chunk = self._read(max(65536, n - len(self.rbuf)))
            if not chunk:
                raise CgroupError(f"systemd: {self.path} closed the connection")
            self.rbuf += chunk
        out, self.rbuf = self.rbuf[:n], self.rbuf[n:]
        return out

    def send(self, mtype: int, sig: str, body: list[Any], **fields: Any) -> int:
        self.serial += 1
        w = _Writer()
        for t, v in zip(split_types(sig), body, strict=True):
            w.write(t, v)
        if sig:
            fields["signature"] = sig
        hdr = _Writer()
        hdr.buf += _struct.pack("<BBBBII", ord("l"), mtype, 0, 1, len(w.buf), self.serial)
        hdr.write("a(yv)", [(_FIELD_CODES[k], Variant(_FIELD_SIGS[_FIELD_CODES[k]], v))
                            for k, v in fields.items()])
        hdr.pad(8)
        self.sock.sendall(bytes(hdr.buf) + bytes(w.buf))
        return self.serial

    def recv(self) -> Message:
        head = self._recv_exact(16)
        if head[0:1] != b"l":
            raise CgroupError(f"systemd: big-endian d-bus message from {self.path}")
        mtype, _flags, _ver, blen, serial, flen = _struct.unpack_from("<BBBIII", head, 1)
        rest = self._recv_exact(flen + (-(16 + flen) % 8) + blen)
        data = head + rest
        r = _Reader(data, 12)
        fields = {_FIELD_NAMES.get(code, str(code)): v.value for code, v in r.read("a(yv)")}
        r.align(8)
        sig = fields.get("signature", "")
        body = [r.read(t) for t in split_types(sig)]
        return Message(mtype, serial, fields, body)

    def call(self, destination: str, path: str, interface: str, member: str,
             sig: str = "", body: list[Any] | None = None) -> list[Any]:
        """Call a method and return its reply body; an error reply raises DBusError."""
        serial = self.send(METHOD_CALL, sig, body or [], path=path, interface=interface,
                           member=member, destination=destination)
        while True:
            msg = self.recv()
            if msg.type in (METHOD_RETURN, ERROR) and msg.fields.get("reply_serial") == serial:
                if msg.type == ERROR:
                    text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
                    raise DBusError(msg.fields.get("error_name", "error"), text)
                return msg.body
            if msg.type == SIGNAL:
                self.pending.append(msg)

    def signal(self, member: str) -> Message:
        """The next signal named ``member`` (those that came during a call first)."""
        while True:
            for i, msg in enumerate(self.pending):
                if msg.member == member:
                    return self.pending.pop(i)
            self.pending.clear()
            msg = self.recv()
            if msg.type == SIGNAL and msg.member == member:
                return msg
