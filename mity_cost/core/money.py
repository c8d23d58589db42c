"""Currencies, cost ranges and money formatting (stdlib only: the fast command-line paths import it)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CURRENCIES: tuple[str, ...] = ("USD", "EUR")
"""The currencies the factory writes and mity-cost shows."""
CURRENCY_SYMBOLS: dict[str, str] = {"USD": "$", "EUR": "€"}


@dataclass(frozen=True, slots=True)
class Range:
    """A min / expected / max cost range (in whatever currency the holder says)."""

    min: float
    expected: float
    max: float

    @classmethod
    def of(cls, item: Mapping[str, Any], scale: float = 1.0) -> Range:
        """A range from a document's cost item (``{"min", "expected", "max"}``), times ``scale``."""
        return cls(item["min"] * scale, item["expected"] * scale, item["max"] * scale)

    def scaled(self, scale: float) -> Range:
        """Each bound times ``scale`` (a currency conversion)."""
        return Range(self.min * scale, self.expected * scale, self.max * scale)

    def __add__(self, other: Range) -> Range:
        return Range(self.min + other.min, self.expected + other.expected, self.max + other.max)

    def __sub__(self, other: Range) -> Range:
        return Range(self.min - other.min, self.expected - other.expected, self.max - other.max)

    @property
    def spread(self) -> float:
        """The factory's ± percentage: (max - min) / expected x 50, 0 when expected is 0."""
        if self.expected == 0 or not math.isfinite(self.expected):
            return 0.0
        return (self.max - self.min) / self.expected * 50


ZERO = Range(0.0, 0.0, 0.0)


def format_money(amount: float, symbol: str) -> str:
    """``$0.42``: the factory's two-decimal format."""
    return f"{symbol}{amount:.2f}"


def format_precise(amount: float, symbol: str) -> str:
    """``$0.42``; under a cent four decimals (``$0.0057``), under that ``<$0.0001``: never a false zero.

    Negative amounts carry a leading minus (``-$0.42``); float noise around zero is ``$0.00``.
    """
    size = abs(amount)
    sign = "-" if amount < 0 else ""
    if size < 5e-10:
        return f"{symbol}0.00"
    if size >= 0.01:
        return f"{sign}{symbol}{size:.2f}"
    if size >= 0.0001:
        return f"{sign}{symbol}{size:.4f}"
    return f"{sign}<{symbol}0.0001"


def money_in(amount: float, currency: str) -> str:
    """:func:`format_precise` with the symbol of a currency code (``USD`` -> ``$``; unknown: none)."""
    return format_precise(amount, CURRENCY_SYMBOLS.get(currency, ""))


def format_short(amount: float, symbol: str) -> str:
    """Short form for a badge: ``$0.42``, ``$4.2``, ``$12``, ``$1.2K``, ``$3.4M``."""
    if amount < 0:
        return "-" + format_short(-amount, symbol)
    if amount < 1:
        return f"{symbol}{amount:.2f}"
    if amount < 10:
        return f"{symbol}{amount:.1f}"
    if amount < 1000:
        return f"{symbol}{amount:.0f}"
    for value, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if amount >= value:
            scaled = amount / value
            text = f"{scaled:.1f}" if scaled < 10 else f"{scaled:.0f}"
            return f"{symbol}{text}{unit}"
    return f"{symbol}{amount:.0f}"  # pragma: no cover - unreachable
