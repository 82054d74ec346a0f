"""``tickwork migrate``: rewriting real files from oslo.service to tickwork."""

import ast
import importlib.util
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import tokenize

import pytest

pytest.importorskip("libcst", reason="tickwork migrate needs libcst: pip install tickwork[migrate]")

import tickwork  # noqa: E402
from tickwork import migrate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OSLO_TEST_MODULES = ("test_loopingcall.py", "test_service.py", "test_periodic.py",
                     "test_threadgroup.py", "test_fixture.py", "base.py")


@pytest.fixture
def backend():
    """The migration tool uses no backend: run each test once, not once per backend."""
    return None


def rewrite(source):
    return migrate.rewrite_source(source, "example.py")


def run(capsys, *argv):
    """``tickwork migrate ARGV``: (exit status, stdout, stderr)."""
    status = migrate.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def oslo_dotted_strings(tree, provided_only=True):
    """The string constants that name something below ``oslo_service.<module>``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            parts = node.value.split(".")
            if (len(parts) > 1 and parts[0] == "oslo_service"
                    and all(p.isidentifier() for p in parts)
                    and (not provided_only or names_provided(node.value))):
                found.append(node.value)
    return found


def names_provided(dotted):
    """Whether ``dotted`` is ``oslo_service.<provided module>[...]``."""
    parts = dotted.split(".")
    return parts[0] == "oslo_service" and len(parts) > 1 and parts[1] in migrate.PROVIDED_MODULES


def comments(source):
    return [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT]


# -- oslo.service's own test modules


@pytest.fixture
def oslo_tests(tmp_path):
    """oslo.service's test modules, copied into a temporary directory."""
    spec = importlib.util.find_spec("oslo_service")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("oslo.service is not installed (pip install oslo.service==4.8.0): "
                    "its test modules are the real files these tests rewrite")
    source_dir = os.path.join(list(spec.submodule_search_locations)[0], "tests")
    target = tmp_path / "oslo_tests"
    target.mkdir()
    originals = {}
    for name in OSLO_TEST_MODULES:
        path = os.path.join(source_dir, name)
        if not os.path.exists(path):
            pytest.skip(f"this oslo.service has no tests/{name}")
        shutil.copy(path, target / name)
        originals[name] = (target / name).read_text()
    return target, originals


