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

import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mity_cost.core.breakdown.series import CallColumns, IntArray, call_columns
from mity_cost.core.factory.documents import (
    CostEstimate,
    CostItem,
    FeatureCostDelta,
    LlmUsageRecord,
    ModelName,
    execution_label,
    is_unknown_model,
    model_label,
)
from mity_cost.core.factory.loading import LoadedFeature, LoadedSession
from mity_cost.core.figures.summary import group_executions, summarize, summarize_feature
from mity_cost.core.live.snapshot import SessionView
from mity_cost.core.money import ZERO, Range
from mity_cost.core.pricing.prices import PriceBook
from mity_cost.core.settings import Settings

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


def _combine(prices: Sequence[ListPrice | None]) -> ListPrice | None:
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


# --- prices -----------------------------------------------------------------------------------

_TIER_START = re.compile(r"above ([\d,]+) input tokens")
_PROBE = (1000, 1000)


@dataclass(frozen=True)
class _ModelRates:
    """How to price one model's calls fast: linear token rates up to ``linear_up_to`` input tokens
    a call (None: any size); beyond that, or when ``linear`` is false, ask the price book exactly."""

    priced: bool
    linear: bool
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    linear_up_to: int | None = None
    source: str = ""
    as_of: str | None = None
    matched_model: str | None = None
    note: str = ""


class _Pricer:
    """Current list prices of calls and groups of calls, in the display currency.

    Prices are linear in tokens for most models, so a group is priced from its token sums with the
    price book's ``rates``; a model whose price is not (tiers above some call size, per-request
    fees) has each call above the tier, or each group, priced exactly (``quote`` /
    ``price_groups``).  Linearity is checked against ``quote`` once per model.
    """

    def __init__(self, book: PriceBook | None, settings: Settings) -> None:
        self._book = book
        self._usd = settings.convert(1.0, "USD")
        self._models: dict[str, _ModelRates] = {}
        self.token = (id(book), self._usd)
        """Identifies the prices a cached call row was built with."""

    def rates(self, key: str, model: ModelName) -> _ModelRates:
        """The pricing plan of one model (cached)."""
        found = self._models.get(key)
        if found is None:
            found = self._models[key] = self._plan(model)
        return found

    def _plan(self, model: ModelName) -> _ModelRates:
        book = self._book
        if book is None:
            return _ModelRates(
                False, False, source="no price data", note="the price book could not be loaded"
            )
        try:
            rates = book.rates(model)
            if rates is None:
                quote = book.quote(model, *_PROBE)
                return _ModelRates(False, False, source=quote.source, as_of=quote.as_of, note=quote.note)
            plan = _ModelRates(
                True,
                True,
                rates.input_per_mtok,
                rates.output_per_mtok,
                source=rates.source,
                as_of=rates.as_of,
                matched_model=rates.matched_model,
            )
            if rates.tier_note:
                match = _TIER_START.search(rates.tier_note)
                start = int(match.group(1).replace(",", "")) if match else None
                plan = replace(plan, linear=start is not None, linear_up_to=start, note=rates.tier_note)
            probe = book.quote(model, *_PROBE).price
            if probe is None or not math.isclose(
                probe, self._linear(plan, *_PROBE), rel_tol=1e-9, abs_tol=1e-15
            ):
                plan = replace(plan, linear=False)
            return plan
        except Exception as exc:  # noqa: BLE001 - a price problem must never break the breakdown
            return _ModelRates(False, False, source="price book error", note=str(exc))

    @staticmethod
    def _linear(plan: _ModelRates, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * plan.input_per_mtok + output_tokens * plan.output_per_mtok) / 1_000_000

    def _exact(self, model: ModelName, input_tokens: int, output_tokens: int) -> float | None:
        assert self._book is not None
        try:
            return self._book.quote(model, input_tokens, output_tokens).price
        except Exception:  # noqa: BLE001 - unpriced rather than broken
            return None

    def _price(self, plan: _ModelRates, amount: float | None, factory: float) -> ListPrice:
        return ListPrice(
            None if amount is None else amount * self._usd,
            factory,
            plan.source,
            plan.as_of,
            plan.matched_model,
            plan.note,
        )

    def call(self, key: str, record: LlmUsageRecord, factory: float) -> ListPrice:
        """The list price of one call."""
        model = record["model"]
        plan = self.rates(key, model)
        tokens_in, tokens_out = record["inputTokens"], record["outputTokens"]
        if not plan.priced:
            return self._price(plan, None, factory)
        if plan.linear and (plan.linear_up_to is None or tokens_in <= plan.linear_up_to):
            return self._price(plan, self._linear(plan, tokens_in, tokens_out), factory)
        return self._price(plan, self._exact(model, tokens_in, tokens_out), factory)

    def group(
        self, group: _Group, records: Sequence[LlmUsageRecord], columns: CallColumns, scale: float
    ) -> ListPrice:
        """The list price of some calls of one model."""
        usage = group.usage
        factory = usage.cost * scale
        model = group.name
        plan = self.rates(group.model, model)
        if not plan.priced:
            return self._price(plan, None, factory)
        if plan.linear and plan.linear_up_to is None:
            return self._price(plan, self._linear(plan, usage.input_tokens, usage.output_tokens), factory)
        if plan.linear and plan.linear_up_to is not None:
            big = group.indices[columns.input_tokens[group.indices] > plan.linear_up_to]
            small_in = usage.input_tokens - int(columns.input_tokens[big].sum())
            small_out = usage.output_tokens - int(columns.output_tokens[big].sum())
            total: float | None = self._linear(plan, small_in, small_out)
            for index in big:
                record = records[int(index)]
                price = self._exact(model, record["inputTokens"], record["outputTokens"])
                total = None if price is None or total is None else total + price
            return self._price(plan, total, factory)
        assert self._book is not None
        try:
            groups = self._book.price_groups([records[int(i)] for i in group.indices])
        except Exception as exc:  # noqa: BLE001 - unpriced rather than broken
            return ListPrice(None, factory, "price book error", note=str(exc))
        amount = groups[0].current_cost if groups else None
        return self._price(plan, amount, factory)


