"""``tickwork migrate``: rewrite a project's Python files from oslo.service to tickwork.

Rewrites the imports of the oslo.service modules tickwork provides (in every
spelling), attribute uses after ``import oslo_service.<module>``, and string
literals that name them (``mock.patch('oslo_service.loopingcall.X._sleep')``),
keeping formatting and comments (the files are parsed with libcst).  Other
oslo.service modules (wsgi, sslutils, eventlet_backdoor, ...) are left alone
and listed.  Call sites whose behaviour differs from oslo.service are listed
with the section of docs/migration.rst that explains the difference.

Needs libcst: ``pip install tickwork[migrate]``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

__all__ = [
    "BEHAVIOUR_WARNINGS",
    "PROVIDED_MODULES",
    "BehaviourWarning",
    "Change",
    "LibcstMissing",
    "Note",
    "ParseError",
    "Result",
    "main",
    "rewrite_source",
]

#: The oslo_service modules tickwork provides; ``oslo_service.<name>`` and
#: everything below it becomes ``tickwork.<name>``.  The first two components
#: of a dotted name decide (``oslo_service.periodic_task.backend.X`` is
#: rewritten, ``oslo_service.tests.base`` is not).
PROVIDED_MODULES = frozenset({
    "backend", "fixture", "loopingcall", "periodic_task", "service", "systemd", "threadgroup",
})

OLD_PACKAGE = "oslo_service"
NEW_PACKAGE = "tickwork"
DOCS = "docs/migration.rst"


@dataclass(frozen=True)
class BehaviourWarning:
    """A call site whose behaviour differs from oslo.service.

    ``names`` are qualified names below ``oslo_service`` (``loopingcall.RetryDecorator``)
    matched wherever the file refers to them; ``methods`` are attribute names
    matched on any object in a file that uses ``module``.
    """

    names: tuple[str, ...]
    message: str
    section: str
    methods: tuple[str, ...] = ()
    module: str = ""

    @property
    def text(self) -> str:
        """The message with the docs section that explains it."""
        return f"{self.message} (see {DOCS}, \"{self.section}\")"


#: Every difference reported at a call site, with the docs/migration.rst
#: section (its title, without markup) that explains it.
BEHAVIOUR_WARNINGS: tuple[BehaviourWarning, ...] = (
    BehaviourWarning(
        ("loopingcall.FixedIntervalLoopingCall", "loopingcall.FixedIntervalWithTimeoutLoopingCall"),
        "fixed-interval loops run on absolute deadlines (no drift); runs missed while a run "
        "was busy are skipped and counted; bad arguments raise at start()",
        "Fixed-interval loops do not drift"),
    BehaviourWarning(
        ("loopingcall.DynamicLoopingCall",),
        "with stop_on_exception=False a failing function backs off (1 s doubling to 60 s, "
        "or periodic_interval_max) instead of being called again at once",
        "A failing DynamicLoopingCall does not spin"),
    BehaviourWarning(
        ("loopingcall.BackOffLoopingCall",),
        "a negative or non-numeric interval or timeout raises at start()",
        "Bad arguments fail at start()"),
    BehaviourWarning(
        ("loopingcall.RetryDecorator",),
        "the retry count and sleep budget are per call, not shared by every call",
        "RetryDecorator keeps its budget per call"),
    BehaviourWarning(
        ("periodic_task.periodic_task",),
        "the first run is due one spacing after the manager is created (not after import); "
        "jitter does not accumulate; unknown keywords and bad spacings raise at decoration time",
        "The first run is measured from the instance's creation"),
    BehaviourWarning(
        ("periodic_task.PeriodicTasks",),
        "a subclass that redefines a task replaces the parent's task; missed runs are counted",
        "A subclass override replaces the parent's task"),
    BehaviourWarning(
        (), "add_periodic_task adds the task to this instance only; a duplicate name raises",
        "add_periodic_task changes one instance",
        methods=("add_periodic_task",), module="periodic_task"),
    BehaviourWarning(
        (), "run_periodic_tasks_in_parallel runs the tasks concurrently in this process, "
        "on this manager (no process pool, nothing pickled)",
        "run_periodic_tasks_in_parallel runs in this process",
        methods=("run_periodic_tasks_in_parallel",), module="periodic_task"),
    BehaviourWarning(
        ("threadgroup.ThreadGroup",),
        "one thread group on both backends (add_thread blocks while full); wait() also waits "
        "for the last run of stopped timers; stopping from inside a timer does not deadlock",
        "The same thread group on both backends"),
    BehaviourWarning(
        ("service.launch", "service.ServiceLauncher", "service.ProcessLauncher"),
        "graceful_shutdown_timeout also bounds forked workers; the first SIGINT stops the "
        "services cleanly; the same launchers run on both backends",
        "Shutdown is bounded, even by a task that never yields"),
    BehaviourWarning(
        (), "tickwork does not provide the eventlet backdoor: backdoor_port is always None",
        "What is not provided",
        methods=("backdoor_port",), module="service"),
    BehaviourWarning(
        ("fixture.SleepFixture",),
        "SleepFixture replaces the wait of every looping call on both backends",
        "SleepFixture works on both backends"),
)


class ParseError(Exception):
    """A file that cannot be read or parsed; ``str()`` is ``file:line:col: reason``."""


@dataclass(frozen=True)
class Change:
    """One rewritten piece of code."""

    line: int
    old: str
    new: str


@dataclass(frozen=True)
class Note:
    """Something reported at a line: a behaviour warning or a name left on oslo.service."""

    line: int
    message: str


@dataclass
class Result:
    """The outcome of rewriting one file's source."""

    filename: str
    original: str
    code: str
    encoding: str = "utf-8"
    changes: list[Change] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)
    left: list[Note] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the new source differs from the original."""
        return self.code != self.original

    def diff(self) -> str:
        """A unified diff from the original source to the new one."""
        name = self.filename
        relative = not os.path.isabs(name) and not name.startswith("..")
        return "".join(difflib.unified_diff(
            self.original.splitlines(keepends=True), self.code.splitlines(keepends=True),
            fromfile=f"a/{name}" if relative else name, tofile=f"b/{name}" if relative else name))


class LibcstMissing(ImportError):
    """libcst, which ``tickwork migrate`` needs, is not installed."""


def rewrite_source(source: str | bytes, filename: str = "<string>") -> Result:
    """Rewrite one module's source from oslo.service to tickwork.

    Raises :class:`ParseError` when the source does not parse and
    :class:`LibcstMissing` when libcst is not installed.
    """
    try:
        from tickwork import _migrate_cst
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "libcst":
            raise
        raise LibcstMissing("tickwork migrate needs libcst: pip install tickwork[migrate]",
                            name="libcst") from None
    return _migrate_cst.rewrite(source, filename)


_SKIP_DIRS = frozenset({"__pycache__", "build", ".tox", ".venv", "site-packages"})


def _skip_dir(path: str, name: str) -> bool:
    return (name.startswith(".") or name in _SKIP_DIRS
            or os.path.exists(os.path.join(path, name, "pyvenv.cfg")))


def _python_files(path: str) -> Iterator[str]:
    if not os.path.isdir(path):
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not _skip_dir(root, d))
        yield from (os.path.join(root, f) for f in sorted(files) if f.endswith(".py"))


def _write_atomically(path: str, data: bytes) -> None:
    """Replace ``path``'s content with ``data``: either all of it or nothing."""
    target = os.path.realpath(path)
    mode = stat.S_IMODE(os.stat(target).st_mode)
    directory, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tickwork-migrate")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _report_notes(result: Result, out: TextIO) -> None:
    """Print the file's behaviour warnings (one line per kind) and what stays on oslo.service."""
    grouped: dict[str, list[int]] = {}
    for note in result.warnings:
        grouped.setdefault(note.message, []).append(note.line)
    lines: list[tuple[int, str]] = []
    for message, at in grouped.items():
        more = sorted(set(at) - {at[0]})
        also = ""
        if more:
            shown = ", ".join(map(str, more[:8])) + (", ..." if len(more) > 8 else "")
            also = f" (also line{'s' if len(more) > 1 else ''} {shown})"
        lines.append((at[0], f"warning: {message}{also}"))
    lines.extend((note.line, f"left on oslo.service: {note.message}") for note in result.left)
    for line, text in sorted(lines, key=lambda item: item[0]):
        print(f"{result.filename}:{line}: {text}", file=out)


