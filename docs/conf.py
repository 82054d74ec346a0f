"""Sphinx configuration for the tickwork documentation.

Build with ``sphinx-build -n -W --keep-going -b html docs docs/_build/html``
(or ``tox -e docs``): nitpicky, every warning an error.

Cross-references to Python, oslo.config and fixtures go through intersphinx
when their inventories can be had, and are checked then.  The build must
also pass on a machine without network access (CI's, a developer's on a
train), where Sphinx cannot fetch them and would warn.  So, per project:

1. a cached inventory ``docs/_inventories/<name>.inv``, if present, is used
   (no network needed; refresh one with
   ``curl -o docs/_inventories/python.inv https://docs.python.org/3/objects.inv``);
2. otherwise the inventory is downloaded once, at configuration time, into
   ``docs/_build/inventories`` (5 s timeout; ``TICKWORK_DOCS_INTERSPHINX=0``
   skips it);
3. when neither works, the project is left out, and references into it are
   listed in ``nitpick_ignore_regex`` below: they render as plain literals
   instead of links, and everything else is still checked.

The changelog page is rendered from ``releasenotes/notes`` by reno, which
reads the git history (a clone is needed; from an unpacked sdist the page
says so instead).
"""

from __future__ import annotations

import os
import pathlib
import sys
import urllib.request
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

# Document the tickwork in this tree even when it is not installed.
sys.path.insert(0, str(ROOT / "src"))

import tickwork  # noqa: E402

project = "tickwork"
author = "tickwork developers"
copyright = "tickwork developers"
release = tickwork.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "oslo_config.sphinxext",
]

exclude_patterns = ["_build", "_inventories", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
language = "en"
pygments_style = "sphinx"
nitpicky = True

# --- intersphinx ----------------------------------------------------------------------

#: name -> (documentation URL, the modules it documents (regex, for nitpick_ignore))
_EXTERNAL = {
    "python": ("https://docs.python.org/3",
               r"(abc|argparse|collections|contextlib|enum|logging|multiprocessing|os|pickle|"
               r"random|signal|socket|subprocess|sys|threading|time|types|typing|"
               r"BaseException|Exception|RuntimeError|TypeError|ValueError|KeyboardInterrupt|"
               r"SystemExit|NotImplementedError|UserWarning|float|int|str|bool|bytes|dict|"
               r"list|tuple|object|type|None|callable)"),
    "oslo.config": ("https://docs.openstack.org/oslo.config/latest", r"(oslo_config|cfg)"),
    "fixtures": ("https://fixtures.readthedocs.io/en/latest", r"fixtures"),
}


def _fetched_inventory(name: str, url: str) -> str | None:
    """The inventory of ``url``, downloaded into docs/_build; None when it cannot be had."""
    setting = os.environ.get("TICKWORK_DOCS_INTERSPHINX", "")
    if setting == "0":
        return None
    target = HERE / "_build" / "inventories" / f"{name}.inv"
    try:
        with urllib.request.urlopen(f"{url}/objects.inv", timeout=5) as answer:
            data = answer.read()
    except (OSError, ValueError):
        return None
    if not data.startswith(b"# Sphinx inventory"):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return str(target)


intersphinx_mapping: dict[str, tuple[str, Any]] = {}
intersphinx_timeout = 10
nitpick_ignore_regex: list[tuple[str, str]] = [
    # Annotations written with a module alias (``cfg.ConfigOpts``) name no
    # target even when oslo.config's inventory is loaded.
    (r"py:.*", r"cfg\..*"),
]
for _name, (_url, _modules) in _EXTERNAL.items():
    _cached = HERE / "_inventories" / f"{_name}.inv"
    _inventory = str(_cached) if _cached.is_file() else _fetched_inventory(_name, _url)
    if _inventory is not None:
        intersphinx_mapping[_name] = (_url, _inventory)
    else:
        nitpick_ignore_regex.append((r"py:.*", rf"{_modules}(\..*)?"))

nitpick_ignore = [
    # Names in signatures that are private or stand for "any value".
    ("py:class", "_F"),
    ("py:class", "tickwork.periodic_task._F"),
    ("py:class", "T"),
    # The base class autodoc names for fixtures' Fixture, which its own
    # documentation calls fixtures.Fixture.
    ("py:class", "fixtures.fixture.Fixture"),
]

# --- autodoc ----------------------------------------------------------------------------

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_typehints_description_target = "documented"
autoclass_content = "class"
# Names in signatures stay as written (``Event``, ``DoneEvent``) instead of
# being expanded, which keeps the reference readable.
autodoc_preserve_defaults = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
html_theme_options = {
    "description": "Drift-free periodic tasks for OpenStack-style services",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_title = f"tickwork {release}"
html_static_path: list[str] = []


# --- the changelog --------------------------------------------------------------------

def _release_notes() -> str:
    """The release notes as reST, rendered by reno from releasenotes/notes."""
    try:
        from reno import config as reno_config
        from reno import formatter, loader
    except ImportError:
        return "The release notes are rendered by reno: ``pip install reno``."
    try:
        conf = reno_config.Config(str(ROOT))
        with loader.Loader(conf) as notes:
            text: str = formatter.format_report(notes, conf, notes.versions, title=None,
                                                show_source=False)
    except Exception as exc:  # not a git checkout (an sdist), or no history
        return (f"The release notes are rendered from ``releasenotes/notes`` and the git "
                f"history, which this copy of the sources lacks ({type(exc).__name__}); "
                f"see the notes files themselves.")
    # reno names notes after the last tag; before the first one it says 0.0.0.
    title = f"{release} (unreleased)"
    return text.replace("\n0.0.0\n=====\n", f"\n{title}\n{'=' * len(title)}\n").replace(
        "relnotes_0.0.0_", f"relnotes_{release}_")


def setup(app: Any) -> dict[str, Any]:
    from docutils import nodes
    from docutils.parsers.rst import Directive
    from docutils.statemachine import StringList
    from sphinx.util.nodes import nested_parse_with_titles

    class ReleaseNotes(Directive):
        """``.. tickwork-release-notes::``: the notes, one section per version."""

        def run(self) -> list[nodes.Node]:
            lines = StringList(_release_notes().splitlines(), source="releasenotes/notes")
            node = nodes.section()
            node.document = self.state.document
            nested_parse_with_titles(self.state, lines, node)
            return list(node.children)

    app.add_directive("tickwork-release-notes", ReleaseNotes)
    return {"parallel_read_safe": True}