# --- helpers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Usage:
    """Sums over some LLM records."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def range(self, scale: float) -> Range:
        total = self.cost * scale
        return Range(total, total, total)


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _money(amount: float, symbol: str) -> str:
    return f"{symbol}{amount:,.2f}"


def _unique(key: str, seen: dict[str, int]) -> str:
    """``key``, or ``key#2``, ``key#3``... when it repeats among siblings."""
    count = seen.get(key, 0) + 1
    seen[key] = count
    return key if count == 1 else f"{key}#{count}"


def _item_notes(item: Mapping[str, Any]) -> tuple[str, ...]:
    notes = []
    if item.get("notes"):
        notes.append(str(item["notes"]))
    if item.get("unit"):
        notes.append(f"unit: {item['unit']}")
    return tuple(notes)


class CallCache:
    """Call rows kept from one build of the tree to the next (a session's old calls do not change).

    Owned by whoever rebuilds the tree (the details window); ``build_tree`` looks a call's row up
    by everything that shows in it.  Bounded: the oldest rows are dropped first.
    """

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._rows: OrderedDict[tuple[Any, ...], Node] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: tuple[Any, ...]) -> Node | None:
        """The row built before for this key, if any."""
        return self._rows.get(key)

    def put(self, key: tuple[Any, ...], node: Node) -> None:
        """Remember a row (dropping the oldest beyond the size)."""
        self._rows[key] = node
        if len(self._rows) > self._size:
            self._rows.popitem(last=False)

    def clear(self) -> None:
        """Forget every row (after a change of settings or prices)."""
        self._rows.clear()


