"""Component options: ``option()``, the value validators, the strict cattrs converter, and
:func:`structure`, which turns a TOML table into a frozen attrs ``Config`` collecting every
problem with its TOML path (``strategy.grids: expected int, got 'ten'``).

The pipeline.toml file itself — its tables and the two-step parse — is
:mod:`gridkit.runtime.pipeline_file`: the plugin contract needs only how a component declares
and receives its options.
"""

from __future__ import annotations

import difflib
import math
import sys
import typing
from collections.abc import Callable
from typing import Any, Literal

import attrs
import cattrs
from attrs import field

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised by the py310 tox env
    pass


class OptionError(ValueError):
    """Raised by a Config validator: ``option`` is the field at fault, the message says why."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(message)


# --- validators and field helpers for component Configs ----------------------------------------


def option(default: Any = attrs.NOTHING, *, doc: str = "",
           validator: Callable[..., Any] | None = None, factory: Any = None,
           tunable: tuple[float, float] | None = None) -> Any:
    """An attrs field for a Config, with a ``doc`` shown in ``gridkit components`` and the docs.

    A field without a default is a required option. ``tunable=(low, high)`` lets the option
    change while a run goes on (see :func:`gridkit.runtime.tuning.tune`): new values are
    validated like the TOML's, then clamped to [low, high].

    Options of which at least one must be set — each optional on its own — are named by the
    Config's ``one_of`` class attribute, a list of groups (see :func:`one_of_groups`)::

        @frozen
        class Config:
            one_of = [("max_base", "max_fraction")]
            max_base: float | None = option(None, doc="...")
            max_fraction: float | None = option(None, doc="...")
    """
    meta = {"doc": doc, "tunable": tunable}
    if factory is not None:
        return field(factory=factory, validator=validator, metadata=meta)
    return field(default=default, validator=validator, metadata=meta)


def _finite(value: Any) -> bool:
    # An int is finite however large (math.isfinite would overflow converting it to a float).
    return isinstance(value, int) or math.isfinite(value)


def _bound(test: Callable[[Any], bool], condition: str
           ) -> Callable[[Any, attrs.Attribute, Any], None]:
    """A validator of ``test``; ``condition`` (``"> 0"``) words it in the message.

    inf and NaN are refused first, whatever ``test`` says: ``nan > 0`` is False but ``inf > 0``
    is True, and neither is a capital, a price, a quantity or a fee.
    """

    def check(_instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not _finite(value):
            raise OptionError(attribute.name,
                              f"must be a finite number {condition}, got {value!r}")
        if not test(value):
            raise OptionError(attribute.name, f"must be {condition}, got {value!r}")

    return check


def positive() -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: the value is a finite number > 0."""
    return _bound(lambda v: v > 0, "> 0")


def non_negative() -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: the value is a finite number >= 0."""
    return _bound(lambda v: v >= 0, ">= 0")


def at_least(n: float) -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: the value is a finite number >= n."""
    return _bound(lambda v: v >= n, f">= {n}")


def fraction() -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: the value is a finite number in (0, 1]."""
    return _bound(lambda v: 0 < v <= 1, "in (0, 1]")


def between(low: float, high: float) -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: the value is a finite number strictly between ``low`` and ``high``."""
    return _bound(lambda v: low < v < high, f"in ({low:g}, {high:g})")


#: Where :func:`fee_rate` refuses by default: 10 % of the traded value.
MAX_FEE_RATE = 0.1


