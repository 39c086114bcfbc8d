"""pipeline.toml: its tables (``[pipeline]``, ``[market]``, ``[live]``, ``[plugins]``, the
component sections and ``[lanes]``) and the two-step parse.

Step 1 (:func:`parse_pipeline`) turns the TOML document into a :class:`PipelineConfig` whose
component sections are :class:`ComponentSpec` (a name plus raw options). Step 2
(:func:`structure_options`), after the registry lookup, structures the options into the component's
own ``Config`` class, refusing unknown keys. Every problem is collected with its TOML path
(``strategy.grids: expected int, got 'ten'``) and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any, Literal

from attrs import field, frozen

from gridkit.core.config import (
    OptionError,
    at_least,
    non_negative,
    option,
    optional,
    positive,
    structure,
)
from gridkit.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the py310 tox env
    import tomli as tomllib


# --- the pipeline.toml schema -------------------------------------------------------------------


@frozen
class PipelineSection:
    """The ``[pipeline]`` table: what is traded, how, and with how much."""

    symbol: str = option("", doc="Market symbol in ccxt form, e.g. 'BTC/USDT' (or give "
                                 "symbols).")
    symbols: list[str] = option(factory=list, doc="Several symbols in one run: one lane each, "
                                                  "sharing the account, risk and executor.")
    name: str = option("pipeline", doc="Name of the run in summaries and the store.")
    mode: Literal["backtest", "paper", "live"] = option(
        "backtest",
        doc="backtest: file replay; paper: live data, simulated fills; live: real orders.",
    )
    capital: float = option(10000.0, doc="Starting cash, in the quote currency.",
                            validator=positive())
    fuse_features: Literal["auto", "on", "off"] = option(
        "auto",
        doc="Run the built-in bar features as one compiled step per bar: auto (when it pays: "
            "3+ such features in paper/live runs, or backtests where features x events >= "
            "1.5M), on, off.",
    )
    fuse: Literal["auto", "on", "off"] = option(
        "auto",
        doc="Backtests: run the whole backtest as one compiled loop when every component has a "
            "fused form (gridkit.fused; same fills to the last bit): auto (when it pays: "
            "100,000+ bars), on (always; a pipeline without a fused form is refused with the "
            "reason), off.",
    )
    decide_on: list[str] = option(
        factory=lambda: ["bars"],
        doc="Event kinds the strategy decides on: bars, and also trades or book (quotes).")
    regime_dwell: int | None = option(
        None, doc="Minimum dwell of the regime label: a new label is adopted only after it is "
                  "the candidate on this many events in a row, so every label then holds at "
                  "least as long (1: none). Default 3, measured on real data "
                  "(benchmarks/regime_flicker.py).",
        validator=optional(at_least(1)))
    regime_hysteresis: float = option(
        0.0, doc="Score rules: a challenger label must score at least this much above the "
                 "incumbent's current score to replace it (0: the highest score wins).",
        validator=non_negative())
    start: str = option("", doc="Skip events before this time (ISO-8601 UTC or epoch ms).")
    end: str = option("", doc="Stop at events after this time (ISO-8601 UTC or epoch ms).")

    def __attrs_post_init__(self) -> None:
        if bool(self.symbol) == bool(self.symbols):
            raise OptionError("symbol", "give either symbol or symbols (a list)")
        seen: set[str] = set()
        for sym in self.symbols:
            if not sym.strip():
                raise OptionError("symbols", "a symbol is empty")
            if sym in seen:
                raise OptionError("symbols", f"'{sym}' is listed twice")
            seen.add(sym)
        bad = [k for k in self.decide_on if k not in ("bars", "trades", "book")]
        if bad or "bars" not in self.decide_on:
            raise OptionError("decide_on", f"expected bars plus any of trades, book; got "
                                           f"{self.decide_on!r}")
        times = {}
        for name in ("start", "end"):
            try:
                times[name] = parse_time(getattr(self, name))
            except ValueError as err:
                raise OptionError(name, str(err)) from None
        if None not in times.values() and times["end"] < times["start"]:  # type: ignore[operator]
            raise OptionError("end", f"{self.end!r} is before start {self.start!r}")

    @property
    def all_symbols(self) -> tuple[str, ...]:
        """The run's symbols, in lane order."""
        return tuple(self.symbols) if self.symbols else (self.symbol,)


