"""Config dataclasses declared once: each field's default, help, bound and flag in one place.

A field made with `setting()` carries its help text and its rule (bounds, choices, whole
number) in `dataclasses.field` metadata. `validate(obj)` checks every such field and raises
the config's own error type with a message naming the field, the value and the rule, so
`__post_init__` keeps only what no single field can say (cross-field and filesystem checks).

`argument_fields()` turns a config into the plain dataclass that
`transformers.HfArgumentParser` reads (help, flag aliases, choices, the parser of a value),
so a CLI's flags, defaults and help come from the config instead of being written again.
Stdlib only: core is below every package that has configs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING
from typing import Any, get_type_hints

RULE = "robo_rule"
HELP = "help"
FLAGS = "robo_flags"
PARSE = "robo_parse"
CLI = "robo_cli"


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one field's value must be; None (an unset optional) always passes."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None
    integer: bool = False
    unit: str = ""

    def ok(self, value: Any) -> bool:
        if value is None:
            return True
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if math.isnan(value):
            return False
        if self.integer and not float(value).is_integer():
            return False
        return not (
            (self.gt is not None and not value > self.gt)
            or (self.ge is not None and not value >= self.ge)
            or (self.lt is not None and not value < self.lt)
            or (self.le is not None and not value <= self.le)
        )

    def describe(self) -> str:
        """The rule as the error says it: 'must be > 0 seconds', 'must be in [0, 1)'."""
        if self.choices is not None:
            return "must be one of " + ", ".join(str(c) for c in self.choices)
        low = (f"{_num(self.gt)}", "(") if self.gt is not None else (f"{_num(self.ge)}", "[")
        high = (f"{_num(self.lt)}", ")") if self.lt is not None else (f"{_num(self.le)}", "]")
        has_low = self.gt is not None or self.ge is not None
        has_high = self.lt is not None or self.le is not None
        if has_low and has_high:
            text = f"in {low[1]}{low[0]}, {high[0]}{high[1]}"
        elif has_low:
            text = f"{'>' if self.gt is not None else '>='} {low[0]}"
        elif has_high:
            text = f"{'<' if self.lt is not None else '<='} {high[0]}"
        else:
            text = "a number"
        if self.integer:
            text = f"a whole number {text}" if (has_low or has_high) else "a whole number"
        return f"must be {text}" + (f" {self.unit}" if self.unit else "")


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    help: str = "",
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: Sequence[Any] | None = None,
    integer: bool = False,
    unit: str = "",
    flags: Sequence[str] = (),
    parse: Callable[[str], Any] | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field with its help and rule: `lora_r: int = setting(16, ge=1, help=...)`.

    `flags` are extra spellings of its command-line flag (`--lr`), `parse` turns the flag's
    text into the value (argparse `type=`), `cli=False` keeps it off the command line.
    """
    rule = Rule(gt, ge, lt, le, tuple(choices) if choices is not None else None, integer, unit)
    metadata: dict[str, Any] = {HELP: help, FLAGS: tuple(flags), CLI: cli}
    if rule != Rule(unit=unit):
        metadata[RULE] = rule
    if parse is not None:
        metadata[PARSE] = parse
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def rule_of(f: dataclasses.Field) -> Rule | None:
    return f.metadata.get(RULE)


def validate(
    obj: Any, *, error: type[Exception] = ValueError, label: str = "{name}", only: Iterable[str] | None = None
) -> None:
    """Check every field that has a rule; raise `error` naming the field, value and rule.

    `label` formats the field's name in the message ("SampleConfig.{name}",
    "kinematic engine option '{name}'"); `only` limits the check to some fields.
    """
    wanted = set(only) if only is not None else None
    for f in dataclasses.fields(obj):
        rule = rule_of(f)
        if rule is None or (wanted is not None and f.name not in wanted):
            continue
        value = getattr(obj, f.name)
        if not rule.ok(value):
            raise error(f"{label.format(name=f.name)} = {value!r}: {rule.describe()}")


def argument_fields(
    cls: type,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    defaults: dict[str, Any] | None = None,
    name: str | None = None,
) -> type:
    """A plain dataclass of `cls`'s command-line fields, in the form HfArgumentParser reads.

    Each field keeps its name (the flag `--name`, also `--na-me`), default and help; its
    `flags` become HfArgumentParser's aliases, `choices` argparse's choices, and `parse`
    the field's type (HfArgumentParser passes a field's type to argparse as `type=`).
    `defaults` replaces some defaults (None: "unset, decided later"). Fields with
    `cli=False`, or not included, are left out.
    """
    hints = get_type_hints(cls)
    keep = set(include) if include is not None else None
    drop = set(exclude)
    defaults = defaults or {}
    specs: list[tuple[str, Any, dataclasses.Field]] = []
    for f in dataclasses.fields(cls):
        if not f.init or not f.metadata.get(CLI, True) or f.name in drop:
            continue
        if keep is not None and f.name not in keep:
            continue
        kind = f.metadata.get(PARSE, hints[f.name])
        meta: dict[str, Any] = {"help": f.metadata.get(HELP, "")}
        if f.metadata.get(FLAGS):
            meta["aliases"] = list(f.metadata[FLAGS])
        rule = rule_of(f)
        if rule is not None and rule.choices is not None:
            meta["choices"] = rule.choices
        if f.name in defaults:
            field = dataclasses.field(default=defaults[f.name], metadata=meta)
        elif f.default is not dataclasses.MISSING:
            field = dataclasses.field(default=f.default, metadata=meta)
        elif f.default_factory is not dataclasses.MISSING:
            field = dataclasses.field(default_factory=f.default_factory, metadata=meta)
        else:
            field = dataclasses.field(metadata=meta)
        specs.append((f.name, kind, field))
    # Fields without defaults first, as a dataclass needs (argparse does not care about order).
    specs.sort(key=lambda s: s[2].default is not MISSING or s[2].default_factory is not MISSING)
    return dataclasses.make_dataclass(name or f"{cls.__name__}Arguments", specs)


def flag_options(cls: type, name: str, *, help: str | None = None) -> dict[str, Any]:
    """argparse `add_argument` keywords (default, help) for a flag spelled apart from its field.

    For CLIs that cannot take HfArgumentParser (robo-backend: no transformers in its base
    install) or whose flags predate the field names (--heartbeat for heartbeat_s): the
    default and the help text still come from the one declaration.
    """
    f = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if f is None:
        raise KeyError(f"{cls.__name__} has no field {name!r}")
    if f.default is MISSING:
        raise ValueError(f"{cls.__name__}.{name} has no plain default to give a flag")
    text = help if help is not None else f.metadata.get(HELP, "")
    if f.default is not None and not isinstance(f.default, bool):
        text = f"{text} (default {f.default})" if text else f"default {f.default}"
    return {"default": f.default, "help": text}
