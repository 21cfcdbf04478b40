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
