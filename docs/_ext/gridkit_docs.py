"""Sphinx directives that generate gridkit's reference pages from the code itself.

The tables and listings in the docs come from the same objects the program uses, so they
cannot drift from it (the datasette approach):

``.. gridkit-components::``
    every registered built-in component, per kind, in a section of its own (title: kind and
    name): its summary, how pipeline.toml uses it, its plugin and class, the rest of its
    docstring, and its option table (type, default or required, one-of groups, tunable bounds,
    meaning).
``.. gridkit-components-index::``
    one table row per built-in component: kind, name (a link to its section), summary, plugin.
``.. gridkit-components-text::``
    the text of ``gridkit components --all``, as a literal block.
``.. gridkit-kinds::``
    one row per component kind: base class, registration hook, pipeline.toml section.
``.. gridkit-sections::``
    the component sections of pipeline.toml (``gridkit.runtime.pipeline_file.SECTIONS``).
``.. gridkit-fields:: dotted.path.ConfigClass``
    the option table of any attrs Config class (``[pipeline]``, ``[plugins]``, ...).
``.. gridkit-command:: gridkit ARGS``
    runs the CLI in-process and shows its output; with content, the content is written to a
    temporary folder as ``pipeline.toml`` (next to a link ``data`` to ``examples/data``) and the
    command runs there. ``:exit: N`` states the expected exit status; a different
    status is a build warning (an error under ``-W``). ``:plugin: path/to/package`` registers a
    plugin package from its source tree as well (see :func:`builtin_host`).
``.. gridkit-summary-fields::``
    a hand-written definition list of run summary keys, checked against the keys a real run of
    ``examples/pipeline.toml`` returns: a key missing from either side is a build warning.
``.. gridkit-store-schema::``
    the tables and columns the ``sqlite`` store creates, from
    :data:`gridkit.runtime.store_schema.TABLES`.
``.. gridkit-testing::`` with ``:what: fixtures`` or ``:what: contracts``
    the pytest fixtures, or the contract test bases, that :mod:`gridkit.testing` provides.

Every component is read with third-party plugins switched off (``GRIDKIT_LOAD_PLUGINS=""``),
so what is installed next to gridkit does not change its reference.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import re
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.parsing import nested_parse_to_nodes

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pipeline.toml"

#: Heading per kind; a kind not listed here (a new one) gets its own name, capitalised.
KIND_TITLES = {
    "source": "Sources",
    "validator": "Validators",
    "feature": "Features",
    "signal": "Signals",
    "attention": "Attention",
    "regime": "Regime rules",
    "strategy": "Grid strategies",
    "filter": "Signal filters",
    "risk": "Risk checks",
    "executor": "Executors",
    "monitor": "Monitors",
    "feedback": "Feedback",
    "optimizer": "Optimizers",
    "store": "Stores",
    "bus": "Event buses",
}


# --- reading the code ---------------------------------------------------------------------------


@contextlib.contextmanager
def builtin_host(*packages: Path) -> Iterator[Any]:
    """A plugin host with gridkit's built-ins only, made the process-wide host meanwhile.

    ``packages`` are folders of plugin packages (with a pyproject.toml, e.g.
    ``plugins-contrib/gridkit-ewma``) to register as well, from their source tree, exactly as
    their ``gridkit`` entry points would be: so the docs show a plugin whether or not it is
    installed where they are built.
    """
    from gridkit.core.plugins import new_host, set_host

    host = new_host(env={"GRIDKIT_LOAD_PLUGINS": ""})
    for folder in packages:
        register_source_plugin(host, folder)
    old = set_host(host)
    try:
        yield host
    finally:
        set_host(old)


def register_source_plugin(host: Any, folder: Path) -> None:
    """Register the ``gridkit`` entry points of the package in ``folder`` from its sources."""
    import sys

    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    meta = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    project = meta["project"]
    where = (meta.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
             .get("where", ["."]))
    for sub in reversed(where):
        path = str((folder / sub).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    entry_points = project.get("entry-points", {}).get("gridkit", {})
    if not entry_points:
        raise ValueError(f"{folder} declares no 'gridkit' entry point")
    for name, value in entry_points.items():
        module_name, _, attr = value.partition(":")
        obj = importlib.import_module(module_name.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        if not host.register(obj, name, project["name"], project.get("version")):
            raise RuntimeError("; ".join(f.line() for f in host.failures))


def builtin_components() -> list[dict[str, Any]]:
    """``describe()`` of every registered built-in, in pipeline-kind order then by name."""
    from gridkit.core.registry import build_registry, describe

    with builtin_host() as host:
        registry = build_registry(host)
        if host.failures:
            raise RuntimeError("; ".join(f.line() for f in host.failures))
        return [dict(describe(r), cls=r.cls) for r in registry.all()]


def _section_of(kind: str) -> Any:
    from gridkit.runtime.pipeline_file import SECTIONS

    return next((s for s in SECTIONS if s.kind == kind), None)


def _section_syntax(section: Any) -> str:
    return f"[[{section.key}]]" if section.many else f"[{section.key}]"


# --- reST helpers -------------------------------------------------------------------------------


def lit(text: str) -> str:
    """``text`` as inline literal; falls back to :literal: role if it holds backticks."""
    text = str(text)
    if "`" in text:
        return ":literal:`" + text.replace("\\", "\\\\").replace("`", "\\`") + "`"
    return f"``{text}``"


def toml_value(value: Any) -> str:
    """A default as it would be written in pipeline.toml."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return lit("true" if value else "false")
    if isinstance(value, (int, float)):
        return lit(repr(value))
    return lit(json.dumps(value, default=str))