def _call_node(
    record: LlmUsageRecord, key: str, model: str, scale: float, pricer: _Pricer, cache: CallCache | None
) -> Node:
    cost = record["cost"] * scale
    cache_key: tuple[Any, ...] = ()
    if cache is not None:
        cache_key = (
            key,
            model,
            cost,
            record["inputTokens"],
            record["outputTokens"],
            record["timestamp"],
            record.get("station"),
            record.get("feature"),
            pricer.token,
        )
        found = cache.get(cache_key)
        if found is not None:
            return found
    when = record["timestamp"]
    parts = [_local(when)]
    notes = [
        f"id {record['id']}",
        f"{record['inputTokens']:,} input + {record['outputTokens']:,} output tokens",
    ]
    for field_name in ("station", "feature"):
        value = record.get(field_name)
        if value:
            parts.append(str(value))
            notes.append(f"{field_name}: {value}")
    if key != record["id"]:
        notes.append("this id repeats: the factory counted the call more than once")
    node = Node(
        key=key,
        label=" · ".join(parts),
        kind="call",
        cost=Range(cost, cost, cost),
        tokens=record["inputTokens"] + record["outputTokens"],
        calls=1,
        list_price=pricer.call(model, record, cost),
        notes=tuple(notes),
        when=when,
    )
    if cache is not None:
        cache.put(cache_key, node)
    return node


_EARLIER = "earlier"


@dataclass(frozen=True)
class _Group:
    """Some calls of one model: their record indices (file order) and sums."""

    model: str
    name: ModelName
    indices: IntArray
    usage: _Usage


def _usage(columns: CallColumns, indices: IntArray) -> _Usage:
    return _Usage(
        int(indices.size),
        int(columns.input_tokens[indices].sum()),
        int(columns.output_tokens[indices].sum()),
        float(columns.cost[indices].sum()),
    )


def _agent_node(
    agent: str,
    group: _Group,
    records: Sequence[LlmUsageRecord],
    columns: CallColumns,
    context: _Context,
) -> Node:
    """An agent's calls: the last ``limit`` recorded listed newest first, the rest summed in one row."""
    limit, scale, pricer = context.limit, context.scale, context.pricer
    indices = group.indices
    shown = [records[int(i)] for i in indices[-limit:]] if limit > 0 else []
    shown.sort(key=lambda r: r["timestamp"], reverse=True)
    seen: dict[str, int] = {_EARLIER: 1}  # an id spelled "earlier" must not take the summary row's key
    children = [
        _call_node(r, _unique(r["id"], seen), group.model, scale, pricer, context.cache) for r in shown
    ]
    rest = indices[: max(0, int(indices.size) - limit)]
    if rest.size:
        rest_group = _Group(group.model, group.name, rest, _usage(columns, rest))
        children.append(
            Node(
                key=_EARLIER,
                label=f"{rest.size:,} earlier calls",
                kind="earlier",
                cost=rest_group.usage.range(scale),
                tokens=rest_group.usage.tokens,
                calls=rest_group.usage.calls,
                list_price=pricer.group(rest_group, records, columns, scale),
                notes=(f"only the last {limit} calls are listed one by one",),
            )
        )
    return Node(
        key=agent,
        label=agent,
        kind="agent",
        cost=group.usage.range(scale),
        tokens=group.usage.tokens,
        calls=group.usage.calls,
        list_price=pricer.group(group, records, columns, scale),
        children=tuple(children),
    )


@dataclass(frozen=True)
class _Context:
    scale: float
    pricer: _Pricer
    limit: int
    cache: CallCache | None


# --- sections -----------------------------------------------------------------------------------


def _by_model_and_agent(columns: CallColumns) -> dict[int, dict[int, IntArray]]:
    """Record indices (file order) per model code and agent code."""
    agents = max(len(columns.agents), 1)
    codes = columns.model * agents + columns.agent
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(columns.model_keys) * agents)
    found: dict[int, dict[int, IntArray]] = {}
    start = 0
    for code in np.flatnonzero(counts):
        end = start + int(counts[code])
        model, agent = divmod(int(code), agents)
        found.setdefault(model, {})[agent] = order[start:end]
        start = end
    return found


