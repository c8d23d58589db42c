"""Currencies and money formatting (stdlib only: the fast command-line paths import it)."""

from __future__ import annotations

CURRENCY_SYMBOLS: dict[str, str] = {"USD": "$", "EUR": "€"}


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
