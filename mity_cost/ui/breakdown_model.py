"""The breakdown tree (``core.breakdown.Node``) as a Qt item model.

The rows are Qt's own items (a ``QStandardItemModel`` filled from the immutable tree, which is built
elsewhere, on a worker thread for big sessions): painting the view never calls into Python, which
matters when worker threads keep the interpreter busy (each Python ``data()`` call would have to win
it back, and a repaint makes a thousand of them).  Every row knows its *path* of keys from the root
(``PATH_ROLE``), its stable id across updates.  ``set_tree`` brings the rows to a new tree: when only
figures changed it rewrites those rows (``dataChanged``); when rows came, went or changed places in
the same session it removes, moves and inserts just those; for another session it resets the model.
:class:`ViewStateKeeper` keeps the user's expanded rows, selection, current row and scroll position
(by path) across all three.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QTreeView

from mity_cost.core.breakdown.nodes import ListPrice, Node, same_shape
from mity_cost.core.money import Range

Path = tuple[str, ...]
AnyIndex = QModelIndex | QPersistentModelIndex

COLUMNS: tuple[str, ...] = ("Item", "Min", "Expected", "Max", "Tokens", "Calls", "List price")
COL_ITEM, COL_MIN, COL_EXPECTED, COL_MAX, COL_TOKENS, COL_CALLS, COL_PRICE = range(len(COLUMNS))
NUMERIC_COLUMNS = frozenset(range(COL_MIN, len(COLUMNS)))
COLUMN_TIPS: dict[int, str] = {
    COL_ITEM: "What the cost is for",
    COL_MIN: "Lowest estimate",
    COL_EXPECTED: "Expected cost (what the totals use)",
    COL_MAX: "Highest estimate",
    COL_TOKENS: "Input + output tokens",
    COL_CALLS: "LLM calls, or compute runs",
    COL_PRICE: "What the same tokens cost at today's list prices "
    "(Δ marks a difference of more than 10 % from the factory's figure)",
}
NODE_ROLE = Qt.ItemDataRole.UserRole
"""``data(index, NODE_ROLE)`` is the row's :class:`~mity_cost.core.breakdown.tree.Node`."""
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
"""``data(index, PATH_ROLE)`` is the row's path of keys (its stable id)."""

UNPRICED = "unpriced"
DIFFERS_COLOR = "#c66900"
MUTED_COLOR = "#808080"
_ALIGN_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_ALIGN_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


def format_amount(amount: float, symbol: str) -> str:
    """Two decimals from 1 up, three under 1, four under a cent (calls cost fractions of a cent)."""
    size = abs(amount)
    if amount == 0 or size >= 1:
        return f"{symbol}{amount:,.2f}"
    if size >= 0.01:
        return f"{symbol}{amount:.3f}"
    return f"{symbol}{amount:.4f}"


def format_price(price: ListPrice, symbol: str) -> str:
    """The list-price cell: "unpriced", the amount, and a Δ marker when it differs by more than 10 %."""
    if price.amount is None:
        return UNPRICED
    text = format_amount(price.amount, symbol)
    if price.partial:
        text += " + unpriced"
    percent = price.difference_percent
    if price.differs:
        text += f"  Δ{percent:+.0f}%" if percent is not None else "  Δ"
    return text


def price_tooltip(price: ListPrice, symbol: str) -> str:
    """Where the list price comes from and how far it is from the factory's figure."""
    lines = []
    if price.amount is None:
        lines.append("Unpriced: no current list price for this model.")
    else:
        scope = " (priced calls only; some are unpriced)" if price.partial else ""
        lines.append(f"List price now: {format_amount(price.amount, symbol)}{scope}")
        lines.append(f"The factory recorded: {format_amount(price.factory, symbol)}")
        percent = price.difference_percent
        if percent is not None:
            lines.append(f"Difference: {percent:+.1f} % of the factory's figure")
    if price.source:
        lines.append(f"Source: {price.source}")
    if price.matched_model:
        lines.append(f"Matched model: {price.matched_model}")
    if price.as_of:
        lines.append(f"Prices as of {price.as_of}")
    if price.note:
        lines.append(price.note)
    return "\n".join(lines)


def _range_text(cost: Range, symbol: str, monthly: bool) -> str:
    suffix = "/mo" if monthly else ""
    return (
        f"min {format_amount(cost.min, symbol)}{suffix} · expected {format_amount(cost.expected, symbol)}"
        f"{suffix} · max {format_amount(cost.max, symbol)}{suffix} (±{cost.spread:.0f} %)"
    )


def node_tooltip(node: Node, symbol: str) -> str:
    """A row's tooltip: its label, its range and its notes."""
    lines = [node.label]
    if node.cost is not None:
        lines.append(_range_text(node.cost, symbol, node.monthly))
    if node.tokens is not None and node.kind != "call":
        lines.append(f"{node.tokens:,} tokens")
    lines.extend(node.notes)
    return "\n".join(lines)


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Ascending row numbers as (first, last) runs of consecutive rows."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))
    return runs


