"""create/start/delete: every hook kind runs at its moment, with the state on stdin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration

HOST_HOOKS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")


def _host_hook(tmp_path: Path, logdir: Path, name: str) -> dict[str, Any]:
    """A host shell script that saves its stdin and appends its name to the order log."""
    script = tmp_path / f"hook-{name}.sh"
    script.write_text(f'#!/bin/sh\ncat > "{logdir}/{name}.json"\necho {name} >> "{logdir}/order"\n')
    script.chmod(0o755)
    return {"path": str(script), "args": [script.name]}


def _order(logdir: Path) -> list[str]:
    path = logdir / "order"
    return path.read_text().split() if path.exists() else []


def test_hooks_run_in_order_with_state(make_bundle: Any, pyoci_root: Path,
                                       tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    hooks: dict[str, list[dict[str, Any]]] = {n: [_host_hook(tmp_path, logdir, n)]
                                              for n in HOST_HOOKS}
    # startContainer's path resolves in the container: the rootfs' own shell.
    hooks["startContainer"] = [{"path": "/bin/sh", "args": [
        "sh", "-c", "cat > /log/startContainer.json; echo startContainer >> /log/order"]}]

    def cfg(c: dict[str, Any]) -> None:
        c["hooks"] = hooks
        c["mounts"].append({"destination": "/log", "type": "bind", "source": str(logdir),
                            "options": ["bind"]})

    bundle = make_bundle(["/bin/sh", "-c", "echo process >> /log/order; exec /probe sleep inf"],
                         mutate=cfg)
    cid, _ = ch.create(bundle, pyoci_root)
    try:
        pid = helpers.state(cid, pyoci_root)["pid"]
        after_create = _order(logdir)
        assert sorted(after_create[:2]) == ["createRuntime", "prestart"], after_create
        assert after_create[2:] == ["createContainer"], after_create

        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        assert "poststart" in _order(logdir)
        helpers.wait_for(lambda: "process" in _order(logdir), what="the process to run")
        order = _order(logdir)
        assert order.index("startContainer") < order.index("process"), order
        assert "poststop" not in order

        helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root, check=True)
        helpers.wait_for_status(cid, pyoci_root, "stopped")
        assert "poststop" not in _order(logdir)
        helpers.run_pyoci("delete", cid, root=pyoci_root, check=True)
        assert _order(logdir)[-1] == "poststop"
    finally:
        ch.force_delete(cid, pyoci_root)

    assert sorted(_order(logdir)) == sorted([*HOST_HOOKS, "startContainer", "process"])
    for name in [*HOST_HOOKS, "startContainer"]:
        st = json.loads((logdir / f"{name}.json").read_text())
        assert st["id"] == cid, (name, st)
        assert st["bundle"] == str(bundle), (name, st)
        if name != "poststop":
            assert st["pid"] == pid, (name, st)


def _create_with_hook(make_bundle: Any, pyoci_root: Path, kind: str, hook: dict[str, Any],
                      timeout: float = 60) -> tuple[str, subprocess.CompletedProcess[str]]:
    bundle = make_bundle(["/probe", "sleep", "inf"], hooks={kind: [hook]})
    return ch.create(bundle, pyoci_root, None, check=False, timeout=timeout)


def test_hook_timeout_fails_create(make_bundle: Any, pyoci_root: Path) -> None:
    # The hook would run for 10s; the runtime must give up after 1s (a generous bound
    # of 8s on the whole create tells "enforced" from "waited the hook out").
    cid, res = _create_with_hook(make_bundle, pyoci_root, "createRuntime",
                                 {"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1},
                                 timeout=8)
    assert res.returncode == 1, res
    ch.assert_nothing_left(pyoci_root, cid)


def test_failing_create_runtime_hook_cleans_up(make_bundle: Any, pyoci_root: Path) -> None:
    cid, res = _create_with_hook(make_bundle, pyoci_root, "createRuntime",
                                 {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]})
    assert res.returncode == 1, res
    assert res.stderr.strip(), "no error message"
    ch.assert_nothing_left(pyoci_root, cid)


def test_failing_poststop_hook_only_warns(make_bundle: Any, pyoci_root: Path) -> None:
    cid, res = _create_with_hook(make_bundle, pyoci_root, "poststop",
                                 {"path": "/bin/false", "args": ["false"]})
    assert res.returncode == 0, res.stderr
    helpers.run_pyoci("kill", cid, "9", root=pyoci_root, check=True)
    helpers.wait_for_status(cid, pyoci_root, "stopped")
    res = helpers.run_pyoci("delete", cid, root=pyoci_root)
    assert res.returncode == 0, res.stderr
    assert ch.container_dirs(pyoci_root) == []


def test_hook_working_directories(make_bundle: Any, pyoci_root: Path) -> None:
    """Relative paths in a hook land where runc puts them, never in the host's /:
    createContainer in the container's root (it runs in the container's mount
    namespace before pivot_root), startContainer in process.cwd, and the
    runtime-namespace hooks in the bundle."""
    tag = helpers.unique_id()
    kinds = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
             "poststop"]
    hooks = {k: [{"path": "/bin/sh", "args": ["sh", "-c", f"pwd > ./{tag}-{k}"]}]
             for k in kinds}
    bundle = make_bundle(["/probe", "sleep", "inf"], hooks=hooks,
                         **{"root.readonly": False, "process.cwd": "/tmp"})
    rootfs = bundle / "rootfs"
    try:
        with ch.created(bundle, pyoci_root) as cid:
            helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
            helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root, check=True)
            helpers.wait_for_status(cid, pyoci_root, "stopped")
            helpers.run_pyoci("delete", cid, root=pyoci_root, check=True)
        on_host_root = sorted(p.name for p in Path("/").glob(f"{tag}-*"))
        assert on_host_root == [], on_host_root
        assert (rootfs / f"{tag}-createContainer").read_text() == f"{rootfs}\n"
        assert (rootfs / "tmp" / f"{tag}-startContainer").read_text() == "/tmp\n"
        for kind in ("prestart", "createRuntime", "poststart"):
            assert (bundle / f"{tag}-{kind}").read_text() == f"{bundle}\n", kind
    finally:  # runc runs a `delete`'s poststop in the caller's directory
        for stray in [*Path("/").glob(f"{tag}-*"), *Path.cwd().glob(f"{tag}-*")]:
            stray.unlink()
