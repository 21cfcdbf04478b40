"""config.md "POSIX-platform Hooks" and runtime.md "Lifecycle" (hook order, state on
stdin, failure semantics of runtime-spec 1.3.0)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rt

HOOK_SH = "/bin/sh"   # host shell: prestart/createRuntime/createContainer/poststart/poststop
RUNC_POSTSTART = ("runc 1.1.5 runs poststart hooks at the end of `create`, before `start` "
                  "(runtime.md Lifecycle step 9: after the user-specified program is started)")
RUNC_STARTCONTAINER = ("`start` returns 0 before init runs the startContainer hooks, so their "
                       "failure is never reported")
RUNC_POSTSTOP = "stops at the first failing poststop hook instead of running the rest"
POSTSTART_FAIL = ("treats a failing poststart hook as a warning (the runtime-spec 1.2 rule); "
                  "1.3.0 makes it an error")


def log_hook(log: str, tag: str, shell: str = HOOK_SH) -> dict[str, Any]:
    return {"path": shell, "args": ["sh", "-c", f"echo {tag} >> {log}"]}


def with_hooks(hooks: dict[str, list[dict[str, Any]]], logdir: Path | None = None):
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = hooks
        if logdir is not None:
            cfg["mounts"].append({"destination": "/hooklog", "type": "bind",
                                  "source": str(logdir), "options": ["rbind", "rw"]})
    return mutate


@pytest.mark.deviation(runc=RUNC_POSTSTART)
def test_hook_order(container: rt.Factory, tmp_path: Path) -> None:
    """runtime.md "Lifecycle" steps 4-12: prestart, createRuntime and createContainer
    hooks MUST be called during create, startContainer before the program runs, poststart
    after start, poststop after delete - in that order."""
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    log = str(logdir / "log")
    hooks = {
        "prestart": [log_hook(log, "prestart")],
        "createRuntime": [log_hook(log, "createRuntime")],
        "createContainer": [log_hook(log, "createContainer")],
        # startContainer: path resolved and run in the container (busybox sh, bind mount)
        "startContainer": [{"path": "/bin/sh",
                            "args": ["sh", "-c", "echo startContainer >> /hooklog/log"]}],
        "poststart": [log_hook(log, "poststart")],
        "poststop": [log_hook(log, "poststop")],
    }
    c = container(["/probe", "exit", "0"], mutate=with_hooks(hooks, logdir))
    c.create()
    lines = lambda: Path(log).read_text().split() if Path(log).exists() else []  # noqa: E731
    assert lines() == ["prestart", "createRuntime", "createContainer"]
    c.start()
    c.wait_status("stopped")
    assert lines()[3:] == ["startContainer", "poststart"]
    assert c.delete().returncode == 0
    assert lines() == ["prestart", "createRuntime", "createContainer", "startContainer",
                       "poststart", "poststop"]


def test_hooks_run_in_listed_order(container: rt.Factory, tmp_path: Path) -> None:
    """config.md "POSIX-platform Hooks": "Hooks MUST be called in the listed order"."""
    log = str(tmp_path / "log")
    hooks = {"prestart": [log_hook(log, str(i)) for i in range(4)]}
    c = container(mutate=with_hooks(hooks))
    c.create()
    assert Path(log).read_text().split() == ["0", "1", "2", "3"]
    c.delete("--force")


def test_hook_state_on_stdin(container: rt.Factory, tmp_path: Path) -> None:
    """config.md "POSIX-platform Hooks": "The state of the container MUST be passed to
    hooks over stdin" - id, pid, bundle, ociVersion and status."""
    out = tmp_path / "state.json"
    hooks = {"poststart": [{"path": HOOK_SH, "args": ["sh", "-c", f"cat > {out}"]}]}
    c = container(mutate=with_hooks(hooks))
    c.create()
    c.start()
    rt.wait_for(lambda: out.exists() and out.read_text().strip(), what="hook output")
    st = json.loads(out.read_text())
    assert st["id"] == c.id
    assert st["pid"] == c.state()["pid"]
    assert Path(st["bundle"]).resolve() == c.bundle.resolve()
    assert "ociVersion" in st and st["status"] in ("created", "running")
    c.delete("--force")


