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
    assert "--periodic-interval: must be a positive number of seconds" in capsys.readouterr().err


def test_fractional_periodic_interval_is_used_as_given(capsys):
    assert schedule.main(["tickwork.demo:DemoManager", "--hours", "0.1", "--pattern", "fixed",
                          "--periodic-interval", "2.5"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("fixed pattern, periodic_interval 2.5 s")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert rows["heartbeat"][3:5] == ["2.5", "2.5"]  # not 2 (an integer option would say 2)


def test_command_runs_without_eventlet_by_default():
    code = ("import sys; from tickwork import schedule; "
            "rc = schedule.main(['tickwork.demo:DemoManager', '--hours', '0.01']); "
            "assert 'eventlet' not in sys.modules, 'eventlet imported'; sys.exit(rc)")
    env = {k: v for k, v in os.environ.items() if k != "TICKWORK_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "heartbeat" in done.stdout and done.stderr == ""


# --- the plot ---------------------------------------------------------------------------

def _manager_class():
    from tickwork import periodic_task

    class Manager(periodic_task.PeriodicTasks):
        def __init__(self, conf=None):
            super().__init__(conf)
            self.calls = 0

        @periodic_task.periodic_task(spacing=10, run_immediately=True)
        def fast(self, context):
            pass

        @periodic_task.periodic_task(spacing=30)
        def flaky(self, context):
            self.calls += 1
            if self.calls % 2:
                raise RuntimeError("odd call")

    return Manager


def _fixed_report(interval=25, hours=1):
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    manager = _manager_class()
    return schedule.simulate(lambda: manager(conf), hours=hours, pattern="fixed", conf=conf,
                             periodic_interval=interval)


def _marks(fig, task, kind):
    """The (x, y) of the marks of one kind drawn for one task."""
    [line] = [line for ax in fig.axes for line in ax.get_lines()
              if line.get_gid() == f"{task}:{kind}"]
    return list(zip(line.get_xdata(), line.get_ydata(), strict=True))


def test_simulate_records_every_run():
    report = _fixed_report()
    fast, flaky = report["fast"], report["flaky"]
    # a pass every 25 s: fast (10 s) runs on every pass, skipping one or two slots
    assert fast["starts"][:4] == [0, 25, 50, 75]
    assert fast["skipped_before"][:4] == [0, 1, 2, 1]
    assert fast["skipped"] == sum(fast["skipped_before"])
    assert fast["lateness"][:4] == [0, 15, 20, 15]  # after its first missed slot
    assert flaky["starts"][:3] == [50, 75, 100]
    assert flaky["failed"][:4] == [True, False, True, False]
    assert flaky["failures"] == sum(flaky["failed"])


def test_plot_draws_each_run_with_failures_in_red_and_skipped_slots():
    pytest.importorskip("matplotlib")
    report = _fixed_report()
    fig = schedule.plot(report, title="T: fixed pattern, periodic_interval 25 s", hours=1,
                        window=300)
    fast_runs = _marks(fig, "fast", "runs")
    # one mark per run, at its start, as high as its period (the first: since the start)
    starts = report["fast"]["starts"]
    assert fast_runs == [(t, t - p) for p, t in zip([0.0, *starts], starts, strict=False)
                         if t <= 300]
    assert fast_runs[:3] == [(0, 0), (25, 25), (50, 25)]
    failed = _marks(fig, "flaky", "failed runs")
    succeeded = _marks(fig, "flaky", "runs")
    starts = report["flaky"]["starts"]
    assert [x for x, _ in failed] == [t for t, bad in zip(starts, report["flaky"]["failed"],
                                                          strict=True)
                                      if bad and t <= 300]
    assert failed[0] == (50, 50)  # its first run, 50 s after the start
    assert {x for x, _ in succeeded}.isdisjoint(x for x, _ in failed)
    [line] = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "flaky:failed runs"]
    assert line.get_color() == "tab:red"
    skipped = _marks(fig, "fast", "skipped")
    within = sum(n for t, n in zip(report["fast"]["starts"], report["fast"]["skipped_before"],
                                   strict=True) if t <= 300)
    assert len(skipped) == within and all(y == 10 for _, y in skipped)
    assert fig.axes[-1].get_xlim() == pytest.approx((-3, 303))
    assert fig.axes[-1].get_xlabel() == "virtual time (s)"
    assert fig.get_suptitle().startswith("T: fixed pattern, periodic_interval 25 s\n")


def test_plot_lateness_axis():
    pytest.importorskip("matplotlib")
    report = _fixed_report()
    fig = schedule.plot(report, title="t", hours=1, window=100, y="lateness")
    assert _marks(fig, "fast", "runs") == [(0, 0), (25, 15), (50, 20), (75, 15), (100, 20)]
    with pytest.raises(ValueError, match="period.*lateness"):
        schedule.plot(report, title="t", hours=1, y="duration")


def test_automatic_window_is_fifty_periods_of_the_slowest_task():
    pytest.importorskip("matplotlib")
    report = _fixed_report(hours=2)
    assert schedule.auto_window(report, hours=2) == 50 * 30
    fig = schedule.plot(report, title="t", hours=2)
    assert fig.axes[-1].get_xlabel() == "virtual time (min)"
    assert fig.axes[-1].get_xlim() == pytest.approx((-0.25, 25.25))  # 1500 s in minutes
    assert max(x for x, _ in _marks(fig, "fast", "runs")) <= 25
    # capped at the simulated time; a day is drawn in hours
    assert schedule.auto_window(report, hours=0.1) == 360
    day = _fixed_report(hours=24)
    assert schedule.plot(day, title="t", hours=24, window=86400).axes[-1].get_xlabel() == (
        "virtual time (h)")


def test_plot_and_report_from_the_command(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png, page = tmp_path / "demo.png", tmp_path / "demo.html"
    assert schedule.main(["tickwork.demo:DemoManager", "--hours", "0.1", "--window", "1m",
                          "--plot", str(png), "--report", str(page)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "<td>heartbeat</td>" in text and "<th>failures</th>" in text
    assert "tickwork.demo:DemoManager: dynamic pattern, periodic_interval_max 60 s" in text
    import base64
    import re

    [data] = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert base64.b64decode(data)[:4] == b"\x89PNG"
    assert "http" not in text.replace("data:image", "")  # nothing to fetch: one file
    assert "--window 1m" in text


@pytest.mark.parametrize("value, seconds", [("90", 90), ("90s", 90), ("2m", 120),
                                            ("2.5min", 150), ("1h", 3600)])
def test_window_durations(value, seconds):
    assert schedule._seconds(value) == seconds


def test_plot_without_matplotlib_exits_1(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert schedule.main(["tickwork.demo:DemoManager", "--hours", "0.01",
                          "--plot", str(tmp_path / "x.png")]) == 1
    assert "pip install 'tickwork[plot]'" in capsys.readouterr().err
