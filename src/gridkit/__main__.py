"""``python -m gridkit``: the command line, for when the ``gridkit`` script is not on PATH."""

from gridkit.cli import main

main()
