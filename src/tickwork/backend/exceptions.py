"""Errors raised by backend selection."""


class BackendAlreadySelected(Exception):
    """A different backend was already selected in this process."""


class UnsupportedBackendError(Exception):
    """The requested backend does not exist."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "unsupported backend")


class BackendComponentNotAvailable(Exception):
    """The requested component is not provided by the backend."""