def cell(text: str) -> str:
    """One line of reST for a table cell (docs are short; newlines become spaces)."""
    return " ".join(str(text).split()) or "\\ "


def list_table(header: list[str], rows: list[list[str]], widths: list[int] | None = None,
               indent: str = "") -> list[str]:
    """A ``list-table`` directive as reST lines."""
    out = [f"{indent}.. list-table::", f"{indent}   :header-rows: 1"]
    if widths:
        out.append(f"{indent}   :widths: {' '.join(str(w) for w in widths)}")
    out.append("")
    for row in [header, *rows]:
        for i, value in enumerate(row):
            out.append(f"{indent}   {'*' if i == 0 else ' '} - {cell(value)}")
    out.append("")
    return out


def default_cell(f: dict[str, Any]) -> str:
    """What the Default column says of an option: required, or its default and the groups it
    is one of; and the bounds it may be tuned within while a run goes on."""
    if f["required"]:
        parts = ["**required**"]
    else:
        parts = [toml_value(f["default"])]
        parts += [f"**one of** {', '.join(lit(n) for n in g)} is required"
                  for g in f.get("one_of") or ()]
    if f.get("tunable"):
        low, high = f["tunable"]
        parts.append(f"tunable in [{low!r}, {high!r}]")
    return "; ".join(parts)


def options_table(fields: list[dict[str, Any]], indent: str = "") -> list[str]:
    """The option table of a Config, from ``describe_fields``."""
    if not fields:
        return [f"{indent}No options.", ""]
    rows = [[lit(f["name"]), lit(f["type"]), default_cell(f), f["doc"] or "*(undocumented)*"]
            for f in fields]
    return list_table(["Option", "Type", "Default", "Meaning"], rows, [18, 20, 22, 40], indent)


def split_docstring(cls: type) -> tuple[str, str]:
    """A class's own docstring as (first paragraph: the summary, the rest)."""
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    head, _, rest = doc.partition("\n\n")
    return head.strip(), rest.strip()


def heading(text: str, char: str) -> list[str]:
    """A section title; the underline is as long as the title."""
    return [text, char * max(len(text), 4), ""]


# --- directives ---------------------------------------------------------------------------------


