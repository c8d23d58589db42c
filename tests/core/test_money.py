"""Money formatting: the factory's two decimals, never a false zero, and the badge's short form."""

from __future__ import annotations

import pytest

from mity_cost.core.money import format_money, format_precise, format_short, money_in


def test_format_money_is_the_factorys_two_decimals() -> None:
    assert format_money(0.5732883, "$") == "$0.57"
    assert format_money(12, "€") == "€12.00"


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0.0, "$0.00"),
        (1e-12, "$0.00"),
        (-1e-12, "$0.00"),
        (0.42, "$0.42"),
        (1234.5, "$1234.50"),
        (0.0068, "$0.0068"),
        (0.00005, "<$0.0001"),
        (-0.42, "-$0.42"),
        (-0.0068, "-$0.0068"),
        (-0.00005, "-<$0.0001"),
    ],
)
def test_format_precise_never_shows_a_false_zero(amount: float, text: str) -> None:
    assert format_precise(amount, "$") == text


def test_money_in_uses_the_currencys_symbol() -> None:
    assert money_in(0.0042, "USD") == "$0.0042"
    assert money_in(3, "EUR") == "€3.00"
    assert money_in(3, "GBP") == "3.00"


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0.42, "$0.42"), (4.24, "$4.2"), (12.4, "$12"), (1234, "$1.2K"), (56_000, "$56K"), (3.4e6, "$3.4M")],
)
def test_format_short_fits_a_badge(amount: float, text: str) -> None:
    assert format_short(amount, "$") == text
