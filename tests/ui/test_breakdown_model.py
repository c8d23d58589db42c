"""The breakdown's Qt model: checked by Qt's model tester; live updates keep the user's view state."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt
from PySide6.QtWidgets import QAbstractItemView, QTreeView
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from mity_cost.core.breakdown.nodes import Node
from mity_cost.core.breakdown.tree import build_tree
from mity_cost.core.pricing.prices import Override, PriceBook
from mity_cost.core.settings import Settings
from mity_cost.ui.breakdown_model import (
    COL_CALLS,
    COL_EXPECTED,
    COL_ITEM,
    COL_MAX,
    COL_MIN,
    COL_PRICE,
    COL_TOKENS,
    COLUMNS,
    NODE_ROLE,
    PATH_ROLE,
    UNPRICED,
    BreakdownModel,
    ViewStateKeeper,
    format_amount,
)
from tests.core.breakdown_helpers import (
    BIGGEST,
    WITH_INFRA,
    add_call,
    features_of,
    rewrite,
    session_file,
    view_of,
)


def tree_of(
    root: Path, session_id: str = BIGGEST, prices: PriceBook | None = None, max_rows: int = 100
) -> Node:
    return build_tree(
        view_of(session_file(root, session_id), root),
        features_of(root),
        Settings(),
        prices,
        max_rows=max_rows,
    )


def book() -> PriceBook:
    return PriceBook(
        overrides={"gpt41": Override(2.0, 8.0), "claudeopus45": Override(1.0, 1.0)}, use_catalog=False
    )


def all_indexes(model: BreakdownModel, parent: QModelIndex | None = None) -> list[QModelIndex]:
    parent = parent or QModelIndex()
    found = []
    for row in range(model.rowCount(parent)):
        index = model.index(row, 0, parent)
        found.append(index)
        found.extend(all_indexes(model, index))
    return found


def test_model_passes_qt_model_tester_through_updates(qtmodeltester: ModelTester, example_root: Path) -> None:
    model = BreakdownModel()
    qtmodeltester.check(model)  # type: ignore[no-untyped-call]  # empty
    model.set_tree(tree_of(example_root, prices=book()))
    qtmodeltester.check(model)  # type: ignore[no-untyped-call]
    path = session_file(example_root, BIGGEST)
    rewrite(path, lambda doc: add_call(doc, agent="Brand-new agent"))
    assert model.set_tree(tree_of(example_root, prices=book())) is False  # rows inserted in place
    qtmodeltester.check(model)  # type: ignore[no-untyped-call]
    assert model.set_tree(tree_of(example_root, prices=book())) is False  # same rows: dataChanged only
    for _ in range(3):  # new calls: one row in, the oldest listed one out (into "earlier calls")
        rewrite(path, lambda doc: add_call(doc))
        assert model.set_tree(tree_of(example_root, prices=book(), max_rows=3)) is False
        qtmodeltester.check(model)  # type: ignore[no-untyped-call]
    assert model.set_tree(tree_of(example_root, prices=book()), incremental=False) is True
    qtmodeltester.check(model)  # type: ignore[no-untyped-call]
    assert model.set_tree(tree_of(example_root, WITH_INFRA)) is True  # another session: reset
    qtmodeltester.check(model)  # type: ignore[no-untyped-call]


def test_display_columns_roles_and_alignment(example_root: Path) -> None:
    model = BreakdownModel()
    tree = tree_of(example_root, prices=book())
    model.set_tree(tree, "$")
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(len(COLUMNS))] == list(COLUMNS)
    assert model.rowCount() == len(tree.children)
    llm = model.index_for_path(("llm",))
    node = model.data(llm, NODE_ROLE)
    assert isinstance(node, Node) and node is tree.child("llm") and model.data(llm, PATH_ROLE) == ("llm",)
    assert node.cost is not None
    assert model.data(llm.siblingAtColumn(COL_ITEM)) == "LLM"
    assert model.data(llm.siblingAtColumn(COL_MIN)) == format_amount(node.cost.min, "$")
    assert model.data(llm.siblingAtColumn(COL_EXPECTED)) == format_amount(node.cost.expected, "$")
    assert model.data(llm.siblingAtColumn(COL_MAX)) == format_amount(node.cost.max, "$")
    assert model.data(llm.siblingAtColumn(COL_TOKENS)) == f"{node.tokens:,}"
    assert model.data(llm.siblingAtColumn(COL_CALLS)) == f"{node.calls:,}"
    for column in range(1, len(COLUMNS)):
        alignment = model.data(llm.siblingAtColumn(column), Qt.ItemDataRole.TextAlignmentRole)
        assert alignment & Qt.AlignmentFlag.AlignRight
    assert not model.data(llm, Qt.ItemDataRole.TextAlignmentRole) & Qt.AlignmentFlag.AlignRight
    assert "LLM" in model.data(llm, Qt.ItemDataRole.ToolTipRole)
    infra = model.index_for_path(("infra",))
    assert str(model.data(infra.siblingAtColumn(COL_EXPECTED))).endswith("/mo")
    assert model.data(infra.siblingAtColumn(COL_PRICE)) is None  # no list price outside LLM rows


def test_list_price_column_says_unpriced_and_marks_differences(example_root: Path) -> None:
    model = BreakdownModel()
    tree = tree_of(example_root, prices=book())
    model.set_tree(tree)
    unpriced = model.index_for_path(("llm", "gpt52"), COL_PRICE)
    assert model.data(unpriced) == UNPRICED
    assert "$0" not in str(model.data(unpriced))
    assert "Unpriced" in model.data(unpriced, Qt.ItemDataRole.ToolTipRole)
    gpt41 = tree.find(("llm", "gpt41"))
    assert gpt41 is not None and gpt41.list_price is not None and gpt41.list_price.amount is not None
    text = model.data(model.index_for_path(("llm", "gpt41"), COL_PRICE))
    assert text.startswith(format_amount(gpt41.list_price.amount, "$"))
    assert ("Δ" in text) is gpt41.list_price.differs
    opus = tree.find(("llm", "claudeopus45"))
    assert (
        opus is not None and opus.list_price is not None and opus.list_price.differs
    )  # $1/M vs the factory's $15/M
    opus_index = model.index_for_path(("llm", "claudeopus45"), COL_PRICE)
    assert "Δ-" in model.data(opus_index)
    assert model.data(opus_index, Qt.ItemDataRole.ForegroundRole) is not None
    assert "factory recorded" in model.data(opus_index, Qt.ItemDataRole.ToolTipRole)
    assert "+ unpriced" in model.data(model.index_for_path(("llm",), COL_PRICE))


def test_index_for_path_round_trips(example_root: Path) -> None:
    model = BreakdownModel()
    model.set_tree(tree_of(example_root))
    indexes = all_indexes(model)
    assert len(indexes) > 150
    for index in indexes:
        path = model.path(index)
        again = model.index_for_path(path)
        assert again == index and model.parent(again) == model.parent(index)
    assert not model.index_for_path(("llm", "no-such-model")).isValid()


@pytest.fixture
def tree_view(qtbot: QtBot) -> tuple[QTreeView, BreakdownModel, ViewStateKeeper]:
    view = QTreeView()
    qtbot.addWidget(view)
    model = BreakdownModel(view)
    view.setModel(model)
    view.setUniformRowHeights(True)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    view.resize(600, 240)
    keeper = ViewStateKeeper(view, model)
    view.show()
    return view, model, keeper


def expand_and_select(
    view: QTreeView, model: BreakdownModel, tree: Node
) -> tuple[list[tuple[str, ...]], tuple[str, ...]]:
    """Expand every model and agent of the LLM section and select a call deep down."""
    expanded: list[tuple[str, ...]] = [("llm",), ("compute",)]
    llm = tree.child("llm")
    assert llm is not None
    for model_node in llm.children:
        expanded.append(("llm", model_node.key))
        for agent in model_node.children[:1]:
            expanded.append(("llm", model_node.key, agent.key))
    for path in expanded:
        view.setExpanded(model.index_for_path(path), True)
    deep = expanded[-1]
    call = tree.find(deep)
    assert call is not None and call.children
    selected = (*deep, call.children[0].key)
    view.selectionModel().setCurrentIndex(
        model.index_for_path(selected),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    return expanded, selected


def top_path(view: QTreeView, model: BreakdownModel) -> tuple[str, ...]:
    return model.path(view.indexAt(QPoint(1, 1)))


@pytest.mark.parametrize("in_place", [True, False], ids=["rows-inserted", "reset"])
def test_updates_keep_expansion_selection_and_scroll(
    tree_view: tuple[QTreeView, BreakdownModel, ViewStateKeeper],
    example_root: Path,
    qtbot: QtBot,
    in_place: bool,
) -> None:
    view, model, keeper = tree_view
    tree = tree_of(example_root)
    model.set_tree(tree)
    expanded, selected = expand_and_select(view, model, tree)
    view.scrollTo(model.index_for_path(expanded[4]), QAbstractItemView.ScrollHint.PositionAtTop)
    bar = view.verticalScrollBar()
    bar.setValue(bar.value() + 7)  # part of the top row scrolled away
    before_top, before_value = top_path(view, model), bar.value()
    before_expanded = sorted(keeper.expanded_paths())
    assert before_value > 0 and sorted(expanded) == before_expanded

    # A new call from a new agent of the most expensive model: rows appear above the view's top.
    path = session_file(example_root, BIGGEST)
    first_model = tree.children[0].children[0].key
    rewrite(path, lambda doc: add_call(doc, model=first_model, agent="AAA new agent", cost=0.0001))
    if in_place:
        with qtbot.assertNotEmitted(model.modelReset), qtbot.waitSignal(model.rowsInserted, timeout=1000):
            assert model.set_tree(tree_of(example_root)) is False
    else:
        with qtbot.waitSignal(model.modelReset, timeout=1000):
            assert model.set_tree(tree_of(example_root), incremental=False) is True

    assert sorted(keeper.expanded_paths()) == before_expanded
    assert [model.path(i) for i in view.selectionModel().selectedRows()] == [selected]
    assert model.path(view.currentIndex()) == selected
    assert top_path(view, model) == before_top  # the same row is still at the top
    assert view.visualRect(model.index_for_path(before_top)).top() == -7


def test_figure_updates_do_not_reset(
    tree_view: tuple[QTreeView, BreakdownModel, ViewStateKeeper], example_root: Path, qtbot: QtBot
) -> None:
    view, model, _keeper = tree_view
    tree = tree_of(example_root)
    model.set_tree(tree)
    _, selected = expand_and_select(view, model, tree)
    view.verticalScrollBar().setValue(40)
    path = session_file(example_root, BIGGEST)

    def bump(doc: dict[str, object]) -> None:
        doc["llmUsage"][0]["cost"] += 1e-7  # type: ignore[index]

    rewrite(path, bump)
    with qtbot.assertNotEmitted(model.modelReset), qtbot.waitSignal(model.dataChanged, timeout=1000):
        assert model.set_tree(tree_of(example_root)) is False
    assert view.verticalScrollBar().value() == 40
    assert model.path(view.currentIndex()) == selected


def test_rows_that_disappear_are_forgotten(
    tree_view: tuple[QTreeView, BreakdownModel, ViewStateKeeper], example_root: Path
) -> None:
    view, model, keeper = tree_view
    model.set_tree(tree_of(example_root))
    view.setExpanded(model.index_for_path(("llm",)), True)
    view.setExpanded(model.index_for_path(("llm", "gpt52")), True)
    model.set_tree(tree_of(example_root, WITH_INFRA))  # this session never used gpt52
    assert keeper.expanded_paths() == [("llm",)]
    assert not view.selectionModel().selectedRows()


def test_skip_next_starts_fresh(
    tree_view: tuple[QTreeView, BreakdownModel, ViewStateKeeper], example_root: Path
) -> None:
    view, model, keeper = tree_view
    model.set_tree(tree_of(example_root))
    view.setExpanded(model.index_for_path(("llm",)), True)
    keeper.skip_next()
    model.set_tree(tree_of(example_root, WITH_INFRA))
    assert keeper.expanded_paths() == []
