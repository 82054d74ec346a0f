"""``tickwork schedule`` on the fake clock (runs in-process on each backend)."""

import os
import subprocess
import sys

import pytest

from tickwork import schedule


def test_demo_manager_table(capsys):
    assert schedule.main(["tickwork.demo:DemoManager", "--hours", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "0.5 virtual hours, dynamic pattern" in out
    header = out.splitlines()[1].split()
    assert header[:3] == ["task", "spacing", "runs"]
    assert "heartbeat" in out


def test_simulate_figures_match_the_spacing():
    from oslo_config import cfg

    from tickwork import periodic_task

    class Manager(periodic_task.PeriodicTasks):
        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def fast(self, context):
            pass

        @periodic_task.periodic_task(spacing=15)
        def failing(self, context):
            raise RuntimeError("boom")

    conf = cfg.ConfigOpts()
    report = schedule.simulate(lambda: Manager(conf), hours=1, conf=conf)
    assert report["fast"]["runs"] == 361
    assert report["fast"]["mean_period"] == report["fast"]["max_period"] == 10
    assert report["fast"]["max_lateness"] == 0
    assert report["failing"]["runs"] == report["failing"]["failures"] == 240
    assert report["failing"]["starts"][0] == 15


@pytest.mark.parametrize("target, message", [
    ("no.such.module:Manager", "cannot import"),
    ("tickwork.demo:NoSuchClass", "no attribute"),
    ("tickwork.demo:DemoService", "not a subclass"),
    ("tickwork.demo", "package.module:ManagerClass"),
])
def test_bad_target_exits_2_with_a_clear_error(capsys, target, message):
    assert schedule.main([target]) == 2
    assert message in capsys.readouterr().err


def test_constructor_needing_arguments_exits_2(capsys, monkeypatch):
    import types

    from tickwork import periodic_task

    class Needy(periodic_task.PeriodicTasks):
        def __init__(self, conf, host, port):
            super().__init__(conf)

    module = types.ModuleType("needy_mod")
    module.Needy = Needy
    monkeypatch.setitem(__import__("sys").modules, "needy_mod", module)
    assert schedule.main(["needy_mod:Needy"]) == 2
    assert "constructor needs arguments" in capsys.readouterr().err


def test_periodic_interval_flag_sets_the_fixed_timer(capsys):
    assert schedule.main(["tickwork.demo:DemoManager", "--hours", "0.1", "--pattern", "fixed",
                          "--periodic-interval", "4"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[3:]}
    # spacing 1 s under a 4 s timer: a run every pass, 4 s apart
    assert rows["heartbeat"][3:5] == ["4.0", "4.0"]


def test_bad_periodic_interval_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        schedule.main(["tickwork.demo:DemoManager", "--periodic-interval", "0"])
    assert exit_.value.code == 2
    assert "--periodic-interval must be positive" in capsys.readouterr().err


def test_command_runs_without_eventlet_by_default():
    code = ("import sys; from tickwork import schedule; "
            "rc = schedule.main(['tickwork.demo:DemoManager', '--hours', '0.01']); "
            "assert 'eventlet' not in sys.modules, 'eventlet imported'; sys.exit(rc)")
    env = {k: v for k, v in os.environ.items() if k != "TICKWORK_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "heartbeat" in done.stdout and done.stderr == ""