def parse_time(text: str) -> int | None:
    """Epoch ms of an ISO-8601 UTC time or a number of ms; None for an empty string."""
    if not text:
        return None
    if text.strip().isdigit():
        return int(text)
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use ISO-8601 such as 2021-05-19T00:00 or "
                         f"epoch ms)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp() * 1000)


@frozen
class MarketSection:
    """The ``[market]`` table (per lane): the instrument a lane trades and its rules."""

    type: Literal["spot", "linear"] = option(
        "spot", doc="spot, or linear: a USDT-margined perpetual (long/short, margin, funding).")
    markets: str = option("", doc="Market metadata in ccxt's load_markets format (tick, lot, "
                                  "min notional, fees); checked against the data.")
    leverage: float = option(1.0, doc="Perpetuals: leverage of the position.",
                             validator=at_least(1))
    position_mode: Literal["one-way", "hedge"] = option(
        "one-way", doc="Perpetuals: one net position, or a long and a short one.")
    maintenance_margin_rate: float = option(
        0.004, doc="Perpetuals: maintenance margin rate (Binance bracket maintMarginRatio).",
        validator=non_negative())
    maintenance_amount: float = option(
        0.0, doc="Perpetuals: maintenance amount (Binance bracket cum).",
        validator=non_negative())
    funding: str = option("", doc="Perpetuals: funding-rate file (freqtrade feather, CSV "
                                  "ts,rate, or ccxt JSON); required for a linear market in "
                                  "backtests and paper runs (live: what the exchange charges).")
    mark: str = option("", doc="Perpetuals: mark-price file (candles); default: the close. "
                               "Not in live runs.")
@frozen
class LiveSection:
    """The ``[live]`` table: how a paper or live run starts, stays up and reports itself."""

    on_start: Literal["resume", "flatten", "refuse"] = option(
        "resume",
        doc="What a live run does with what the exchange holds at start: resume (reconcile "
            "the journal with the exchange and go on), flatten (cancel every open order of the "
            "run's symbols and close the position first) or refuse (stop if anything is open).")
    unknown_orders: Literal["report", "cancel"] = option(
        "report", doc="Open orders on the exchange that the journal does not know: report "
                      "them, or cancel them.")
    unsent: Literal["resend", "drop"] = option(
        "resend", doc="Orders the journal holds as requested that the exchange never got: "
                      "send them again (same client order id), or drop them (the strategy sees "
                      "a rejection).")
    heartbeat: float = option(30.0, doc="Seconds between heartbeat log lines (0: none).",
                              validator=non_negative())
    watchdog: float = option(120.0, doc="Seconds without market data before the watchdog "
                                        "warns (0: off).", validator=non_negative())
    grid_quiet: float = option(0.0, doc="Seconds without an order event before the watchdog "
                                        "says the grid has gone quiet (0: off).",
                               validator=non_negative())


@frozen
class PluginsSection:
    """The ``[plugins]`` table: distributions this pipeline needs, plugins it switches off."""

    require: list[str] = option(factory=list, doc="Requirements such as 'gridkit-acme>=0.2'.")
    disable: list[str] = option(factory=list, doc="Plugin or distribution names to leave out.")


@frozen
class Section:
    """A component section of pipeline.toml: its TOML key, component kind, and arity."""

    key: str
    kind: str
    many: bool
    default: tuple[str, ...] = ()
    required: bool = False


#: Component sections in pipeline order. ``default`` names are used when the section is absent.
SECTIONS: tuple[Section, ...] = (
    Section("source", "source", False, required=True),
    Section("validators", "validator", True, ("timestamp", "price", "volume", "ohlc")),
    Section("features", "feature", True),
    Section("signals", "signal", True),
    Section("attention", "attention", True),
    Section("regimes", "regime", True),
    Section("strategy", "strategy", False, required=True),
    Section("filters", "filter", True),
    Section("risk", "risk", True),
    Section("executor", "executor", False, ("simulated",)),
    Section("monitors", "monitor", True),
    Section("feedback", "feedback", False),
    Section("store", "store", False, ("sqlite",)),
)
SECTION_BY_KEY = {s.key: s for s in SECTIONS}
TOP_LEVEL = ("pipeline", "plugins", "market", "lanes", "live", *SECTION_BY_KEY)
#: Sections a ``[lanes."SYMBOL"]`` table may override: each lane has its own of these.
LANE_SECTIONS = ("source", "validators", "features", "signals", "attention", "regimes",
                 "strategy", "filters", "market")


