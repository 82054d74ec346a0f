"""Watching a looping call's runs: the listeners' events and the hung-run watchdog.

A looping call runs its function through :func:`observed` only while someone
watches (a listener is added, or ``hung_after`` is set); otherwise the loop
calls the function itself.  With ``hung_after`` set, each run gets a watchdog
(a thread, or a greenthread on eventlet) that waits for the run to end and,
when it has not after ``hung_after`` seconds, logs a warning with the run's
stack, counts it in ``hung_runs`` and tells the listeners (``hung``).  A hung
run is never interrupted.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oslo_log import log as logging

from tickwork import clock as _clock
from tickwork import loopingcall as _lc  # circular: read at call time only

if TYPE_CHECKING:
    from tickwork.loopingcall import LoopingCallBase

#: Log under the looping calls' name: the lines are theirs.
LOG = logging.getLogger("tickwork.loopingcall")

__all__ = ["observed"]


def observed(loop: LoopingCallBase, f: Callable[..., Any], func_name: str) -> Callable[..., Any]:
    """``f``, telling ``loop``'s listeners about each call and watching it for hangs."""

    def run(*args: Any, **kw: Any) -> Any:
        notes = loop._listeners
        hung_after = loop._hung_after
        if not notes and hung_after is None:
            return f(*args, **kw)
        if notes:
            notes.emit("started", loop, func_name)
        watch = _clock.StopWatch().start()
        ended = None if hung_after is None else _watch(loop, hung_after, func_name)
        try:
            result = f(*args, **kw)
        except _lc.LoopingCallDone:
            notes.emit("finished", loop, func_name, duration=watch.elapsed())
            raise
        except BaseException as exc:
            notes.emit("failed", loop, func_name, duration=watch.elapsed(), exception=exc)
            raise
        finally:
            if ended is not None:
                ended.set()
        notes.emit("finished", loop, func_name, duration=watch.elapsed())
        return result

    return run


def _watch(loop: LoopingCallBase, hung_after: float, func_name: str) -> Any:
    """Start watching the run beginning now; set the returned event when it ends."""
    backend = loop._backend
    ended = backend.event()
    runner = backend.current_ident()
    backend.spawn(_report_if_hung, loop, ended, hung_after, func_name, runner,
                  name=f"tickwork-hung-watch-{func_name}")
    return ended


def _report_if_hung(loop: LoopingCallBase, ended: Any, hung_after: float, func_name: str,
                    runner: Any) -> None:
    if ended.wait(hung_after):
        return
    loop.hung_runs += 1
    frame = (sys._current_frames().get(runner) if isinstance(runner, int)
             else getattr(runner, "gr_frame", None))
    stack = "".join(traceback.format_stack(frame)) if frame is not None else None
    LOG.warning("%(kind)s %(func_name)r has been running for %(timeout)g s: it looks "
                "hung (it is not interrupted). Its stack:\n%(stack)s",
                {"kind": loop._KIND, "func_name": func_name, "timeout": hung_after,
                 "stack": stack or "(not available)"})
    loop._listeners.emit("hung", loop, func_name, duration=hung_after, stack=stack)
