"""Building a pipeline: every component looked up and configured once, one lane per symbol.

A lane is what one symbol runs: its source, validators, features, attention, regime rules,
strategy and filters, built from the pipeline's sections with the symbol's ``[lanes."SYMBOL"]``
overrides. The risk checks, executor, monitors, feedback and store are shared by every lane.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

import attrs
from attrs import define, field

from gridkit.core.components import (
    Attention,
    Component,
    Executor,
    Feature,
    Feedback,
    Monitor,
    Regime,
    RiskCheck,
    SignalFilter,
    SignalGenerator,
    Source,
    Store,
    Strategy,
    Validator,
)
from gridkit.core.errors import ConfigError, GridkitError, PluginError
from gridkit.core.plugins import PluginHost, get_host
from gridkit.core.registry import Registration, Registry, build_registry
from gridkit.runtime.context import RunInfo
from gridkit.runtime.pipeline_file import (
    SECTION_BY_KEY,
    ComponentSpec,
    MarketSection,
    PipelineConfig,
    structure_options,
)

#: Sections every lane has its own components of.
LANE_KEYS = ("source", "validators", "features", "signals", "attention", "regimes", "strategy",
             "filters")
#: Sections shared by all lanes.
SHARED_KEYS = ("risk", "executor", "monitors", "feedback", "store")


@define
class Lane:
    """The components one symbol runs."""

    index: int
    symbol: str
    market: MarketSection
    source: Source
    validators: list[Validator]
    features: list[tuple[str, Feature]]
    signals: list[SignalGenerator]
    attention: list[Attention]
    regimes: list[Regime]
    strategy: Strategy
    filters: list[SignalFilter]
    #: The symbol's market rules from ``[market] markets`` (a
    #: :class:`gridkit.trading.markets.MarketInfo`), or None.
    info: Any = None

    def components(self) -> list[Component]:
        """The lane's components, in pipeline order."""
        return [self.source, *self.validators, *(f for _, f in self.features), *self.signals,
                *self.attention, *self.regimes, self.strategy, *self.filters]


@define
class Pipeline:
    """A pipeline whose components are built and ready to run."""

    config: PipelineConfig
    run: RunInfo
    host: PluginHost
    registry: Registry
    lanes: list[Lane]
    risk: list[RiskCheck]
    executor: Executor
    monitors: list[Monitor]
    feedback: Feedback | None
    store: Store
    #: id(component) -> (spec, registration): who to blame when a component raises.
    origins: dict[int, tuple[ComponentSpec, Registration]] = field(factory=dict)

    # The first lane's components, for one-symbol pipelines and the tools that show them.
    source = property(lambda self: self.lanes[0].source)
    validators = property(lambda self: self.lanes[0].validators)
    features = property(lambda self: self.lanes[0].features)
    signals = property(lambda self: self.lanes[0].signals)
    attention = property(lambda self: self.lanes[0].attention)
    regimes = property(lambda self: self.lanes[0].regimes)
    strategy = property(lambda self: self.lanes[0].strategy)
    filters = property(lambda self: self.lanes[0].filters)

    def components(self) -> list[Component]:
        """Every component: each lane's in pipeline order, then the shared ones."""
        out: list[Component] = [c for lane in self.lanes for c in lane.components()]
        out += [*self.risk, self.executor, *self.monitors]
        if self.feedback is not None:
            out.append(self.feedback)
        out.append(self.store)
        return out

    def origin(self, component: Component) -> tuple[ComponentSpec, Registration]:
        """The spec and registration a component was built from."""
        return self.origins[id(component)]


