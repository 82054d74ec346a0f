"""Claims: in the backend, each period of a coordinated task is claimed once.

A claim is a compare-and-set of the task's last claimed period: one Lua call
on redis (:class:`_RedisGuard`), a record file under the tooz file lock on
``file://`` (:class:`_FileGuard`), a tooz lock per task and period elsewhere
(:class:`_LockGuard`).  :func:`_make_guard` picks the one a driver allows.
Used by :mod:`tickwork._coordinator`; see :mod:`tickwork.coordination`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.parse
from typing import Any

from oslo_log import log as logging

from tickwork import clock as _clock

LOG = logging.getLogger("tickwork.coordination")


class _Guard:
    """Claims periods of tasks in the backend."""

    def claim(self, key: str, period: int, keep: float) -> tuple[bool, int | None]:
        """Claim ``period`` of ``key``: (won, the previously claimed period or None)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the guard holds."""


_CLAIM_LUA = """
local last = redis.call('GET', KEYS[1])
if last and tonumber(last) >= tonumber(ARGV[1]) then
  return {0, last}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if last then
  return {1, last}
end
return {1}
"""


class _RedisGuard(_Guard):
    """Compare-and-set of the last claimed period, in one Lua call."""

    def __init__(self, client: Any) -> None:
        self._script = client.register_script(_CLAIM_LUA)

    def claim(self, key: str, period: int, keep: float) -> tuple[bool, int | None]:
        reply = self._script(keys=[f"tickwork.period.{key}"],
                             args=[str(period), str(int(keep * 1000))])
        previous = int(reply[1]) if len(reply) > 1 else None
        return bool(reply[0]), previous


class _FileGuard(_Guard):
    """A record file per task, read and replaced under the driver's file lock."""

    def __init__(self, driver: Any, directory: str, timeout: float) -> None:
        self._driver = driver
        self._dir = directory
        self._timeout = timeout

    def claim(self, key: str, period: int, keep: float) -> tuple[bool, int | None]:
        digest = hashlib.sha1(key.encode()).hexdigest()
        lock = self._driver.get_lock(f"tickwork-{digest}.lock".encode())
        if not lock.acquire(blocking=True, timeout=self._timeout):
            raise TimeoutError(f"file lock for {key} not acquired in {self._timeout:g} s")
        try:
            path = os.path.join(self._dir, f"tickwork-{digest}.period")
            previous = None
            try:
                with open(path, encoding="ascii") as record:
                    recorded, written = record.read().split()
                if float(written) + keep >= _clock.wall():
                    previous = int(recorded)
            except (FileNotFoundError, ValueError):
                pass
            if previous is not None and previous >= period:
                return False, previous
            temporary = f"{path}.{os.getpid()}.{threading.get_ident()}"
            with open(temporary, "w", encoding="ascii") as record:
                record.write(f"{period} {_clock.wall()!r}\n")
            os.replace(temporary, path)
            return True, previous
        finally:
            lock.release()


class _LockGuard(_Guard):
    """A tooz lock per task and period, held until the task's next claim.

    For backends without a record tickwork can compare-and-set: the periods a
    failover loses are not counted.
    """

    def __init__(self, driver: Any) -> None:
        self._driver = driver
        self._held: dict[str, Any] = {}

    def claim(self, key: str, period: int, keep: float) -> tuple[bool, int | None]:
        lock = self._driver.get_lock(f"tickwork.{key}.{period}".encode())
        if not lock.acquire(blocking=False):
            return False, None
        held = self._held.pop(key, None)
        self._held[key] = lock
        if held is not None:
            _release_quietly(held)
        return True, None

    def close(self) -> None:
        for lock in self._held.values():
            _release_quietly(lock)
        self._held.clear()


def _release_quietly(lock: Any) -> None:
    try:
        lock.release()
    except Exception:
        LOG.debug("Releasing a coordination lock failed", exc_info=True)


def _make_guard(driver: Any, url: str, timeout: float) -> _Guard:
    kind = type(driver).__name__
    client = getattr(driver, "_client", None)
    if kind == "RedisDriver" and client is not None and hasattr(client, "register_script"):
        return _RedisGuard(client)
    if kind == "FileDriver":
        return _FileGuard(driver, urllib.parse.urlsplit(url).path, timeout)
    return _LockGuard(driver)
