"""File > Export…: the dialog, and the export run off the GUI thread with its progress shown.

`ExportController` owns the flow for a MainWindow: it remembers the last store and
output folder, flushes the open edits first (the store must have them), runs
`core.export.export` on a worker thread (`ExportRunner`), shows its progress in the
window's status bar, and reports the result (also kept as `window.last_export`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QWidget,
)

from app.ui.settings import settings
from core.errors import RoboAnnotateError


class ExportDialog(QDialog):
    """File > Export…: format, the store to read, the output folder."""

    def __init__(self, formats: tuple[str, ...], store: str, out: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotations")
        form = QFormLayout(self)
        self.fmt = QComboBox()
        self.fmt.addItems(list(formats))
        self.store = QLineEdit(store)
        self.out = QLineEdit(out)
        self.unreviewed = QCheckBox("also episodes not accepted yet")
        self.force = QCheckBox("replace the output folder if it exists")
        for label, edit, pick in (
            ("Store", self.store, self._pick_store),
            ("Output folder", self.out, self._pick_out),
        ):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            b = QPushButton("…")
            b.clicked.connect(pick)
            row.addWidget(b)
            form.addRow(label, row)
        form.insertRow(0, "Format", self.fmt)
        form.addRow(self.unreviewed)
        form.addRow(self.force)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _pick_store(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Annotation store", self.store.text(), "SQLite (*.db);;All (*)"
        )
        if path:
            self.store.setText(path)

    def _pick_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder (a new folder is created inside)")
        if path:
            self.out.setText(str(Path(path) / "export"))


class ExportRunner(QWidget):
    """Runs core.export.export on a worker thread and reports back through signals."""

    progress = Signal(int, int)
    finished = Signal(str, bool)  # summary or error, ok

    def start(self, export_fn, *args, **kwargs) -> threading.Thread:
        def work() -> None:
            try:
                report = export_fn(*args, progress=lambda d, t: self.progress.emit(d, t), **kwargs)
                text = report.summary()
                if report.warnings:
                    text += "\n\n" + "\n".join(report.warnings[:20])
                self.finished.emit(text, True)
            except RoboAnnotateError as exc:
                self.finished.emit(str(exc), False)
            except Exception as exc:  # an exporter bug: say it, keep the app
                self.finished.emit(f"export failed unexpectedly: {exc!r}", False)

        thread = threading.Thread(target=work, name="export", daemon=True)
        thread.start()
        return thread


class ExportController(QObject):
    """The export flow of a MainWindow (needs its doc, dataset, progress bar and status bar)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.win = window
        self.thread: threading.Thread | None = None

    def ask(self) -> None:
        """Show the dialog, then export what the person chose."""
        win = self.win
        try:
            from core import export as export_mod
        except ImportError as exc:
            QMessageBox.warning(win, "Export", f"export is not available in this install: {exc}")
            return
        if self.thread is not None and self.thread.is_alive():
            win.show_message("an export is already running")
            return
        s = settings()
        default_out = str(Path.home() / f"{win.dataset_id}-export")
        dialog = ExportDialog(
            export_mod.FORMATS,
            str(s.value("export/store", "")),
            str(s.value("export/out", default_out)),
            win,
        )
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        store, out = dialog.store.text().strip(), dialog.out.text().strip()
        if not store or not out:
            QMessageBox.warning(win, "Export", "choose the annotation store and an output folder")
            return
        s.setValue("export/store", store)
        s.setValue("export/out", out)
        self.start(
            export_mod.export,
            dialog.fmt.currentText(),
            store,
            out,
            dialog.unreviewed.isChecked(),
            dialog.force.isChecked(),
        )

    def start(self, export_fn, fmt: str, store: str, out: str, unreviewed: bool, force: bool) -> None:
        """Run an export off the GUI thread; the status bar shows its progress and the result."""
        win = self.win
        win.doc.flush()
        runner = ExportRunner(win)
        runner.progress.connect(self._on_progress)
        runner.finished.connect(self._on_done)
        win.progress.setRange(0, 0)
        win.progress.setFormat(f"exporting {fmt}")
        win.progress.show()
        self.thread = runner.start(
            export_fn, win.dataset.root, store, fmt, out, include_unreviewed=unreviewed, force=force
        )

    def _on_progress(self, done: int, total: int) -> None:
        bar = self.win.progress
        bar.setRange(0, max(total, 1))
        bar.setValue(done)
        bar.setFormat(f"exporting {done}/{total}")

    def _on_done(self, text: str, ok: bool) -> None:
        win = self.win
        win.progress.hide()
        win.last_export = (ok, text)
        win.show_message(("export done: " if ok else "export failed: ") + text.splitlines()[0])
        if not os.environ.get("ROBO_ANNOTATE_NO_DIALOGS"):
            box = QMessageBox.information if ok else QMessageBox.warning
            box(win, "Export", text)
