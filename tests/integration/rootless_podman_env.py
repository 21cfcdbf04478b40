"""Rootless podman for the tests: a throwaway unprivileged user that runs podman.

The session makes a user (``pyocipm<hex>``) with subordinate uid/gid ranges in
``/etc/subuid`` and ``/etc/subgid``, a ``/run/user/<uid>`` (0700, the user's)
as ``XDG_RUNTIME_DIR``, and a podman config of its own in
``~/.config/containers``: graphroot under the home, runroot under
``XDG_RUNTIME_DIR``, ``cgroup_manager = "cgroupfs"`` (no systemd user session
runs here), ``events_logger = "file"`` and ``default_ulimits`` this sandbox
can grant (podman asks for nofile 1048576 otherwise); the network is podman
4.3's rootless default, slirp4netns. Afterwards everything goes: ``podman
system reset``, every process of the user and of its subordinate ids,
``userdel -r``, the subordinate ranges and ``/run/user/<uid>``.

What rootless podman 4.3 passes to the runtime, found by wrapping runc: the
same verbs and flags as rootful (``create --bundle B --pid-file P ID``,
``start``, ``kill ID 15``/``9``, ``delete --force``, ``exec ... --detach``),
never ``--root``; the runtime runs as uid 0 *inside podman's user namespace*
(uid 0 maps to the user, 1..65536 to the subordinate range) with
``XDG_RUNTIME_DIR=/run/user/<uid>`` set. runc then keeps its state in
``$XDG_RUNTIME_DIR/runc``: it detects the non-initial user namespace itself.

The runtime has to be executable by the user, and ``/root`` (where a pyenv
interpreter and an editable install usually live) is 0700. So unless
``PYOCI_TEST_RUNTIME`` names another runtime (runc, crun), the session copies
the ``pyoci`` package the tests import (the tree under test, compiled
extension included) to a world-readable temp dir and runs it with Debian's
``/usr/bin/python3`` (``python3-cffi-backend`` provides ``_cffi_backend``).
``PYOCI_TEST_ROOTLESS_RUNTIME`` overrides all that with a runtime the user can
already run.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import helpers
import podman_env
import rootless_env
from podman_env import IMAGE

USER_PREFIX = "pyocipm"
ROOTLESS_RUNTIME_ENV = "PYOCI_TEST_ROOTLESS_RUNTIME"
SYSTEM_PYTHON = Path("/usr/bin/python3")
def user_runtime(base: Path) -> Path:
    """The runtime podman is told to use, as a path the user can execute (module docstring)."""
    explicit = os.environ.get(ROOTLESS_RUNTIME_ENV)
    if explicit:
        return Path(explicit)
    override = os.environ.get(helpers.RUNTIME_ENV)
    if override and Path(override).name != "pyoci":
        return Path(override)
    lib = rootless_env.copy_package(base)
    launcher = base / "bin" / "pyoci"
    launcher.parent.mkdir()
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH={lib} exec {SYSTEM_PYTHON} -m pyoci "$@"\n')
    for path in (base, *base.rglob("*")):
        path.chmod(0o755 if path.is_dir() or path == launcher else 0o644)
    launcher.chmod(0o755)
    return launcher


class RootlessPodman:
    """Rootless podman run by ``user`` with ``runtime`` (``podman(...)`` mirrors PodmanEnv's)."""

    def __init__(self, user: rootless_env.RootlessUser, runtime: Path) -> None:
        self.user = user
        self.runtime = runtime
        self.config_dir = user.home / ".config" / "containers"
        self.graphroot = user.home / ".local" / "share" / "containers" / "storage"
        self.runroot = user.runtime_dir / "containers"
        # The runtime's state dir when it runs as root of podman's user namespace.
        self.state_root = user.runtime_dir / runtime.name

    def write_config(self) -> None:
        nofile = podman_env.ulimits()[0]
        name = self.runtime.name
        self.config_dir.mkdir(parents=True)
        (self.config_dir / "storage.conf").write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f"graphroot = {podman_env._toml_str(self.graphroot)}\n"
            f"runroot = {podman_env._toml_str(self.runroot)}\n"
        )
        (self.config_dir / "containers.conf").write_text(
            "[containers]\n"
            f"default_ulimits = {podman_env._toml_list([nofile])}\n"
            "\n[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f"runtime_supports_json = "
            f"{podman_env._toml_list(sorted({*podman_env.DEFAULT_SUPPORTS_JSON, name}))}\n"
            "\n[engine.runtimes]\n"
            f"{name} = {podman_env._toml_list([os.fspath(self.runtime)])}\n"
        )
        for path in (self.user.home / ".config", *self.user.home.joinpath(".config").rglob("*")):
            os.chown(path, self.user.uid, self.user.gid)

    def import_image(self, rootfs: Path, base: Path) -> None:
        tarball = base / "rootfs.tar"
        subprocess.run(["tar", "-C", os.fspath(rootfs), "--numeric-owner", "-cf",
                        os.fspath(tarball), "."], check=True)
        tarball.chmod(0o644)
        try:
            self.podman("import", tarball, IMAGE, check=True, timeout=120)
        finally:
            tarball.unlink()

    def podman(self, *args: str | os.PathLike[str], runtime: bool = False,
               input: str | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        """``podman ARGS`` as the user; ``runtime=True`` adds ``--runtime RT`` after the verb.

        Output goes through files: conmon outlives ``run -d`` and must not hold a pipe of ours.
        """
        argv = [os.fspath(a) for a in args]
        if runtime:
            argv[1:1] = ["--runtime", os.fspath(self.runtime)]
        cmd = self.user.argv("podman", *argv)
        return podman_env.run_through_files(cmd, input=input, timeout=timeout, check=check,
                                            cwd=self.user.home)

    def podman_tty(self, *args: str, send: Sequence[str],
                   timeout: float = 60) -> tuple[int, str]:
        """``podman ARGS`` with a terminal as stdin/stdout/stderr, typing ``send`` line by line.

        Each line is typed once new output came and then went quiet. Returns the exit code
        and everything the terminal showed.
        """
        argv = list(args)
        argv[1:1] = ["--runtime", os.fspath(self.runtime)]
        master, slave = pty.openpty()
        proc = subprocess.Popen(self.user.argv("podman", *argv), stdin=slave, stdout=slave,
                                stderr=slave, cwd=self.user.home, start_new_session=True)
        os.close(slave)
        chunks: list[bytes] = []
        pending = [line.encode() + b"\r" for line in send]
        deadline = time.monotonic() + timeout
        typed_at = 0
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    try:
                        data = os.read(master, 4096)
                    except OSError:  # EIO: every slave end is closed
                        break
                    if not data:
                        break
                    chunks.append(data)
                elif pending and len(chunks) > typed_at:
                    # Quiet after new output (the prompt, then busybox's cursor query).
                    os.write(master, pending.pop(0))
                    typed_at = len(chunks)
                elif proc.poll() is not None:
                    break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(5.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        # Killed at the deadline: -9, with the screen to show why.
        return proc.returncode, b"".join(chunks).decode(errors="replace")

    def run(self, *args: str | os.PathLike[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """``podman run --rm --runtime RT ARGS`` (ARGS end with image + command)."""
        return self.podman("run", "--rm", *args, runtime=True, **kw)

    def inspect(self, cid: str, fmt: str) -> str:
        return self.podman("inspect", "--format", fmt, cid, check=True).stdout.strip()

    def state_dirs(self) -> set[str]:
        """Container ids with a dir in the runtime's state root (this user's alone)."""
        if not self.state_root.is_dir():
            return set()
        return {p.name for p in self.state_root.iterdir() if len(p.name) == 64}

    def cleanup_containers(self) -> list[str]:
        res = self.podman("rm", "--all", "--force", "--time", "0", timeout=120)
        return [] if res.returncode == 0 else [f"podman rm -af: {res.stderr.strip()}"]


@contextlib.contextmanager
def rootless_podman(rootfs: Path) -> Iterator[RootlessPodman]:
    """A new user running rootless podman with the test image; all of it removed after."""
    base = Path(tempfile.mkdtemp(prefix="pyoci-rlpodman-"))
    base.chmod(0o755)
    user = rootless_env.make_user()
    problems: list[str] = []
    try:
        env = RootlessPodman(user, user_runtime(base / "runtime"))
        # Fail here, with the reason, if the user can't run it (python3-cffi-backend?).
        check = subprocess.run(user.argv(env.runtime, "--version"), capture_output=True,
                               text=True, cwd=user.home, timeout=60, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"{user.name} can't run {env.runtime}: {check.stderr.strip()}")
        env.write_config()
        env.import_image(rootfs, base)
        yield env
    finally:
        with contextlib.suppress(NameError):
            problems += env.cleanup_containers()
        reset = subprocess.run(user.argv("podman", "system", "reset", "--force"),
                               capture_output=True, text=True, cwd=user.home, timeout=120,
                               check=False)
        if reset.returncode != 0:
            problems.append(f"podman system reset: {reset.stderr.strip()}")
        problems += rootless_env.remove_user(user)
        shutil.rmtree(base, ignore_errors=True)
        if problems:
            print("rootless podman teardown:", *problems, sep="\n  ")


def checked(env: RootlessPodman) -> Iterator[RootlessPodman]:
    """Yield ``env``, then fail the test if a container or runtime state dir was left behind."""
    import pytest

    before = env.state_dirs()
    yield env
    ids = env.podman("ps", "--all", "--quiet", "--no-trunc", check=True).stdout.split()
    problems = [f"container {cid[:12]} not removed" for cid in ids]
    problems += env.cleanup_containers()
    problems += [f"state dir {env.state_root / cid} left behind"
                 for cid in sorted(env.state_dirs() - before)]
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
