"""The details window's breakdown of one session as a pure, immutable tree (Qt-free).

``build_tree`` turns a :class:`~mity_cost.core.live.snapshot.SessionView`, the feature files and the settings
into :class:`Node` objects: LLM > model > agent > calls; Compute > execution type > runs;
Infrastructure (monthly) > category, with its assumptions; Features > app > feature (one-time and
monthly).  Every node has a ``key`` unique among its siblings, so a node's *path* of keys is a stable
id across updates (the Qt model keeps the user's expanded rows and selection by it).

Amounts are in the display currency.  LLM rows also carry the current list price
(:class:`ListPrice`, from :class:`~mity_cost.core.pricing.prices.PriceBook`); ``amount is None`` means
*unpriced*, never $0.

Built from the records as numpy columns (``core.series.call_columns``), with at most
``MAX_CHILD_ROWS`` calls listed per agent, so a 100,000-call session builds in about a tenth of a
second (and can be built off the GUI thread: nothing here touches Qt).
"""

from __future__ import annotations

from collections.abc import Iterable

from mity_cost.core.breakdown.calls import CallCache, Context, llm_section
from mity_cost.core.breakdown.nodes import MAX_CHILD_ROWS, Node
from mity_cost.core.breakdown.row_prices import RowPricer
from mity_cost.core.breakdown.sections import compute_section, features_section, infra_section, other_section
from mity_cost.core.factory.loading import LoadedFeature
from mity_cost.core.figures.summary import summarize
from mity_cost.core.live.snapshot import SessionView
from mity_cost.core.pricing.prices import PriceBook
from mity_cost.core.settings import Settings


def build_tree(
    view: SessionView,
    features: Iterable[LoadedFeature],
    settings: Settings,
    prices: PriceBook | None = None,
    *,
    max_rows: int = MAX_CHILD_ROWS,
    feature_errors: int = 0,
    cache: CallCache | None = None,
) -> Node:
    """The breakdown of one session; a childless root when it has no good state yet."""
    session = view.loaded
    if session is None:
        return Node(key="", label=view.session_id, kind="session")
    doc = session.doc
    scale = settings.convert(1.0, doc["currency"])
    context = Context(scale, RowPricer(prices, settings), max_rows, cache)
    sections = [
        llm_section(session, settings, context),
        compute_section(view, session, scale, max_rows),
    ]
    other = other_section(session, scale)
    if other is not None:
        sections.append(other)
    sections.append(infra_section(session, scale))
    sections.append(features_section(view, session, features, settings, feature_errors))
    summary = summarize(session.figures, settings)
    notes = [summary.summary]
    note = settings.conversion_note(doc["currency"])
    if note:
        notes.append(note)
    return Node(
        key="",
        label=session.session_id,
        kind="session",
        cost=summary.total,
        tokens=summary.total_tokens,
        calls=summary.llm_calls,
        notes=tuple(notes),
        children=tuple(sections),
    )
