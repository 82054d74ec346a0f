"""Errors raised by backend selection."""


class BackendAlreadySelected(Exception):
    """A different backend was already selected in this process."""


class UnsupportedBackendError(ValueError):
    """The requested backend does not exist.

    A :class:`ValueError`, as oslo.service raises for an unknown backend.
    """

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "unsupported backend")


class BackendComponentNotAvailable(Exception):
    """The requested component is not provided by the backend."""
