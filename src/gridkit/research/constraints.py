"""Constraints between a search's options: arithmetic comparisons a point must meet to be run.

A constraint is one line of arithmetic over option paths and numbers, e.g. the grid's step
above the round-trip fee::

    constraints = [
        "(strategy.upper - strategy.lower) / strategy.grids / strategy.lower"
        " > 2 * executor.maker_fee",
        "strategy.upper >= strategy.lower * 1.05",
    ]

Allowed: option paths (``section.option``; the point's value, else the pipeline's own), numbers,
``+ - * /``, parentheses, comparisons (``< <= > >= == !=``, chained), ``and``, ``or``, ``not``.
Nothing else is evaluated — no names, calls or attributes beyond option paths — so a search file
cannot run code. A point that breaks one is not run: its trial scores nothing and says which.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen

from gridkit.core.errors import ConfigError

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}


@frozen
class Constraint:
    """One checked constraint: its text, its parsed expression and the options it reads."""

    text: str
    tree: ast.expr
    paths: tuple[str, ...]

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether the point's option ``values`` meet it (division by zero: they do not)."""
        try:
            return bool(_eval(self.tree, values))
        except ZeroDivisionError:
            return False


def parse_constraints(items: Any, known: Mapping[str, Any]) -> list[Constraint]:
    """Check and parse a search file's ``constraints`` list; ``known`` maps each option path a
    constraint may read to whether it exists. Every problem in one ConfigError."""
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise ConfigError("constraints: a list of strings such as "
                          "\"strategy.upper > strategy.lower * 1.05\"")
    out, problems = [], []
    for k, text in enumerate(items):
        try:
            tree = ast.parse(text.strip(), mode="eval").body
            paths = tuple(_check(tree))
        except (SyntaxError, ValueError) as err:
            problems.append(f"constraints[{k}]: {text!r}: {_why(err)}")
            continue
        unknown = [p for p in paths if not known.get(p)]
        if unknown:
            problems.append(f"constraints[{k}]: {text!r} reads {unknown[0]}, which is neither "
                            f"in the space nor set in the pipeline")
            continue
        out.append(Constraint(text, tree, paths))
    if problems:
        raise ConfigError(problems)
    return out


def broken(constraints: Sequence[Constraint], values: Mapping[str, Any]) -> str | None:
    """The first constraint the point's ``values`` break, or None."""
    for c in constraints:
        if not c.holds(values):
            return c.text
    return None


def _why(err: Exception) -> str:
    return err.msg if isinstance(err, SyntaxError) and err.msg else str(err)


def _path(node: ast.expr) -> str | None:
    """``section.option`` (or ``section.key.option``) of an attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and parts:
        return ".".join([node.id, *reversed(parts)])
    return None


def _check(node: ast.expr) -> list[str]:
    """The option paths ``node`` reads; ValueError for anything that is not allowed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return []
    if isinstance(node, ast.Attribute):
        path = _path(node)
        if path is None:
            raise ValueError("only option paths such as strategy.grids may be read")
        return [path]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _check(node.left) + _check(node.right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        return _check(node.operand)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        return _check(node.left) + [p for c in node.comparators for p in _check(c)]
    if isinstance(node, ast.BoolOp):
        return [p for v in node.values for p in _check(v)]
    if isinstance(node, ast.Name):
        raise ValueError(f"{node.id!r} is not an option path (write section.option)")
    raise ValueError(f"{type(node).__name__} is not allowed (numbers, option paths, "
                     f"+ - * /, comparisons, and, or, not)")


def _eval(node: ast.expr, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Attribute):
        return values[_path(node) or ""]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, values)
        return -v if isinstance(node.op, ast.USub) else not v
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_eval(v, values) for v in node.values)
        return any(_eval(v, values) for v in node.values)
    raise ValueError(type(node).__name__)  # (refused by _check first)


__all__ = ["Constraint", "broken", "parse_constraints"]
