"""The documentation's promises, checked without building it (datasette style).

* every hook is documented in docs/hooks.rst, and every hook's docstring documents each argument;
* every built-in component has a docstring (its first line is the summary) and every option a doc;
* every component kind's base class is documented in docs/api.rst.

The docs render these docstrings with autodoc and the ``gridkit_docs`` extension, so a gap here is
a gap in the docs. The Sphinx build itself (``sphinx-build -W``) is run by the docs tox env.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from gridkit.core import hookspecs
from gridkit.core.components import BASES
from gridkit.core.hookspecs import KIND_HOOKS
from gridkit.core.plugins import new_host
from gridkit.core.registry import build_registry, describe

DOCS = Path(__file__).resolve().parent.parent / "docs"

HOOKS = sorted(
    name for name, obj in vars(hookspecs).items()
    if name.startswith("gridkit_") and inspect.isfunction(obj)
)


def _builtins() -> list[Any]:
    host = new_host(env={"GRIDKIT_LOAD_PLUGINS": ""})
    registry = build_registry(host)
    assert not host.failures, [f.line() for f in host.failures]
    return registry.all()


BUILTINS = _builtins()

#: Built-ins whose docs are known to fall short, with why. Each is a strict xfail: once the
#: docstring is fixed the test XPASSes, which fails, so the entry gets removed. Keep these empty.
KNOWN_GAPS: dict[tuple[str, str], str] = {}
KNOWN_BAD_RST: dict[tuple[str, str], str] = {}


def _params(known: dict[tuple[str, str], str]) -> list[Any]:
    """The built-ins as test parameters, the known gaps marked as strict xfails."""
    out = []
    for reg in BUILTINS:
        reason = known.get((reg.kind, reg.name))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        out.append(pytest.param(reg, id=f"{reg.kind}-{reg.name}", marks=marks))
    return out


def _documented(rst: str, directive: str) -> set[str]:
    """Names given to ``.. <directive>::`` in an rst file, with or without their module."""
    pattern = rf"^\.\. {re.escape(directive)}:: +(\S+)\s*$"
    return {m.group(1).rpartition(".")[2] for m in re.finditer(pattern, rst, re.MULTILINE)}


def test_hookspecs_define_hooks() -> None:
    assert len(HOOKS) >= len(KIND_HOOKS)
    assert set(KIND_HOOKS.values()) <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_in_hooks_rst(hook: str) -> None:
    documented = _documented((DOCS / "hooks.rst").read_text(encoding="utf-8"), "autofunction")
    assert hook in documented, f"add '.. autofunction:: gridkit.core.hookspecs.{hook}' to hooks.rst"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstring_documents_every_argument(hook: str) -> None:
    function = getattr(hookspecs, hook)
    doc = inspect.getdoc(function) or ""
    assert doc.strip(), f"{hook} has no docstring"
    for arg in inspect.signature(function).parameters:
        assert re.search(rf"^:param {arg}:\s*\S", doc, re.MULTILINE), (
            f"{hook}: no ':param {arg}:' line in its docstring")


def test_hooks_rst_names_no_missing_hook() -> None:
    documented = _documented((DOCS / "hooks.rst").read_text(encoding="utf-8"), "autofunction")
    assert documented <= set(HOOKS), f"hooks.rst documents hooks that do not exist: " \
                                     f"{sorted(documented - set(HOOKS))}"


@pytest.mark.parametrize("reg", _params(KNOWN_GAPS))
def test_builtin_has_docstring_and_summary(reg: Any) -> None:
    doc = reg.cls.__dict__.get("__doc__")  # its own docstring, not a base class's
    assert doc and doc.strip(), f"{reg.cls.__qualname__} has no class docstring"
    assert reg.cls.summary(), f"{reg.cls.__qualname__}: the docstring's first line is empty"
    assert describe(reg)["summary"] == reg.cls.summary()


@pytest.mark.parametrize("reg", _params(KNOWN_GAPS))
def test_builtin_options_are_documented(reg: Any) -> None:
    missing = [f["name"] for f in describe(reg)["config"] if not str(f["doc"]).strip()]
    assert not missing, (f"{reg.kind} '{reg.name}': options without doc: {missing} "
                         f"(use gridkit.option(..., doc='...'))")


_SPHINX_ROLES = ("class", "func", "meth", "mod", "data", "attr", "obj", "exc", "ref", "doc")


def _rst_problems(text: str) -> list[str]:
    """Problems docutils reports for ``text`` (Sphinx's cross-reference roles allowed)."""
    docutils_core = pytest.importorskip("docutils.core")
    from docutils import nodes
    from docutils.parsers.rst import roles

    def generic(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
                options: Any = None, content: Any = None) -> tuple[list[Any], list[Any]]:
        return [nodes.literal(rawtext, text)], []

    for role in _SPHINX_ROLES:
        roles.register_local_role(role, generic)
    tree = docutils_core.publish_doctree(
        text, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": False})
    problems = [m.astext() for m in tree.findall(nodes.system_message)]
    problems += [f"cannot resolve {p.astext()!r}" for p in tree.findall(nodes.problematic)]
    return problems


@pytest.mark.parametrize("reg", _params(KNOWN_BAD_RST))
def test_builtin_docs_are_valid_rst(reg: Any) -> None:
    """The docs render docstrings and option docs as reST; invalid ones show as plain text."""
    texts = [inspect.cleandoc(reg.cls.__dict__.get("__doc__") or "")]
    texts += [f["doc"] for f in describe(reg)["config"]]
    problems = [p for t in texts for p in _rst_problems(t)]
    assert not problems, f"{reg.cls.__qualname__}: not valid reST: {problems}"


def test_builtins_are_registered() -> None:
    assert {r.kind for r in BUILTINS} >= {"source", "validator", "strategy", "executor", "store"}


@pytest.mark.parametrize("kind", list(KIND_HOOKS))
def test_kind_base_class_is_in_api_rst(kind: str) -> None:
    assert kind in BASES, f"kind {kind!r} has a hook but no base class"
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    name = BASES[kind].__name__
    assert re.search(rf"^\.\. autoclass:: gridkit\.{name}\s*$", api, re.MULTILINE), (
        f"add '.. autoclass:: gridkit.{name}' to api.rst")


def test_every_page_is_in_the_toctree() -> None:
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   ([\w-]+)\s*$", index, re.MULTILINE))
    pages = {p.stem for p in DOCS.glob("*.rst")} - {"index"}
    assert pages <= listed, f"pages missing from index.rst's toctree: {sorted(pages - listed)}"
