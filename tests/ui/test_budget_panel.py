"""The budgets panel: one coloured bar per budget, the tighter budget highlighted, burn, month, alerts,
audit, and the empty state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from mity_cost.core.gate.thresholds import level_for
from mity_cost.core.money import format_money
from mity_cost.core.spending.alerts import merge_twins
from mity_cost.core.spending.forecast import BurnRate
from mity_cost.core.spending.insights import Insights
from mity_cost.ui.badge import LEVEL_COLORS
from mity_cost.ui.budget_panel import (
    EMPTY_TEXT,
    BudgetPanel,
    budget_title,
    burn_text,
    month_text,
    range_text,
)
from tests.core.insights_helpers import World, compute, make_world


@pytest.fixture
def world(example_root: Path, tmp_path: Path) -> Iterator[World]:
    made = make_world(example_root, tmp_path)
    yield made
    made.history.close()


def insights_of(world: World, budget_path: Path | None = None) -> Insights:
    return compute(world, budget_path=budget_path or world.budget_path)


@pytest.fixture
def panel(qtbot: QtBot) -> BudgetPanel:
    widget = BudgetPanel()
    qtbot.addWidget(widget)
    widget.resize(380, 900)
    widget.show()
    return widget


def test_one_row_per_budget_coloured_by_level(panel: BudgetPanel, world: World) -> None:
    insights = insights_of(world)
    panel.set_insights(insights)
    assert len(panel.rows) == len(insights.budgets) > 0
    for row, line in zip(panel.rows, insights.budgets, strict=True):
        status = line.status
        cur = "$"
        color = LEVEL_COLORS[level_for(status.fraction)]
        assert row.color == color and color in row.bar.styleSheet()
        assert row.bar.value() == min(100, int(status.fraction * 100))
        assert row.title.text() == budget_title(status)
        text = row.detail.text()
        assert format_money(status.spent.expected, cur) in text
        assert f"of {format_money(status.amount, cur)}" in text
        assert (f"{format_money(-status.remaining, cur)} over" in text) == status.over
        assert (f"{format_money(status.remaining, cur)} left" in text) == (not status.over)
        if status.spent.min != status.spent.max:
            assert format_money(status.spent.min, cur) in text and format_money(status.spent.max, cur) in text
        assert row.unpriced.isVisibleTo(panel) == status.unpriced
        if status.unpriced:
            assert status.unpriced_models[0] in row.unpriced.text()
    assert not panel.empty_label.isVisibleTo(panel)


def test_the_tighter_budget_is_highlighted_and_named(panel: BudgetPanel, world: World) -> None:
    insights = insights_of(world)
    panel.set_insights(insights)
    rows = {row.line.status.key: row for row in panel.rows if row.line is not None}
    constrained = [row for row in rows.values() if row.line is not None and row.line.constrained]
    assert constrained  # the world nests the app's month inside a tighter day
    for row in constrained:
        assert row.line is not None
        binding = row.line.binding
        assert row.nested.isVisibleTo(panel)
        assert budget_title(binding) in row.nested.text()
        state = "left" if binding.remaining >= 0 else "over"
        assert f"{format_money(abs(binding.remaining), '$')} {state}" in row.nested.text()
        tight = rows[binding.key]
        assert tight.highlighted and tight.tag.isVisibleTo(panel)
        assert tight.color in tight.styleSheet()
    for key, row in rows.items():
        assert row.highlighted == (key in insights.binding_keys)
        assert row.tag.isVisibleTo(panel) == row.highlighted


def test_burn_month_alerts_and_audit_lines(panel: BudgetPanel, world: World) -> None:
    insights = insights_of(world)
    panel.set_insights(insights)
    assert panel.burn_label.text() == burn_text(insights.burn, "USD")
    month = insights.month
    assert month is not None
    assert panel.month_label.text() == month_text(month)
    assert format_money(month.spent, "$") in panel.month_label.text()
    assert format_money(month.projected, "$") in panel.month_label.text()
    assert month.confidence_label in panel.month_label.text()
    shown = [alert for alert, _ids in merge_twins(insights.alerts)]
    assert len(panel.alert_rows) == len(shown) > 0
    for row, alert in zip(panel.alert_rows, shown, strict=True):
        assert row.message.text() == alert.message
        assert row.icon.pixmap() is not None and not row.icon.pixmap().isNull()
    assert not panel.no_alerts_label.isVisibleTo(panel)
    audit = insights.audit
    assert audit is not None and audit.flagged
    text = panel.audit_label.text()
    assert f"on {len(audit.flagged)} model" in text and format_money(audit.money_at_stake, "$") in text
    assert ">10 %" in text
    assert audit.flagged[0].price.label in panel.audit_label.toolTip()


def test_empty_state_says_how_to_add_a_budget(panel: BudgetPanel, world: World, tmp_path: Path) -> None:
    panel.set_insights(insights_of(world))
    before = len(panel.rows)
    panel.set_insights(insights_of(world, tmp_path / "no-budgets.json"))
    assert panel.rows == [] and len(panel._rows) == before  # rows are hidden and reused, not dropped
    assert panel.empty_label.isVisibleTo(panel)
    assert EMPTY_TEXT in panel.empty_label.text() and "mity-cost budget add" in panel.empty_label.text()
    assert "Settings" in panel.empty_label.text()


def test_problems_are_shown(panel: BudgetPanel, world: World, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("[")
    insights = insights_of(world, broken)
    panel.set_insights(replace(insights, problems=("the history is busy",)))
    assert panel.problems_label.isVisibleTo(panel)
    assert "the history is busy" in panel.problems_label.text() and str(broken) in panel.problems_label.text()
    assert not panel.empty_label.isVisibleTo(panel)  # a broken file is not "no budgets"


def _burn(per_hour: float | None, total: float, eta: float | None) -> BurnRate:
    return BurnRate(
        per_hour,
        3,
        3600.0,
        total,
        1.0,
        None if eta is None else timedelta(seconds=eta),
        None if eta is None else datetime(2026, 1, 1),
        "3 records in the last 60 min",
    )


def test_burn_texts() -> None:
    assert burn_text(_burn(1.2, 0.5, 1500), "USD") == "$1.20/h, threshold ($1.00) in ~25 min"
    assert "already over" in burn_text(_burn(1.2, 1.5, 0), "USD")
    assert burn_text(_burn(0.0, 0.5, None), "USD").startswith("idle")
    assert "over the threshold" in burn_text(_burn(0.0, 1.5, 0), "USD")
    assert burn_text(_burn(None, 0.0, None), "USD").startswith("unknown")
    assert burn_text(None, "USD") == "no session to measure"
    assert burn_text(_burn(2.0, 0.5, 900), "EUR").startswith("€2.00/h")


def test_a_range_is_shown_unless_it_rounds_to_one_figure() -> None:
    assert range_text(1.1, 1.2, 1.4, "USD") == "$1.20 ($1.10–$1.40)"
    assert range_text(1.2, 1.2, 1.2001, "USD") == "$1.20"


def test_an_exceeded_budget_absorbs_its_own_100_percent_warning(panel: BudgetPanel, world: World) -> None:
    insights = insights_of(world)
    exceeded = next(a for a in insights.alerts if a.kind == "budget_exceeded")
    twin = replace(exceeded, id=exceeded.id + 1000, kind="budget_warning", level=100, message="twin")
    panel.set_insights(replace(insights, alerts=(twin, *insights.alerts)))
    texts = [row.message.text() for row in panel.alert_rows]
    assert "twin" not in texts and exceeded.message in texts
