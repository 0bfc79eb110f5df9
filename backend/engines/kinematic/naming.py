"""What the task text says: how many pick-and-place cycles it asks for."""

from __future__ import annotations

from backend.engines.kinematic.signals import PICK_WORDS, tokens


def task_cycles(task: str) -> int | None:
    """How many pick-and-place cycles the task text asks for, if it says (counts pick verbs)."""
    words = tokens(task)
    picks = sum(1 for w in words if w in PICK_WORDS)
    return picks or None
