"""systemd readiness notification (``Type=notify`` units), as ``oslo_service.systemd``.

:func:`notify` tells systemd the service is ready; :func:`notify_once` does the
same and removes ``$NOTIFY_SOCKET`` so forked workers do not notify again;
:func:`onready` is the other side, for tests and tools: it waits for such a
notification on a socket.  Nothing is sent when ``$NOTIFY_SOCKET`` is unset.
"""

from __future__ import annotations

import os
import socket

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

__all__ = ["notify", "notify_once", "onready"]


def _abstractify(socket_name: str) -> str:
    """A leading ``@`` names a socket in the abstract namespace (a NUL byte)."""
    if socket_name.startswith("@"):
        return "\0" + socket_name[1:]
    return socket_name


def _sd_notify(unset_env: bool, msg: bytes) -> bool:
    """Send ``msg`` to ``$NOTIFY_SOCKET``; True when it was sent."""
    address = os.getenv("NOTIFY_SOCKET")
    if unset_env:
        os.environ.pop("NOTIFY_SOCKET", None)
    if not address:
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(_abstractify(address))
        sock.sendall(msg)
    except OSError as exc:
        LOG.warning("Could not notify systemd at %(addr)r: %(err)s",
                    {"addr": address, "err": exc})
        return False
    finally:
        sock.close()
    return True


def notify() -> bool:
    """Tell systemd the service is ready (``READY=1``); True when it was sent."""
    return _sd_notify(False, b"READY=1")


def notify_once() -> bool:
    """:func:`notify`, then unset ``$NOTIFY_SOCKET`` so child processes do not repeat it."""
    return _sd_notify(True, b"READY=1")


def onready(notify_socket: str, timeout: float) -> int:
    """Wait up to ``timeout`` seconds for a readiness notification on ``notify_socket``.

    :returns: 0 when the service said it is ready, 1 when it sent something
        else, 2 on timeout.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    sock.bind(_abstractify(notify_socket))
    try:
        msg = sock.recv(512)
    except TimeoutError:
        return 2
    finally:
        sock.close()
    return 0 if b"READY=1" in (msg if isinstance(msg, bytes) else str(msg).encode()) else 1
