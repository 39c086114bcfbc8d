"""The component reference the docs extension generates: one section per component.

``docs/_ext/gridkit_docs.py`` turns each registered built-in into reST; these tests check that
reST without building the docs (the docs tox env builds them, with warnings as errors).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sphinx")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "_ext"))

import gridkit_docs

from gridkit.core.plugins import new_host
from gridkit.core.registry import build_registry, describe


def _described() -> list[dict[str, Any]]:
    registry = build_registry(new_host(env={"GRIDKIT_LOAD_PLUGINS": ""}))
    return [dict(describe(r), cls=r.cls) for r in registry.all()]


BUILTINS = _described()


def _one(kind: str, name: str) -> dict[str, Any]:
    return next(c for c in BUILTINS if (c["kind"], c["name"]) == (kind, name))


def test_each_component_has_its_own_section_titled_kind_and_name() -> None:
    index = BUILTINS.index(_one("risk", "position-size"))
    lines = gridkit_docs.ComponentsDirective.component(_one("risk", "position-size"), index)
    text = "\n".join(lines)
    assert lines[:5] == [".. _component-risk-position-size:", "",
                         "risk ``position-size``", "-" * len("risk ``position-size``"), ""]
    assert f"gridkit-docstring-{index}-head" in lines  # the summary, right under the title
    assert ':Use: ``use = "position-size"`` in a ``[[risk]]`` table' in lines
    assert ":Plugin: ``gridkit.risk`` (distribution ``gridkit``)" in lines
    assert ":Class: ``gridkit.plugins.risk.PositionSize``" in lines
    assert ":Requires: at least one of ``max_base``, ``max_fraction``" in lines
    assert text.index("-head") < text.index(":Use:") < text.index("-rest") < text.index(
        ".. rubric:: Options") < text.index(".. list-table::")
    assert "     - not set; **one of** ``max_base``, ``max_fraction`` is required" in lines


def test_every_section_title_and_label_is_unique() -> None:
    titles = [gridkit_docs.ComponentsDirective.component(c, i)[2] for i, c in enumerate(BUILTINS)]
    assert len(set(titles)) == len(titles) == len(BUILTINS)


@pytest.mark.parametrize(("field", "cell"), [
    ({"required": True, "default": None}, "**required**"),
    ({"required": False, "default": 20}, "``20``"),
    ({"required": False, "default": 20, "tunable": (2, 100)}, "``20``; tunable in [2, 100]"),
    ({"required": False, "default": None, "one_of": [["a", "b"]]},
     "not set; **one of** ``a``, ``b`` is required"),
    ({"required": True, "default": None, "tunable": (0.1, 0.5)},
     "**required**; tunable in [0.1, 0.5]"),
])
def test_the_default_column(field: dict[str, Any], cell: str) -> None:
    assert gridkit_docs.default_cell(field) == cell


def test_the_summary_is_the_first_paragraph_of_the_docstring() -> None:
    from gridkit.plugins.risk import PositionSize

    head, rest = gridkit_docs.split_docstring(PositionSize)
    assert head == PositionSize.summary()
    assert rest.startswith("The position counted is the symbol's base held")


def test_the_generated_rest_is_valid() -> None:
    docutils_core = pytest.importorskip("docutils.core")
    from docutils import nodes
    from docutils.parsers.rst import roles

    def generic(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
                options: Any = None, content: Any = None) -> tuple[list[Any], list[Any]]:
        return [nodes.literal(rawtext, text)], []

    for role in ("ref", "class", "func"):
        roles.register_local_role(role, generic)
    lines: list[str] = ["Components", "=========="]
    for i, c in enumerate(BUILTINS):
        lines += gridkit_docs.ComponentsDirective.component(c, i)
    tree = docutils_core.publish_doctree(
        "\n".join(lines), settings_overrides={"report_level": 2, "halt_level": 5,
                                               "warning_stream": False, "doctitle_xform": False})
    problems = [m.astext() for m in tree.findall(nodes.system_message)]
    assert not problems, problems[:3]
    tables = list(tree.findall(nodes.table))
    assert len(tables) == sum(1 for c in BUILTINS if c["config"])
    [top] = [s for s in tree.findall(nodes.section) if s.parent is tree]
    titles = [s[0].astext() for s in top.findall(nodes.section) if s is not top]
    assert titles == [f"{c['kind']} {c['name']}" for c in BUILTINS]
