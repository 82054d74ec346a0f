"""The ``tickwork`` command and the README, as a user meets them: real processes."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

import tickwork
from tests._util import COMMAND_BOUND, demo_summaries
from tickwork import __main__ as cli
from tickwork import demo

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _env(backend, **extra):
    """The environment of a child that imports this tree's tickwork on ``backend``."""
    src = str(pathlib.Path(tickwork.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(PYTHONPATH=path, TICKWORK_BACKEND=backend.value, **extra)
    return env


def _run(backend, *args, timeout=COMMAND_BOUND, **env):
    return subprocess.run(list(args), env=_env(backend, **env), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _tickwork_script():
    script = pathlib.Path(sys.executable).with_name("tickwork")
    if not script.exists():
        pytest.skip("the tickwork console script is not installed next to this python")
    return str(script)


# --- the top-level command -------------------------------------------------------------

def test_version_from_python_m(backend):
    done = _run(backend, sys.executable, "-m", "tickwork", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"tickwork {tickwork.__version__}\n"
    assert done.stderr == ""


def test_help_lists_every_command_with_examples(backend):
    done = _run(backend, _tickwork_script(), "--help")
    assert done.returncode == 0, done.stderr
    for name in ("demo", "schedule", "migrate", "help"):
        assert re.search(rf"^\s+{name}\s+\S", done.stdout, re.M), done.stdout
    assert "examples:\n  tickwork demo --run-for 10\n" in done.stdout
    assert "``" not in done.stdout and ":class:" not in done.stdout


def test_help_command_is_the_commands_own_help(backend):
    script = _tickwork_script()
    via_help = _run(backend, script, "help", "schedule")
    direct = _run(backend, script, "schedule", "--help")
    assert via_help.returncode == direct.returncode == 0, via_help.stderr
    assert via_help.stdout == direct.stdout
    out = via_help.stdout
    assert out.startswith("usage: tickwork schedule ")
    # every option has its help, examples keep their lines, no reST markup
    for flag in ("--pattern", "--periodic-interval", "--window", "--report", "--plot"):
        assert re.search(rf"^\s+{flag}\b.*\n(\s{{10,}}\S.*\n)*", out, re.M), flag
    assert re.search(r"--pattern \{dynamic,fixed\}\s+how the service runs", out), out
    assert "\nexamples:\n  tickwork schedule tickwork.demo:DemoManager --hours 1\n" in out
    assert "``" not in out and ":class:" not in out and ":func:" not in out


def test_demo_help_keeps_its_examples(backend):
    done = _run(backend, sys.executable, "-m", "tickwork", "help", "demo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("usage: tickwork demo ")
    assert "--run-for RUN_FOR" in out and "--periodic-pattern" in out
    assert "\nexamples:\n  tickwork demo                      # one process, until Ctrl-C\n" in out
    assert "``" not in out
    assert "Eventlet is deprecated" not in done.stderr


def test_bad_command_and_no_command_are_usage_errors(backend, capsys):
    assert cli.main(["nonsense"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nonsense'" in err
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
    assert cli.main(["help"]) == 0
    assert "examples:" in capsys.readouterr().out
    assert cli.main(["help", "nonsense"]) == 2


def test_arguments_after_the_command_reach_it_unparsed(backend, monkeypatch):
    seen = []
    monkeypatch.setattr(demo, "main", lambda argv, prog: seen.append((argv, prog)) or 3)
    # options the top level does not know, "--", and a --version meant for the command
    assert cli.main(["demo", "--run-for", "1", "--", "--version"]) == 3
    assert seen == [(["--run-for", "1", "--", "--version"], "tickwork demo")]


def test_migrate_dispatches_lazily_or_says_it_is_missing(backend, capsys, monkeypatch):
    import types

    calls = []
    module = types.ModuleType("tickwork.migrate")
    module.main = lambda argv, prog: calls.append((argv, prog)) or 0
    monkeypatch.setitem(sys.modules, "tickwork.migrate", module)
    assert cli.main(["migrate", "--dry-run", "src/"]) == 0
    assert calls == [(["--dry-run", "src/"], "tickwork migrate")]
    # A missing module is a clear usage error.
    monkeypatch.setitem(cli.COMMANDS, "migrate",
                        cli.COMMANDS["migrate"]._replace(module="tickwork._no_such_module"))
    assert cli.main(["migrate", "x"]) == 2
    assert "'migrate' command is not available" in capsys.readouterr().err


def test_schedule_usage_errors_exit_2(backend, capsys):
    assert cli.main(["schedule", "tickwork.demo:DemoManager", "--periodic-interval", "0"]) == 2
    assert "must be a positive number of seconds" in capsys.readouterr().err
    assert cli.main(["schedule", "no.such.module:Manager"]) == 2
    assert "cannot import" in capsys.readouterr().err


# --- the demo --------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["-m", "tickwork.demo"], ["-m", "tickwork", "demo"]],
                         ids=["python -m tickwork.demo", "python -m tickwork demo"])
def test_demo_run_for_3_as_the_readme_says(backend, command):
    done = _run(backend, sys.executable, *command, "--run-for", "3")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    # It opens with what it runs, not with a third-party banner.
    first = out.lstrip().splitlines()[0]
    assert "tickwork demo: 1 worker(s), dynamic pattern" in first, out
    assert f"{backend.value} backend" in first
    assert "INFO tickwork.demo " in first  # the module's logger, however it was started
    assert "Eventlet is deprecated" not in out
    rows = demo_summaries(out)[0]
    assert set(rows) == {"heartbeat", "flaky", "collect", "slow"}
    assert 3 <= rows["heartbeat"].runs <= 5  # runs at 0, 1, 2, 3 s
    assert rows["flaky"].failures >= 1  # its first run fails


def test_demo_refuses_a_fractional_periodic_interval(backend):
    # periodic_interval is an integer option (as in oslo.service): refused, not truncated.
    done = _run(backend, sys.executable, "-m", "tickwork", "demo", "--periodic-interval", "2.5")
    assert done.returncode == 1  # oslo.config's status for a bad value
    assert "periodic_interval: Invalid Integer(min=1) value: 2.5" in done.stderr
    assert "tickwork demo summary" not in done.stdout


# --- the README ------------------------------------------------------------------------

def _readme_example():
    text = README.read_text()
    section = text[text.index("## Example\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_ends_and_prints_the_statistics(backend, tmp_path):
    example = tmp_path / "example.py"
    example.write_text(_readme_example())
    done = _run(backend, sys.executable, str(example), timeout=COMMAND_BOUND)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines.count("cleaning up") == 2
    assert lines.count("reporting state") >= 3
    stats = dict(re.findall(r"^(\w+): (\d+ runs, 0 failed, mean period [\d.]+ s)$",
                            done.stdout, re.M))
    assert set(stats) == {"report_state", "cleanup"}, done.stdout
    assert stats["cleanup"] == "2 runs, 0 failed, mean period 2.0 s"


def test_readme_commands_name_real_options(backend):
    """The commands the README shows parse (checked with --help's option list)."""
    text = README.read_text()
    assert ".venv/bin/tickwork demo --run-for 20" in text
    schedule_help = _run(backend, sys.executable, "-m", "tickwork", "schedule", "--help").stdout
    for line in re.findall(r"^\.venv/bin/tickwork schedule (.*)$", text, re.M):
        for flag in re.findall(r"--[\w-]+", line):
            assert flag in schedule_help, flag


# --- the package ------------------------------------------------------------------------

def test_the_version_is_written_once(backend):
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "tickwork.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", tickwork.__version__)
    assert pyproject["project"]["license"] == "Apache-2.0"
    license_text = (ROOT / "LICENSE").read_text()
    assert re.match(r"\s*Apache License\s+Version 2\.0, January 2004\s", license_text)
