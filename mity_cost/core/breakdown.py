"""The details window's breakdown of one session as a pure, immutable tree (Qt-free).

``build_tree`` turns a :class:`~mity_cost.core.state.SessionView`, the feature files and the settings
into :class:`Node` objects: LLM > model > agent > calls; Compute > execution type > runs;
Infrastructure (monthly) > category, with its assumptions; Features > app > feature (one-time and
monthly).  Every node has a ``key`` unique among its siblings, so a node's *path* of keys is a stable
id across updates (the Qt model keeps the user's expanded rows and selection by it).

Amounts are in the display currency.  LLM rows also carry the current list price
(:class:`ListPrice`, from :class:`~mity_cost.core.prices.PriceBook`); ``amount is None`` means
*unpriced*, never $0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from mity_cost.core.documents import (
    CostEstimate,
    CostItem,
    FeatureCostDelta,
    LlmUsageRecord,
    ModelName,
    execution_label,
    is_unknown_model,
    model_key,
    model_label,
)
from mity_cost.core.loading import LoadedFeature, LoadedSession
from mity_cost.core.prices import PriceBook
from mity_cost.core.settings import Settings
from mity_cost.core.state import SessionView
from mity_cost.core.summary import ZERO, Range, group_executions, summarize, summarize_feature

MAX_CHILD_ROWS = 200
"""At most this many calls (or runs) are listed one by one under a group; older ones are summed
into one "earlier calls" row, so a 100,000-call session stays a tree a person can use."""

DIFFERENCE_TOLERANCE = 0.10
"""The factory's figure and the list price differ noticeably beyond this fraction."""

CATEGORIES: tuple[str, ...] = ("llm", "compute", "storage", "network", "misc")
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
        return abs(self.amount - self.factory) > DIFFERENCE_TOLERANCE * self.factory


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


class _Pricer:
    """Prices groups of records (via ``PriceBook.price_groups``) and single calls (via its rates)."""

    def __init__(self, book: PriceBook | None, settings: Settings) -> None:
        self._book = book
        self._usd = settings.convert(1.0, "USD")
        self._call_price: dict[str, Callable[[int, int], float | None]] = {}

    def group(self, records: Sequence[LlmUsageRecord], scale: float) -> ListPrice:
        """The list price of records of one model."""
        factory = math.fsum(r["cost"] for r in records) * scale
        if self._book is None:
            return ListPrice(None, factory, "no price data", note="the price book could not be loaded")
        try:
            groups = self._book.price_groups(records)
        except Exception as exc:  # noqa: BLE001 - a price problem must never break the breakdown
            return ListPrice(None, factory, "price book error", note=str(exc))
        if not groups:
            return ListPrice(None, factory, "no price data")
        found = groups[0]
        amount = None if found.current_cost is None else found.current_cost * self._usd
        return ListPrice(amount, factory, found.source, found.as_of, found.matched_model, found.note)

    def call(self, record: LlmUsageRecord, scale: float) -> ListPrice:
        """The list price of one call."""
        model = record["model"]
        key = model_key(model)
        price = self._call_price.get(key)
        if price is None:
            price = self._call_price[key] = self._call_pricer(model)
        factory = record["cost"] * scale
        amount = price(record["inputTokens"], record["outputTokens"])
        return ListPrice(None if amount is None else amount * self._usd, factory)

    def _call_pricer(self, model: ModelName) -> Callable[[int, int], float | None]:
        book = self._book
        if book is None:
            return lambda _i, _o: None
        try:
            rates = book.rates(model)
        except Exception:  # noqa: BLE001 - unpriced rather than broken
            return lambda _i, _o: None
        if rates is None:
            return lambda _i, _o: None
        if rates.tier_note is None:
            rate_in, rate_out = rates.input_per_mtok, rates.output_per_mtok
            return lambda i, o: (i * rate_in + o * rate_out) / 1_000_000

        def tiered(i: int, o: int) -> float | None:
            try:
                return book.quote(model, i, o).price
            except Exception:  # noqa: BLE001 - unpriced rather than broken
                return None

        return tiered


# --- helpers ------------------------------------------------------------------------------------


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


def _token_sum(records: Iterable[LlmUsageRecord]) -> int:
    return sum(r["inputTokens"] + r["outputTokens"] for r in records)


def _llm_range(records: Sequence[LlmUsageRecord], scale: float) -> Range:
    total = math.fsum(r["cost"] for r in records) * scale
    return Range(total, total, total)


