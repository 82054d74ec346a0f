"""Sphinx configuration for the tickwork documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``
(or ``tox -e docs``).  No network access is needed: intersphinx is off.
"""

from __future__ import annotations

import os
import sys

# Document the tickwork in this tree even when it is not installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src")))

import tickwork  # noqa: E402

project = "tickwork"
author = "tickwork developers"
copyright = "tickwork developers"
release = tickwork.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "oslo_config.sphinxext",
]

# No intersphinx: the docs build offline.  Cross-references to the standard
# library or oslo.* are written as plain literals.

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
language = "en"
pygments_style = "sphinx"
nitpicky = False

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
