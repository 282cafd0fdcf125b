"""The BoxError hierarchy: every failure the tool reports to a user.

Owns: the error classes and the exit code each one maps to (Docker's convention: 125 for the
tool's own failures, 126 for a command that cannot be executed, 127 for one not found).
Must not: print, exit, or import anything from the package (it is the bottom of the graph).
"""


class BoxError(Exception):
    """A failure with a one-line message and an optional hint for the user."""

    exit_code = 125

    def __init__(self, message, hint=None, *, exit_code=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self):
        return self.message

    def to_dict(self):
        return {"class": type(self).__name__, "message": self.message, "hint": self.hint,
                "exit_code": self.exit_code}


class UsageError(BoxError):
    """Bad command line: unknown flag, missing argument, malformed value."""


class NotFound(BoxError):
    """An image, container or file the user named does not exist."""


class Conflict(BoxError):
    """A name already in use, an image still used by a container, and the like."""


class StoreError(BoxError):
    """The image/container store is damaged or cannot be written."""


class BadArchive(BoxError):
    """A tarball (layer, rootfs, archive) that is unreadable or hostile."""


class SetupError(BoxError):
    """The container could not be set up (namespaces, id maps, mounts)."""


class CannotExecute(BoxError):
    """The container's command exists but cannot be executed (Docker's 126)."""

    exit_code = 126


class CommandNotFound(BoxError):
    """The container's command does not exist (Docker's 127)."""

    exit_code = 127


class RegistryError(BoxError):
    """A registry refused, failed, or answered with something that cannot be trusted."""


class AuthError(RegistryError):
    """The registry wants credentials the user has not given, or refused the ones given."""


_CLASSES = {cls.__name__: cls for cls in (BoxError, UsageError, NotFound, Conflict, StoreError,
                                          BadArchive, SetupError, CannotExecute,
                                          CommandNotFound, RegistryError, AuthError)}


def from_dict(data):
    """Rebuild an error sent across a process boundary (the container's sync pipe)."""
    cls = _CLASSES.get(data.get("class"), BoxError)
    return cls(str(data.get("message") or "unknown failure"), data.get("hint"),
               exit_code=data.get("exit_code"))