def fee_rate(below: float = MAX_FEE_RATE) -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: a fee rate, as a fraction of the traded value (0.001 is 0.1 %): a finite
    number >= 0 and below ``below``.

    The default refuses 10 % and more: no exchange charges that much per trade, and such a value
    is nearly always a percentage written where a fraction belongs (``0.1`` meant as 0.1 %, a
    100-fold fee). Negative rates (maker rebates) are refused too.
    """
    return _bound(lambda v: 0 <= v < below,
                  f"in [0, {below:g}), a fraction of the traded value (0.001 is 0.1 %)")


def optional(check: Callable[[Any, attrs.Attribute, Any], None]
             ) -> Callable[[Any, attrs.Attribute, Any], None]:
    """Validator: None, or a value that passes ``check``."""

    def run(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None:
            check(instance, attribute, value)

    return run


# --- the strict converter -----------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _strict(tp: type, accept: tuple[type, ...]) -> Callable[[Any, Any], Any]:
    name = tp.__name__

    def hook(value: Any, _type: Any) -> Any:
        # bool is an int subclass, but `grids = true` is never what a user meant.
        if (isinstance(value, bool) and tp is not bool) or not isinstance(value, accept):
            raise TypeError(f"expected {name}, got {value!r}")
        return tp(value)

    return hook


def _literal(value: Any, tp: Any) -> Any:
    allowed = typing.get_args(tp)
    if value not in allowed:
        raise ValueError(f"expected one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def _str_list(value: Any, _type: Any) -> list[str]:
    # A bare string is one item (``streams = "trades"``), never a list of its letters.
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise TypeError(f"expected a string or a list of strings, got {value!r}")
    return list(items)


def make_converter() -> cattrs.Converter:
    """A converter that never coerces: ``"10"`` is not an int and ``1.5`` is not a str."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict(int, (int,)))
    conv.register_structure_hook(float, _strict(float, (int, float)))
    conv.register_structure_hook(str, _strict(str, (str,)))
    conv.register_structure_hook(bool, _strict(bool, (bool,)))
    conv.register_structure_hook_func(lambda t: typing.get_origin(t) is Literal, _literal)
    conv.register_structure_hook_func(
        lambda t: typing.get_origin(t) is list and typing.get_args(t) == (str,), _str_list)
    return conv


converter = make_converter()


_OPTION_SEP = "\x1f"  # carries an OptionError's field name through cattrs' formatter


def _format_exc(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, KeyError):
        return "required option is missing"
    if isinstance(exc, OptionError):
        return f"{exc}{_OPTION_SEP}{exc.option}"
    return str(exc)


def structure(data: dict[str, Any], cls: type, path: str) -> tuple[Any, list[str]]:
    """Structure ``data`` into attrs ``cls``; return (instance or None, problems with paths).

    Every problem of the table is reported at once, not only the first: unknown options, then
    per option (in the Config's order) a missing value, a wrong type or what its validator
    refused. attrs runs validators in ``__init__`` and stops at the first that raises, so each
    option is structured and validated here on its own first; the Config is built only when no
    option has a problem (its ``__attrs_post_init__`` checks, across options, come last).
    """
    attrs.resolve_types(cls)
    fields = attrs.fields(cls)
    known = {a.alias for a in fields}
    problems = []
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            choices = ", ".join(sorted(known)) or "none"
            problems.append(f"{path}.{key}: unknown option{hint}; options are: {choices}")
    given = {k: v for k, v in data.items() if k in known}
    problems += _field_problems(given, cls, fields, path)
    for group in one_of_groups(cls):
        if all(given.get(name) is None for name in group):
            problems.append(f"{path}: at least one of {', '.join(group)} is required")
    if problems:
        return None, problems
    try:
        return converter.structure(given, cls), []
    except cattrs.ClassValidationError as err:
        lines = cattrs.transform_error(err, path="$", format_exception=_format_exc)
        return None, [_at(path, line) for line in lines]
    except OptionError as err:
        return None, [f"{path}.{err.option}: {err}"]
    except (ValueError, TypeError) as err:
        return None, [f"{path}: {err}"]