def test_oslo_test_modules_are_rewritten(capsys, oslo_tests):
    directory, originals = oslo_tests
    status, out, err = run(capsys, directory)
    assert status == 0, err
    assert out == ""
    for name, before in originals.items():
        after = (directory / name).read_text()
        compile(after, name, "exec")
        assert comments(after) == comments(before), name
        # Only references to oslo.service change, and only their package name.
        old_lines, new_lines = before.splitlines(), after.splitlines()
        assert len(old_lines) == len(new_lines), name
        for old, new in zip(old_lines, new_lines, strict=True):
            if old != new:
                assert new == old.replace("oslo_service", "tickwork"), (name, old, new)
        tree = ast.parse(after)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "oslo_service":
                assert not {a.name for a in node.names} & migrate.PROVIDED_MODULES, name
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert not names_provided(node.module), name
            elif isinstance(node, ast.Import):
                assert not any(names_provided(alias.name) for alias in node.names), name
        # Every string naming a provided module's object now names tickwork's; the
        # others are untouched.
        old_strings = oslo_dotted_strings(ast.parse(before), provided_only=False)
        provided = [s for s in old_strings if s.split(".")[1] in migrate.PROVIDED_MODULES]
        tickwork_strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                            and isinstance(n.value, str) and n.value.startswith("tickwork.")]
        assert tickwork_strings == ["tickwork" + s[len("oslo_service"):] for s in provided]
        assert oslo_dotted_strings(tree, provided_only=False) == [
            s for s in old_strings if s not in provided], name

    loopingcall = (directory / "test_loopingcall.py").read_text()
    assert "@mock.patch('tickwork.loopingcall.LoopingCallBase._sleep')" in loopingcall
    assert "from tickwork import loopingcall\n" in loopingcall
    periodic = (directory / "test_periodic.py").read_text()
    assert "mock.patch('tickwork.periodic_task.backend.get_backend_type'," in periodic
    assert "from oslo_service.tests import base\n" in periodic
    assert "from oslo_service import _multiprocessing\n" in periodic
    assert "from tickwork.backend.exceptions import UnsupportedBackendError\n" in periodic
    service = (directory / "test_service.py").read_text()
    assert service.count('mock.patch("oslo_service.eventlet_backdoor.initialize_if_enabled")') == 2
    assert '@mock.patch("tickwork.systemd.notify_once")' in service
    base = (directory / "base.py").read_text()
    assert base == originals["base.py"]  # only _options and sslutils: nothing to change
    assert "from oslo_service import _options\n" in base

    # What stays on oslo.service is listed, at its line.
    for name, line in enumerate(service.splitlines(), 1):
        if "oslo_service.eventlet_backdoor" in line:
            assert (f"test_service.py:{name}: left on oslo.service: eventlet_backdoor"
                    in err)
    assert re.search(r"base\.py:\d+: left on oslo\.service: _options", err)
    assert re.search(r"base\.py:\d+: left on oslo\.service: sslutils", err)
    assert re.search(r"test_periodic\.py:\d+: left on oslo\.service: tests", err)
    # And the behaviour warnings point at the docs.
    assert re.search(r"test_loopingcall\.py:\d+: warning: fixed-interval loops .*"
                     r"\"Fixed-interval loops do not drift\"", err)
    assert re.search(r"test_periodic\.py:\d+: warning: add_periodic_task ", err)

    # Running again changes nothing.
    rewritten = {name: (directory / name).read_text() for name in originals}
    status, out, err = run(capsys, "--check", directory)
    assert status == 0, err
    assert "would rewrite 0 of 6 file(s)" in err
    assert {name: (directory / name).read_text() for name in originals} == rewritten


# -- every spelling


SPELLINGS = [
    ("from oslo_service import loopingcall\n", "from tickwork import loopingcall\n"),
    ("from oslo_service import loopingcall as lc, service\n",
     "from tickwork import loopingcall as lc, service\n"),
    ("import oslo_service.loopingcall\n"
     "x = oslo_service.loopingcall.FixedIntervalLoopingCall(f)\n",
     "import tickwork.loopingcall\n"
     "x = tickwork.loopingcall.FixedIntervalLoopingCall(f)\n"),
    ("import oslo_service.loopingcall as lc\nlc.FixedIntervalLoopingCall(f)\n",
     "import tickwork.loopingcall as lc\nlc.FixedIntervalLoopingCall(f)\n"),
    ("import os, oslo_service.threadgroup, oslo_service.wsgi\n",
     "import os, tickwork.threadgroup, oslo_service.wsgi\n"),
    ("from oslo_service.loopingcall import FixedIntervalLoopingCall, LoopingCallDone\n",
     "from tickwork.loopingcall import FixedIntervalLoopingCall, LoopingCallDone\n"),
    ("from oslo_service.backend.exceptions import UnsupportedBackendError\n",
     "from tickwork.backend.exceptions import UnsupportedBackendError\n"),
    ("from oslo_service.backend._threading import service\n",
     "from tickwork.backend._threading import service\n"),
    ("from oslo_service import service, wsgi  # noqa\n",
     "from oslo_service import wsgi  # noqa\nfrom tickwork import service  # noqa\n"),
    ("# services\nfrom oslo_service import sslutils, service as svc, systemd\n",
     "# services\nfrom oslo_service import sslutils\n"
     "from tickwork import service as svc, systemd\n"),
    ("from oslo_service import (\n    periodic_task,  # tasks\n    wsgi,\n)\n",
     "from oslo_service import (\n    wsgi,\n)\n"
     "from tickwork import (\n    periodic_task,  # tasks\n)\n"),
    ("def f():\n    from oslo_service import fixture\n    return fixture\n",
     "def f():\n    from tickwork import fixture\n    return fixture\n"),
    ("if True: import oslo_service.loopingcall; from oslo_service import service, wsgi\n",
     "if True: import tickwork.loopingcall; "
     "from oslo_service import wsgi; from tickwork import service\n"),
]


