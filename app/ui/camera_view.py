"""One camera's frame as a graphics scene the overlays draw into, and the grid of them.

Scene units are the frame's pixels, so overlays place items in image coordinates and
the view scales the whole scene to fit (keeping the aspect). The grid picks the rows x
columns that show the frames largest for its size.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QWidget,
)

from app.ui.overlay_items import ChipItem
from core.dataset import Dataset
from core.errors import RoboAnnotateError


def short_camera(camera: str) -> str:
    """'observation.images.front' -> 'front'."""
    return camera.rsplit(".", 1)[-1]


class CameraView(QGraphicsView):
    """One camera: the frame as a pixmap in a scene that overlays draw into (scene units = pixels)."""

    # token of the frame that has just been painted on screen
    painted = Signal(int)

    def __init__(self, camera: str, size: tuple[int, int], parent=None) -> None:
        super().__init__(parent)
        self.camera = camera
        h, w = size
        self.setScene(QGraphicsScene(self))
        self.scene().setSceneRect(QRectF(0, 0, w, h))
        self.pixmap_item = QGraphicsPixmapItem()
        self.pixmap_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.pixmap_item.setZValue(-10)
        self.scene().addItem(self.pixmap_item)
        blank = QPixmap(w, h)
        blank.fill(QColor(20, 20, 24))
        self.pixmap_item.setPixmap(blank)
        self.title = ChipItem(point_size=9, color=QColor(225, 225, 230), margin=0)
        self.title.set_text(short_camera(camera))
        self.title.setZValue(50)
        self.title.setTransform(QTransform.fromTranslate(4, 4 + self.title.boundingRect().height()))
        self.scene().addItem(self.title)
        self.error_item = QGraphicsSimpleTextItem("")
        self.error_item.setBrush(QColor(255, 120, 110))
        f = QFont()
        f.setPointSize(9)
        self.error_item.setFont(f)
        self.error_item.setZValue(60)
        self.error_item.setFlag(self.error_item.GraphicsItemFlag.ItemIgnoresTransformations)
        self.error_item.setTransform(QTransform.fromTranslate(4, 30))
        self.scene().addItem(self.error_item)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setBackgroundBrush(QColor(12, 12, 14))
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self.frame_index = -1
        self._unpainted_token: int | None = None
        # Right-click on the bare frame: (scene position, screen position) -> menu (set by the overlay).
        self.context_hook = None

    def show_frame(self, token: int, index: int, image: QImage | None, error: str | None) -> None:
        if image is not None:
            pm = QPixmap.fromImage(image)
            if pm.size() != self.pixmap_item.pixmap().size():
                self.scene().setSceneRect(QRectF(0, 0, pm.width(), pm.height()))
                self._fit()
            self.pixmap_item.setPixmap(pm)
        self.error_item.setText("" if not error else _wrap(error, 70))
        self.frame_index = index
        self._unpainted_token = token
        self.viewport().update()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self._unpainted_token is not None:
            token, self._unpainted_token = self._unpainted_token, None
            self.painted.emit(token)

    def contextMenuEvent(self, event) -> None:
        super().contextMenuEvent(event)
        if not event.isAccepted() and self.context_hook is not None:
            self.context_hook(self.mapToScene(event.pos()), event.globalPos())

    def _fit(self) -> None:
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._fit()


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return "\n".join(lines[:6])


class CameraGrid(QWidget):
    """Lays the camera views out in the rows x columns that show the frames largest for its size."""

    def __init__(self) -> None:
        super().__init__()
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.views: list[CameraView] = []
        self.cols = 0

    def set_views(self, views: list[CameraView]) -> None:
        self.views = views
        if not views:
            self.grid.addWidget(QLabel("this dataset has no cameras"), 0, 0)
        self._arrange(force=True)

    def best_cols(self) -> int:
        n = len(self.views)
        if n <= 1:
            return 1
        w, h = max(self.width(), 1), max(self.height(), 1)
        aspect = max(
            (v.scene().sceneRect().width() / max(v.scene().sceneRect().height(), 1) for v in self.views),
            default=4 / 3,
        )

        def frame_scale(cols: int) -> float:
            rows = -(-n // cols)
            cw, ch = w / cols, h / rows
            return min(cw, ch * aspect)

        return max(range(1, n + 1), key=frame_scale)

    def _arrange(self, force: bool = False) -> None:
        cols = self.best_cols()
        if cols == self.cols and not force:
            return
        self.cols = cols
        for v in self.views:
            self.grid.removeWidget(v)
        for i, v in enumerate(self.views):
            self.grid.addWidget(v, i // cols, i % cols)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._arrange()


def camera_size(dataset: Dataset, camera: str) -> tuple[int, int]:
    try:
        return dataset.camera_shape(camera)
    except RoboAnnotateError:
        return (480, 640)