def check_requirements(requirements: list[str], host: PluginHost | None = None) -> list[str]:
    """Problems with ``[plugins] require``: each distribution missing, too old, or not loaded."""
    if not requirements:  # packaging's regexes take ~60 ms to compile: only when needed
        return []
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    problems = []
    for i, text in enumerate(requirements):
        try:
            req = Requirement(text)
        except InvalidRequirement as err:
            problems.append(f"plugins.require[{i}]: not a requirement: {text!r} ({err})")
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"plugins.require[{i}]: required plugin distribution '{req.name}' "
                            f"is not installed (pip install '{text}')")
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(f"plugins.require[{i}]: '{req.name}' {version} is installed, "
                            f"but the pipeline requires {text}")
            continue
        loaded = {canonicalize_name(d) for d in (host.distributions.values() if host else ())
                  if d}
        if host is not None and canonicalize_name(req.name) not in loaded:
            problems.append(f"plugins.require[{i}]: '{req.name}' is installed but its plugins "
                            f"are not loaded (see GRIDKIT_LOAD_PLUGINS / GRIDKIT_DISABLE_PLUGINS "
                            f"and 'gridkit plugins')")
    return problems


class _Builder:
    """Builds components from specs, collecting every problem."""

    def __init__(self, config: PipelineConfig, registry: Registry,
                 store_path: str | None) -> None:
        self.config, self.registry, self.store_path = config, registry, store_path
        self.problems: list[str] = []
        self.origins: dict[int, tuple[ComponentSpec, Registration]] = {}

    def section(self, key: str, specs: list[ComponentSpec], label: str = "") -> list[Any]:
        out = []
        for spec in specs:
            if key == "store" and self.store_path is not None:
                spec = ComponentSpec(spec.use, {**spec.options, "path": self.store_path},
                                     spec.path)
            built = construct(self.registry, self.problems, SECTION_BY_KEY[key].kind, spec)
            if built is None:
                continue
            component, reg = built
            if label:  # one component per lane: say which in errors and the summary
                spec = ComponentSpec(spec.use, spec.options, f"{spec.path}{label}", spec.key)
            self.origins[id(component)] = (spec, reg)
            out.append(component)
        return out


def construct(registry: Registry, problems: list[str], kind: str, spec: ComponentSpec
              ) -> tuple[Component, Registration] | None:
    """Look ``spec`` up among the components of ``kind``, configure and build it, and build
    what it is made of (:meth:`Component.compose`); None after appending what is wrong to
    ``problems``. A plugin's unexpected exception is a :class:`PluginError`."""
    try:
        reg = registry.get(kind, spec.use, where=spec.path)
    except ConfigError as err:
        problems.extend(err.problems)
        return None
    cfg, errs = structure_options(spec, reg.cls.Config)
    if errs:
        problems.extend(errs)
        return None
    try:
        component: Component = reg.cls(cfg)
    except GridkitError as err:
        problems.append(f"{spec.path}: {err}")
        return None
    except Exception as err:
        raise PluginError(f"{spec.path}: {reg.kind} '{reg.name}' (plugin {reg.origin}) "
                          f"failed to build: {type(err).__name__}: {err}") from err

    def child(kind: str, table: Mapping[str, Any], path: str,
              defaults: Mapping[str, Any] | None = None) -> Component | None:
        return build_child(registry, problems, kind, table, path, defaults)

    try:
        component.compose(child)
    except GridkitError as err:
        problems.append(str(err))
        return None
    return component, reg


def build_child(registry: Registry, problems: list[str], kind: str, table: Mapping[str, Any],
                path: str, defaults: Mapping[str, Any] | None = None) -> Component | None:
    """Build the component of kind ``kind`` that ``table`` describes (``use`` and its options)
    for :meth:`Component.compose`; ``defaults`` fill the options its Config has and the table
    does not give. None after appending what is wrong to ``problems``."""
    if not isinstance(table, Mapping) or not isinstance(table.get("use"), str):
        problems.append(f"{path}: expected a table with use = \"name\"")
        return None
    options = {k: v for k, v in table.items() if k != "use"}
    if defaults:
        try:
            names = {a.alias for a in attrs.fields(registry.get(kind, table["use"]).cls.Config)}
        except ConfigError:
            names = set()  # (construct says what is wrong with the name)
        for key, value in defaults.items():
            if key in names:
                options.setdefault(key, value)
    built = construct(registry, problems, kind, ComponentSpec(table["use"], options, path))
    return built[0] if built is not None else None