def _changes(result: Result) -> str:
    count = len(result.changes)
    return f"{count} change{'' if count == 1 else 's'}"


def main(argv: Sequence[str] | None = None, prog: str = "tickwork migrate") -> int:
    """``tickwork migrate [--diff | --check] PATH...``; returns the exit status.

    0: done (or, with ``--check``, nothing to change); 1: ``--check`` found
    files to change; 2: a path does not exist, a file does not parse, or
    libcst is missing (no file is changed then).
    """
    from tickwork import _cli

    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=_cli.HELP_FORMATTER,
        description="Rewrite Python files from oslo.service to tickwork, in place by default.\n"
                    "Also lists the call sites whose behaviour differs (docs/migration.rst).",
        epilog="examples:\n"
               f"  {prog} --diff myproject/      show what would change\n"
               f"  {prog} --check myproject/     exit 1 while anything is left (CI)\n"
               f"  {prog} myproject/ tests/      rewrite in place\n\n"
               "Messages go to stderr; --diff prints the diff on stdout.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="Python files or directories (searched for *.py)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--diff", action="store_true",
                      help="print a unified diff of the changes and change nothing")
    mode.add_argument("--check", action="store_true",
                      help="change nothing; exit 1 when a file would change")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        for path in missing:
            print(f"{prog}: error: {path}: no such file or directory", file=sys.stderr)
        return 2

    files: list[str] = []
    seen: set[str] = set()
    for path in args.paths:
        for filename in _python_files(path):
            key = os.path.realpath(filename)
            if key not in seen:
                seen.add(key)
                files.append(filename)

    # Parse everything first: a file that does not parse changes nothing.
    results: list[Result] = []
    errors: list[str] = []
    for filename in files:
        try:
            with open(filename, "rb") as f:
                source = f.read()
            results.append(rewrite_source(source, filename))
        except LibcstMissing as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        except (OSError, ParseError) as exc:
            errors.append(str(exc) if isinstance(exc, ParseError) else f"{filename}: {exc}")
    if errors:
        for error in errors:
            print(f"{prog}: error: {error}", file=sys.stderr)
        print(f"{prog}: no file changed", file=sys.stderr)
        return 2

    changed = [r for r in results if r.changed]
    for result in results:
        _report_notes(result, sys.stderr)
        if not result.changed:
            continue
        if args.diff:
            sys.stdout.write(result.diff())
        elif args.check:
            print(f"would rewrite {result.filename} ({_changes(result)})", file=sys.stderr)
        else:
            try:
                _write_atomically(result.filename, result.code.encode(result.encoding))
            except OSError as exc:
                print(f"{prog}: error: {result.filename}: {exc}", file=sys.stderr)
                return 2
            print(f"rewrote {result.filename} ({_changes(result)})", file=sys.stderr)
    verb = "would rewrite" if args.diff or args.check else "rewrote"
    print(f"{verb} {len(changed)} of {len(results)} file(s)", file=sys.stderr)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
