"""Backend selection: eventlet (the default) or native threads.

The backend is chosen once per process, either explicitly with
:func:`init_backend`, or implicitly by the first tickwork object that needs
one.  On first use the ``TICKWORK_BACKEND`` environment variable
(``eventlet`` or ``threading``) wins, then a hook registered with
:func:`register_backend_default_hook`, then the default (eventlet).  Choosing
a different backend after that raises
:class:`~tickwork.backend.exceptions.BackendAlreadySelected`, naming the
backend in use and where it was selected.

eventlet is imported only when the eventlet backend is selected.
"""

from __future__ import annotations

import enum
import importlib
import logging
import os
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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
    "get_component",
    "init_backend",
    "register_backend_default_hook",
]

LOG = logging.getLogger(__name__)

ENV_VAR = "TICKWORK_BACKEND"


class BackendType(enum.Enum):
    """The concurrency backends tickwork can run on."""

    EVENTLET = "eventlet"
    THREADING = "threading"


DEFAULT_BACKEND_TYPE = BackendType.EVENTLET

_lock = threading.Lock()
_backend: Backend | None = None
_selected_where: str | None = None
_backend_hook: Callable[[], BackendType | str] | None = None


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


def register_backend_default_hook(hook: Callable[[], BackendType | str]) -> None:
    """Let ``hook()`` choose the backend on first use, unless ``$TICKWORK_BACKEND`` is set.

    The hook runs only if no backend is selected by then.  A hook that raises
    is logged and the default backend is used.
    """
    global _backend_hook
    if not callable(hook):
        raise TypeError(f"hook must be callable, got {hook!r}")
    _backend_hook = hook


def _first_use_choice() -> tuple[BackendType, str]:
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            return _coerce(env), f"{ENV_VAR}={env!r}"
        except UnsupportedBackendError as e:
            raise UnsupportedBackendError(f"{ENV_VAR}: {e}") from None
    hook = _backend_hook
    if hook is not None:
        try:
            return _coerce(hook()), f"default hook {getattr(hook, '__qualname__', hook)!r}"
        except Exception:
            LOG.exception("The backend default hook raised; using the default backend")
    return DEFAULT_BACKEND_TYPE, "default"


def get_backend() -> Backend:
    """The active backend, selecting one on first use.

    First use picks ``$TICKWORK_BACKEND`` when set, else the registered
    default hook's choice, else eventlet.
    """
    global _backend, _selected_where
    backend = _backend
    if backend is not None:
        return backend
    wanted, why = _first_use_choice()
    with _lock:
        if _backend is None:
            _backend = _load(wanted)
            _selected_where = f"{_caller()} (first use, {why})"
        return _backend


def get_component(name: str) -> Any:
    """The class or function oslo.service's backends export under ``name``.

    tickwork has one implementation per name for both backends; this selects
    the backend on first use, as oslo.service does.

    :raises KeyError: no component has that name.
    """
    get_backend()
    for module_name in _COMPONENT_MODULES:
        module = importlib.import_module(module_name)
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    alias = _COMPONENT_ALIASES.get(name)
    if alias is not None:
        return getattr(importlib.import_module(alias[0]), alias[1])
    raise KeyError(f"Component {name!r} not found in backend.")


_COMPONENT_MODULES = ("tickwork.loopingcall", "tickwork.threadgroup", "tickwork.service")
#: oslo.service component names that tickwork spells privately.
_COMPONENT_ALIASES = {
    "Singleton": ("tickwork.service", "_Singleton"),
    "_is_daemon": ("tickwork.service", "_is_daemon"),
    "_is_sighup_and_daemon": ("tickwork.service", "_is_sighup_and_daemon"),
}


def get_backend_type() -> BackendType | None:
    """The selected backend's type, or None when none is selected yet."""
    backend = _backend
    return backend.type if backend is not None else None


def _reset_backend() -> None:
    """Forget the selection (for tests only)."""
    global _backend, _selected_where, _backend_hook
    with _lock:
        _backend = None
        _selected_where = None
        _backend_hook = None
