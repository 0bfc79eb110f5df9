"""Where the app remembers things between runs (layout, layers, theme, export folders, draw labels)."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings

SETTINGS_ENV = "ROBO_ANNOTATE_SETTINGS"


def settings() -> QSettings:
    """The app's settings; ROBO_ANNOTATE_SETTINGS=path.ini keeps them in a file (tests, portable use)."""
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("RoboAnnotate", "robo-annotate")