def _llm_section(session: LoadedSession, settings: Settings, context: _Context) -> Node:
    doc = session.doc
    records = doc["llmUsage"]
    columns = call_columns(session)
    scale = context.scale
    model_nodes = []
    for model_code, agents in _by_model_and_agent(columns).items():
        key = columns.model_keys[model_code]
        agent_nodes = [
            _agent_node(
                columns.agents[agent_code],
                _Group(key, columns.models[model_code], indices, _usage(columns, indices)),
                records,
                columns,
                context,
            )
            for agent_code, indices in agents.items()
        ]
        agent_nodes.sort(key=lambda n: (-(n.cost or ZERO).expected, n.label))
        model = columns.models[model_code]
        notes = []
        if is_unknown_model(model):
            notes.append(
                f"the factory did not recognise '{model_label(model)}' and charged its fallback price"
            )
        indices = np.flatnonzero(columns.model == model_code)
        usage = _usage(columns, indices)
        children = tuple(agent_nodes)
        model_nodes.append(
            Node(
                key=key,
                label=model_label(model),
                kind="model",
                cost=usage.range(scale),
                tokens=usage.tokens,
                calls=usage.calls,
                list_price=_combine([n.list_price for n in children]),
                notes=tuple(notes),
                children=children,
            )
        )
    model_nodes.sort(key=lambda n: (-(n.cost or ZERO).expected, n.label))
    ledger = Range.of(doc["sessionCost"]["breakdown"]["llm"], scale)
    notes = [f"{len(records):,} calls to {len(model_nodes)} model(s)"]
    if not settings.llm_enabled:
        notes.append("LLM costs are left out of the totals (MITY_COST_LLM_ENABLED is false)")
    if not session.consistency.consistent:
        notes.append(f"inconsistent: {session.consistency.describe()}; the ledger's figure is shown")
    total = _usage(columns, np.arange(len(columns), dtype=np.int64))
    return Node(
        key="llm",
        label="LLM",
        kind="section",
        cost=ledger,
        tokens=total.tokens,
        calls=total.calls,
        list_price=_combine([n.list_price for n in model_nodes]),
        notes=tuple(notes),
        children=tuple(model_nodes),
    )


