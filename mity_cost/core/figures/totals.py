"""The one rule for a session's total: figures plus settings in, the total everyone shows and decides on.

The badge, the menu, notifications, the details window, the dialog, ``summary``, ``show``,
``check-threshold``, ``gate``, budgets and the history all call :func:`session_total`; a test holds
them to the same figure (``==``, not close).  Stdlib only: the hot commands import it.
"""

from __future__ import annotations

from mity_cost.core.factory.figures import Ledger
from mity_cost.core.money import Range
from mity_cost.core.settings import Settings


def session_total(ledger: Ledger, settings: Settings) -> Range:
    """The session's total in the display currency: the ledger's, LLM costs left out when disabled.

    With LLM costs disabled the other four categories are summed (as the factory sums the five),
    each converted first, rather than the LLM part subtracted from the total, which would leave
    float noise behind (``0.052000000000000005`` against ``0.0519999999999996``).
    """
    scale = settings.convert(1.0, ledger.currency)
    if settings.llm_enabled:
        return ledger.total.scaled(scale)
    return (
        ledger.compute.scaled(scale)
        + ledger.storage.scaled(scale)
        + ledger.network.scaled(scale)
        + ledger.misc.scaled(scale)
    )


def in_display_currency(amount: Range, currency: str, settings: Settings) -> Range:
    """Any other range of the session (its LLM part, its monthly estimate) converted the same way."""
    return amount.scaled(settings.convert(1.0, currency))