@pytest.mark.parametrize("before, after", SPELLINGS)
def test_import_spellings(before, after):
    result = rewrite(before)
    assert result.code == after
    compile(result.code, "example.py", "exec")
    assert result.changes
    assert rewrite(after).code == after  # idempotent


PATCH_STRINGS = [
    "@mock.patch('oslo_service.loopingcall.FixedIntervalLoopingCall._sleep')\ndef t(m): pass\n",
    "mock.patch.object(loopingcall.FixedIntervalLoopingCall, '_sleep')\n",
    "mock.patch.multiple('oslo_service.service', _is_sighup_and_daemon=mock.DEFAULT)\n",
    "fixtures.MonkeyPatch('oslo_service.periodic_task.now', lambda: 0)\n",
    "self.useFixture(fixtures.MockPatch(\"oslo_service.systemd.notify_once\"))\n",
    "mock.patch('oslo_service.periodic_task.backend.get_backend_type', return_value=1)\n",
    "mock.patch('oslo_service.loopingcall.'\n           'LoopingCallBase._elapsed')\n",
    "importlib.import_module(r'oslo_service.threadgroup')\n",
    "x = '''oslo_service.fixture.SleepFixture'''\n",
]


@pytest.mark.parametrize("source", PATCH_STRINGS)
def test_patch_strings(source):
    result = rewrite(source)
    expected = source.replace("oslo_service", "tickwork")
    assert result.code == expected
    if "oslo_service" in source:
        assert [(c.old.split(".")[0], c.new.split(".")[0]) for c in result.changes] == [
            ("oslo_service", "tickwork")]


UNCHANGED = [
    "mock.patch('oslo_service.eventlet_backdoor.initialize_if_enabled')\n",
    "mock.patch('oslo_service.wsgi.Server.start')\n",
    "mock.patch('oslo_service._options.service_opts')\n",
    "from oslo_service.tests import base\n",
    "from oslo_service import _options, sslutils\n",
    "import oslo_service.eventlet_backdoor\n",
    "x = 'oslo_service.loopingcall is deprecated'\n",
    "x = b'oslo_service.loopingcall'\n",
    "x = f'oslo_service.loopingcall.{name}'\n",
    "x = 'oslo_service.loopingcall.' + name\n",
    "x = 'my_oslo_service.loopingcall.X'\n",
    '"""Uses oslo_service.loopingcall.FixedIntervalLoopingCall."""\n',
    "# from oslo_service import loopingcall\n",
    "oslo_service = load()\noslo_service.loopingcall.start()\n",
    "from oslo_service import *\n",
    "from oslo_service.backend._common import constants\n",
    "import oslo_service.backend._common.constants\n",
    "from . import loopingcall\nfrom .oslo_service import loopingcall\n",
]


@pytest.mark.parametrize("source", UNCHANGED)
def test_left_alone(source):
    result = rewrite(source)
    assert result.code == source
    assert not result.changed and result.changes == []


def test_left_on_oslo_service_is_listed():
    result = rewrite("import os\n"
                     "from oslo_service import service, wsgi\n"
                     "from oslo_service.tests import base\n"
                     "import oslo_service.sslutils\n"
                     "@mock.patch('oslo_service.eventlet_backdoor.initialize_if_enabled')\n"
                     "def t(m): pass\n"
                     "from oslo_service import *\n"
                     "from oslo_service.backend._common import constants\n")
    assert [(n.line, n.message.split()[0]) for n in result.left] == [
        (2, "wsgi"), (3, "tests"), (4, "sslutils"), (5, "eventlet_backdoor"), (7, "*"),
        (8, "backend._common")]
    assert result.left[-1].message == "backend._common (tickwork has no tickwork.backend._common)"


def test_module_used_through_a_bare_import_is_listed_not_broken():
    # ``tickwork`` would not be bound: leave the use alone and say so.
    source = "import oslo_service\nx = oslo_service.loopingcall.FixedIntervalLoopingCall(f)\n"
    result = rewrite(source)
    assert result.code == source
    assert [n.line for n in result.left] == [1, 2]
    assert "import tickwork.loopingcall" in result.left[1].message


