"""pyoci checkpoint / restore: runc's flags, carried out by CRIU (pyoci.checkpoint).

Podman probes ``checkpoint --help`` and takes exit 0 to mean support.
"""

from __future__ import annotations

from pyoci.cli import Flag, ParsedArgs, int_flag, one_id

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

_COMMON = [
    Flag("image-path", value=True, help="path for saving criu image files"),
    Flag("work-path", value=True, help="path for saving work files and logs"),
    Flag("tcp-established", help="allow open tcp connections"),
    Flag("ext-unix-sk", help="allow external unix sockets"),
    Flag("shell-job", help="allow shell jobs"),
    Flag("file-locks", help="handle file locks, for safety"),
    Flag("manage-cgroups-mode", value=True,
         help="cgroups mode: 'soft' (default), 'full', 'strict' and 'ignore'"),
    Flag("empty-ns", value=True, repeat=True,
         help="create a namespace, but don't restore its properties"),
    Flag("auto-dedup", help="enable auto deduplication of memory images"),
    Flag("lazy-pages", help="use userfaultfd to lazily restore memory pages (unsupported)"),
]

CHECKPOINT_FLAGS = [
    *_COMMON,
    Flag("parent-path", value=True, help="path for previous criu image files in pre-dump"),
    Flag("leave-running", help="leave the process running after checkpointing"),
    Flag("pre-dump", help="dump container's memory information only, leave the container running"),
    Flag("status-fd", value=True, help="criu writes \\0 to this FD once lazy-pages is ready"),
    Flag("page-server", value=True, help="ADDRESS:PORT of the page server (unsupported)"),
]

RESTORE_FLAGS = [
    *_COMMON,
    Flag("bundle", "b", value=True, default=".", help="path to the root of the bundle directory"),
    Flag("console-socket", value=True, help="path to an AF_UNIX socket to receive the pty master"),
    Flag("detach", "d", help="detach from the container's process"),
    Flag("pid-file", value=True, help="specify the file to write the process id to"),
    Flag("no-subreaper", help="disable the use of the subreaper used to reap reparented processes"),
    Flag("no-pivot", help="do not use pivot root to jail process inside rootfs"),
    Flag("lsm-profile", value=True, help="Specify an LSM profile to be used during restore"),
    Flag("lsm-mount-context", value=True, help="Specify an LSM mount context (unsupported)"),
]


def command(verb: str) -> Any:
    return _Checkpoint() if verb == "checkpoint" else _Restore()


def _options(ctx: Any, flags: ParsedArgs, **extra: Any) -> Any:
    import os

    from pyoci.checkpoint import Options
    from pyoci.errors import UsageError

    if ctx.flags.get("criu"):  # the global --criu: which binary pyoci.criu runs
        os.environ["PYOCI_CRIU"] = str(ctx.flags.get("criu"))

    for unsupported in ("lazy-pages", "page-server", "lsm-mount-context"):
        if flags.get(unsupported):
            raise UsageError(f"--{unsupported} is not supported by pyoci")
    return Options(
        image_path=str(flags.get("image-path") or ""),
        work_path=str(flags.get("work-path") or ""),
        tcp_established=bool(flags.get("tcp-established")),
        ext_unix_sk=bool(flags.get("ext-unix-sk")),
        shell_job=bool(flags.get("shell-job")),
        file_locks=bool(flags.get("file-locks")),
        manage_cgroups_mode=str(flags.get("manage-cgroups-mode") or ""),
        empty_ns=list(flags.get("empty-ns") or []),  # type: ignore[call-overload]
        auto_dedup=bool(flags.get("auto-dedup")),
        **extra,
    )


class _Checkpoint:
    USAGE = "[command options] <container-id>"
    DESCRIPTION = ("The checkpoint command saves the state of the container instance "
                   "(through CRIU).")
    FLAGS = CHECKPOINT_FLAGS

    def run(self, ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
        from pyoci.checkpoint import checkpoint

        cid = one_id(args, "checkpoint")
        opts = _options(ctx, flags, parent_path=str(flags.get("parent-path") or ""),
                        leave_running=bool(flags.get("leave-running")),
                        pre_dump=bool(flags.get("pre-dump")),
                        status_fd=int_flag(flags, "status-fd", -1))
        checkpoint(ctx.store(), cid, opts)
        return 0


class _Restore:
    USAGE = "[command options] <container-id>"
    DESCRIPTION = "Restores the saved state of the container instance that was previously saved."
    FLAGS = RESTORE_FLAGS
    WITHOUT_GC = True

    def run(self, ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
        from pyoci.checkpoint import restore
        from pyoci.cli import log

        cid = one_id(args, "restore")
        detach = bool(flags.get("detach"))
        opts = _options(ctx, flags, bundle=str(flags.get("bundle") or "."), detach=detach,
                        pid_file=flags.get("pid-file"),
                        console_socket=flags.get("console-socket"),
                        no_pivot=bool(flags.get("no-pivot")),
                        lsm_profile=str(flags.get("lsm-profile") or ""))
        store = ctx.store()
        if not detach and not flags.get("no-subreaper"):
            from pyoci._native import lib

            lib.pyoci_prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER, as run
        restored = restore(store, cid, opts)
        for w in restored.warnings:
            log.warning(w)
        if detach:
            return 0
        # As runc without -d: wait for the restored process (CRIU made it our child),
        # then delete the container and exit with its status.
        from pyoci.cli import foreground
        from pyoci.container import Container

        foreground.settle()
        forward = foreground.forward_signals(restored.pid)
        try:
            status = foreground.wait(restored.pid)
        finally:
            forward()
        for w in Container.load(store, cid).delete(force=True):
            log.warning(w)
        return status