def build_pipeline(config: PipelineConfig, host: PluginHost | None = None, *,
                   store_path: str | None = None) -> Pipeline:
    """Look up and configure every component (step 2); raise ConfigError listing all problems."""
    host = host if host is not None else get_host()
    problems = check_requirements(config.plugins.require, host)
    if problems:
        raise PluginError("; ".join(problems))
    registry = build_registry(host, exclude=config.plugins.disable)
    section = config.pipeline
    symbols = section.all_symbols
    run = RunInfo(section.name, section.mode, symbols[0], section.capital, config.base_dir,
                  symbols, markets=dict(config.markets))
    b = _Builder(config, registry, store_path)
    lanes: list[Lane] = []
    for i, sym in enumerate(symbols):
        own = config.lanes.get(sym, {})
        label = f"@{sym}" if len(symbols) > 1 else ""
        built = {key: b.section(key, own.get(key, config.components[key]), label)
                 for key in LANE_KEYS}
        if not built["source"] or not built["strategy"]:
            continue
        feature_specs = own.get("features", config.components["features"])
        lanes.append(Lane(
            index=i, symbol=sym, market=config.markets.get(sym, MarketSection()),
            source=built["source"][0], validators=built["validators"],
            features=[(spec.key or spec.use, f)
                      for spec, f in zip(feature_specs, built["features"], strict=False)],
            signals=built["signals"], attention=built["attention"], regimes=built["regimes"],
            strategy=built["strategy"][0], filters=built["filters"]))
    shared = {key: b.section(key, _shared_specs(config, key, lanes)) for key in SHARED_KEYS}
    problems = b.problems
    if problems:
        raise ConfigError(problems, config.source)
    pipeline = Pipeline(
        config=config, run=run, host=host, registry=registry, lanes=lanes,
        risk=shared["risk"], executor=shared["executor"][0], monitors=shared["monitors"],
        feedback=(shared["feedback"] or [None])[0], store=shared["store"][0],
        origins=b.origins)
    problems = [p for lane in lanes for p in _lane_checks(pipeline, lane)]
    refused: set[int] = set()
    own: list[str] = []
    for component in pipeline.components():
        try:
            component.validate(run)
        except GridkitError as err:
            spec, _ = pipeline.origin(component)
            own.append(f"{spec.path}: {err}")
            refused.add(id(component))
    problems += _mode_checks(pipeline, refused) + own + _risk_conflicts(pipeline)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)), config.source)
    return pipeline


def _lane_checks(p: Pipeline, lane: Lane) -> list[str]:
    problems = []
    _, src_reg = p.origin(lane.source)
    provides = lane.source.provides
    for _, feature in lane.features:
        spec, reg = p.origin(feature)
        missing = sorted(feature.inputs - provides)
        if missing:
            problems.append(f"{spec.path}: feature '{reg.name}' reads {', '.join(missing)}, "
                            f"which source '{src_reg.name}' does not provide "
                            f"(it provides {', '.join(sorted(provides))})")
    keys = {k for k, _ in lane.features}
    label_rules = [p.origin(r)[0].path for r in lane.regimes if r.labels]
    if label_rules and len(lane.regimes) > 1:
        problems.append(f"{label_rules[0]}: a label rule decides the regime alone; "
                        f"{len(lane.regimes) - 1} more [[regimes]] rule(s) listed beside it "
                        f"(use one label rule, or score rules only)")
    # Regimes, and a strategy that reads features (``requires_features``, as a regime's).
    for rule in [*lane.regimes, lane.strategy]:
        spec, reg = p.origin(rule)
        for need in getattr(rule, "requires_features", ()):
            if need not in keys:
                problems.append(f"{spec.path}: {reg.kind} '{reg.name}' reads feature '{need}', "
                                f"which no [[features]] entry provides (add use = \"{need}\")")
    # A strategy that maps regime labels (``regime_labels``, as the regime-selector's map):
    # every label must be one a regime rule of the lane can give.
    wanted = getattr(lane.strategy, "regime_labels", ())
    if wanted:
        spec, reg = p.origin(lane.strategy)
        given: set[str] = set()
        for rule in lane.regimes:
            given.update(getattr(rule, "labels", ()) or (rule.label,))
        for label in wanted:
            if label not in given:
                problems.append(f"{spec.path}.map.{label}: no regime rule of the pipeline "
                                f"labels bars {label!r} (they give: "
                                f"{', '.join(sorted(given)) or 'none: add [[regimes]]'})")
    m = lane.market
    where = f'lanes."{lane.symbol}".market' if len(p.lanes) > 1 else "market"
    live = p.run.mode == "live"
    if m.type == "linear" and not m.funding and not live:
        problems.append(f"{where}.funding: a linear perpetual needs its funding-rate file")
    if m.type == "linear" and live and (m.funding or m.mark):
        problems.append(f"{where}: a live run books the funding the exchange charges (its "
                        f"executor reports it); remove funding and mark")
    if m.type == "spot" and (m.funding or m.mark or m.leverage != 1.0):
        problems.append(f"{where}: funding, mark and leverage are for type = \"linear\"")
    for name in ("markets", "funding", "mark"):
        path = getattr(m, name)
        if path and not p.run.resolve(path).is_file():
            problems.append(f"{where}.{name}: file not found: {p.run.resolve(path)}")
            return problems
    if m.markets:
        from gridkit.trading.markets import get_market, load_markets

        try:
            lane.info = get_market(load_markets(p.run.resolve(m.markets)), lane.symbol,
                                   source=m.markets)
        except GridkitError as err:
            problems.append(f"{where}.markets: {err}")
            return problems
        kind = "linear" if lane.info.kind != "spot" else "spot"
        if kind != m.type:
            problems.append(f"{where}.type: '{m.type}', but {m.markets} says {lane.symbol} is "
                            f"{lane.info.kind}")
    return problems


