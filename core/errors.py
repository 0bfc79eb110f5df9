"""Typed errors with messages a person can act on.

Every error that crosses a package boundary is one of these, so the GUI can show
it and the backend can turn it into an `Error` reply without guessing.
"""

from __future__ import annotations


class RoboAnnotateError(Exception):
    """Base class: something the user can fix (a file, a field, a message)."""


class AnnotationError(RoboAnnotateError, ValueError):
    """An annotation value is invalid; the message names the field and value."""


class DatasetError(RoboAnnotateError):
    """A dataset file is missing, corrupt or of an unsupported layout."""


class VideoError(DatasetError):
    """A video file cannot be opened or a frame cannot be decoded."""


class ProtocolError(RoboAnnotateError):
    """A wire message is malformed, too large, of an unknown type or version."""


class MissingExtraError(RoboAnnotateError, ImportError):
    """An optional dependency is not installed; says which extra provides it."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{module}' package: install it with "
            f"`pip install -e '.[{extra}]'` (the '{extra}' extra)."
        )
        self.module = module
        self.extra = extra


class EditRefused(AnnotationError):
    """A person's edit cannot be made where it was asked (on a boundary, with an empty name):
    nothing changed, and the message says why."""
