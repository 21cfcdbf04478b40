"""runc's command line as callers use it (CALLERS.md items 5-9)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import helpers
import jsonschema
import pytest

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
VERBS = ["create", "start", "state", "kill", "delete", "run", "list", "spec", "features",
         "ps", "pause", "resume"]


def pyoci(*args: str, root: Path, **kw):
    return helpers.run_pyoci(*args, root=root, **kw)


def test_version_lines(pyoci_root: Path) -> None:
    for flag in ("--version", "-v"):
        res = pyoci(flag, root=pyoci_root, check=True)
        lines = res.stdout.splitlines()
        assert lines[0].startswith("pyoci version ")
        assert lines[1].startswith("commit: ")
        assert lines[2] == "spec: 1.3.0"


@pytest.mark.parametrize("verb", VERBS)
def test_help_for_every_verb(verb: str, pyoci_root: Path) -> None:
    res = pyoci(verb, "--help", root=pyoci_root)
    assert res.returncode == 0, res.stderr
    assert f"pyoci {verb}" in res.stdout


def test_unknown_command_and_flag(pyoci_root: Path) -> None:
    res = pyoci("frobnicate", root=pyoci_root)
    assert res.returncode == 1 and res.stderr.strip() == "no such command: frobnicate"
    res = pyoci("state", "--bogus", "x", root=pyoci_root)
    assert res.returncode == 1 and "flag provided but not defined: -bogus" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "a b", "x;y"])
def test_invalid_ids(bad: str, pyoci_root: Path) -> None:
    res = pyoci("state", bad, root=pyoci_root)
    assert res.returncode == 1
    assert res.stderr.strip() == f"invalid id format: {bad}"


def test_missing_container(pyoci_root: Path) -> None:
    for verb in (["state"], ["start"], ["kill"], ["delete"], ["pause"], ["ps"]):
        res = pyoci(*verb, "nope", root=pyoci_root)
        assert (res.returncode, res.stderr.strip()) == (1, "container does not exist"), verb
    # delete --force of a missing container succeeds, as with runc
    assert pyoci("delete", "--force", "nope", root=pyoci_root).returncode == 0


def test_flag_forms_and_minimal_environment(make_bundle, pyoci_root: Path,
                                            tmp_path: Path) -> None:
    """--flag value, --flag=value, Go's -flag, short aliases, and podman's bare env."""
    bundle = make_bundle(["/probe", "sleep", "30"])
    cid = helpers.unique_id()
    pidfile = tmp_path / "pid"
    pyoci("create", f"--bundle={bundle}", "-pid-file", str(pidfile), cid, root=pyoci_root,
          check=True)
    assert pidfile.read_text().isdigit()  # decimal, no newline
    bare = {"XDG_RUNTIME_DIR": "/run/user/0"}  # podman runs state/kill/delete like this
    res = pyoci("state", cid, root=pyoci_root, env=bare, check=True)
    state = json.loads(res.stdout)
    assert state["status"] == "created" and state["pid"] == int(pidfile.read_text())
    pyoci("start", cid, root=pyoci_root, env=bare, check=True)
    pyoci("kill", cid, "SIGKILL", root=pyoci_root, env=bare, check=True)
    helpers.wait_for_status(cid, pyoci_root, "stopped")
    pyoci("delete", "-f", cid, root=pyoci_root, env=bare, check=True)


def test_state_json_shape(make_bundle, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "sleep", "30"], annotations={"a": "b"})
    cid = helpers.unique_id()
    pyoci("create", "-b", str(bundle), cid, root=pyoci_root, check=True)
    try:
        state = json.loads(pyoci("state", cid, root=pyoci_root, check=True).stdout)
        assert set(state) >= {"ociVersion", "id", "pid", "status", "bundle", "rootfs",
                              "created", "annotations", "owner"}
        assert state["annotations"] == {"a": "b"} and state["bundle"] == str(bundle)
        assert state["created"].endswith("Z") and state["pid"] > 0
        schema = json.loads((SCHEMAS / "state-schema.json").read_text())
        jsonschema.validate(state, schema)
    finally:
        pyoci("delete", "--force", cid, root=pyoci_root, check=True)
    res = pyoci("state", cid, root=pyoci_root)
    assert res.returncode == 1 and res.stderr.strip() == "container does not exist"


def test_list_formats(make_bundle, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "sleep", "30"])
    cid = helpers.unique_id()
    pyoci("create", "--bundle", str(bundle), cid, root=pyoci_root, check=True)
    try:
        table = pyoci("list", root=pyoci_root, check=True).stdout.splitlines()
        assert table[0].split()[:3] == ["ID", "PID", "STATUS"]
        assert table[1].split()[0] == cid and table[1].split()[2] == "created"
        assert pyoci("list", "-q", root=pyoci_root, check=True).stdout == f"{cid}\n"
        rows = json.loads(pyoci("list", "--format", "json", root=pyoci_root, check=True).stdout)
        assert [r["id"] for r in rows] == [cid]
    finally:
        pyoci("delete", "--force", cid, root=pyoci_root, check=True)


def test_json_log_holds_one_error_object(pyoci_root: Path, tmp_path: Path) -> None:
    """Podman reads the whole log as one JSON object; containerd takes the last error."""
    log = tmp_path / "log.json"
    res = pyoci("--log", str(log), "--log-format", "json", "start", "nope", root=pyoci_root)
    assert res.returncode == 1
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and entry["msg"] == "container does not exist"
    assert entry["time"].endswith("Z")
    text_log = tmp_path / "log.txt"
    pyoci("--log", str(text_log), "kill", "nope", root=pyoci_root)
    assert 'level=error msg="container does not exist"' in text_log.read_text()


def test_spec_writes_a_valid_default(tmp_path: Path, pyoci_root: Path) -> None:
    from pyoci.spec.validate import validate

    for rootless in (False, True):
        d = tmp_path / f"b{int(rootless)}"
        d.mkdir()
        args = ["spec", "--bundle", str(d)] + (["--rootless"] if rootless else [])
        pyoci(*args, root=pyoci_root, check=True)
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["ociVersion"] == "1.3.0"
        validate(cfg)
        assert any(n["type"] == "user" for n in cfg["linux"]["namespaces"]) == rootless
        res = pyoci(*args, root=pyoci_root)
        assert res.returncode == 1 and "exists" in res.stderr


def test_features_validate_against_schema(pyoci_root: Path) -> None:
    doc = json.loads(pyoci("features", root=pyoci_root, check=True).stdout)
    schema = json.loads((SCHEMAS / "features-schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["ociVersionMax"] == "1.3.0"
    linux = doc["linux"]
    assert "time" in linux["namespaces"] and "CAP_CHOWN" in linux["capabilities"]
    assert linux["cgroup"]["systemd"] is True
    assert linux["mountExtensions"]["idmap"]["enabled"] is True  # mount_setattr exists here
    assert linux["apparmor"]["enabled"] is False and linux["selinux"]["enabled"] is False
    assert "SCMP_ACT_NOTIFY" in linux["seccomp"]["actions"]


def test_systemd_cgroup_flag_is_accepted(pyoci_root: Path) -> None:
    res = pyoci("--systemd-cgroup", "state", "x", root=pyoci_root)
    assert res.returncode == 1 and "does not exist" in res.stderr


def test_python_dash_m(pyoci_root: Path) -> None:
    res = subprocess.run(["python3", "-m", "pyoci", "--version"], capture_output=True,
                         text=True, env={**os.environ}, check=True)
    assert res.stdout.startswith("pyoci version")


def test_log_file_is_created_even_when_nothing_is_logged(pyoci_root: Path,
                                                         tmp_path: Path) -> None:
    """runc opens --log at start-up; callers (containerd) read it after every command."""
    for fmt in ("text", "json"):
        log = tmp_path / f"quiet.{fmt}"
        res = pyoci("--log", str(log), "--log-format", fmt, "list", root=pyoci_root)
        assert res.returncode == 0, res.stderr
        assert log.exists() and log.read_text() == ""


# The steps an operator needs when a container won't start: some logged by the runtime,
# some by the container's init before its exec.
DEBUG_STEPS = ("config loaded", "namespaces", "cgroup", "mount /proc", "pivot root",
               "exec /probe")


def _debug_lifecycle(make_bundle, pyoci_root: Path, log: Path, fmt: str) -> None:
    bundle = make_bundle(["/probe", "sleep", "60"])
    cid = helpers.unique_id()
    flags = ("--debug", "--log", str(log), "--log-format", fmt)
    try:
        pyoci(*flags, "create", "--bundle", str(bundle), cid, root=pyoci_root, check=True)
        pyoci(*flags, "start", cid, root=pyoci_root, check=True)
        pyoci(*flags, "exec", cid, "/probe", "id", root=pyoci_root, check=True)
    finally:
        pyoci("delete", "--force", cid, root=pyoci_root)


def test_debug_json_log_records_each_step(make_bundle, pyoci_root: Path,
                                          tmp_path: Path) -> None:
    log = tmp_path / "debug.json"
    _debug_lifecycle(make_bundle, pyoci_root, log, "json")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries and all(set(e) == {"level", "msg", "time"} for e in entries), entries
    assert all(e["time"].endswith("Z") for e in entries)
    msgs = [e["msg"] for e in entries if e["level"] == "debug"]
    for step in DEBUG_STEPS:
        assert any(step in m for m in msgs), (step, msgs)
    assert any("start" in m for m in msgs) and any("exec" in m and "id" in m for m in msgs)


def test_debug_text_log_records_each_step(make_bundle, pyoci_root: Path,
                                          tmp_path: Path) -> None:
    log = tmp_path / "debug.txt"
    _debug_lifecycle(make_bundle, pyoci_root, log, "text")
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith('time="') and " level=" in line and ' msg="' in line
                         for line in lines), lines
    for step in DEBUG_STEPS:
        assert any("level=debug" in line and step in line for line in lines), (step, lines)


def test_debug_without_log_goes_to_stderr(make_bundle, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "id"])
    res = pyoci("--debug", "run", "--bundle", str(bundle), helpers.unique_id(),
                root=pyoci_root)
    assert res.returncode == 0, res.stderr
    for step in DEBUG_STEPS[:-1]:
        assert step in res.stderr, (step, res.stderr)
    assert res.stdout.startswith("uid=0"), res.stdout
