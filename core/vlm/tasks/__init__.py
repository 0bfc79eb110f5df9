"""The VLM tasks, one module each; importing this package registers every one of them.

Each public module here (a name without a leading underscore) defines one task
and registers it; modules starting with "_" hold what several tasks share. A
new task is a new module: it is found, imported and registered with the rest,
and the sample builder, the parser and the engines pick it up from `REGISTRY`.
A task defined elsewhere (a plug-in, a test) registers itself the same way.
"""

from __future__ import annotations

import importlib
import pkgutil

from core.vlm.tasks._base import (
    REGISTRY,
    Item,
    Task,
    get,
    kind_tasks,
    ordered,
    register,
    trained_names,
    unregister,
)

__all__ = [
    "REGISTRY",
    "Item",
    "Task",
    "get",
    "kind_tasks",
    "ordered",
    "register",
    "trained_names",
    "unregister",
]


def _load_builtin() -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_load_builtin()
