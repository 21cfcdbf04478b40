"""The one exception tree.

Every failure pyoci reports derives from :class:`PyociError`; the CLI is the only
layer that turns these into an exit status and a log line. Messages are
lower-case and carry the path or value, using runc's wording where callers
(podman, containerd, CRI-O) match on it.
"""


class PyociError(Exception):
    """Base of every error pyoci reports to a user."""


class SpecError(PyociError):
    """config.json (or process.json) is unreadable, invalid or unsupported.

    ``path`` is the JSON path of the offending field (``process.rlimits[1].type``),
    or None when the error is about the file as a whole. Messages read
    ``config.json: <path>: <rule>``, so the path is taken from there unless given.
    """

    def __init__(self, message: str = "", path: str | None = None) -> None:
        super().__init__(message)
        if path is None:
            label, sep, rest = message.partition(": ")
            where, sep2, _ = rest.partition(": ")
            if sep and sep2 and label.endswith(".json") and where and " " not in where:
                path = where
        self.path = path


class UsageError(PyociError):
    """The command line is wrong: unknown flag, missing id, bad value."""


class StateError(PyociError):
    """The state store or a container's status forbids the operation."""


class ContainerNotFound(StateError):
    def __init__(self, cid: str = "") -> None:
        super().__init__("container does not exist")
        self.cid = cid


class ContainerExists(StateError):
    def __init__(self, cid: str = "") -> None:
        super().__init__("container with given ID already exists")
        self.cid = cid


class IncorrectStatus(StateError):
    """The container is in the wrong state for the operation (runc's wording)."""


class CgroupError(PyociError):
    """A cgroup could not be created, configured, joined or removed."""


class HookError(PyociError):
    """A lifecycle hook failed or timed out."""


class ProcessSetupError(PyociError):
    """The container process failed while being set up.

    Raised in the parent from the child's ``{stage, errno, message}`` report,
    so the user sees which step of ``create`` failed and why.
    """

    def __init__(self, stage: str, errno: int, message: str) -> None:
        # runc's wording: callers map "executable file not found" to 127 and
        # "permission denied" to 126, so the child's message is kept verbatim.
        if stage == "exec":
            text = f"unable to start container process: {message}"
        else:
            text = f"unable to start container process: error during container init: {message}"
        super().__init__(text)
        self.stage = stage
        self.errno = errno
