"""The breakdown's LLM section: model > agent > calls, with at most ``max_rows`` calls listed per agent.

Built from the records as numpy columns (``core.breakdown.series.call_columns``), so a 100,000-call
session builds in about a tenth of a second; call rows are kept from one build to the next
(:class:`CallCache`: a session's old calls do not change).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mity_cost.core.breakdown.nodes import Node, combine_prices, local_time, unique_key
from mity_cost.core.breakdown.row_prices import CallGroup, RowPricer, usage_of
from mity_cost.core.breakdown.series import CallColumns, IntArray, call_columns
from mity_cost.core.factory.documents import LlmUsageRecord, is_unknown_model, model_label
from mity_cost.core.factory.loading import LoadedSession
from mity_cost.core.money import ZERO, Range
from mity_cost.core.settings import Settings


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
    record: LlmUsageRecord, key: str, model: str, scale: float, pricer: RowPricer, cache: CallCache | None
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
    parts = [local_time(when)]
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


def _agent_node(
    agent: str,
    group: CallGroup,
    records: Sequence[LlmUsageRecord],
    columns: CallColumns,
    context: Context,
) -> Node:
    """An agent's calls: the last ``limit`` recorded listed newest first, the rest summed in one row."""
    limit, scale, pricer = context.limit, context.scale, context.pricer
    indices = group.indices
    shown = [records[int(i)] for i in indices[-limit:]] if limit > 0 else []
    shown.sort(key=lambda r: r["timestamp"], reverse=True)
    seen: dict[str, int] = {_EARLIER: 1}  # an id spelled "earlier" must not take the summary row's key
    children = [
        _call_node(r, unique_key(r["id"], seen), group.model, scale, pricer, context.cache) for r in shown
    ]
    rest = indices[: max(0, int(indices.size) - limit)]
    if rest.size:
        rest_group = CallGroup(group.model, group.name, rest, usage_of(columns, rest))
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
class Context:
    scale: float
    pricer: RowPricer
    limit: int
    cache: CallCache | None


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


def llm_section(session: LoadedSession, settings: Settings, context: Context) -> Node:
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
                CallGroup(key, columns.models[model_code], indices, usage_of(columns, indices)),
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
        usage = usage_of(columns, indices)
        children = tuple(agent_nodes)
        model_nodes.append(
            Node(
                key=key,
                label=model_label(model),
                kind="model",
                cost=usage.range(scale),
                tokens=usage.tokens,
                calls=usage.calls,
                list_price=combine_prices([n.list_price for n in children]),
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
    total = usage_of(columns, np.arange(len(columns), dtype=np.int64))
    return Node(
        key="llm",
        label="LLM",
        kind="section",
        cost=ledger,
        tokens=total.tokens,
        calls=total.calls,
        list_price=combine_prices([n.list_price for n in model_nodes]),
        notes=tuple(notes),
        children=tuple(model_nodes),
    )
