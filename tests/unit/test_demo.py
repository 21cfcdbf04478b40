"""The demo bundle: the rootfs layout every container test starts from."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pyoci import demo
from pyoci.spec.default import default_config


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.build_bundle(tmp_path_factory.mktemp("demo") / "bundle")


def test_rootfs_layout(bundle: Path) -> None:
    root = bundle / "rootfs"
    busybox = root / "bin" / "busybox"
    assert busybox.is_file() and os.access(busybox, os.X_OK)
    assert demo.is_static_elf(busybox)
    for applet in ("sh", "ls", "cat", "id", "hostname", "mount"):
        link = root / "bin" / applet
        assert link.is_symlink() and os.readlink(link) == "busybox", applet
    for name in ("proc", "sys", "dev", "tmp", "root", "etc", "var", "run"):
        assert (root / name).is_dir(), name
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    assert passwd[0].startswith("root:x:0:0:")
    assert any(line.startswith("nobody:x:65534:65534:") for line in passwd)
    assert "root:x:0:" in (root / "etc" / "group").read_text()
    assert (root / "etc" / "hostname").read_text().strip()


def test_busybox_copy_runs(bundle: Path) -> None:
    out = subprocess.run([str(bundle / "rootfs" / "bin" / "sh"), "-c", "echo ok"],
                         capture_output=True, text=True, check=True)
    assert out.stdout == "ok\n"


def test_config(bundle: Path) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    expected = default_config()
    assert cfg["process"]["terminal"] is False
    assert cfg["process"]["args"] == ["/bin/sh", "-c", demo.DEMO_SCRIPT]
    assert cfg["root"] == expected["root"]
    assert cfg["linux"]["namespaces"] == expected["linux"]["namespaces"]
    assert cfg["ociVersion"] == expected["ociVersion"]


def test_script_has_headings() -> None:
    for heading in ("== hostname", "== pid", "== mounts", "== id"):
        assert heading in demo.DEMO_SCRIPT


def test_custom_args_and_extra(tmp_path: Path) -> None:
    src = tmp_path / "tool"
    src.write_text("#!/bin/sh\n")
    src.chmod(0o755)
    root = demo.build_rootfs(tmp_path / "rootfs", extra={"/usr/local/bin/tool": src})
    copied = root / "usr" / "local" / "bin" / "tool"
    assert copied.read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE(copied.stat().st_mode) == 0o755
    # Rebuilding over an existing rootfs must work (symlinks and files replaced).
    demo.build_rootfs(root, extra={"/usr/local/bin/tool": src})

    b = demo.build_bundle(tmp_path / "b", args=["/bin/echo", "hi"])
    assert json.loads((b / "config.json").read_text())["process"]["args"] == ["/bin/echo", "hi"]


def test_missing_or_dynamic_busybox(tmp_path: Path) -> None:
    with pytest.raises(demo.DemoError, match="install busybox-static"):
        demo.build_rootfs(tmp_path / "r1", busybox=tmp_path / "nope")
    with pytest.raises(demo.DemoError, match="not statically linked"):
        demo.build_rootfs(tmp_path / "r2", busybox=Path(sys.executable).resolve())
    text = tmp_path / "text"
    text.write_text("not an elf")
    assert not demo.is_static_elf(text)


def test_cli(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo))
    res = subprocess.run([sys.executable, "-m", "pyoci.demo", str(tmp_path / "d")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str((tmp_path / "d").resolve())
    assert (tmp_path / "d" / "config.json").is_file()

    res = subprocess.run([sys.executable, "-m", "pyoci.demo"], capture_output=True,
                         text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "demo" / "rootfs" / "bin" / "busybox").is_file()


def test_cli_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo, "BUSYBOX", tmp_path / "nope")
    assert demo.main([str(tmp_path / "x")]) == 1
    assert "install busybox-static" in capsys.readouterr().err
