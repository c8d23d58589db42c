"""The rows of the breakdown tree: :class:`Node` and the :class:`ListPrice` beside the factory's figure.

Every node has a ``key`` unique among its siblings, so a node's *path* of keys is a stable id across
updates (the Qt model keeps the user's expanded rows and selection by it).  Amounts are in the display
currency; ``ListPrice.amount is None`` means *unpriced*, never $0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from mity_cost.core.money import Range

MAX_CHILD_ROWS = 100
"""At most this many calls (or runs) are listed one by one under a group; older ones are summed
into one "earlier calls" row, so a 100,000-call session stays a tree a person can use."""

DIFFERENCE_TOLERANCE = 0.10
"""The factory's figure and the list price differ noticeably beyond this fraction."""

Category = Literal["llm", "compute", "storage", "network", "misc"]
CATEGORIES: tuple[Category, ...] = ("llm", "compute", "storage", "network", "misc")
CATEGORY_LABELS: dict[str, str] = {
    "llm": "LLM",
    "compute": "Compute",
    "storage": "Storage",
    "network": "Network",
    "misc": "Misc",
}
SESSION_FEATURES_APP = "(this session)"
"""The app label for features stored inside the session's own ``featureCosts``."""

NodeKind = Literal[
    "session",
    "section",
    "model",
    "agent",
    "call",
    "earlier",
    "execution-type",
    "run",
    "category",
    "assumptions",
    "assumption",
    "app",
    "feature",
    "part",
]


@dataclass(frozen=True)
class ListPrice:
    """The current list price of some LLM calls beside the factory's figure for them.

    ``amount`` is ``None`` when unpriced (shown as "unpriced", never $0).  ``partial`` means some of
    the calls below are unpriced: ``amount`` and ``factory`` then cover only the priced ones.
    """

    amount: float | None
    factory: float
    source: str = ""
    as_of: str | None = None
    matched_model: str | None = None
    note: str = ""
    partial: bool = False

    @property
    def priced(self) -> bool:
        """True when a price was found (for some of the calls, if ``partial``)."""
        return self.amount is not None

    @property
    def difference_percent(self) -> float | None:
        """(list - factory) / factory x 100; ``None`` when unpriced or the factory says 0."""
        if self.amount is None or self.factory <= 0:
            return None
        return (self.amount - self.factory) / self.factory * 100.0

    @property
    def differs(self) -> bool:
        """True when the factory's figure is more than 10 % away from the list price."""
        if self.amount is None:
            return False
        if self.factory <= 0:
            return self.amount > 0
        # The small relative slack keeps an exact 10 % (in binary floating point) from counting.
        return abs(self.amount - self.factory) > DIFFERENCE_TOLERANCE * self.factory * (1 + 1e-9)


def combine_prices(prices: Sequence[ListPrice | None]) -> ListPrice | None:
    """The sum of several list prices (partial when any is unpriced or partial)."""
    present = [p for p in prices if p is not None]
    if not present:
        return None
    priced = [p for p in present if p.amount is not None]
    partial = len(priced) < len(present) or any(p.partial for p in priced)
    if not priced:
        first = present[0]
        return ListPrice(None, 0.0, first.source, first.as_of, None, first.note)
    sources = sorted({p.source for p in priced})
    as_of = max((p.as_of for p in priced if p.as_of), default=None)
    return ListPrice(
        amount=math.fsum(p.amount or 0.0 for p in priced),
        factory=math.fsum(p.factory for p in priced),
        source="; ".join(sources),
        as_of=as_of,
        partial=partial,
    )


@dataclass(frozen=True)
class Node:
    """One row of the breakdown.

    ``cost`` is ``None`` for rows that are only information (assumptions); ``list_price`` is
    ``None`` where no list price applies (everything but LLM rows).
    """

    key: str
    label: str
    kind: NodeKind
    cost: Range | None = None
    tokens: int | None = None
    calls: int | None = None
    list_price: ListPrice | None = None
    notes: tuple[str, ...] = ()
    children: tuple[Node, ...] = ()
    monthly: bool = False
    when: datetime | None = None
    _rows: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        rows = self._rows
        for row, child in enumerate(self.children):
            if child.key in rows:
                raise ValueError(f"duplicate key {child.key!r} under {self.key!r}")
            rows[child.key] = row

    def row_of(self, key: str) -> int | None:
        """The row of the child with this key, if any."""
        return self._rows.get(key)

    def child(self, key: str) -> Node | None:
        """The child with this key, if any."""
        row = self._rows.get(key)
        return None if row is None else self.children[row]

    def find(self, path: Sequence[str]) -> Node | None:
        """The node at this path of keys below this one (``()`` is this node)."""
        node: Node | None = self
        for key in path:
            node = node.child(key) if node is not None else None
        return node

    def walk(self, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Node]]:
        """Every node below this one (depth first) with its path."""
        for child in self.children:
            path = (*prefix, child.key)
            yield path, child
            yield from child.walk(path)


def same_shape(a: Node, b: Node) -> bool:
    """True when both trees have the same keys in the same places (only figures may differ)."""
    if a.key != b.key or len(a.children) != len(b.children):
        return False
    return all(same_shape(x, y) for x, y in zip(a.children, b.children, strict=True))


def local_time(when: datetime) -> str:
    """A moment as local wall-clock text, to the second."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def unique_key(key: str, seen: dict[str, int]) -> str:
    """``key``, or ``key#2``, ``key#3``... when it repeats among siblings."""
    count = seen.get(key, 0) + 1
    seen[key] = count
    return key if count == 1 else f"{key}#{count}"
