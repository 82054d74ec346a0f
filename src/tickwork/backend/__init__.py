"""Backend selection: eventlet (the default) or native threads.

The backend is chosen once per process, either explicitly with
:func:`init_backend`, through the ``TICKWORK_BACKEND`` environment variable
(``eventlet`` or ``threading``), or implicitly by the first tickwork object that
needs one.  Choosing again after that raises
:class:`~tickwork.backend.exceptions.BackendAlreadySelected`.

eventlet is imported only when the eventlet backend is selected.
"""

from __future__ import annotations

import enum
import os
import threading
import traceback
from typing import TYPE_CHECKING

from tickwork.backend.exceptions import BackendAlreadySelected, UnsupportedBackendError

if TYPE_CHECKING:
    from tickwork.backend.base import Backend

__all__ = [
    "BackendType",
    "DEFAULT_BACKEND_TYPE",
    "ENV_VAR",
    "BackendAlreadySelected",
    "UnsupportedBackendError",
    "get_backend",
    "get_backend_type",
    "init_backend",
]

ENV_VAR = "TICKWORK_BACKEND"


class BackendType(enum.Enum):
    """The concurrency backends tickwork can run on."""

    EVENTLET = "eventlet"
    THREADING = "threading"


DEFAULT_BACKEND_TYPE = BackendType.EVENTLET

_lock = threading.Lock()
_backend: Backend | None = None
_selected_where: str | None = None


def _caller() -> str:
    """The first frame outside tickwork that led to the current selection."""
    here = os.path.dirname(os.path.dirname(__file__))
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not frame.filename.startswith(here):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


def _coerce(type_: BackendType | str) -> BackendType:
    if isinstance(type_, BackendType):
        return type_
    try:
        return BackendType(str(type_).strip().lower())
    except ValueError:
        choices = ", ".join(t.value for t in BackendType)
        raise UnsupportedBackendError(
            f"unknown tickwork backend {type_!r}; choose one of: {choices}"
        ) from None


def _load(type_: BackendType) -> Backend:
    if type_ is BackendType.EVENTLET:
        from tickwork.backend._eventlet import EventletBackend

        return EventletBackend()
    from tickwork.backend._threading import ThreadingBackend

    return ThreadingBackend()


def init_backend(type_: BackendType | str) -> None:
    """Select the backend for this process.

    :raises BackendAlreadySelected: a different backend is already in use.
    :raises UnsupportedBackendError: ``type_`` names no backend.
    """
    global _backend, _selected_where
    wanted = _coerce(type_)
    with _lock:
        if _backend is not None:
            if _backend.type is wanted:
                return
            raise BackendAlreadySelected(
                f"cannot select the {wanted.value} backend: the {_backend.type.value} "
                f"backend was already selected at {_selected_where}"
            )
        _backend = _load(wanted)
        _selected_where = _caller()


def get_backend() -> Backend:
    """The active backend, selecting the default one on first use.

    The default is ``$TICKWORK_BACKEND`` when set, otherwise eventlet.
    """
    backend = _backend
    if backend is not None:
        return backend
    env = os.environ.get(ENV_VAR, "").strip()
    wanted = _coerce(env) if env else DEFAULT_BACKEND_TYPE
    global _selected_where
    with _lock:
        if _backend is None:
            globals()["_backend"] = _load(wanted)
            where = _caller()
            _selected_where = f"{where} (first use, {ENV_VAR}={env!r})" if env else (
                f"{where} (first use, default)"
            )
        return _backend  # type: ignore[return-value]


def get_backend_type() -> BackendType | None:
    """The selected backend's type, or None when none is selected yet."""
    backend = _backend
    return backend.type if backend is not None else None


def _reset_backend() -> None:
    """Forget the selection (for tests only)."""
    global _backend, _selected_where
    with _lock:
        _backend = None
        _selected_where = None
