"""Error and warning output, the way runc's callers read it.

Errors always go to stderr (conmon forwards it to podman). With ``--log`` they
also go to the file: text lines, or JSON lines ``{"level","msg","time"}``.
Podman reads that file as *one* JSON object and containerd takes its last
error line, so at the default level only the error itself is written there;
warnings and debug lines reach the file only with ``--debug``.
"""

import posix
import sys
import time

_path: str | None = None
_format = "text"
_debug = False


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _path, _format, _debug
    _path, _format, _debug = path, fmt, debug


def _timestamp() -> str:
    t = time.time()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return f"{base}.{int(t % 1 * 1e9):09d}Z"


def _write_file(level: str, msg: str) -> None:
    if not _path:
        return
    if _format == "json":
        from pyoci import jsonio

        line = jsonio.dumps({"level": level, "msg": msg, "time": _timestamp()})
    else:
        quoted = msg.replace("\\", "\\\\").replace('"', '\\"')
        line = f'time="{_timestamp()}" level={level} msg="{quoted}"'
    try:
        fd = posix.open(_path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC,
                        0o644)
        try:
            posix.write(fd, (line + "\n").encode())
        finally:
            posix.close(fd)
    except OSError:
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
    if _debug:
        _write_file("debug", msg)
        sys.stderr.write(f"pyoci: debug: {msg}\n")


def describe_oserror(e: OSError) -> str:
    text = (e.strerror or str(e)).lower()
    if e.filename:
        return f"{e.filename}: {text}"
    return text