def _row_of(node: Node) -> tuple[Any, ...]:
    """What a row shows of its node (everything but its children)."""
    return (
        node.label,
        node.kind,
        node.cost,
        node.tokens,
        node.calls,
        node.list_price,
        node.notes,
        node.monthly,
    )


class BreakdownModel(QStandardItemModel):
    """Columns Item, Min, Expected, Max, Tokens, Calls, List price over a breakdown tree.

    The rows are Qt's own items (``QStandardItemModel``), filled from the tree: a view painting them
    never calls back into Python, so painting stays fast however busy the worker threads keep the
    interpreter (with a Python ``data()``, each of the thousand calls a repaint makes must win the
    interpreter back from them).  ``NODE_ROLE`` and ``PATH_ROLE`` are set on the first column.

    Signals:
        about_to_reset: emitted just before a reset, while the old rows are still laid out in the
            views (``modelAboutToBeReset`` comes too late: a tree view has dropped its rows by then).
        about_to_restructure, restructured: emitted around an update that removes, moves and inserts
            rows in place (:class:`ViewStateKeeper` keeps the view's state over it).
    """

    about_to_reset = Signal()
    about_to_restructure = Signal()
    restructured = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        for column, title in enumerate(COLUMNS):
            header = QStandardItem(title)
            header.setToolTip(COLUMN_TIPS.get(column, ""))
            header.setTextAlignment(_ALIGN_RIGHT if column in NUMERIC_COLUMNS else _ALIGN_LEFT)
            self.setHorizontalHeaderItem(column, header)
        self._root = Node(key="", label="", kind="session")
        self._symbol = "$"
        self._bold = QFont()
        self._bold.setBold(True)
        self._italic = QFont()
        self._italic.setItalic(True)
        self._muted = QBrush(QColor(MUTED_COLOR))
        self._differs = QBrush(QColor(DIFFERS_COLOR))

    # --- the tree -----------------------------------------------------------------------------

    @property
    def root(self) -> Node:
        """The tree shown (its children are the top-level rows)."""
        return self._root

    @property
    def symbol(self) -> str:
        """The currency symbol the amounts are shown with."""
        return self._symbol

    def set_tree(self, root: Node, symbol: str | None = None, *, incremental: bool = True) -> bool:
        """Show a new tree; True when the model was reset, False when it was updated in place.

        An update of the same session (the same root label) is applied in place: rows that went are
        removed, rows that changed places are moved and rows that came are inserted, the others get
        ``dataChanged`` where their figures changed, so the views keep their expanded rows, selection
        and scroll position, and nothing is laid out again from scratch.  Another session (or
        ``incremental=False``) resets the model.
        """
        new_symbol = symbol if symbol is not None else self._symbol
        refresh = new_symbol != self._symbol
        self._symbol = new_symbol
        old = self._root
        top = self.invisibleRootItem()
        if same_shape(old, root):
            self._root = root
            self._update(top, old.children, root.children, (), refresh)
            return False
        if incremental and old.children and old.label == root.label:
            self.about_to_restructure.emit()
            self._morph(top, old, root, (), refresh)
            self._root = root
            self.restructured.emit()
            return False
        self.about_to_reset.emit()
        rows = [self._make_row(child, (child.key,)) for child in root.children]  # before the reset
        self.beginResetModel()
        blocked = self.blockSignals(True)  # one modelReset instead of a signal per row
        try:
            top.removeRows(0, top.rowCount())
            for row in rows:
                top.appendRow(row)
        finally:
            self.blockSignals(blocked)
        self._root = root
        self.endResetModel()
        return True

    def _make_row(self, node: Node, path: Path) -> list[QStandardItem]:
        """The items of one row and, below its first one, of all its descendants."""
        items = [QStandardItem() for _ in COLUMNS]
        for item in items:
            item.setFlags(_FLAGS)
        self._fill(items, node, path)
        first = items[0]
        for child in node.children:
            first.appendRow(self._make_row(child, (*path, child.key)))
        return items

    def _fill(self, items: list[QStandardItem], node: Node, path: Path) -> None:
        """Put what a row shows of its node into its items."""
        symbol = self._symbol
        tip = node_tooltip(node, symbol)
        font = self._italic if node.kind in ("assumption", "earlier") else None
        muted = self._muted if node.kind == "assumption" else None
        for column, item in enumerate(items):
            item.setData(_display(node, column, symbol), Qt.ItemDataRole.DisplayRole)
            price = column == COL_PRICE and node.list_price is not None
            if price:
                assert node.list_price is not None
                item.setData(price_tooltip(node.list_price, symbol), Qt.ItemDataRole.ToolTipRole)
            else:
                item.setData(tip, Qt.ItemDataRole.ToolTipRole)
            item.setData(
                _ALIGN_RIGHT if column in NUMERIC_COLUMNS else _ALIGN_LEFT, Qt.ItemDataRole.TextAlignmentRole
            )
            brush = muted
            if price:
                assert node.list_price is not None
                if node.list_price.amount is None:
                    brush = self._muted
                elif node.list_price.differs:
                    brush = self._differs
            item.setData(brush, Qt.ItemDataRole.ForegroundRole)
            bold = node.kind == "section" and column == COL_ITEM
            item.setData(self._bold if bold else font, Qt.ItemDataRole.FontRole)
        items[0].setData(node, NODE_ROLE)
        items[0].setData(path, PATH_ROLE)

    def _update(
        self,
        parent: QStandardItem,
        old: tuple[Node, ...] | list[Node],
        new: tuple[Node, ...],
        path: Path,
        refresh: bool,
    ) -> None:
        """Bring rows that are in place (``old[i]`` is at row ``i``, with ``new[i]``'s key) up to
        date: their figures (one ``dataChanged`` per run of changed rows) and their subtrees."""
        changed: list[int] = []
        for row, (a, b) in enumerate(zip(old, new, strict=True)):
            if a is b and not refresh:
                continue
            first = parent.child(row, 0)
            child_path = (*path, b.key)
            blocked = self.blockSignals(True)  # the views learn of it once per run of rows, below
            try:
                if refresh or _row_of(a) != _row_of(b):
                    self._fill([parent.child(row, c) for c in range(len(COLUMNS))], b, child_path)
                    changed.append(row)
                else:
                    first.setData(b, NODE_ROLE)
            finally:
                self.blockSignals(blocked)
            if b.children or a.children:
                if same_shape(a, b):
                    self._update(first, a.children, b.children, child_path, refresh)
                else:
                    self._morph(first, a, b, child_path, refresh)
        index = parent.index()
        for start, end in _runs(changed):
            self.dataChanged.emit(self.index(start, 0, index), self.index(end, len(COLUMNS) - 1, index))

    def _morph(self, parent: QStandardItem, old: Node, new: Node, path: Path, refresh: bool) -> None:
        """Remove, move and insert rows under ``parent`` (and below) until they are ``new``'s."""
        wanted = {c.key for c in new.children}
        kids = list(old.children)
        gone = [row for row, child in enumerate(kids) if child.key not in wanted]
        for first, last in reversed(_runs(gone)):
            parent.removeRows(first, last - first + 1)
            del kids[first : last + 1]
        kept = {c.key for c in kids}
        order = [c.key for c in new.children if c.key in kept]
        for target, key in enumerate(order):  # siblings sorted by cost can change places
            source = next(row for row in range(target, len(kids)) if kids[row].key == key)
            if source != target:
                parent.insertRow(target, parent.takeRow(source))  # its subtree goes with it
                kids.insert(target, kids.pop(source))
        row = 0
        count = len(new.children)
        while row < count:
            child = new.children[row]
            if child.key in kept:
                row += 1
                continue
            parent.insertRow(row, self._make_row(child, (*path, child.key)))
            kids.insert(row, child)
            row += 1
        self._update(parent, kids, new.children, path, refresh)

    def node(self, index: AnyIndex) -> Node | None:
        """The node of an index (the root for an invalid one)."""
        if not index.isValid():
            return self._root
        return self._root.find(self.path(index))

    def path(self, index: AnyIndex) -> Path:
        """The stable id (path of keys) of an index."""
        if not index.isValid():
            return ()
        found = index.sibling(index.row(), 0).data(PATH_ROLE)
        return found if isinstance(found, tuple) else ()

    def index_for_path(self, path: Path, column: int = 0) -> QModelIndex:
        """The index of the node at this path, or an invalid index when it is gone."""
        index = QModelIndex()
        node = self._root
        for depth, key in enumerate(path):
            row = node.row_of(key)
            if row is None:
                return QModelIndex()
            node = node.children[row]
            index = self.index(row, column if depth == len(path) - 1 else 0, index)
        return index


