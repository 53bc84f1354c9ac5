"""Sphinx configuration for the pytest-crosscache documentation."""

from __future__ import annotations

import sys
from pathlib import Path

# Document the sources in this checkout even when the package is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pytest_crosscache import __version__  # noqa: E402

project = "pytest-crosscache"
author = "The pytest-crosscache developers"
copyright = "the pytest-crosscache developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]

# Docstrings are plain reST with :param:/:raises: fields.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"

# No intersphinx: the docs must build offline.  References to pytest and
# the standard library are therefore plain text, not links.
default_role = "literal"
primary_domain = "py"
exclude_patterns = ["_build"]

html_theme = "alabaster"
html_theme_options = {
    "description": "pytest's cache provider, without lost or torn state",
    "fixed_sidebar": True,
}
html_title = f"pytest-crosscache {release}"
