"""Backend selection and the primitives each backend provides.

Selection is per process, so the environment-variable and import checks run
real child ``python -c`` processes.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tickwork import backend as backend_mod
from tickwork import loopingcall
from tickwork.backend import BackendType, exceptions

HERE = os.path.abspath(__file__)


@pytest.fixture
def fresh(monkeypatch):
    """Nothing selected yet, and no TICKWORK_BACKEND in the environment."""
    monkeypatch.delenv(backend_mod.ENV_VAR, raising=False)
    backend_mod._reset_backend()
    yield
    backend_mod._reset_backend()


def other(type_):
    return BackendType.THREADING if type_ is BackendType.EVENTLET else BackendType.EVENTLET


def line_of(marker):
    with open(HERE) as f:
        for number, line in enumerate(f, 1):
            if marker in line and "line_of(" not in line:
                return number
    raise AssertionError(marker)


# --- selection in this process --------------------------------------------------------------


def test_backend_type_names_and_default():
    assert BackendType("eventlet") is BackendType.EVENTLET
    assert BackendType("threading") is BackendType.THREADING
    assert {t.value for t in BackendType} == {"eventlet", "threading"}
    assert backend_mod.DEFAULT_BACKEND_TYPE is BackendType.EVENTLET
    assert backend_mod.ENV_VAR == "TICKWORK_BACKEND"
    assert backend_mod.BackendAlreadySelected is exceptions.BackendAlreadySelected


def test_get_backend_type_reports_the_selection(backend):
    assert backend_mod.get_backend_type() is backend
    assert backend_mod.get_backend().type is backend


@pytest.mark.parametrize("chosen", [BackendType.THREADING, BackendType.EVENTLET,
                                    "threading", " Eventlet "])
def test_init_backend_selects(fresh, chosen):
    assert backend_mod.get_backend_type() is None
    backend_mod.init_backend(chosen)
    expected = chosen if isinstance(chosen, BackendType) else BackendType(chosen.strip().lower())
    assert backend_mod.get_backend_type() is expected
    assert backend_mod.get_backend().type is expected
    # Selecting the same backend again is a no-op.
    backend_mod.init_backend(expected)
    assert backend_mod.get_backend_type() is expected


def test_selecting_another_backend_names_what_was_selected_and_where(fresh):
    backend_mod.init_backend(BackendType.THREADING)  # selected-here
    with pytest.raises(exceptions.BackendAlreadySelected) as info:
        backend_mod.init_backend(BackendType.EVENTLET)
    message = str(info.value)
    assert "eventlet" in message and "threading" in message
    assert f"{HERE}:{line_of('# selected-here')}" in message
    assert backend_mod.get_backend_type() is BackendType.THREADING


def test_first_use_selects_the_default_and_says_so(fresh, backend):
    timer = loopingcall.FixedIntervalLoopingCall(lambda: None)  # first-use-here
    assert backend_mod.get_backend_type() is BackendType.EVENTLET
    assert timer._backend is backend_mod.get_backend()
    with pytest.raises(exceptions.BackendAlreadySelected) as info:
        backend_mod.init_backend(BackendType.THREADING)
    message = str(info.value)
    assert f"{HERE}:{line_of('# first-use-here')}" in message
    assert "first use, default" in message


def test_environment_variable_decides_the_first_use(fresh, monkeypatch, backend):
    wanted = other(backend)
    monkeypatch.setenv(backend_mod.ENV_VAR, wanted.value.upper())
    assert backend_mod.get_backend().type is wanted
    with pytest.raises(exceptions.BackendAlreadySelected, match="TICKWORK_BACKEND="):
        backend_mod.init_backend(other(wanted))


def test_explicit_init_backend_wins_over_the_environment(fresh, monkeypatch):
    monkeypatch.setenv(backend_mod.ENV_VAR, "eventlet")
    backend_mod.init_backend("threading")
    assert backend_mod.get_backend().type is BackendType.THREADING


def test_unknown_backend_names_are_rejected(fresh, monkeypatch):
    with pytest.raises(exceptions.UnsupportedBackendError, match="'asyncio'.*eventlet"):
        backend_mod.init_backend("asyncio")
    # oslo.service raises ValueError for an unknown backend.
    with pytest.raises(ValueError):
        backend_mod.init_backend("gevent")
    monkeypatch.setenv(backend_mod.ENV_VAR, "trio")
    with pytest.raises(exceptions.UnsupportedBackendError, match="TICKWORK_BACKEND.*'trio'"):
        backend_mod.get_backend()
    assert backend_mod.get_backend_type() is None


def test_default_hook_decides_the_first_use(fresh, backend):
    wanted = other(backend)
    calls = []

    def hook():
        calls.append(1)
        return wanted

    backend_mod.register_backend_default_hook(hook)
    assert backend_mod.get_backend_type() is None  # the hook runs only on first use
    assert backend_mod.get_backend().type is wanted
    assert backend_mod.get_backend().type is wanted
    assert calls == [1]
    with pytest.raises(exceptions.BackendAlreadySelected, match="default hook"):
        backend_mod.init_backend(backend)


def test_environment_wins_over_the_default_hook(fresh, monkeypatch):
    backend_mod.register_backend_default_hook(lambda: BackendType.EVENTLET)
    monkeypatch.setenv(backend_mod.ENV_VAR, "threading")
    assert backend_mod.get_backend().type is BackendType.THREADING


def test_a_failing_hook_falls_back_to_the_default(fresh, caplog):
    def hook():
        raise RuntimeError("config not loaded")

    backend_mod.register_backend_default_hook(hook)
    assert backend_mod.get_backend().type is backend_mod.DEFAULT_BACKEND_TYPE
    assert any("hook raised" in r.getMessage() for r in caplog.records)
    with pytest.raises(TypeError):
        backend_mod.register_backend_default_hook("threading")


def test_get_component_gives_the_oslo_names(backend):
    assert backend_mod.get_component("FixedIntervalLoopingCall") is \
        loopingcall.FixedIntervalLoopingCall
    assert backend_mod.get_component("RetryDecorator") is loopingcall.RetryDecorator
    with pytest.raises(KeyError, match="NoSuchThing"):
        backend_mod.get_component("NoSuchThing")


def test_get_component_selects_on_first_use(fresh):
    assert backend_mod.get_component("LoopingCallDone") is loopingcall.LoopingCallDone
    assert backend_mod.get_backend_type() is BackendType.EVENTLET


# --- selection in real child processes ------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, sys
    from tickwork import backend, loopingcall
    {before}
    calls = []

    def f(*args, **kw):
        calls.append((args, kw))
        if len(calls) == 3:
            raise loopingcall.LoopingCallDone("done")

    result = loopingcall.FixedIntervalLoopingCall(f, 1, k=2).start(0.001).wait()
    {after}
    print(json.dumps({{
        "result": result,
        "calls": len(calls),
        "backend": backend.get_backend_type().value,
        "eventlet_imported": "eventlet" in sys.modules,
    }}))
""")