def test_crlf_and_encoding_are_kept(capsys, tmp_path):
    path = tmp_path / "legacy.py"
    source = ("# -*- coding: latin-1 -*-\r\n"
              "from oslo_service import loopingcall  # caf\xe9\r\n")
    path.write_bytes(source.encode("latin-1"))
    status, _, err = run(capsys, path)
    assert status == 0, err
    assert path.read_bytes() == source.replace("oslo_service", "tickwork").encode("latin-1")


# -- behaviour warnings


WARNED = """\
from oslo_service import loopingcall as lc
from oslo_service.periodic_task import PeriodicTasks, periodic_task
from oslo_service import service, threadgroup, fixture


class Manager(PeriodicTasks):
    @periodic_task(spacing=10)
    def _audit(self, context):
        self.add_periodic_task(self._audit)


timer = lc.FixedIntervalLoopingCall(f)
other = lc.FixedIntervalLoopingCall(f)
retry = lc.RetryDecorator(max_retry_count=3)
dyn = lc.DynamicLoopingCall(f)
tg = threadgroup.ThreadGroup()
launcher = service.ProcessLauncher(conf)
sleep = fixture.SleepFixture()
launcher.run_periodic_tasks_in_parallel(ctx)
port = launcher.backdoor_port
"""


def test_behaviour_warnings_at_call_sites():
    result = rewrite(WARNED)
    sections = [(n.line, n.message.split('"')[-2]) for n in result.warnings]
    assert sections == [
        (6, "A subclass override replaces the parent's task"),
        (7, "The first run is measured from the instance's creation"),
        (9, "add_periodic_task changes one instance"),
        (12, "Fixed-interval loops do not drift"),
        (13, "Fixed-interval loops do not drift"),
        (14, "RetryDecorator keeps its budget per call"),
        (15, "A failing DynamicLoopingCall does not spin"),
        (16, "The same thread group on both backends"),
        (17, "Shutdown is bounded, even by a task that never yields"),
        (18, "SleepFixture works on both backends"),
        (19, "run_periodic_tasks_in_parallel runs in this process"),
        (20, "What is not provided"),
    ]
    # Once migrated, nothing is reported again (a CI --check stays quiet).
    assert rewrite(result.code).warnings == []


def test_warnings_printed_once_per_kind_with_every_line(capsys, tmp_path):
    path = tmp_path / "m.py"
    path.write_text(WARNED)
    status, _, err = run(capsys, "--check", path)
    assert status == 1
    drift = [line for line in err.splitlines() if "Fixed-interval loops do not drift" in line]
    assert drift == [f"{path}:12: warning: {migrate.BEHAVIOUR_WARNINGS[0].message} "
                     f"(see docs/migration.rst, \"Fixed-interval loops do not drift\") "
                     f"(also line 13)"]


def test_every_warning_names_a_section_of_the_migration_guide():
    with open(os.path.join(ROOT, "docs", "migration.rst")) as f:
        lines = f.read().splitlines()
    titles = {lines[i].replace("``", "") for i in range(len(lines) - 1)
              if lines[i] and set(lines[i + 1]) in ({"-"}, {"="})
              and len(lines[i + 1]) >= len(lines[i])}
    for warning in migrate.BEHAVIOUR_WARNINGS:
        assert warning.section in titles, warning.section


# -- the command


def test_check_exits_1_then_0_once_rewritten(capsys, tmp_path):
    path = tmp_path / "svc.py"
    path.write_text("from oslo_service import service\n")
    status, out, err = run(capsys, "--check", path)
    assert (status, out) == (1, "")
    assert f"would rewrite {path}" in err
    assert path.read_text() == "from oslo_service import service\n"
    assert run(capsys, path)[0] == 0
    assert path.read_text() == "from tickwork import service\n"
    status, _, err = run(capsys, "--check", path)
    assert status == 0
    assert "would rewrite 0 of 1 file(s)" in err


