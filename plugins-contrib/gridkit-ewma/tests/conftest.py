"""Make sure the plugin under test is loaded, whatever the environment says.

gridkit's own test suite sets ``GRIDKIT_LOAD_PLUGINS=""`` to keep third-party plugins out, and a
developer may have it set in their shell; these tests are about this plugin, so they name it.
Set at import time: every plugin host created afterwards (the ``gridkit_host`` fixture) reads it.
"""

from __future__ import annotations

import os

os.environ["GRIDKIT_LOAD_PLUGINS"] = "gridkit-ewma"
os.environ.pop("GRIDKIT_DISABLE_PLUGINS", None)