def _compute_section(view: SessionView, session: LoadedSession, scale: float, limit: int) -> Node:
    doc = session.doc
    runs = doc["executionCosts"]
    by_kind: dict[str, list[int]] = {}
    for index, run in enumerate(runs):
        by_kind.setdefault(execution_label(run["executionType"]), []).append(index)
    groups = {g.kind: g for g in group_executions(session, scale)}
    kind_nodes = []
    for kind, group in groups.items():
        indices = by_kind.get(kind, [])
        run_nodes = []
        for index in reversed(indices[-limit:] if limit else []):
            run = runs[index]
            where = "local" if run["isLocal"] else "cloud"
            notes = list(_item_notes(run["cost"]))
            notes.append(f"{run['cpuMinutes']:g} CPU-minutes, {run['memoryGbMinutes']:g} GB-minutes")
            seen = view.execution_seen_at[index] if index < len(view.execution_seen_at) else None
            when = datetime.fromtimestamp(seen).astimezone() if seen else None
            label = f"Run {index + 1} · {where}"
            if when is not None:
                label += f" · first seen {when:%Y-%m-%d %H:%M:%S}"
            run_nodes.append(
                Node(
                    key=f"run{index}",
                    label=label,
                    kind="run",
                    cost=Range.of(run["cost"], scale),
                    calls=1,
                    notes=tuple(notes),
                    when=when,
                )
            )
        older = indices[: max(0, len(indices) - limit)]
        if older:
            run_nodes.append(
                Node(
                    key="earlier",
                    label=f"{len(older):,} earlier runs",
                    kind="earlier",
                    cost=sum((Range.of(runs[i]["cost"], scale) for i in older), ZERO),
                    calls=len(older),
                    notes=(f"only the newest {limit} runs are listed one by one",),
                )
            )
        kind_nodes.append(
            Node(
                key=kind,
                label=kind,
                kind="execution-type",
                cost=group.cost,
                calls=group.runs,
                notes=(
                    f"{group.runs} run(s): {group.local_runs} local, {group.runs - group.local_runs} cloud",
                    f"{group.cpu_minutes:g} CPU-minutes, {group.memory_gb_minutes:g} GB-minutes",
                ),
                children=tuple(run_nodes),
            )
        )
    ledger = Range.of(doc["sessionCost"]["breakdown"]["compute"], scale)
    notes = ["executions carry no timestamp: each is dated by when it was first seen"]
    summed = sum((n.cost or ZERO for n in kind_nodes), ZERO)
    if not math.isclose(summed.expected, ledger.expected, rel_tol=1e-9, abs_tol=1e-9):
        notes.append(f"the executions sum to {summed.expected:.4f}; the ledger's figure is shown")
    return Node(
        key="compute",
        label="Compute",
        kind="section",
        cost=ledger,
        calls=len(runs),
        notes=tuple(notes),
        children=tuple(kind_nodes),
    )


def _categories(estimate: CostEstimate, scale: float, monthly: bool, keep_zero: Iterable[str]) -> list[Node]:
    keep = set(keep_zero)
    nodes = []
    for name in CATEGORIES:
        item: CostItem = estimate["breakdown"][name]
        cost = Range.of(item, scale)
        if name not in keep and cost.max == 0:
            continue
        nodes.append(
            Node(
                key=name,
                label=CATEGORY_LABELS[name],
                kind="category",
                cost=cost,
                notes=_item_notes(item),
                monthly=monthly,
            )
        )
    return nodes


def _other_section(session: LoadedSession, scale: float) -> Node | None:
    """The ledger's storage / network / misc, when the factory put anything there."""
    ledger = session.doc["sessionCost"]
    nodes = [n for n in _categories(ledger, scale, False, ()) if n.key not in ("llm", "compute")]
    if not nodes:
        return None
    return Node(
        key="other",
        label="Storage, network, misc",
        kind="section",
        cost=sum((n.cost or ZERO for n in nodes), ZERO),
        children=tuple(nodes),
    )


def _assumptions(assumptions: Sequence[str]) -> Node | None:
    if not assumptions:
        return None
    seen: dict[str, int] = {}
    return Node(
        key="assumptions",
        label=f"Assumptions ({len(assumptions)})",
        kind="assumptions",
        notes=tuple(assumptions),
        children=tuple(
            Node(key=_unique(f"a:{text}", seen), label=text, kind="assumption") for text in assumptions
        ),
    )


def _infra_section(session: LoadedSession, scale: float) -> Node:
    infra = session.doc["infraCost"]
    children = _categories(infra, scale, True, ("compute", "storage", "network", "misc"))
    assumptions = _assumptions(infra["assumptions"])
    if assumptions is not None:
        children.append(assumptions)
    notes = [
        "a recurring monthly bill, not part of the session total",
        f"confidence {infra['confidence']:.0%}",
        *infra["assumptions"],
    ]
    return Node(
        key="infra",
        label="Infrastructure (monthly)",
        kind="section",
        cost=Range.of(infra["total"], scale),
        notes=tuple(notes),
        children=tuple(children),
        monthly=True,
    )


