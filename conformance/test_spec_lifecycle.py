"""Operations and lifecycle: runtime.md (create, start, kill, delete, state)."""

from __future__ import annotations

import os
import time

import pytest
import rt

CREATED_DELETE = ("allows `delete` of a created container (kills it); runtime.md 1.3.0 "
                  "requires an error unless the container is stopped")


def test_create_does_not_run_program(container: rt.Factory) -> None:
    """runtime.md "Operations / create": "this operation MUST NOT run the user-specified
    program"; the state after create is `created`."""
    c = container(["/probe", "echo", "ran"])
    c.create()
    time.sleep(0.5)
    assert c.status() == "created"
    assert "ran" not in c.output()
    c.kill()
    c.wait_status("stopped")
    c.delete()


def test_create_duplicate_id_is_error(container: rt.Factory) -> None:
    """runtime.md "Operations / create": "This operation MUST generate an error if it is
    not provided ... an ID" / the ID "MUST be unique across all containers"."""
    c = container()
    c.create()
    again = c.call("create", "--bundle", str(c.bundle), c.id)
    assert again.returncode != 0
    assert c.status() == "created"
    c.kill()
    c.wait_status("stopped")
    c.delete()


def test_start_runs_program(container: rt.Factory) -> None:
    """runtime.md "Operations / start": "This operation MUST run the user-specified
    program as specified by process"."""
    c = container(["/probe", "echo", "hello-start"])
    c.create()
    c.start()
    c.wait_status("stopped")
    assert "hello-start" in c.output()
    assert c.delete().returncode == 0


def test_start_twice_is_error(container: rt.Factory) -> None:
    """runtime.md "Operations / start": "Attempting to start a container that is not
    created MUST have no effect on the container and MUST generate an error"."""
    c = container()
    c.create()
    c.start()
    assert c.status() == "running"
    assert c.start(check=False).returncode != 0
    assert c.status() == "running"
    c.kill()
    c.wait_status("stopped")
    c.delete()


def test_start_stopped_is_error(container: rt.Factory) -> None:
    """runtime.md "Operations / start": starting a container that is not `created`
    (here `stopped`) MUST generate an error."""
    c = container(["/probe", "exit", "0"])
    c.create()
    c.start()
    c.wait_status("stopped")
    assert c.start(check=False).returncode != 0
    assert c.status() == "stopped"
    c.delete()


def test_start_unknown_id_is_error(root) -> None:
    """runtime.md "Operations / start": "This operation MUST generate an error if it is
    not provided the container ID"; an unknown ID names no container."""
    assert rt.call(root, "start", "no-such-container").returncode != 0


def test_kill_created_sends_signal(container: rt.Factory) -> None:
    """runtime.md "Operations / kill": "This operation MUST send the specified signal to
    the container process" (a created container has one)."""
    c = container()
    c.create()
    pid = c.state()["pid"]
    assert c.kill("KILL").returncode == 0
    rt.wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                open(f"/proc/{pid}/stat").read().split()[2] == "Z", what="process gone")
    c.wait_status("stopped")
    c.delete()


def test_kill_running_term(container: rt.Factory) -> None:
    """runtime.md "Operations / kill": the signal is delivered to the running process
    (probe trap prints which one it got)."""
    c = container(["/probe", "trap", "30"])
    c.create()
    c.start()
    rt.wait_for(lambda: "ready" in c.output(), what="trap ready")
    assert c.kill("TERM").returncode == 0
    c.wait_status("stopped")
    assert "signal 15" in c.output()
    c.delete()


def test_kill_stopped_is_error(container: rt.Factory) -> None:
    """runtime.md "Operations / kill": "Attempting to send a signal to a container that
    is neither created nor running MUST have no effect on the container and MUST
    generate an error"."""
    c = container(["/probe", "exit", "0"])
    c.create()
    c.start()
    c.wait_status("stopped")
    assert c.kill("TERM").returncode != 0
    assert c.status() == "stopped"
    c.delete()


def test_delete_stopped_removes_container(container: rt.Factory) -> None:
    """runtime.md "Operations / delete": "Deleting a container MUST delete the resources
    that were created during the create step"; afterwards `state` of the ID is an error."""
    c = container(["/probe", "exit", "0"])
    c.create()
    c.start()
    c.wait_status("stopped")
    assert c.delete().returncode == 0
    assert c.state_result().returncode != 0


def test_delete_running_is_error(container: rt.Factory) -> None:
    """runtime.md "Operations / delete": "Attempting to delete a container that is not
    stopped MUST have no effect on the container and MUST generate an error"."""
    c = container()
    c.create()
    c.start()
    assert c.delete().returncode != 0
    assert c.status() == "running"
    c.kill()
    c.wait_status("stopped")
    c.delete()


@pytest.mark.deviation(runc=CREATED_DELETE, crun=CREATED_DELETE)
def test_delete_created_is_error(container: rt.Factory) -> None:
    """runtime.md "Operations / delete" (1.3.0): "Attempting to delete a container that
    is not stopped MUST have no effect on the container and MUST generate an error" -
    `created` is not `stopped`."""
    c = container()
    c.create()
    try:
        assert c.delete().returncode != 0
        assert c.status() == "created"
    finally:
        c.delete("--force")


def test_delete_force_running(container: rt.Factory) -> None:
    """runtime.md "Operations / delete" with runc's `--force` (the caller-visible way to
    stop first): the container and its state are gone afterwards."""
    c = container()
    c.create()
    c.start()
    pid = c.state()["pid"]
    assert c.delete("--force").returncode == 0
    assert c.state_result().returncode != 0
    rt.wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="process reaped")


def test_unknown_config_property_ignored(container: rt.Factory) -> None:
    """config.md "Configuration": runtimes "MUST NOT generate an error if they encounter
    an unknown property. Instead they MUST ignore unknown properties"."""
    c = container(["/probe", "echo", "ok"],
                  mutate=lambda cfg: cfg.update({"conformanceUnknown": {"x": 1}}))
    c.create()
    c.start()
    c.wait_status("stopped")
    assert "ok" in c.output()
    c.delete()


def test_missing_root_is_error(container: rt.Factory) -> None:
    """runtime.md "Operations / create": "If the runtime cannot create the container as
    specified in config.json, it MUST generate an error and a new container MUST NOT be
    created" (root.path does not exist)."""
    c = container(**{"root.path": "no-such-rootfs"})
    assert c.create(check=False).returncode != 0
    assert c.state_result().returncode != 0
