"""The systemd cgroup driver's pure parts: path rules, property mapping, D-Bus marshalling.

The driver itself runs against a real systemd in the systemd lane
(tests/vm/test_systemd_lane.py, tests/integration/test_systemd_*.py).
"""

from __future__ import annotations

import _socket
import os
from pathlib import Path

import pytest

from pyoci.cgroups import systemd as sd
from pyoci.errors import CgroupError
from pyoci.linux import dbus


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("machine.slice:libpod:abc", ("machine.slice", "libpod-abc.scope")),
        ("system.slice:docker:1", ("system.slice", "docker-1.scope")),
        (":cri-containerd:x", ("system.slice", "cri-containerd-x.scope")),
        ("a-b.slice::x", ("a-b.slice", "x.scope")),
        ("user.slice:p:my.slice", ("user.slice", "my.slice")),
        (None, ("system.slice", "pyoci-cid.scope")),
    ],
)
def test_parse_path(given: str | None, want: tuple[str, str]) -> None:
    assert sd.parse_path(given, "cid") == want


def test_rootless_default_slice_is_the_user_managers() -> None:
    assert sd.parse_path(None, "cid", user=True) == ("user.slice", "pyoci-cid.scope")
    assert sd.parse_path(":libpod:x", "cid", user=True) == ("user.slice", "libpod-x.scope")
    assert sd.parse_path("app.slice:p:x", "cid", user=True) == ("app.slice", "p-x.scope")


def test_outer_uid_maps_through_the_user_namespace(tmp_path: Path) -> None:
    f = tmp_path / "uid_map"
    f.write_text("         0       1001          1\n         1     100000      65536\n")
    assert dbus.outer_uid(0, str(f)) == 1001
    assert dbus.outer_uid(1000, str(f)) == 100999
    f.write_text("         0          0 4294967295\n")
    assert dbus.outer_uid(1001, str(f)) == 1001
    assert dbus.outer_uid(7, str(tmp_path / "missing")) == 7


def test_user_bus_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1001")
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    assert dbus.user_bus_path() == "/run/user/1001/bus"
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/tmp/b,guid=ab;tcp:host=x")
    assert dbus.user_bus_path() == "/tmp/b"
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    with pytest.raises(CgroupError, match="XDG_RUNTIME_DIR"):
        dbus.user_bus_path()


def test_rootless_systemd_needs_cgroup_v2() -> None:
    import pyoci.cgroups as cg

    with pytest.raises(CgroupError, match="rootless --systemd-cgroup needs cgroup v2"):
        cg.manager_for("user.slice:p:x", "x", "hybrid", systemd=True, rootless=True)


@pytest.mark.parametrize("given", ["/abs/path", "a:b", "a:b:c:d", "s.slice:p:"])
def test_bad_paths_name_the_format(given: str) -> None:
    with pytest.raises(CgroupError, match=r"slice:prefix:name|empty unit"):
        sd.parse_path(given, "x")


def test_expand_slice() -> None:
    assert sd.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert sd.expand_slice("machine.slice") == "/machine.slice"
    assert sd.expand_slice("-.slice") == "/"
    assert sd.unit_cgroup("kubepods-besteffort.slice", "x.scope") == (
        "/kubepods.slice/kubepods-besteffort.slice/x.scope")
    for bad in ("a--b.slice", "foo", "a/b.slice"):
        with pytest.raises(CgroupError, match="slice name"):
            sd.expand_slice(bad)


def test_resource_properties_v2() -> None:
    props = {n: v for n, _s, v in sd.resource_props({
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,3"},
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
        "pids": {"limit": 50}, "blockIO": {"weight": 500},
        "unified": {"memory.high": "max"},
    }, v2=True)}
    assert props["CPUWeight"] == 39
    assert props["CPUQuotaPerSecUSec"] == 500000 and props["CPUQuotaPeriodUSec"] == 100000
    assert props["AllowedCPUs"] == bytes([0b1011])
    assert props["MemoryMax"] == 64 << 20 and props["MemoryLow"] == 32 << 20
    assert props["MemorySwapMax"] == 64 << 20
    assert props["TasksMax"] == 50 and props["IOWeight"] == 4950
    assert props["MemoryHigh"] == sd.INFINITY


