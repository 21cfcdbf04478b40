"""pyoci as a Python library (pyoci.Runtime): the README's example, and each call of the API.

Each case runs in a fresh interpreter as a library caller would (``pytest`` has
threads of its own now and then, and a fork needs a single-threaded process),
against real busybox containers; the script prints what it saw as JSON.
Besides the results, every script checks that the library left the calling
process as it found it: dumpable flag, child-subreaper flag, SIGPIPE and
SIGCHLD dispositions, the pid namespace its children are born in, and the
cycle collector.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Read in the caller after each step: what the library must leave as it was.
PROBE = textwrap.dedent("""
    import ctypes, gc, os, signal
    _libc = ctypes.CDLL(None, use_errno=True)
    def caller_state():
        sub = ctypes.c_int(0)
        _libc.prctl(37, ctypes.byref(sub), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
        return {"dumpable": _libc.prctl(3, 0, 0, 0, 0), "subreaper": sub.value,
                "sigpipe": str(signal.getsignal(signal.SIGPIPE)),
                "sigchld": str(signal.getsignal(signal.SIGCHLD)),
                "sigint": str(signal.getsignal(signal.SIGINT)),
                "pidns_children": os.readlink("/proc/self/ns/pid_for_children"),
                "gc": gc.isenabled()}
""")


def run_api(code: str, timeout: float = 60) -> dict[str, Any]:
    """Run ``code`` (which prints one JSON line last) in a fresh interpreter using this tree."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", PROBE + textwrap.dedent(code)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"## Python API\n.*?```python\n(.*?)```", text, re.S)
    assert m, "README.md has no ```python block under '## Python API'"
    return m.group(1)


def test_readme_api_example_runs_as_written(tmp_path: Path) -> None:
    """The README's example, run as written; its output is what its comments say."""
    code = readme_example()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = [c.strip() for c in re.findall(r"print\(.*#\s*(.*)$", code, re.M)]
    assert proc.stdout.splitlines() == expected, proc.stdout


def test_api_lifecycle(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    bundle = make_bundle(["/probe", "sleep", "inf"])
    pid_file = tmp_path / "c.pid"
    out = run_api(f"""
        import json, signal, pyoci
        before = caller_state()
        after = {{}}
        rt = pyoci.Runtime({str(pyoci_root)!r})
        c = rt.create("api1", {str(bundle)!r}, pid_file={str(pid_file)!r})
        after["create"] = caller_state()
        created = c.state()
        c.start()
        after["start"] = caller_state()
        running = c.state()["status"]
        ids = [x.id for x in rt.list()]
        same = rt.get("api1").state()["pid"] == created["pid"]
        c.pause(); paused = c.state()["status"]; c.resume(); resumed = c.state()["status"]
        c.update({{"pids": {{"limit": 77}}}})
        stats = c.stats()
        first = next(iter(c.events(interval=0.1)))
        ps = c.ps()
        c.kill(signal.SIGKILL)
        status = c.wait()
        stopped = c.state()["status"]
        warnings = c.delete()
        after["delete"] = caller_state()
        print(json.dumps(dict(before=before, after=after, created=created, running=running,
            ids=ids, same=same, paused=paused, resumed=resumed, stats=stats, first=first,
            ps=ps, status=status, stopped=stopped, warnings=warnings,
            left=[x.id for x in rt.list()])))
    """)
    assert out["created"]["status"] == "created" and out["created"]["id"] == "api1"
    assert int(pid_file.read_text()) == out["created"]["pid"]
    assert out["running"] == "running" and out["ids"] == ["api1"] and out["same"]
    assert (out["paused"], out["resumed"]) == ("paused", "running")
    assert out["stats"]["pids"]["limit"] == 77
    assert out["first"]["type"] == "stats" and out["first"]["id"] == "api1"
    assert out["ps"] == [out["created"]["pid"]]
    assert out["status"] == 128 + 9 and out["stopped"] == "stopped"
    assert out["warnings"] == [] and out["left"] == []
    for step, seen in out["after"].items():
        assert seen == out["before"], f"{step} changed the caller: {seen} != {out['before']}"


def test_api_run_context_manager_deletes(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "exit", "7"])
    out = run_api(f"""
        import json, pyoci
        rt = pyoci.Runtime({str(pyoci_root)!r})
        with rt.run("api2", {str(bundle)!r}) as c:
            status = c.wait()
        print(json.dumps(dict(status=status, left=[x.id for x in rt.list()])))
    """)
    assert out == {"status": 7, "left": []}


def test_api_exec(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "sleep", "inf"])
    out = run_api(f"""
        import json, subprocess, pyoci
        rt = pyoci.Runtime({str(pyoci_root)!r})
        before = caller_state()
        with rt.run("api3", {str(bundle)!r}) as c:
            p = c.exec(["/bin/sh", "-c", "echo $FOO $(pwd) $(id -u); cat; exit 3"],
                       env=["FOO=bar"], cwd="/tmp", user="1000:1000",
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            p.stdin.write(b"from stdin\\n"); p.stdin.close()
            text = p.stdout.read().decode()
            status = p.wait()
            after_exec = caller_state()
            q = c.exec({{"args": ["/bin/sh", "-c", "exit 5"], "cwd": "/",
                        "user": {{"uid": 0, "gid": 0}}}})
            status2 = q.wait()
            t = c.exec(["/bin/sh", "-c", "tty"], tty=True)
            import os
            tty_out = b""
            while True:
                try:
                    chunk = os.read(t.console, 1024)
                except OSError:
                    break
                if not chunk:
                    break
                tty_out += chunk
            status3 = t.wait()
        print(json.dumps(dict(text=text, status=status, status2=status2, tty=tty_out.decode(),
                              status3=status3, same=after_exec == before)))
    """)
    assert out["text"] == "bar /tmp 1000\nfrom stdin\n"
    assert (out["status"], out["status2"], out["status3"]) == (3, 5, 0)
    assert out["tty"].strip().startswith("/dev/pts/")
    assert out["same"]


def test_api_validation_error_carries_path(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "id"], **{"process.cwd": "relative"})
    out = run_api(f"""
        import json, pyoci
        from pyoci.errors import SpecError
        try:
            pyoci.Runtime({str(pyoci_root)!r}).create("api4", {str(bundle)!r})
        except SpecError as e:
            print(json.dumps(dict(path=e.path, msg=str(e))))
    """)
    assert out["path"] == "process.cwd", out
    assert out["msg"].startswith("config.json: process.cwd: ")


def test_spec_default() -> None:
    out = run_api("""
        import json, pyoci.spec
        cfg = pyoci.spec.default()
        rootless = pyoci.spec.default(rootless=True)
        print(json.dumps(dict(v=cfg["ociVersion"], users=[n["type"] for n in
            rootless["linux"]["namespaces"]])))
    """)
    assert out["v"] == "1.3.0" and "user" in out["users"]