def _shared_specs(config: PipelineConfig, key: str, lanes: list[Lane]) -> list[ComponentSpec]:
    """The specs of a shared section. A paper run without an ``[executor]`` table gets the
    ``paper`` executor (fills from the live prints) when every lane's source provides trades,
    and the bar model of ``simulated`` otherwise."""
    specs = config.components[key]
    if (key == "executor" and config.pipeline.mode == "paper" and "executor" not in config.raw
            and lanes and all("trades" in lane.source.provides for lane in lanes)):
        return [ComponentSpec("paper", {}, "executor")]
    return specs


def _risk_conflicts(p: Pipeline) -> list[str]:
    """Limits of the ``[[risk]]`` checks that contradict each other (``RiskCheck.conflicts``)."""
    problems = []
    for check in p.risk:
        others = [o for o in p.risk if o is not check]
        for line in check.conflicts(others):
            spec, _ = p.origin(check)
            problems.append(f"{spec.path}: {line}")
    return problems


def _mode_checks(p: Pipeline, refused: set[int] | None = None) -> list[str]:
    """What the run's mode asks of its sources and executor; ``refused``: the ids of the
    components whose own ``validate`` already said why they do not fit."""
    problems = []
    refused = refused or set()
    mode = p.run.mode
    _, ex_reg = p.origin(p.executor)
    for lane in p.lanes:
        _, src_reg = p.origin(lane.source)
        if mode == "backtest" and lane.source.live:
            problems.append(f"source: '{src_reg.name}' is a live source; backtests replay files")
        if mode in ("paper", "live") and not lane.source.live:
            problems.append(f"pipeline.mode: {mode} mode needs a live data source, "
                            f"and '{src_reg.name}' replays a file")
    if mode == "backtest" and p.executor.live:
        problems.append(f"executor: '{ex_reg.name}' sends real orders; backtests must simulate")
    if mode == "paper" and p.executor.live:
        problems.append(f"executor: paper mode simulates fills; '{ex_reg.name}' sends real orders")
    if mode == "live" and not p.executor.live and id(p.executor) not in refused:
        live = [r.name for r in p.registry.all("executor") if r.cls.live]
        hint = (f"use one of: {', '.join(live)}" if live
                else "no live executor is installed yet (the 'ccxt' executor is coming)")
        problems.append(f"executor: live mode needs an executor that sends real orders; {hint}")
    return problems
