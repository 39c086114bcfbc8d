"""Research: search a pipeline's options with an optimizer, trial by trial.

:func:`optimize` runs the trials, :func:`parse_space` reads a ``[space]`` table, and the
optimizers (kind ``optimizer``: ``grid-search``, ``random``, ``genetic``, ``bayesian``) only
propose points and learn from their scores (:class:`gridkit.Optimizer`).
"""

from gridkit.research.space import Dimension, Space, parse_space, set_option
from gridkit.research.trials import OBJECTIVES, Trial, best, optimize

__all__ = ["OBJECTIVES", "Dimension", "Space", "Trial", "best", "optimize", "parse_space",
           "set_option"]
