"""User namespaces: several mapping ranges, and no more power on the host than the
mapped ids have (config-linux.md "User namespace mappings")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import helpers
import pytest

pytestmark = pytest.mark.integration

UIDS = [{"containerID": 0, "hostID": 100000, "size": 1000},
        {"containerID": 1000, "hostID": 300000, "size": 1000}]


def _bundle(open_dir: Path, rootfs_template: Path, script: str,
            extra: list[dict[str, Any]], caps: list[str] | None = None) -> Path:
    def userns(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = UIDS
        cfg["linux"]["gidMappings"] = UIDS
        cfg["mounts"].extend(extra)
        if caps:
            cfg["process"]["capabilities"] = {k: caps for k in
                                              ("bounding", "effective", "permitted")}

    cfg = helpers.bundle_config(["/bin/sh", "-c", script], mutate=userns)
    bundle = helpers.write_bundle(open_dir / "bundle", rootfs_template, cfg)
    for m in extra:
        (bundle / "rootfs" / m["destination"].lstrip("/")).mkdir(exist_ok=True)
    return bundle


def test_several_mapping_ranges(open_dir: Path, rootfs_template: Path,
                                pyoci_root: Path) -> None:
    shared = open_dir / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    bundle = _bundle(open_dir, rootfs_template,
                     "/probe cat /proc/self/uid_map && "
                     "/probe touch /shared/by-root && "
                     "chown 1500:1500 /shared/by-root",
                     [{"destination": "/shared", "type": "bind", "source": str(shared),
                       "options": ["rbind", "rw"]}], caps=["CAP_CHOWN"])
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows == [["0", "100000", "1000"], ["1000", "300000", "1000"]]
    st = (shared / "by-root").stat()
    # uid 1500 inside is the second range: 300000 + 500 on the host
    assert (st.st_uid, st.st_gid) == (300500, 300500)


def test_root_in_the_namespace_is_not_root_on_the_host(open_dir: Path, rootfs_template: Path,
                                                        pyoci_root: Path) -> None:
    """Full capabilities inside, yet only the mapped ids' rights on host files."""
    host = open_dir / "host"
    host.mkdir()
    secret = host / "secret"
    secret.write_text("host-only\n")
    secret.chmod(0o600)  # owned by host root, which is unmapped inside
    (host / "dir").mkdir(mode=0o755)

    bundle = _bundle(open_dir, rootfs_template,
                     "/probe cat /host/secret; echo rc=$?; "
                     "/probe touch /host/dir/new; echo rc=$?; "
                     "chown 0:0 /host/secret; echo rc=$?",
                     [{"destination": "/host", "type": "bind", "source": str(host),
                       "options": ["rbind", "rw"]}],
                     caps=["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
                           "CAP_FOWNER", "CAP_SYS_ADMIN"])
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines() + res.stderr.splitlines()
    rcs = [ln for ln in lines if ln.startswith("rc=")]
    assert rcs == ["rc=1", "rc=1", "rc=1"], (res.stdout, res.stderr)
    assert "host-only" not in res.stdout
    assert not (host / "dir" / "new").exists()
    assert secret.stat().st_uid == 0 and oct(secret.stat().st_mode & 0o777) == "0o600"
    assert os.stat(host / "dir").st_uid == 0
