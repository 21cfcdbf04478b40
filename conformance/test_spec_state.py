"""State: state.md (fields and status values) and runtime.md "Operations / state"."""

from __future__ import annotations

import os
from pathlib import Path

import rt


def test_state_required_fields(container: rt.Factory) -> None:
    """state.md "State": ociVersion, id, status, bundle are REQUIRED; pid is "REQUIRED
    when status is created or running on Linux"."""
    c = container()
    c.create()
    st = c.state()
    for key in ("ociVersion", "id", "status", "pid", "bundle"):
        assert key in st, key
    assert isinstance(st["ociVersion"], str) and st["ociVersion"]
    assert st["id"] == c.id
    assert isinstance(st["pid"], int) and st["pid"] > 0
    c.kill()
    c.wait_status("stopped")
    c.delete()


def test_state_bundle_absolute(container: rt.Factory) -> None:
    """state.md "State / bundle": "the absolute path to the container's bundle directory"
    (MUST be absolute)."""
    c = container()
    c.create()
    bundle = c.state()["bundle"]
    assert os.path.isabs(bundle)
    assert Path(bundle).resolve() == c.bundle.resolve()
    c.kill()
    c.wait_status("stopped")
    c.delete()


def test_state_pid_is_host_pid_of_process(container: rt.Factory) -> None:
    """state.md "State / pid": "the ID of the container process, as seen by the host"."""
    c = container()
    c.create()
    c.start()
    pid = c.state()["pid"]
    assert Path(f"/proc/{pid}").exists()
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"/probe", b"sleep"]
    c.kill()
    c.wait_status("stopped")
    c.delete()


def test_state_status_sequence(container: rt.Factory) -> None:
    """state.md "State / status": the value MUST be one of created, running, stopped
    (paused is runtime-specific), following the lifecycle in runtime.md."""
    c = container()
    c.create()
    assert c.status() == "created"
    c.start()
    assert c.status() == "running"
    c.kill()
    st = c.wait_status("stopped")
    assert st["status"] in ("created", "running", "stopped", "paused")
    c.delete()


def test_state_stopped_after_exit(container: rt.Factory) -> None:
    """runtime.md "Lifecycle" step 10: "The container process exits" and the container
    is then `stopped` (state.md: "the container process has exited")."""
    c = container(["/probe", "exit", "3"])
    c.create()
    c.start()
    c.wait_status("stopped")
    c.delete()


def test_state_annotations(container: rt.Factory) -> None:
    """state.md "State / annotations": "contains the list of annotations associated with
    the container" - the config's annotations."""
    c = container(annotations={"org.example.conformance": "yes"})
    c.create()
    assert c.state().get("annotations", {}).get("org.example.conformance") == "yes"
    c.kill()
    c.wait_status("stopped")
    c.delete()


def test_state_unknown_id_is_error(root: Path) -> None:
    """runtime.md "Operations / state": "This operation MUST generate an error if it is
    not provided the ID of a container" (an unknown ID)."""
    assert rt.call(root, "state", "no-such-container").returncode != 0
