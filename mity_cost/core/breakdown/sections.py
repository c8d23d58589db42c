"""The breakdown's other sections: Compute > type > runs, Storage/network/misc, Infrastructure
(monthly) > category with its assumptions, Features > app > feature (one-time and monthly)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from mity_cost.core.breakdown.nodes import (
    CATEGORIES,
    CATEGORY_LABELS,
    SESSION_FEATURES_APP,
    Node,
    local_time,
    unique_key,
)
from mity_cost.core.factory.documents import CostEstimate, CostItem, FeatureCostDelta, execution_label
from mity_cost.core.factory.loading import LoadedFeature, LoadedSession
from mity_cost.core.figures.summary import group_executions, summarize_feature
from mity_cost.core.live.snapshot import SessionView
from mity_cost.core.money import ZERO, Range
from mity_cost.core.settings import Settings


def _money(amount: float, symbol: str) -> str:
    return f"{symbol}{amount:,.2f}"


def _item_notes(item: Mapping[str, Any]) -> tuple[str, ...]:
    notes = []
    if item.get("notes"):
        notes.append(str(item["notes"]))
    if item.get("unit"):
        notes.append(f"unit: {item['unit']}")
    return tuple(notes)


def compute_section(view: SessionView, session: LoadedSession, scale: float, limit: int) -> Node:
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


def other_section(session: LoadedSession, scale: float) -> Node | None:
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
            Node(key=unique_key(f"a:{text}", seen), label=text, kind="assumption") for text in assumptions
        ),
    )


def infra_section(session: LoadedSession, scale: float) -> Node:
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
    notes = [summary.summary, f"calculated {local_time(doc['calculatedAt'])}"]
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


def features_section(
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
            _feature_node(app, doc, unique_key(fid, seen), settings)
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