@frozen
class ComponentSpec:
    """A component as pipeline.toml names it: ``use`` plus its raw options, before lookup."""

    use: str
    options: dict[str, Any]
    #: TOML path of the table, e.g. ``features[1]``; prefixes every error about it.
    path: str
    #: Key under which a feature's value is published (``ctx.features[key]``); default ``use``.
    key: str | None = None


@frozen
class PipelineConfig:
    """A parsed pipeline.toml: its sections, with components not yet looked up."""

    pipeline: PipelineSection
    plugins: PluginsSection
    #: section key -> component specs (a one-element list for single sections).
    components: dict[str, list[ComponentSpec]]
    #: The document as read, kept with the run in the store.
    raw: dict[str, Any]
    #: Where the pipeline came from (a file path or ``<string>``); relative paths resolve here.
    source: str = "<string>"
    base_dir: Path = field(factory=Path.cwd)
    #: The ``[market]`` table of each symbol (after its lane's override).
    markets: dict[str, MarketSection] = field(factory=dict)
    #: Per symbol, the component sections its ``[lanes."SYMBOL"]`` table overrides.
    lanes: dict[str, dict[str, list[ComponentSpec]]] = field(factory=dict)
    #: The ``[live]`` table (defaults when absent); read by paper and live runs.
    live: LiveSection = field(factory=LiveSection)


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and parse a pipeline.toml file (step 1); raise ConfigError for any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"pipeline file not found: {p}") from None
    except IsADirectoryError:
        raise ConfigError(f"pipeline path is a directory, not a file: {p}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read pipeline file {p}: {err}") from None
    return parse_pipeline(text, source=str(p), base_dir=p.resolve().parent)


