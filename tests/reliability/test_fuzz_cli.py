"""Hostile command lines: every verb answers with one error line, never a traceback.

A fixed matrix (unknown flag, missing id, each kind of invalid id, signals out
of range, for every verb) plus a hypothesis fuzz of random argv built from
real and bogus flags, ids and values. Each run gets an empty working
directory and a private --root, so a verb that succeeds (``spec``, ``list``,
``features``, ``--help``) touches nothing that matters.
``PYOCI_FUZZ_CLI_EXAMPLES`` (default 120) sets the fuzz size.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import helpers
import pytest
import reliability_helpers as rh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyoci.cli import COMMANDS

CLI_EXAMPLES = rh.env_int("PYOCI_FUZZ_CLI_EXAMPLES", 120)
VERBS = sorted(COMMANDS)
NO_ID_VERBS = {"list", "spec", "features"}
ID_VERBS = sorted(set(VERBS) - NO_ID_VERBS)
INVALID_IDS = [".", "..", "a/b", "../escape", "a b", "id\u00e9", "$(id)", "*", "x" * 2000,
               "a:b"]


def run_cli(argv: Sequence[str], root: Path, timeout: float = 30,
            ) -> subprocess.CompletedProcess[str]:
    """``pyoci --root ROOT ARGV`` in an empty cwd, stdin /dev/null, output via files."""
    cmd = [*helpers.runtime_command(), "--root", str(root), *argv]
    with tempfile.TemporaryDirectory(prefix="pyoci-cli-") as cwd, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"hung for {timeout}s: {cmd}") from None
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, rc, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def assert_clean_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    problems = rh.error_problems(res, exit_code=None)
    assert problems == [], f"{problems}\n{rh.describe(res)}"
    for n in needles:
        assert n in res.stderr, f"{n!r} not in the error\n{rh.describe(res)}"


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pyoci-cli-root-"))
    yield path
    leftovers = rh.state_dirs(path)
    subprocess.run(["rm", "-rf", str(path)], check=True)
    assert leftovers == [], f"a command line created state: {leftovers}"


@pytest.mark.parametrize("verb", VERBS)
def test_unknown_flag(verb: str, root: Path) -> None:
    assert_clean_error(run_cli([verb, "--no-such-flag", "someid"], root), "no-such-flag")


@pytest.mark.parametrize("verb", ID_VERBS)
def test_missing_id(verb: str, root: Path) -> None:
    assert_clean_error(run_cli([verb], root))


@pytest.mark.parametrize("verb", ID_VERBS)
def test_invalid_ids(verb: str, root: Path) -> None:
    for cid in INVALID_IDS:
        argv = [verb, cid, "/probe"] if verb == "exec" else [verb, cid]
        res = run_cli(argv, root)
        assert_clean_error(res)
        # runc rejects the id itself, before looking anything up
        if verb not in ("checkpoint", "restore"):
            assert "invalid id format" in res.stderr or "does not exist" not in res.stderr, \
                rh.describe(res)


@pytest.mark.parametrize("sig", ["65", "99999", "SIGBOGUS", "", "RTMIN+40",
                                 "RTMAX-31", "9.5", "KILL KILL", "0x9"])
def test_kill_signal_out_of_range(sig: str, root: Path) -> None:
    assert_clean_error(run_cli(["kill", "someid", sig], root), "signal")


@pytest.mark.parametrize("argv", [
    ["--log-format", "yaml", "state", "x"],
    ["--root"],
    ["--no-such-global", "state", "x"],
    ["no-such-verb"],
    ["--systemd-cgroup", "state", "x"],
    ["--rootless", "maybe", "state", "x"],
    ["create", "--preserve-fds", "-1", "x"],
    ["create", "--preserve-fds", "many", "x"],
    ["create", "--preserve-fds", str(2**70), "x"],
    ["create", "--bundle"],
    ["create", "a", "b"],
    ["exec", "--user", "x:y:z", "someid", "/probe"],
    ["exec", "--cwd", "", "someid"],
    ["ps", "--format", "xml", "someid"],
    ["update", "--memory", "lots", "someid"],
    ["update", "--cpu-shares", "-5", "someid"],
    ["update", "--resources", "/nonexistent.json", "someid"],
    ["events", "--interval", "-1s", "someid"],
    ["delete", "--force=maybe", "someid"],
])
def test_bad_flag_values(argv: list[str], root: Path) -> None:
    assert_clean_error(run_cli(argv, root))


TOKENS = st.one_of(
    st.sampled_from(VERBS),
    st.sampled_from(["--bundle", "-b", "--pid-file", "--console-socket", "--force", "-f",
                     "--all", "-a", "--detach", "-d", "--format", "--process", "-p",
                     "--resources", "--memory", "--preserve-fds", "--no-pivot", "--help",
                     "-h", "--tty", "-t", "--env", "-e", "--user", "-u", "--cwd", "--root",
                     "--log", "--log-format", "--debug", "--bogus", "-", "--", "-x", "=",
                     "--force=true", "--preserve-fds=9999999", "--all=false", "--format=json"]),
    st.sampled_from(["someid", "t-1", *INVALID_IDS, "KILL", "9", "0", "-9", "json", "table",
                     "/", "/dev/null", "/nonexistent", "true", "false", ""]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
            max_size=10),
)


@settings(max_examples=CLI_EXAMPLES, deadline=None, database=None,
          derandomize="PYOCI_FUZZ_CLI_EXAMPLES" not in os.environ,
          suppress_health_check=list(HealthCheck))
@given(verb=st.sampled_from(VERBS), rest=st.lists(TOKENS, max_size=6))
def test_random_command_lines(verb: str, rest: list[str]) -> None:
    """Success or a clean error; never a traceback, a hang or leftover state."""
    if verb == "spec":  # `spec --bundle /` would write /config.json on the host
        rest = [t for t in rest if t not in ("--bundle", "-b")]
    root = Path(tempfile.mkdtemp(prefix="pyoci-cli-root-"))
    try:
        res = run_cli([verb, *rest], root)
        assert "Traceback" not in res.stderr, rh.describe(res)
        if res.returncode != 0:
            assert_clean_error(res)
        assert rh.state_dirs(root) == [], rh.describe(res)
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)