def run_child(env_value=None, before="", after=""):
    env = dict(os.environ)
    env.pop(backend_mod.ENV_VAR, None)
    env.pop("TICKWORK_TEST_MONKEYPATCH", None)
    if env_value is not None:
        env[backend_mod.ENV_VAR] = env_value
    code = CHILD.format(before=before, after=after)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    return proc


def child_report(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def once(backend):
    """Child-process tests select per process: run them under one parametrisation only."""
    from tests.conftest import BACKENDS

    if backend.value != BACKENDS[0]:
        pytest.skip("process-level check; runs once")


def test_child_threading_from_the_environment_never_imports_eventlet(once):
    # Everything a threading service uses, imported and exercised.
    after = textwrap.dedent("""
        import importlib
        for name in ("tickwork.threadgroup", "tickwork.periodic_task", "tickwork.service",
                     "tickwork.fixture", "tickwork.backend._threading.loopingcall",
                     "tickwork.backend._eventlet.loopingcall"):
            try:
                importlib.import_module(name)
            except ImportError as e:
                if e.name != name:
                    raise
    """)
    report = child_report(run_child("threading", after=after))
    assert report == {"result": "done", "calls": 3, "backend": "threading",
                      "eventlet_imported": False}


def test_child_explicit_threading_never_imports_eventlet(once):
    report = child_report(run_child(before="backend.init_backend(backend.BackendType.THREADING)"))
    assert report["backend"] == "threading"
    assert report["eventlet_imported"] is False


@pytest.mark.parametrize("env_value, expected", [("eventlet", "eventlet"), (None, "eventlet")])
def test_child_eventlet_selection(once, env_value, expected):
    report = child_report(run_child(env_value))
    assert report == {"result": "done", "calls": 3, "backend": expected,
                      "eventlet_imported": True}


def test_child_unknown_environment_value_fails_clearly(once):
    proc = run_child("fibers")
    assert proc.returncode != 0
    assert "UnsupportedBackendError" in proc.stderr
    assert "TICKWORK_BACKEND" in proc.stderr and "'fibers'" in proc.stderr


# --- the primitives of each backend ---------------------------------------------------------


def test_event_set_wait_clear(backend):
    b = backend_mod.get_backend()
    ev = b.event()
    assert not ev.is_set()
    began = time.monotonic()
    assert ev.wait(0.02) is False
    assert time.monotonic() - began >= 0.019
    ev.set()
    assert ev.is_set() and ev.wait(0) is True and ev.wait() is True
    ev.clear()
    assert not ev.is_set()


def test_event_set_from_another_thread_wakes_the_waiter(backend):
    b = backend_mod.get_backend()
    ev = b.event()
    b.spawn(lambda: (b.sleep(0.01), ev.set()))
    began = time.monotonic()
    assert ev.wait(10) is True
    assert time.monotonic() - began < 5


def test_spawn_returns_a_handle_with_the_result(backend):
    b = backend_mod.get_backend()
    linked = []
    handle = b.spawn(lambda x, y=0: x + y, 2, y=3, name="adder")
    handle.link(lambda h, tag: linked.append((h, tag)), "tag")
    assert handle.wait(10) == 5
    assert handle.dead() and not handle.is_alive()
    assert handle.name == "adder"
    b.sleep(0)
    assert linked == [(handle, "tag")]
    # Linking to a finished thread calls at once.
    handle.link(lambda h: linked.append("late"))
    assert linked[-1] == "late"


def test_spawned_errors_are_reraised_by_wait(backend):
    b = backend_mod.get_backend()

    def boom():
        raise KeyError("in thread")

    handle = b.spawn(boom)
    with pytest.raises(KeyError, match="in thread"):
        handle.wait(10)


def test_threads_run_concurrently_and_have_their_own_ident(backend):
    b = backend_mod.get_backend()
    idents = []
    gate = b.event()

    def worker():
        idents.append(b.current_ident())
        gate.wait(10)
        return True

    handles = [b.spawn(worker) for _ in range(3)]
    b.sleep(0.01)
    assert len(idents) == 3  # all three are waiting at once
    gate.set()
    assert all(h.wait(10) for h in handles)
    assert len({id(i) if backend is BackendType.EVENTLET else i for i in idents}) == 3
    assert b.current_ident() not in idents


def test_lock_excludes(backend):
    b = backend_mod.get_backend()
    lock = b.lock()
    inside = []

    def worker(n):
        for _ in range(5):
            with lock:
                inside.append(n)
                b.sleep(0.001)
                assert inside[-1] == n
                inside.append(-n)

    handles = [b.spawn(worker, n) for n in (1, 2)]
    for h in handles:
        h.wait(10)
    pairs = list(zip(inside[::2], inside[1::2], strict=True))
    assert all(b == -a for a, b in pairs)


def test_native_sleep_and_clock_sleep(backend):
    b = backend_mod.get_backend()
    began = time.monotonic()
    b.native_sleep(0.02)
    b.sleep(0.02)
    assert time.monotonic() - began >= 0.039


def test_kill(backend):
    b = backend_mod.get_backend()
    gate = b.event()
    handle = b.spawn(gate.wait, 30)
    b.sleep(0)
    killed = b.kill(handle)
    if backend is BackendType.EVENTLET:
        assert killed is True
        assert handle.dead()
    else:
        assert killed is False  # native threads cannot be killed
        gate.set()
        assert handle.wait(10) is True


def test_eventlet_kill_before_the_thread_ever_ran(backend):
    if backend is not BackendType.EVENTLET:
        pytest.skip("eventlet only")
    import eventlet

    b = backend_mod.get_backend()
    ran = []
    handle = b.spawn(ran.append, 1)
    assert b.kill(handle) is True
    with pytest.raises(eventlet.greenlet.GreenletExit):
        handle.wait(1)
    b.sleep(0.01)
    assert ran == []


def test_threading_backend_threads_are_daemons_with_names(backend):
    if backend is not BackendType.THREADING:
        pytest.skip("threading only")
    b = backend_mod.get_backend()
    seen = []
    handle = b.spawn(lambda: seen.append(threading.current_thread()), name="tw-test")
    handle.wait(10)
    assert seen[0].daemon and seen[0].name == "tw-test"
    assert handle.ident == seen[0].ident
