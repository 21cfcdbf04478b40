"""Error and warning output, the way runc's callers read it.

Errors always go to stderr (conmon forwards it to podman). With ``--log`` they
also go to the file: text lines, or JSON lines ``{"level","msg","time"}``.
Podman reads that file as *one* JSON object and containerd takes its last
error line, so at the default level only the error itself is written there;
warnings and debug lines reach the file only with ``--debug``.

The file is opened (created, as runc does) when the flags are parsed, and the
descriptor is kept: the container's init, forked from us, logs its own steps
through it until its exec (the descriptor is close-on-exec), after pivot_root
when the path no longer resolves. ``--debug`` without ``--log`` logs to a
close-on-exec copy of stderr, so the init's lines never reach a console that
replaced its stdio. Nothing here may raise: a log line never fails a command.
"""

import posix
import sys
import time

_path: str | None = None
_format = "text"
_debug = False
_fd = -1  # the --log file, or with --debug alone a copy of stderr


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _path, _format, _debug, _fd
    _path, _format, _debug = path, fmt, debug
    # jsonio is imported on the first JSON line (callers pass --log-format json to the
    # lean verbs too), but with --debug now: a container's init logs after pivot_root.
    if fmt == "json" and debug:
        from pyoci import jsonio  # noqa: F401
    if debug:
        from pyoci import trace

        trace.set_sink(globals()["debug"])
    try:
        if path:
            _fd = posix.open(path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT
                             | posix.O_CLOEXEC, 0o644)
        elif debug:
            _fd = posix.dup(2)  # non-inheritable: close-on-exec
    except OSError:
        _fd = -1


def _timestamp() -> str:
    t = time.time()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return f"{base}.{int(t % 1 * 1e9):09d}Z"


def _write_file(level: str, msg: str) -> None:
    if not _path or _fd < 0:
        return
    try:
        if _format == "json":
            from pyoci import jsonio

            line = jsonio.dumps({"level": level, "msg": msg, "time": _timestamp()})
        else:
            quoted = msg.replace("\\", "\\\\").replace('"', '\\"')
            line = f'time="{_timestamp()}" level={level} msg="{quoted}"'
        posix.write(_fd, (line + "\n").encode(errors="replace"))
    except Exception:
        pass


def error(msg: str) -> None:
    msg = " ".join(msg.split("\n"))
    _write_file("error", msg)
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def warning(msg: str) -> None:
    if _debug:
        _write_file("warning", msg)
    sys.stderr.write(f"pyoci: warning: {msg}\n")


def debug(msg: str) -> None:
    """One step, for the operator reading why a container won't start (``--debug``)."""
    if not _debug:
        return
    if _path:
        _write_file("debug", msg)
    elif _fd >= 0:
        try:
            posix.write(_fd, f"pyoci: debug: {msg}\n".encode(errors="replace"))
        except OSError:
            pass


def describe_oserror(e: OSError) -> str:
    text = (e.strerror or str(e)).lower()
    if e.filename:
        return f"{e.filename}: {text}"
    return text
