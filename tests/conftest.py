"""Every test runs on each backend under test.

TICKWORK_TEST_BACKENDS (comma-separated, default "eventlet,threading") picks
the backends; TICKWORK_TEST_MONKEYPATCH=1 monkey-patches the process with
eventlet first and then tests the eventlet backend only.
"""

import os

MONKEYPATCHED = os.environ.get("TICKWORK_TEST_MONKEYPATCH") == "1"
if MONKEYPATCHED:
    import eventlet

    eventlet.monkey_patch()

import pytest  # noqa: E402

from tickwork import backend as _backend  # noqa: E402
from tickwork import clock as _clock  # noqa: E402

_default = "eventlet" if MONKEYPATCHED else "eventlet,threading"
BACKENDS = [b for b in os.environ.get("TICKWORK_TEST_BACKENDS", _default).split(",") if b]


@pytest.fixture(params=BACKENDS, autouse=True)
def backend(request):
    """The backend this test runs on (a fresh selection per test)."""
    _backend._reset_backend()
    _backend.init_backend(request.param)
    yield _backend.get_backend_type()
    _clock.set_clock(None)
    _backend._reset_backend()
