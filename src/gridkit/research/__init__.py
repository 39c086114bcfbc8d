"""Research: search a pipeline's options with an optimizer, trial by trial.

:func:`optimize` runs the trials, :func:`parse_space` reads a ``[space]`` table, and the
optimizers (kind ``optimizer``: ``grid-search``, ``random``, ``genetic``, ``bayesian``) only
propose points and learn from their scores (:class:`gridkit.Optimizer`).
"""

from gridkit.research.space import Dimension, Space, parse_space, set_option
from gridkit.research.trials import Trial, best, objective_for, optimize

__all__ = ["Dimension", "Space", "Trial", "best", "objective_for", "optimize", "parse_space",
           "set_option"]
