"""The badge's pixels: colour by level, legible text, transparent corners, the variants' markers."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from mity_cost.core.gate.thresholds import Level
from mity_cost.ui.badge import (
    ERROR_COLOR,
    ICON_SIZES,
    LEVEL_COLORS,
    NEUTRAL_COLOR,
    UPDATING_COLOR,
    Variant,
    background_for,
    badge_icon,
    contrast_ratio,
    fit_text,
    render_badge,
    text_color_for,
)

LEVELS = list(Level)


def _image(text: str | None, level: Level | None, size: int, variant: Variant = Variant.NORMAL) -> QImage:
    return render_badge(text, level, size, variant).toImage()


def _rgb(color: QColor) -> tuple[int, int, int]:
    return color.red(), color.green(), color.blue()


def _close(a: QColor, b: QColor, tolerance: int = 10) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(_rgb(a), _rgb(b), strict=True))


def _count(image: QImage, color: QColor, tolerance: int = 40) -> int:
    return sum(
        1
        for x in range(image.width())
        for y in range(image.height())
        if image.pixelColor(x, y).alpha() > 200 and _close(image.pixelColor(x, y), color, tolerance)
    )


@pytest.mark.parametrize("size", ICON_SIZES)
@pytest.mark.parametrize("level", LEVELS)
def test_background_text_and_corners(qtbot: QtBot, level: Level, size: int) -> None:
    image = _image("$0.42", level, size)
    assert (image.width(), image.height()) == (size, size)
    # rounded corners stay transparent, so the badge sits on any panel
    assert image.pixelColor(0, 0).alpha() == 0
    assert image.pixelColor(size - 1, size - 1).alpha() == 0
    # above the text, the fill is the level's colour
    top = image.pixelColor(size // 2, max(2, round(size * 0.14)))
    assert _close(top, QColor(LEVEL_COLORS[level])), (top.name(), LEVEL_COLORS[level])
    # the amount is drawn in the text colour chosen for that fill
    assert _count(image, text_color_for(background_for(level))) >= max(4, size * size // 40)


@pytest.mark.parametrize("level", [*LEVELS, None])
def test_text_contrast_meets_wcag_aa(level: Level | None) -> None:
    background = background_for(level)
    assert contrast_ratio(background, text_color_for(background)) >= 4.5


def test_levels_are_told_apart() -> None:
    colors = [QColor(c) for c in LEVEL_COLORS.values()] + [QColor(NEUTRAL_COLOR)]
    for a, b in itertools.combinations(colors, 2):
        distance = sum(abs(x - y) for x, y in zip(_rgb(a), _rgb(b), strict=True))
        assert distance >= 90, (a.name(), b.name())


def test_over_has_a_bright_rim_that_critical_lacks(qtbot: QtBot) -> None:
    over = _image("$12", Level.OVER, 32)
    critical = _image("$12", Level.CRITICAL, 32)
    edge = (16, 1)
    assert over.pixelColor(*edge).red() > 200 and over.pixelColor(*edge).green() > 60
    assert not _close(over.pixelColor(*edge), critical.pixelColor(*edge), 20)


def test_idle_is_neutral_whatever_the_level(qtbot: QtBot) -> None:
    image = _image("$", Level.OVER, 32, Variant.IDLE)
    top = image.pixelColor(16, 4)
    assert _close(top, QColor(NEUTRAL_COLOR))
    assert top.hslSaturation() < 80
    assert _count(image, QColor("#ffffff")) > 10


@pytest.mark.parametrize("size", ICON_SIZES)
def test_updating_marker(qtbot: QtBot, size: int) -> None:
    plain = _image("$0.42", Level.OK, size)
    marked = _image("$0.42", Level.OK, size, Variant.UPDATING)
    blue = QColor(UPDATING_COLOR)
    assert _count(marked, blue) > _count(plain, blue)
    centre = marked.pixelColor(round(size - size * 0.17), round(size * 0.17))
    assert _close(centre, blue, 40) or _close(centre, QColor("#ffffff"), 40)


@pytest.mark.parametrize("size", ICON_SIZES)
def test_error_marker(qtbot: QtBot, size: int) -> None:
    plain = _image("$0.95", Level.CRITICAL, size)
    marked = _image("$0.95", Level.CRITICAL, size, Variant.ERROR)
    amber = QColor(ERROR_COLOR)
    assert _count(marked, amber) > _count(plain, amber) + 2


def test_text_changes_the_pixels(qtbot: QtBot) -> None:
    a, b = _image("$0.42", Level.OK, 32), _image("$0.43", Level.OK, 32)
    assert a != b
    assert _image("$0.42", Level.OK, 32) == a  # and painting is deterministic


def test_no_text_draws_only_the_background(qtbot: QtBot) -> None:
    image = _image(None, Level.WARNING, 16)
    assert _count(image, text_color_for(background_for(Level.WARNING)), 20) == 0


def test_small_sizes_drop_the_currency_symbol() -> None:
    assert fit_text("$0.42", 16) == "0.42"
    assert fit_text("$1.2K", 16) == "1.2K"
    assert fit_text("$12", 16) == "$12"
    assert fit_text("$0.42", 22) == "$0.42"
    assert fit_text("-$0.42", 16) == "-$0.42"


def test_high_dpi_pixmap(qtbot: QtBot) -> None:
    pixmap = render_badge("$4.2", Level.NOTICE, 24, device_pixel_ratio=2.0)
    assert (pixmap.width(), pixmap.height()) == (48, 48)
    assert pixmap.devicePixelRatio() == 2.0
    assert _close(pixmap.toImage().pixelColor(24, 6), QColor(LEVEL_COLORS[Level.NOTICE]))


def test_icon_has_every_size_and_is_cached(qtbot: QtBot) -> None:
    icon = badge_icon("$0.42", Level.OK)
    sizes = sorted({s.width() for s in icon.availableSizes()})
    assert sizes == sorted(ICON_SIZES)
    assert badge_icon("$0.42", Level.OK) is icon
    assert badge_icon("$0.42", Level.OK, Variant.UPDATING) is not icon
