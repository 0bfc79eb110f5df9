"""The files in resources/ (prompts, DeepSpeed configs, themes), found where the install put them.

The folder is the `resources` package: a wheel carries it as package data, an
editable install maps it, a source checkout has it on the path. Everything that
reads one of its files asks here, never `Path(__file__).parents[...]`, so a
plain `pip install` works the same as a checkout.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import importlib.resources
from functools import cache
from pathlib import Path

from core.errors import RoboAnnotateError

PACKAGE = "resources"
_MARK = "robo-annotate"
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


class ResourceError(RoboAnnotateError):
    """A resource file is missing from this installation, or a name names none."""


@cache
def root() -> Path:
    """The resources folder as a real directory (extracted once if the install is zipped)."""
    try:
        module = importlib.import_module(PACKAGE)
    except ImportError:
        module = None
    if module is not None and getattr(module, "PROJECT", None) == _MARK:
        files = importlib.resources.files(module)
        return (
            files if isinstance(files, Path) else _extracted.enter_context(importlib.resources.as_file(files))
        )
    # An editable install made before resources/ became a package maps only core/, app/, ...
    checkout = Path(__file__).resolve().parents[1] / PACKAGE
    if (checkout / "__init__.py").is_file():
        return checkout
    raise ResourceError(
        f"the '{PACKAGE}' package of robo-annotate is missing from this installation "
        f"({'another one shadows it' if module is not None else 'not importable'}); reinstall robo-annotate"
    )


def path(*parts: str) -> Path:
    """`resources/<parts...>` (it may not exist: callers say what a missing file means)."""
    return root().joinpath(*parts)


def names(folder: str, suffix: str) -> list[str]:
    """The stems of `resources/<folder>/*<suffix>`, sorted."""
    return sorted(p.name.removesuffix(suffix) for p in path(folder).glob(f"*{suffix}"))


def deepspeed_config(spec: str | Path) -> Path:
    """A DeepSpeed config: a file path, or a shipped config by name (`zero2` or `zero2.json`)."""
    given = Path(spec).expanduser()
    if given.is_file():
        return given
    text = str(spec)
    if "/" not in text and "\\" not in text:
        shipped = path("deepspeed", text if text.endswith(".json") else f"{text}.json")
        if shipped.is_file():
            return shipped
    raise ResourceError(
        f"{text}: no such file, and not the name of a shipped DeepSpeed config "
        f"(shipped: {', '.join(names('deepspeed', '.json')) or 'none'})"
    )


def deepspeed_argument(text: str) -> Path:
    """argparse `type=` for --deepspeed: the error becomes argparse's usage error."""
    try:
        return deepspeed_config(text)
    except ResourceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