def test_hook_args_and_env(container: rt.Factory, tmp_path: Path) -> None:
    """config.md "POSIX-platform Hooks": args "with the same semantics as IEEE Std
    1003.1-2008 execv's argv" and env "with the same semantics as ... environ"."""
    out = tmp_path / "hook.out"
    hooks = {"prestart": [{"path": HOOK_SH,
                           "args": ["sh", "-c", f'echo "$0 $1 $HOOKVAR" > {out}', "x0", "x1"],
                           "env": ["HOOKVAR=hv", "PATH=/bin:/usr/bin"]}]}
    c = container(mutate=with_hooks(hooks))
    c.create()
    assert out.read_text().strip() == "x0 x1 hv"
    c.delete("--force")


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_create_hook_failure_is_error(container: rt.Factory, kind: str) -> None:
    """runtime.md "Lifecycle" steps 4-6: "If any prestart/createRuntime/createContainer
    hook fails, the runtime MUST generate an error, stop the container, and continue the
    lifecycle at step 12" - create fails and no container remains."""
    c = container(mutate=with_hooks({kind: [{"path": "/bin/false"}]}))
    res = c.create(check=False)
    assert res.returncode != 0
    st = c.state_result()
    assert st.returncode != 0 or json.loads(st.stdout)["status"] == "stopped"


@pytest.mark.deviation(runc=RUNC_STARTCONTAINER, crun=RUNC_STARTCONTAINER)
def test_start_container_hook_failure_is_error(container: rt.Factory) -> None:
    """runtime.md "Lifecycle" step 7: "If any startContainer hook fails, the runtime MUST
    generate an error, stop the container, and continue the lifecycle at step 12" - the
    program does not run."""
    hooks = {"startContainer": [{"path": "/bin/false"}]}
    c = container(["/probe", "echo", "program-ran"], mutate=with_hooks(hooks))
    c.create()
    res = c.start(check=False)
    assert res.returncode != 0
    assert "program-ran" not in c.output()
    c.delete("--force")


@pytest.mark.deviation(runc=RUNC_POSTSTART, crun=POSTSTART_FAIL)
def test_poststart_failure_is_error(container: rt.Factory) -> None:
    """runtime.md "Lifecycle" step 9 (1.3.0): "If any poststart hook fails, the runtime
    MUST generate an error, stop the container, and continue the lifecycle at step 12"."""
    c = container(mutate=with_hooks({"poststart": [{"path": "/bin/false"}]}))
    c.create()
    res = c.start(check=False)
    try:
        assert res.returncode != 0
        st = c.state_result()
        assert st.returncode != 0 or json.loads(st.stdout)["status"] == "stopped"
    finally:
        c.delete("--force")


@pytest.mark.deviation(runc=RUNC_POSTSTOP)
def test_poststop_failure_only_warns(container: rt.Factory) -> None:
    """runtime.md "Lifecycle" step 13: "If any poststop hook fails, the runtime MUST log a
    warning, but the remaining hooks and lifecycle continue as if the hook had
    succeeded" - delete succeeds, later hooks still run."""
    c = container(["/probe", "exit", "0"])
    marker = c.bundle / "second-ran"
    cfg = c.config
    cfg["hooks"] = {"poststop": [{"path": "/bin/false"},
                                 {"path": HOOK_SH, "args": ["sh", "-c", f"touch {marker}"]}]}
    (c.bundle / "config.json").write_text(json.dumps(cfg))
    c.create()
    c.start()
    c.wait_status("stopped")
    assert c.delete().returncode == 0
    assert c.state_result().returncode != 0
    assert marker.exists()


def test_hook_timeout(container: rt.Factory) -> None:
    """config.md "POSIX-platform Hooks / timeout": "the number of seconds before aborting
    the hook"; an aborted prestart hook has failed, so create MUST generate an error."""
    hooks = {"prestart": [{"path": HOOK_SH, "args": ["sh", "-c", "sleep 20"], "timeout": 1}]}
    c = container(mutate=with_hooks(hooks))
    res = c.create(check=False)
    if res.returncode == 0:
        c.delete("--force")
    assert res.returncode != 0
