"""pyoci create."""

from __future__ import annotations

from pyoci.cli import Flag, ParsedArgs, int_flag, one_id

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options] <container-id>"
DESCRIPTION = "The create command creates an instance of a container for a bundle."
FLAGS = [
    Flag("bundle", "b", value=True, default=".", help="path to the root of the bundle directory"),
    Flag("console-socket", value=True, help="path to an AF_UNIX socket to receive the pty master"),
    Flag("pid-file", value=True, help="specify the file to write the process id to"),
    Flag("no-pivot", help="do not use pivot root to jail process inside rootfs"),
    Flag("no-new-keyring", help="do not create a new session keyring for the container"),
    Flag("preserve-fds", value=True, default="0", help="pass N additional file descriptors"),
]


def options(flags: ParsedArgs, foreground: bool = False, systemd_cgroup: bool = False) -> Any:
    from pyoci.create import Options

    return Options(
        bundle=str(flags.get("bundle") or "."),
        pid_file=flags.get("pid-file"),  # type: ignore[arg-type]
        console_socket=flags.get("console-socket"),  # type: ignore[arg-type]
        no_pivot=bool(flags.get("no-pivot")),
        no_new_keyring=bool(flags.get("no-new-keyring")),
        preserve_fds=int_flag(flags, "preserve-fds"),
        foreground=foreground,
        systemd_cgroup=systemd_cgroup,
    )


WITHOUT_GC = True  # see pyoci.cli._without_gc


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.cli import log
    from pyoci.create import create

    cid = one_id(args, "create")
    for w in create(ctx.store(), cid, options(flags, systemd_cgroup=ctx.systemd_cgroup)).warnings:
        log.warning(w)
    return 0