class _Generated(SphinxDirective):
    """A directive whose output is reST generated from the code."""

    def parse(self, lines: list[str], what: str) -> list[nodes.Node]:
        return nested_parse_to_nodes(self.state, "\n".join(lines), source=f"<{what}>")

    def fail(self, err: BaseException) -> list[nodes.Node]:
        logger.warning("%s: %s: %s", self.name, type(err).__name__, err,
                       location=self.get_location())
        return []


_PLACEHOLDER = re.compile(r"gridkit-docstring-(\d+)-(head|rest)")


def _invalid(node: nodes.Node) -> bool:
    """True if a parsed tree holds a parse error or a reference nothing can resolve.

    Substitutions and ``name_`` references are only resolved (and complained about) by
    transforms after parsing, so they are looked for here.
    """
    if not isinstance(node, nodes.Element):
        return False
    bad = (nodes.system_message, nodes.problematic, nodes.substitution_reference)
    if isinstance(node, bad) or node.get("refname"):
        return True
    return any(_invalid(child) for child in node.children)


class ComponentsDirective(_Generated):
    """Per kind, every built-in component: docstring, origin and options."""

    option_spec = {"kind": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        from gridkit.core.components import BASES
        from gridkit.core.hookspecs import KIND_HOOKS

        try:
            items = builtin_components()
        except Exception as err:
            return self.fail(err)
        wanted = self.options.get("kind")
        kinds = [wanted] if wanted else list(KIND_HOOKS)
        lines: list[str] = []
        docs: list[dict[str, Any]] = []
        for kind in kinds:
            if kind not in KIND_HOOKS:
                return self.fail(ValueError(f"unknown kind {kind!r}"))
            base = BASES[kind]
            section = _section_of(kind)
            where = (f"pipeline.toml section {lit(_section_syntax(section))}" if section
                     else "not a pipeline.toml section yet")
            lines += [f".. _kind-{kind}:", ""]
            lines += heading(f"{KIND_TITLES.get(kind, kind.capitalize())} ({kind})", "=")
            lines += [f"Base class :class:`gridkit.{base.__name__}`; registered through "
                      f":func:`~gridkit.core.hookspecs.{KIND_HOOKS[kind]}`; {where}.", ""]
            of_kind = [c for c in items if c["kind"] == kind]
            if not of_kind:
                lines += ["No built-in component of this kind yet.", ""]
            for c in of_kind:
                lines += self.component(c, len(docs))
                docs.append(c)
        for c in items:  # rebuild this page when a component's source changes
            with contextlib.suppress(TypeError, OSError):
                self.env.note_dependency(inspect.getsourcefile(c["cls"]) or __file__)
        parsed = self.parse(lines, "gridkit-components")
        # Each docstring is parsed on its own and put where its placeholder paragraph is.
        for node in parsed:
            if not isinstance(node, nodes.Element):
                continue
            for para in list(node.findall(nodes.paragraph)):
                match = _PLACEHOLDER.fullmatch(para.astext())
                if match:
                    c = docs[int(match.group(1))]
                    head, rest = split_docstring(c["cls"])
                    text = head if match.group(2) == "head" else rest
                    para.replace_self(self.docstring(c, text) if text else [])
        return parsed

    def docstring(self, c: dict[str, Any], doc: str) -> list[nodes.Node]:
        """Part of a component's docstring as reST, or as plain paragraphs if it is not valid
        reST.

        A docstring that is not valid reST (``|x|`` read as a substitution, say) would fail the
        build under ``-W``; it is shown as plain text instead, and ``tests/test_docs.py``
        reports it.
        """
        cls = c["cls"]
        doc = doc or "*(no docstring)*"
        where = f"docstring of {cls.__module__}.{cls.__qualname__}"
        reporter = self.state.document.reporter
        level = reporter.report_level
        reporter.report_level = reporter.SEVERE_LEVEL + 1  # parse quietly, then look
        try:
            parsed = nested_parse_to_nodes(self.state, doc, source=where,
                                           allow_section_headings=False)
        finally:
            reporter.report_level = level
        if not any(_invalid(node) for node in parsed):
            return parsed
        logger.info("%s is not valid reST; shown as plain text", where)
        return [nodes.paragraph(block, block) for block in doc.split("\n\n")]

    @staticmethod
    def component(c: dict[str, Any], index: int) -> list[str]:
        """One component's section: title (kind and name), summary, where it comes from, the
        rest of its docstring, its options. The docstring's parts are placeholders here, each
        parsed on its own by :meth:`run`."""
        dist = f" (distribution {lit(c['distribution'])})" if c["distribution"] else ""
        section = _section_of(c["kind"])
        table = f" in a {lit(_section_syntax(section))} table" if section else ""
        lines = [f".. _component-{c['kind']}-{c['name']}:", ""]
        lines += heading(f"{c['kind']} {lit(c['name'])}", "-")
        lines += [f"gridkit-docstring-{index}-head", ""]
        lines += [f":Use: {lit('use = ' + json.dumps(c['name']))}{table}",
                  f":Plugin: {lit(c['plugin'])}{dist}",
                  f":Class: {lit(c['class'])}"]
        if c["replaces"]:
            lines.append(f":Replaces: the {c['kind']} {lit(c['replaces'])} of another plugin")
        groups = c.get("one_of") or []
        if groups:
            lines.append(":Requires: " + "; ".join(
                f"at least one of {', '.join(lit(n) for n in g)}" for g in groups))
        lines.append("")
        lines += [f"gridkit-docstring-{index}-rest", ""]
        lines += [".. rubric:: Options", ""]
        lines += options_table(c["config"])
        return lines


class ComponentsIndexDirective(_Generated):
    """One row per built-in component, each linking to its section."""

    def run(self) -> list[nodes.Node]:
        from gridkit.core.hookspecs import KIND_HOOKS

        try:
            items = builtin_components()
        except Exception as err:
            return self.fail(err)
        order = {k: i for i, k in enumerate(KIND_HOOKS)}
        rows = [[f":ref:`{c['kind']} <kind-{c['kind']}>`",
                 f":ref:`{c['name']} <component-{c['kind']}-{c['name']}>`",
                 c["summary"] or "—", lit(c["plugin"])]
                for c in sorted(items, key=lambda c: (order.get(c["kind"], 99), c["name"]))]
        lines = list_table(["Kind", "Name", "Summary", "Plugin"], rows, [12, 20, 52, 16])
        return self.parse(lines, "gridkit-components-index")


class ComponentsTextDirective(_Generated):
    """``gridkit components --all`` as the CLI prints it."""

    option_spec = {"kind": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        from gridkit.cli import render_components

        try:
            items = builtin_components()
        except Exception as err:
            return self.fail(err)
        kind = self.options.get("kind")
        for c in items:
            c.pop("cls")
        items = [c for c in items if kind is None or c["kind"] == kind]
        command = "$ gridkit components --all" + (f" --kind {kind}" if kind else "")
        text = command + "\n" + render_components(items, show_all=True)
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


class KindsDirective(_Generated):
    """One row per component kind."""

    def run(self) -> list[nodes.Node]:
        from gridkit.core.components import BASES
        from gridkit.core.hookspecs import KIND_HOOKS

        rows = []
        for kind, hook in KIND_HOOKS.items():
            section = _section_of(kind)
            rows.append([
                f":ref:`{kind} <kind-{kind}>`",
                f":class:`gridkit.{BASES[kind].__name__}`",
                f":func:`~gridkit.core.hookspecs.{hook}`",
                lit(_section_syntax(section)) if section else "—",
            ])
        lines = list_table(["Kind", "Base class", "Registration hook", "pipeline.toml"], rows,
                           [14, 26, 36, 24])
        return self.parse(lines, "gridkit-kinds")


class SectionsDirective(_Generated):
    """The component sections of pipeline.toml, from ``SECTIONS``."""

    def run(self) -> list[nodes.Node]:
        from gridkit.runtime.pipeline_file import SECTIONS

        try:
            items = builtin_components()
        except Exception as err:
            return self.fail(err)
        rows = []
        for s in SECTIONS:
            if s.required:
                default = "**required**"
            elif s.default:
                default = ", ".join(lit(d) for d in s.default)
            else:
                default = "none"
            names = [c["name"] for c in items if c["kind"] == s.kind]
            builtins = ", ".join(f":ref:`{n} <component-{s.kind}-{n}>`" for n in names)
            rows.append([lit(_section_syntax(s)), f":ref:`{s.kind} <kind-{s.kind}>`",
                         "many" if s.many else "one", default, builtins or "—"])
        lines = list_table(["Section", "Kind", "Components", "When absent", "Built-ins"], rows,
                           [16, 12, 10, 24, 38])
        return self.parse(lines, "gridkit-sections")


class FieldsDirective(_Generated):
    """The option table of an attrs class named by its dotted path."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from gridkit.core.config import describe_fields

        path = self.arguments[0]
        try:
            module, _, name = path.rpartition(".")
            cls = getattr(importlib.import_module(module), name)
            lines = options_table(describe_fields(cls))
        except Exception as err:
            return self.fail(err)
        return self.parse(lines, f"gridkit-fields {path}")


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_cli(args: list[str], cwd: Path, packages: tuple[Path, ...] = ()) -> tuple[int, str]:
    """Run ``gridkit ARGS`` in-process with the built-ins (and ``packages``) only.

    Returns (exit status, stdout and stderr).
    """
    from gridkit.cli import main

    out = io.StringIO()
    code = 0
    with builtin_host(*packages), _chdir(cwd), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(out):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue().rstrip("\n")


class CommandDirective(_Generated):
    """Run a gridkit command and show what it prints."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = {"exit": directives.nonnegative_int, "plugin": directives.path}

    def run(self) -> list[nodes.Node]:
        words = shlex.split(self.arguments[0])
        if not words or words[0] != "gridkit":
            return self.fail(ValueError("the command must start with 'gridkit'"))
        expected = self.options.get("exit", 0)
        packages: tuple[Path, ...] = ()
        if "plugin" in self.options:
            _, folder = self.env.relfn2path(self.options["plugin"], self.env.docname)
            packages = (Path(folder),)
            self.env.note_dependency(str(Path(folder) / "pyproject.toml"))
        try:
            if self.content:
                with tempfile.TemporaryDirectory() as tmp:
                    Path(tmp, "pipeline.toml").write_text("\n".join(self.content) + "\n")
                    # The example data, so that ``path = "data/..."`` works as in examples/.
                    Path(tmp, "data").symlink_to(REPO / "examples" / "data",
                                                 target_is_directory=True)
                    code, text = run_cli(words[1:], Path(tmp), packages)
            else:
                code, text = run_cli(words[1:], REPO, packages)
        except Exception as err:
            return self.fail(err)
        if code != expected:
            logger.warning("%s: %r exited with %s, expected %s:\n%s", self.name,
                           self.arguments[0], code, expected, text, location=self.get_location())
        shown = f"$ {self.arguments[0]}\n{text}"
        if code:
            shown += f"\n$ echo $?\n{code}"
        block = nodes.literal_block(shown, shown)
        block["language"] = "text"
        return [block]


_summary_cache: dict[str, Any] = {}


def example_summary() -> dict[str, Any]:
    """The summary of a real run of examples/pipeline.toml (run once per build)."""
    if "summary" not in _summary_cache:
        import gridkit

        with builtin_host():
            _summary_cache["summary"] = gridkit.run(EXAMPLE)
    return _summary_cache["summary"]


class SummaryFieldsDirective(_Generated):
    """A definition list of summary keys, checked against a real run's summary."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        parsed = nested_parse_to_nodes(self.state, self.content, offset=self.content_offset,
                                       keep_title_context=True)
        documented: set[str] = set()
        for node in parsed:
            if not isinstance(node, nodes.Element):
                continue
            for term in node.findall(nodes.term):
                documented.update(lit.astext() for lit in term.findall(nodes.literal))
        try:
            actual = set(example_summary())
        except Exception as err:
            return self.fail(err)
        missing, extra = sorted(actual - documented), sorted(documented - actual)
        if missing or extra:
            logger.warning("%s: summary keys not documented: %s; documented but not in the "
                           "summary: %s", self.name, ", ".join(missing) or "none",
                           ", ".join(extra) or "none", location=self.get_location())
        return parsed


class StoreSchemaDirective(_Generated):
    """Tables and columns of the ``sqlite`` store, from its one declaration (which
    ``tests/test_store_schema.py`` holds to the databases sqlite-utils makes from it)."""

    def run(self) -> list[nodes.Node]:
        from gridkit.runtime.store_schema import BY_NAME

        rows = []
        for t in BY_NAME.values():
            cols = "; ".join(f"``{c.name}`` ({c.type.__name__}{', key' if c.name == t.pk else ''})"
                             f" {c.doc}" for c in t.columns)
            rows.append([lit(t.name), f"{t.doc} {cols}"])
        return self.parse(list_table(["Table", "What it holds, and its columns"], rows,
                                     [14, 86]), "gridkit-store-schema")


class TestingDirective(_Generated):
    """The fixtures and contract bases of :mod:`gridkit.testing`, from the module itself."""

    option_spec = {"what": lambda arg: directives.choice(arg, ("fixtures", "contracts"))}

    def run(self) -> list[nodes.Node]:
        try:
            import gridkit.testing as testing

            source = inspect.getsource(testing)
            lines = (self.fixtures(testing, source) if self.options.get("what") == "fixtures"
                     else self.contracts(testing))
        except Exception as err:
            return self.fail(err)
        return self.parse(lines, "gridkit-testing")

    @staticmethod
    def fixtures(testing: Any, source: str) -> list[str]:
        found = []
        for name, obj in vars(testing).items():
            marker = (getattr(obj, "_fixture_function_marker", None)
                      or getattr(obj, "_pytestfixturefunction", None))
            if marker is None:
                continue
            where = source.find(f"def {name}(")
            doc = inspect.cleandoc(obj.__doc__ or "").split("\n\n")[0]
            found.append((where, [lit(name), marker.scope, doc or "*(no docstring)*"]))
        if not found:
            raise ValueError("gridkit.testing defines no fixtures")
        rows = [row for _, row in sorted(found)]
        return list_table(["Fixture", "Scope", "What it gives"], rows, [26, 10, 64])

    @staticmethod
    def contracts(testing: Any) -> list[str]:
        base = testing.ComponentContract
        rows = []
        for kind, cls in [("any", base), *testing.CONTRACTS.items()]:
            if cls is not base and not issubclass(cls, base):
                raise TypeError(f"{cls.__name__} does not subclass {base.__name__}")
            tests = [n for n in vars(cls) if n.startswith("test_")]
            doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
            rows.append([f":class:`~gridkit.testing.{cls.__name__}`", lit(kind), doc,
                         ", ".join(lit(t) for t in tests) or "—"])
        return list_table(["Base class", "Kind", "Promise", "Checks"], rows, [20, 10, 40, 30])


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("gridkit-components", ComponentsDirective)
    app.add_directive("gridkit-components-index", ComponentsIndexDirective)
    app.add_directive("gridkit-components-text", ComponentsTextDirective)
    app.add_directive("gridkit-kinds", KindsDirective)
    app.add_directive("gridkit-sections", SectionsDirective)
    app.add_directive("gridkit-fields", FieldsDirective)
    app.add_directive("gridkit-command", CommandDirective)
    app.add_directive("gridkit-summary-fields", SummaryFieldsDirective)
    app.add_directive("gridkit-store-schema", StoreSchemaDirective)
    app.add_directive("gridkit-testing", TestingDirective)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}

