"""The container-level half of an ``exec`` plan, worked out once per container.

Everything ``exec`` takes from the container's config (the base process, the
namespaces, the capability masks, the compiled seccomp filter) is fixed when
the container is created: config.json is stored validated, and ``update``
only ever rewrites its resources. Rebuilding it on every ``exec`` meant
parsing the whole config and, with a seccomp profile, importing the compiler
(``logging``, ``tempfile``: tens of milliseconds) just to find the cached BPF.
So the first ``exec`` builds the plan the same way ``create`` does and keeps
what ``exec`` needs in ``exec.marshal`` beside config.json; later ones read
that small file instead and import neither the validator nor the compiler.
The record is private to pyoci, so it is in ``marshal`` format (as the state
file is): loaded by the interpreter itself, with the BPF kept as bytes.

The record is keyed on config.json's identity (device, inode, size, mtime)
and on pyoci's version, so a rewritten config or an upgraded pyoci rebuilds
it. It lives in the container's root-owned state directory, with the same
trust as the state file, and goes away with the container.
"""

from __future__ import annotations

import marshal
import posix

from pyoci import __version__
from pyoci.spec.plan import Plan

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

EXEC_FILE = "exec.marshal"
FORMAT = 1


class StoredFilter:
    """The fields of :class:`pyoci.linux.seccomp.Filter` the exec step reads.

    A stand-in, so a stored filter needs no import of the seccomp compiler.
    """

    __slots__ = ("bpf", "flags", "instructions", "listener_metadata", "listener_path")

    def __init__(self, bpf: bytes, flags: int, instructions: int,
                 listener_path: str | None, listener_metadata: str) -> None:
        self.bpf = bpf
        self.flags = flags
        self.instructions = instructions
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata


class ExecBase:
    """What every ``exec`` into one container shares; :meth:`plan` adds the process."""

    def __init__(self, cid: str, record: dict[str, Any]) -> None:
        self.cid = cid
        self.record = record
        self.process: dict[str, Any] = record["process"]

    def plan(self, process: dict[str, Any], *, preserve_fds: int = 0,
             console_socket: str | None = None) -> Plan:
        """The plan for one ``exec`` of ``process`` (the base one, or changed by flags)."""
        r = self.record
        if process.get("capabilities") == self.process.get("capabilities") and (
                ("capabilities" in process) == ("capabilities" in self.process)):
            caps, warnings = r["caps"], list(r["warnings"])
        elif "capabilities" in process:
            from pyoci._native import lib
            from pyoci.linux import capabilities

            caps, warnings = capabilities.masks(process["capabilities"] or {},
                                                lib.pyoci_cap_last())
        else:
            caps, warnings = None, []
        sec = r["seccomp"]
        seccomp = None if sec is None else StoredFilter(
            sec["bpf"], sec["flags"], sec["instructions"],
            sec["listener_path"], sec["listener_metadata"])
        return Plan(
            cid=self.cid, bundle=r["bundle"], rootfs=r["rootfs"],
            config={"linux": {"namespaces": r["namespaces"]}}, new_ns=r["new_ns"],
            new_userns=r["new_userns"], join=[(t, p) for t, p in r["join"]],
            needs_fork=r["needs_fork"], process=process, caps=caps, seccomp=seccomp,
            preserve_fds=preserve_fds, console_socket=console_socket, warnings=warnings,
        )


def load(state_dir: str, cid: str, bundle: str, seccomp_cache: str) -> ExecBase:
    """The container's :class:`ExecBase`, from ``exec.marshal`` or built afresh and stored."""
    config_path = f"{state_dir}/config.json"
    fd = posix.open(config_path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        st = posix.fstat(fd)
        key = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        record = _read(f"{state_dir}/{EXEC_FILE}", key)
        if record is None:
            # Read through the fd we took the key from: the record can never pair a
            # newer config with an older key.
            from pyoci import jsonio
            from pyoci.state.store import read_fd

            record = _build(cid, bundle, jsonio.loads(read_fd(fd)), seccomp_cache)
            record["key"] = key
            _write(state_dir, record)
    finally:
        posix.close(fd)
    return ExecBase(cid, record)


def _read(path: str, key: list[int]) -> dict[str, Any] | None:
    from pyoci.state.store import read_file

    try:
        raw = read_file(path)
    except FileNotFoundError:
        return None
    try:
        record = marshal.loads(raw)
    except (ValueError, EOFError, TypeError):  # a foreign or damaged file: rebuild it
        return None
    if (not isinstance(record, dict) or record.get("format") != FORMAT
            or record.get("version") != __version__ or record.get("key") != key):
        return None
    return record


def _build(cid: str, bundle: str, config: dict[str, Any], seccomp_cache: str) -> dict[str, Any]:
    """Build the plan exactly as ``create`` does and keep the parts ``exec`` reads."""
    from pyoci.spec import plan as planmod

    plan = planmod.build(cid, bundle, config, cache_dir=seccomp_cache)
    sec = plan.seccomp
    return {
        "format": FORMAT,
        "version": __version__,
        "bundle": bundle,
        "rootfs": plan.rootfs,
        "namespaces": plan.linux.get("namespaces") or [],
        "new_ns": plan.new_ns,
        "new_userns": plan.new_userns,
        "join": [list(j) for j in plan.join],
        "needs_fork": plan.needs_fork,
        "process": plan.process,
        "caps": plan.caps,
        "warnings": plan.warnings,
        "seccomp": None if sec is None else {
            "bpf": bytes(sec.bpf), "flags": sec.flags, "instructions": sec.instructions,
            "listener_path": sec.listener_path, "listener_metadata": sec.listener_metadata,
        },
    }


def _write(state_dir: str, record: dict[str, Any]) -> None:
    """Store the record atomically; failing only costs the next exec a rebuild."""
    from pyoci.state.store import write_atomic

    try:
        write_atomic(f"{state_dir}/{EXEC_FILE}", marshal.dumps(record), durable=False)
    except OSError:
        pass
