"""Drive an OCI runtime through runc's command line (the only CLI every runtime shares).

Output goes through files, never pipes: after ``create`` the container keeps
the runtime's stdout/stderr, so reading a pipe to EOF would block until the
container exits.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

RUNTIME = "pyoci"
NAME = "pyoci"
OCI_VERSION = "1.0.2"

Factory = Callable[..., "Container"]


def configure(runtime: str, name: str) -> None:
    """Remember the runtime under test and the newest spec version it claims (``features``)."""
    global RUNTIME, NAME, OCI_VERSION
    RUNTIME, NAME = runtime, name
    try:
        res = subprocess.run([runtime, "features"], capture_output=True, text=True, timeout=30)
        OCI_VERSION = json.loads(res.stdout)["ociVersionMax"]
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        OCI_VERSION = "1.0.2"   # runtimes without `features` predate it


def unique_id() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def call(root: Path, *args: str, timeout: float = 60, input: str | None = None,
         stdout: Path | None = None) -> subprocess.CompletedProcess:
    """``RUNTIME --root ROOT ARGS``; never raises on a non-zero status."""
    cmd = [RUNTIME, "--root", str(root), *args]
    with tempfile.TemporaryFile() as err, \
            (open(stdout, "ab+") if stdout else tempfile.TemporaryFile()) as out:
        start = out.seek(0, os.SEEK_END)
        stdin: Any = subprocess.DEVNULL
        if input is not None:
            stdin = tempfile.TemporaryFile()
            stdin.write(input.encode())
            stdin.seek(0)
        try:
            proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
        finally:
            if input is not None:
                stdin.close()
        out.seek(start)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, rc, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def list_ids(root: Path) -> list[str]:
    """Container ids with state under ``root`` (each runtime keeps one directory per id)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def default_config() -> dict[str, Any]:
    from pyoci.spec.default import default_config as runc_default

    cfg = runc_default()
    cfg["ociVersion"] = OCI_VERSION
    cfg["process"]["terminal"] = False
    return cfg


def deep_update(target: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge dotted-key ``updates`` into ``target``; dicts merge, the rest replaces."""
    for key, value in updates.items():
        node = target
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            deep_update(node[leaf], value)
        else:
            node[leaf] = copy.deepcopy(value)
    return target


def config(args: list[str], overrides: Mapping[str, Any] | None = None,
           mutate: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    cfg = default_config()
    cfg["process"]["args"] = list(args)
    deep_update(cfg, overrides or {})
    if mutate is not None:
        replaced = mutate(cfg)
        if replaced is not None:
            cfg = replaced
    return cfg


def wait_for(predicate: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Container:
    """One container id in one bundle, driven verb by verb."""

    def __init__(self, root: Path, bundle: Path, tmp: Path) -> None:
        self.root, self.bundle = root, bundle
        self.id = unique_id()
        self.out = tmp / f"{self.id}.out"
        self.out.touch()

    @property
    def config(self) -> dict[str, Any]:
        return json.loads((self.bundle / "config.json").read_text())

    def call(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        return call(self.root, *args, **kw)

    def create(self, check: bool = True) -> subprocess.CompletedProcess:
        res = call(self.root, "create", "--bundle", str(self.bundle), self.id,
                   stdout=self.out)
        if check:
            assert res.returncode == 0, f"create failed: {res.stderr}"
        return res

    def start(self, check: bool = True) -> subprocess.CompletedProcess:
        res = call(self.root, "start", self.id)
        if check:
            assert res.returncode == 0, f"start failed: {res.stderr}"
        return res

    def state_result(self) -> subprocess.CompletedProcess:
        return call(self.root, "state", self.id)

    def state(self) -> dict[str, Any]:
        res = self.state_result()
        assert res.returncode == 0, f"state failed: {res.stderr}"
        return json.loads(res.stdout)

    def status(self) -> str:
        return str(self.state()["status"])

    def kill(self, sig: str = "KILL") -> subprocess.CompletedProcess:
        return call(self.root, "kill", self.id, sig)

    def delete(self, *flags: str) -> subprocess.CompletedProcess:
        return call(self.root, "delete", *flags, self.id)

    def wait_status(self, status: str, timeout: float = 10) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.state()
            return st if st["status"] == status else None
        return wait_for(check, timeout, what=f"{self.id} to be {status}")

    def output(self) -> str:
        return self.out.read_text()