def test_diff_prints_and_changes_nothing(capsys, tmp_path):
    path = tmp_path / "svc.py"
    source = "import os\nfrom oslo_service import loopingcall\n\nprint(os)\n"
    path.write_text(source)
    status, out, err = run(capsys, "--diff", path)
    assert status == 0, err
    assert path.read_text() == source
    assert f"--- {path}\n+++ {path}\n" in out
    assert "-from oslo_service import loopingcall\n+from tickwork import loopingcall\n" in out
    assert " import os\n" in out


def test_diff_and_check_are_exclusive(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        migrate.main(["--diff", "--check", str(tmp_path)])
    assert exc.value.code == 2


def test_in_place_keeps_mode_and_leaves_no_temporary_file(capsys, tmp_path):
    path = tmp_path / "tool.py"
    path.write_text("#!/usr/bin/env python\nfrom oslo_service import systemd\n")
    path.chmod(0o754)
    status, _, err = run(capsys, tmp_path)
    assert status == 0, err
    assert path.read_text() == "#!/usr/bin/env python\nfrom tickwork import systemd\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o754
    assert sorted(os.listdir(tmp_path)) == ["tool.py"]
    assert f"rewrote {path} (1 change)" in err


def test_unparsable_file_changes_nothing(capsys, tmp_path):
    good = tmp_path / "a_good.py"
    good.write_text("from oslo_service import loopingcall\n")
    bad = tmp_path / "b_bad.py"
    bad.write_text("from oslo_service import service\ndef broken(:\n    pass\n")
    status, out, err = run(capsys, tmp_path)
    assert status == 2
    assert f"{bad}:2:" in err and "cannot parse" in err
    assert "no file changed" in err
    assert good.read_text() == "from oslo_service import loopingcall\n"
    assert bad.read_text() == "from oslo_service import service\ndef broken(:\n    pass\n"


def test_missing_path(capsys, tmp_path):
    good = tmp_path / "good.py"
    good.write_text("from oslo_service import loopingcall\n")
    status, out, err = run(capsys, good, tmp_path / "nope")
    assert status == 2
    assert f"{tmp_path / 'nope'}: no such file or directory" in err
    assert good.read_text() == "from oslo_service import loopingcall\n"


def test_directories_skip_environments_and_caches(capsys, tmp_path):
    source = "from oslo_service import loopingcall\n"
    wanted = [tmp_path / "pkg" / "mod.py", tmp_path / "pkg" / "sub" / "deep.py"]
    skipped = [tmp_path / d / "x.py" for d in (".tox", ".venv", ".git", "build", "__pycache__")]
    skipped += [tmp_path / "env" / "lib" / "x.py", tmp_path / "pkg" / "notes.txt"]
    for path in wanted + skipped:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    status, _, err = run(capsys, tmp_path)
    assert status == 0, err
    assert [p.read_text() for p in wanted] == ["from tickwork import loopingcall\n"] * 2
    assert [p.read_text() for p in skipped] == [source] * len(skipped)
    assert "rewrote 2 of 2 file(s)" in err


def test_idempotent(capsys, tmp_path):
    path = tmp_path / "m.py"
    path.write_text(WARNED + "from oslo_service import service, wsgi\n")
    assert run(capsys, path)[0] == 0
    once = path.read_text()
    status, _, err = run(capsys, path)
    assert status == 0
    assert path.read_text() == once
    assert "rewrote 0 of 1 file(s)" in err


def test_without_libcst(capsys, tmp_path, monkeypatch):
    path = tmp_path / "m.py"
    path.write_text("from oslo_service import loopingcall\n")
    monkeypatch.setitem(sys.modules, "libcst", None)
    monkeypatch.delitem(sys.modules, "tickwork._migrate_cst")
    monkeypatch.delattr(tickwork, "_migrate_cst")
    status, _, err = run(capsys, path)
    assert status == 2
    assert "pip install tickwork[migrate]" in err
    assert path.read_text() == "from oslo_service import loopingcall\n"


def test_python_m_tickwork_migrate(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from oslo_service import loopingcall\n")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    proc = subprocess.run([sys.executable, "-m", "tickwork", "migrate", "--check", str(path)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "tickwork", "migrate", str(path)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert path.read_text() == "from tickwork import loopingcall\n"