def parse_pipeline(text: str, source: str = "<string>",
                   base_dir: Path | None = None) -> PipelineConfig:
    """Parse pipeline.toml text (step 1): check sections, split each component into a spec."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"TOML syntax error: {err}", source) from None
    return pipeline_from_data(data, source, base_dir)


def pipeline_from_data(data: dict[str, Any], source: str = "<string>",
                       base_dir: Path | None = None) -> PipelineConfig:
    """:func:`parse_pipeline` of pipeline.toml's tables, already read (an optimizer's trial:
    the same file with some options set)."""
    problems: list[str] = []

    for key in data:
        if key not in TOP_LEVEL:
            close = difflib.get_close_matches(key, TOP_LEVEL, n=1, cutoff=0.6)
            hint = f"did you mean [{close[0]}]? " if close else ""
            problems.append(f"unknown section [{key}]; {hint}sections are: {', '.join(TOP_LEVEL)}")

    pipeline = _structure_table(data, "pipeline", PipelineSection, problems, required=True)
    plugins = _structure_table(data, "plugins", PluginsSection, problems) or PluginsSection()
    live = _structure_table(data, "live", LiveSection, problems) or LiveSection()

    components: dict[str, list[ComponentSpec]] = {}
    for section in SECTIONS:
        if section.key not in data:
            if section.required:
                problems.append(f"missing section [{section.key}] (a {section.kind} to use)")
            components[section.key] = [
                ComponentSpec(name, {}, f"{section.key}[{i}]" if section.many else section.key)
                for i, name in enumerate(section.default)
            ]
            continue
        components[section.key] = _specs(section, data[section.key], problems)

    _check_feature_keys(components["features"], problems)
    market_table = data.get("market", {})
    markets: dict[str, MarketSection] = {}
    lanes: dict[str, dict[str, list[ComponentSpec]]] = {}
    symbols = pipeline.all_symbols if pipeline is not None else ()
    lane_tables = data.get("lanes", {})
    if not isinstance(lane_tables, dict):
        problems.append("lanes: expected tables [lanes.\"SYMBOL\".section]")
        lane_tables = {}
    for sym in lane_tables if pipeline is not None else ():  # symbols known only if valid
        if sym not in symbols:
            close = difflib.get_close_matches(sym, symbols, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"lanes.\"{sym}\": '{sym}' is not one of the pipeline's symbols"
                            f"{hint}: {', '.join(symbols)}")
    for sym in symbols:
        override = lane_tables.get(sym, {})
        where = f'lanes."{sym}"'
        if not isinstance(override, dict):
            problems.append(f"{where}: expected a table")
            continue
        own: dict[str, list[ComponentSpec]] = {}
        for key, value in override.items():
            if key not in LANE_SECTIONS:
                problems.append(f"{where}.{key}: a lane can override only "
                                f"{', '.join(LANE_SECTIONS)}")
            elif key != "market":
                own[key] = _lane_specs(SECTION_BY_KEY[key], components[key], value,
                                       f"{where}.{key}", problems)
        lanes[sym] = own
        if "features" in own:
            _check_feature_keys(own["features"], problems)
        table = dict(market_table) if isinstance(market_table, dict) else {}
        lane_market = override.get("market", {})
        if isinstance(lane_market, dict):
            table.update(lane_market)
        value, errs = structure(table, MarketSection,
                                f"{where}.market" if "market" in override else "market")
        problems.extend(errs)
        if value is not None:
            markets[sym] = value
    if problems:
        raise ConfigError(problems, source)
    return PipelineConfig(pipeline, plugins, components, data, source,
                          base_dir if base_dir is not None else Path.cwd(), markets, lanes,
                          live)


def _check_feature_keys(specs: list[ComponentSpec], problems: list[str]) -> None:
    keys: dict[str, str] = {}
    for spec in specs:
        k = spec.key or spec.use
        if k in keys:
            problems.append(f"{spec.path}: feature key '{k}' is used by {keys[k]} too; "
                            f"give one of them key = \"...\"")
        keys[k] = spec.path


def _lane_specs(section: Section, template: list[ComponentSpec], value: Any, path: str,
                problems: list[str]) -> list[ComponentSpec]:
    """A lane's specs for one section: a single section's options merge over the template's
    (``use`` may change); a list section is replaced whole."""
    if section.many:
        specs = _specs(section, value, problems)
        return [ComponentSpec(s.use, s.options, f"{path}{s.path[len(section.key):]}", s.key)
                for s in specs]
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a table")
        return list(template)
    base = template[0] if template else None
    use = value.get("use", base.use if base is not None else None)
    if not isinstance(use, str) or not use:
        problems.append(f"{path}.use: required: the name of the {section.kind} to use")
        return list(template)
    options = dict(base.options) if base is not None and use == base.use else {}
    options.update({k: v for k, v in value.items() if k != "use"})
    return [ComponentSpec(use, options, path)]


def _structure_table(data: dict[str, Any], key: str, cls: type, problems: list[str],
                     required: bool = False) -> Any:
    table = data.get(key)
    if table is None:
        if required:
            problems.append(f"missing section [{key}]")
        return None
    if not isinstance(table, dict):
        problems.append(f"{key}: expected a table [{key}], got {type(table).__name__}")
        return None
    value, errs = structure(table, cls, key)
    problems.extend(errs)
    return value


def _specs(section: Section, value: Any, problems: list[str]) -> list[ComponentSpec]:
    if section.many:
        tables = [value] if isinstance(value, dict) else value
        if not isinstance(tables, list):
            problems.append(f"{section.key}: expected [[{section.key}]] tables, "
                            f"got {type(value).__name__}")
            return []
        paths = [f"{section.key}[{i}]" for i in range(len(tables))]
    else:
        if not isinstance(value, dict):
            problems.append(f"{section.key}: expected a table [{section.key}], "
                            f"got {type(value).__name__}")
            return []
        tables, paths = [value], [section.key]

    specs = []
    for table, path in zip(tables, paths, strict=True):
        if not isinstance(table, dict):
            problems.append(f"{path}: expected a table, got {type(table).__name__}")
            continue
        use = table.get("use")
        if not isinstance(use, str) or not use:
            problems.append(f"{path}.use: required: the name of the {section.kind} to use")
            continue
        key = table.get("key")
        if key is not None and (not isinstance(key, str) or section.kind != "feature"):
            problems.append(f"{path}.key: only features take a key, and it must be a string")
            continue
        options = {k: v for k, v in table.items() if k not in ("use", "key")}
        specs.append(ComponentSpec(use, options, path, key))
    return specs


def structure_options(spec: ComponentSpec, config_cls: type) -> tuple[Any, list[str]]:
    """Step 2: a spec's options into its component's Config; returns (config, problems)."""
    return structure(spec.options, config_cls, spec.path)