def test_quota_rounds_up_to_10ms_and_v1_names() -> None:
    props = {n: v for n, _s, v in sd.resource_props(
        {"cpu": {"quota": 12345, "period": 100000, "shares": 512}, "memory": {"limit": -1}},
        v2=False)}
    assert props["CPUQuotaPerSecUSec"] == 130000
    assert props["CPUShares"] == 512 and props["MemoryLimit"] == sd.INFINITY


def test_device_policy() -> None:
    props = dict((n, v) for n, _s, v in sd.device_props(
        [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10,
                                              "minor": 229, "access": "rw"}]))
    assert props["DevicePolicy"] == "strict"
    assert ("/dev/char/10:229", "rw") in props["DeviceAllow"]
    assert ("/dev/char/1:3", "rwm") in props["DeviceAllow"]  # runc's default list
    props = dict((n, v) for n, _s, v in sd.device_props([{"allow": True, "access": "rwm"}]))
    assert props["DevicePolicy"] == "auto" and props["DeviceAllow"] == []


def test_annotation_properties() -> None:
    props = sd.annotation_props({
        "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.TimeoutStopSec": "5",
        "org.systemd.property.SendSIGHUP": "true",
        "other": "x",
    })
    assert ("TimeoutStopUSec", "t", 123456789) in props
    assert ("CollectMode", "s", "inactive-or-failed") in props
    assert ("TimeoutStopUSec", "t", 5_000_000) in props
    assert ("SendSIGHUP", "b", True) in props
    with pytest.raises(CgroupError, match=r"org\.systemd\.property\.PIDs"):
        sd.annotation_props({"org.systemd.property.PIDs": "1"})
    with pytest.raises(CgroupError, match="can't parse"):
        sd.annotation_props({"org.systemd.property.X": "uint64 nope"})


def test_dbus_round_trip() -> None:
    """A message we marshal reads back the same through our own reader."""
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    conn = dbus.Connection.__new__(dbus.Connection)
    conn.sock, conn.serial, conn.pending, conn.rbuf, conn.path = a, 0, [], b"", "pair"
    body = ["x.scope", "replace", [("PIDs", dbus.Variant("au", [1, 2])),
                                   ("Delegate", dbus.Variant("b", True)),
                                   ("AllowedCPUs", dbus.Variant("ay", b"\x03")),
                                   ("MemoryMax", dbus.Variant("t", 2**64 - 1))], []]
    conn.send(dbus.METHOD_CALL, "ssa(sv)a(sa(sv))", body, path="/o", member="M")
    peer = dbus.Connection.__new__(dbus.Connection)
    peer.sock, peer.rbuf, peer.path = b, b"", "pair"
    msg = peer.recv()
    assert msg.member == "M" and msg.fields["path"] == "/o"
    got = msg.body
    assert got[0:2] == ["x.scope", "replace"] and got[3] == []
    assert [(n, v.sig, v.value) for n, v in got[2]] == [
        ("PIDs", "au", [1, 2]), ("Delegate", "b", True), ("AllowedCPUs", "ay", b"\x03"),
        ("MemoryMax", "t", 2**64 - 1)]
    a.close()
    b.close()


def test_no_systemd_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(CgroupError) as exc:
        dbus.Connection(str(tmp_path / "private"))
    assert "cannot connect to systemd" in str(exc.value) and "\n" not in str(exc.value)


def test_begin_is_pipelined_with_auth(tmp_path: Path) -> None:
    """BEGIN goes out with AUTH, before the server's OK (as sd-bus clients send it).

    Sent after the OK, systemd 252 can read it together with the first method
    call and then leave that call unanswered (seen in the systemd lane).
    """
    import socket
    import threading

    path = str(tmp_path / "bus")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    first: list[bytes] = []

    def serve() -> None:
        c, _ = srv.accept()
        first.append(c.recv(4096))
        c.sendall(b"OK 0123456789abcdef\r\n")
        c.recv(4096)
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    with pytest.raises((CgroupError, OSError)):
        dbus.Connection(path, timeout=30)  # not the private socket: Hello, then EOF
    t.join(30)
    srv.close()
    uid = str(os.geteuid()).encode().hex().encode()
    assert first == [b"\0AUTH EXTERNAL " + uid + b"\r\nBEGIN\r\n"]