def _field_problems(given: dict[str, Any], cls: type, fields: Any, path: str) -> list[str]:
    """Each option on its own: missing, wrong type, refused by its validator; in field order."""
    per_field: list[list[str]] = [[] for _ in fields]
    values: dict[str, Any] = {}
    for i, a in enumerate(fields):
        if a.alias not in given:
            if a.default is attrs.NOTHING:
                per_field[i].append(f"{path}.{a.alias}: required option is missing")
            continue
        try:
            value = given[a.alias]
            if a.type is not None:
                value = converter.structure(value, a.type)
        except Exception as err:  # cattrs' own errors, and the strict hooks' TypeError
            lines = cattrs.transform_error(err, path=f"$.{a.alias}",
                                           format_exception=_format_exc)
            per_field[i] += [_at(path, line) for line in lines]
            continue
        values[a.name] = value
    # Validators get an instance with every value in place (the defaults where an option is not
    # given), built without running __init__: a validator may read the other options.
    stand_in = object.__new__(cls)
    for a in fields:
        value = values.get(a.name, a.default)
        if isinstance(value, attrs.Factory):  # type: ignore[arg-type]
            try:
                value = value.factory(stand_in) if value.takes_self else value.factory()
            except Exception:  # a factory reading an option not in place: leave it unset
                continue
        if value is not attrs.NOTHING:
            object.__setattr__(stand_in, a.name, value)
    for i, a in enumerate(fields):
        if a.name not in values or a.validator is None:
            continue
        value = values[a.name]
        if a.converter is not None:
            if not _plain_callable(a.converter):
                continue  # an attrs.Converter wants more than the value: left to __init__
            try:
                value = a.converter(value)
            except (ValueError, TypeError) as err:
                per_field[i].append(f"{path}.{a.alias}: {err}")
                continue
        try:
            a.validator(stand_in, a, value)
        except OptionError as err:
            per_field[i].append(f"{path}.{err.option}: {err}")
        except (ValueError, TypeError) as err:
            per_field[i].append(f"{path}.{a.alias}: {err}")
        except Exception:
            # A validator reading an option that failed above: that problem is reported, and
            # this validator runs again, in __init__, once it is fixed.
            pass
    return [line for lines in per_field for line in lines]


def one_of_groups(cls: type) -> tuple[tuple[str, ...], ...]:
    """The groups of options of which at least one must be set, as a Config declares them.

    A Config says so with a class attribute (not a field: it has no annotation)::

        one_of = [("max_base", "max_fraction")]

    Structuring refuses a table that sets no option of a group, with one line
    (``risk[0]: at least one of max_base, max_fraction is required``), and ``gridkit
    components --all`` and the component reference show the group with each of its options.
    Each option named must default to None, which means "not set"; a mistake in the
    declaration is a ``TypeError``, which makes registering the component fail.
    """
    fields = attrs.fields_dict(cls)
    if "one_of" in fields:  # a field that happens to be called one_of, not a declaration
        return ()
    declared = getattr(cls, "one_of", ())
    where = "one_of"
    if isinstance(declared, str) or not isinstance(declared, (list, tuple)):
        raise TypeError(f"{where}: expected a list of groups of option names, got {declared!r}")
    by_alias = {a.alias: a for a in fields.values()}
    groups = []
    for group in declared:
        if isinstance(group, str) or not isinstance(group, (list, tuple)) or len(group) < 2:
            raise TypeError(f"{where}: a group names two options or more, got {group!r}")
        for name in group:
            a = by_alias.get(name)
            if a is None:
                raise TypeError(f"{where}: {name!r} is not an option of the Config")
            if a.default is not None:
                got = ("it has no default" if a.default is attrs.NOTHING
                       else f"not {a.default!r}")
                raise TypeError(f"{where}: {name!r} must default to None (not set), {got}")
        groups.append(tuple(group))
    return tuple(groups)


def _plain_callable(conv: Any) -> bool:
    converter_cls = getattr(attrs, "Converter", None)  # attrs >= 24.1
    return converter_cls is None or not isinstance(conv, converter_cls)


def _at(path: str, line: str) -> str:
    msg, _, where = line.rpartition(" @ $")
    if not msg:
        msg, where = line, ""
    if _OPTION_SEP in msg:
        msg, _, option_name = msg.partition(_OPTION_SEP)
        where = f"{where}.{option_name}"
    return f"{path}{where}: {msg}"


def describe_fields(cls: type) -> list[dict[str, Any]]:
    """Each option of a Config class: name, type, default (or required), doc, tunable bounds
    and ``one_of``: the groups (lists of names) of options it is in, of which at least one must
    be set (see :func:`one_of_groups`)."""
    attrs.resolve_types(cls)
    groups = one_of_groups(cls)
    out = []
    # A Config's own options first, then those it inherits (options shared by many components).
    for a in sorted(attrs.fields(cls), key=lambda a: a.inherited):
        if a.default is attrs.NOTHING:
            default: Any = None
            required = True
        elif isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
            default, required = a.default.factory(), False  # type: ignore[union-attr]
        else:
            default, required = a.default, False
        out.append({
            "name": a.alias,
            "type": _type_name(a.type),
            "default": default,
            "required": required,
            "doc": a.metadata.get("doc", ""),
            "tunable": a.metadata.get("tunable"),
            "one_of": [list(g) for g in groups if a.alias in g],
        })
    return out
