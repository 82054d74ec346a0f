"""Signals: the process's handlers, the one stop policy every launcher follows,
and the timer that bounds a shutdown.

Signal handlers only record what arrived (:class:`SignalHandler`); the
launcher's loop sleeps on a pipe that the interpreter itself writes to when a
signal arrives (:func:`signal.set_wakeup_fd`), and then acts.  :class:`StopPolicy` is
what every launcher (the in-process one, a ProcessLauncher's parent and its
workers) does with a signal; :class:`ShutdownTimer` ends a shutdown that
outlasts ``graceful_shutdown_timeout``.
"""

from __future__ import annotations

import collections
import os
import posix  # the unpatched read/write: eventlet's green ones may block
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from oslo_log import log as logging

from tickwork.backend import get_backend

LOG = logging.getLogger("tickwork.service")

class SignalExit(SystemExit):
    """Raised to end a wait because of a signal."""

    def __init__(self, signo: int, exccode: int = 1) -> None:
        super().__init__(exccode)
        self.signo = signo


def _signal_name(signo: int) -> str:
    try:
        return signal.Signals(signo).name
    except ValueError:
        return str(signo)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


#: The signals that stop (or reload) a launcher's services.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def block_stop_signals() -> Iterable[int]:
    """Hold back :data:`STOP_SIGNALS` in this thread; the mask to restore.

    Around forking a worker: the child inherits the mask and lets the signals
    through once its own handlers are in, so a signal sent while it starts is
    acted on, not fatal.  (A spawned worker's fresh interpreter starts with
    none held back; it holds them back itself as soon as it runs tickwork.)
    """
    return signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def unblock_stop_signals() -> None:
    """Let :data:`STOP_SIGNALS` through in this thread (the held ones arrive now)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _in_main_thread() -> bool:
    """Whether signal handlers can be installed here (the real main thread)."""
    current = signal.getsignal(signal.SIGCHLD)
    if current is None:  # installed outside Python: do not touch it
        return threading.current_thread() is threading.main_thread()
    try:
        signal.signal(signal.SIGCHLD, current)
    except ValueError:
        return False
    return True


class Singleton(type):
    """Metaclass: one instance per class (``oslo_service.service.Singleton``)."""

    _instances: dict[type, Any] = {}

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls not in cls._instances:
            cls._instances[cls] = super().__call__(*args, **kwargs)
        return cls._instances[cls]


_Singleton = Singleton


#: The wake-up fd a SignalHandler set last (-1: none), so that a new handler
#: (tests reset the singleton) takes it over rather than keeping it as foreign.
_installed_wakeup_fd = [-1]


class SignalHandler(metaclass=Singleton):
    """The process's signal handlers, and the wake-up pipe the main loop sleeps on.

    Handlers run as Python signal handlers do (in the main thread, between two
    bytecodes), so they should only record what happened.  Every signal also
    wakes :meth:`wait`: the pipe is the interpreter's wake-up fd
    (:func:`signal.set_wakeup_fd`), written as the signal arrives, unless
    another wake-up fd was set first (asyncio's, say), which is left alone.
    The handler writes to the pipe as well (the wake-up fd may have been
    replaced since), and :meth:`wake` from other threads.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.signals_to_name = {
            sig.value: sig.name for sig in signal.Signals if sig.name.startswith("SIG")
            and not sig.name.startswith("SIG_")
        }
        self._signals_by_name = {name: value for value, name in self.signals_to_name.items()}
        self._signal_handlers: dict[int, list[Callable[..., Any]]] = (
            collections.defaultdict(list))
        self._previous: dict[int, Any] = {}
        self._pid = os.getpid()  # the process whose handlers these are
        # As in oslo.service: whether the unpatched select module has poll()
        # (then the eventlet hub may sleep in poll through a signal).  The
        # wake-up pipe below wakes the waiting loop either way; kept for code
        # that reads it.
        self.__force_interrupt_on_signal = hasattr(
            get_backend().original_module("select"), "poll")
        self._open_pipe()

    def _open_pipe(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        try:
            previous = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: only the handler writes the pipe
            return
        if previous not in (-1, _installed_wakeup_fd[0]):
            signal.set_wakeup_fd(previous)  # someone else's: keep it
            return
        _installed_wakeup_fd[0] = self._write_fd

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's handlers and pipe.

        Once per process: a no-op in the process that made them, or when it
        ran here already (so handlers installed since are kept).
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.clear()
        if _installed_wakeup_fd[0] == self._write_fd:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:
                pass
            _installed_wakeup_fd[0] = -1
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._open_pipe()

    def clear(self) -> None:
        """Remove the handlers added here; each signal gets back its earlier handler."""
        for signo in set(self._signal_handlers) | set(self._previous):
            previous = self._previous.pop(signo, signal.SIG_DFL)
            try:
                signal.signal(signo, signal.SIG_DFL if previous is None else previous)
            except (ValueError, OSError, TypeError):
                pass
        self._signal_handlers.clear()

    def replace(self, handlers: dict[str, Callable[..., Any]]) -> None:
        """Handle exactly ``handlers`` (signal name -> handler) from now on.

        Unlike :meth:`clear` then :meth:`add_handler`, a signal handled before
        and after keeps tickwork's handler installed throughout: no window in
        which it has its default action (SIGHUP's would end the process).
        """
        wanted: dict[int, Callable[..., Any]] = {}
        for name, handler in handlers.items():
            signo = self._resolve(name)
            if signo is not None:
                wanted[signo] = handler
        for signo, handler in wanted.items():
            if signo not in self._signal_handlers:
                try:
                    self._install(signo, self._handle_signal)
                except ValueError:
                    LOG.warning("Signal handlers can only be installed from the main thread; "
                                "%s is not handled", self.signals_to_name.get(signo, signo))
                    continue
            self._signal_handlers[signo] = [handler]
        for signo in [s for s in self._signal_handlers if s not in wanted]:
            del self._signal_handlers[signo]
            previous = self._previous.pop(signo, signal.SIG_DFL)
            try:
                signal.signal(signo, signal.SIG_DFL if previous is None else previous)
            except (ValueError, OSError, TypeError):
                pass

    def _install(self, signo: int, action: Any) -> None:
        previous = signal.signal(signo, action)
        self._previous.setdefault(signo, previous)

    def _resolve(self, sig: str | int) -> int | None:
        if isinstance(sig, int):
            return sig
        return self._signals_by_name.get(sig)

    def is_signal_supported(self, sig_name: str) -> bool:
        return sig_name in self._signals_by_name

    def add_handlers(self, signals: Iterable[str | int], handler: Callable[..., Any]) -> None:
        for sig in signals:
            self.add_handler(sig, handler)

    def add_handler(self, sig: str | int, handler: Callable[..., Any]) -> None:
        """Call ``handler(signo, frame)`` on ``sig`` (a name like "SIGTERM", or a number)."""
        signo = self._resolve(sig)
        if signo is None:
            return
        try:
            self._install(signo, self._handle_signal)
        except ValueError:
            LOG.warning("Signal handlers can only be installed from the main thread; "
                        "%s is not handled", sig)
            return
        self._signal_handlers[signo].append(handler)

    def ignore(self, sig: str | int) -> None:
        signo = self._resolve(sig)
        if signo is not None and _in_main_thread():
            self._signal_handlers.pop(signo, None)
            self._install(signo, signal.SIG_IGN)

    def _handle_signal(self, signo: int, frame: Any) -> None:
        # Also when the interpreter wrote the pipe already: code started later (an
        # asyncio loop's signal handling) may have replaced the wake-up fd since.
        self.wake()
        for handler in list(self._signal_handlers.get(signo, ())):
            handler(signo, frame)

    def wake(self) -> None:
        """Wake :meth:`wait` (safe from signal handlers and other threads)."""
        try:
            posix.write(self._write_fd, b"\0")
        except (BlockingIOError, OSError):
            pass

    def wait(self, timeout: float | None = None, fds: Iterable[int] = ()) -> set[int]:
        """Sleep until woken, one of ``fds`` is readable, or ``timeout`` passes.

        Returns the readable fds among ``fds``.  Works on the eventlet backend
        with or without monkey-patching (a green select) and on threads.
        """
        watched = [self._read_fd, *fds]
        try:
            readable = get_backend().wait_readable(watched, timeout)
        except InterruptedError:
            readable = []
        if self._read_fd in readable:
            try:  # drain it: every signal since the last wait wrote a byte
                while len(posix.read(self._read_fd, 4096)) == 4096:
                    pass
            except (BlockingIOError, OSError):
                pass
        return {fd for fd in readable if fd != self._read_fd}


class ShutdownTimer:
    """Ends the process when a shutdown outlasts ``graceful_shutdown_timeout``.

    SIGALRM (main thread) interrupts anything, even a task that never yields
    on eventlet; elsewhere a native thread watches the deadline.
    """

    def __init__(self, timeout: float, on_expire: Callable[[], None] | None = None) -> None:
        self.timeout = timeout
        self._on_expire = on_expire
        self._armed = False
        self._cancel: threading.Event | None = None

    def _expire(self, *args: Any) -> None:
        # A backstop in case logging itself blocks.
        try:
            signal.setitimer(signal.ITIMER_REAL, 2.0)
        except Exception:
            pass
        try:
            if self._on_expire is not None:
                self._on_expire()
            LOG.error("Graceful shutdown timeout (%(timeout)s s) exceeded: exiting now",
                      {"timeout": self.timeout})
        finally:
            _flush_std()
            os._exit(1)

    def arm(self) -> None:
        if not self.timeout or self._armed:
            return
        self._armed = True
        if _in_main_thread():
            signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
            return
        # A native thread even on a monkey-patched eventlet: it must fire while
        # a task that never yields holds the hub.
        real_threading = get_backend().original_module("threading")
        cancel = real_threading.Event()
        self._cancel = cancel

        def watch() -> None:
            if not cancel.wait(self.timeout):
                self._expire()

        real_threading.Thread(target=watch, name="tickwork-shutdown-timer", daemon=True).start()

    def disarm(self) -> None:
        if not self._armed:
            return
        self._armed = False
        if self._cancel is not None:
            self._cancel.set()
            self._cancel = None
        elif _in_main_thread():
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)


def fast_exit(why: str) -> None:
    """Exit this process at once (a second SIGINT, a shutdown that timed out)."""
    LOG.info("Caught %s, exiting immediately", why)
    _flush_std()
    os._exit(1)


class StopPolicy:
    """What a launcher does with a signal; the same for every launcher.

    * SIGTERM stops the services gracefully.
    * SIGINT does too; a second SIGINT exits at once (after ``on_fast_exit``).
    * SIGHUP restarts a daemon's services (the launcher asks
      ``_is_sighup_and_daemon``); it never replaces a pending stop signal.
    * Every signal but SIGHUP arms the shutdown timer at once, in the handler:
      a task that never yields (on eventlet) could keep the launcher's loop
      from ever running again.

    :param timeout: the shutdown bound in seconds (read when first armed).
    :param on_expire: called when the bound is exceeded, before exiting.
    :param on_fast_exit: called before exiting on a second SIGINT.
    """

    def __init__(self, timeout: Callable[[], float],
                 on_expire: Callable[[], None] | None = None,
                 on_fast_exit: Callable[[], None] | None = None) -> None:
        self._timeout = timeout
        self._on_expire = on_expire
        self._on_fast_exit = on_fast_exit
        self._timer: ShutdownTimer | None = None
        self._interrupts = 0
        #: The signal to act on (None: none yet).
        self.caught: int | None = None

    def timer(self) -> ShutdownTimer:
        """The shutdown timer (made on first use)."""
        if self._timer is None:
            self._timer = ShutdownTimer(self._timeout(), on_expire=self._on_expire)
        return self._timer

    def record(self, signo: int, frame: Any = None) -> None:
        """The signal handler: remember ``signo`` and arm what it calls for."""
        if signo == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                if self._on_fast_exit is not None:
                    self._on_fast_exit()
                fast_exit("second SIGINT")
        if signo != signal.SIGHUP:
            self.timer().arm()
        if self.caught is None or signo != signal.SIGHUP:
            self.caught = signo

    def take(self) -> int | None:
        """The caught signal, forgotten (so a restart waits for the next one)."""
        signo, self.caught = self.caught, None
        return signo

    def disarm(self) -> None:
        """The shutdown is over: cancel the timer."""
        if self._timer is not None:
            self._timer.disarm()
            self._timer = None
