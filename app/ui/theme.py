"""The dark theme (default) and the light one: Fusion with a palette, plus a small style sheet.

The palette does most of the work, so widgets the style sheet does not mention
(and pyqtgraph's axes, which read the palette) still look right; the sheet in
resources/themes/<name>.qss adds borders, accents and state colours.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from core import resources

THEMES = ("dark", "light")


def dark_palette() -> QPalette:
    p = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    colors = {
        role.Window: "#1b1c20",
        role.WindowText: "#dcdce0",
        role.Base: "#1f2126",
        role.AlternateBase: "#25272c",
        role.ToolTipBase: "#2b2d33",
        role.ToolTipText: "#e8e8ec",
        role.PlaceholderText: "#777a82",
        role.Text: "#dcdce0",
        role.Button: "#2c2e34",
        role.ButtonText: "#dcdce0",
        role.BrightText: "#ff6b61",
        role.Link: "#5aa9f0",
        role.Highlight: "#2f6fa8",
        role.HighlightedText: "#ffffff",
        role.Mid: "#3a3c44",
        role.Dark: "#141518",
        role.Shadow: "#000000",
        role.Light: "#3c3f47",
    }
    for r, c in colors.items():
        p.setColor(r, QColor(c))
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(group.Disabled, r, QColor("#6c6e75"))
    return p


def apply_theme(app: QApplication, name: str = "dark") -> None:
    """Fusion + palette + the theme's style sheet (if the resources folder is there)."""
    if name not in THEMES:
        raise ValueError(f"theme '{name}' is not known (themes: {', '.join(THEMES)})")
    app.setStyle("Fusion")
    if name == "dark":
        app.setPalette(dark_palette())
        import pyqtgraph as pg

        pg.setConfigOptions(background="#1a1b1f", foreground="#c8c8cc")
    else:
        app.setPalette(app.style().standardPalette())
    sheet = resources.path("themes", f"{name}.qss")
    app.setStyleSheet(sheet.read_text() if sheet.is_file() else "")
