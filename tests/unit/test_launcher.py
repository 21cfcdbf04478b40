"""The lean launcher: same CLI, started with -I -S."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pyoci import launcher


def test_launcher_runs_pyoci_without_site(tmp_path: Path) -> None:
    path = tmp_path / "pyoci"
    launcher.install(str(path))
    first = path.read_text().splitlines()[0]
    assert first.startswith("#!/") and first.endswith(" -IS")
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True,
                         env={})
    assert out.stdout.splitlines()[0].startswith("pyoci version ")
    # -S: `site` never ran, so nothing a .pth file names was imported
    probe = subprocess.run(
        [first[2:].split()[0], "-IS", "-c",
         "import sys; exec(open(sys.argv[1]).read().split('from pyoci')[0]);"
         "import pyoci.cli; print('site' in sys.modules)", str(path)],
        capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False"


def test_entry_flushes_and_keeps_the_exit_status(tmp_path: Path) -> None:
    """entry() skips finalisation: what was written must still arrive, statuses must hold."""
    path = tmp_path / "pyoci"
    launcher.install(str(path))
    # A pipe (block-buffered): the whole --help text, exit 0.
    out = subprocess.run([str(path), "--help"], capture_output=True, text=True, env={})
    assert out.returncode == 0
    assert out.stdout.rstrip().endswith("print the version")
    # A regular file, and an error: the one-line message on stderr, exit 1.
    with open(tmp_path / "out", "w") as stdout, open(tmp_path / "err", "w") as stderr:
        rc = subprocess.run([str(path), "--root", str(tmp_path / "root"), "state", "nope"],
                            stdout=stdout, stderr=stderr, env={}).returncode
    assert rc == 1
    assert (tmp_path / "err").read_text() == "container does not exist\n"
    # A usage error keeps its own status.
    bad = subprocess.run([str(path), "--no-such-flag"], capture_output=True, text=True, env={})
    assert bad.returncode == 1 and "flag provided but not defined" in bad.stderr


def test_entry_reports_a_stdout_it_cannot_flush(tmp_path: Path) -> None:
    """stdout closed by the reader: CPython's own status for an unflushable stdout, 120."""
    path = tmp_path / "pyoci"
    launcher.install(str(path))
    proc = subprocess.Popen([str(path), "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={})
    assert proc.stdout is not None
    proc.stdout.close()
    assert proc.wait() == 120


def test_absolute_matches_abspath(tmp_path: Path, monkeypatch) -> None:
    """--root is made absolute without importing os: the same answers as os.path.abspath."""
    import os

    from pyoci.cli import absolute

    monkeypatch.chdir(tmp_path)
    for p in ("root", "./root", "a/../b", "a/./b/", "../x", "/run/pyoci", "/a/b/../../c",
              "/..", ".", "a//b", "/x/"):
        assert absolute(p) == os.path.abspath(p), p