def _display(node: Node, column: int, symbol: str) -> str | None:
    if column == COL_ITEM:
        return node.label
    if column in (COL_MIN, COL_EXPECTED, COL_MAX):
        if node.cost is None:
            return None
        amount = (node.cost.min, node.cost.expected, node.cost.max)[column - COL_MIN]
        return format_amount(amount, symbol) + ("/mo" if node.monthly else "")
    if column == COL_TOKENS:
        return f"{node.tokens:,}" if node.tokens is not None else None
    if column == COL_CALLS:
        return f"{node.calls:,}" if node.calls is not None else None
    if column == COL_PRICE and node.list_price is not None:
        return format_price(node.list_price, symbol)
    return None


class ViewStateKeeper(QObject):
    """Keeps a tree view's expanded rows, selection, current row and scroll position across updates.

    It listens to the model: the state is taken by path just before a reset (``about_to_reset``)
    or an update in place (``about_to_restructure``) and put back just after it (``modelReset``,
    ``restructured``; after an update in place only what the view lost, such as the expanded rows
    of a moved row).  The scroll position follows the row that was at the top of the view (so rows
    added above it do not move what the user is looking at); when that row is gone, the scroll
    bar's old value is restored.
    """

    def __init__(self, view: QTreeView, model: BreakdownModel) -> None:
        super().__init__(view)
        self._view = view
        self._model = model
        self._expanded: list[Path] = []
        self._selected: list[Path] = []
        self._current: Path | None = None
        self._anchor: Path | None = None
        self._anchor_offset = 0
        self._scroll = (0, 0)
        self._skip = False
        model.about_to_reset.connect(self.capture)
        model.modelReset.connect(self.restore)
        model.about_to_restructure.connect(self._capture_in_place)
        model.restructured.connect(self._restore_in_place)

    def expanded_paths(self) -> list[Path]:
        """The paths of every expanded row (only rows whose parents are expanded are visited)."""
        found: list[Path] = []
        stack = [QModelIndex()]
        model, view = self._model, self._view
        while stack:
            parent = stack.pop()
            for row in range(model.rowCount(parent)):
                index = model.index(row, 0, parent)
                if view.isExpanded(index):
                    found.append(model.path(index))
                    stack.append(index)
        return found

    def skip_next(self, skip: bool = True) -> None:
        """Do not carry the state over the next reset (another session is about to be shown)."""
        self._skip = skip

    def capture(self) -> None:
        """Remember the view's state by path (called before the model resets)."""
        if self._skip:
            return
        view, model = self._view, self._model
        self._expanded = self.expanded_paths()
        selection = view.selectionModel()
        self._selected = [model.path(i) for i in selection.selectedRows()] if selection else []
        current = view.currentIndex()
        self._current = model.path(current) if current.isValid() else None
        top = view.indexAt(QPoint(1, 1))
        self._anchor = model.path(top) if top.isValid() else None
        self._anchor_offset = view.visualRect(top).top() if top.isValid() else 0
        self._scroll = (view.verticalScrollBar().value(), view.horizontalScrollBar().value())

    def restore(self) -> None:
        """Put the remembered state back on the new rows (called after the model resets)."""
        if self._skip:
            self._skip = False
            return
        self._put_back()
        self._restore_scroll()

    def _capture_in_place(self) -> None:
        skip, self._skip = self._skip, False
        self.capture()
        self._skip = skip

    def _restore_in_place(self) -> None:
        """After rows came, went or moved in place: the view kept most of its state itself; put
        back what it lost, and the top row where it was if it moved."""
        self._put_back(only_lost=True)
        if self._anchor is None:
            return
        anchor = self._model.index_for_path(self._anchor)
        if not anchor.isValid():
            return
        view = self._view
        view.doItemsLayout()
        if view.visualRect(anchor).top() != self._anchor_offset:
            self._restore_scroll()

    def _put_back(self, only_lost: bool = False) -> None:
        view, model = self._view, self._model
        for path in sorted(self._expanded, key=len):
            index = model.index_for_path(path)
            if index.isValid() and not (only_lost and view.isExpanded(index)):
                view.setExpanded(index, True)
        selection = view.selectionModel()
        if only_lost:
            selected = [model.path(i) for i in selection.selectedRows()]
            current = view.currentIndex()
            if selected == self._selected and (model.path(current) if current.isValid() else None) == (
                self._current
            ):
                return
        chosen = QItemSelection()
        for path in self._selected:
            index = model.index_for_path(path)
            if index.isValid():
                chosen.select(index, model.index_for_path(path, len(COLUMNS) - 1))
        if self._current is not None:
            current = model.index_for_path(self._current)
            if current.isValid():
                selection.setCurrentIndex(current, QItemSelectionModel.SelectionFlag.NoUpdate)
        if not chosen.isEmpty():
            selection.select(chosen, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def _restore_scroll(self) -> None:
        view = self._view
        view.doItemsLayout()
        vertical, horizontal = self._scroll
        anchor = self._model.index_for_path(self._anchor) if self._anchor else QModelIndex()
        if anchor.isValid():
            view.scrollTo(anchor, QAbstractItemView.ScrollHint.PositionAtTop)
            if view.verticalScrollMode() == QAbstractItemView.ScrollMode.ScrollPerPixel:
                bar = view.verticalScrollBar()
                bar.setValue(bar.value() - self._anchor_offset)
        else:
            view.verticalScrollBar().setValue(vertical)
        view.horizontalScrollBar().setValue(horizontal)
