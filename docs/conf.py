"""Sphinx configuration for the gridkit documentation.

Build with warnings as errors::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "gridkit"
author = "gridkit developers"
copyright = "gridkit developers"

try:
    from importlib.metadata import version as _version

    release = _version("gridkit")
except Exception:  # pragma: no cover - docs built without gridkit installed
    release = "unknown"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "gridkit_docs",  # docs/_ext/gridkit_docs.py: tables and listings generated from the code
]

# No network during the build: intersphinx stays off, references to other projects stay text.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}

html_theme = "furo"
html_title = f"gridkit {release}"