def _feature_node(app: str, doc: FeatureCostDelta, key: str, settings: Settings) -> Node:
    summary = summarize_feature(app, doc, settings)
    scale = settings.convert(1.0, doc["oneTimeCost"]["currency"])
    one_time = Node(
        key="one-time",
        label="One-time",
        kind="part",
        cost=summary.one_time,
        notes=tuple(doc["oneTimeCost"]["assumptions"]),
        children=tuple(_categories(doc["oneTimeCost"], scale, False, ())),
    )
    monthly_scale = settings.convert(1.0, doc["monthlyImpact"]["currency"])
    monthly = Node(
        key="monthly",
        label="Monthly impact",
        kind="part",
        cost=summary.monthly,
        notes=tuple(doc["monthlyImpact"]["assumptions"]),
        children=tuple(_categories(doc["monthlyImpact"], monthly_scale, True, ())),
        monthly=True,
    )
    notes = [summary.summary, f"calculated {_local(doc['calculatedAt'])}"]
    if doc["featureName"] != doc["featureId"]:
        notes.insert(0, f"id: {doc['featureId']}")
    return Node(
        key=key,
        label=doc["featureName"] or doc["featureId"],
        kind="feature",
        cost=summary.one_time,
        notes=tuple(notes),
        children=(one_time, monthly),
    )


def _under(path: Path | None, root: Path) -> bool:
    if path is None:
        return True
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def session_features(view: SessionView, features: Iterable[LoadedFeature]) -> list[LoadedFeature]:
    """The feature files that belong to the session's factory root."""
    return [f for f in features if _under(f.path, view.root)]


def _features_section(
    view: SessionView,
    session: LoadedSession,
    features: Iterable[LoadedFeature],
    settings: Settings,
    feature_errors: int,
) -> Node:
    by_app: dict[str, list[tuple[str, FeatureCostDelta]]] = {}
    seen_ids: set[str] = set()
    for feature in session_features(view, features):
        by_app.setdefault(feature.app, []).append((feature.doc["featureId"], feature.doc))
        seen_ids.add(feature.doc["featureId"])
    for feature_id, doc in session.doc["featureCosts"].items():
        if feature_id not in seen_ids and doc.get("featureId", feature_id) not in seen_ids:
            by_app.setdefault(SESSION_FEATURES_APP, []).append((feature_id, doc))
    app_nodes = []
    one_time_total, monthly_total = ZERO, ZERO
    for app in sorted(by_app):
        seen: dict[str, int] = {}
        nodes = [
            _feature_node(app, doc, _unique(fid, seen), settings)
            for fid, doc in sorted(by_app[app], key=lambda item: item[0])
        ]
        one_time = sum((n.cost or ZERO for n in nodes), ZERO)
        monthly = sum((n.children[1].cost or ZERO for n in nodes), ZERO)
        one_time_total += one_time
        monthly_total += monthly
        app_nodes.append(
            Node(
                key=app,
                label=app,
                kind="app",
                cost=one_time,
                calls=None,
                notes=(
                    f"{len(nodes)} feature(s)",
                    f"monthly impact {_money(monthly.expected, settings.symbol)}/mo",
                ),
                children=tuple(nodes),
            )
        )
    notes = [
        "one-time cost of each feature; its monthly impact is listed below it",
        f"monthly impact of all features {_money(monthly_total.expected, settings.symbol)}/mo",
    ]
    if not app_nodes:
        notes.append("no feature cost files")
    if feature_errors:
        notes.append(f"{feature_errors} feature file(s) could not be read")
    return Node(
        key="features",
        label="Features",
        kind="section",
        cost=one_time_total,
        notes=tuple(notes),
        children=tuple(app_nodes),
    )


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
    context = _Context(scale, _Pricer(prices, settings), max_rows, cache)
    sections = [
        _llm_section(session, settings, context),
        _compute_section(view, session, scale, max_rows),
    ]
    other = _other_section(session, scale)
    if other is not None:
        sections.append(other)
    sections.append(_infra_section(session, scale))
    sections.append(_features_section(view, session, features, settings, feature_errors))
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
