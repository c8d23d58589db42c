"""A thin ``QAbstractItemModel`` over the pure breakdown tree (``core.breakdown.Node``).

Indexes carry an integer id per node *path* (the keys from the root), never a pointer, so an index
kept by the view stays meaningful when the tree is replaced.  ``set_tree`` swaps in a new tree: when
only figures changed it emits ``dataChanged``; when rows came or went it resets the model, and
:class:`ViewStateKeeper` puts the user's expanded rows, selection, current row and scroll position
back by path.
"""

from __future__ import annotations

from typing import Any, overload

from PySide6.QtCore import (
    QAbstractItemModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QTreeView

from mity_cost.core.breakdown import ListPrice, Node, same_shape
from mity_cost.core.summary import Range

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
"""``data(index, NODE_ROLE)`` is the row's :class:`~mity_cost.core.breakdown.Node`."""
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
"""``data(index, PATH_ROLE)`` is the row's path of keys (its stable id)."""

UNPRICED = "unpriced"
DIFFERS_COLOR = "#c66900"
MUTED_COLOR = "#808080"
_ALIGN_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_ALIGN_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter


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


class BreakdownModel(QAbstractItemModel):
    """Columns Item, Min, Expected, Max, Tokens, Calls, List price over a breakdown tree.

    Signals:
        about_to_reset: emitted just before a reset, while the old rows are still laid out in the
            views (``modelAboutToBeReset`` comes too late: a tree view has dropped its rows by then).
    """

    about_to_reset = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._root = Node(key="", label="", kind="session")
        self._symbol = "$"
        self._ids: dict[Path, int] = {(): 0}
        self._paths: list[Path] = [()]
        self._resolved: dict[int, tuple[Node, int] | None] = {0: (self._root, 0)}
        self._bold = QFont()
        self._bold.setBold(True)
        self._italic = QFont()
        self._italic.setItalic(True)

    # --- the tree -----------------------------------------------------------------------------

    @property
    def root(self) -> Node:
        """The tree shown (its children are the top-level rows)."""
        return self._root

    @property
    def symbol(self) -> str:
        """The currency symbol the amounts are shown with."""
        return self._symbol

    def set_tree(self, root: Node, symbol: str | None = None) -> bool:
        """Show a new tree; True when the model was reset (rows changed), False for figures only."""
        new_symbol = symbol if symbol is not None else self._symbol
        if same_shape(self._root, root):
            old = self._root
            self._root = root
            self._resolved = {0: (root, 0)}
            if new_symbol != self._symbol:
                self._symbol = new_symbol
                self._emit_all(QModelIndex(), root)
            else:
                self._emit_changed(QModelIndex(), old, root)
            return False
        self.about_to_reset.emit()
        self.beginResetModel()
        self._root = root
        self._symbol = new_symbol
        self._ids = {(): 0}
        self._paths = [()]
        self._resolved = {0: (root, 0)}
        self.endResetModel()
        return True

    def _emit_all(self, parent: QModelIndex, node: Node) -> None:
        if not node.children:
            return
        last = len(node.children) - 1
        self.dataChanged.emit(self.index(0, 0, parent), self.index(last, len(COLUMNS) - 1, parent))
        for row, child in enumerate(node.children):
            if child.children:
                self._emit_all(self.index(row, 0, parent), child)

    def _emit_changed(self, parent: QModelIndex, old: Node, new: Node) -> None:
        """One ``dataChanged`` per parent, spanning the rows whose own figures changed."""
        changed = [
            row
            for row, (a, b) in enumerate(zip(old.children, new.children, strict=True))
            if _row_of(a) != _row_of(b)
        ]
        if changed:
            self.dataChanged.emit(
                self.index(changed[0], 0, parent), self.index(changed[-1], len(COLUMNS) - 1, parent)
            )
        for row, (a, b) in enumerate(zip(old.children, new.children, strict=True)):
            if b.children and a != b:
                self._emit_changed(self.index(row, 0, parent), a, b)

    def _id_for(self, path: Path) -> int:
        found = self._ids.get(path)
        if found is None:
            found = self._ids[path] = len(self._paths)
            self._paths.append(path)
        return found

    def _resolve(self, node_id: int) -> tuple[Node, int] | None:
        if node_id in self._resolved:
            return self._resolved[node_id]
        if not 0 <= node_id < len(self._paths):
            return None
        path = self._paths[node_id]
        parent = self._root.find(path[:-1])
        row = parent.row_of(path[-1]) if parent is not None else None
        found = None if parent is None or row is None else (parent.children[row], row)
        self._resolved[node_id] = found
        return found

    def node(self, index: AnyIndex) -> Node | None:
        """The node of an index (the root for an invalid one)."""
        if not index.isValid():
            return self._root
        found = self._resolve(index.internalId())
        return found[0] if found else None

    def path(self, index: AnyIndex) -> Path:
        """The stable id (path of keys) of an index."""
        if not index.isValid():
            return ()
        node_id = index.internalId()
        return self._paths[node_id] if 0 <= node_id < len(self._paths) else ()

    def index_for_path(self, path: Path, column: int = 0) -> QModelIndex:
        """The index of the node at this path, or an invalid index when it is gone."""
        if not path:
            return QModelIndex()
        parent = self._root.find(path[:-1])
        row = parent.row_of(path[-1]) if parent is not None else None
        if row is None:
            return QModelIndex()
        return self.createIndex(row, column, self._id_for(tuple(path)))

    # --- QAbstractItemModel -------------------------------------------------------------------

    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        node = self.node(parent)
        if node is None or not 0 <= row < len(node.children):
            return QModelIndex()
        child = node.children[row]
        child_id = self._id_for((*self.path(parent), child.key))
        self._resolved.setdefault(child_id, (child, row))
        return self.createIndex(row, column, child_id)

    @overload
    def parent(self) -> QObject | None: ...

    @overload
    def parent(self, child: AnyIndex) -> QModelIndex: ...

    def parent(self, child: AnyIndex | None = None) -> QObject | QModelIndex | None:
        if child is None:
            return super().parent()
        if not child.isValid():
            return QModelIndex()
        path = self.path(child)
        if len(path) <= 1:
            return QModelIndex()
        parent_path = path[:-1]
        parent_id = self._id_for(parent_path)
        found = self._resolve(parent_id)
        if found is None:
            return QModelIndex()
        return self.createIndex(found[1], 0, parent_id)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() and parent.column() != 0:
            return 0
        node = self.node(parent)
        return len(node.children) if node is not None else 0

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMN_TIPS.get(section)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _ALIGN_RIGHT if section in NUMERIC_COLUMNS else _ALIGN_LEFT
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node = self.node(index)
        if node is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(node, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == COL_PRICE and node.list_price is not None:
                return price_tooltip(node.list_price, self._symbol)
            return node_tooltip(node, self._symbol)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _ALIGN_RIGHT if column in NUMERIC_COLUMNS else _ALIGN_LEFT
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(node, column)
        if role == Qt.ItemDataRole.FontRole:
            if node.kind == "section" and column == COL_ITEM:
                return self._bold
            if node.kind in ("assumption", "earlier"):
                return self._italic
            return None
        if role == NODE_ROLE:
            return node
        if role == PATH_ROLE:
            return self.path(index)
        return None

    def _display(self, node: Node, column: int) -> str | None:
        if column == COL_ITEM:
            return node.label
        if column in (COL_MIN, COL_EXPECTED, COL_MAX):
            if node.cost is None:
                return None
            amount = (node.cost.min, node.cost.expected, node.cost.max)[column - COL_MIN]
            return format_amount(amount, self._symbol) + ("/mo" if node.monthly else "")
        if column == COL_TOKENS:
            return f"{node.tokens:,}" if node.tokens is not None else None
        if column == COL_CALLS:
            return f"{node.calls:,}" if node.calls is not None else None
        if column == COL_PRICE and node.list_price is not None:
            return format_price(node.list_price, self._symbol)
        return None

    def _foreground(self, node: Node, column: int) -> QBrush | None:
        if column == COL_PRICE and node.list_price is not None:
            if node.list_price.amount is None:
                return QBrush(QColor(MUTED_COLOR))
            if node.list_price.differs:
                return QBrush(QColor(DIFFERS_COLOR))
        if node.kind == "assumption":
            return QBrush(QColor(MUTED_COLOR))
        return None


class ViewStateKeeper(QObject):
    """Keeps a tree view's expanded rows, selection, current row and scroll position across resets.

    It listens to the model: the state is taken by path just before a reset (``about_to_reset``)
    and put back just after it (``modelReset``).  The scroll position follows the row that was at
    the top of the view (so rows added above it do not move what the user is looking at); when that
    row is gone, the scroll bar's old value is restored.
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

    def expanded_paths(self) -> list[Path]:
        """The paths of every expanded row (only rows whose parents are expanded are visited)."""
        found: list[Path] = []
        stack = [QModelIndex()]
        while stack:
            parent = stack.pop()
            for row in range(self._model.rowCount(parent)):
                index = self._model.index(row, 0, parent)
                if self._view.isExpanded(index):
                    found.append(self._model.path(index))
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
        view, model = self._view, self._model
        for path in sorted(self._expanded, key=len):
            index = model.index_for_path(path)
            if index.isValid():
                view.setExpanded(index, True)
        selection = view.selectionModel()
        if selection is not None:
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
        self._restore_scroll()

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
