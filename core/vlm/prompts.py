"""Prompt templates: text files in resources/prompts/<task>.txt, filled with `$name` fields.

Prompts are data, not code, so a person can tune them without touching Python,
and the same file serves inference, export and training. `$name` placeholders
(string.Template) leave JSON braces in the examples alone; a missing field is an
error that names the file and the field, never a silently half-filled prompt.
"""

from __future__ import annotations

import os
import string
from functools import lru_cache
from pathlib import Path

from core import resources

# Set to a directory to use other prompt files (same names) without editing these.
PROMPTS_ENV = "ROBO_PROMPTS_DIR"


class PromptError(ValueError):
    """A prompt file is missing or needs a field nobody gave."""


def prompts_dir() -> Path:
    override = os.environ.get(PROMPTS_ENV)
    return Path(override) if override else resources.path("prompts")


@lru_cache(maxsize=64)
def _read(path: Path, mtime_ns: int) -> str:
    return path.read_text(encoding="utf-8").strip() + "\n"


def load_template(name: str, directory: Path | None = None) -> str:
    """The raw text of `<directory>/<name>.txt`."""
    path = (directory or prompts_dir()) / f"{name}.txt"
    try:
        return _read(path, path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise PromptError(f"{path}: no prompt template for task '{name}'") from None


def template_fields(name: str, directory: Path | None = None) -> set[str]:
    """The `$fields` a template uses."""
    tpl = string.Template(load_template(name, directory))
    return set(tpl.get_identifiers())


def render(name: str, directory: Path | None = None, **fields: object) -> str:
    """The template `name` with its fields filled; a missing one is a `PromptError` naming it."""
    text = load_template(name, directory)
    try:
        return string.Template(text).substitute({k: str(v) for k, v in fields.items()}).strip()
    except KeyError as exc:
        path = (directory or prompts_dir()) / f"{name}.txt"
        raise PromptError(f"{path}: the template needs field ${exc.args[0]}, which was not given") from None
    except ValueError as exc:
        path = (directory or prompts_dir()) / f"{name}.txt"
        raise PromptError(f"{path}: {exc}") from None