def _call_node(record: LlmUsageRecord, key: str, scale: float, pricer: _Pricer) -> Node:
    cost = record["cost"] * scale
    when = record["timestamp"]
    parts = [_local(when)]
    if record.get("station"):
        parts.append(str(record["station"]))
    if record.get("feature"):
        parts.append(str(record["feature"]))
    notes = [
        f"id {record['id']}",
        f"{record['inputTokens']:,} input + {record['outputTokens']:,} output tokens",
    ]
    if record.get("station"):
        notes.append(f"station: {record['station']}")
    if record.get("feature"):
        notes.append(f"feature: {record['feature']}")
    if key != record["id"]:
        notes.append("this id repeats: the factory counted the call more than once")
    return Node(
        key=key,
        label=" · ".join(parts),
        kind="call",
        cost=Range(cost, cost, cost),
        tokens=record["inputTokens"] + record["outputTokens"],
        calls=1,
        list_price=pricer.call(record, scale),
        notes=tuple(notes),
        when=when,
    )


def _calls(records: Sequence[LlmUsageRecord], scale: float, pricer: _Pricer, limit: int) -> tuple[Node, ...]:
    """The newest ``limit`` calls one by one, the rest summed in one "earlier calls" row."""
    order = sorted(range(len(records)), key=lambda i: (records[i]["timestamp"], i), reverse=True)
    seen: dict[str, int] = {}
    keys = {i: _unique(records[i]["id"], seen) for i in range(len(records))}
    shown = [_call_node(records[i], keys[i], scale, pricer) for i in order[:limit]]
    rest = [records[i] for i in order[limit:]]
    if rest:
        shown.append(
            Node(
                key="earlier",
                label=f"{len(rest):,} earlier calls",
                kind="earlier",
                cost=_llm_range(rest, scale),
                tokens=_token_sum(rest),
                calls=len(rest),
                list_price=pricer.group(rest, scale),
                notes=(f"only the newest {limit} calls are listed one by one",),
            )
        )
    return tuple(shown)


# --- sections -----------------------------------------------------------------------------------


def _llm_section(
    session: LoadedSession, settings: Settings, scale: float, pricer: _Pricer, limit: int
) -> Node:
    doc = session.doc
    records = doc["llmUsage"]
    by_model: dict[str, dict[str, list[LlmUsageRecord]]] = {}
    models: dict[str, ModelName] = {}
    for record in records:
        key = model_key(record["model"])
        models.setdefault(key, record["model"])
        agent = record.get("agent") or "(none)"
        by_model.setdefault(key, {}).setdefault(str(agent), []).append(record)
    model_nodes = []
    for key, agents in by_model.items():
        agent_nodes = []
        for agent, agent_records in agents.items():
            agent_nodes.append(
                Node(
                    key=agent,
                    label=agent,
                    kind="agent",
                    cost=_llm_range(agent_records, scale),
                    tokens=_token_sum(agent_records),
                    calls=len(agent_records),
                    list_price=pricer.group(agent_records, scale),
                    children=_calls(agent_records, scale, pricer, limit),
                )
            )
        agent_nodes.sort(key=lambda n: (-(n.cost or ZERO).expected, n.label))
        model = models[key]
        notes = []
        if is_unknown_model(model):
            notes.append(
                f"the factory did not recognise '{model_label(model)}' and charged its fallback price"
            )
        children = tuple(agent_nodes)
        model_nodes.append(
            Node(
                key=key,
                label=model_label(model),
                kind="model",
                cost=sum((n.cost or ZERO for n in children), ZERO),
                tokens=sum(n.tokens or 0 for n in children),
                calls=sum(n.calls or 0 for n in children),
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
    return Node(
        key="llm",
        label="LLM",
        kind="section",
        cost=ledger,
        tokens=_token_sum(records),
        calls=len(records),
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
    view: SessionView, session: LoadedSession, features: Iterable[LoadedFeature], settings: Settings,
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
) -> Node:
    """The breakdown of one session; a childless root when it has no good state yet."""
    session = view.loaded
    if session is None:
        return Node(key="", label=view.session_id, kind="session")
    doc = session.doc
    scale = settings.convert(1.0, doc["currency"])
    pricer = _Pricer(prices, settings)
    sections = [
        _llm_section(session, settings, scale, pricer, max_rows),
        _compute_section(view, session, scale, max_rows),
    ]
    other = _other_section(session, scale)
    if other is not None:
        sections.append(other)
    sections.append(_infra_section(session, scale))
    sections.append(_features_section(view, session, features, settings, feature_errors))
    summary = summarize(session, settings)
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
