"""The tray badge: the active session's total on a rounded square coloured by its level.

Only painting lives here; what to show (the short amount, the level) comes from the core
(``core.money.format_short``, ``core.thresholds.level_for``).  Variants: ``NORMAL``; ``IDLE`` (no
session: a neutral grey badge with the currency symbol); ``UPDATING`` (the last good figure with a blue
dot: a file is being rewritten); ``ERROR`` (the last good figure, or neutral, with an amber warning
triangle: something could not be read).
"""

from __future__ import annotations

import enum
import functools

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QIcon,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
    QTransform,
)

from mity_cost.core.gate.thresholds import Level

ICON_SIZES: tuple[int, ...] = (16, 22, 24, 32, 48, 64)
"""The sizes a tray icon is rendered at (the tray host picks the nearest)."""


class Variant(enum.Enum):
    """What the badge says beside the amount."""

    NORMAL = "normal"
    IDLE = "idle"
    UPDATING = "updating"
    ERROR = "error"


LEVEL_COLORS: dict[Level, str] = {
    Level.OK: "#2e7d32",  # green
    Level.NOTICE: "#f9c825",  # yellow
    Level.WARNING: "#f57c00",  # orange
    Level.CRITICAL: "#d32f2f",  # red
    Level.OVER: "#7f0000",  # dark red
}
NEUTRAL_COLOR = "#546e7a"
"""Blue-grey: no session, or no level (never read as a cost colour)."""
UPDATING_COLOR = "#1e88e5"
ERROR_COLOR = "#ffb300"
DARK_TEXT = "#111111"
LIGHT_TEXT = "#ffffff"
OVER_RIM = "#ff5252"
"""The bright rim that sets OVER apart from CRITICAL at a glance."""


def background_for(level: Level | None) -> QColor:
    """The badge's fill for a level (neutral when there is none)."""
    return QColor(LEVEL_COLORS[level] if level is not None else NEUTRAL_COLOR)


def _luminance(color: QColor) -> float:
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF()) + 0.0722 * channel(color.blueF())


def contrast_ratio(a: QColor, b: QColor) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_color_for(background: QColor) -> QColor:
    """White or near-black, whichever reads better on ``background``."""
    dark, light = QColor(DARK_TEXT), QColor(LIGHT_TEXT)
    return dark if contrast_ratio(background, dark) > contrast_ratio(background, light) else light


def fit_text(text: str, size: int) -> str:
    """The text as drawn at ``size``: below 22 px a long amount loses its currency symbol."""
    if size < 22 and len(text) > 3 and text[:1] and not text[:1].isdigit() and text[:1] != "-":
        return text[1:]
    return text


@functools.lru_cache(maxsize=4)
def _badge_font() -> QFont:
    font = QFont()
    font.setFamilies(["DejaVu Sans", "Noto Sans", "Liberation Sans", "Arial", font.defaultFamily()])
    font.setPixelSize(100)
    font.setWeight(QFont.Weight.Bold)
    font.setStretch(QFont.Stretch.SemiCondensed)
    font.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
    return font


def _text_path(text: str, box: QRectF) -> QPainterPath:
    """The text as a filled outline, scaled to fit ``box`` and centred on it."""
    path = QPainterPath()
    path.addText(0, 0, _badge_font(), text)
    bounds = path.boundingRect()
    if bounds.width() <= 0 or bounds.height() <= 0:
        return QPainterPath()
    sy = box.height() / bounds.height()
    sx = min(sy, box.width() / bounds.width())
    max_squeeze = 0.74
    if sx < sy * max_squeeze:
        sy = sx / max_squeeze
    centre = bounds.center()
    transform = QTransform()
    transform.translate(box.center().x(), box.center().y())
    transform.scale(sx, sy)
    transform.translate(-centre.x(), -centre.y())
    return transform.map(path)


def _draw_updating(painter: QPainter, size: float) -> None:
    d = max(5.0, size * 0.34)
    rect = QRectF(size - d, 0, d, d)
    painter.setPen(QPen(QColor(LIGHT_TEXT), max(1.0, size / 24)))
    painter.setBrush(QColor(UPDATING_COLOR))
    painter.drawEllipse(rect.adjusted(0.5, 0.5, -0.5, -0.5))
    if size >= 24:
        inner = d * 0.3
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(LIGHT_TEXT))
        painter.drawEllipse(rect.center(), inner / 2, inner / 2)


def _draw_error(painter: QPainter, size: float) -> None:
    d = max(6.0, size * 0.4)
    left, top = size - d, 0.0
    triangle = QPolygonF(
        [QPointF(left + d / 2, top), QPointF(size, top + d * 0.9), QPointF(left, top + d * 0.9)]
    )
    painter.setPen(QPen(QColor(DARK_TEXT), max(1.0, size / 28)))
    painter.setBrush(QColor(ERROR_COLOR))
    painter.drawPolygon(triangle)
    if size >= 24:
        pen = QPen(QColor(DARK_TEXT), max(1.2, size / 22))
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        x = left + d / 2
        painter.drawLine(QPointF(x, top + d * 0.3), QPointF(x, top + d * 0.58))
        painter.drawPoint(QPointF(x, top + d * 0.74))


def render_badge(
    text: str | None,
    level: Level | None,
    size: int,
    variant: Variant = Variant.NORMAL,
    device_pixel_ratio: float = 1.0,
) -> QPixmap:
    """Paint one badge of ``size`` × ``size`` logical pixels.

    ``text`` is what to write (``format_short``'s ``$0.42``; the currency symbol for ``IDLE``; ``None``
    for nothing); ``level`` picks the colour (``None``, or the ``IDLE`` variant, is neutral grey).
    """
    scale = max(1.0, device_pixel_ratio)
    pixels = max(1, round(size * scale))
    pixmap = QPixmap(pixels, pixels)
    pixmap.fill(Qt.GlobalColor.transparent)
    pixmap.setDevicePixelRatio(scale)
    background = background_for(None if variant is Variant.IDLE else level)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        s = float(size)
        radius = s * 0.22
        rim = max(1.0, s / 20)
        body = QRectF(rim / 2, rim / 2, s - rim, s - rim)
        rim_color = (
            QColor(OVER_RIM)
            if level is Level.OVER and variant is not Variant.IDLE
            else background.darker(150)
        )
        painter.setPen(QPen(rim_color, rim * (1.6 if level is Level.OVER else 1.0)))
        painter.setBrush(QBrush(background))
        painter.drawRoundedRect(body, radius, radius)
        if text:
            pad = max(1.2, s * 0.08)
            marked = variant in (Variant.UPDATING, Variant.ERROR)
            height = s * (0.48 if len(fit_text(text, size)) > 1 else 0.58)
            box = QRectF(pad, (s - height) / 2 + (s * 0.07 if marked else 0.0), s - 2 * pad, height)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(text_color_for(background))
            painter.drawPath(_text_path(fit_text(text, size), box))
        if variant is Variant.UPDATING:
            _draw_updating(painter, s)
        elif variant is Variant.ERROR:
            _draw_error(painter, s)
    finally:
        painter.end()
    return pixmap


@functools.lru_cache(maxsize=64)
def badge_icon(
    text: str | None,
    level: Level | None,
    variant: Variant = Variant.NORMAL,
    sizes: tuple[int, ...] = ICON_SIZES,
) -> QIcon:
    """A multi-size icon of the badge (cached: the same badge is painted once)."""
    icon = QIcon()
    for size in sizes:
        icon.addPixmap(render_badge(text, level, size, variant))
    return icon
